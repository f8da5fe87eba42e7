"""The Weather Simulator: what it defines, its status lights following the simulated readings
through the warning and alert zones of their ranges, periodic updates, the safety override, a
configuration saved and loaded again, and the site taken from the GPS simulator.
"""

from __future__ import annotations

import pytest
from sim_support import Client, check_against_reference, start

WEATHER = "Weather Simulator"
STATUS = "WEATHER_STATUS"


def test_definitions_match_the_reference(servers, home_env):
    check_against_reference(servers, home_env, "weather", WEATHER)


def connected(client: Client) -> None:
    client.connect_device(WEATHER)
    client.wait_defined(WEATHER, "WEATHER_CONTROL")
    client.wait(lambda: client.state(WEATHER, STATUS) == "Ok" and client.mark(WEATHER, "WEATHER_PARAMETERS") > 1,
                what="first weather update")


def refresh(client: Client, **readings: float) -> None:
    """Set the simulated readings and have them taken at once (WEATHER_REFRESH)."""
    client.numbers(WEATHER, "WEATHER_CONTROL", **readings)
    mark = client.mark(WEATHER, "WEATHER_PARAMETERS")
    client.switches(WEATHER, "WEATHER_REFRESH", "REFRESH")
    client.wait(lambda: client.updates_since(WEATHER, "WEATHER_PARAMETERS", mark), what="weather refreshed")


def light(client: Client, parameter: str) -> str:
    return str(client.value(WEATHER, STATUS, parameter))


@pytest.mark.parametrize("which", ["ours", "reference"])
def test_lights_follow_the_readings(servers, home_env, which):
    client = Client(start(servers, which, "weather", env=home_env))
    try:
        connected(client)
        assert {str(v) for v in client.prop(WEATHER, STATUS).values.values()} == {"Ok"}
        assert client.value(WEATHER, "WEATHER_PARAMETERS", "WEATHER_TEMPERATURE") == 15  # WEATHER_CONTROL's

        # The temperature's Ok range is -10..30 with 15% (6 degrees) of warning zone at each edge.
        refresh(client, Temperature=27)
        client.wait(lambda: light(client, "WEATHER_TEMPERATURE") == "Busy" and client.state(WEATHER, STATUS) == "Busy",
                    what="temperature warning")
        assert client.value(WEATHER, "WEATHER_PARAMETERS", "WEATHER_TEMPERATURE") == 27
        refresh(client, Temperature=40)
        client.wait(lambda: light(client, "WEATHER_TEMPERATURE") == "Alert" and client.state(WEATHER, STATUS)
                    == "Alert", what="temperature alert")

        # Overridden, the station says Ok whatever the weather, until the override ends.
        client.switches(WEATHER, "WEATHER_OVERRIDE", "OVERRIDE")
        client.wait(lambda: client.state(WEATHER, STATUS) == "Ok" and client.state(WEATHER, "WEATHER_OVERRIDE")
                    == "Busy", what="override on")
        assert light(client, "WEATHER_TEMPERATURE") == "Alert"
        client.switches(WEATHER, "WEATHER_OVERRIDE", off=("OVERRIDE",))
        client.wait(lambda: client.state(WEATHER, STATUS) == "Alert", what="override off")

        # A wider range makes 40 degrees fine again; rain is always an alert.
        client.numbers(WEATHER, "WEATHER_TEMPERATURE", MIN_OK=-10, MAX_OK=60)
        client.wait(lambda: light(client, "WEATHER_TEMPERATURE") == "Ok", what="new range")
        refresh(client, Precip=5)
        client.wait(lambda: light(client, "WEATHER_RAIN_HOUR") == "Alert", what="rain alert")
        refresh(client, Precip=0, Temperature=15)
        client.wait(lambda: client.state(WEATHER, STATUS) == "Ok" and light(client, "WEATHER_RAIN_HOUR") == "Ok"
                    and light(client, "WEATHER_TEMPERATURE") == "Ok", what="fair weather again")
    finally:
        client.close()


def test_periodic_updates(servers, home_env):
    client = Client(start(servers, "ours", "weather", env=home_env))
    try:
        connected(client)
        client.numbers(WEATHER, "WEATHER_UPDATE", PERIOD=1)
        client.wait(lambda: client.state(WEATHER, "WEATHER_UPDATE") == "Ok", what="period set")
        client.numbers(WEATHER, "WEATHER_CONTROL", Wind=18)  # no refresh: the next update takes it
        client.wait(lambda: client.value(WEATHER, "WEATHER_PARAMETERS", "WEATHER_WIND_SPEED") == 18
                    and light(client, "WEATHER_WIND_SPEED") == "Busy", timeout=10, what="periodic update")
    finally:
        client.close()


def test_configuration_saved_and_loaded(servers, home_env):
    server = start(servers, "ours", "weather", env=home_env)
    client = Client(server)
    try:
        connected(client)
        client.numbers(WEATHER, "WEATHER_TEMPERATURE", MIN_OK=-5, MAX_OK=25, PERC_WARN=10)
        client.numbers(WEATHER, "WEATHER_CONTROL", Temperature=23)
        client.numbers(WEATHER, "WEATHER_UPDATE", PERIOD=300)
        client.wait(lambda: client.value(WEATHER, "WEATHER_UPDATE", "PERIOD") == 300
                    and client.value(WEATHER, "WEATHER_CONTROL", "Temperature") == 23
                    and client.value(WEATHER, "WEATHER_TEMPERATURE", "MAX_OK") == 25, what="settings applied")
        client.switches(WEATHER, "CONFIG_PROCESS", "CONFIG_SAVE")
        client.wait(lambda: client.state(WEATHER, "CONFIG_PROCESS") == "Ok", what="configuration saved")
        saved = (home_env["HOME"] + f"/.indi/{WEATHER}_config.xml")
        assert "WEATHER_CONTROL" in open(saved).read()

        client.numbers(WEATHER, "WEATHER_CONTROL", Temperature=0)
        client.wait(lambda: client.value(WEATHER, "WEATHER_CONTROL", "Temperature") == 0, what="changed")
        client.switches(WEATHER, "CONFIG_PROCESS", "CONFIG_LOAD")
        client.wait(lambda: client.value(WEATHER, "WEATHER_CONTROL", "Temperature") == 23, what="loaded again")
    finally:
        client.close()
    server.stop()

    # A new driver loads it on connecting, and its first readings are judged by the saved range:
    # 23 degrees is in the warning zone of -5..25 (10%), not of the default -10..30 (15%).
    client = Client(start(servers, "ours", "weather", env=home_env))
    try:
        client.connect_device(WEATHER)
        client.wait(lambda: client.value(WEATHER, "WEATHER_UPDATE", "PERIOD") == 300
                    and client.value(WEATHER, "WEATHER_TEMPERATURE", "MIN_OK") == -5
                    and client.value(WEATHER, "WEATHER_PARAMETERS", "WEATHER_TEMPERATURE") == 23
                    and light(client, "WEATHER_TEMPERATURE") == "Busy", what="configuration in use")
    finally:
        client.close()


def test_site_from_the_gps_simulator(servers, home_env):
    client = Client(start(servers, "ours", "weather", "gps", env=home_env))
    try:
        connected(client)
        assert client.value(WEATHER, "ACTIVE_DEVICES", "ACTIVE_GPS") == "GPS Simulator"
        assert client.value(WEATHER, "GEOGRAPHIC_COORD", "LAT") == 0
        client.connect_device("GPS Simulator")
        client.wait(lambda: client.value(WEATHER, "GEOGRAPHIC_COORD", "LAT") == 51
                    and client.value(WEATHER, "GEOGRAPHIC_COORD", "LONG") == 357.7, what="site from the GPS")
    finally:
        client.close()
