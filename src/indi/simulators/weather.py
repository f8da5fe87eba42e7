"""Weather Simulator: weather that a client dictates, judged against ranges as a station's would be.

WEATHER_CONTROL holds the simulated readings (a client sets them); each update copies them into
WEATHER_PARAMETERS and turns each critical parameter's WEATHER_STATUS light Ok, Busy (in the
warning zone near the edge of its Ok range) or Alert (outside it). Each parameter's range is a
property of the parameter's own name (MIN_OK, MAX_OK, PERC_WARN). Updates come every
WEATHER_UPDATE seconds and on WEATHER_REFRESH; WEATHER_OVERRIDE reports Ok whatever the weather.
The site comes from a snooped GPS (ACTIVE_DEVICES), as with libindi's weather drivers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..driver import (
    ALERT,
    BUSY,
    IDLE,
    OK,
    Device,
    Interface,
    Light,
    LightVector,
    Number,
    NumberVector,
    Switch,
    SwitchVector,
    Text,
    TextVector,
    handles,
    run,
)
from ..protocol import DefVector, PropertyState, SetVector

# (parameter, label, Ok range min, max, % of the range for the warning zone, WEATHER_CONTROL member)
PARAMETERS = (
    ("WEATHER_FORECAST", "Weather", 0, 0, 15, "Weather"),
    ("WEATHER_TEMPERATURE", "Temperature (C)", -10, 30, 15, "Temperature"),
    ("WEATHER_WIND_SPEED", "Wind (kph)", 0, 20, 15, "Wind"),
    ("WEATHER_WIND_GUST", "Gust (kph)", 0, 20, 15, "Gust"),
    ("WEATHER_RAIN_HOUR", "Precip (mm)", 0, 0, 15, "Precip"),
)
CRITICAL = ("WEATHER_FORECAST", "WEATHER_TEMPERATURE", "WEATHER_WIND_SPEED", "WEATHER_RAIN_HOUR")
_SEVERITY = {IDLE: 0, OK: 1, BUSY: 2, ALERT: 3}


def parameter_state(value: float, low: float, high: float, percent_warning: float) -> PropertyState:
    """Alert outside [low, high]; Busy within percent_warning of the range from an edge; else Ok.

    As libindi judges it, an edge at exactly 0 has no warning zone (so that a calm wind, whose
    Ok range starts at 0, is not a warning)."""
    margin = (high - low) * percent_warning / 100.0
    if value < low or value > high:
        return ALERT
    if (low != 0 and value < low + margin) or (high != 0 and value > high - margin):
        return BUSY
    return OK


class WeatherSimulator(Device):
    default_name = "Weather Simulator"
    interface = Interface.WEATHER

    def init_properties(self) -> None:
        # libindi's weather simulator has no POLLING_PERIOD.
        self.remove("POLLING_PERIOD")

        add = lambda vector: self.add(vector, connected=True)  # noqa: E731
        self.update_period = add(NumberVector("WEATHER_UPDATE", "Update", members=[
            Number("PERIOD", "Period (s)", "%.f", 0, 3600, 60, 60)], save=True))
        self.refresh = add(SwitchVector("WEATHER_REFRESH", "Weather", timeout=0, rule="AtMostOne", members=[
            Switch("REFRESH", "Refresh")]))
        self.override = add(SwitchVector("WEATHER_OVERRIDE", "Safety", timeout=0, rule="AnyOfMany", members=[
            Switch("OVERRIDE", "Override Status")]))
        labels = {name: label for name, label, *_ in PARAMETERS}
        self.status = add(LightVector("WEATHER_STATUS", "Status", members=[
            Light(name, labels[name]) for name in CRITICAL]))
        # The Ok range of each parameter is also its min and max here, as libindi shows it.
        self.parameters = add(NumberVector("WEATHER_PARAMETERS", "Parameters", "Parameters", perm="ro", state=OK,
                                           members=[Number(name, label, "%4.2f", low, high, 0, 0)
                                                    for name, label, low, high, _, _ in PARAMETERS]))
        self.ranges: dict[str, NumberVector] = {}
        for name, label, low, high, percent, _ in PARAMETERS:
            self.ranges[name] = add(NumberVector(name, label, "Parameters", members=[
                Number("MIN_OK", "OK range min", "%4.2f", -1e6, 1e6, 0, low),
                Number("MAX_OK", "OK range max", "%4.2f", -1e6, 1e6, 0, high),
                Number("PERC_WARN", "% for Warning", "%g", 0, 100, 1, percent)], save=True))
        self.location = add(NumberVector("GEOGRAPHIC_COORD", "Location", "Site Management", state=OK, members=[
            Number("LAT", "Lat (dd:mm:ss)", "%010.6m", -90, 90, 0, 0),
            Number("LONG", "Lon (dd:mm:ss)", "%010.6m", 0, 360, 0, 0),
            Number("ELEV", "Elevation (m)", "%g", -200, 10000, 0, 0)], save=True))
        self.active_devices = add(TextVector("ACTIVE_DEVICES", "Snoop devices", "Options", members=[
            Text("ACTIVE_GPS", "GPS", "GPS Simulator")], save=True))
        self.control = add(NumberVector("WEATHER_CONTROL", "Control", timeout=0, members=[
            Number("Weather", "Weather", "%.f", 0, 1, 1, 0),
            Number("Temperature", "Temperature", "%.2f", -50, 70, 10, 15),
            Number("Wind", "Wind", "%.2f", 0, 100, 5, 0),
            Number("Gust", "Gust", "%.2f", 0, 50, 5, 0),
            Number("Precip", "Precip", "%.f", 0, 100, 10, 0)], save=True))
        self._timer: asyncio.Task | None = None
        if self.gps:
            self.snoop(self.gps, "GEOGRAPHIC_COORD", self._snooped_location)

    @property
    def gps(self) -> str:
        return self.active_devices.value("ACTIVE_GPS")

    # ------------------------------------------------------------------------------ updates
    def update_properties(self) -> None:
        super().update_properties()
        if self.connected:
            self.info("Weather update is in progress...")
            # After the saved configuration has been applied (the connection handler does that
            # next), so that the first readings are the configured ones.
            self.after(0, self.update_weather)

    def update_weather(self) -> None:
        """Take the simulated readings, judge them, and report; then wait for the next update."""
        for name, *_, control in PARAMETERS:
            self.parameters[name].value = self.control.value(control)
        if self.judge():
            self.status.send()
        self.parameters.send(state=OK)
        self._schedule()

    def judge(self) -> bool:
        """Set each critical parameter's light and the overall state (the worst, unless overridden);
        True if a light changed."""
        changed = False
        worst = IDLE
        for light in self.status:
            number = self.parameters[light.name]
            state = parameter_state(number.value, number.min, number.max,
                                    self.ranges[light.name].value("PERC_WARN"))
            if state is not light.value:
                changed = True
                if state is BUSY:
                    self.warning(f"Warning: Parameter {number.label} value ({number.value:g}) is in the warning zone!")
                elif state is ALERT:
                    self.warning(f"Caution: Parameter {number.label} value ({number.value:g}) is in the danger zone!")
            light.value = state
            worst = max(worst, state, key=_SEVERITY.__getitem__)
        self.status.state = OK if self.override.is_on("OVERRIDE") else worst
        return changed

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        seconds = self.update_period.value("PERIOD")
        if seconds > 0 and self.connected:
            self._timer = self.after(seconds, self.update_weather)

    async def disconnect(self) -> None:
        self._timer = None  # cancelled with the device's other connected tasks

    # ----------------------------------------------------------------------------- handlers
    @handles("WEATHER_UPDATE")
    def _on_update_period(self, vector: NumberVector, values: dict) -> None:
        vector.apply(values)
        vector.send(state=OK)
        if vector.value("PERIOD") == 0:
            self.info("Periodic updates are disabled.")
        self._schedule()

    @handles("WEATHER_REFRESH")
    def _on_refresh(self, vector: SwitchVector, values: dict) -> None:
        vector.select(None)
        vector.send(state=OK)
        self.update_weather()

    @handles("WEATHER_OVERRIDE")
    def _on_override(self, vector: SwitchVector, values: dict) -> None:
        vector.apply(values)
        if vector.is_on("OVERRIDE"):
            self.warning("Weather override is enabled. Observatory is not safe. Turn off override as soon as possible.")
            vector.send(state=BUSY)
        else:
            self.info("Weather override is disabled")
            vector.send(state=IDLE)
        self.judge()
        self.status.send()

    @handles(*(name for name, *_ in PARAMETERS))
    def _on_range(self, vector: NumberVector, values: dict) -> None:
        vector.apply(values)
        number = self.parameters[vector.name]
        number.min, number.max = vector.value("MIN_OK"), vector.value("MAX_OK")
        if vector.name in self.status and self.judge():
            self.status.send()
        vector.send(state=OK)

    @handles("WEATHER_CONTROL")
    def _on_control(self, vector: NumberVector, values: dict) -> None:
        vector.apply(values)
        vector.send(state=OK)
        self.info("Values are updated and should be active on the next weather update.")

    @handles("GEOGRAPHIC_COORD")
    def _on_location(self, vector: NumberVector, values: dict) -> None:
        vector.send(state=OK, **values)  # a partial update keeps the other members

    @handles("ACTIVE_DEVICES")
    def _on_active_devices(self, vector: TextVector, values: dict) -> None:
        old = self.gps
        vector.apply(values)
        vector.send(state=OK)
        if self.gps != old:
            self.stop_snooping(old, "GEOGRAPHIC_COORD")
            if self.gps:  # an empty name would ask for every device's properties
                self.snoop(self.gps, "GEOGRAPHIC_COORD", self._snooped_location)

    def _snooped_location(self, element: Any) -> None:
        """Adopt the GPS's site once it has a fix (state Ok), while connected."""
        if not self.connected or not isinstance(element, (DefVector, SetVector)) or element.state is not OK:
            return
        values = {m.name: float(m.value) for m in element.members if m.name in self.location}
        if element.device == self.gps and values:
            self.location.send(state=OK, **values)


def main() -> None:
    run(WeatherSimulator)


if __name__ == "__main__":
    main()
