"""Telescope Simulator (indi.simulators.telescope) as a client sees it, under our indiserver and
Debian's, against the reference recorded from Debian's C++ indi_simulator_telescope 1.9.9.

Every test starts its own server with the simulator (by full path: never Debian's C++ one) and a
HOME of its own, connects the device, and waits for the updates a user would watch, with deadlines:
a slew's Busy updates and its Ok at the target, the RA drifting with the sky, a park, a refusal.
Expected times come from the simulator's own rates (6 degrees per second per axis for a goto).
"""

from __future__ import annotations

import calendar
import json
import math
import re
import subprocess
import time
from pathlib import Path

import pytest

from helpers import have_reference, our_simulator
from indi.protocol import DefVector, Message, SetVector, parse
from indi.simulators import astro
from indi.simulators.telescope import GOTO_RATE, SIDEREAL

SCOPE = "Telescope Simulator"
REFERENCE = json.loads((Path(__file__).parent / "reference" / "indi_simulator_telescope.json").read_text())
SIDEREAL_FACTOR = 1.00273790935   # sidereal time runs this much faster than UTC
LATITUDE, LONGITUDE = 50.0, 10.0
BOTH = pytest.mark.parametrize("kind", ["ours", "reference"])
START = 30.0   # generous: Python drivers start slowly on a busy machine


def slew_seconds(degrees: float, poll: float = 0.25) -> float:
    """How long the simulator takes to move an axis by ``degrees``: full speed, then the last step
    (GOTO_RATE * poll) at a fifth of it, as the reference does; plus one poll for the report."""
    fast_step = GOTO_RATE * poll
    return max(0.0, degrees - fast_step) / GOTO_RATE + min(degrees, fast_step) / (GOTO_RATE / 5) + poll


def hours_apart(a: float, b: float) -> float:
    return abs((a - b + 12.0) % 24.0 - 12.0)


class Scope:
    """A client of one server, watching the Telescope Simulator: every update it reads is kept."""

    def __init__(self, server) -> None:
        self.server = server
        self.peer = server.connect()
        self.messages: list[str] = []
        self.since = 0          # messages from here on answer the last command
        self.latest: dict[str, tuple[str, dict]] = {}

    # ---- sending
    def send(self, kind: str, name: str, **members) -> None:
        tag = {"Number": "oneNumber", "Switch": "oneSwitch", "Text": "oneText"}[kind]
        body = "".join(f'<{tag} name="{member}">{value}</{tag}>' for member, value in members.items())
        self.since = len(self.messages)
        self.peer.send(f'<new{kind}Vector device="{SCOPE}" name="{name}">{body}</new{kind}Vector>\n')

    def number(self, name: str, **members) -> None:
        self.send("Number", name, **members)

    def switch(self, name: str, *on: str, off: tuple[str, ...] = ()) -> None:
        self.send("Switch", name, **dict.fromkeys(on, "On"), **dict.fromkeys(off, "Off"))

    def text(self, name: str, **members) -> None:
        self.send("Text", name, **members)

    # ---- receiving
    def read(self, deadline: float):
        """The next element from the simulator (kept in messages/latest), or None at the deadline."""
        while True:
            try:
                frame = self.peer.next(timeout=max(0.001, deadline - time.monotonic()))
            except AssertionError:
                return None
            element = parse(frame)
            if isinstance(element, Message) and element.device == SCOPE:
                self.messages.append(element.message or "")
            elif isinstance(element, (DefVector, SetVector)) and element.device == SCOPE:
                self.latest[element.name] = (str(element.state), {m.name: m.value for m in element.members})
            return element

    def wait(self, name: str, condition=lambda state, values: True, timeout: float = 15.0, what: str = ""):
        """The first update of property ``name`` (from now on) for which condition(state, values) holds:
        (state, values, monotonic time of arrival)."""
        deadline = time.monotonic() + timeout
        while True:
            element = self.read(deadline)
            if element is None:
                raise AssertionError(f"no {name} update {what} within {timeout} s; last: {self.latest.get(name)}; "
                                     f"messages: {self.messages[-5:]}")
            if isinstance(element, (DefVector, SetVector)) and element.device == SCOPE and element.name == name:
                state, values = self.latest[name]
                if condition(state, values):
                    return state, values, time.monotonic()

    def current(self, name: str, condition=lambda state, values: True, timeout: float = 15.0):
        """(state, values) of property ``name`` as last read if condition holds, else of the next update
        for which it does."""
        if name in self.latest and condition(*self.latest[name]):
            return self.latest[name]
        state, values, _ = self.wait(name, condition, timeout)
        return state, values

    def wait_message(self, pattern: str, timeout: float = 10.0) -> str:
        """A message from the simulator since the last command sent, matching pattern."""
        deadline = time.monotonic() + timeout
        seen = self.since
        while True:
            for text in self.messages[seen:]:
                if re.search(pattern, text):
                    return text
            seen = len(self.messages)
            if self.read(deadline) is None:
                raise AssertionError(f"no message matching {pattern!r} within {timeout} s: {self.messages[-8:]}")

    # ---- common steps
    def connect(self) -> None:
        self.peer.send('<getProperties version="1.7"/>\n')
        self.wait("CONNECTION", timeout=START)
        self.switch("CONNECTION", "CONNECT")
        self.wait("CONNECTION", lambda s, v: s == "Ok" and v["CONNECT"] == "On", what="connected")
        self.wait("EQUATORIAL_EOD_COORD", what="after connecting")

    def set_location(self, latitude: float = LATITUDE, longitude: float = LONGITUDE) -> None:
        self.number("GEOGRAPHIC_COORD", LAT=latitude, LONG=longitude, ELEV=100)
        self.wait("GEOGRAPHIC_COORD", lambda s, v: s == "Ok" and v["LAT"] == latitude and v["LONG"] == longitude)

    def sync(self, ra: float, dec: float) -> None:
        self.switch("ON_COORD_SET", "SYNC")
        self.number("EQUATORIAL_EOD_COORD", RA=ra, DEC=dec)
        self.wait("EQUATORIAL_EOD_COORD", lambda s, v: s == "Ok" and hours_apart(v["RA"], ra) < 1e-6
                  and abs(v["DEC"] - dec) < 1e-6, timeout=5, what="synced")
        self.switch("ON_COORD_SET", "TRACK")
        self.wait("ON_COORD_SET", lambda s, v: v["TRACK"] == "On")

    def track(self, on: bool) -> None:
        self.switch("TELESCOPE_TRACK_STATE", "TRACK_ON" if on else "TRACK_OFF")
        self.wait("TELESCOPE_TRACK_STATE", lambda s, v: v["TRACK_ON"] == ("On" if on else "Off"))

    def lst(self) -> float:
        return astro.lst_hours(time.time(), self.latest["GEOGRAPHIC_COORD"][1]["LONG"])


def start(servers, home_env, kind: str, *others: str, args: tuple[str, ...] = ()) -> Scope:
    """A server of this kind with our Telescope Simulator (and other drivers), and a connected Scope."""
    drivers = (our_simulator("telescope"), *others)
    server = (servers.ours(*args, *drivers, env=home_env) if kind == "ours"
              else servers.reference(*drivers, env=home_env))
    scope = Scope(server)
    scope.connect()
    return scope


# ------------------------------------------------------------------------------ definitions

def describe(element: DefVector) -> dict:
    """A definition in the reference recording's terms."""
    members = []
    for member in element.members:
        entry = {"name": member.name, "label": member.label}
        if element.type == "Number":
            entry.update(format=member.format, min=member.min, max=member.max, step=member.step)
        members.append(entry)
    return {"type": str(element.type), "label": element.label, "group": element.group,
            "perm": None if element.type == "Light" else str(element.perm),
            "rule": str(element.rule) if element.rule else None, "timeout": float(element.timeout or 0),
            "members": members}


def reference_description(prop: dict) -> dict:
    members = []
    for member in prop["members"]:
        entry = {"name": member["name"], "label": member["label"]}
        if prop["type"] == "Number":
            entry.update(format=member["format"], min=float(member["min"]), max=float(member["max"]),
                         step=float(member["step"]))
        members.append(entry)
    return {"type": prop["type"], "label": prop["label"], "group": prop["group"], "perm": prop["perm"],
            "rule": prop["rule"], "timeout": float(prop["timeout"]), "members": members}


def definitions(scope: Scope, wanted: set[str]) -> dict[str, DefVector]:
    """Ask for every property and collect the definitions until all of ``wanted`` have come."""
    scope.peer.send(f'<getProperties version="1.7" device="{SCOPE}"/>\n')
    found: dict[str, DefVector] = {}
    deadline = time.monotonic() + 15
    while not wanted <= found.keys():
        element = scope.read(deadline)
        if element is None:
            break
        if isinstance(element, DefVector) and element.device == SCOPE:
            found[element.name] = element
    assert wanted <= found.keys(), f"never defined: {sorted(wanted - found.keys())}"
    return found


# Properties whose values depend on time, place or what happened since connecting.
CHANGING = {"EQUATORIAL_EOD_COORD", "TARGET_EOD_COORD", "TIME_UTC", "TELESCOPE_PARK", "TELESCOPE_PARK_POSITION",
            "TELESCOPE_PIER_SIDE", "MOUNT_AXES", "CONNECTION"}


def values_of(element: DefVector) -> dict[str, str]:
    out = {}
    for member in element.members:
        value = member.value
        out[member.name] = f"{value:.9g}" if isinstance(value, float) else str(value)
    return out


@BOTH
def test_definitions_match_the_reference(servers, home_env, kind):
    """Names, types, labels, groups, permissions, rules, timeouts, members, number formats and
    ranges, before and after connecting; and the initial values of what does not change by itself."""
    drivers = (our_simulator("telescope"),)
    server = servers.ours("-n", *drivers, env=home_env) if kind == "ours" else servers.reference(*drivers,
                                                                                                  env=home_env)
    scope = Scope(server)
    scope.peer.send('<getProperties version="1.7"/>\n')
    scope.wait("CONNECTION", timeout=START)
    for phase in ("before_connect", "after_connect"):
        expected = {prop["name"]: prop for prop in REFERENCE[phase]}
        found = definitions(scope, set(expected))
        if phase == "before_connect":
            assert set(found) == set(expected), "defined before connecting, beyond the reference's"
        for name, prop in expected.items():
            assert describe(found[name]) == reference_description(prop), name
            if name not in CHANGING:
                assert str(found[name].state) == prop["state"], name
                reference_values = {m["name"]: f"{float(m['value']):.9g}" if prop["type"] == "Number"
                                    else m["value"] for m in prop["members"]}
                assert values_of(found[name]) == reference_values, name
        if phase == "before_connect":
            scope.switch("CONNECTION", "CONNECT")
            scope.wait("CONNECTION", lambda s, v: s == "Ok")
    assert found["DRIVER_INFO"].members[3].value == "5"   # TELESCOPE | GUIDER


# ------------------------------------------------------------------------------------ slews

@BOTH
def test_slew_moves_at_the_goto_rate_with_busy_updates_then_ok_at_the_target(servers, home_env, kind):
    scope = start(servers, home_env, kind)
    scope.set_location()
    ra = (scope.lst() - 2.0) % 24.0        # two hours west of the meridian: no pier flip on the way
    scope.sync(ra, 40.0)
    scope.number("EQUATORIAL_EOD_COORD", RA=ra, DEC=60.0)
    sent = time.monotonic()
    scope.wait("TARGET_EOD_COORD", lambda s, v: hours_apart(v["RA"], ra) < 1e-6 and v["DEC"] == 60.0)
    busy = []
    while True:
        state, values, arrived = scope.wait("EQUATORIAL_EOD_COORD", timeout=10)
        if state != "Busy":
            break
        busy.append(values["DEC"])
    elapsed = arrived - sent
    assert state == "Ok", f"a finished slew tracks: {state}"
    assert abs(values["DEC"] - 60.0) < 1 / 3600 and hours_apart(values["RA"], ra) < 2 / 54000
    expected = slew_seconds(20.0)
    assert 0.85 * 20.0 / GOTO_RATE <= elapsed <= expected + 4.0, f"{elapsed:.2f} s for 20 degrees ({expected:.2f})"
    assert len(busy) >= 8, f"periodic Busy updates on the way: {busy}"
    assert busy == sorted(busy) and 40.0 <= busy[0] and busy[-1] < 60.0, busy
    assert scope.latest["TELESCOPE_TRACK_STATE"][1]["TRACK_ON"] == "On", "tracking at the target"
    scope.wait_message("slew is complete")


@BOTH
def test_sync_sets_the_coordinates_at_once(servers, home_env, kind):
    scope = start(servers, home_env, kind)
    scope.switch("ON_COORD_SET", "SYNC")
    scope.wait("ON_COORD_SET", lambda s, v: v["SYNC"] == "On")
    sent = time.monotonic()
    scope.number("EQUATORIAL_EOD_COORD", RA=3.25, DEC=-12.5)
    state, values, arrived = scope.wait("EQUATORIAL_EOD_COORD", lambda s, v: s != "Idle", timeout=5)
    assert (state, values["RA"], values["DEC"]) == ("Ok", 3.25, -12.5)
    assert arrived - sent < 2.0
    scope.wait_message("Sync is successful")


@BOTH
def test_abort_stops_a_slew(servers, home_env, kind):
    scope = start(servers, home_env, kind)
    scope.set_location()
    ra = (scope.lst() - 2.0) % 24.0
    scope.sync(ra, 0.0)
    scope.number("EQUATORIAL_EOD_COORD", RA=ra, DEC=60.0)
    for _ in range(3):
        scope.wait("EQUATORIAL_EOD_COORD", lambda s, v: s == "Busy", what="slewing")
    scope.switch("TELESCOPE_ABORT_MOTION", "ABORT")
    state, values, _ = scope.wait("EQUATORIAL_EOD_COORD", lambda s, v: s != "Busy", what="stopped")
    scope.wait("TELESCOPE_ABORT_MOTION", lambda s, v: s == "Ok")
    scope.wait_message("aborted")
    stopped_at = values["DEC"]
    assert 0.0 < stopped_at < 50.0, stopped_at
    # Tracking was off before the slew and is again: the RA drifts, so updates keep coming.
    for _ in range(4):
        state, values, _ = scope.wait("EQUATORIAL_EOD_COORD", timeout=5)
        assert state == "Idle" and abs(values["DEC"] - stopped_at) < 1e-6, (state, values)


@BOTH
def test_target_below_the_horizon_is_refused(servers, home_env, kind):
    scope = start(servers, home_env, kind)
    scope.set_location()
    ra = scope.lst()                       # on the meridian at -60: 20 degrees below the horizon from 50 N
    scope.number("EQUATORIAL_EOD_COORD", RA=ra, DEC=-60.0)
    state, values, _ = scope.wait("EQUATORIAL_EOD_COORD", lambda s, v: s != "Idle", timeout=5)
    assert state == "Alert" and values["DEC"] == 90.0, "refused, and the mount did not move"
    assert "horizon" in scope.wait_message(r"ERROR.*horizon")


# --------------------------------------------------------------------------------- tracking

@BOTH
def test_with_tracking_off_the_ra_drifts_with_the_sky(servers, home_env, kind):
    scope = start(servers, home_env, kind)
    scope.set_location()
    scope.sync((scope.lst() - 2.0) % 24.0, 40.0)
    _, first, t0 = scope.wait("EQUATORIAL_EOD_COORD", lambda s, v: s == "Idle")
    t1 = t0
    while t1 - t0 < 3.0:
        _, last, t1 = scope.wait("EQUATORIAL_EOD_COORD", timeout=5)
    drift = ((last["RA"] - first["RA"]) % 24.0) * 3600.0          # seconds of RA
    expected = (t1 - t0) * SIDEREAL_FACTOR
    assert abs(drift - expected) < 0.3, f"RA moved {drift:.3f} s in {t1 - t0:.3f} s"
    assert last["DEC"] == first["DEC"]


@BOTH
def test_tracking_holds_the_ra_while_a_guide_pulse_moves_dec_by_rate_times_duration(servers, home_env, kind):
    scope = start(servers, home_env, kind)
    scope.set_location()
    scope.track(True)
    held = {"RA": (scope.lst() - 2.0) % 24.0, "DEC": 30.0}     # pier east: north is up the DEC axis
    scope.sync(held["RA"], held["DEC"])
    scope.number("GUIDE_RATE", GUIDE_RATE_WE=0.5, GUIDE_RATE_NS=0.8)
    scope.wait("GUIDE_RATE", lambda s, v: v["GUIDE_RATE_NS"] == 0.8)
    scope.number("TELESCOPE_TIMED_GUIDE_NS", TIMED_GUIDE_N=2000, TIMED_GUIDE_S=0)
    _, _, began = scope.wait("TELESCOPE_TIMED_GUIDE_NS", lambda s, v: s == "Busy", timeout=5)
    _, _, ended = scope.wait("TELESCOPE_TIMED_GUIDE_NS", lambda s, v: s != "Busy", timeout=10)
    assert 1.8 <= ended - began <= 3.5, f"a 2000 ms pulse took {ended - began:.2f} s"
    state, now = scope.latest["EQUATORIAL_EOD_COORD"]
    expected = 0.8 * SIDEREAL * 2.0 / 3600.0
    assert state == "Ok"
    assert abs((now["DEC"] - held["DEC"]) - expected) < 0.1 * expected, (now["DEC"] - held["DEC"]) * 3600
    assert hours_apart(now["RA"], held["RA"]) < 1e-5, "tracking holds the RA"


@BOTH
def test_custom_track_rates_turn_both_axes(servers, home_env, kind):
    scope = start(servers, home_env, kind)
    scope.set_location()
    scope.switch("TELESCOPE_TRACK_MODE", "TRACK_CUSTOM")
    scope.wait("TELESCOPE_TRACK_MODE", lambda s, v: s == "Ok" and v["TRACK_CUSTOM"] == "On")
    scope.number("TELESCOPE_TRACK_RATE", TRACK_RATE_RA=SIDEREAL, TRACK_RATE_DE=360.0)   # DEC: 0.1 degree/s
    scope.wait("TELESCOPE_TRACK_RATE", lambda s, v: s == "Ok" and v["TRACK_RATE_DE"] == 360.0)
    scope.track(True)
    held = (scope.lst() - 2.0) % 24.0
    scope.sync(held, 20.0)
    _, first, t0 = scope.wait("EQUATORIAL_EOD_COORD", lambda s, v: v["DEC"] > 20.0, timeout=5)
    t1 = t0
    while t1 - t0 < 1.5:
        _, last, t1 = scope.wait("EQUATORIAL_EOD_COORD", timeout=5)
    rate = (last["DEC"] - first["DEC"]) / (t1 - t0)
    assert 0.08 < rate < 0.12, f"{rate:.4f} degrees per second at 360 arcseconds per second"
    assert hours_apart(last["RA"], held) < 1e-4, "the sidereal RA rate holds the RA"


@BOTH
def test_manual_motion_moves_at_the_selected_rate_until_released(servers, home_env, kind):
    scope = start(servers, home_env, kind)
    scope.set_location()
    scope.sync((scope.lst() - 2.0) % 24.0, 20.0)                 # pier east: north is up the DEC axis
    scope.switch("TELESCOPE_SLEW_RATE", "2x")                     # "Centering": 0.5 degrees per second
    scope.wait("TELESCOPE_SLEW_RATE", lambda s, v: v["2x"] == "On")
    scope.switch("TELESCOPE_MOTION_NS", "MOTION_NORTH")
    scope.wait("TELESCOPE_MOTION_NS", lambda s, v: s == "Busy")
    _, first, t0 = scope.wait("EQUATORIAL_EOD_COORD", lambda s, v: v["DEC"] > 20.0)
    _, last, t1 = scope.wait("EQUATORIAL_EOD_COORD", lambda s, v: v["DEC"] > first["DEC"] + 1.0, timeout=10)
    rate = (last["DEC"] - first["DEC"]) / (t1 - t0)
    assert 0.35 < rate < 0.7, f"{rate:.3f} degrees per second at 'Centering'"
    scope.switch("TELESCOPE_MOTION_NS", off=("MOTION_NORTH",))
    scope.wait("TELESCOPE_MOTION_NS", lambda s, v: s == "Idle" and v["MOTION_NORTH"] == "Off")
    target = scope.latest["TARGET_EOD_COORD"][1]                  # where it stopped, for domes to follow
    _, stopped, _ = scope.wait("EQUATORIAL_EOD_COORD", timeout=5)
    for _ in range(3):   # with tracking off the RA drifts and updates come, the DEC stays
        _, values, _ = scope.wait("EQUATORIAL_EOD_COORD", timeout=5)
        assert values["DEC"] == stopped["DEC"]
    assert abs(target["DEC"] - stopped["DEC"]) < 0.01


@BOTH
def test_pier_side_follows_the_hour_angle(servers, home_env, kind):
    scope = start(servers, home_env, kind)
    scope.set_location()
    scope.sync((scope.lst() + 2.0) % 24.0, 20.0)                 # east of the meridian
    scope.wait("TELESCOPE_PIER_SIDE", lambda s, v: v["PIER_WEST"] == "On", timeout=5, what="west (pointing east)")
    scope.sync((scope.lst() - 2.0) % 24.0, 20.0)                 # west of the meridian
    scope.wait("TELESCOPE_PIER_SIDE", lambda s, v: v["PIER_EAST"] == "On", timeout=5, what="east (pointing west)")


# ---------------------------------------------------------------------------------- parking

@BOTH
def test_park_goes_to_the_park_position_stops_tracking_and_refuses_slews_until_unparked(servers, home_env, kind):
    scope = start(servers, home_env, kind)
    scope.set_location()
    scope.sync((scope.lst() + 5.0) % 24.0, 5.0)                  # near the park position
    scope.track(True)
    scope.number("TELESCOPE_PARK_POSITION", PARK_HA=-5.5, PARK_DEC=3.0)
    scope.wait("TELESCOPE_PARK_POSITION", lambda s, v: s == "Ok" and v["PARK_HA"] == -5.5)
    scope.switch("TELESCOPE_PARK", "PARK")
    scope.wait("TELESCOPE_PARK", lambda s, v: s == "Busy" and v["PARK"] == "On")
    scope.wait("TELESCOPE_PARK", lambda s, v: s == "Ok" and v["PARK"] == "On", timeout=15, what="parked")
    scope.wait_message("Parked")
    state, values, _ = scope.wait("EQUATORIAL_EOD_COORD", timeout=5)
    assert state == "Idle"
    assert hours_apart(scope.lst() - values["RA"], -5.5) < 0.002 and abs(values["DEC"] - 3.0) < 1e-4
    assert scope.latest["TELESCOPE_TRACK_STATE"][1]["TRACK_OFF"] == "On"
    park_file = Path(home_env["HOME"]) / ".indi" / "ParkData.xml"
    assert "<parkstatus>true</parkstatus>" in park_file.read_text()

    scope.number("EQUATORIAL_EOD_COORD", RA=(scope.lst() + 1.0) % 24.0, DEC=30.0)
    scope.wait_message("unpark")
    assert scope.latest["EQUATORIAL_EOD_COORD"][0] == "Idle"

    scope.switch("TELESCOPE_PARK", "UNPARK")
    scope.wait("TELESCOPE_PARK", lambda s, v: s == "Ok" and v["UNPARK"] == "On")
    scope.wait_message("Mount is unparked")
    assert "<parkstatus>false</parkstatus>" in park_file.read_text()
    scope.number("EQUATORIAL_EOD_COORD", RA=(scope.lst() + 1.0) % 24.0, DEC=30.0)
    scope.wait("EQUATORIAL_EOD_COORD", lambda s, v: s == "Busy", timeout=5, what="slewing once unparked")


@BOTH
def test_park_options_set_write_and_purge_the_park_position(servers, home_env, kind):
    scope = start(servers, home_env, kind)
    scope.set_location()
    scope.sync((scope.lst() - 3.0) % 24.0, 25.0)
    scope.switch("TELESCOPE_PARK_OPTION", "PARK_CURRENT")
    _, here, _ = scope.wait("TELESCOPE_PARK_POSITION", timeout=5)
    assert abs(here["PARK_HA"] - 3.0) < 0.01 and abs(here["PARK_DEC"] - 25.0) < 1e-4, here
    scope.wait("TELESCOPE_PARK_OPTION", lambda s, v: s == "Ok" and v["PARK_CURRENT"] == "Off")
    scope.switch("TELESCOPE_PARK_OPTION", "PARK_DEFAULT")
    scope.wait("TELESCOPE_PARK_POSITION", lambda s, v: v["PARK_HA"] == -6.0 and v["PARK_DEC"] == 0.0, timeout=5)
    scope.switch("TELESCOPE_PARK_OPTION", "PARK_WRITE_DATA")
    scope.wait_message("Saved Park Status/Position")
    park_file = Path(home_env["HOME"]) / ".indi" / "ParkData.xml"
    assert "<axis1position>-6.000000</axis1position>" in park_file.read_text()
    scope.switch("TELESCOPE_PARK_OPTION", "PARK_PURGE_DATA")
    scope.wait_message("Park data purged")
    assert SCOPE not in park_file.read_text()


# ------------------------------------------------------------------------------ site and time

@BOTH
def test_sidereal_time_follows_location_and_time_utc(servers, home_env, kind):
    """The mount starts at the pole with the hour angle at 6 h: RA = LST - 6 h, whatever the site and time."""
    scope = start(servers, home_env, kind)
    state, now = scope.current("TIME_UTC", lambda s, v: s == "Ok")
    assert abs(time.time() - astro_seconds(now["UTC"])) < 3, now

    def pointing_matches(longitude: float, clock) -> None:
        scope.wait("EQUATORIAL_EOD_COORD", lambda s, v: hours_apart(
            v["RA"], astro.lst_hours(clock(), longitude) - 6.0) < 5e-4, timeout=5, what=f"at longitude {longitude}")

    scope.set_location(40.0, 100.0)
    pointing_matches(100.0, time.time)
    scope.text("TIME_UTC", UTC="2030-06-21T03:00:00", OFFSET="2")
    scope.wait("TIME_UTC", lambda s, v: s == "Ok" and v["UTC"] == "2030-06-21T03:00:00")
    set_at = time.monotonic()
    pointing_matches(100.0, lambda: astro_seconds("2030-06-21T03:00:00") + time.monotonic() - set_at)
    scope.set_location(40.0, 250.0)
    pointing_matches(250.0, lambda: astro_seconds("2030-06-21T03:00:00") + time.monotonic() - set_at)


def astro_seconds(utc: str) -> float:
    return calendar.timegm(time.strptime(utc, "%Y-%m-%dT%H:%M:%S"))


# --------------------------------------------------------------------------------- snooping

@pytest.mark.peers
@BOTH
def test_adopts_the_location_of_the_gps_it_snoops(servers, home_env, kind):
    if not have_reference():
        pytest.skip("needs Debian's indi_simulator_gps")
    scope = start(servers, home_env, kind, "/usr/bin/indi_simulator_gps")
    scope.peer.send('<newSwitchVector device="GPS Simulator" name="CONNECTION">'
                    '<oneSwitch name="CONNECT">On</oneSwitch></newSwitchVector>\n')

    def from_gps(state, values):   # Debian's GPS Simulator says 51 N, 357.7 E, 72 m
        return state == "Ok" and values["LAT"] == 51.0 and abs(values["LONG"] - 357.7) < 1e-6

    scope.wait("GEOGRAPHIC_COORD", from_gps, timeout=20, what="from the GPS")
    scope.wait_message("Observer location updated")
    scope.set_location(10.0, 20.0)
    # Naming the GPS again (ACTIVE_DEVICES) snoops it again, and its location comes back.
    scope.text("ACTIVE_DEVICES", ACTIVE_GPS="GPS Simulator", ACTIVE_DOME="Dome Simulator")
    scope.wait("ACTIVE_DEVICES", lambda s, v: s == "Ok")
    scope.wait("GEOGRAPHIC_COORD", from_gps, timeout=20, what="from the GPS again")


@pytest.mark.peers
@BOTH
def test_dome_policy_locks_slews_while_the_snooped_dome_is_closed(servers, home_env, kind):
    if not have_reference():
        pytest.skip("needs Debian's indi_simulator_dome")
    scope = start(servers, home_env, kind, "/usr/bin/indi_simulator_dome")
    scope.peer.send('<newSwitchVector device="Dome Simulator" name="CONNECTION">'
                    '<oneSwitch name="CONNECT">On</oneSwitch></newSwitchVector>\n')
    scope.set_location()
    scope.switch("DOME_POLICY", "DOME_LOCKS")
    scope.wait("DOME_POLICY", lambda s, v: v["DOME_LOCKS"] == "On")
    scope.wait_message("Lock is set to: locked", timeout=20)      # its shutter starts closed
    target = dict(RA=(scope.lst() - 1.0) % 24.0, DEC=30.0)
    scope.number("EQUATORIAL_EOD_COORD", **target)
    scope.wait("EQUATORIAL_EOD_COORD", lambda s, v: s == "Alert", timeout=5, what="refused")
    scope.wait_message("Dome Policy")
    scope.switch("DOME_POLICY", "DOME_IGNORED")
    scope.wait_message("Lock is set to: unlock")
    scope.number("EQUATORIAL_EOD_COORD", **target)
    scope.wait("EQUATORIAL_EOD_COORD", lambda s, v: s == "Busy", timeout=5, what="slewing")


# ------------------------------------------------------------------------------ configuration

@BOTH
def test_config_save_and_load_restore_saved_settings(servers, home_env, kind):
    scope = start(servers, home_env, kind)
    scope.switch("TELESCOPE_SLEW_RATE", "1x")
    scope.number("TELESCOPE_INFO", TELESCOPE_APERTURE=200, TELESCOPE_FOCAL_LENGTH=1000, GUIDER_APERTURE=50,
                 GUIDER_FOCAL_LENGTH=200)
    scope.wait("TELESCOPE_INFO", lambda s, v: v["TELESCOPE_APERTURE"] == 200)
    scope.switch("CONFIG_PROCESS", "CONFIG_SAVE")
    scope.wait("CONFIG_PROCESS", lambda s, v: s == "Ok")
    config = Path(home_env["HOME"]) / ".indi" / f"{SCOPE}_config.xml"
    assert "TELESCOPE_SLEW_RATE" in config.read_text()

    scope.switch("TELESCOPE_SLEW_RATE", "4x")
    scope.wait("TELESCOPE_SLEW_RATE", lambda s, v: v["4x"] == "On")
    scope.number("TELESCOPE_INFO", TELESCOPE_APERTURE=300)
    scope.wait("TELESCOPE_INFO", lambda s, v: v["TELESCOPE_APERTURE"] == 300)
    scope.switch("CONFIG_PROCESS", "CONFIG_LOAD")
    scope.wait("CONFIG_PROCESS", lambda s, v: s == "Ok")
    assert scope.latest["TELESCOPE_SLEW_RATE"][1] == {"1x": "On", "2x": "Off", "3x": "Off", "4x": "Off"}
    assert scope.latest["TELESCOPE_INFO"][1]["TELESCOPE_APERTURE"] == 200


@pytest.mark.peers
@BOTH
def test_sexagesimal_coordinates_from_indi_setprop(servers, home_env, kind):
    if not have_reference():
        pytest.skip("needs Debian's indi_setprop")
    scope = start(servers, home_env, kind)
    scope.switch("ON_COORD_SET", "SYNC")
    scope.wait("ON_COORD_SET", lambda s, v: v["SYNC"] == "On")
    result = subprocess.run(["/usr/bin/indi_setprop", "-p", str(scope.server.port), "-n",
                             f"{SCOPE}.EQUATORIAL_EOD_COORD.RA;DEC=10:30:00;-45:30:36"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    scope.wait("EQUATORIAL_EOD_COORD", lambda s, v: s == "Ok" and math.isclose(v["RA"], 10.5)
               and math.isclose(v["DEC"], -45.51), timeout=5, what="at 10:30:00 -45:30:36")
