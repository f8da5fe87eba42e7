"""The GPS Simulator: what it defines, its fix (site and time), refreshes on request and
periodically, and Debian's C++ telescope simulator adopting its site by snooping.

Only our GPS simulator is ever started here: libindi's sets the host's clock on a refresh.
"""

from __future__ import annotations

import time

import pytest
from sim_support import CPP_TELESCOPE, TELESCOPE, Client, check_against_reference, start

from indi.protocol import parse_timestamp

GPS = "GPS Simulator"


def utc_of(values: dict) -> float:
    return parse_timestamp(values["UTC"]).timestamp()


def test_definitions_match_the_reference(servers, home_env):
    check_against_reference(servers, home_env, "gps", GPS)


@pytest.mark.parametrize("which", ["ours", "reference"])
def test_fix_refresh_and_period(servers, home_env, which):
    client = Client(start(servers, which, "gps", env=home_env))
    try:
        client.connect_device(GPS)
        location = client.wait_defined(GPS, "GEOGRAPHIC_COORD")
        fix = client.wait_defined(GPS, "TIME_UTC")
        assert str(location.state) == "Ok" and str(location.definition.perm) == "ro"
        assert location.values == {"LAT": 51, "LONG": 357.7, "ELEV": 72}
        assert str(fix.state) == "Ok" and abs(utc_of(fix.values) - time.time()) < 5, fix.values
        assert fix.values["OFFSET"] == f"{time.localtime().tm_gmtoff / 3600:4.2f}"
        assert client.wait_defined(GPS, "GPS_REFRESH_PERIOD").values["PERIOD"] == 0

        # On request: the switch comes back Off and Ok, with a new fix.
        mark, first = client.mark(GPS, "TIME_UTC"), utc_of(fix.values)
        client.switches(GPS, "GPS_REFRESH", "REFRESH")
        client.wait(lambda: client.updates_since(GPS, "TIME_UTC", mark), what="fix on request")
        assert client.value(GPS, "GPS_REFRESH", "REFRESH") == "Off" and client.state(GPS, "GPS_REFRESH") == "Ok"
        assert utc_of(client.prop(GPS, "TIME_UTC").values) >= first

        # Every second: the clock moves on from fix to fix.
        client.numbers(GPS, "GPS_REFRESH_PERIOD", PERIOD=1)
        client.wait(lambda: client.state(GPS, "GPS_REFRESH_PERIOD") == "Ok", what="period set")
        mark = client.mark(GPS, "TIME_UTC")
        client.wait(lambda: len({utc_of(values) for _, values in client.updates_since(GPS, "TIME_UTC", mark)}) >= 2,
                    what="periodic fixes")
        times = [utc_of(values) for _, values in client.updates_since(GPS, "TIME_UTC", mark)]
        assert times == sorted(times) and abs(times[-1] - time.time()) < 5, times
        client.numbers(GPS, "GPS_REFRESH_PERIOD", PERIOD=0)
        client.wait(lambda: client.value(GPS, "GPS_REFRESH_PERIOD", "PERIOD") == 0, what="period off")
    finally:
        client.close()


@pytest.mark.parametrize("which", ["ours", "reference"])
def test_cpp_telescope_adopts_the_gps_site(servers, home_env, which):
    """The C++ telescope simulator's ACTIVE_GPS is "GPS Simulator": it snoops our GEOGRAPHIC_COORD."""
    client = Client(start(servers, which, "gps", CPP_TELESCOPE, env=home_env))
    try:
        client.connect_device(TELESCOPE)
        site = client.wait_defined(TELESCOPE, "GEOGRAPHIC_COORD")
        assert client.value(TELESCOPE, "ACTIVE_DEVICES", "ACTIVE_GPS") == GPS
        assert site.values["LAT"] == 0
        client.connect_device(GPS)
        client.wait(lambda: abs(client.value(TELESCOPE, "GEOGRAPHIC_COORD", "LAT") - 51) < 1e-6
                    and abs(client.value(TELESCOPE, "GEOGRAPHIC_COORD", "LONG") - 357.7) < 1e-6
                    and client.value(TELESCOPE, "GEOGRAPHIC_COORD", "ELEV") == 72, what="telescope at the GPS site")
    finally:
        client.close()
