#!/usr/bin/env python3
"""A small device written with the framework, the subject of most tests in tests/driver.

Before connecting it offers switches of the three rules, numbers with a range and a sexagesimal
format, a read-only text, a writable BLOB and saved settings; once connected, a saved GAIN and a
BOOM switch whose handler raises. SAY sends one DEBUG and one INFO message.
$TEST_HAS_SIMULATION offers SIMULATION.
"""
import os

from indi.driver import (
    BLOB,
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
    run,
)


class BasicDevice(Device):
    default_name = "Framework Test"
    version = "2.5"
    interface = Interface.FOCUSER | Interface.FILTER
    has_simulation = bool(os.environ.get("TEST_HAS_SIMULATION"))

    def init_properties(self):
        self.add(SwitchVector("CHOICE", "Choice", members=[Switch("A", "A", ON), Switch("B"), Switch("C")]))
        self.add(SwitchVector("MAYBE", "Maybe", rule="AtMostOne", members=[Switch("X"), Switch("Y")]))
        self.add(SwitchVector("FLAGS", "Flags", rule="AnyOfMany", members=[Switch(f"F{i}") for i in (1, 2, 3)]))
        self.add(NumberVector("LEVEL", "Level", save=True, members=[
            Number("VALUE", "Value", "%.2f", 0, 100, 1, 50), Number("ANGLE", "Angle", "%010.6m", -90, 90, 0, 0)]))
        self.add(TextVector("STATUS", "Status", perm="ro", members=[Text("WORD", "Word", "ready")]))
        self.add(TextVector("NOTE", "Note", save=True, members=[Text("TEXT", "Text", "hello")]))
        self.add(BLOBVector("UPLOAD", "Upload", members=[BLOB("FILE", "File")]))
        self.add(SwitchVector("SAY", "Say", rule="AtMostOne", members=[Switch("NOW")]))
        self.add(NumberVector("GAIN", "Gain", save=True, members=[Number("GAIN_VALUE", "Gain", "%.f", 0, 1000, 1, 10)]),
                 connected=True)
        self.add(SwitchVector("BOOM", "Boom", rule="AtMostOne", members=[Switch("FIRE")]), connected=True)
        self.said = 0

    @handles("SAY")
    def say(self, vector, values):
        self.said += 1
        self.debug(f"debug message {self.said}")
        self.info(f"info message {self.said}")
        vector.send(state=OK)

    @handles("BOOM")
    def boom(self, vector, values):
        raise RuntimeError("the handler exploded")


if __name__ == "__main__":
    run(BasicDevice)
