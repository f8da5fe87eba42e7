#!/usr/bin/env python3
"""A device that snoops another device's property and mirrors it into its own.

It snoops $SNOOP_DEVICE (default "Framework Test") property LEVEL: each definition or update
received copies VALUE into MIRROR.VALUE and counts it in MIRROR.DEFS or MIRROR.SETS.
"""
import os

from indi.driver import OK, Device, Number, NumberVector, run
from indi.protocol import DefVector, SetVector


class SnoopDevice(Device):
    default_name = "Snoop Test"

    def init_properties(self):
        self.mirror = self.add(NumberVector("MIRROR", "Mirror", perm="ro", members=[
            Number(name, name, "%g", 0, 0, 0, 0) for name in ("VALUE", "DEFS", "SETS")]))
        self.snoop(os.environ.get("SNOOP_DEVICE", "Framework Test"), "LEVEL", self.snooped_level)

    def snooped_level(self, element):
        if not isinstance(element, (DefVector, SetVector)):
            return
        count = "DEFS" if isinstance(element, DefVector) else "SETS"
        value = next(member.value for member in element.members if member.name == "VALUE")
        self.mirror.send(state=OK, VALUE=value, **{count: self.mirror.value(count) + 1})


if __name__ == "__main__":
    run(SnoopDevice)
