"""Dome Simulator: a rotating dome with a shutter, parking, and slaving to a snooped mount.

The dome turns at 10 degrees a second the short way round, the shutter takes a few seconds to
open or close, and parking closes the shutter and turns to the park azimuth (unparking opens it
again), as libindi's simulator does. With slaving on (DOME_AUTOSYNC) the dome follows the mount
named in ACTIVE_DEVICES: it snoops the mount's coordinates and site, works out where the mount
points (through the slit, with the DOME_MEASUREMENTS geometry when a radius is given), and
turns there whenever the dome is further off than the autosync threshold.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
import xml.etree.ElementTree as ET
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
from ..protocol import DefVector, PropertyState, SetVector, parse_timestamp
from . import astro

DEGREES_PER_SECOND = 10.0   # rotation speed, as libindi's simulator
SHUTTER_SECONDS = 3.0       # a full open or close
UPDATE_SECONDS = 0.25       # how often a moving dome reports its azimuth
SLAVING_SECONDS = 2.0       # how often a slaved dome checks the mount when it reports nothing new
DEFAULT_PARK_AZ = 90.0
SLAVING_GROUP = "Slaving"


def shortest_turn(start: float, target: float) -> float:
    """Signed degrees from start to target the short way round, in (-180, 180]."""
    turn = (target - start) % 360.0
    return turn - 360.0 if turn > 180.0 else turn


def dome_azimuth(mount_az: float, mount_alt: float, hour_angle: float, latitude: float, radius: float,
                 north: float = 0.0, east: float = 0.0, up: float = 0.0, ota_offset: float = 0.0,
                 ota_side: int = 0) -> float | None:
    """Azimuth of the point where the optical axis leaves the dome, or None if it cannot.

    Coordinates are metres east, north and up from the dome's centre. The mount's axes cross at
    (east, north, up); the optical axis sits ``ota_offset`` metres from there along the
    declination axis, on the east of the pier (ota_side 1, the tube pointing west), on the west
    (-1), or on the axes (0, a fork). Pointing ``mount_az``/``mount_alt``, the axis meets the
    dome sphere of ``radius`` at one point above the slit: its azimuth is the dome's target.
    """
    lat, ha = math.radians(latitude), math.radians(hour_angle * 15.0)
    # Unit vectors of the equatorial frame in (east, north, up): towards hour angle 0 on the
    # equator, towards hour angle 6h (due west), and the pole.
    meridian = (0.0, -math.sin(lat), math.cos(lat))
    west = (-1.0, 0.0, 0.0)
    # The declination axis turns with the hour angle; at hour angle 0 it points east.
    axis = [math.sin(ha) * m - math.cos(ha) * w for m, w in zip(meridian, west, strict=True)]
    origin = [c + ota_side * ota_offset * a for c, a in zip((east, north, up), axis, strict=True)]
    alt, az = math.radians(mount_alt), math.radians(mount_az)
    direction = (math.cos(alt) * math.sin(az), math.cos(alt) * math.cos(az), math.sin(alt))
    # |origin + t * direction| = radius, with t > 0 (direction is a unit vector).
    b = sum(o * d for o, d in zip(origin, direction, strict=True))
    c = sum(o * o for o in origin) - radius * radius
    discriminant = b * b - c
    if radius <= 0 or discriminant < 0:
        return None
    t = -b + math.sqrt(discriminant)
    x, y = (o + t * d for o, d in zip(origin[:2], direction[:2], strict=True))
    if abs(x) < 1e-9 and abs(y) < 1e-9:
        return mount_az  # through the zenith of the dome: any azimuth will do, keep the mount's
    return math.degrees(math.atan2(x, y)) % 360.0


# ------------------------------------------------------------------------------------ park data

def park_data_path() -> Path:
    """libindi's park data file, shared by every device of the user (the telescope's too)."""
    return Path(os.path.expanduser("~")) / ".indi" / "ParkData.xml"


def read_park_data(device: str) -> tuple[bool, float] | None:
    """(parked, azimuth) saved for this device, or None if there is none."""
    try:
        root = ET.parse(park_data_path()).getroot()
    except (OSError, ET.ParseError):
        return None
    for entry in root.iter("device"):
        if entry.get("name") == device:
            status = (entry.findtext("parkstatus") or "").strip()
            position = (entry.findtext("parkposition/axis1position") or "").strip()
            try:
                return status == "true", float(position)
            except ValueError:
                return None
    return None


def write_park_data(device: str, parked: bool, azimuth: float) -> bool:
    """Save this device's park status and azimuth, keeping the other devices' entries."""
    path = park_data_path()
    try:
        root = ET.parse(path).getroot()
        if root.tag != "parkdata":
            root = ET.Element("parkdata")
    except (OSError, ET.ParseError):
        root = ET.Element("parkdata")
    for entry in root.findall("device"):
        if entry.get("name") == device:
            root.remove(entry)
    entry = ET.SubElement(root, "device", name=device)
    ET.SubElement(entry, "parkstatus").text = "true" if parked else "false"
    ET.SubElement(ET.SubElement(entry, "parkposition"), "axis1position").text = f"{azimuth:f}"
    ET.indent(root)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_bytes(ET.tostring(root) + b"\n")
        os.replace(temporary, path)
    except OSError:
        return False
    return True


# ----------------------------------------------------------------------------------------- device

class DomeSimulator(Device):
    default_name = "Dome Simulator"
    interface = Interface.DOME
    connection_modes = ("serial", "tcp")
    has_simulation = True

    def init_properties(self) -> None:
        self.active_devices = self.add(TextVector("ACTIVE_DEVICES", "Snoop devices", "Options", members=[
            Text("ACTIVE_TELESCOPE", "Telescope", "Telescope Simulator")], save=True))
        self.mount_policy = self.add(SwitchVector("MOUNT_POLICY", "Mount Policy", "Options", members=[
            Switch("MOUNT_IGNORED", "Mount ignored", ON), Switch("MOUNT_LOCKS", "Mount locks")], save=True))

        add = lambda vector: self.add(vector, connected=True)  # noqa: E731
        self.shutter = add(SwitchVector("DOME_SHUTTER", "Shutter", state=OK, rule="AtMostOne", members=[
            Switch("SHUTTER_OPEN", "Open"), Switch("SHUTTER_CLOSE", "Close", ON)]))
        self.shutter_policy = add(SwitchVector("DOME_SHUTTER_PARK_POLICY", "Shutter", "Options", rule="AnyOfMany",
                                               members=[Switch("SHUTTER_CLOSE_ON_PARK", "Close On Park"),
                                                        Switch("SHUTTER_OPEN_ON_UNPARK", "Open On UnPark")],
                                               save=True))
        self.motion = add(SwitchVector("DOME_MOTION", "Motion", state=OK, rule="AtMostOne", members=[
            Switch("DOME_CW", "Dome CW"), Switch("DOME_CCW", "Dome CCW")]))
        self.relative = add(NumberVector("REL_DOME_POSITION", "Relative Position", state=OK, members=[
            Number("DOME_RELATIVE_POSITION", "Degrees", "%6.2f", -180, 180, 10, 0)]))
        self.absolute = add(NumberVector("ABS_DOME_POSITION", "Absolute Position", state=OK, members=[
            Number("DOME_ABSOLUTE_POSITION", "Degrees", "%6.2f", 0, 360, 1, 0)]))
        self.abort = add(SwitchVector("DOME_ABORT_MOTION", "Abort Motion", rule="AtMostOne", members=[
            Switch("ABORT", "Abort")]))
        self.presets = add(NumberVector("Presets", "Presets", "Presets", timeout=0, members=[
            Number(f"Preset {i}", f"Preset {i}", "%6.2f", 0, 360, 1, 0) for i in (1, 2, 3)], save=True))
        self.preset_goto = add(SwitchVector("Goto", "Goto", "Presets", timeout=0, members=[
            Switch(f"Preset {i}", f"Preset {i}") for i in (1, 2, 3)]))
        self.autosync = add(SwitchVector("DOME_AUTOSYNC", "Slaving", SLAVING_GROUP, state=OK, members=[
            Switch("DOME_AUTOSYNC_ENABLE", "Enable"), Switch("DOME_AUTOSYNC_DISABLE", "Disable", ON)], save=True))
        self.ota_side = add(SwitchVector("DM_OTA_SIDE", "Meridian side", SLAVING_GROUP, state=OK, rule="AtMostOne",
                                         members=[
            Switch("DM_OTA_SIDE_EAST", "East"), Switch("DM_OTA_SIDE_WEST", "West"),
            Switch("DM_OTA_SIDE_MOUNT", "Mount", ON), Switch("DM_OTA_SIDE_HA", "Hour Angle"),
            Switch("DM_OTA_SIDE_IGNORE", "Ignore")], save=True))
        self.params = add(NumberVector("DOME_PARAMS", "Params", SLAVING_GROUP, state=OK, members=[
            Number("AUTOSYNC_THRESHOLD", "Autosync threshold (deg)", "%6.2f", 0, 360, 1, 0.5)], save=True))
        self.measurements = add(NumberVector("DOME_MEASUREMENTS", "Measurements", SLAVING_GROUP, state=OK, members=[
            Number("DM_DOME_RADIUS", "Radius (m)", "%6.2f", 0, 50, 1, 0),
            Number("DM_SHUTTER_WIDTH", "Shutter width (m)", "%6.2f", 0, 10, 1, 0),
            Number("DM_NORTH_DISPLACEMENT", "N displacement (m)", "%6.2f", -10, 10, 1, 0),
            Number("DM_EAST_DISPLACEMENT", "E displacement (m)", "%6.2f", -10, 10, 1, 0),
            Number("DM_UP_DISPLACEMENT", "Up displacement (m)", "%6.2f", -10, 10, 1, 0),
            Number("DM_OTA_OFFSET", "OTA offset (m)", "%6.2f", -10, 10, 1, 0)], save=True))
        self.park = add(SwitchVector("DOME_PARK", "Parking", state=OK, members=[
            Switch("PARK", "Park(ed)"), Switch("UNPARK", "UnPark(ed)")]))
        self.park_position = add(NumberVector("DOME_PARK_POSITION", "Park Position", "Site Management", members=[
            Number("PARK_AZ", "AZ D:M:S", "%10.6m", 0, 360, 0, 0)]))
        self.park_option = add(SwitchVector("DOME_PARK_OPTION", "Park Options", "Site Management", rule="AtMostOne",
                                            members=[Switch("PARK_CURRENT", "Current"),
                                                     Switch("PARK_DEFAULT", "Default"),
                                                     Switch("PARK_WRITE_DATA", "Write Data")]))
        add(SwitchVector("USEJOYSTICK", "Joystick", "Options", timeout=0, members=[
            Switch("ENABLE", "Enable"), Switch("DISABLE", "Disable", ON)]))
        add(TextVector("SNOOP_JOYSTICK", "Snoop Joystick", "Options", members=[
            Text("SNOOP_JOYSTICK_DEVICE", "Device", "Joystick")]))

        self._rotation: asyncio.Task | None = None   # the turning dome
        self._continuous = False                      # turning until told to stop (DOME_MOTION)
        self._shutter_task: asyncio.Task | None = None
        self._shutter_open = 0.0                      # 0 closed .. 1 open
        self._slaving: asyncio.Task | None = None
        self.parked = False
        self.parking: str | None = None               # "park" or "unpark" while under way
        self.park_az = DEFAULT_PARK_AZ
        self.mount: dict[str, Any] = {}
        self._mount_locks = False                     # the snooped mount is unparked
        self._parked_warning = False                  # said once, not at every check
        self._geometry_warning = False
        self._snoop_mount(self.scope)

    # ------------------------------------------------------------------------------- state
    @property
    def position(self) -> float:
        return self.absolute.value("DOME_ABSOLUTE_POSITION")

    @property
    def scope(self) -> str:
        return self.active_devices.value("ACTIVE_TELESCOPE")

    @property
    def slaving(self) -> bool:
        return self.autosync.is_on("DOME_AUTOSYNC_ENABLE")

    @property
    def rotating(self) -> bool:
        return self._rotation is not None and not self._rotation.done()

    async def connect(self) -> bool:
        # As libindi's simulator on connecting: at azimuth 0 (or parked where the park data
        # says), park azimuth from the park data or 90, and a 5 degree autosync threshold.
        self.params["AUTOSYNC_THRESHOLD"].value = 5.0
        self.absolute["DOME_ABSOLUTE_POSITION"].value = 0.0
        saved = read_park_data(self.name)
        if saved is None:
            self.info(f"InitPark: No Park data in file {park_data_path()}")
            self.parked, self.park_az = False, DEFAULT_PARK_AZ
        else:
            self.parked, self.park_az = saved
            if self.parked:
                self.absolute["DOME_ABSOLUTE_POSITION"].value = self.park_az
        self.park_position["PARK_AZ"].value = self.park_az
        self.park.select("PARK" if self.parked else "UNPARK")
        self.park.state = OK
        self.parking = None
        self.info("Dome is parked." if self.parked else "Dome is unparked.")
        if self.slaving:
            self._slaving = self.every(SLAVING_SECONDS, self._follow_mount)
        return True

    async def disconnect(self) -> None:
        # The framework cancels the tasks; what they were doing is left undone.
        self._rotation = self._shutter_task = self._slaving = None
        self.parking = None
        for vector in (self.absolute, self.relative):
            if vector.state is BUSY:
                vector.state = IDLE
        self.motion.select(None)
        if self.shutter.state is BUSY:
            self.shutter.state = ALERT

    # ---------------------------------------------------------------------------- rotation
    def rotate(self, degrees: float) -> None:
        """Start turning by ``degrees`` (positive clockwise; infinite: until stopped)."""
        if self._rotation is not None:
            self._rotation.cancel()
        self._continuous = math.isinf(degrees)
        self.motion.select("DOME_CW" if degrees > 0 else "DOME_CCW")
        self.motion.send(state=BUSY)
        self.absolute.send(state=BUSY)
        self._rotation = self.start(self._turn(degrees))

    async def _turn(self, degrees: float) -> None:
        last = time.monotonic()
        remaining = degrees
        target = (self.position + degrees) % 360.0 if math.isfinite(degrees) else None
        while True:
            await asyncio.sleep(UPDATE_SECONDS)
            now = time.monotonic()
            step = DEGREES_PER_SECOND * (now - last)
            last = now
            arrived = abs(remaining) <= step
            moved = remaining if arrived else math.copysign(step, remaining)
            remaining -= moved
            self.absolute["DOME_ABSOLUTE_POSITION"].value = target if arrived else (self.position + moved) % 360.0
            if arrived:
                self._rotation = None
                self._arrived()
                return
            self.absolute.send(state=BUSY)

    def _arrived(self) -> None:
        self.info("Dome reached requested azimuth angle.")
        if self.parking == "park":
            self.absolute.send(state=IDLE)
            self.motion.select(None)
            self.motion.send(state=IDLE)
            self._maybe_parked()
            return
        self.absolute.send(state=OK)
        if self.relative.state is BUSY:
            self.relative.send(state=OK)
        self.motion.select(None)
        self.motion.send(state=OK)
        self._follow_mount()  # the mount may have moved on meanwhile

    def stop(self) -> bool:
        """Stop turning; True if the dome was turning."""
        if not self.rotating:
            return False
        assert self._rotation is not None
        self._rotation.cancel()
        self._rotation = None
        return True

    def goto(self, azimuth: float) -> PropertyState:
        """Turn to an azimuth the short way round (the caller has checked that it may)."""
        turn = shortest_turn(self.position, azimuth)
        if abs(turn) < 1e-6:
            if self.stop():
                self.motion.select(None)
                self.motion.send(state=OK)
            self.absolute.send(state=OK, DOME_ABSOLUTE_POSITION=azimuth % 360.0)
            return OK
        self.info(f"Dome is moving to position {azimuth:.2f} degrees azimuth...")
        self.rotate(turn)
        return BUSY

    def _refuse_motion(self) -> str | None:
        """Why the dome may not turn now, or None."""
        if self.parked:
            return "Please unpark before issuing any motion commands."
        if self.parking:
            return "Please stop dome before issuing any further motion commands."
        return None

    @handles("ABS_DOME_POSITION")
    def _on_absolute(self, vector: NumberVector, values: dict) -> None:
        refusal = self._refuse_motion()
        if refusal:
            self.error(refusal)
            vector.send(state=ALERT if self.parked else vector.state)
            return
        self.goto(values["DOME_ABSOLUTE_POSITION"])

    @handles("REL_DOME_POSITION")
    def _on_relative(self, vector: NumberVector, values: dict) -> None:
        refusal = self._refuse_motion()
        if refusal:
            self.error(refusal)
            vector.send(state=ALERT if self.parked else vector.state)
            return
        degrees = values["DOME_RELATIVE_POSITION"]
        self.info(f"Dome moved {degrees:.2f} degrees {'clockwise' if degrees > 0 else 'counter clockwise'}.")
        if degrees == 0:
            vector.send(state=OK, DOME_RELATIVE_POSITION=0.0)
            return
        vector.send(state=BUSY, DOME_RELATIVE_POSITION=degrees)
        self.rotate(degrees)

    @handles("DOME_MOTION")
    def _on_motion(self, vector: SwitchVector, values: dict) -> None:
        wanted = next((name for name, value in values.items() if value is ON), None)
        refusal = self._refuse_motion()
        if refusal:
            self.warning(refusal)
            vector.send(state=ALERT)
            return
        if wanted is None:
            self.stop()
            vector.select(None)
            vector.send(state=OK)
            if self.absolute.state is BUSY:
                self.absolute.send(state=IDLE)
            return
        if self.rotating and self._continuous and vector.on == wanted:
            vector.send()  # already turning that way
            return
        self.rotate(math.inf if wanted == "DOME_CW" else -math.inf)

    @handles("DOME_ABORT_MOTION")
    def _on_abort(self, vector: SwitchVector, values: dict) -> None:
        self.stop()
        vector.select(None)
        if self._shutter_task is not None and not self._shutter_task.done():
            self._shutter_task.cancel()
            self._shutter_task = None
            self.shutter.send(state=ALERT)
            self.error("Shutter operation aborted. Status: unknown.")
        if self.parking:
            # Parking aborted: the dome is still unparked (unparking aborted: still parked).
            self.park.select("UNPARK" if self.parking == "park" else "PARK")
            self.park.send(state=ALERT)
            self.info("Parking aborted." if self.parking == "park" else "UnParking aborted.")
            self.parking = None
        if self.motion.state is BUSY:
            self.motion.select(None)
            self.motion.send(state=IDLE)
        for moving in (self.absolute, self.relative):
            if moving.state is BUSY:
                moving.send(state=IDLE)
        vector.send(state=OK)

    # ------------------------------------------------------------------------------ presets
    @handles("Presets")
    def _on_presets(self, vector: NumberVector, values: dict) -> None:
        vector.apply(values)
        vector.send(state=OK)

    @handles("Goto")
    def _on_goto(self, vector: SwitchVector, values: dict) -> None:
        refusal = self._refuse_motion()
        if refusal:
            self.error(refusal)
            vector.send(state=ALERT)
            return
        vector.apply(values)
        preset = vector.on
        if preset is None:
            vector.send(state=IDLE)
            return
        azimuth = self.presets.value(preset)
        vector.send(state=OK)
        self.info(f"Moving to {preset} ({azimuth:.2f} degrees).")
        self.goto(azimuth)

    # ------------------------------------------------------------------------------ shutter
    def operate_shutter(self, opening: bool) -> None:
        """Start opening or closing (Busy, then Ok once there); reversing takes as long as it took."""
        wanted = "SHUTTER_OPEN" if opening else "SHUTTER_CLOSE"
        if self._shutter_task is not None and not self._shutter_task.done():
            if self.shutter.on == wanted:
                self.shutter.send()
                return
            self._shutter_task.cancel()
        self.shutter.select(wanted)
        target = 1.0 if opening else 0.0
        if self._shutter_open == target and self.shutter.state is OK:
            self.shutter.send(state=OK)
            self.info(f"Shutter is {'open' if opening else 'closed'}.")
            self._shutter_done()
            return
        self.shutter.send(state=BUSY, message=f"Shutter is {'opening' if opening else 'closing'}...")
        self._shutter_task = self.start(self._move_shutter(target))

    async def _move_shutter(self, target: float) -> None:
        last = time.monotonic()
        while self._shutter_open != target:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            step = (now - last) / SHUTTER_SECONDS
            last = now
            gap = target - self._shutter_open
            self._shutter_open = target if abs(gap) <= step else self._shutter_open + math.copysign(step, gap)
        self._shutter_task = None
        self.shutter.send(state=OK)
        self.info(f"Shutter is {'open' if target else 'closed'}.")
        self._shutter_done()

    def _shutter_done(self) -> None:
        if self.parking == "park":
            self._maybe_parked()
        elif self.parking == "unpark":
            self._set_parked(False)

    @handles("DOME_SHUTTER")
    def _on_shutter(self, vector: SwitchVector, values: dict) -> None:
        wanted = next((name for name, value in values.items() if value is ON), None)
        if wanted is None:
            vector.send()
            return
        self.operate_shutter(wanted == "SHUTTER_OPEN")

    # ------------------------------------------------------------------------------ parking
    def _maybe_parked(self) -> None:
        """Parked once both the dome has turned to the park azimuth and the shutter has closed."""
        shutter_moving = self._shutter_task is not None and not self._shutter_task.done()
        if self.parking == "park" and not self.rotating and not shutter_moving:
            self._set_parked(True)

    def _set_parked(self, parked: bool) -> None:
        self.parking = None
        self.parked = parked
        self.park.select("PARK" if parked else "UNPARK")
        self.park.send(state=OK)
        self.info("Dome is parked." if parked else "Dome is unparked.")
        write_park_data(self.name, parked, self.park_az)

    @handles("DOME_PARK")
    def _on_park(self, vector: SwitchVector, values: dict) -> None:
        if values["PARK"] is ON:
            self._start_parking()
        else:
            self._start_unparking()

    def _start_parking(self) -> None:
        """Close the shutter and turn to the park azimuth; parked once both are done."""
        if self.parking == "park" or (self.parked and self.parking is None):
            if self.parking is None:
                self.info("Dome already parked.")
            self.park.send()
            return
        if self.mount_policy.is_on("MOUNT_LOCKS") and self._mount_locks:
            self.park.select("UNPARK")
            self.park.send(state=ALERT)
            self.info("Cannot Park Dome when mount is locking. See: Mount Policy in options tab.")
            return
        self.stop()
        self.parking = "park"
        self.park.select("PARK")
        self.park.send(state=BUSY)
        if self.relative.state is BUSY:
            self.relative.send(state=IDLE)
        turn = shortest_turn(self.position, self.park_az)
        if abs(turn) > 1e-6:
            self.info(f"Dome is moving to position {self.park_az:.2f} degrees azimuth...")
            self.rotate(turn)
        else:
            self.motion.select(None)
            self.motion.send(state=IDLE)
            self.absolute.send(state=IDLE)
        self.operate_shutter(False)  # libindi's simulator closes it whatever the shutter policy
        self._maybe_parked()

    def _start_unparking(self) -> None:
        """Open the shutter; unparked once it is open (also what stops a parking under way)."""
        if self.parking == "unpark" or (not self.parked and self.parking is None):
            if self.parking is None:
                self.info("Dome already unparked.")
            self.park.send()
            return
        if self.stop():
            self.absolute.send(state=IDLE)
            self.motion.select(None)
            self.motion.send(state=IDLE)
        self.parking = "unpark"
        self.park.select("UNPARK")
        self.park.send(state=BUSY)
        self.operate_shutter(True)  # as libindi's simulator, whatever the shutter policy

    @handles("DOME_PARK_POSITION")
    def _on_park_position(self, vector: NumberVector, values: dict) -> None:
        self.park_az = values["PARK_AZ"]
        vector.send(state=OK, PARK_AZ=self.park_az)

    @handles("DOME_PARK_OPTION")
    def _on_park_option(self, vector: SwitchVector, values: dict) -> None:
        option = next((name for name, value in values.items() if value is ON), None)
        vector.select(None)
        ok = True
        if option == "PARK_CURRENT":
            self.park_az = self.position
        elif option == "PARK_DEFAULT":
            self.park_az = DEFAULT_PARK_AZ
        elif option == "PARK_WRITE_DATA":
            ok = write_park_data(self.name, self.parked, self.park_az)
            if ok:
                self.info("Saved Park Status/Position.")
            else:
                self.warning("Can not save Park Status/Position.")
        elif option is None:
            vector.send()
            return
        if option in ("PARK_CURRENT", "PARK_DEFAULT"):
            self.park_position.send(PARK_AZ=self.park_az)
        vector.send(state=OK if ok else ALERT)

    # ------------------------------------------------------------------------------ slaving
    def _snoop_mount(self, device: str) -> None:
        self.mount = {}
        self._mount_locks = False
        if not device:
            return  # no mount to follow (an empty name would ask for every device's properties)
        for name, callback in (("EQUATORIAL_EOD_COORD", self._snooped_coordinates),
                               ("GEOGRAPHIC_COORD", self._snooped_location),
                               ("TIME_UTC", self._snooped_time),
                               ("TELESCOPE_PARK", self._snooped_park),
                               ("TELESCOPE_PIER_SIDE", self._snooped_pier_side)):
            self.snoop(device, name, callback)

    @staticmethod
    def _members(element: Any) -> dict[str, Any]:
        if isinstance(element, (DefVector, SetVector)):
            return {member.name: member.value for member in element.members}
        return {}

    def _snooped_coordinates(self, element: Any) -> None:
        values = self._members(element)
        if element.device != self.scope or "RA" not in values or "DEC" not in values:
            return
        ra, dec = float(values["RA"]), float(values["DEC"])
        if ra == 0 and dec == 0:
            return  # a mount still starting up reports 0/0
        self.mount.update(ra=ra, dec=dec, state=element.state or self.mount.get("state", IDLE))
        self._follow_mount()

    def _snooped_location(self, element: Any) -> None:
        values = self._members(element)
        if element.device != self.scope or "LAT" not in values or "LONG" not in values:
            return
        self.mount.update(latitude=float(values["LAT"]), longitude=float(values["LONG"]))
        self.debug(f"Snooped LONG: {self.mount['longitude']:g} - LAT: {self.mount['latitude']:g}")
        self._follow_mount()

    def _snooped_time(self, element: Any) -> None:
        # The dome works with the system clock, as the mounts do; a mount that keeps another
        # time points somewhere else than its coordinates say here, which is worth a warning.
        utc = self._members(element).get("UTC")
        if element.device != self.scope or not utc:
            return
        try:
            offset = parse_timestamp(str(utc)).timestamp() - time.time()
        except ValueError:
            return
        if abs(offset) > 60:
            self.warning(f"{self.scope} keeps a clock {offset:+.0f} s from this one: slaving follows this one.")

    def _snooped_park(self, element: Any) -> None:
        values = self._members(element)
        if "PARK" not in values or element.device != self.scope or element.state is not OK:
            return
        self.mount["parked"] = values["PARK"] is ON
        self._mount_locks = values.get("UNPARK") is ON

    def _snooped_pier_side(self, element: Any) -> None:
        values = self._members(element)
        if element.device != self.scope:
            return
        if values.get("PIER_EAST") is ON:
            self.mount["pier_side"] = 1
        elif values.get("PIER_WEST") is ON:
            self.mount["pier_side"] = -1

    def mount_azimuth(self, now: float | None = None) -> float | None:
        """Where the dome should be for the snooped mount, or None if not known yet."""
        mount = self.mount
        if not {"ra", "dec", "latitude", "longitude"} <= mount.keys():
            return None
        now = time.time() if now is None else now
        lst = astro.lst_hours(now, mount["longitude"])
        alt, az = astro.equatorial_to_horizontal(mount["ra"], mount["dec"], mount["latitude"], lst)
        m = self.measurements.values
        radius = m["DM_DOME_RADIUS"]
        if radius <= 0:
            return az  # no geometry given: the mount stands at the centre of the dome
        hour_angle = astro.hour_angle_hours(lst, mount["ra"])
        side = {"DM_OTA_SIDE_EAST": 1, "DM_OTA_SIDE_WEST": -1, "DM_OTA_SIDE_IGNORE": 0,
                "DM_OTA_SIDE_HA": 1 if 0 < hour_angle < 12 else -1,
                "DM_OTA_SIDE_MOUNT": mount.get("pier_side", 0)}.get(self.ota_side.on or "", 0)
        target = dome_azimuth(az, alt, hour_angle, mount["latitude"], radius, m["DM_NORTH_DISPLACEMENT"],
                              m["DM_EAST_DISPLACEMENT"], m["DM_UP_DISPLACEMENT"], m["DM_OTA_OFFSET"], side)
        if target is None and not self._geometry_warning:
            self.warning("Optical axis does not intersect dome sphere.")
        self._geometry_warning = target is None
        return target

    def _follow_mount(self) -> None:
        """With slaving on, turn to the mount's azimuth if the dome is further off than the threshold.

        Not while the dome turns or parks, nor while the mount slews or is parked: the dome
        moves once the mount has settled, as libindi's does."""
        if not (self.connected and self.slaving) or self.rotating or self.parking:
            return
        if self.parked:
            if not self._parked_warning:
                self.warning("Cannot perform autosync with dome parked. Please unpark to enable autosync operation.")
                self._parked_warning = True
            return
        self._parked_warning = False
        if self.mount.get("state") is BUSY or self.mount.get("parked"):
            return
        target = self.mount_azimuth()
        if target is None:
            return
        if abs(shortest_turn(self.position, target)) > self.params.value("AUTOSYNC_THRESHOLD"):
            self.debug(f"Dome is syncing to position {target:.2f} degrees...")
            self.goto(target)

    @handles("DOME_AUTOSYNC")
    def _on_autosync(self, vector: SwitchVector, values: dict) -> None:
        vector.apply(values)
        vector.send(state=OK)
        if self._slaving is not None:
            self._slaving.cancel()
            self._slaving = None
        if self.slaving:
            self.warning("Dome will now be synced to mount azimuth position if the differential threshold exceeds "
                         f"{self.params.value('AUTOSYNC_THRESHOLD'):.2f} degrees.")
            self._follow_mount()
            # Mounts report when they move; a tracking mount's azimuth changes all the same.
            self._slaving = self.every(SLAVING_SECONDS, self._follow_mount)
        else:
            self.warning("Dome is no longer synced to mount azimuth position.")
            if self.absolute.state is BUSY and self.stop():
                self.absolute.send(state=IDLE)
                self.motion.select(None)
                self.motion.send(state=IDLE)

    @handles("DOME_PARAMS")
    def _on_params(self, vector: NumberVector, values: dict) -> None:
        vector.apply(values)
        vector.send(state=OK)
        if self.slaving:
            self.info(f"Dome slaving differential threshold updated to {vector.value('AUTOSYNC_THRESHOLD'):.2f} "
                      "degrees.")
            self._follow_mount()

    @handles("DOME_MEASUREMENTS", "DM_OTA_SIDE")
    def _on_geometry(self, vector: Any, values: dict) -> None:
        vector.apply(values)
        vector.send(state=OK)
        self._follow_mount()

    @handles("ACTIVE_DEVICES")
    def _on_active_devices(self, vector: TextVector, values: dict) -> None:
        old = self.scope
        vector.apply(values)
        vector.send(state=OK)
        if self.scope != old:
            self._stop_snooping_mount(old)
            self._snoop_mount(self.scope)

    def _stop_snooping_mount(self, device: str) -> None:
        for name in ("EQUATORIAL_EOD_COORD", "GEOGRAPHIC_COORD", "TIME_UTC", "TELESCOPE_PARK", "TELESCOPE_PIER_SIDE"):
            self.stop_snooping(device, name)

    @handles("MOUNT_POLICY")
    def _on_mount_policy(self, vector: SwitchVector, values: dict) -> None:
        vector.apply(values)
        vector.send(state=OK)
        if vector.is_on("MOUNT_IGNORED"):
            self.info("Mount Policy set to: Mount ignored. Dome can park regardless of mount parking state.")
        else:
            self.warning("Mount Policy set to: Mount locks. This prevents the dome from parking when mount is "
                         "unparked.")


def main() -> None:
    run(DomeSimulator)


if __name__ == "__main__":
    main()
