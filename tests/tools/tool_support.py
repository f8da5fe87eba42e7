"""What the tests of indi_getprop, indi_setprop and indi_eval share.

Our tools are run by full path from the virtualenv's bin (OUR_BIN), Debian's from /usr/bin: they
have the same names. A reference and an our run of the same arguments are made one after the other,
never at the same time against the same server: the reference server sends the definitions a
driver gives in answer to one client's getProperties to every client interested in that device, so
two tools asking at once would each see the other's answer too.

Servers run Debian's C++ simulators (disconnected unless a test connects them) with HOME in the
test's tmp_path. Waiting is done with indi_eval -w or by polling with deadlines; nothing sleeps for
a fixed time.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
from dataclasses import dataclass

from helpers import OUR_BIN, wait_until

TOOLS = ("indi_getprop", "indi_setprop", "indi_eval")
REF = {tool: f"/usr/bin/{tool}" for tool in TOOLS}
OURS = {tool: os.path.join(OUR_BIN, tool) for tool in TOOLS}

TELESCOPE_DRIVER = "/usr/bin/indi_simulator_telescope"
CCD_DRIVER = "/usr/bin/indi_simulator_ccd"
FOCUS_DRIVER = "/usr/bin/indi_simulator_focus"
SCOPE = "Telescope Simulator"
CAMERA = "CCD Simulator"
FOCUSER = "Focuser Simulator"
WAIT = 15.0

# Values of a connected telescope that change by themselves between two listings, and so are
# compared only by name: the wall clock (to the second) and the right ascension of a mount resting
# at the pole, which follows sidereal time. Timestamps (_TS, and the timestamp attributes seen at
# -vv) change too; they are normalised by normalise().
TIME_VARYING = {
    f"{SCOPE}.TIME_UTC.UTC",
    f"{SCOPE}.EQUATORIAL_EOD_COORD.RA",
}


def check_installed() -> None:
    for path in OURS.values():
        assert os.access(path, os.X_OK), f"{path} is not installed (pip install -e .)"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


def run(path: str, *args: str, cwd=None, stdin: str | None = None, pass_fds=(), timeout: float = 60,
        env=None) -> Result:
    """Run one tool; in its stderr the program's own path (usage texts print argv[0]) becomes its name."""
    proc = subprocess.run([path, *args], capture_output=True, cwd=cwd, pass_fds=pass_fds, timeout=timeout,
                          input=(stdin or "").encode(), env=env)
    name = os.path.basename(path)
    stderr = proc.stderr.decode("utf-8", "surrogateescape").replace(path, name)
    return Result(proc.returncode, proc.stdout.decode("utf-8", "surrogateescape"), stderr)


def both(tool: str, *args: str, **kwargs) -> tuple[Result, Result]:
    """The reference tool and ours with the same arguments, one after the other."""
    return run(REF[tool], *args, **kwargs), run(OURS[tool], *args, **kwargs)


_TS_LINE = re.compile(r"^(.*\._TS)=.*$")
_TS_ATTR = re.compile(r"timestamp=\"[^\"]*\"")


def normalise(text: str) -> str:
    """Replace what changes with time: values of _TS queries and of TIME_VARYING elements, and
    timestamp attributes (in -vv echoes)."""
    out = []
    for line in text.splitlines(keepends=True):
        key = line.split("=", 1)[0]
        if key in TIME_VARYING:
            line = f"{key}=<varies>\n"
        line = _TS_LINE.sub(r"\1=<timestamp>", line)
        out.append(_TS_ATTR.sub('timestamp="<timestamp>"', line))
    return "".join(out)


def per_device(lines: list[str]) -> dict[str, list[str]]:
    """Each device's lines in order: drivers answer in parallel, so only that order is fixed."""
    devices: dict[str, list[str]] = {}
    for line in lines:
        devices.setdefault(line.split(".", 1)[0], []).append(line)
    return devices


def assert_same(ref: Result, ours: Result, what: str, ordered: bool = True) -> None:
    """Same exit status, stderr and stdout; with ordered=False stdout is compared device by device."""
    assert ours.returncode == ref.returncode, f"{what}: exit {ours.returncode}, reference {ref.returncode}\n" \
                                              f"ours: {ours.stderr}\nreference: {ref.stderr}"
    assert ours.stderr == ref.stderr, f"{what}: stderr differs"
    if ordered:
        assert ours.stdout == ref.stdout, f"{what}: stdout differs"
    else:
        assert per_device(ours.lines) == per_device(ref.lines), f"{what}: stdout differs"


def getprop_ref(port: int, *queries: str, seconds: int = 1) -> list[str]:
    return run(REF["indi_getprop"], "-p", str(port), "-t", str(seconds), *queries).lines


def wait_devices(port: int, *devices: str, timeout: float = WAIT) -> None:
    """Poll Debian's indi_getprop until every device has defined its CONNECTION.

    Until then the reference server does not know which driver has which device and drops
    requests for one device (indi_eval's); a device-less getProperties reaches every driver."""
    def listed():
        lines = getprop_ref(port, "*.CONNECTION.CONNECT")
        return all(f"{d}.CONNECTION.CONNECT=Off" in lines or f"{d}.CONNECTION.CONNECT=On" in lines
                   for d in devices)
    wait_until(listed, timeout=timeout, what=f"{devices} defined on port {port}")


def wait_eval(port: int, expression: str, timeout: int = int(WAIT), what: str = "") -> None:
    result = run(REF["indi_eval"], "-p", str(port), "-t", str(timeout), "-w", expression, timeout=timeout + 30)
    assert result.returncode == 0, f"{what}: {expression} not true within {timeout} s: {result.stderr}"


def settle(port: int, device: str = SCOPE) -> None:
    """Let the driver finish answering earlier requests for its properties.

    A tool that exits as soon as it has what it wants (an exact query, indi_eval, untyped
    indi_setprop) leaves the rest of the driver's answer in flight, and the reference server gives
    a driver's answer to every client interested in its device: the next tool would see those
    definitions too. This waits until the driver has been quiet for a second (indi_getprop with a
    wildcard does exactly that)."""
    run(REF["indi_getprop"], "-p", str(port), "-t", "1", f"{device}.CONNECTION.*")


def without_repeats(text: str) -> str:
    """Lines with consecutive repeats counted once (for output that depends on how many copies of
    a definition the server happened to give: see settle)."""
    lines = text.splitlines(keepends=True)
    return "".join(line for i, line in enumerate(lines) if i == 0 or line != lines[i - 1])


def start(servers, env, *drivers: str, which: str = "reference"):
    """A server running Debian's simulators (ours with -n: nothing connects by itself)."""
    drivers = drivers or (TELESCOPE_DRIVER, CCD_DRIVER, FOCUS_DRIVER)
    server = servers.reference(*drivers, env=env) if which == "reference" else servers.ours("-n", *drivers, env=env)
    names = {TELESCOPE_DRIVER: SCOPE, CCD_DRIVER: CAMERA, FOCUS_DRIVER: FOCUSER}
    wait_devices(server.port, *(names[d] for d in drivers))
    return server


def connect(port: int, *devices: str) -> None:
    """Connect devices with Debian's indi_setprop (typed) and wait until they are."""
    for device in devices:
        result = run(REF["indi_setprop"], "-p", str(port), "-s", f"{device}.CONNECTION.CONNECT=On")
        assert result.returncode == 0, result.stderr
    wait_eval(port, " && ".join(f'"{d}.CONNECTION._STATE"==1 && "{d}.CONNECTION.CONNECT"==1' for d in devices))
    if SCOPE in devices:
        wait_eval(port, MOUNT_SETTLED)
    for device in devices:
        settle(port, device)


# The simulated mount's first position report after connecting: at the pole, pier east. Until then
# it reports RA 0, DEC 0, pier west and axes at 0, which a listing taken too early would show.
MOUNT_SETTLED = (f'"{SCOPE}.EQUATORIAL_EOD_COORD.DEC"==90 && "{SCOPE}.TELESCOPE_PIER_SIDE.PIER_EAST"==1 && '
                 f'"{SCOPE}.MOUNT_AXES.PRIMARY"==90 && "{SCOPE}.MOUNT_AXES.SECONDARY"==90')


class SilentListener:
    """A TCP server that accepts every connection, reads what is sent, and never says anything:
    enough for tools whose work needs no data from the server. Each connection is closed when the
    tool closes its end."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    @staticmethod
    def _drain(conn: socket.socket) -> None:
        with conn:
            try:
                while conn.recv(65536):
                    pass
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()
