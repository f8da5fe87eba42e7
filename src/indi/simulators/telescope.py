"""Telescope Simulator: a German equatorial mount under a turning sky, as Debian's C++
indi_simulator_telescope (libindi 1.9.9) behaves to a client.

The mount is two axes, as the reference models it: the primary turns about the pole (0 degrees
with the tube on the meridian), the secondary about the declination axis (90 degrees at the
pole). Pointing west of the meridian the tube is on the pier's east side (primary = hour angle,
secondary = declination); pointing east it has flipped to the west side (primary = hour angle +
180, secondary = 180 - declination). What a client reads follows from the axes and the local
sidereal time: RA = LST - HA. So with tracking off the RA drifts as the sky turns, and tracking
turns the primary axis at the tracking rate to hold it.

A goto moves both axes at 6 degrees per second and slows to a fifth of that for the last step,
as the reference does; manual motion and guide pulses move the axes themselves, so on the west
side of the pier "north" lowers the declination, as with the reference and real GEMs.
Parking state and position are kept in ~/.indi/ParkData.xml and telescope apertures and focal
lengths in ~/.indi/ScopeConfig.xml, in libindi's formats, so either simulator reads the other's.

Beyond the reference: targets below the horizon are refused, TIME_UTC sets the simulated clock
(the sidereal time follows it), and the dome policy also locks slews while the snooped dome is
parked or its shutter closed.
"""

from __future__ import annotations

import math
import os
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..driver import (
    ALERT,
    BUSY,
    IDLE,
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
from ..driver.config import ConfigError, read_config
from ..protocol import DefVector, SetVector, format_sexagesimal
from . import astro

SIDEREAL = 15.04106717867020393          # arcseconds per second, libindi's TRACKRATE_SIDEREAL
TRACK_RATES = {"TRACK_SIDEREAL": SIDEREAL, "TRACK_SOLAR": astro.SOLAR_RATE, "TRACK_LUNAR": astro.LUNAR_RATE}
GOTO_RATE = 6.0                          # degrees per second per axis, the reference's goto speed
MOTION_RATES = {"1x": SIDEREAL / 3600.0, "2x": 0.5, "3x": 2.5, "4x": 6.0}   # manual motion, degrees per second
DEFAULT_PARK = (-6.0, 0.0)               # HA hours, DEC: pointing east at the horizon, counterweights down
HORIZON = 0.0                            # lowest altitude (degrees) a goto may aim at
EPSILON_HOURS, EPSILON_DEGREES = 1e-6, 1e-5   # smaller changes of RA/DEC are not worth an update

IDLE_STATE, TRACKING, SLEWING, PARKING, PARKED = "idle", "tracking", "slewing", "parking", "parked"


def wrap(degrees: float) -> float:
    """Into (-180, 180], as the reference's angles."""
    return -((180.0 - degrees) % 360.0 - 180.0)


def hadec_to_axes(ha: float, dec: float, west: bool, south: bool) -> tuple[float, float]:
    """Axis angles for an hour angle and declination (degrees), the tube west of the pier or not."""
    primary, secondary = (ha + 180.0, 180.0 - dec) if west else (ha, dec)
    return wrap(primary), wrap(-secondary if south else secondary)


def axes_to_hadec(primary: float, secondary: float, south: bool) -> tuple[float, float]:
    """(hour angle, declination) in degrees for axis angles."""
    seco = -secondary if south else secondary
    if seco > 90.0:
        return wrap(primary + 180.0), 180.0 - seco
    if seco < -90.0:
        return wrap(primary + 180.0), -180.0 - seco
    return wrap(primary), seco


class Axis:
    """One mount axis (degrees): it tracks, slews towards a target, moves by hand and guides."""

    CENTRE = 90.0   # slews go the way that never passes the point opposite (counterweights up)

    def __init__(self, position: float) -> None:
        self.position = position
        self.target: float | None = None
        self.motion_rate = 0.0                 # degrees per second, manual motion
        self.guide_rate, self.guide_end = 0.0, 0.0

    def guiding(self, now: float) -> bool:
        return now < self.guide_end - 1e-3

    def advance(self, start: float, now: float, track_rate: float) -> None:
        dt = now - start
        self.position += track_rate * dt + self.motion_rate * dt
        self.position += self.guide_rate * max(0.0, min(now, self.guide_end) - start)
        if self.target is not None:
            delta = wrap(self.target - self.CENTRE) - wrap(self.position - self.CENTRE)
            fast = GOTO_RATE * dt
            if abs(delta) <= fast / 5:
                self.position, self.target = self.target, None
            else:
                self.position += math.copysign(fast if abs(delta) > fast else fast / 5, delta)
        self.position = wrap(self.position)

    def stop(self) -> None:
        self.target, self.motion_rate, self.guide_end = None, 0.0, 0.0


# ------------------------------------------------------------------------- libindi's side files

def _indi_dir() -> Path:
    return Path.home() / ".indi"


def _read_xml(path: Path) -> ET.Element | str:
    try:
        return ET.parse(path).getroot()
    except FileNotFoundError:
        return "No such file or directory"
    except (OSError, ET.ParseError) as exc:
        return str(exc)


def _write_xml(path: Path, root: ET.Element) -> None:
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(ET.tostring(root) + b"\n")
    os.replace(temporary, path)


def _device_element(root: ET.Element, device: str, create: bool) -> ET.Element | None:
    for element in root.findall("device"):
        if element.get("name") == device:
            return element
    return ET.SubElement(root, "device", name=device) if create else None


def _child(parent: ET.Element, path: str) -> ET.Element:
    for tag in path.split("/"):
        parent = parent.find(tag) if parent.find(tag) is not None else ET.SubElement(parent, tag)
    return parent


class TelescopeSimulator(Device):
    default_name = "Telescope Simulator"
    interface = Interface.TELESCOPE | Interface.GUIDER
    connection_modes = ("serial", "tcp")
    polling_ms = 250

    def init_properties(self) -> None:
        add = self.add
        self.active = add(TextVector("ACTIVE_DEVICES", "Snoop devices", "Options", members=[
            Text("ACTIVE_GPS", "GPS", "GPS Simulator"), Text("ACTIVE_DOME", "DOME", "Dome Simulator")], save=True))
        self.dome_policy = add(SwitchVector("DOME_POLICY", "Dome Policy", "Options", members=[
            Switch("DOME_IGNORED", "Dome ignored", ON), Switch("DOME_LOCKS", "Dome locks")], save=True))
        self.scope_info = add(NumberVector("TELESCOPE_INFO", "Scope Properties", "Options", state=OK, members=[
            Number("TELESCOPE_APERTURE", "Aperture (mm)", "%g", 10, 5000, 0, 120),
            Number("TELESCOPE_FOCAL_LENGTH", "Focal Length (mm)", "%g", 10, 10000, 0, 900),
            Number("GUIDER_APERTURE", "Guider Aperture (mm)", "%g", 10, 5000, 0, 120),
            Number("GUIDER_FOCAL_LENGTH", "Guider Focal Length (mm)", "%g", 10, 10000, 0, 900)], save=True))
        self.scope_name = add(TextVector("SCOPE_CONFIG_NAME", "Scope Name", "Options", state=OK, members=[
            Text("SCOPE_CONFIG_NAME", "Config Name")], save=True))
        # The reference's "Simulation" tab: the mount geometry, and a pointing model that only its
        # C++ code applies (here the values are accepted and saved).
        self.mount_type = add(SwitchVector("MOUNT_TYPE", "Mount Type", "Simulation", "wo", members=[
            Switch("ALTAZ", "AltAz"), Switch("EQ_FORK", "Fork (Eq)"), Switch("EQ_GEM", "GEM", ON)], save=True))
        self.sim_pier_side = add(SwitchVector("SIM_PIER_SIDE", "Sim Pier Side", "Simulation", "wo", members=[
            Switch("PS_OFF", "Off"), Switch("PS_ON", "On", ON)], save=True))
        add(NumberVector("MOUNT_MODEL", "Mount Model", "Simulation", "wo", timeout=0, members=[
            Number(name, label, "%g", -5, 5, 0.01, 0) for name, label in (
                ("MM_IH", "Ha Zero (IH)"), ("MM_ID", "Dec Zero (ID)"), ("MM_CH", "Cone (CH)"),
                ("MM_NP", "Ha/Dec (NP)"), ("MM_MA", "Pole Azm (MA)"), ("MM_ME", "Pole elev (ME)"))], save=True))
        self.mount_axes = add(NumberVector("MOUNT_AXES", "Mount Axes", "Simulation", "ro", timeout=0, members=[
            Number("PRIMARY", "Primary (Ha)", "%g", -180, 180, 0.01, 0),
            Number("SECONDARY", "Secondary (Dec)", "%g", -180, 180, 0.01, 0)]))
        self.flip_ha = add(NumberVector("FLIP_HA", "Flip Posn.", "Simulation", "wo", timeout=0, members=[
            Number("FLIP_HA", "Hour Angle (deg)", "%g", -20, 20, 0.1, 0)], save=True))

        def connected(vector: Any) -> Any:
            return self.add(vector, connected=True)

        self.coord_set = connected(SwitchVector("ON_COORD_SET", "On Set", members=[
            Switch("TRACK", "Track", ON), Switch("SLEW", "Slew"), Switch("SYNC", "Sync")]))
        self.eq = connected(NumberVector("EQUATORIAL_EOD_COORD", "Eq. Coordinates", members=[
            Number("RA", "RA (hh:mm:ss)", "%010.6m", 0, 24, 0, 0),
            Number("DEC", "DEC (dd:mm:ss)", "%010.6m", -90, 90, 0, 0)]))
        self.abort = connected(SwitchVector("TELESCOPE_ABORT_MOTION", "Abort Motion", rule="AtMostOne", members=[
            Switch("ABORT", "Abort")]))
        self.track_mode = connected(SwitchVector("TELESCOPE_TRACK_MODE", "Track Mode", timeout=0, members=[
            Switch("TRACK_SIDEREAL", "Sidereal", ON), Switch("TRACK_SOLAR", "Solar"), Switch("TRACK_LUNAR", "Lunar"),
            Switch("TRACK_CUSTOM", "Custom")], save=True))
        self.track_state = connected(SwitchVector("TELESCOPE_TRACK_STATE", "Tracking", timeout=0, members=[
            Switch("TRACK_ON", "On"), Switch("TRACK_OFF", "Off", ON)]))
        self.track_rate = connected(NumberVector("TELESCOPE_TRACK_RATE", "Track Rates", members=[
            Number("TRACK_RATE_RA", "RA (arcsecs/s)", "%.6f", -16384, 16384, 0.000001, SIDEREAL),
            Number("TRACK_RATE_DE", "DE (arcsecs/s)", "%.6f", -16384, 16384, 0.000001, 0)], save=True))
        self.motion_ns = connected(SwitchVector("TELESCOPE_MOTION_NS", "Motion N/S", "Motion Control",
                                                rule="AtMostOne", members=[
            Switch("MOTION_NORTH", "North"), Switch("MOTION_SOUTH", "South")]))
        self.motion_we = connected(SwitchVector("TELESCOPE_MOTION_WE", "Motion W/E", "Motion Control",
                                                rule="AtMostOne", members=[
            Switch("MOTION_WEST", "West"), Switch("MOTION_EAST", "East")]))
        self.reverse = connected(SwitchVector("TELESCOPE_REVERSE_MOTION", "Reverse", "Motion Control",
                                              rule="AnyOfMany", members=[
            Switch("REVERSE_NS", "North/South"), Switch("REVERSE_WE", "West/East")], save=True))
        # libindi 1.9.9 names the four rates 1x..4x and starts at the third.
        self.slew_rate = connected(SwitchVector("TELESCOPE_SLEW_RATE", "Slew Rate", "Motion Control", timeout=0,
                                                members=[Switch("1x", "Guide"), Switch("2x", "Centering"),
                                                         Switch("3x", "Find", ON), Switch("4x", "Max")], save=True))
        self.target = connected(NumberVector("TARGET_EOD_COORD", "Slew Target", "Motion Control", "ro", members=[
            Number("RA", "RA (hh:mm:ss)", "%010.6m", 0, 24, 0, 0),
            Number("DEC", "DEC (dd:mm:ss)", "%010.6m", -90, 90, 0, 0)]))
        self.time_utc = connected(TextVector("TIME_UTC", "UTC", "Site Management", members=[
            Text("UTC", "UTC Time"), Text("OFFSET", "UTC Offset")]))
        self.location = connected(NumberVector("GEOGRAPHIC_COORD", "Scope Location", "Site Management", members=[
            Number("LAT", "Lat (dd:mm:ss.s)", "%012.8m", -90, 90, 0, 0),
            Number("LONG", "Lon (dd:mm:ss.s)", "%012.8m", 0, 360, 0, 0),
            Number("ELEV", "Elevation (m)", "%g", -200, 10000, 0, 0)], save=True))
        self.park = connected(SwitchVector("TELESCOPE_PARK", "Parking", members=[
            Switch("PARK", "Park(ed)"), Switch("UNPARK", "UnPark(ed)")]))
        self.park_position = connected(NumberVector("TELESCOPE_PARK_POSITION", "Park Position", "Site Management",
                                                    members=[
            Number("PARK_HA", "HA (hh:mm:ss)", "%010.6m", -12, 12, 0, 0),
            Number("PARK_DEC", "DEC (dd:mm:ss)", "%010.6m", -90, 90, 0, 0)]))
        self.park_option = connected(SwitchVector("TELESCOPE_PARK_OPTION", "Park Options", "Site Management",
                                                  rule="AtMostOne", members=[
            Switch("PARK_CURRENT", "Current"), Switch("PARK_DEFAULT", "Default"),
            Switch("PARK_WRITE_DATA", "Write Data"), Switch("PARK_PURGE_DATA", "Purge Data")]))
        self.pier_side = connected(SwitchVector("TELESCOPE_PIER_SIDE", "Pier Side", perm="ro", rule="AtMostOne",
                                                members=[Switch("PIER_WEST", "West (pointing east)"),
                                                         Switch("PIER_EAST", "East (pointing west)")]))
        self.scope_configs = connected(SwitchVector("APPLY_SCOPE_CONFIG", "Scope Configs", "Options", state=OK,
                                                    members=[Switch(f"SCOPE_CONFIG{i}", f"Config #{i}", i == 1)
                                                             for i in range(1, 7)]))
        connected(SwitchVector("USEJOYSTICK", "Joystick", "Options", timeout=0, members=[
            Switch("ENABLE", "Enable"), Switch("DISABLE", "Disable", ON)], save=True))
        connected(TextVector("SNOOP_JOYSTICK", "Snoop Joystick", "Options", members=[
            Text("SNOOP_JOYSTICK_DEVICE", "Device", "Joystick")], save=True))
        self.guide_ns = connected(NumberVector("TELESCOPE_TIMED_GUIDE_NS", "Guide N/S", "Motion Control", members=[
            Number("TIMED_GUIDE_N", "North (ms)", "%.f", 0, 60000, 100, 0),
            Number("TIMED_GUIDE_S", "South (ms)", "%.f", 0, 60000, 100, 0)]))
        self.guide_we = connected(NumberVector("TELESCOPE_TIMED_GUIDE_WE", "Guide E/W", "Motion Control", members=[
            Number("TIMED_GUIDE_W", "West (ms)", "%.f", 0, 60000, 100, 0),
            Number("TIMED_GUIDE_E", "East (ms)", "%.f", 0, 60000, 100, 0)]))
        self.guide_rate = connected(NumberVector("GUIDE_RATE", "Guiding Rate", "Motion Control", timeout=0, members=[
            Number("GUIDE_RATE_WE", "W/E Rate", "%g", 0, 1, 0.1, 0.5),
            Number("GUIDE_RATE_NS", "N/S Rate", "%g", 0, 1, 0.1, 0.5)], save=True))

        # The mount starts at the pole, counterweights down, as the reference's does.
        self.primary, self.secondary = Axis(90.0), Axis(90.0)
        self.state = IDLE_STATE
        self.remembered = IDLE_STATE           # what an aborted slew goes back to
        self.goto: tuple[float, float, bool] | None = None   # sky target (RA, DEC) and pier side of a goto
        self.geometry = "EQ_GEM"
        self.clock_offset = 0.0                # simulated UTC minus the system clock, seconds
        self.last_advance = time.monotonic()
        self.guiding = {"NS": False, "WE": False}
        self.last_motion: dict[str, str | None] = {"NS": None, "WE": None}
        self.dome_parked = self.shutter_closed = self.locked = False
        self.park_file = _indi_dir() / "ParkData.xml"
        self.scope_file = _indi_dir() / "ScopeConfig.xml"
        self._early_loaded = False
        self._snoop_targets: list[tuple[str, str]] = []
        self._snoop_all()

    # --------------------------------------------------------------------------- sky and axes
    def now(self) -> float:
        """The simulated UTC (UNIX seconds): the system clock shifted by what TIME_UTC set."""
        return time.time() + self.clock_offset

    @property
    def latitude(self) -> float:
        return self.location.value("LAT")

    def lst(self) -> float:
        return astro.lst_hours(self.now(), self.location.value("LONG"))

    def pointing(self) -> tuple[float, float]:
        """(RA hours, DEC degrees) the axes point at now."""
        ha, dec = axes_to_hadec(self.primary.position, self.secondary.position, self.latitude < 0)
        return astro.wrap_hours(self.lst() - ha / 15.0), dec

    def axes_for(self, ha_hours: float, dec: float, west: bool | None = None) -> tuple[float, float, bool]:
        """Axis angles for a place in the sky; a GEM takes the side of the pier that keeps the tube
        above the counterweights (west of the pier when pointing east of FLIP_HA)."""
        ha = wrap(ha_hours * 15.0)
        if west is None:
            west = self.geometry == "EQ_GEM" and ha < self.flip_ha.value("FLIP_HA")
        primary, secondary = hadec_to_axes(ha, dec, west, self.latitude < 0)
        return primary, secondary, west

    def track_rates(self) -> tuple[float, float]:
        """Degrees per second of each axis while tracking."""
        mode = self.track_mode.on or "TRACK_SIDEREAL"
        if mode == "TRACK_CUSTOM":
            return self.track_rate.value("TRACK_RATE_RA") / 3600.0, self.track_rate.value("TRACK_RATE_DE") / 3600.0
        return TRACK_RATES[mode] / 3600.0, 0.0

    def advance(self) -> None:
        """Move the axes to where they are now."""
        now = time.monotonic()
        if self.goto is not None and self.state == SLEWING:
            # A goto aims at a place in the sky, which keeps moving while the mount gets there.
            ra, dec, west = self.goto
            self.primary.target, self.secondary.target, _ = self.axes_for(self.lst() - ra, dec, west)
        ra_rate, de_rate = self.track_rates() if self.state == TRACKING else (0.0, 0.0)
        self.primary.advance(self.last_advance, now, ra_rate)
        self.secondary.advance(self.last_advance, now, de_rate)
        self.last_advance = now

    async def poll(self) -> None:
        self.tick()

    def tick(self) -> None:
        """Advance the mount, finish what has finished, and tell the clients what changed."""
        self.advance()
        arrived = self.primary.target is None and self.secondary.target is None
        if self.state == SLEWING and arrived:
            self.goto = None
            self.state = TRACKING
            self.info("Telescope slew is complete. Tracking...")
        elif self.state == PARKING and arrived:
            self.set_parked(True)
            self.info("Telescope slew is complete. Parked")
        self.publish()   # first, so that a client told a pulse is done reads where it took the mount
        now = time.monotonic()
        for key, axis, vector in (("NS", self.secondary, self.guide_ns), ("WE", self.primary, self.guide_we)):
            if self.guiding[key] and not axis.guiding(now):
                self.guiding[key] = False
                vector.send(state=IDLE, **dict.fromkeys(vector.members, 0.0))

    def publish(self) -> None:
        """Send the pointing (when it changed), tracking display, pier side and axes."""
        want_on = self.state == TRACKING
        if self.track_state.is_on("TRACK_ON") != want_on:
            self.track_state.select("TRACK_ON" if want_on else "TRACK_OFF")
            self.track_state.send(state=BUSY if want_on else IDLE)
        ra, dec = self.pointing()
        state = {TRACKING: OK, SLEWING: BUSY, PARKING: BUSY}.get(self.state, IDLE)
        old_ra, old_dec = self.eq.value("RA"), self.eq.value("DEC")
        moved = abs((ra - old_ra + 12.0) % 24.0 - 12.0) > EPSILON_HOURS or abs(dec - old_dec) > EPSILON_DEGREES
        if moved or state != self.eq.state:
            self.eq.send(state=state, RA=ra, DEC=dec)
        if self.geometry == "EQ_GEM" and self.sim_pier_side.is_on("PS_ON"):
            side = "PIER_WEST" if abs(self.secondary.position) > 90.0 else "PIER_EAST"
            if self.pier_side.on != side or self.pier_side.state != OK:
                self.pier_side.select(side)
                self.pier_side.send(state=OK)
        axes = {"PRIMARY": self.primary.position, "SECONDARY": self.secondary.position}
        if any(abs(value - self.mount_axes.value(name)) > 1e-4 for name, value in axes.items()):
            self.mount_axes.send(**axes)

    # -------------------------------------------------------------------------------- connect
    def update_properties(self) -> None:
        if self.connected:
            self.last_advance = time.monotonic()
            ra, dec = self.pointing()
            self.eq.apply({"RA": ra, "DEC": dec})   # defined where the mount points, not at 0
        super().update_properties()
        if not self.connected:
            return
        self.init_park()
        now = datetime.fromtimestamp(self.now(), UTC)
        utc_offset = (time.localtime().tm_gmtoff or 0) / 3600.0
        self.time_utc.send(state=OK, UTC=now.strftime("%Y-%m-%dT%H:%M:%S"), OFFSET=f"{utc_offset:4.2f}".strip())
        self._snoop_all()   # ask the GPS and dome again: what they said before we connected was not applied

    async def disconnect(self) -> None:
        for axis in (self.primary, self.secondary):
            axis.stop()
        if self.state in (SLEWING, PARKING):
            self.state = self.remembered
        self.goto = None
        self.guiding = {"NS": False, "WE": False}
        self.last_motion = {"NS": None, "WE": None}
        for vector in (self.motion_ns, self.motion_we):
            vector.select(None)
            vector.state = IDLE

    def get_properties(self, name: str | None = None) -> None:
        if not self._early_loaded:
            # The reference applies these saved settings as soon as it is asked, not only on connect.
            self._early_loaded = True
            self.save_default_config()
            self._load_early_config()
        super().get_properties(name)

    def _load_early_config(self) -> None:
        try:
            saved = read_config(self.config_file)
        except ConfigError:
            return
        early = ("ACTIVE_DEVICES", "DOME_POLICY", "TELESCOPE_INFO", "SCOPE_CONFIG_NAME", "MOUNT_TYPE",
                 "SIM_PIER_SIDE", "MOUNT_MODEL", "FLIP_HA")
        for element in saved:
            vector = self.properties.get(element.name)
            if element.device != self.name or element.name not in early or vector is None:
                continue
            try:
                vector.apply(vector.check({m.name: m.value for m in element.members if m.name in vector}))
            except ValueError:
                continue
        self.geometry = self.mount_type.on if self.mount_type.on in ("EQ_GEM", "EQ_FORK") else "EQ_GEM"
        self.load_scope_config()
        self._snoop_all()

    async def handle_new(self, vector: Any, values: dict[str, Any]) -> None:
        if vector is self.location and "LONG" in values:
            # West-negative longitudes (as GPS receivers give them) mean the same place as 0..360 east.
            try:
                values = dict(values, LONG=float(values["LONG"]) % 360.0)
            except (TypeError, ValueError):
                pass
        await super().handle_new(vector, values)

    # --------------------------------------------------------------------------------- slewing
    @handles("ON_COORD_SET")
    def _on_coord_set(self, vector: SwitchVector, values: dict) -> None:
        vector.apply(values)
        vector.send(state=OK)

    @handles("EQUATORIAL_EOD_COORD")
    def _on_coordinates(self, vector: NumberVector, values: dict) -> None:
        ra = values.get("RA", vector.value("RA"))
        dec = values.get("DEC", vector.value("DEC"))
        if self.state == PARKED:
            self.warning("Please unpark the mount before issuing any motion/sync commands.")
            vector.send(state=IDLE)
        elif self.coord_set.is_on("SYNC"):
            self.sync(ra, dec)
        elif self.locked:
            self.error("Cannot slew while the dome is parked or its shutter closed. See: Dome Policy in options tab.")
            vector.send(state=ALERT)
        else:
            altitude, _ = astro.equatorial_to_horizontal(ra, dec, self.latitude, self.lst())
            if altitude < HORIZON:
                self.error(f"Target RA {format_sexagesimal(ra, 2, 3600)} DEC {format_sexagesimal(dec, 2, 3600)} is "
                           f"below the horizon (altitude {altitude:.1f} degrees): slew refused.")
                vector.send(state=ALERT)
            else:
                self.slew_to(ra, dec)

    def sync(self, ra: float, dec: float) -> None:
        self.advance()
        self.primary.position, self.secondary.position, _ = self.axes_for(self.lst() - ra, dec)
        self.info("Sync is successful.")
        self.eq.send(state=OK, RA=ra, DEC=dec)   # the next poll settles the state, as the reference's

    def slew_to(self, ra: float, dec: float) -> None:
        self.advance()
        if self.state not in (SLEWING, PARKING):
            self.remembered = self.state
        primary, secondary, west = self.axes_for(self.lst() - ra, dec)
        self.goto = (ra, dec, west)
        self.primary.target, self.secondary.target = primary, secondary
        self.state = SLEWING
        self.info(f"Slewing to RA: {format_sexagesimal(ra, 2, 3600)} - DEC: {format_sexagesimal(dec, 2, 3600)}")
        self.target.send(state=IDLE, RA=ra, DEC=dec)   # domes follow the target
        self.eq.send(state=BUSY)

    @handles("TELESCOPE_ABORT_MOTION")
    def _on_abort(self, vector: SwitchVector, values: dict) -> None:
        self.advance()
        for axis in (self.primary, self.secondary):
            axis.stop()
        self.goto = None
        vector.select(None)
        vector.state = OK
        if self.park.state is BUSY:
            self.park.select(None)
            self.park.send(state=ALERT)
            self.info("Parking aborted.")
        if self.eq.state is BUSY:
            ra, dec = self.pointing()
            self.eq.send(state=IDLE, RA=ra, DEC=dec)
            self.info("Slew/Track aborted.")
        for key, motion in (("NS", self.motion_ns), ("WE", self.motion_we)):
            self.last_motion[key] = None
            if motion.state is BUSY:
                motion.select(None)
                motion.send(state=IDLE)
        if self.state in (SLEWING, PARKING):
            self.state = self.remembered
        vector.send()
        self.tick()

    # -------------------------------------------------------------------------------- tracking
    @handles("TELESCOPE_TRACK_STATE")
    def _on_track_state(self, vector: SwitchVector, values: dict) -> None:
        before = vector.on
        vector.apply(values)
        if vector.on == before:
            vector.send()
            return
        if self.state == PARKED:
            self.warning("Telescope is Parked, Unpark before tracking.")
            vector.select(before)
            vector.send(state=IDLE)
            return
        self.advance()
        tracking = vector.is_on("TRACK_ON")
        if self.state in (SLEWING, PARKING):
            self.remembered = TRACKING if tracking else IDLE_STATE
        else:
            self.state = TRACKING if tracking else IDLE_STATE
        vector.send(state=BUSY if tracking else IDLE)
        self.publish()

    @handles("TELESCOPE_TRACK_MODE")
    def _on_track_mode(self, vector: SwitchVector, values: dict) -> None:
        self.advance()   # the old rate up to now, the new one from now on
        vector.apply(values)
        vector.send(state=OK)

    @handles("TELESCOPE_TRACK_RATE")
    def _on_track_rate(self, vector: NumberVector, values: dict) -> None:
        before = vector.values
        custom = self.track_mode.is_on("TRACK_CUSTOM")
        if self.state == TRACKING and custom and any(before[k] * v < 0 for k, v in values.items()):
            self.error("Cannot reverse tracking while tracking is engaged. Disengage tracking then try again.")
            vector.send(state=ALERT)
            return
        self.advance()
        vector.apply(values)
        if self.state == TRACKING and not custom:
            self.info("Custom tracking rates set. Tracking mode must be set to Custom for these rates to take effect.")
        vector.send(state=OK)

    # --------------------------------------------------------------------- motion and guiding
    @handles("TELESCOPE_SLEW_RATE")
    def _on_slew_rate(self, vector: SwitchVector, values: dict) -> None:
        vector.apply(values)
        vector.send(state=OK)

    @handles("TELESCOPE_MOTION_NS", "TELESCOPE_MOTION_WE")
    def _on_motion(self, vector: SwitchVector, values: dict) -> None:
        key = "NS" if vector is self.motion_ns else "WE"
        if self.state == PARKED:
            self.warning("Please unpark the mount before issuing any motion/sync commands.")
            vector.send(state=IDLE)
            return
        vector.apply(values)
        current, last = vector.on, self.last_motion[key]
        if vector.state is BUSY and current == last:
            return
        self.advance()
        axis = self.secondary if key == "NS" else self.primary
        if current is None or (last is not None and current != last):
            # Stopping (or asked to reverse, which stops first, as the reference does).
            axis.motion_rate = 0.0
            vector.select(None)
            vector.state = IDLE
            self.last_motion[key] = None
            ra, dec = self.pointing()
            self.target.send(RA=ra, DEC=dec)
        else:
            forward = current in ("MOTION_NORTH", "MOTION_WEST")
            if self.reverse.is_on("REVERSE_NS" if key == "NS" else "REVERSE_WE"):
                forward = not forward
            rate = MOTION_RATES[self.slew_rate.on or "3x"]
            axis.motion_rate = rate if forward else -rate
            vector.state = BUSY
            self.last_motion[key] = current
        vector.send()

    @handles("TELESCOPE_TIMED_GUIDE_NS", "TELESCOPE_TIMED_GUIDE_WE")
    def _on_guide(self, vector: NumberVector, values: dict) -> None:
        key = "NS" if vector is self.guide_ns else "WE"
        vector.apply(values)
        first, second = (vector[name] for name in vector.members)   # north/south or west/east
        if first.value:
            second.value = 0.0
        milliseconds, sign = (first.value, 1.0) if first.value else (second.value, -1.0)
        if milliseconds:
            self.advance()
            axis = self.secondary if key == "NS" else self.primary
            fraction = self.guide_rate.value("GUIDE_RATE_NS" if key == "NS" else "GUIDE_RATE_WE")
            axis.guide_rate = sign * fraction * SIDEREAL / 3600.0
            axis.guide_end = time.monotonic() + milliseconds / 1000.0
            self.guiding[key] = True
            vector.state = BUSY
            self.after(milliseconds / 1000.0, self.tick)   # report the end on time, not at the next poll
        vector.send()

    # --------------------------------------------------------------------------------- parking
    @handles("TELESCOPE_PARK")
    def _on_park(self, vector: SwitchVector, values: dict) -> None:
        if self.state == PARKING:   # a second request while parking stops it
            self.advance()
            for axis in (self.primary, self.secondary):
                axis.stop()
            self.state = self.remembered
            vector.select(None)
            vector.send(state=ALERT)
            self.info("Parking/Unparking aborted.")
            self.publish()
            return
        to_park = values.get("PARK") is ON
        if not to_park and self.state != PARKED:
            vector.select("UNPARK")
            self.info("Telescope already unparked.")
            vector.send(state=IDLE)
        elif not to_park and self.locked:
            vector.select("PARK")
            self.warning("Cannot unpark mount when dome is locking. See: Dome Policy in options tab.")
            vector.send(state=ALERT)
        elif to_park and self.state == PARKED:
            vector.select("PARK")
            self.info("Telescope already parked.")
            vector.send(state=IDLE)
        elif to_park:
            self.advance()
            self.remembered = self.state if self.state != SLEWING else self.remembered
            ha, dec = self.park_position.value("PARK_HA"), self.park_position.value("PARK_DEC")
            self.primary.target, self.secondary.target, _ = self.axes_for(ha, dec)
            self.goto = None
            self.state = PARKING   # tracking stops
            ra = astro.wrap_hours(self.lst() - ha)
            self.info(f"Parking to RA: {format_sexagesimal(ra, 2, 3600)} - DEC: {format_sexagesimal(dec, 2, 3600)}")
            vector.select("PARK")
            vector.send(state=BUSY)
            self.publish()
        else:
            self.set_parked(False)

    def set_parked(self, parked: bool) -> None:
        self.state = PARKED if parked else IDLE_STATE
        self.park.select("PARK" if parked else "UNPARK")
        self.park.send(state=OK)
        self.info("Mount is parked." if parked else "Mount is unparked.")
        self.write_park_data()
        self.publish()

    def init_park(self) -> None:
        """On connect: park state and position from ParkData.xml, as libindi's InitPark."""
        found = self.read_park_data()
        if isinstance(found, str):
            self.info(f"InitPark: No Park data in file {self.park_file}: {found}")
            self.park_position.send(PARK_HA=DEFAULT_PARK[0], PARK_DEC=DEFAULT_PARK[1])
            if self.state == PARKED:
                self.state = IDLE_STATE
            self.park.select("UNPARK")
            self.park.send(state=OK)
            self.info("Mount is unparked.")
            return
        parked, ha, dec = found
        self.park_position.send(PARK_HA=ha, PARK_DEC=dec)
        if parked:
            self.primary.position, self.secondary.position, _ = self.axes_for(ha, dec)
            self.state = PARKED
        elif self.state == PARKED:
            self.state = IDLE_STATE
        self.park.select("PARK" if parked else "UNPARK")
        self.park.send(state=OK)
        self.info("Mount is parked." if parked else "Mount is unparked.")

    @handles("TELESCOPE_PARK_POSITION")
    def _on_park_position(self, vector: NumberVector, values: dict) -> None:
        vector.apply(values)
        vector.send(state=OK)

    @handles("TELESCOPE_PARK_OPTION")
    def _on_park_option(self, vector: SwitchVector, values: dict) -> None:
        vector.apply(values)
        option = vector.on
        vector.select(None)
        if option is None:
            return
        if self.state not in (IDLE_STATE, TRACKING) or BUSY in (self.motion_ns.state, self.motion_we.state):
            self.info("Can not change park position while slewing or already parked...")
            vector.send(state=ALERT)
            return
        ok = True
        if option == "PARK_CURRENT":
            self.advance()
            ra, dec = self.pointing()
            self.park_position.send(PARK_HA=(self.lst() - ra + 12.0) % 24.0 - 12.0, PARK_DEC=dec)
        elif option == "PARK_DEFAULT":
            self.park_position.send(PARK_HA=DEFAULT_PARK[0], PARK_DEC=DEFAULT_PARK[1])
        elif option == "PARK_WRITE_DATA":
            ok = self.write_park_data()
            if ok:
                self.info("Saved Park Status/Position.")
            else:
                self.warning("Can not save Park Status/Position.")
        elif option == "PARK_PURGE_DATA":
            ok = self.purge_park_data()
            if ok:
                self.info("Park data purged.")
            else:
                self.warning("Can not purge Park Status/Position.")
        vector.send(state=OK if ok else ALERT)

    def read_park_data(self) -> tuple[bool, float, float] | str:
        root = _read_xml(self.park_file)
        if isinstance(root, str):
            return root
        device = _device_element(root, self.name, create=False)
        if device is None:
            return "No park data found for this device"
        try:
            status = (device.findtext("parkstatus") or "").strip()
            ha = float(device.findtext("parkposition/axis1position") or "nan")
            dec = float(device.findtext("parkposition/axis2position") or "nan")
        except ValueError:
            return "Park data invalid or missing."
        if math.isnan(ha) or math.isnan(dec):
            return "Park data invalid or missing."
        return status == "true", ha, dec

    def write_park_data(self) -> bool:
        root = _read_xml(self.park_file)
        if isinstance(root, str):
            root = ET.Element("parkdata")
        device = _device_element(root, self.name, create=True)
        assert device is not None
        _child(device, "parkstatus").text = "true" if self.state == PARKED else "false"
        _child(device, "parkposition/axis1position").text = f"{self.park_position.value('PARK_HA'):f}"
        _child(device, "parkposition/axis2position").text = f"{self.park_position.value('PARK_DEC'):f}"
        try:
            _write_xml(self.park_file, root)
        except OSError as exc:
            self.info(f"WriteParkData: can not write file {self.park_file}: {exc.strerror}")
            return False
        return True

    def purge_park_data(self) -> bool:
        root = _read_xml(self.park_file)
        device = None if isinstance(root, str) else _device_element(root, self.name, create=False)
        if device is None:
            return False
        root.remove(device)
        try:
            _write_xml(self.park_file, root)
        except OSError:
            return False
        return True

    # ------------------------------------------------------------------------- site and time
    @handles("GEOGRAPHIC_COORD")
    def _on_location(self, vector: NumberVector, values: dict) -> None:
        self.set_location(*(values.get(name, vector.value(name)) for name in ("LAT", "LONG", "ELEV")))

    def set_location(self, latitude: float, longitude: float, elevation: float) -> None:
        vector = self.location
        if (latitude, longitude, elevation) == (vector.value("LAT"), vector.value("LONG"), vector.value("ELEV")):
            vector.send(state=OK)
            return
        if latitude == 0 and longitude == 0:
            self.debug("Silently ignoring invalid latitude and longitude.")
            vector.send(state=IDLE)
            return
        self.advance()   # the axes stay where they are; the sky above them changes
        vector.send(state=OK, LAT=latitude, LONG=longitude, ELEV=elevation)
        self.save_property(vector)   # the reference saves a new location at once
        east = longitude - 360.0 if longitude > 180.0 else longitude
        lat_text = format_sexagesimal(latitude, 2, 36000).strip()
        self.info(f"Observer location updated: Latitude {lat_text} ({latitude:.2f}) "
                  f"Longitude {format_sexagesimal(east, 2, 36000).strip()} ({east:.2f})")
        self.publish()

    def save_property(self, vector: Any) -> None:
        """Save one property into the configuration file, keeping the rest of it."""
        self.save_config(names=(vector.name,))

    @handles("TIME_UTC")
    def _on_time(self, vector: TextVector, values: dict) -> None:
        self.set_time(values.get("UTC", vector.value("UTC")), values.get("OFFSET", vector.value("OFFSET")))

    def set_time(self, utc: str, offset: str) -> None:
        try:
            moment = datetime.fromisoformat(utc.strip().removesuffix("Z"))
        except ValueError:
            self.time_utc.send(f"Date/Time is invalid: {utc}.", state=ALERT)
            return
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        self.advance()
        shift = moment.timestamp() - time.time()
        # A time given to the second that agrees with the system clock is the system clock.
        self.clock_offset = 0.0 if abs(shift) < 1.0 else shift
        self.time_utc.send(state=OK, UTC=utc, OFFSET=offset)
        self.publish()

    # ------------------------------------------------------------------- snooping GPS and dome
    def _snoop_all(self) -> None:
        for device, name in self._snoop_targets:
            self.stop_snooping(device, name)
        gps, dome = self.active.value("ACTIVE_GPS"), self.active.value("ACTIVE_DOME")
        self._snoop_targets = [(gps, "GEOGRAPHIC_COORD"), (gps, "TIME_UTC"), (dome, "DOME_PARK"),
                               (dome, "DOME_SHUTTER")]
        for device, name in self._snoop_targets:
            if device:
                self.snoop(device, name, self._snooped)

    def _snooped(self, element: Any) -> None:
        if not isinstance(element, (DefVector, SetVector)) or element.state != OK:
            return   # only settled values count, as with the reference
        values = {member.name: member.value for member in element.members}
        if element.name == "GEOGRAPHIC_COORD" and self.connected and {"LAT", "LONG", "ELEV"} <= values.keys():
            self.set_location(float(values["LAT"]), float(values["LONG"]) % 360.0, float(values["ELEV"]))
        elif element.name == "TIME_UTC" and self.connected and "UTC" in values:
            self.set_time(str(values["UTC"]), str(values.get("OFFSET", "0")))
        elif element.name == "DOME_PARK" and "PARK" in values:
            self.dome_parked = values["PARK"] == ON
            self._update_lock()
        elif element.name == "DOME_SHUTTER" and "SHUTTER_CLOSE" in values:
            self.shutter_closed = values["SHUTTER_CLOSE"] == ON
            self._update_lock()

    def _update_lock(self) -> None:
        locked = self.dome_policy.is_on("DOME_LOCKS") and (self.dome_parked or self.shutter_closed)
        if locked != self.locked:
            self.locked = locked
            self.info(f"Dome status changed. Lock is set to: {'locked' if locked else 'unlock'}")

    @handles("ACTIVE_DEVICES")
    def _on_active_devices(self, vector: TextVector, values: dict) -> None:
        dome = vector.value("ACTIVE_DOME")
        vector.apply(values)
        vector.send(state=OK)
        if vector.value("ACTIVE_DOME") != dome:   # what the old dome said no longer holds
            self.dome_parked = self.shutter_closed = False
            self._update_lock()
        self._snoop_all()

    @handles("DOME_POLICY")
    def _on_dome_policy(self, vector: SwitchVector, values: dict) -> None:
        vector.apply(values)
        if vector.is_on("DOME_IGNORED"):
            self.info("Dome Policy set to: Dome ignored. Mount can park or unpark regardless of dome parking state.")
        else:
            self.warning("Dome Policy set to: Dome locks. This prevents the mount from unparking when dome is parked.")
        vector.send(state=OK)
        self._update_lock()
        self._snoop_all()

    # ---------------------------------------------------------------------- mount and optics
    @handles("MOUNT_TYPE")
    def _on_mount_type(self, vector: SwitchVector, values: dict) -> None:
        vector.apply(values)
        vector.send(state=OK)
        if vector.on == "ALTAZ":
            self.info("AltAz mount type not implemented yet")
        elif vector.on and vector.on != self.geometry:
            self.geometry = vector.on
            self.info(f"update mount and pier side: Pier Side {'On' if self.sim_pier_side.is_on('PS_ON') else 'Off'}"
                      f", mount type {list(vector.members).index(vector.on)}")

    @handles("TELESCOPE_INFO", "SCOPE_CONFIG_NAME")
    def _on_scope_info(self, vector: Any, values: dict) -> None:
        vector.apply(values)
        vector.send(state=OK)
        self.update_scope_config()

    @handles("APPLY_SCOPE_CONFIG")
    def _on_apply_scope_config(self, vector: SwitchVector, values: dict) -> None:
        vector.apply(values)
        vector.send(state=OK if self.load_scope_config(verbose=True) else ALERT)

    def _scope_slot(self) -> str:
        return f"config{(self.scope_configs.on or 'SCOPE_CONFIG1')[-1]}"

    def load_scope_config(self, verbose: bool = False) -> bool:
        """TELESCOPE_INFO and SCOPE_CONFIG_NAME from the selected slot of ScopeConfig.xml."""
        root = _read_xml(self.scope_file)
        device = None if isinstance(root, str) else _device_element(root, self.name, create=False)
        slot = None if device is None else device.find(self._scope_slot())
        if slot is None:
            if verbose:
                self.info(f"Config {self._scope_slot()[-1]} is not found in the XML file ({self.scope_file}). To save "
                          "a new config, update and set scope properties and config name.")
            return False
        try:
            numbers = {name: float(slot.findtext(tag) or "") for name, tag in (
                ("TELESCOPE_FOCAL_LENGTH", "scopefoc"), ("TELESCOPE_APERTURE", "scopeap"),
                ("GUIDER_FOCAL_LENGTH", "gscopefoc"), ("GUIDER_APERTURE", "gscopeap"))}
        except ValueError:
            self.info(f"Can't read the telescope properties from the XML file ({self.scope_file})")
            return False
        self.scope_info.send(state=OK, **numbers)
        self.scope_name.send(state=OK, SCOPE_CONFIG_NAME=(slot.findtext("label") or "").strip())
        return True

    def update_scope_config(self) -> None:
        root = _read_xml(self.scope_file)
        if isinstance(root, str):
            root = ET.Element("scopeconfig")
        device = _device_element(root, self.name, create=True)
        assert device is not None
        slot = _child(device, self._scope_slot())
        for name, tag in (("TELESCOPE_FOCAL_LENGTH", "scopefoc"), ("TELESCOPE_APERTURE", "scopeap"),
                          ("GUIDER_FOCAL_LENGTH", "gscopefoc"), ("GUIDER_APERTURE", "gscopeap")):
            _child(slot, tag).text = f"{self.scope_info.value(name):f}"
        _child(slot, "label").text = self.scope_name.value("SCOPE_CONFIG_NAME") or None
        try:
            _write_xml(self.scope_file, root)
        except OSError as exc:
            self.warning(f"Can't write the scope configuration to {self.scope_file}: {exc.strerror}")


def main() -> None:
    run(TelescopeSimulator)


if __name__ == "__main__":
    main()
