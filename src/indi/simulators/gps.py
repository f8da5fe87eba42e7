"""GPS Simulator: the time from the system clock and a fixed site, as a GPS fix would give them.

Mounts, domes and weather stations snoop its GEOGRAPHIC_COORD and TIME_UTC (the telescope
simulator's ACTIVE_GPS is "GPS Simulator" by default). The fix is taken on connecting, on each
GPS_REFRESH, and every GPS_REFRESH_PERIOD seconds when that is not 0. Unlike libindi's GPS
drivers it never sets the host's clock from the fix: the fix comes from that clock.
"""

from __future__ import annotations

import asyncio
import time

from ..driver import (
    IDLE,
    OK,
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
from ..protocol import timestamp

# Where libindi's simulator says it is (Greenwich, near enough), metres above sea level.
LATITUDE, LONGITUDE, ELEVATION = 51.0, 357.7, 72.0


class GPSSimulator(Device):
    default_name = "GPS Simulator"
    interface = Interface.GPS

    def init_properties(self) -> None:
        # libindi's GPS simulator offers neither DEBUG nor POLLING_PERIOD.
        for name in ("DEBUG", "POLLING_PERIOD"):
            self.remove(name)

        add = lambda vector: self.add(vector, connected=True)  # noqa: E731
        self.location = add(NumberVector("GEOGRAPHIC_COORD", "Location", perm="ro", members=[
            Number("LAT", "Lat (dd:mm:ss)", "%010.6m", -90, 90, 0, 0),
            Number("LONG", "Lon (dd:mm:ss)", "%010.6m", 0, 360, 0, 0),
            Number("ELEV", "Elevation (m)", "%g", -200, 10000, 0, 0)]))
        self.time_utc = add(TextVector("TIME_UTC", "UTC", perm="ro", members=[
            Text("UTC", "UTC Time"), Text("OFFSET", "UTC Offset")]))
        self.refresh = add(SwitchVector("GPS_REFRESH", "Refresh", timeout=0, rule="AtMostOne", members=[
            Switch("REFRESH", "GPS")]))
        self.period = add(NumberVector("GPS_REFRESH_PERIOD", "Refresh", timeout=0, members=[
            Number("PERIOD", "Period (s)", "%.f", 0, 3600, 60, 0)], save=True))
        self._timer: asyncio.Task | None = None

    def fix(self) -> None:
        """Take a fix: the system clock's UTC and local offset, and the simulated site."""
        now = time.time()
        offset = time.localtime(now).tm_gmtoff / 3600.0
        self.time_utc.apply({"UTC": timestamp(now), "OFFSET": f"{offset:4.2f}"})
        self.location.apply({"LAT": LATITUDE, "LONG": LONGITUDE, "ELEV": ELEVATION})
        self.time_utc.state = self.location.state = OK

    async def connect(self) -> bool:
        # The first fix is in the definitions that connecting sends.
        self.fix()
        self.refresh.state = OK
        self._timer = None
        return True

    def update_properties(self) -> None:
        super().update_properties()
        self._schedule()  # a period set before disconnecting still holds

    def update(self) -> None:
        self.fix()
        self.location.send()
        self.time_utc.send()

    def _schedule(self) -> None:
        """(Re)start the periodic fixes for the current period (0: none)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        seconds = self.period.value("PERIOD")
        if seconds > 0 and self.connected:
            self._timer = self.every(seconds, self.update)

    @handles("GPS_REFRESH")
    def _on_refresh(self, vector: SwitchVector, values: dict) -> None:
        vector.select(None)
        vector.send(state=OK)
        self.update()

    @handles("GPS_REFRESH_PERIOD")
    def _on_period(self, vector: NumberVector, values: dict) -> None:
        before = vector.value("PERIOD")
        vector.apply(values)
        vector.send(state=OK)
        if vector.value("PERIOD") == 0:
            self.info("GPS Update Timer disabled.")
        elif before == 0:
            self.info("GPS Update Timer enabled.")
        self._schedule()

    async def disconnect(self) -> None:
        self._timer = None  # cancelled with the device's other connected tasks
        self.refresh.state = IDLE


def main() -> None:
    run(GPSSimulator)


if __name__ == "__main__":
    main()
