"""The Dome Simulator: what it defines, shutter and azimuth moves, parking, aborting, and slaving
to Debian's C++ telescope simulator in the same server.

Every wait has a deadline; the dome turns at 10 degrees a second and its shutter takes 3 s, so
moves are kept short.
"""

from __future__ import annotations

import math
import time
import xml.etree.ElementTree as ET

import pytest
from sim_support import CPP_TELESCOPE, TELESCOPE, Client, check_against_reference, start

from indi.simulators import astro
from indi.simulators.dome import dome_azimuth

DOME = "Dome Simulator"
ABS = "ABS_DOME_POSITION"
POSITION = "DOME_ABSOLUTE_POSITION"


def signed_turn(start: float, end: float) -> float:
    turn = (end - start) % 360.0
    return turn - 360.0 if turn > 180.0 else turn


def on_short_arc(start: float, target: float, position: float) -> bool:
    """Whether position lies on the short way round from start to target."""
    total, done = signed_turn(start, target), signed_turn(start, position)
    return done * total >= -1e-6 and abs(done) <= abs(total) + 1e-6


@pytest.fixture
def dome(servers, home_env, request):
    which = getattr(request, "param", "ours")
    server = start(servers, which, "dome", env=home_env)
    client = Client(server)
    client.connect_device(DOME)
    client.wait_defined(DOME, ABS)
    yield client
    client.close()


def turn_to(client: Client, target: float, relative: float | None = None) -> list[tuple[str, float]]:
    """Move (absolute, or relative if given) and wait until the dome reports Ok at the target;
    returns the (state, azimuth) updates of the move."""
    mark = client.mark(DOME, ABS)
    if relative is None:
        client.numbers(DOME, ABS, DOME_ABSOLUTE_POSITION=target)
    else:
        client.numbers(DOME, "REL_DOME_POSITION", DOME_RELATIVE_POSITION=relative)

    def arrived():
        updates = client.updates_since(DOME, ABS, mark)
        return updates and updates[-1][0] == "Ok" and abs(signed_turn(updates[-1][1][POSITION], target)) < 0.01
    client.wait(arrived, what=f"dome at {target}")
    return [(str(state), values[POSITION]) for state, values in client.updates_since(DOME, ABS, mark)]


def shutter_done(client: Client, mark: int, member: str) -> bool:
    updates = client.updates_since(DOME, "DOME_SHUTTER", mark)
    return bool(updates) and updates[-1][0] == "Ok" and updates[-1][1][member] == "On" and \
        any(state == "Busy" for state, _ in updates)


def test_slit_azimuth_geometry():
    """Where the optical axis leaves a 3 m dome: the mount's azimuth when it stands at the centre,
    further east for a mount east of the centre, and for a tube east of the pier."""
    assert math.isclose(dome_azimuth(123, 30, 2, 50, 3), 123)
    assert math.isclose(dome_azimuth(0, 0, 0, 50, 3, east=1), math.degrees(math.atan2(1, math.sqrt(8))))
    east, west = (dome_azimuth(180, 40, 0, 50, 3, ota_offset=0.5, ota_side=side) for side in (1, -1))
    assert east < 180 < west and math.isclose(180 - east, west - 180)
    assert dome_azimuth(0, 0, 0, 50, 3, east=5) is None  # a mount outside the dome


def test_definitions_match_the_reference(servers, home_env):
    check_against_reference(servers, home_env, "dome", DOME)


@pytest.mark.parametrize("dome", ["ours", "reference"], indirect=True)
def test_shutter_and_azimuth_moves_the_short_way(dome):
    client = dome
    assert client.value(DOME, ABS, POSITION) == 0 and client.state(DOME, ABS) == "Ok"
    assert client.value(DOME, "DOME_SHUTTER", "SHUTTER_CLOSE") == "On"

    # The shutter opens while the dome turns: each takes time (Busy), then reports Ok.
    shutter = client.mark(DOME, "DOME_SHUTTER")
    client.switches(DOME, "DOME_SHUTTER", "SHUTTER_OPEN")
    moves = turn_to(client, 350)
    assert moves[0][0] == "Busy" and all(on_short_arc(0, 350, az) for _, az in moves), moves

    moves = turn_to(client, 10)
    assert all(on_short_arc(350, 10, az) for _, az in moves), moves
    assert any(state == "Busy" and (az > 350 or az < 10) for state, az in moves), f"never between: {moves}"
    client.wait(lambda: client.value(DOME, "DOME_MOTION", "DOME_CW") == "Off"
                and client.state(DOME, "DOME_MOTION") == "Ok", what="motion Ok")

    moves = turn_to(client, 350, relative=-20)
    assert all(on_short_arc(10, 350, az) for _, az in moves), moves
    client.wait(lambda: client.state(DOME, "REL_DOME_POSITION") == "Ok", what="relative move Ok")

    client.wait(lambda: shutter_done(client, shutter, "SHUTTER_OPEN"), what="shutter open")
    shutter = client.mark(DOME, "DOME_SHUTTER")
    client.switches(DOME, "DOME_SHUTTER", "SHUTTER_CLOSE")
    client.wait(lambda: shutter_done(client, shutter, "SHUTTER_CLOSE"), what="shutter closed")


def test_park_closes_the_shutter_and_unpark_opens_it(dome, home_env):
    client = dome
    client.numbers(DOME, "DOME_PARK_POSITION", PARK_AZ=30)
    client.wait(lambda: client.state(DOME, "DOME_PARK_POSITION") == "Ok"
                and client.value(DOME, "DOME_PARK_POSITION", "PARK_AZ") == 30, what="park position 30")
    assert client.value(DOME, "DOME_PARK", "UNPARK") == "On"
    shutter = client.mark(DOME, "DOME_SHUTTER")
    client.switches(DOME, "DOME_SHUTTER", "SHUTTER_OPEN")
    client.wait(lambda: shutter_done(client, shutter, "SHUTTER_OPEN"), what="shutter open")

    park, shutter = client.mark(DOME, "DOME_PARK"), client.mark(DOME, "DOME_SHUTTER")
    client.switches(DOME, "DOME_PARK", "PARK")
    client.wait(lambda: client.state(DOME, "DOME_PARK") == "Ok" and client.value(DOME, "DOME_PARK", "PARK") == "On"
                and len(client.updates_since(DOME, "DOME_PARK", park)) > 1, what="parked")
    assert client.updates_since(DOME, "DOME_PARK", park)[0][0] == "Busy"
    assert shutter_done(client, shutter, "SHUTTER_CLOSE"), "parking did not close the shutter"
    assert client.value(DOME, ABS, POSITION) == 30

    # Parked, it refuses to turn; and the park state is saved where libindi keeps it.
    mark = client.mark(DOME, ABS)
    client.numbers(DOME, ABS, DOME_ABSOLUTE_POSITION=100)
    client.wait(lambda: client.updates_since(DOME, ABS, mark), what="refusal")
    assert client.state(DOME, ABS) == "Alert" and client.value(DOME, ABS, POSITION) == 30
    saved = ET.parse(f"{home_env['HOME']}/.indi/ParkData.xml").getroot().find("device[@name='Dome Simulator']")
    assert saved is not None and saved.findtext("parkstatus").strip() == "true"
    assert float(saved.findtext("parkposition/axis1position")) == 30

    park, shutter = client.mark(DOME, "DOME_PARK"), client.mark(DOME, "DOME_SHUTTER")
    client.switches(DOME, "DOME_PARK", "UNPARK")
    client.wait(lambda: client.state(DOME, "DOME_PARK") == "Ok" and client.value(DOME, "DOME_PARK", "UNPARK") == "On"
                and len(client.updates_since(DOME, "DOME_PARK", park)) > 1, what="unparked")
    assert shutter_done(client, shutter, "SHUTTER_OPEN"), "unparking did not open the shutter"
    turn_to(client, 40)


def test_abort_stops_the_dome_and_the_shutter(dome):
    client = dome
    shutter = client.mark(DOME, "DOME_SHUTTER")
    client.switches(DOME, "DOME_SHUTTER", "SHUTTER_OPEN")
    client.switches(DOME, "DOME_MOTION", "DOME_CW")
    client.wait(lambda: client.state(DOME, "DOME_MOTION") == "Busy" and client.value(DOME, "DOME_MOTION", "DOME_CW")
                == "On", what="turning clockwise")
    client.wait(lambda: 5 < client.value(DOME, ABS, POSITION) < 180, what="turned a little")
    client.wait(lambda: client.state(DOME, "DOME_SHUTTER") == "Busy", what="shutter moving")

    client.switches(DOME, "DOME_ABORT_MOTION", "ABORT")
    client.wait(lambda: client.state(DOME, "DOME_ABORT_MOTION") == "Ok", what="abort done")
    client.wait(lambda: client.state(DOME, ABS) == "Idle" and client.state(DOME, "DOME_MOTION") == "Idle",
                what="rotation stopped")
    assert client.state(DOME, "DOME_SHUTTER") == "Alert"  # stopped half open: its state is unknown
    assert not shutter_done(client, shutter, "SHUTTER_OPEN")
    stopped = client.value(DOME, ABS, POSITION)

    # Stopped for good: a relative move from there ends exactly 10 degrees further on.
    moves = turn_to(client, (stopped + 10) % 360, relative=10)
    assert all(on_short_arc(stopped, stopped + 10, az) for _, az in moves), moves


def mount_azimuth(client: Client, latitude: float, longitude: float) -> tuple[float, float]:
    """(altitude, azimuth) of where the telescope says it points, now."""
    ra = client.value(TELESCOPE, "EQUATORIAL_EOD_COORD", "RA")
    dec = client.value(TELESCOPE, "EQUATORIAL_EOD_COORD", "DEC")
    return astro.equatorial_to_horizontal(ra, dec, latitude, astro.lst_hours(time.time(), longitude))


@pytest.mark.parametrize("which", ["ours", "reference"])
def test_slaving_follows_the_cpp_telescope(servers, home_env, which):
    server = start(servers, which, "dome", CPP_TELESCOPE, env=home_env)
    client = Client(server)
    try:
        client.connect_device(TELESCOPE)
        client.connect_device(DOME)
        client.wait_defined(TELESCOPE, "EQUATORIAL_EOD_COORD")
        client.wait_defined(DOME, ABS)
        latitude, longitude = 50.0, 10.0
        client.numbers(TELESCOPE, "GEOGRAPHIC_COORD", LAT=latitude, LONG=longitude, ELEV=100)
        client.wait(lambda: client.value(TELESCOPE, "GEOGRAPHIC_COORD", "LAT") == latitude, what="mount site")
        client.numbers(DOME, "DOME_PARAMS", AUTOSYNC_THRESHOLD=1)
        client.switches(DOME, "DOME_AUTOSYNC", "DOME_AUTOSYNC_ENABLE")
        client.wait(lambda: client.value(DOME, "DOME_AUTOSYNC", "DOME_AUTOSYNC_ENABLE") == "On"
                    and client.value(DOME, "DOME_PARAMS", "AUTOSYNC_THRESHOLD") == 1, what="slaving on")

        # Sync the mount to where altitude 45, azimuth 70 is now: the dome has to turn ~70 degrees.
        ra, dec = astro.horizontal_to_equatorial(45, 70, latitude, astro.lst_hours(time.time(), longitude))
        client.switches(TELESCOPE, "ON_COORD_SET", "SYNC")
        client.wait(lambda: client.value(TELESCOPE, "ON_COORD_SET", "SYNC") == "On", what="mount in sync mode")
        client.numbers(TELESCOPE, "EQUATORIAL_EOD_COORD", RA=ra, DEC=dec)
        client.wait(lambda: abs(client.value(TELESCOPE, "EQUATORIAL_EOD_COORD", "DEC") - dec) < 0.01,
                    what="mount synced")

        def following():
            azimuth = mount_azimuth(client, latitude, longitude)[1]
            dome_az = client.value(DOME, ABS, POSITION)
            return client.state(DOME, ABS) == "Ok" and abs(signed_turn(dome_az, azimuth)) <= 1.2 and dome_az > 30
        client.wait(following, what="dome at the mount's azimuth")
        alt, azimuth = mount_azimuth(client, latitude, longitude)
        assert abs(alt - 45) < 1 and abs(azimuth - 70) < 1, (alt, azimuth)
        assert math.isclose(client.value(DOME, ABS, POSITION), azimuth, abs_tol=1.2)
    finally:
        client.close()
