"""Filter Simulator: an eight-slot filter wheel that takes time to turn from slot to slot."""

from __future__ import annotations

import asyncio

from ..driver import (
    BUSY,
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

SECONDS_PER_SLOT = 0.5
FILTERS = ("Red", "Green", "Blue", "H_Alpha", "SII", "OIII", "LPR", "Luminance")


class FilterSimulator(Device):
    default_name = "Filter Simulator"
    interface = Interface.FILTER

    def init_properties(self) -> None:
        self.slot = self.add(NumberVector("FILTER_SLOT", "Filter Slot", "Filter Wheel", members=[
            Number("FILTER_SLOT_VALUE", "Filter", "%3.0f", 1, len(FILTERS), 1, 1)]), connected=True)
        self.names = self.add(TextVector("FILTER_NAME", "Filter", "Filter Wheel", timeout=0, members=[
            Text(f"FILTER_SLOT_NAME_{i}", f"Filter#{i}", name) for i, name in enumerate(FILTERS, 1)], save=True),
            connected=True)
        self.add(SwitchVector("USEJOYSTICK", "Joystick", "Options", timeout=0, members=[
            Switch("ENABLE", "Enable"), Switch("DISABLE", "Disable", ON)]), connected=True)
        self.add(TextVector("SNOOP_JOYSTICK", "Snoop Joystick", "Options", members=[
            Text("SNOOP_JOYSTICK_DEVICE", "Device", "Joystick")]), connected=True)
        self._turning: asyncio.Task | None = None

    @property
    def current(self) -> int:
        return int(self.slot.value("FILTER_SLOT_VALUE"))

    @handles("FILTER_SLOT")
    def _on_slot(self, vector: NumberVector, values: dict) -> None:
        target = int(round(values["FILTER_SLOT_VALUE"]))
        if self._turning is not None:
            self._turning.cancel()
        self._turning = self.start(self._turn(target))

    async def _turn(self, target: int) -> None:
        """Step slot by slot the short way round, as a real wheel does."""
        count = len(FILTERS)
        while self.current != target:
            forward = (target - self.current) % count
            step = 1 if forward <= count - forward else -1
            self.slot.send(state=BUSY)
            await asyncio.sleep(SECONDS_PER_SLOT)
            self.slot.apply({"FILTER_SLOT_VALUE": (self.current - 1 + step) % count + 1})
        self.slot.send(state=OK)
        self.info(f"Filter is at slot {target} ({self.names.value(f'FILTER_SLOT_NAME_{target}')})")


def main() -> None:
    run(FilterSimulator)


if __name__ == "__main__":
    main()
