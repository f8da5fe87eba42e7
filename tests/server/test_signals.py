"""Stopping the server: SIGTERM, SIGINT and SIGHUP end it cleanly with its drivers; nothing survives.

Real drivers are Debian's C++ simulators when installed, else small Python drivers.
"""

from __future__ import annotations

import calendar
import os
import re
import signal
import stat
import sys
import textwrap
import time

import pytest

from helpers import children_of, pid_alive, wait_until

SIMULATORS = {"/usr/bin/indi_simulator_focus": "Focuser Simulator",
              "/usr/bin/indi_simulator_telescope": "Telescope Simulator"}
STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}): ")
LONG_WAIT = 20.0
FEW_SECONDS = 6.0


def write_script(path, body: str) -> str:
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


# A well-behaved Python driver: defines its device when asked, exits at EOF on stdin.
PY_DRIVER = """\
    import os, sys
    DEF = ("<defTextVector device='{device}' name='INFO' state='Idle' perm='ro'>"
           "<defText name='T'>hello</defText></defTextVector>\\n").encode()
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            sys.exit(0)
        for _ in range(chunk.count(b"<getProperties")):
            os.write(1, DEF)
"""


def two_drivers(tmp_path) -> dict[str, str]:
    """Driver path -> device name: the C++ simulators if present, else Python drivers."""
    if all(os.access(path, os.X_OK) for path in SIMULATORS):
        return dict(SIMULATORS)
    drivers = {}
    for device in ("Python One", "Python Two"):
        path = tmp_path / f"driver_{device.split()[1].lower()}.py"
        drivers[write_script(path, PY_DRIVER.format(device=device))] = device
    return drivers


def driver_pid(server, name: str) -> int:
    return int(server.wait_log(rf"Driver {re.escape(name)}: pid=(\d+)", LONG_WAIT).group(1))


def see_devices(server, devices) -> None:
    """A client sees a definition from each device: the drivers are up and talking."""
    client = server.connect()
    client.send("<getProperties version='1.7'/>\n")
    missing = set(devices)
    deadline = time.monotonic() + LONG_WAIT
    while missing:
        frame = client.next(max(0.01, deadline - time.monotonic()))
        if frame.tag.startswith("def"):
            missing.discard(frame.attrs.get("device"))
    return client


def assert_log_format(server) -> None:
    """Every log line starts with YYYY-MM-DDTHH:MM:SS (UTC, as the reference), then ': '."""
    lines = server.log_text().splitlines()
    assert lines
    now = time.time()
    for line in lines:
        m = STAMP.match(line)
        assert m, f"log line without timestamp prefix: {line!r}"
        stamp = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
        assert abs(stamp - now) < 600, f"timestamp is not current UTC: {line!r}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_signal_stops_server_and_all_drivers(servers, tmp_path, sig):
    drivers = two_drivers(tmp_path)
    server = servers.ours(*drivers)
    pids = {name: driver_pid(server, name) for name in drivers}
    client = see_devices(server, drivers.values())
    before = children_of(server.proc.pid)
    assert set(pids.values()) <= set(before)

    start = time.monotonic()
    server.proc.send_signal(sig)
    assert server.wait_exit(LONG_WAIT) == 0
    took = time.monotonic() - start
    assert took < FEW_SECONDS, f"{sig.name}: the server took {took:.1f} s to exit"

    text = server.log_text()
    for name, pid in pids.items():
        exits = re.findall(rf"Driver {re.escape(name)}: process {pid} (?:exited|killed)[^\n]*", text)
        assert len(exits) == 1, f"{name}: expected one exit line, got {exits}\n{text}"
        assert not pid_alive(pid), f"{name} (pid {pid}) is still running after the server exited"
    assert not [p for p in before if pid_alive(p)], "processes left behind"
    assert "restart #" not in text, text
    assert "Traceback" not in text
    client.wait_closed()
    assert_log_format(server)


def test_driver_ignoring_sigterm_is_killed_and_the_server_still_exits(servers, tmp_path):
    stubborn = write_script(tmp_path / "stubborn.py", """\
        import os, signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.write(2, b"ignoring SIGTERM and my input\\n")
        while True:
            time.sleep(3600)
    """)
    server = servers.ours(stubborn)
    pid = driver_pid(server, stubborn)
    server.wait_log(r"ignoring SIGTERM and my input")

    server.proc.send_signal(signal.SIGTERM)
    assert server.wait_exit(LONG_WAIT) == 0
    server.wait_log(rf"Driver {re.escape(stubborn)}: process {pid} killed by signal 9\b")
    assert not pid_alive(pid)


@pytest.mark.parametrize("kind", ["real drivers", "driver that never reads its input"])
def test_drivers_exit_when_the_server_is_killed(servers, tmp_path, kind):
    if kind == "real drivers":
        drivers = list(two_drivers(tmp_path))
        server = servers.ours(*drivers)
        see_devices(server, two_drivers(tmp_path).values())
    else:
        # Only the parent-death signal can end this one: it never looks at stdin.
        drivers = [write_script(tmp_path / "sleeper.py", """\
            import os, time
            os.write(2, b"sleeping\\n")
            while True:
                time.sleep(3600)
        """)]
        server = servers.ours(*drivers)
        server.wait_log(r"sleeping")
    pids = [driver_pid(server, name) for name in drivers]
    assert all(pid_alive(p) for p in pids)

    server.proc.kill()
    assert server.wait_exit() == -signal.SIGKILL
    wait_until(lambda: not any(pid_alive(p) for p in pids), timeout=LONG_WAIT,
               what="drivers gone after the server was killed")
