"""CCD Simulator and Guide Simulator (indi.simulators.ccd) through real servers and clients.

Our driver is always started by its full path (helpers.our_simulator), never found on PATH, since
Debian's C++ simulators have the same names. Images come back as BLOBs and are opened with
astropy, as a client would; the star field is checked against the plate scale by cross-correlating
two frames, and star sizes by measuring them. Every wait is for an element or a log line.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from helpers import children_of, our_simulator, pid_alive, reference_simulator, wait_until
from indi.protocol import parse

CAMERA = "CCD Simulator"
GUIDER = "Guide Simulator"
SCOPE = "Telescope Simulator"
FOCUSER = "Focuser Simulator"
WAIT = 30.0
REFERENCE = Path(__file__).resolve().parent / "reference"


# ------------------------------------------------------------------------------------- helpers
class Client:
    """An INDI client on a server: sets properties and waits for what the devices answer."""

    def __init__(self, server, *devices: str) -> None:
        self.peer = server.connect()
        self.peer.send("<getProperties version='1.7'/>\n")
        for device in devices:
            self.peer.send(f"<enableBLOB device='{device}'>Also</enableBLOB>\n")
        waiting = set(devices)
        while waiting:   # each device's CONNECTION, in whatever order the drivers start
            frame = self.peer.expect("defSwitchVector", timeout=WAIT, name="CONNECTION")
            waiting.discard(frame.attrs["device"])

    def close(self) -> None:
        self.peer.close()

    def send(self, kind: str, device: str, name: str, **values: object) -> None:
        tag = {"Number": "oneNumber", "Switch": "oneSwitch", "Text": "oneText"}[kind]
        members = "".join(f"<{tag} name='{k}'>{v}</{tag}>" for k, v in values.items())
        self.peer.send(f"<new{kind}Vector device='{device}' name='{name}'>{members}</new{kind}Vector>\n")

    def number(self, device: str, name: str, **values: float) -> None:
        self.send("Number", device, name, **values)

    def switch(self, device: str, name: str, member: str) -> None:
        self.send("Switch", device, name, **{member: "On"})

    def text(self, device: str, name: str, **values: str) -> None:
        self.send("Text", device, name, **values)

    def expect(self, tag: str, timeout: float = WAIT, **attrs: str):
        return self.peer.expect(tag, timeout=timeout, **attrs)

    def values(self, frame) -> dict:
        return {m.name: m.value for m in parse(frame).members}

    def connect(self, *devices: str) -> None:
        for device in devices:
            self.switch(device, "CONNECTION", "CONNECT")
            self.expect("setSwitchVector", device=device, name="CONNECTION", state="Ok")

    def settled(self, device: str, name: str, kind: str = "Number", **values: object) -> None:
        """Set values and wait until the device reports them Ok."""
        self.send(kind, device, name, **values)
        self.expect(f"set{kind}Vector", device=device, name=name, state="Ok")

    def accepted(self, device: str, name: str, kind: str = "Number", **values: object) -> None:
        """Set values and wait for the device's answer, which must not be an error."""
        self.send(kind, device, name, **values)
        frame = self.expect(f"set{kind}Vector", device=device, name=name)
        assert frame.attrs.get("state") != "Alert", frame.raw

    def collect(self, tag: str, timeout: float = WAIT, **attrs: str) -> list:
        """Everything received up to and including the first element with this tag and attributes."""
        deadline = time.monotonic() + timeout
        frames = []
        while True:
            frame = self.peer.next(max(0.01, deadline - time.monotonic()))
            frames.append(frame)
            if frame.tag == tag and all(frame.attrs.get(k) == v for k, v in attrs.items()):
                return frames

    def expose(self, seconds: float, device: str = CAMERA, chip: str = "CCD") -> tuple[bytes, str]:
        """One exposure: (file bytes, format) from the BLOB, after the exposure has gone Ok."""
        blob = "CCD1" if chip == "CCD" else "CCD2"
        self.number(device, f"{chip}_EXPOSURE", **{f"{chip}_EXPOSURE_VALUE": seconds})
        frame = self.expect("setBLOBVector", timeout=WAIT + seconds, device=device, name=blob)
        member = parse(frame).members[0]
        self.expect("setNumberVector", device=device, name=f"{chip}_EXPOSURE", state="Ok")
        return member.value, member.format


def open_fits(data: bytes) -> fits.PrimaryHDU:
    hdus = fits.HDUList.fromstring(data)
    return hdus[0]


def background_subtracted(image: np.ndarray) -> np.ndarray:
    image = image.astype(np.float64)
    return image - np.median(image)


def stars_only(image: np.ndarray) -> np.ndarray:
    """Stars for correlating: each pixel the least of itself and its four neighbours (a hot pixel
    stands alone, a star does not), zero below 5 sigma of the background and clipped at 20 sigma,
    so that every star weighs about the same (else the brightest star of one frame lined up with
    the brightest of the other, a different star, can outweigh the true alignment)."""
    data = background_subtracted(image)
    core = data.copy()
    for axis in (0, 1):
        for step in (1, -1):
            np.minimum(core, np.roll(data, step, axis=axis), out=core)
    sigma = 1.4826 * np.median(np.abs(core))
    return np.where(core > 5 * sigma, np.minimum(core, 20 * sigma), 0.0)


def shift_between(first: np.ndarray, second: np.ndarray) -> tuple[int, int]:
    """(dx, dy) that moves the stars of ``first`` onto those of ``second``, by FFT cross-correlation."""
    a, b = stars_only(first), stars_only(second)
    correlation = np.fft.irfft2(np.conj(np.fft.rfft2(a)) * np.fft.rfft2(b), s=a.shape)
    dy, dx = np.unravel_index(int(np.argmax(correlation)), correlation.shape)
    rows, columns = a.shape
    return (dx - columns if dx > columns // 2 else dx), (dy - rows if dy > rows // 2 else dy)


def star_fwhm(image: np.ndarray, count: int = 7) -> float:
    """Median FWHM (pixels) of the brightest unsaturated, isolated stars: the area above half of
    each star's peak is pi (FWHM/2)^2 for a round star. Stars are found in the image with hot
    pixels removed (stars_only's neighbour minimum), then measured in the image itself."""
    data = background_subtracted(image)
    work = stars_only(image)
    widths = []
    for _ in range(100):
        y, x = np.unravel_index(int(np.argmax(work)), work.shape)
        if work[y, x] <= 0 or len(widths) >= count:
            break
        work[max(0, y - 40):y + 41, max(0, x - 40):x + 41] = 0.0
        box = data[max(0, y - 40):y + 41, max(0, x - 40):x + 41]
        core = box[25:56, 25:56] if box.shape == (81, 81) else None
        if core is None or core.max() > 30000 or core.max() < box.max():
            continue   # at an edge, saturated, or with a brighter neighbour
        widths.append(2.0 * math.sqrt(np.count_nonzero(core > core.max() / 2) / math.pi))
    assert len(widths) >= 2, f"too few measurable stars ({widths})"
    return float(np.median(widths))


def driver_pid(server, name: str) -> int:
    def find():
        for pid in children_of(server.proc.pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if name.encode() in f.read():
                        return pid
            except OSError:
                continue
        return None
    return wait_until(find, timeout=WAIT, what=f"{name} running")


def vm_hwm_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.fixture
def camera(servers, home_env):
    """Our server (-n) with our CCD Simulator, and a client with the camera connected."""
    server = servers.ours("-n", our_simulator("ccd"), env=home_env)
    client = Client(server, CAMERA)
    client.connect(CAMERA)
    client.expect("defNumberVector", device=CAMERA, name="CCD_EXPOSURE")
    yield client
    client.close()


# --------------------------------------------------------------------------- the property set
@pytest.mark.parametrize("kind, device", [("ccd", CAMERA), ("guide", GUIDER)])
def test_defines_the_reference_properties(servers, home_env, kind, device):
    """Every property of Debian's driver, before and after connecting, with the same type, label,
    group, permission, rule, timeout and members (names, labels, number formats). Number ranges
    are compared too, except the frames' (the reference defines them empty and sets them later)."""
    reference = json.loads((REFERENCE / f"indi_simulator_{kind}.json").read_text())
    server = servers.ours("-n", our_simulator(kind), env=home_env)
    client = Client(server, device)

    def definitions() -> dict:
        client.peer.send(f"<getProperties version='1.7' device='{device}'/>\n")
        # The driver answers in order: its reply to this comes after all its definitions.
        client.text(device, "ACTIVE_DEVICES", ACTIVE_TELESCOPE=SCOPE)
        out = {}
        for frame in client.collect("setTextVector", device=device, name="ACTIVE_DEVICES"):
            if frame.tag.startswith("def") and frame.attrs["device"] == device:
                element = parse(frame)
                out[element.name] = element
        return out

    for phase in ("before_connect", "after_connect"):
        if phase == "after_connect":
            client.connect(device)
        ours = definitions()
        theirs = {p["name"]: p for p in reference[phase]}
        assert set(theirs) <= set(ours), f"{phase}: missing {sorted(set(theirs) - set(ours))}"
        assert set(ours) <= set(theirs), f"{phase}: extra {sorted(set(ours) - set(theirs))}"
        for name, expected in theirs.items():
            got = ours[name]
            assert (got.type, got.label, got.group, got.perm, got.rule) == (
                expected["type"], expected["label"], expected["group"], expected["perm"], expected["rule"]), name
            assert float(got.timeout) == float(expected["timeout"]), name
            assert [m.name for m in got.members] == [m["name"] for m in expected["members"]], name
            assert [m.label for m in got.members] == [m["label"] for m in expected["members"]], name
            for member, reference_member in zip(got.members, expected["members"], strict=True):
                if expected["type"] == "Number":
                    assert member.format == reference_member["format"], (name, member.name)
                    if not name.endswith("FRAME"):
                        assert (member.min, member.max, member.step) == pytest.approx(
                            (float(reference_member["min"]), float(reference_member["max"]),
                             float(reference_member["step"]))), (name, member.name)
    client.close()


# ------------------------------------------------------------------------ 1. pyindi-client + astropy
PYINDI_SCRIPT = '''
import json
import os
import sys
import threading

import PyIndi

PORT, DEVICE, OUT, TIMEOUT = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
SHOTS = json.loads(sys.argv[5])


class Client(PyIndi.BaseClient):
    def __init__(self):
        super().__init__()
        self.cond = threading.Condition()
        self.seen = set()
        self.blobs = []
        self.updated = set()
        self.connected = threading.Event()

    def newProperty(self, prop):
        with self.cond:
            self.seen.add(prop.getName())
            self.cond.notify_all()
        self.updateProperty(prop)

    def updateProperty(self, prop):
        if prop.getDeviceName() != DEVICE:
            return
        with self.cond:
            self.updated.add(prop.getName())
            self.cond.notify_all()
        if prop.getName() == "CONNECTION":
            switch = PyIndi.PropertySwitch(prop)
            if [w.getName() for w in switch if w.getState() == PyIndi.ISS_ON] == ["CONNECT"]:
                self.connected.set()
        if prop.getType() == PyIndi.INDI_BLOB:
            for blob in PyIndi.PropertyBlob(prop):
                if blob.getSize() > 0:
                    with self.cond:
                        self.blobs.append((blob.getFormat(), bytes(blob.getblobdata())))
                        self.cond.notify_all()

    def wait(self, predicate):
        with self.cond:
            return self.cond.wait_for(predicate, TIMEOUT)


def set_numbers(device, name, values):
    """Send, then wait for the device's answer: pyindi-client can crash when a callback runs while
    this thread is sending, so nothing is sent while answers are due."""
    prop = device.getNumber(name)
    for widget in prop:
        if widget.getName() in values:
            widget.setValue(values[widget.getName()])
    with client.cond:
        client.updated.discard(name)
    client.sendNewNumber(prop)
    return client.wait(lambda: name in client.updated)


result = {"errors": [], "files": []}
client = Client()
client.setServer("127.0.0.1", PORT)
try:
    if not client.connectServer():
        result["errors"].append("connectServer failed")
    elif not client.wait(lambda: "CONNECTION" in client.seen):
        result["errors"].append("no CONNECTION property")
    else:
        client.setBLOBMode(PyIndi.B_ALSO, DEVICE, None)
        client.connectDevice(DEVICE)
        # All the definitions first (FILTER_NAME is the camera's last): pyindi-client crashes when a
        # definition arrives while this thread sends.
        if not client.connected.wait(TIMEOUT) or not client.wait(lambda: "FILTER_NAME" in client.seen):
            result["errors"].append("the device did not connect")
        else:
            device = client.getDevice(DEVICE)
            for index, shot in enumerate(SHOTS):
                set_numbers(device, "CCD_BINNING", {"HOR_BIN": shot["bin"], "VER_BIN": shot["bin"]})
                set_numbers(device, "CCD_FRAME", dict(zip(("X", "Y", "WIDTH", "HEIGHT"), shot["frame"])))
                before = len(client.blobs)
                set_numbers(device, "CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": shot["seconds"]})
                if not client.wait(lambda: len(client.blobs) > before):
                    result["errors"].append(f"shot {index}: no image within {TIMEOUT} s")
                    break
                fmt, data = client.blobs[-1]
                path = f"{OUT}/shot{index}{fmt}"
                with open(path, "wb") as f:
                    f.write(data)
                result["files"].append(path)
finally:
    client.disconnectServer()
print(json.dumps(result), flush=True)
# The result is out: skip the interpreter's teardown, in which pyindi-client (libindi 1.9.9's BaseClient)
# now and then aborts ("terminate called without an active exception"), whichever server it used.
os._exit(0)
'''


@pytest.mark.parametrize("which", ["ours", "reference"])
def test_pyindi_client_takes_exposures_that_astropy_opens(servers, home_env, tmp_path, which):
    if importlib.util.find_spec("PyIndi") is None:
        pytest.skip("pyindi-client is not installed (pip install --no-deps pyindi-client)")
    start = servers.ours if which == "ours" else servers.reference
    server = start("-n", our_simulator("ccd"), env=home_env) if which == "ours" else start(our_simulator("ccd"),
                                                                                              env=home_env)
    Client(server, CAMERA).close()   # the device is known to the server
    script = tmp_path / "pyindi_ccd.py"
    script.write_text(textwrap.dedent(PYINDI_SCRIPT))
    shots = [{"bin": 1, "frame": [0, 0, 1280, 1024], "seconds": 0.5},
             {"bin": 2, "frame": [100, 50, 600, 400], "seconds": 0.2}]
    # In a process of its own: pyindi-client can crash and must not take pytest along.
    proc = subprocess.run([sys.executable, str(script), str(server.port), CAMERA, str(tmp_path), "30",
                           json.dumps(shots)], capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, f"pyindi client exit {proc.returncode}: {proc.stderr[-2000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["errors"] == [], (result, server.log_text()[-3000:])
    assert [Path(f).suffix for f in result["files"]] == [".fits", ".fits"]

    with fits.open(result["files"][0]) as hdus:
        header, data = hdus[0].header, hdus[0].data
        assert (header["BITPIX"], header["NAXIS"], header["NAXIS1"], header["NAXIS2"]) == (16, 2, 1280, 1024)
        assert data.shape == (1024, 1280) and data.dtype.kind in "ui"
        assert header["INSTRUME"] == CAMERA and header["TELESCOP"] == SCOPE
        assert header["EXPTIME"] == pytest.approx(0.5) and header["FRAME"] == "Light"
        assert header["IMAGETYP"] == "Light Frame" and header["FILTER"] == "Red"
        assert (header["XBINNING"], header["YBINNING"]) == (1, 1)
        assert header["PIXSIZE1"] == pytest.approx(5.2) and header["XPIXSZ"] == pytest.approx(5.2)
        assert header["CCD-TEMP"] == pytest.approx(0.0) and header["GAIN"] == pytest.approx(90)
        assert header["ROWORDER"] == "TOP-DOWN" and "DATE-OBS" in header
        assert 100 < float(np.median(data)) < 1000, "a sky background above the bias level"
    with fits.open(result["files"][1]) as hdus:
        header, data = hdus[0].header, hdus[0].data
        assert (header["NAXIS1"], header["NAXIS2"]) == (300, 200)
        assert data.shape == (200, 300)
        assert (header["XBINNING"], header["YBINNING"]) == (2, 2) and header["XPIXSZ"] == pytest.approx(10.4)


# ---------------------------------------------------------------------------------- 2. memory
def test_full_frames_under_64_mb_with_server_limit(servers, home_env):
    server = servers.ours("-n", "-m", "64", our_simulator("ccd"), env=home_env)
    client = Client(server, CAMERA)
    client.connect(CAMERA)
    pid = driver_pid(server, "indi_simulator_ccd")
    for shot in range(4):
        data, fmt = client.expose(0.1)
        assert fmt == ".fits" and open_fits(data).data.shape == (1024, 1280), shot
        assert pid_alive(pid), f"the driver died at exposure {shot}"
    # the compressed form goes through cfitsio's tile compression too
    client.settled(CAMERA, "CCD_COMPRESSION", "Switch", INDI_ENABLED="On")
    data, fmt = client.expose(0.1)
    assert fmt == ".fits.fz" and len(data) < 2626560
    hwm = vm_hwm_kb(pid)
    log = server.log_text()
    assert "restart #" not in log and f"process {pid}" not in log, log[-2000:]
    assert driver_pid(server, "indi_simulator_ccd") == pid
    assert hwm < 64 * 1024, f"driver peak resident memory {hwm / 1024:.1f} MB"
    print(f"driver VmHWM after 5 full frames: {hwm / 1024:.1f} MB")
    client.close()


# ----------------------------------------------------------------------- 3. stars follow the mount
def test_star_field_moves_with_the_mount_by_the_plate_scale(servers, home_env):
    if not os.access(reference_simulator("telescope"), os.X_OK):
        pytest.skip("Debian's indi_simulator_telescope is not installed")
    server = servers.ours("-n", reference_simulator("telescope"), our_simulator("ccd"), our_simulator("focus"),
                          env=home_env)
    client = Client(server, SCOPE, CAMERA, FOCUSER)
    client.connect(SCOPE, FOCUSER, CAMERA)
    # The mount settles at the pole, its RA the local sidereal time: aim three hours east of the meridian.
    while True:
        coordinates = client.values(client.expect("setNumberVector", device=SCOPE, name="EQUATORIAL_EOD_COORD"))
        if coordinates["DEC"] == 90:
            break
    ra0, dec0 = (coordinates["RA"] + 3.0) % 24.0, 30.0
    client.accepted(SCOPE, "TELESCOPE_TRACK_STATE", "Switch", TRACK_ON="On")
    client.accepted(SCOPE, "ON_COORD_SET", "Switch", SYNC="On")
    client.number(FOCUSER, "ABS_FOCUS_POSITION", FOCUS_ABSOLUTE_POSITION=36700)   # sharp stars
    client.expect("setNumberVector", device=FOCUSER, name="ABS_FOCUS_POSITION", state="Ok")

    def point(ra: float, dec: float) -> None:
        client.number(SCOPE, "EQUATORIAL_EOD_COORD", RA=ra, DEC=dec)
        while True:   # the CCD driver receives the same update before our next request
            values = client.values(client.expect("setNumberVector", device=SCOPE, name="EQUATORIAL_EOD_COORD"))
            if abs(values["RA"] - ra) < 1e-3 and abs(values["DEC"] - dec) < 1e-4:
                return

    def image() -> tuple[np.ndarray, fits.Header]:
        data, _ = client.expose(1.0)
        hdu = open_fits(data)
        return hdu.data.astype(np.float64), hdu.header

    point(ra0, dec0)
    first, header = image()
    scale = 206.265 * 5.2 / 900.0                         # arcsec per pixel: 5.2 um at 900 mm
    assert header["FOCALLEN"] == pytest.approx(900) and header["SCALE"] == pytest.approx(5.2 / 900 * 206.3)
    assert header["DEC"] == pytest.approx(30.0, abs=0.5)
    north, east = 3.0 / 60.0, 12.0 / 3600.0               # 3 arcmin north, 12 s of RA east
    point(ra0 + east, dec0 + north)
    second, header2 = image()
    point(ra0, dec0)
    third, header3 = image()
    assert header2["PIERSIDE"] == header["PIERSIDE"]

    dx, dy = shift_between(first, second)
    # the move in pixels (north moves the stars down, east moves them right), and as the headers say
    expected_dy = north * 3600.0 / scale
    expected_dx = east * 15.0 * 3600.0 * math.cos(math.radians(dec0 + north / 2)) / scale
    assert (header2["DEC"] - header["DEC"]) * 3600.0 / scale == pytest.approx(expected_dy, abs=5)
    assert (header2["RA"] - header["RA"]) * 3600.0 * math.cos(math.radians(dec0)) / scale == pytest.approx(
        expected_dx, abs=5)
    sign = -1 if header["PIERSIDE"] == "EAST" else 1      # pier east turns the camera half a turn
    assert abs(dy - sign * expected_dy) <= 2 and abs(dx - sign * expected_dx) <= 2, (
        (dx, dy), (sign * expected_dx, sign * expected_dy))
    # Back where it was: the same stars at the same place, give or take where the mount actually
    # settled (the wait above allows 1e-3 h of RA, a few pixels, which the headers record).
    back_dx = sign * (header3["RA"] - header["RA"]) * 3600.0 * math.cos(math.radians(dec0)) / scale
    back_dy = sign * (header3["DEC"] - header["DEC"]) * 3600.0 / scale
    dx3, dy3 = shift_between(first, third)
    assert abs(dx3 - back_dx) <= 2 and abs(dy3 - back_dy) <= 2, ((dx3, dy3), (back_dx, back_dy))
    client.close()


# ------------------------------------------------------------------------- 4. star size and focus
def test_star_size_follows_the_focuser(servers, home_env):
    server = servers.ours("-n", our_simulator("ccd"), our_simulator("focus"), env=home_env)
    client = Client(server, CAMERA, FOCUSER)
    client.connect(FOCUSER, CAMERA)

    def focus_at(position: int) -> float:
        client.number(FOCUSER, "ABS_FOCUS_POSITION", FOCUS_ABSOLUTE_POSITION=position)
        while True:
            frame = client.expect("setNumberVector", device=FOCUSER, name="ABS_FOCUS_POSITION")
            if frame.attrs.get("state") == "Ok":
                break
        fwhm = client.values(client.expect("setNumberVector", device=FOCUSER, name="FWHM"))["SIM_FWHM"]
        data, _ = client.expose(3.0)
        header = open_fits(data).header
        assert header["FOCUSPOS"] == position
        return fwhm, star_fwhm(open_fits(data).data)

    sharp_arcsec, sharp = focus_at(36700)      # the focuser's best focus
    blurred_arcsec, blurred = focus_at(42700)   # 3 depths of focus out: three times the size
    scale = 206.265 * 5.2 / 900.0
    assert sharp_arcsec == pytest.approx(3.5) and blurred_arcsec > 2 * sharp_arcsec
    assert sharp == pytest.approx(sharp_arcsec / scale, rel=0.35), (sharp, sharp_arcsec / scale)
    assert blurred == pytest.approx(blurred_arcsec / scale, rel=0.35), (blurred, blurred_arcsec / scale)
    assert blurred > 2 * sharp, (sharp, blurred)
    client.close()


# -------------------------------------------------------------------- 5. bias, dark and flat frames
def test_bias_dark_and_flat_frames_differ_as_they_should(camera):
    def frame(kind: str, seconds: float) -> tuple[np.ndarray, fits.Header]:
        camera.settled(CAMERA, "CCD_FRAME_TYPE", "Switch", **{f"FRAME_{kind}": "On"})
        data, _ = camera.expose(seconds)
        hdu = open_fits(data)
        assert hdu.header["FRAME"] == kind.capitalize()
        return hdu.data.astype(np.float64), hdu.header

    bias, header = frame("BIAS", 1.0)
    assert header["EXPTIME"] == pytest.approx(0.01)       # a bias is the shortest exposure
    dark, header = frame("DARK", 3.0)
    assert header["DARKTIME"] == pytest.approx(3.0)
    flat, _ = frame("FLAT", 1.0)

    assert 95 < np.median(bias) < 105 and 5 < bias.std() < 20, "offset plus read noise only"
    assert np.median(dark) > np.median(bias) + 20, "dark current"
    hot_in_dark = np.count_nonzero(dark > np.median(dark) + 1000)
    assert hot_in_dark > 50 and np.count_nonzero(bias > np.median(bias) + 1000) == 0, hot_in_dark
    assert np.median(flat) > 20 * np.median(bias), "a bright uniform field"
    centre = np.median(flat[412:612, 540:740])
    corners = np.median(np.concatenate([flat[:100, :100].ravel(), flat[-100:, -100:].ravel()]))
    assert 1.2 < centre / corners < 2.0, "vignetting"


# ----------------------------------------------------------------------------------- 6. cooler
def test_cooler_ramps_to_the_target(camera):
    camera.settled(CAMERA, "CCD_TEMP_RAMP", RAMP_SLOPE=30, RAMP_THRESHOLD=0.2)    # at most 0.5 C/s
    camera.number(CAMERA, "CCD_TEMPERATURE", CCD_TEMPERATURE_VALUE=-2)
    cooler = camera.expect("setSwitchVector", device=CAMERA, name="CCD_COOLER")
    assert camera.values(cooler)["COOLER_ON"] == "On"
    readings = []
    started = time.monotonic()
    while True:
        frame = camera.expect("setNumberVector", timeout=WAIT, device=CAMERA, name="CCD_TEMPERATURE")
        readings.append((time.monotonic() - started, camera.values(frame)["CCD_TEMPERATURE_VALUE"]))
        if frame.attrs["state"] == "Ok":
            break
        assert frame.attrs["state"] == "Busy"
    assert readings[-1][1] == pytest.approx(-2.0)
    assert len(readings) >= 4, readings              # it took a while, with updates on the way
    temperatures = [t for _, t in readings]
    assert temperatures == sorted(temperatures, reverse=True), readings
    steps = [b - a for (_, a), (_, b) in zip(readings, readings[1:], strict=False)]
    assert min(steps) >= -0.55, f"faster than the ramp allows: {readings}"
    data, _ = camera.expose(0.1)
    assert open_fits(data).header["CCD-TEMP"] == pytest.approx(-2.0)


# ------------------------------------------------------------------------------- 7. local upload
def test_local_upload_numbers_files_in_the_upload_directory(camera, tmp_path):
    folder = tmp_path / "home" / "uploads"    # uploads may only go inside the home directory (HOME=tmp_path/home)
    folder.mkdir()
    (folder / "M42_004.fits").write_bytes(b"")           # an earlier session's last image
    camera.settled(CAMERA, "UPLOAD_SETTINGS", "Text", UPLOAD_DIR=str(folder), UPLOAD_PREFIX="M42_XXX")
    camera.switch(CAMERA, "UPLOAD_MODE", "UPLOAD_LOCAL")
    frames = camera.collect("setSwitchVector", device=CAMERA, name="UPLOAD_MODE", state="Ok")
    assert any(f.tag == "defTextVector" and f.attrs["name"] == "CCD_FILE_PATH" for f in frames)
    paths = []
    for _ in range(2):
        camera.number(CAMERA, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.1)
        frames = camera.collect("setNumberVector", device=CAMERA, name="CCD_EXPOSURE", state="Ok")
        assert not any(f.tag == "setBLOBVector" for f in frames), "local only: no image to the client"
        updates = [f for f in frames if f.tag == "setTextVector" and f.attrs["name"] == "CCD_FILE_PATH"]
        assert len(updates) == 1 and updates[0].attrs["state"] == "Ok"
        paths.append(camera.values(updates[0])["FILE_PATH"])
    assert paths == [str(folder / "M42_005.fits"), str(folder / "M42_006.fits")]
    with fits.open(paths[1]) as hdus:
        assert hdus[0].header["NAXIS1"] == 1280

    # a prefix cannot take the file out of the directory
    camera.settled(CAMERA, "UPLOAD_SETTINGS", "Text", UPLOAD_DIR=str(folder), UPLOAD_PREFIX="../../escape_XXX")
    camera.settled(CAMERA, "UPLOAD_MODE", "Switch", UPLOAD_BOTH="On")
    camera.number(CAMERA, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=0.1)
    update = camera.expect("setTextVector", device=CAMERA, name="CCD_FILE_PATH", state="Ok")
    saved = Path(camera.values(update)["FILE_PATH"])
    camera.expect("setBLOBVector", device=CAMERA, name="CCD1")    # both: the client gets it too
    assert saved.parent == folder and saved.name == "....escape_001.fits", saved
    assert not list(tmp_path.glob("*escape*")) and not list(tmp_path.parent.glob("*escape*"))

    camera.switch(CAMERA, "UPLOAD_MODE", "UPLOAD_CLIENT")
    frames = camera.collect("setSwitchVector", device=CAMERA, name="UPLOAD_MODE", state="Ok")
    assert any(f.tag == "delProperty" and f.attrs["name"] == "CCD_FILE_PATH" for f in frames)


# ---------------------------------------------------------------------------------- 8. streaming
def test_video_stream_sends_frames_until_stopped(camera):
    camera.settled(CAMERA, "CCD_STREAM_FRAME", X=0, Y=0, WIDTH=640, HEIGHT=480)
    camera.settled(CAMERA, "STREAMING_EXPOSURE", STREAMING_EXPOSURE_VALUE=0.05)
    camera.switch(CAMERA, "CCD_VIDEO_STREAM", "STREAM_ON")
    camera.expect("setSwitchVector", device=CAMERA, name="CCD_VIDEO_STREAM", state="Busy")
    for _ in range(5):
        frame = camera.expect("setBLOBVector", device=CAMERA, name="CCD1")
        member = parse(frame).members[0]
        assert member.format == ".stream" and len(member.value) == 640 * 480
        pixels = np.frombuffer(member.value, dtype=np.uint8)
        assert pixels.max() > pixels.min(), "a picture, not a blank"
        fps = camera.values(camera.expect("setNumberVector", device=CAMERA, name="FPS"))
        assert 0 < fps["EST_FPS"] <= 12
    camera.switch(CAMERA, "CCD_VIDEO_STREAM", "STREAM_OFF")
    camera.expect("setSwitchVector", device=CAMERA, name="CCD_VIDEO_STREAM", state="Idle")
    # Anything the driver sent before answering this was sent after the stream stopped.
    camera.text(CAMERA, "FITS_HEADER", FITS_OBJECT="M42")
    frames = camera.collect("setTextVector", device=CAMERA, name="FITS_HEADER")
    assert not [f for f in frames if f.tag == "setBLOBVector"], "frames after the stream was stopped"
    # and an exposure works again
    data, fmt = camera.expose(0.1)
    assert fmt == ".fits" and open_fits(data).header["OBJECT"] == "M42"


# ------------------------------------------------------------------------ abort, guide head, guider
def test_abort_stops_an_exposure(camera):
    camera.number(CAMERA, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=20)
    camera.expect("setNumberVector", device=CAMERA, name="CCD_EXPOSURE", state="Busy")
    camera.switch(CAMERA, "CCD_ABORT_EXPOSURE", "ABORT")
    camera.expect("setSwitchVector", device=CAMERA, name="CCD_ABORT_EXPOSURE", state="Ok")
    frame = camera.expect("setNumberVector", device=CAMERA, name="CCD_EXPOSURE")
    assert frame.attrs["state"] == "Idle" and camera.values(frame)["CCD_EXPOSURE_VALUE"] == 0
    data, _ = camera.expose(0.1)                  # the next one is a whole new exposure
    assert open_fits(data).header["EXPTIME"] == pytest.approx(0.1)


def test_guide_head_and_timed_pulses(camera):
    data, fmt = camera.expose(0.2, chip="GUIDER")
    header = open_fits(data).header
    assert fmt == ".fits" and (header["NAXIS1"], header["NAXIS2"]) == (500, 290)
    assert (header["PIXSIZE1"], header["PIXSIZE2"]) == pytest.approx((9.8, 12.6))
    camera.number(CAMERA, "TELESCOPE_TIMED_GUIDE_NS", TIMED_GUIDE_N=500, TIMED_GUIDE_S=0)
    frame = camera.expect("setNumberVector", device=CAMERA, name="TELESCOPE_TIMED_GUIDE_NS", state="Ok")
    assert camera.values(frame)["TIMED_GUIDE_N"] == 500
    camera.number(CAMERA, "TELESCOPE_TIMED_GUIDE_WE", TIMED_GUIDE_W=200)
    camera.expect("setNumberVector", device=CAMERA, name="TELESCOPE_TIMED_GUIDE_WE", state="Ok")
    camera.settled(CAMERA, "FILTER_SLOT", FILTER_SLOT_VALUE=8)
    data, _ = camera.expose(0.1)
    assert open_fits(data).header["FILTER"] == "Luminance"


def test_guide_simulator(servers, home_env):
    server = servers.ours("-n", our_simulator("guide"), env=home_env)
    client = Client(server, GUIDER)
    client.connect(GUIDER)
    data, fmt = client.expose(0.2, device=GUIDER)
    header = open_fits(data).header
    assert (header["NAXIS1"], header["NAXIS2"], header["INSTRUME"]) == (1280, 1024, GUIDER)
    assert header["PIXSIZE1"] == pytest.approx(2.4) and "CCD-TEMP" not in header and "FILTER" not in header
    client.close()


# ---------------------------------------------------------------------- the sky model by itself
def test_sky_is_deterministic_and_trails_without_tracking():
    """The catalogue is a function of position (the same stars from overlapping queries), star
    light is conserved, and a mount that does not track smears the stars along right ascension."""
    from indi.simulators import sky

    first = sky.stars_in_field(82.5, 30.0, 0.3, 17.0)
    again = sky.stars_in_field(82.6, 30.05, 0.3, 17.0)           # an overlapping field
    near = lambda ra, dec: (np.abs(ra - 82.55) < 0.05) & (np.abs(dec - 30.02) < 0.05)  # noqa: E731
    common = [np.sort(stars[2][near(stars[0], stars[1])]) for stars in (first, again)]
    assert common[0].size > 5 and np.array_equal(common[0], common[1])

    shot = sky.Shot(1280, 1024, 0, 0, 1280, 1024, ra=82.5, dec=30.0, seconds=10, read_noise=0,
                    dark_rate=0, sky_mag=30)
    tracked = sky.render(shot, np.random.default_rng(1)).astype(np.float64) - shot.pedestal
    shot.drift_ra = astro_sidereal_degrees(10)                    # ten seconds of the sky turning
    trailed = sky.render(shot, np.random.default_rng(1)).astype(np.float64) - shot.pedestal
    assert trailed.sum() == pytest.approx(tracked.sum(), rel=0.05), "the same light, spread out"
    y, x = np.unravel_index(int(np.argmax(np.where(tracked < 30000, tracked, 0))), tracked.shape)
    star = tracked[y - 3:y + 4, x - 40:x + 41]
    assert star.max() > 10 * np.abs(trailed).mean()
    # along RA (x) the trail is ~ 10 s * 15"/s * cos(30) / 1.19"/px = 109 px long; across it stays narrow
    rows = trailed[y - 10:y + 11, max(0, x - 150):x + 150]
    profile_x = rows.sum(axis=0)
    width_x = np.count_nonzero(profile_x > profile_x.max() / 2)
    assert 80 < width_x < 140, width_x


def astro_sidereal_degrees(seconds: float) -> float:
    from indi.simulators import astro
    return astro.SIDEREAL_RATE * seconds / 3600.0
