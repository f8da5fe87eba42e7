"""The camera that the CCD Simulator and the Guide Simulator share: chips, exposures, FITS
headers, uploads, streaming, the guide port and what it snoops from the other devices.

It snoops the mount named in ACTIVE_DEVICES (where it points, its focal length, whether it
tracks, its site), the focuser (FWHM, or the position from which the star size is worked out),
the rotator, the filter wheel and the sky-quality meter, and writes what it knows into the FITS
header under libindi's keyword names. Exposures count down once a second; the frame is rendered
(sky.py) in a worker thread at the end of the exposure so that the driver keeps answering
meanwhile, and sent with Device.send_blob, which waits for the server to have read it before
anything else is sent: a driver never holds more than one frame.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from ..driver import (
    ALERT,
    BLOB,
    BUSY,
    IDLE,
    OK,
    ON,
    BLOBVector,
    Device,
    Interface,
    Number,
    NumberVector,
    Switch,
    SwitchVector,
    Text,
    TextVector,
    handles,
)
from ..protocol import format_sexagesimal
from . import astro, sky
from .ccdfiles import card, check_upload_dir, clean_prefix, encode, upload_name

__all__ = ["CameraSimulator", "Chip", "FILTERS", "AMBIENT", "PEDESTAL"]

FILTERS = ("Red", "Green", "Blue", "H_Alpha", "SII", "OIII", "LPR", "Luminance")
FRAME_TYPES = {"FRAME_LIGHT": "light", "FRAME_BIAS": "bias", "FRAME_DARK": "dark", "FRAME_FLAT": "flat"}
AMBIENT = 0.0              # where the sensor settles with the cooler off (the reference starts there)
DARK_AT_0C = 2.0           # electrons/s per pixel at 0 C, doubling every 6 C
GUIDE_RATE = 0.5 * astro.SIDEREAL_RATE / 3600.0   # degrees/s that a guide pulse moves the pointing
DEFAULT_FOCAL_LENGTH = 900.0                      # mm, when neither SCOPE_INFO nor the mount says
PEDESTAL = 100.0           # ADU of the bias level before CCD_OFFSET / SIM_BIAS


def _transmission(name: str) -> float:
    """How much light a filter lets through, judged by its name."""
    lowered = name.lower().replace("-", "_")
    if any(word in lowered for word in ("lum", "clear", "none")) or lowered in ("l", ""):
        return 1.0
    if any(word in lowered for word in ("alpha", "ha", "sii", "oiii", "nii", "hb", "beta")):
        return 0.08
    return 0.8


def _snooped_numbers(element: Any) -> dict[str, float]:
    return {m.name: float(m.value) for m in getattr(element, "members", ()) if isinstance(m.value, (int, float))}


def _snooped_switches(element: Any) -> dict[str, bool]:
    return {m.name: str(m.value) == "On" for m in getattr(element, "members", ())}


class Chip:
    """One sensor (the main chip or the guide head): its properties, geometry and exposure."""

    def __init__(self, device: CameraSimulator, primary: bool, width: int, height: int,
                 pixel_x: float, pixel_y: float) -> None:
        self.device = device
        self.primary = primary
        names = ("CCD", "CCD_EXPOSURE_VALUE", "CCD1") if primary else ("GUIDER", "GUIDER_EXPOSURE_VALUE", "CCD2")
        prefix, self.exposure_member, blob = names
        settings = "Image Settings" if primary else "Guider Head"
        self.exposure = NumberVector(f"{prefix}_EXPOSURE", "Expose" if primary else "Guide Head", members=[
            Number(self.exposure_member, "Duration (s)", "%5.2f", 0.01, 3600, 1, 1)])
        self.abort = SwitchVector(f"{prefix}_ABORT_EXPOSURE", "Abort", rule="AtMostOne", members=[
            Switch("ABORT", "Abort")])
        self.frame = NumberVector(f"{prefix}_FRAME", "Frame", settings, members=[
            Number("X", "Left ", "%4.0f"), Number("Y", "Top", "%4.0f"), Number("WIDTH", "Width", "%4.0f"),
            Number("HEIGHT", "Height", "%4.0f")], save=primary)
        self.binning = NumberVector(f"{prefix}_BINNING", "Binning", settings, members=[
            Number("HOR_BIN", "X", "%2.0f", 1, 4, 1, 1), Number("VER_BIN", "Y", "%2.0f", 1, 4, 1, 1)], save=True)
        whole, real, bits = ("%.f", "%.2f", "%.f") if primary else ("%4.0f", "%5.2f", "%3.0f")
        self.info = NumberVector(f"{prefix}_INFO", "CCD Information" if primary else "Info", "Image Info", "ro",
                                 members=[
            Number("CCD_MAX_X", "Max. Width", whole, 1, 16000), Number("CCD_MAX_Y", "Max. Height", whole, 1, 16000),
            Number("CCD_PIXEL_SIZE", "Pixel size (um)", real, 1, 40),
            Number("CCD_PIXEL_SIZE_X", "Pixel size X", real, 1, 40),
            Number("CCD_PIXEL_SIZE_Y", "Pixel size Y", real, 1, 40),
            Number("CCD_BITSPERPIXEL", "Bits per pixel", bits, 8, 64, 0, 16)])
        self.frame_type = SwitchVector(f"{prefix}_FRAME_TYPE", "Type", settings, members=[
            Switch("FRAME_LIGHT", "Light", ON), Switch("FRAME_BIAS", "Bias"), Switch("FRAME_DARK", "Dark"),
            Switch("FRAME_FLAT", "Flat")])
        self.compression = SwitchVector(f"{prefix}_COMPRESSION", "Compression", settings, members=[
            Switch("INDI_ENABLED", "Enabled"), Switch("INDI_DISABLED", "Disabled", ON)], save=True)
        self.blob = BLOBVector(blob, "Image Data", "Image Info", "ro", members=[
            BLOB(blob, "Image" if primary else "Guider Image")])
        self.task: asyncio.Task | None = None
        self.set_geometry(width, height, pixel_x, pixel_y)

    # ---- geometry
    def set_geometry(self, width: int, height: int, pixel_x: float, pixel_y: float) -> None:
        """A new chip size (as libindi's SetCCDParams): full frame, ranges to match."""
        self.info.apply({"CCD_MAX_X": width, "CCD_MAX_Y": height, "CCD_PIXEL_SIZE": pixel_x,
                         "CCD_PIXEL_SIZE_X": pixel_x, "CCD_PIXEL_SIZE_Y": pixel_y})
        for name, low, high in (("X", 0, width - 1), ("Y", 0, height - 1), ("WIDTH", 1, width), ("HEIGHT", 1, height)):
            self.frame[name].min, self.frame[name].max = low, high
        self.frame.apply({"X": 0, "Y": 0, "WIDTH": width, "HEIGHT": height})

    @property
    def width(self) -> int:
        return int(self.info.value("CCD_MAX_X"))

    @property
    def height(self) -> int:
        return int(self.info.value("CCD_MAX_Y"))

    @property
    def kind(self) -> str:
        return FRAME_TYPES[self.frame_type.on or "FRAME_LIGHT"]

    @property
    def exposing(self) -> bool:
        return self.task is not None and not self.task.done()

    def vectors(self) -> list:
        return [self.exposure, self.abort, self.frame, self.binning, self.info, self.frame_type, self.compression,
                self.blob]


class CameraSimulator(Device):
    """What the CCD Simulator and the Guide Simulator have in common."""

    interface = Interface.CCD | Interface.GUIDER
    chip_size: tuple[int, int, float] = (1280, 1024, 5.2)

    # ------------------------------------------------------------------------------ properties
    def init_properties(self) -> None:
        home = os.path.expanduser("~")
        self.active = self.add(TextVector("ACTIVE_DEVICES", "Snoop devices", "Options", members=[
            Text("ACTIVE_TELESCOPE", "Telescope", "Telescope Simulator"),
            Text("ACTIVE_ROTATOR", "Rotator", "Rotator Simulator"),
            Text("ACTIVE_FOCUSER", "Focuser", "Focuser Simulator"),
            Text("ACTIVE_FILTER", "Filter", "CCD Simulator"), Text("ACTIVE_SKYQUALITY", "Sky Quality", "SQM")],
            save=True))
        self.simulator_properties()
        width, height, pixel = self.chip_size
        self.primary = Chip(self, True, width, height, pixel, pixel)
        self.chips = [self.primary]
        add = lambda vector: self.add(vector, connected=True)  # noqa: E731
        p = self.primary
        for vector in (p.exposure, p.abort, p.frame):
            add(vector)
        self.frame_reset = add(SwitchVector("CCD_FRAME_RESET", "Frame Values", "Image Settings", "wo", timeout=0,
                                            members=[Switch("RESET", "Reset")]))
        add(p.binning)
        self.fits_header = add(TextVector("FITS_HEADER", "FITS Header", "General Info", members=[
            Text("FITS_OBSERVER", "Observer", "Unknown"), Text("FITS_OBJECT", "Object", "Unknown")]))
        self.camera_properties_before_info()
        add(SwitchVector("CCD_CAPTURE_FORMAT", "Format", "Image Settings", members=[Switch("INDI_MONO", "Mono", ON)]))
        self.transfer = add(SwitchVector("CCD_TRANSFER_FORMAT", "Encode", "Image Settings", members=[
            Switch("FORMAT_FITS", "FITS", ON), Switch("FORMAT_NATIVE", "Native")], save=True))
        add(p.info)
        self.camera_properties_after_info()
        add(p.compression)
        add(p.blob)
        self.camera_guide_head_blob()
        self.guide_ns = add(NumberVector("TELESCOPE_TIMED_GUIDE_NS", "Guide N/S", "Guider Control", members=[
            Number("TIMED_GUIDE_N", "North (ms)", "%.f", 0, 60000, 100), Number("TIMED_GUIDE_S", "South (ms)", "%.f",
                                                                                 0, 60000, 100)]))
        self.guide_we = add(NumberVector("TELESCOPE_TIMED_GUIDE_WE", "Guide E/W", "Guider Control", members=[
            Number("TIMED_GUIDE_W", "West (ms)", "%.f", 0, 60000, 100), Number("TIMED_GUIDE_E", "East (ms)", "%.f",
                                                                                0, 60000, 100)]))
        add(p.frame_type)
        self.camera_guide_head_frame_type()
        self.scope_info = add(NumberVector("SCOPE_INFO", "Scope", "Options", members=[
            Number("FOCAL_LENGTH", "Focal Length (mm)", "%.2f", 10, 10000, 100),
            Number("APERTURE", "Aperture (mm)", "%.2f", 10, 3000, 100)], save=True))
        self.wcs = add(SwitchVector("WCS_CONTROL", "WCS", "WCS", timeout=0, members=[
            Switch("WCS_ENABLE", "Enable"), Switch("WCS_DISABLE", "Disable", ON)]))
        self.upload_mode = add(SwitchVector("UPLOAD_MODE", "Upload", "Options", timeout=0, members=[
            Switch("UPLOAD_CLIENT", "Client", ON), Switch("UPLOAD_LOCAL", "Local"), Switch("UPLOAD_BOTH", "Both")],
            save=True))
        self.upload_settings = add(TextVector("UPLOAD_SETTINGS", "Upload Settings", "Options", members=[
            Text("UPLOAD_DIR", "Dir", home), Text("UPLOAD_PREFIX", "Prefix", "IMAGE_XXX")], save=True))
        self.fast_toggle = add(SwitchVector("CCD_FAST_TOGGLE", "Fast Exposure", "Options", timeout=0, members=[
            Switch("INDI_ENABLED", "Enabled"), Switch("INDI_DISABLED", "Disabled", ON)], save=True))
        self.fast_count = add(NumberVector("CCD_FAST_COUNT", "Fast Count", "Options", timeout=0, members=[
            Number("FRAMES", "Frames", "%.f", 0, 100000, 1, 1)]))
        self.streaming_properties(add, home, width, height)
        self.camera_properties_last(add, home)
        # Defined only while local uploads are on (as libindi does), or with the options that need them.
        self.file_path = add(TextVector("CCD_FILE_PATH", "Filename", "Image Info", "ro", members=[
            Text("FILE_PATH", "Path")]))
        self.cfa = add(TextVector("CCD_CFA", "Bayer Info", "Image Info", members=[
            Text("CFA_OFFSET_X", "X Offset", "0"), Text("CFA_OFFSET_Y", "Y Offset", "0"),
            Text("CFA_TYPE", "Filter", "RGGB")]))
        self.rotation = add(NumberVector("CCD_ROTATION", "CCD FOV", "WCS", members=[
            Number("CCD_ROTATION_VALUE", "Rotation", "%g", -360, 360, 1, 0)]))
        self._by_name = {vector.name: chip for chip in self.chips for vector in chip.vectors()}
        self._reset_state()
        self._snoop_active_devices()

    def simulator_properties(self) -> None:
        """The simulator's own settings, defined before connecting."""

    def camera_properties_before_info(self) -> None:
        """Guide head and cooler properties, in the reference's order."""

    def camera_properties_after_info(self) -> None:
        pass

    def camera_guide_head_blob(self) -> None:
        pass

    def camera_guide_head_frame_type(self) -> None:
        pass

    def camera_properties_last(self, add: Any, home: str) -> None:
        """The gain and whatever else comes last in the reference."""

    def streaming_properties(self, add: Any, home: str, width: int, height: int) -> None:
        self.stream_switch = add(SwitchVector("CCD_VIDEO_STREAM", "Video Stream", "Streaming", timeout=0, members=[
            Switch("STREAM_ON", "Stream On"), Switch("STREAM_OFF", "Stream Off", ON)]))
        self.stream_delay = add(NumberVector("STREAM_DELAY", "Video Stream Delay", "Streaming", "ro", timeout=0,
                                             members=[Number("STREAM_DELAY_TIME", "Delay (s)", "%.3f", 0, 60, 0.001)]))
        self.stream_exposure = add(NumberVector("STREAMING_EXPOSURE", "Expose", "Streaming", members=[
            Number("STREAMING_EXPOSURE_VALUE", "Duration (s)", "%.6f", 1e-6, 60, 0.1, 0.1),
            Number("STREAMING_DIVISOR_VALUE", "Divisor", "%.f", 1, 15, 1, 1)], save=True))
        self.fps = add(NumberVector("FPS", "FPS", "Streaming", "ro", members=[
            Number("EST_FPS", "Instant.", "%.2f", 0, 999, 0, 30), Number("AVG_FPS", "Average (1 sec.)", "%.2f",
                                                                         0, 999, 0, 30)]))
        add(SwitchVector("RECORD_STREAM", "Video Record", "Streaming", timeout=0, members=[
            Switch("RECORD_ON", "Record On"), Switch("RECORD_DURATION_ON", "Record (Duration)"),
            Switch("RECORD_FRAME_ON", "Record (Frames)"), Switch("RECORD_OFF", "Record Off", ON)]))
        add(TextVector("RECORD_FILE", "Record File", "Streaming", timeout=0, members=[
            Text("RECORD_FILE_DIR", "Dir.", f"{home}/indi__D_"), Text("RECORD_FILE_NAME", "Name", "indi_record__T_")],
            save=True))
        add(NumberVector("RECORD_OPTIONS", "Record Options", "Streaming", members=[
            Number("RECORD_DURATION", "Duration (sec)", "%.3f", 0.001, 999999, 0, 1),
            Number("RECORD_FRAME_TOTAL", "Frames", "%.f", 1, 999999999, 1, 30)]))
        self.stream_frame = add(NumberVector("CCD_STREAM_FRAME", "Frame", "Streaming", members=[
            Number("X", "Left", "%.f", 0, width - 1), Number("Y", "Top", "%.f", 0, height - 1),
            Number("WIDTH", "Width", "%.f", 1, width, 0, width), Number("HEIGHT", "Height", "%.f", 1, height, 0,
                                                                        height)]))
        self.stream_encoder = add(SwitchVector("CCD_STREAM_ENCODER", "Encoder", "Streaming", timeout=0, members=[
            Switch("RAW", "RAW", ON), Switch("MJPEG", "MJPEG")], save=True))
        add(SwitchVector("CCD_STREAM_RECORDER", "Recorder", "Streaming", timeout=0, members=[Switch("SER", "SER", ON)],
                         save=True))
        self.limits = add(NumberVector("LIMITS", "Limits", "Streaming", timeout=0, members=[
            Number("LIMITS_BUFFER_MAX", "Maximum Buffer Size (MB)", "%.0f", 1, 65536, 1, 512),
            Number("LIMITS_PREVIEW_FPS", "Maximum Preview FPS", "%.0f", 1, 120, 1, 10)], save=True))

    def _reset_state(self) -> None:
        self.pointing: tuple[float, float] | None = None   # JNow RA hours, DEC degrees of the mount
        self.tracking = True
        self.pier_side: str | None = None
        self.site: tuple[float, float] | None = None       # latitude, longitude (degrees east)
        self.mount_optics: dict[str, float] = {}
        self.focuser_fwhm: float | None = None
        self.focuser_position: float | None = None
        self.focuser_temperature: float | None = None
        self.rotator_angle: float | None = None
        self.sky_quality: float | None = None
        self.other_filter: tuple[int, dict[str, str]] = (0, {})
        self.guide_offset = [0.0, 0.0]                      # RA, DEC degrees from timed guide pulses
        self.temperature = AMBIENT
        self.stream_task: asyncio.Task | None = None
        self._snooped: list[tuple[str, str]] = []
        self._started = time.time()

    # -------------------------------------------------------------------------------- snooping
    def _snoop_active_devices(self) -> None:
        for device, name in self._snooped:
            self.stop_snooping(device, name)
        self._snooped = []
        scope, rotator, focuser, wheel, sqm = (self.active.value(n) for n in (
            "ACTIVE_TELESCOPE", "ACTIVE_ROTATOR", "ACTIVE_FOCUSER", "ACTIVE_FILTER", "ACTIVE_SKYQUALITY"))
        wanted = [(scope, "EQUATORIAL_EOD_COORD", self._on_mount_coordinates),
                  (scope, "TELESCOPE_INFO", self._on_mount_optics),
                  (scope, "TELESCOPE_TRACK_STATE", self._on_mount_tracking),
                  (scope, "TELESCOPE_PIER_SIDE", self._on_mount_pier),
                  (scope, "GEOGRAPHIC_COORD", self._on_mount_site),
                  (focuser, "FWHM", self._on_focuser_fwhm),
                  (focuser, "ABS_FOCUS_POSITION", self._on_focuser_position),
                  (focuser, "FOCUS_TEMPERATURE", self._on_focuser_temperature),
                  (rotator, "ABS_ROTATOR_ANGLE", self._on_rotator),
                  (sqm, "SKY_QUALITY", self._on_sky_quality)]
        if wheel and wheel != self.name:
            wanted += [(wheel, "FILTER_SLOT", self._snooped_filter_slot),
                       (wheel, "FILTER_NAME", self._snooped_filter_names)]
        for device, name, callback in wanted:
            if device:
                self.snoop(device, name, callback)
                self._snooped.append((device, name))

    def _on_mount_coordinates(self, element: Any) -> None:
        values = _snooped_numbers(element)
        if "RA" in values and "DEC" in values:
            self.pointing = (values["RA"], values["DEC"])

    def _on_mount_optics(self, element: Any) -> None:
        self.mount_optics.update({k: v for k, v in _snooped_numbers(element).items() if v > 0})

    def _on_mount_tracking(self, element: Any) -> None:
        switches = _snooped_switches(element)
        if "TRACK_ON" in switches:
            self.tracking = switches["TRACK_ON"]

    def _on_mount_pier(self, element: Any) -> None:
        switches = _snooped_switches(element)
        self.pier_side = "WEST" if switches.get("PIER_WEST") else "EAST" if switches.get("PIER_EAST") else None

    def _on_mount_site(self, element: Any) -> None:
        values = _snooped_numbers(element)
        if "LAT" in values and "LONG" in values:
            self.site = (values["LAT"], values["LONG"])

    def _on_focuser_fwhm(self, element: Any) -> None:
        value = _snooped_numbers(element).get("SIM_FWHM")
        if value is not None and value > 0:
            self.focuser_fwhm = value

    def _on_focuser_position(self, element: Any) -> None:
        self.focuser_position = _snooped_numbers(element).get("FOCUS_ABSOLUTE_POSITION", self.focuser_position)

    def _on_focuser_temperature(self, element: Any) -> None:
        self.focuser_temperature = _snooped_numbers(element).get("TEMPERATURE", self.focuser_temperature)

    def _on_rotator(self, element: Any) -> None:
        self.rotator_angle = _snooped_numbers(element).get("ANGLE", self.rotator_angle)

    def _on_sky_quality(self, element: Any) -> None:
        self.sky_quality = _snooped_numbers(element).get("SKY_BRIGHTNESS", self.sky_quality)

    def _snooped_filter_slot(self, element: Any) -> None:
        slot = _snooped_numbers(element).get("FILTER_SLOT_VALUE")
        if slot is not None:
            self.other_filter = (int(slot), self.other_filter[1])

    def _snooped_filter_names(self, element: Any) -> None:
        names = {m.name: str(m.value) for m in getattr(element, "members", ())}
        if names:
            self.other_filter = (self.other_filter[0], names)

    @handles("ACTIVE_DEVICES")
    def _on_active_devices(self, vector: TextVector, values: dict) -> None:
        vector.send(state=OK, **values)
        self.pointing, self.focuser_fwhm, self.focuser_position = None, None, None
        self._snoop_active_devices()

    # ------------------------------------------------------------------------- what it knows
    def setting(self, name: str, default: float = 0.0) -> float:
        vector = self.properties["SIMULATOR_SETTINGS"]
        return float(vector.value(name)) if name in vector else default

    def focal_length(self, chip: Chip) -> float | None:
        """The focal length in effect: SCOPE_INFO if set, else the mount's (its guide scope's for
        the guide head), else unknown."""
        if self.scope_info.value("FOCAL_LENGTH") > 0:
            return self.scope_info.value("FOCAL_LENGTH")
        if not chip.primary and "GUIDER_FOCAL_LENGTH" in self.mount_optics:
            return self.mount_optics["GUIDER_FOCAL_LENGTH"]
        return self.mount_optics.get("TELESCOPE_FOCAL_LENGTH")

    def aperture(self, chip: Chip) -> float | None:
        if self.scope_info.value("APERTURE") > 0:
            return self.scope_info.value("APERTURE")
        if not chip.primary and "GUIDER_APERTURE" in self.mount_optics:
            return self.mount_optics["GUIDER_APERTURE"]
        return self.mount_optics.get("TELESCOPE_APERTURE")

    def fwhm(self) -> float:
        """Star size in arcseconds: what the focuser says, else worked out from its position."""
        if self.focuser_fwhm is not None:
            return self.focuser_fwhm
        seeing = self.seeing()
        if self.focuser_position is not None and "SIM_FOCUSING" in self.properties:
            focusing = self.properties["SIM_FOCUSING"]
            return sky.fwhm_at_focus(self.focuser_position, focusing.value("SIM_FOCUS_POSITION"),
                                     focusing.value("SIM_FOCUS_MAX"), seeing)
        return seeing

    def seeing(self) -> float:
        return 3.5

    def filter_name(self) -> str | None:
        if self.active.value("ACTIVE_FILTER") == self.name and "FILTER_SLOT" in self.properties:
            slot = int(self.properties["FILTER_SLOT"].value("FILTER_SLOT_VALUE"))
            return self.properties["FILTER_NAME"].value(f"FILTER_SLOT_NAME_{slot}")
        slot, names = self.other_filter
        return names.get(f"FILTER_SLOT_NAME_{slot}") if slot else None

    def sensor_temperature(self) -> float | None:
        """Only a camera with a cooler reports its temperature."""
        return None

    def gain_factor(self) -> float:
        return 10.0 ** ((self.properties["CCD_GAIN"].value("GAIN") - 50.0) / 50.0)

    def pedestal(self) -> float:
        return PEDESTAL

    def bayer(self) -> bool:
        return False

    # -------------------------------------------------------------------------------- exposing
    def _shot(self, chip: Chip, seconds: float, kind: str | None = None,
              region: tuple[int, int, int, int] | None = None) -> sky.Shot:
        """Everything the frame depends on, taken now (at the start of the exposure)."""
        x, y, w, h = region or (int(chip.frame.value(n)) for n in ("X", "Y", "WIDTH", "HEIGHT"))
        pixel_x, pixel_y = chip.info.value("CCD_PIXEL_SIZE_X"), chip.info.value("CCD_PIXEL_SIZE_Y")
        ra_h, dec = self.pointing if self.pointing is not None else (0.0, 90.0)
        ra_h, dec = astro.jnow_to_j2000(ra_h, dec, time.time())
        ra = ra_h * 15.0 + self.guide_offset[0]
        dec = dec + self.guide_offset[1]
        if not chip.primary:
            dec += self.setting("SIM_OAGOFFSET") / 60.0
        period, amplitude = self.setting("SIM_PEPERIOD"), self.setting("SIM_PEMAX")
        if period > 0 and amplitude > 0:   # periodic error of the worm, in RA
            phase = 2 * math.pi * (time.time() - self._started) / period
            ra += amplitude * math.sin(phase) / 3600.0 / max(math.cos(math.radians(dec)), 1e-3)
        # declination drift of a mount that is not polar aligned (the reference's rule of thumb)
        dec += self.setting("SIM_POLAR") * self.setting("SIM_POLARDRIFT") * math.cos(math.radians(dec)) / 3.81 / 3600
        if dec > 90.0:
            dec, ra = 180.0 - dec, ra + 180.0
        elif dec < -90.0:
            dec, ra = -180.0 - dec, ra + 180.0
        drift = 0.0 if self.tracking or self.pointing is None else astro.SIDEREAL_RATE * seconds / 3600.0
        # a German mount east of the pier looks at the sky turned half a turn (the reference does so too)
        rotation = self.setting("SIM_ROTATION") + (180.0 if self.pier_side == "EAST" else 0.0)
        temperature = self.sensor_temperature()
        dark_temperature = temperature if temperature is not None else 15.0
        filter_name = self.filter_name()
        return sky.Shot(
            chip_width=chip.width, chip_height=chip.height, x=x, y=y, width=w, height=h,
            bin_x=int(chip.binning.value("HOR_BIN")), bin_y=int(chip.binning.value("VER_BIN")),
            pixel_um_x=pixel_x, pixel_um_y=pixel_y, focal_mm=self.focal_length(chip) or DEFAULT_FOCAL_LENGTH,
            seconds=seconds, kind=kind or chip.kind, ra=ra % 360.0, dec=dec, drift_ra=drift,
            rotation=rotation, fwhm=max(self.fwhm(), 0.1), limit_mag=self.setting("SIM_LIMITINGMAG", 17.0),
            sky_mag=self.sky_quality or self.setting("SIM_SKYGLOW", 19.5),
            transmission=_transmission(filter_name) if filter_name is not None else 1.0,
            dark_rate=DARK_AT_0C * 2.0 ** (dark_temperature / 6.0), adu_per_electron=self.gain_factor(),
            pedestal=self.pedestal(), read_noise=self.setting("SIM_NOISE", 10.0),
            max_adu=self.setting("SIM_MAXVAL", 65000.0), bayer=self.bayer() and chip.primary,
            chip_seed=0 if chip.primary else 1)

    @handles("CCD_EXPOSURE", "GUIDER_EXPOSURE")
    def _on_expose(self, vector: NumberVector, values: dict) -> None:
        chip = self._by_name[vector.name]
        seconds = values[chip.exposure_member]
        if self.streaming:
            self.error("Cannot take exposure while streaming/recording is active.")
            vector.send(state=ALERT)
            return
        if chip.kind == "bias":
            seconds = vector[chip.exposure_member].min
        if chip.exposing:
            chip.task.cancel()
        chip.task = self.start(self._expose(chip, seconds))

    async def _expose(self, chip: Chip, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        factor = self.setting("SIM_TIME_FACTOR", 1.0) or 1.0
        started = datetime.now(UTC)
        shot = self._shot(chip, seconds)
        end = loop.time() + seconds * factor
        chip.exposure.send(state=BUSY, **{chip.exposure_member: seconds})
        left = seconds
        while left > 0:
            await asyncio.sleep(min(1.0, left * factor))
            left = max(0.0, (end - loop.time()) / factor)
            chip.exposure.send(state=BUSY, **{chip.exposure_member: round(left, 3)})
        if self.exposures_time_out():
            return  # the simulated camera never delivers: the client's timeout is what is tested
        await self._deliver(chip, shot, started)
        chip.exposure.send(state=OK, **{chip.exposure_member: 0})
        if chip.primary and self.fast_toggle.is_on("INDI_ENABLED") and self.fast_count.value("FRAMES") > 1:
            self.fast_count.send(state=BUSY, FRAMES=self.fast_count.value("FRAMES") - 1)
            chip.task = self.start(self._expose(chip, seconds))
        elif chip.primary and self.fast_count.state is BUSY:
            self.fast_count.send(state=IDLE)

    def exposures_time_out(self) -> bool:
        return False

    async def _deliver(self, chip: Chip, shot: sky.Shot, started: datetime) -> None:
        """Render, encode, save and send one frame; nothing of it is kept afterwards."""
        cards = self.fits_cards(chip, shot, started)
        form = "native" if self.transfer.is_on("FORMAT_NATIVE") else "fits"
        compress = chip.compression.is_on("INDI_ENABLED")

        def work() -> tuple[bytes, str, int]:
            return encode(sky.render(shot), cards, form, compress)   # encode frees the pixels early

        data, form_name, size = await asyncio.to_thread(work)
        send = not self.upload_mode.is_on("UPLOAD_LOCAL")
        if not self.upload_mode.is_on("UPLOAD_CLIENT"):
            self._save(data, form_name)
        if send:
            member = chip.blob[chip.blob.name]
            member.value, member.format, member.size = data, form_name, size
            del data
            try:
                await self.send_blob(chip.blob)
            finally:
                member.value, member.size = b"", None   # let the frame go as soon as it is out

    def _save(self, data: bytes, extension: str) -> None:
        directory = self.upload_settings.value("UPLOAD_DIR")
        now = datetime.now().strftime("%Y-%m-%dT%H-%M-%S.%f")[:-3]
        try:
            path = upload_name(directory, self.upload_settings.value("UPLOAD_PREFIX"), extension, now)
            path.write_bytes(data)
        except ValueError as exc:
            self.error(f"Unable to save image file: {exc}")
            return
        except OSError as exc:
            self.error(f"Unable to save image file ({directory}). {exc.strerror or exc}")
            return
        self.file_path["FILE_PATH"].value = str(path)
        self.info(f"Image saved to {path}")
        self.file_path.send(state=OK)

    @handles("CCD_ABORT_EXPOSURE", "GUIDER_ABORT_EXPOSURE")
    def _on_abort(self, vector: SwitchVector, values: dict) -> None:
        chip = self._by_name[vector.name]
        if chip.exposing:
            chip.task.cancel()
            chip.task = None
        vector.select(None)
        vector.send(state=OK)
        chip.exposure.send(state=IDLE, **{chip.exposure_member: 0})
        if chip.primary and self.fast_count.state is BUSY:
            self.fast_count.send(state=IDLE, FRAMES=1)

    # ---------------------------------------------------------------------------- FITS header
    def fits_cards(self, chip: Chip, shot: sky.Shot, started: datetime) -> list[str]:
        """libindi's keywords, in libindi's order, with what this driver knows."""
        cards = [card("ROWORDER", "TOP-DOWN", "Row Order"), card("INSTRUME", self.name, "CCD Name")]
        telescope = self.active.value("ACTIVE_TELESCOPE")
        if telescope:
            cards.append(card("TELESCOP", telescope, "Telescope name"))
        cards += [card("OBSERVER", self.fits_header.value("FITS_OBSERVER"), "Observer name"),
                  card("OBJECT", self.fits_header.value("FITS_OBJECT"), "Object name"),
                  card("EXPTIME", shot.seconds, "Total Exposure Time (s)", 6)]
        if shot.kind == "dark":
            cards.append(card("DARKTIME", shot.seconds, "Total Dark Exposure Time (s)", 6))
        temperature = self.sensor_temperature()
        if temperature is not None:
            cards.append(card("CCD-TEMP", temperature, "CCD Temperature (Celsius)", 3))
        cards += [card("PIXSIZE1", shot.pixel_um_x, "Pixel Size 1 (microns)", 6),
                  card("PIXSIZE2", shot.pixel_um_y, "Pixel Size 2 (microns)", 6),
                  card("XBINNING", shot.bin_x, "Binning factor in width"),
                  card("YBINNING", shot.bin_y, "Binning factor in height"),
                  card("XPIXSZ", shot.pixel_um_x * shot.bin_x, "X binned pixel size in microns", 6),
                  card("YPIXSZ", shot.pixel_um_y * shot.bin_y, "Y binned pixel size in microns", 6),
                  card("FRAME", shot.kind.capitalize(), "Frame Type"),
                  card("IMAGETYP", f"{shot.kind.capitalize()} Frame", "Frame Type")]
        filter_name = self.filter_name()
        if filter_name is not None:
            cards.append(card("FILTER", filter_name, "Filter"))
        if shot.bayer:
            cards += [card("XBAYROFF", int(self.cfa.value("CFA_OFFSET_X") or 0), "X offset of Bayer array"),
                      card("YBAYROFF", int(self.cfa.value("CFA_OFFSET_Y") or 0), "Y offset of Bayer array"),
                      card("BAYERPAT", self.cfa.value("CFA_TYPE"), "Bayer color pattern")]
        focal, aperture = self.focal_length(chip), self.aperture(chip)
        if focal:
            cards.append(card("FOCALLEN", focal, "Focal Length (mm)", 3))
        if aperture:
            cards.append(card("APTDIA", aperture, "Telescope diameter (mm)", 3))
        if self.sky_quality is not None:
            cards.append(card("MPSAS", self.sky_quality, "Sky Quality (mag per arcsec^2)", 6))
        cards.append(card("ROTATANG", self.rotator_angle or 0.0, "Rotator angle in degrees", 3))
        if self.focuser_position is not None:
            cards.append(card("FOCUSPOS", int(self.focuser_position), "Focus position in steps"))
        if self.focuser_temperature is not None:
            cards.append(card("FOCUSTEM", self.focuser_temperature, "Focuser temperature in degrees C", 3))
        if focal:
            cards.append(card("SCALE", shot.pixel_um_x / focal * 206.3 * shot.bin_x, "arcsecs per pixel", 6))
        if shot.kind == "light" and self.pointing is not None:
            cards += self._pointing_cards(chip, shot, focal)
        cards += [card("DATE-OBS", started.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3], "UTC start date of observation"),
                  "COMMENT Generated by INDI"]
        return cards + self.extra_cards()

    def _pointing_cards(self, chip: Chip, shot: sky.Shot, focal: float | None) -> list[str]:
        now = time.time()
        ra_now, dec_now = self.pointing  # type: ignore[misc]
        ra_h, dec = astro.jnow_to_j2000(ra_now, dec_now, now)
        cards = []
        if self.site is not None:
            latitude, longitude = self.site
            altitude, azimuth = astro.equatorial_to_horizontal(ra_now, dec_now, latitude,
                                                               astro.lst_hours(now, longitude))
            a = 750.0 * math.sin(math.radians(altitude))
            airmass = math.sqrt(a * a + 2 * 750.0 + 1) - a     # libnova's ln_get_airmass(alt, 750)
            cards += [card("SITELAT", latitude, "Latitude of the imaging site in degrees", 6),
                      card("SITELONG", longitude, "Longitude of the imaging site in degrees", 6),
                      card("AIRMASS", airmass, "Airmass", 6),
                      card("OBJCTAZ", azimuth, "Azimuth of center of image in Degrees", 6),
                      card("OBJCTALT", altitude, "Altitude of center of image in Degrees", 6)]
        cards += [card("OBJCTRA", format_sexagesimal(ra_h, 2, 360000).replace(":", " "), "Object J2000 RA in Hours"),
                  card("OBJCTDEC", format_sexagesimal(dec, 2, 360000).replace(":", " "), "Object J2000 DEC in Degrees"),
                  card("RA", ra_h * 15.0, "Object J2000 RA in Degrees", 6),
                  card("DEC", dec, "Object J2000 DEC in Degrees", 6)]
        if self.pier_side == "WEST":
            cards.append(card("PIERSIDE", "WEST", "West, looking East"))
        elif self.pier_side == "EAST":
            cards.append(card("PIERSIDE", "EAST", "East, looking West"))
        cards.append(card("EQUINOX", 2000, "Equinox"))
        if self.wcs.is_on("WCS_ENABLE") and focal:
            scale_x = shot.pixel_um_x / focal * 206.3 * shot.bin_x / 3600.0
            scale_y = shot.pixel_um_y / focal * 206.3 * shot.bin_y / 3600.0
            rotation = (360.0 - self.rotation.value("CCD_ROTATION_VALUE")) % 360.0
            cards += [card("CRVAL1", ra_h * 15.0, "CRVAL1", 10), card("CRVAL2", dec, "CRVAL1", 10),
                      card("RADECSYS", "FK5", "RADECSYS"), card("CTYPE1", "RA---TAN", "CTYPE1"),
                      card("CTYPE2", "DEC--TAN", "CTYPE2"),
                      card("CRPIX1", shot.width / shot.bin_x / 2.0, "CRPIX1", 10),
                      card("CRPIX2", shot.height / shot.bin_y / 2.0, "CRPIX2", 10),
                      card("SECPIX1", scale_x * 3600, "SECPIX1", 10), card("SECPIX2", scale_y * 3600, "SECPIX2", 10),
                      card("CDELT1", scale_x, "CDELT1", 10), card("CDELT2", scale_y, "CDELT2", 10),
                      card("CROTA1", rotation, "CROTA1", 10), card("CROTA2", rotation, "CROTA2", 10)]
        return cards

    def extra_cards(self) -> list[str]:
        return [card("GAIN", self.properties["CCD_GAIN"].value("GAIN"), "Gain", 3)]

    # --------------------------------------------------------------------------- image settings
    @handles("CCD_FRAME", "GUIDER_FRAME")
    def _on_frame(self, vector: NumberVector, values: dict) -> None:
        chip = self._by_name[vector.name]
        new = {**vector.values, **values}
        x, y = int(new["X"]), int(new["Y"])
        # a subframe never reaches past the chip's edge
        w = max(1, min(int(new["WIDTH"]), chip.width - x))
        h = max(1, min(int(new["HEIGHT"]), chip.height - y))
        vector.send(state=OK, X=x, Y=y, WIDTH=w, HEIGHT=h)

    @handles("CCD_BINNING", "GUIDER_BINNING")
    def _on_binning(self, vector: NumberVector, values: dict) -> None:
        vector.send(state=OK, **{k: float(int(v)) for k, v in values.items()})

    @handles("CCD_FRAME_RESET")
    def _on_frame_reset(self, vector: SwitchVector, values: dict) -> None:
        chip = self.primary
        chip.binning.send(state=OK, HOR_BIN=1, VER_BIN=1)
        chip.frame.send(state=OK, X=0, Y=0, WIDTH=chip.width, HEIGHT=chip.height)
        vector.select(None)
        vector.send(state=OK)

    @handles("UPLOAD_MODE")
    def _on_upload_mode(self, vector: SwitchVector, values: dict) -> None:
        vector.apply(values)
        if vector.is_on("UPLOAD_CLIENT"):
            self.info("Upload settings set to client only.")
            self.delete(self.file_path)
        else:
            self.info(f"Upload settings set to {'local only' if vector.is_on('UPLOAD_LOCAL') else 'client and local'}.")
            if self.connected:
                self.define(self.file_path)
        vector.send(state=OK)

    @handles("UPLOAD_SETTINGS")
    def _on_upload_settings(self, vector: TextVector, values: dict) -> None:
        """The prefix is made a plain file name; a directory outside the allowed ones (the home
        directory and INDI_UPLOAD_DIRS, see ccdfiles) is refused: nothing changes, state Alert."""
        if "UPLOAD_DIR" in values:
            try:
                check_upload_dir(values["UPLOAD_DIR"])
            except ValueError as exc:
                self.error(f"Upload directory refused: {exc}")
                vector.send(state=ALERT)
                return
        if "UPLOAD_PREFIX" in values:
            cleaned = clean_prefix(values["UPLOAD_PREFIX"])
            if cleaned != values["UPLOAD_PREFIX"]:
                self.warning(f"Upload prefix {values['UPLOAD_PREFIX']!r} would leave the upload directory: "
                             f"using {cleaned!r}.")
            values["UPLOAD_PREFIX"] = cleaned
        vector.send(state=OK, **values)

    @handles("WCS_CONTROL")
    def _on_wcs(self, vector: SwitchVector, values: dict) -> None:
        vector.apply(values)
        if vector.is_on("WCS_ENABLE"):
            self.info("World Coordinate System is enabled.")
            self.define(self.rotation)
        else:
            self.info("World Coordinate System is disabled.")
            self.delete(self.rotation)
        vector.send(state=OK)

    @handles("CCD_FAST_TOGGLE")
    def _on_fast_toggle(self, vector: SwitchVector, values: dict) -> None:
        first = vector.state is IDLE
        vector.apply(values)
        if vector.is_on("INDI_ENABLED") and first:
            self.warning("Experimental Feature: After a frame is downloaded, the next frame capture immediately "
                         "starts to avoid any delays.")
        elif vector.is_on("INDI_DISABLED"):
            self.fast_count.send(state=IDLE)
        vector.send(state=OK)

    @handles("CCD_SIMULATE_CRASH")
    def _on_crash(self, vector: SwitchVector, values: dict) -> None:
        if any(value is ON for value in values.values()):
            os.abort()  # what the reference does: a driver that dies, for testing servers and clients

    # ------------------------------------------------------------------------------ guide port
    @handles("TELESCOPE_TIMED_GUIDE_NS", "TELESCOPE_TIMED_GUIDE_WE")
    def _on_guide(self, vector: NumberVector, values: dict) -> None:
        """The camera's ST4 port: a pulse moves where the simulated sensor looks, at half sidereal."""
        pulse = {**dict.fromkeys(vector.members, 0.0), **values}
        if vector.name == "TELESCOPE_TIMED_GUIDE_NS":
            self.guide_offset[1] += (pulse["TIMED_GUIDE_N"] - pulse["TIMED_GUIDE_S"]) / 1000.0 * GUIDE_RATE
        else:
            cos_dec = max(math.cos(math.radians(self.pointing[1] if self.pointing else 0.0)), 1e-3)
            self.guide_offset[0] += (pulse["TIMED_GUIDE_E"] - pulse["TIMED_GUIDE_W"]) / 1000.0 * GUIDE_RATE / cos_dec
        vector.send(state=OK, **pulse)

    # ------------------------------------------------------------------------------- streaming
    @property
    def streaming(self) -> bool:
        return self.stream_task is not None and not self.stream_task.done()

    @handles("CCD_VIDEO_STREAM")
    def _on_stream(self, vector: SwitchVector, values: dict) -> None:
        vector.apply(values)
        if vector.is_on("STREAM_ON"):
            if any(chip.exposing for chip in self.chips):
                self.error("Cannot start streaming while exposing.")
                vector.select("STREAM_OFF")
                vector.send(state=ALERT)
                return
            if not self.streaming:
                exposure = self.stream_exposure.value("STREAMING_EXPOSURE_VALUE")
                self.info(f"Starting the video stream with target exposure {exposure:.6f} s "
                          f"(Max theoritical FPS {1.0 / exposure:g})")
                if self.stream_encoder.is_on("MJPEG"):
                    self.warning("MJPEG is not simulated: frames are sent RAW.")
                self.stream_task = self.start(self._stream())
            vector.send(state=BUSY)
        else:
            if self.streaming:
                self.stream_task.cancel()
            self.stream_task = None
            vector.send(state=IDLE)

    async def _stream(self) -> None:
        """Frames at the streaming exposure (no faster than LIMITS_PREVIEW_FPS), each one 8-bit raw
        on CCD1 as ".stream", the next one only once the server has read it."""
        loop = asyncio.get_running_loop()
        chip = self.primary
        member = chip.blob[chip.blob.name]
        recent: deque[float] = deque()
        last = loop.time()
        while True:
            exposure = self.stream_exposure.value("STREAMING_EXPOSURE_VALUE")
            interval = max(exposure, 1.0 / self.limits.value("LIMITS_PREVIEW_FPS"))
            x, y, w, h = (int(self.stream_frame.value(n)) for n in ("X", "Y", "WIDTH", "HEIGHT"))
            w, h = max(1, min(w, chip.width - x)), max(1, min(h, chip.height - y))
            shot = self._shot(chip, exposure, "light", (x, y, w, h))
            started = loop.time()
            frame = await asyncio.to_thread(lambda shot=shot: sky.to_8bit(sky.render(shot)).tobytes())
            await asyncio.sleep(max(0.0, started + interval - loop.time()))
            member.value, member.format, member.size = frame, ".stream", len(frame)
            del frame
            sending = loop.time()
            try:
                await self.send_blob(chip.blob)
            finally:
                member.value, member.size = b"", None
            now = loop.time()
            self.stream_delay.send(state=IDLE, STREAM_DELAY_TIME=now - sending)
            recent.append(now)
            while recent and recent[0] < now - 1.0:
                recent.popleft()
            self.fps.send(state=IDLE, EST_FPS=1.0 / max(now - last, 1e-6), AVG_FPS=float(len(recent)))
            last = now

    @handles("CCD_STREAM_FRAME")
    def _on_stream_frame(self, vector: NumberVector, values: dict) -> None:
        chip = self.primary
        new = {**vector.values, **values}
        x, y = int(new["X"]), int(new["Y"])
        vector.send(state=OK, X=x, Y=y, WIDTH=max(1, min(int(new["WIDTH"]), chip.width - x)),
                    HEIGHT=max(1, min(int(new["HEIGHT"]), chip.height - y)))

    # ------------------------------------------------------------------------ connection hooks
    def visible(self, name: str) -> bool:
        """Whether a connected-only property is shown now: some depend on options."""
        if name == "CCD_FILE_PATH":
            return not self.upload_mode.is_on("UPLOAD_CLIENT")
        if name == "CCD_CFA":
            return self.bayer()
        if name == "CCD_ROTATION":
            return self.wcs.is_on("WCS_ENABLE")
        return True

    async def connect(self) -> bool:
        self.info("Simulated camera is online: a synthetic sky following the mount named in ACTIVE_DEVICES.")
        return True

    async def disconnect(self) -> None:
        for chip in self.chips:
            chip.task = None
        self.stream_task = None
        self.stream_switch.select("STREAM_OFF")
        self.stream_switch.state = IDLE

    # ----------------------------------------------------------------------- simulator settings
    def apply_settings(self, vector: NumberVector, values: dict) -> None:
        """New SIMULATOR_SETTINGS: a new chip size resets the frame, as libindi's SetCCDParams."""
        old = (self.setting("SIM_XRES"), self.setting("SIM_YRES"), self.setting("SIM_XSIZE"), self.setting("SIM_YSIZE"))
        vector.apply(values)
        new = (self.setting("SIM_XRES"), self.setting("SIM_YRES"), self.setting("SIM_XSIZE"), self.setting("SIM_YSIZE"))
        if new != old:
            width, height = max(1, int(new[0])), max(1, int(new[1]))
            self.primary.set_geometry(width, height, max(new[2], 0.1), max(new[3], 0.1))
            self.primary.binning.apply({"HOR_BIN": 1, "VER_BIN": 1})
            for name, low, high in (("X", 0, width - 1), ("Y", 0, height - 1), ("WIDTH", 1, width),
                                    ("HEIGHT", 1, height)):
                self.stream_frame[name].min, self.stream_frame[name].max = low, high
            self.stream_frame.apply({"X": 0, "Y": 0, "WIDTH": width, "HEIGHT": height})
            for changed in (self.primary.info, self.primary.frame, self.stream_frame):
                if changed.name in self.defined:
                    self.define(changed)   # new ranges reach clients only in a definition
            self.send_update(self.primary.binning)
        vector.send(state=OK)

    @handles("SIMULATOR_SETTINGS")
    def _on_settings(self, vector: NumberVector, values: dict) -> None:
        self.apply_settings(vector, values)

    @handles("EQUATORIAL_PE")
    def _on_pe(self, vector: NumberVector, values: dict) -> None:
        """Point the simulated sky somewhere else than the mount says (until the mount moves)."""
        vector.send(state=OK, **values)
        self.pointing = (vector.value("RA_PE"), vector.value("DEC_PE"))
