"""Focuser Simulator: absolute and relative moves at a realistic speed, presets, and a FWHM that
grows with the distance from best focus (the CCD simulator snoops it for its star sizes)."""

from __future__ import annotations

import asyncio
import math

from ..driver import (
    BUSY,
    IDLE,
    OK,
    ON,
    Device,
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

STEPS_PER_SECOND = 10000.0   # how fast the simulated motor runs at speed 1
UPDATE_SECONDS = 0.1
BEST_FOCUS = 36700.0         # the position where stars are smallest
DEPTH_OF_FOCUS = 2000.0      # steps away from best focus at which the FWHM has grown by sqrt(2)


def fwhm(position: float, seeing: float) -> float:
    """Star size (arcseconds) at a focuser position: the seeing at best focus, growing away from it."""
    return seeing * math.sqrt(1.0 + ((position - BEST_FOCUS) / DEPTH_OF_FOCUS) ** 2)


class FocuserSimulator(Device):
    default_name = "Focuser Simulator"
    interface = Interface.FOCUSER
    connection_modes = ("serial", "tcp")

    def init_properties(self) -> None:
        self.mode = self.add(SwitchVector("Mode", "Mode", members=[
            Switch("All", "All", ON), Switch("Absolute", "Absolute"), Switch("Relative", "Relative"),
            Switch("Timer", "Timer")]))
        add = lambda vector: self.add(vector, connected=True)  # noqa: E731
        self.motion = add(SwitchVector("FOCUS_MOTION", "Direction", state=OK, members=[
            Switch("FOCUS_INWARD", "Focus In", ON), Switch("FOCUS_OUTWARD", "Focus Out")]))
        self.speed = add(NumberVector("FOCUS_SPEED", "Speed", state=OK, members=[
            Number("FOCUS_SPEED_VALUE", "Focus Speed", "%3.0f", 1, 5, 1, 1)], save=True))
        self.timer = add(NumberVector("FOCUS_TIMER", "Timer", state=OK, members=[
            Number("FOCUS_TIMER_VALUE", "Focus Timer (ms)", "%4.0f", 0, 5000, 50, 0)]))
        self.relative = add(NumberVector("REL_FOCUS_POSITION", "Relative Position", state=OK, members=[
            Number("FOCUS_RELATIVE_POSITION", "Steps", "%.f", 0, 100000, 1000, 0)]))
        self.absolute = add(NumberVector("ABS_FOCUS_POSITION", "Absolute Position", state=OK, members=[
            Number("FOCUS_ABSOLUTE_POSITION", "Steps", "%.f", 0, 100000, 1000, 50000)]))
        self.maximum = add(NumberVector("FOCUS_MAX", "Max. Position", state=OK, members=[
            Number("FOCUS_MAX_VALUE", "Steps", "%.f", 1000, 1000000, 10000, 100000)], save=True))
        self.abort = add(SwitchVector("FOCUS_ABORT_MOTION", "Abort Motion", rule="AtMostOne", members=[
            Switch("ABORT", "Abort")]))
        self.backlash_toggle = add(SwitchVector("FOCUS_BACKLASH_TOGGLE", "Backlash", members=[
            Switch("INDI_ENABLED", "Enabled"), Switch("INDI_DISABLED", "Disabled", ON)], save=True))
        self.backlash = add(NumberVector("FOCUS_BACKLASH_STEPS", "Backlash", state=OK, members=[
            Number("FOCUS_BACKLASH_VALUE", "Steps", "%.f", 0, 1000000, 100, 0)], save=True))
        self.presets = add(NumberVector("Presets", "Presets", "Presets", timeout=0, members=[
            Number(f"PRESET_{i}", f"Preset {i}", "%.f", 0, 100000, 1000, 0) for i in (1, 2, 3)], save=True))
        self.goto = add(SwitchVector("Goto", "Goto", "Presets", timeout=0, members=[
            Switch(f"Preset {i}", f"Preset {i}") for i in (1, 2, 3)]))
        add(SwitchVector("USEJOYSTICK", "Joystick", "Options", timeout=0, members=[
            Switch("ENABLE", "Enable"), Switch("DISABLE", "Disable", ON)]))
        add(TextVector("SNOOP_JOYSTICK", "Snoop Joystick", "Options", members=[
            Text("SNOOP_JOYSTICK_DEVICE", "Device", "Joystick")]))
        self.seeing = add(NumberVector("SEEING_SETTINGS", "Seeing", members=[
            Number("SIM_SEEING", "arcseconds", "%4.2f", 0, 60, 0, 3.5)], save=True))
        self.fwhm = add(NumberVector("FWHM", "FWHM", perm="ro", members=[
            Number("SIM_FWHM", "arcseconds", "%4.2f", 0, 60, 0, fwhm(50000, 3.5))]))
        self.temperature = add(NumberVector("FOCUS_TEMPERATURE", "Temperature", timeout=0, members=[
            Number("TEMPERATURE", "Celsius", "%6.2f", -50, 70, 0, 0)]))
        add(NumberVector("DELAY", "Delay", "Options", members=[
            Number("DELAY_VALUE", "Value (uS)", "%.f", 0, 60000, 100, 100)], save=True))
        self._move: asyncio.Task | None = None

    @property
    def position(self) -> float:
        return self.absolute.value("FOCUS_ABSOLUTE_POSITION")

    def _limit(self, target: float) -> float:
        return min(max(target, 0.0), self.maximum.value("FOCUS_MAX_VALUE"))

    def move_to(self, target: float) -> None:
        """Start moving to ``target`` (Busy updates as it goes, Ok when there)."""
        if self._move is not None:
            self._move.cancel()
        self._move = self.start(self._travel(self._limit(target)))

    async def _travel(self, target: float) -> None:
        speed = STEPS_PER_SECOND * self.speed.value("FOCUS_SPEED_VALUE")
        self.absolute.state = BUSY
        while True:
            here = self.position
            step = speed * UPDATE_SECONDS
            arrived = abs(target - here) <= step
            here = target if arrived else here + math.copysign(step, target - here)
            self.absolute.send(state=OK if arrived else BUSY, FOCUS_ABSOLUTE_POSITION=here)
            self._update_fwhm()
            if arrived:
                if self.relative.state is BUSY:
                    self.relative.send(state=OK)
                return
            await asyncio.sleep(UPDATE_SECONDS)

    def _update_fwhm(self) -> None:
        self.fwhm.send(SIM_FWHM=fwhm(self.position, self.seeing.value("SIM_SEEING")))

    @handles("ABS_FOCUS_POSITION")
    def _on_absolute(self, vector: NumberVector, values: dict) -> None:
        self.move_to(values["FOCUS_ABSOLUTE_POSITION"])

    @handles("REL_FOCUS_POSITION")
    def _on_relative(self, vector: NumberVector, values: dict) -> None:
        steps = values["FOCUS_RELATIVE_POSITION"]
        vector.send(state=BUSY, FOCUS_RELATIVE_POSITION=steps)
        outward = self.motion.is_on("FOCUS_OUTWARD")
        self.move_to(self.position + (steps if outward else -steps))

    @handles("FOCUS_TIMER")
    def _on_timer(self, vector: NumberVector, values: dict) -> None:
        milliseconds = values["FOCUS_TIMER_VALUE"]
        steps = STEPS_PER_SECOND * self.speed.value("FOCUS_SPEED_VALUE") * milliseconds / 1000.0
        vector.send(state=OK, FOCUS_TIMER_VALUE=milliseconds)
        self.move_to(self.position + (steps if self.motion.is_on("FOCUS_OUTWARD") else -steps))

    @handles("FOCUS_ABORT_MOTION")
    def _on_abort(self, vector: SwitchVector, values: dict) -> None:
        if self._move is not None:
            self._move.cancel()
            self._move = None
        self.absolute.send(state=IDLE)
        vector.select(None)
        vector.send(state=OK)

    @handles("Goto")
    def _on_goto(self, vector: SwitchVector, values: dict) -> None:
        vector.apply(values)
        preset = vector.on
        vector.select(None)
        vector.send(state=OK)
        if preset:
            self.move_to(self.presets.value(f"PRESET_{preset.split()[-1]}"))

    @handles("SEEING_SETTINGS")
    def _on_seeing(self, vector: NumberVector, values: dict) -> None:
        vector.send(state=OK, **values)
        self._update_fwhm()

    @handles("FOCUS_MAX")
    def _on_max(self, vector: NumberVector, values: dict) -> None:
        vector.send(state=OK, **values)
        top = values["FOCUS_MAX_VALUE"]
        for number in (self.absolute["FOCUS_ABSOLUTE_POSITION"], self.relative["FOCUS_RELATIVE_POSITION"],
                       *self.presets):
            number.max = top
        for changed in (self.absolute, self.relative, self.presets):
            if changed.name in self.defined:
                self.define(changed)


def main() -> None:
    run(FocuserSimulator)


if __name__ == "__main__":
    main()
