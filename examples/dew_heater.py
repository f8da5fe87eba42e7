#!/usr/bin/env python3
"""A dew heater driver: a power setting, and a temperature that follows it."""
import random

from indi.driver import OK, Device, Interface, Number, NumberVector, handles, run


class DewHeater(Device):
    default_name = "Dew Heater"
    interface = Interface.AUX

    def init_properties(self):
        self.power = self.add(NumberVector("HEATER_POWER", "Power", members=[
            Number("PERCENT", "Power (%)", "%.0f", 0, 100, 5, 0)], save=True), connected=True)
        self.temperature = self.add(NumberVector("TEMPERATURE", "Temperature", perm="ro", members=[
            Number("CELSIUS", "Celsius", "%.1f", -50, 50, 0, 5)]), connected=True)

    @handles("HEATER_POWER")
    def set_power(self, vector, values):
        vector.send(state=OK, **values)  # values are checked: 0..100 here
        self.info(f"Heater at {values['PERCENT']:.0f}%")

    async def poll(self):  # every POLLING_PERIOD while connected
        warming = self.power.value("PERCENT") / 20
        self.temperature.send(state=OK, CELSIUS=5 + warming + random.uniform(-0.1, 0.1))


if __name__ == "__main__":
    run(DewHeater)
