"""CCD Simulator and Guide Simulator: cameras that image a synthetic sky (see sky.py, camera.py).

The CCD Simulator has a 1280x1024 main chip of 5.2 um pixels with a cooler, a 500x290 guide head,
its own eight-slot filter wheel and an ST4 port for timed guide pulses. The Guide Simulator is the
same camera with a 1280x1024 chip of 2.4 um pixels and nothing else, as Debian's 1.9.9 drivers are.
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

from ..driver import (
    BUSY,
    IDLE,
    OK,
    ON,
    Interface,
    Number,
    NumberVector,
    Switch,
    SwitchVector,
    Text,
    TextVector,
    handles,
    run,
)
from .camera import AMBIENT, FILTERS, PEDESTAL, CameraSimulator, Chip
from .ccdfiles import card

__all__ = ["CCDSimulator", "GuideSimulator", "main", "main_guide"]

COOLING_RATE = 0.5         # degrees C per second when no ramp is set (the reference's pace)


class CCDSimulator(CameraSimulator):
    """indi_simulator_ccd: main chip with cooler, guide head, filter wheel, ST4 port."""

    default_name = "CCD Simulator"
    interface = Interface.CCD | Interface.GUIDER | Interface.FILTER

    def simulator_properties(self) -> None:
        group = "Simulator Config"
        self.add(NumberVector("SIMULATOR_SETTINGS", "Settings", group, members=[
            Number("SIM_XRES", "CCD X resolution", "%4.0f", 512, 8192, 512, 1280),
            Number("SIM_YRES", "CCD Y resolution", "%4.0f", 512, 8192, 512, 1024),
            Number("SIM_XSIZE", "CCD X Pixel Size", "%4.2f", 1, 30, 5, 5.2),
            Number("SIM_YSIZE", "CCD Y Pixel Size", "%4.2f", 1, 30, 5, 5.2),
            Number("SIM_MAXVAL", "CCD Maximum ADU", "%4.0f", 255, 65000, 1000, 65000),
            Number("SIM_SATURATION", "Saturation Mag", "%4.1f", 0, 20, 1, 1),
            Number("SIM_LIMITINGMAG", "Limiting Mag", "%4.1f", 0, 20, 1, 17),
            Number("SIM_NOISE", "CCD Noise", "%4.0f", 0, 6000, 500, 10),
            Number("SIM_SKYGLOW", "Sky Glow (magnitudes)", "%4.1f", 0, 6000, 500, 19.5),
            Number("SIM_OAGOFFSET", "Oag Offset (arcminutes)", "%4.1f", 0, 6000, 500, 0),
            Number("SIM_POLAR", "PAE (arcminutes)", "%4.1f", -600, 600, 100, 0),
            Number("SIM_POLARDRIFT", "PAE Drift (minutes)", "%4.1f", 0, 60, 5, 0),
            Number("SIM_PEPERIOD", "PE Period (seconds)", "%4.1f", 0, 60, 5, 0),
            Number("SIM_PEMAX", "PE Max (arcsec)", "%4.1f", 0, 6000, 500, 0),
            Number("SIM_TIME_FACTOR", "Time Factor (x)", "%.2f", 0.01, 100, 10, 1),
            Number("SIM_ROTATION", "CCD Rotation", "%.2f", 0, 360, 10, 0)], save=True))
        self.add(NumberVector("EQUATORIAL_PE", "EQ PE", group, members=[
            Number("RA_PE", "RA (hh:mm:ss)", "%010.6m", 0, 24),
            Number("DEC_PE", "DEC (dd:mm:ss)", "%010.6m", -90, 90)]))
        self.focusing = self.add(NumberVector("SIM_FOCUSING", "Focus Simulation", group, members=[
            Number("SIM_FOCUS_POSITION", "Focus", "%.f", 0, 100000, 1, 36700),
            Number("SIM_FOCUS_MAX", "Max. Position", "%.f", 0, 100000, 1, 100000),
            Number("SIM_SEEING", "Seeing (arcsec)", "%4.2f", 0, 60, 0, 3.5)], save=True))
        self.bayer_switch = self.add(SwitchVector("SIMULATE_BAYER", "Bayer", group, members=[
            Switch("INDI_ENABLED", "Enabled"), Switch("INDI_DISABLED", "Disabled", ON)], save=True))
        self.add(SwitchVector("CCD_SIMULATE_CRASH", "Crash", group, "wo", timeout=0, rule="AtMostOne", members=[
            Switch("CRASH", "Crash driver")]))

    def camera_properties_before_info(self) -> None:
        self.guider = Chip(self, False, 500, 290, 9.8, 12.6)
        self.chips.append(self.guider)
        for vector in (self.guider.exposure, self.guider.abort, self.guider.frame):
            self.add(vector, connected=True)
        self.temperature_vector = self.add(NumberVector("CCD_TEMPERATURE", "Temperature", members=[
            Number("CCD_TEMPERATURE_VALUE", "Temperature (C)", "%5.2f", -50, 50, 0, AMBIENT)]), connected=True)
        self.ramp = self.add(NumberVector("CCD_TEMP_RAMP", "Temp. Ramp", members=[
            Number("RAMP_SLOPE", "Max. dT (C/min)", "%.f", 0, 30, 1, 0),
            Number("RAMP_THRESHOLD", "Threshold (C)", "%.1f", 0.1, 2, 0.1, 0.2)], save=True), connected=True)

    def camera_properties_after_info(self) -> None:
        self.add(self.guider.info, connected=True)
        self.add(self.guider.binning, connected=True)

    def camera_guide_head_blob(self) -> None:
        self.add(self.guider.compression, connected=True)
        self.add(self.guider.blob, connected=True)

    def camera_guide_head_frame_type(self) -> None:
        self.add(self.guider.frame_type, connected=True)

    def camera_properties_last(self, add: Any, home: str) -> None:
        for name, label in (("CONVOLUTION", "Convolution"), ("DFT", "DFT"), ("IDFT", "IDFT"),
                            ("SPECTRUM", "Spectrum"), ("HISTOGRAM", "Histogram"), ("WAVELETS", "Wavelets")):
            add(SwitchVector(f"DSP_ACTIVATE_{name}", label, "Signal Processing", members=[
                Switch("DSP_ACTIVATE_ON", "On"), Switch("DSP_ACTIVATE_OFF", "Off", ON)]))
        self.cooler = add(SwitchVector("CCD_COOLER", "Cooler", "Main Control", "wo", timeout=0, members=[
            Switch("COOLER_ON", "ON"), Switch("COOLER_OFF", "OFF", ON)]))
        add(NumberVector("CCD_GAIN", "Gain", members=[Number("GAIN", "value", "%.f", 0, 100, 10, 90)], save=True))
        add(NumberVector("CCD_OFFSET", "Offset", members=[Number("OFFSET", "value", "%.f", 0, 6000, 500, 0)],
                         save=True))
        add(TextVector("CCD_DIRECTORY_LOCATION", "Directory", "Simulator Config", members=[
            Text("LOCATION", "Location", home)], save=True))
        add(SwitchVector("CCD_DIRECTORY_TOGGLE", "Use Dir.", "Simulator Config", members=[
            Switch("INDI_ENABLED", "Enabled"), Switch("INDI_DISABLED", "Disabled", ON)]))
        self.filter_slot = add(NumberVector("FILTER_SLOT", "Filter Slot", "Filter Wheel", members=[
            Number("FILTER_SLOT_VALUE", "Filter", "%3.0f", 1, len(FILTERS), 1, 1)]))
        self.filter_names = add(TextVector("FILTER_NAME", "Filter", "Filter Wheel", timeout=0, members=[
            Text(f"FILTER_SLOT_NAME_{i}", f"Filter#{i}", name) for i, name in enumerate(FILTERS, 1)], save=True))

    # ---- what differs
    def seeing(self) -> float:
        return self.focusing.value("SIM_SEEING")

    def sensor_temperature(self) -> float | None:
        return self.temperature

    def pedestal(self) -> float:
        return PEDESTAL + self.properties["CCD_OFFSET"].value("OFFSET")

    def bayer(self) -> bool:
        return self.bayer_switch.is_on("INDI_ENABLED")

    def extra_cards(self) -> list[str]:
        return super().extra_cards() + [card("OFFSET", self.properties["CCD_OFFSET"].value("OFFSET"), "Offset", 3)]

    @handles("SIMULATE_BAYER")
    def _on_bayer(self, vector: SwitchVector, values: dict) -> None:
        vector.apply(values)
        if self.connected:
            (self.define if vector.is_on("INDI_ENABLED") else self.delete)(self.cfa)
        vector.send(state=OK)

    # ---- cooler
    async def connect(self) -> bool:
        self.temperature_target = self.temperature
        self.every(lambda: self.polling.value("PERIOD_MS") / 1000.0, self._regulate)
        return await super().connect()

    @handles("CCD_TEMPERATURE")
    def _on_temperature(self, vector: NumberVector, values: dict) -> None:
        target = values["CCD_TEMPERATURE_VALUE"]
        self.temperature_target = target
        if abs(target - self.temperature) < 0.1:
            self.temperature = target
            vector.send(state=OK, CCD_TEMPERATURE_VALUE=target)
            return
        self.cooler.select("COOLER_ON")
        self.cooler.send(state=BUSY)
        vector.send(state=BUSY, CCD_TEMPERATURE_VALUE=self.temperature)

    @handles("CCD_TEMP_RAMP")
    def _on_ramp(self, vector: NumberVector, values: dict) -> None:
        vector.send(state=OK, **values)
        slope = vector.value("RAMP_SLOPE")
        if slope > 0:
            self.info(f"Temperature ramp is enabled. Gradual cooling and warming is regulated at {slope:.0f} "
                      f"Celsius per minute.")
        else:
            self.info("Temperature ramp is disabled.")

    @handles("CCD_COOLER")
    def _on_cooler(self, vector: SwitchVector, values: dict) -> None:
        vector.apply(values)
        if vector.is_on("COOLER_ON"):
            vector.send(state=BUSY)
        else:
            # with the cooler off the sensor drifts back to ambient
            self.temperature_target = AMBIENT
            if abs(self.temperature - AMBIENT) >= 0.1:
                self.temperature_vector.send(state=BUSY)
            vector.send(state=IDLE)

    def _regulate(self) -> None:
        """One step of the cooler towards its target, at the ramp's rate (or the native rate)."""
        vector = self.temperature_vector
        if vector.state is not BUSY:
            return
        slope = self.ramp.value("RAMP_SLOPE")
        rate = slope / 60.0 if slope > 0 else COOLING_RATE
        step = rate * self.polling.value("PERIOD_MS") / 1000.0
        difference = self.temperature_target - self.temperature
        if abs(difference) <= max(step, self.ramp.value("RAMP_THRESHOLD") if slope > 0 else 0.0):
            self.temperature = self.temperature_target
            vector.send(state=OK, CCD_TEMPERATURE_VALUE=self.temperature)
            self.info(f"Temperature reached requested value {self.temperature:.2f} degrees C")
            return
        self.temperature += math.copysign(step, difference)
        vector.send(state=BUSY, CCD_TEMPERATURE_VALUE=round(self.temperature, 3))

    # ---- filter wheel
    @handles("FILTER_SLOT")
    def _on_filter_slot(self, vector: NumberVector, values: dict) -> None:
        slot = int(round(values["FILTER_SLOT_VALUE"]))
        self.info(f"Setting current filter to slot {slot}")
        vector.send(state=OK, FILTER_SLOT_VALUE=slot)


class GuideSimulator(CameraSimulator):
    """indi_simulator_guide: one 1280x1024 chip of 2.4 um pixels, an ST4 port, no cooler."""

    default_name = "Guide Simulator"
    chip_size = (1280, 1024, 2.4)

    def simulator_properties(self) -> None:
        group = "Simulator Settings"
        self.add(NumberVector("SIMULATOR_SETTINGS", "Config", group, members=[
            Number("SIM_XRES", "CCD X resolution", "%4.0f", 0, 8192, 0, 1280),
            Number("SIM_YRES", "CCD Y resolution", "%4.0f", 0, 8192, 0, 1024),
            Number("SIM_XSIZE", "CCD X Pixel Size", "%4.2f", 0, 60, 0, 2.4),
            Number("SIM_YSIZE", "CCD Y Pixel Size", "%4.2f", 0, 60, 0, 2.4),
            Number("SIM_MAXVAL", "CCD Maximum ADU", "%4.0f", 0, 65000, 0, 65000),
            Number("SIM_BIAS", "CCD Bias", "%4.0f", 0, 6000, 0, 10),
            Number("SIM_SATURATION", "Saturation Mag", "%4.1f", 0, 20, 0, 1),
            Number("SIM_LIMITINGMAG", "Limiting Mag", "%4.1f", 0, 20, 0, 17),
            Number("SIM_NOISE", "CCD Noise", "%4.0f", 0, 6000, 0, 10),
            Number("SIM_SKYGLOW", "Sky Glow (magnitudes)", "%4.1f", 0, 6000, 0, 19.5),
            Number("SIM_OAGOFFSET", "Oag Offset (arcminutes)", "%4.1f", 0, 6000, 0, 0),
            Number("SIM_POLAR", "PAE (arcminutes)", "%4.1f", -600, 600, 0, 0),
            Number("SIM_POLARDRIFT", "PAE Drift (minutes)", "%4.1f", 0, 6000, 0, 0),
            Number("SIM_ROTATION", "Rotation CW (degrees)", "%4.1f", -360, 360, 0, 0),
            Number("SIM_KING_GAMMA", "(CP,TCP), deg", "%4.1f", 0, 10, 0, 0),
            Number("SIM_KING_THETA", "hour hangle, deg", "%4.1f", 0, 360, 0, 0),
            Number("SIM_TIME_FACTOR", "Time Factor (x)", "%.2f", 0.01, 100, 0, 1)], save=True))
        self.add(NumberVector("EQUATORIAL_PE", "EQ PE", group, members=[
            Number("RA_PE", "RA (hh:mm:ss)", "%010.6m", 0, 24),
            Number("DEC_PE", "DEC (dd:mm:ss)", "%010.6m", -90, 90)]))
        self.rgb = self.add(SwitchVector("SIMULATE_RGB", "Simulate RGB", group, members=[
            Switch("SIMULATE_YES", "Yes"), Switch("SIMULATE_NO", "No", ON)], save=True))
        self.timeouts = self.add(SwitchVector("CCD_TIMEOUT", "Timeout", group, members=[
            Switch("INDI_ENABLED", "Enabled"), Switch("INDI_DISABLED", "Disabled", ON)]))

    def camera_properties_last(self, add: Any, home: str) -> None:
        add(NumberVector("CCD_GAIN", "Gain", members=[Number("GAIN", "Gain", "%.f", 0, 100, 10, 50)], save=True))

    def pedestal(self) -> float:
        return PEDESTAL + self.setting("SIM_BIAS")

    def bayer(self) -> bool:
        return self.rgb.is_on("SIMULATE_YES")

    def exposures_time_out(self) -> bool:
        return self.timeouts.is_on("INDI_ENABLED")

    @handles("SIMULATE_RGB")
    def _on_rgb(self, vector: SwitchVector, values: dict) -> None:
        vector.apply(values)
        if self.connected:
            (self.define if vector.is_on("SIMULATE_YES") else self.delete)(self.cfa)
        vector.send(state=OK)


def _return_frames_to_the_system() -> None:
    """Make glibc give a frame's memory back when it is freed: big blocks always mmap'd (the
    default threshold grows after each free until 5 MB frames stay in the heap for good) and one
    arena for the render thread instead of a new heap of its own. Keeps the driver's footprint
    near its import size between frames (indiserver -m and small machines)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 * 1024)   # M_MMAP_THRESHOLD
        libc.mallopt(-8, 1)            # M_ARENA_MAX
    except (OSError, AttributeError):
        pass   # not glibc: nothing to tune


def main() -> None:
    _return_frames_to_the_system()
    run(CCDSimulator)


def main_guide() -> None:
    _return_frames_to_the_system()
    run(GuideSimulator)


if __name__ == "__main__":
    main()

