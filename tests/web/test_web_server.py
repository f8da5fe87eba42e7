"""indi-web running our indiserver: the truth from its status socket, errors at once, nothing left behind.

Every test runs a real indi-web process, which runs a real indiserver and our Python simulators.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time

from web_helpers import wait_for

from helpers import free_port, our_simulator, pid_alive, wait_until
from indi.web.indi_client import list_devices, list_devices_framed


def profile(manager, name: str, labels: list[str], port: int | None = None, remote: list[str] = (),
            **settings) -> int:
    """Create a profile with these drivers on a free port (returned)."""
    port = port or free_port()
    manager.ok("POST", f"/api/profiles/{name}")
    manager.ok("PUT", f"/api/profiles/{name}", json={"port": port, **settings})
    manager.ok("POST", f"/api/profiles/{name}/drivers",
               json=[{"label": label} for label in labels] + [{"remote": spec} for spec in remote])
    return port


def write_script(path, body: str, mode: int = 0o755) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)
    return str(path)


def test_a_killed_driver_shows_as_crashed_and_restarted(web):
    manager = web()
    profile(manager, "Focus", ["Focuser Simulator"])
    manager.ok("POST", "/api/server/start/Focus")
    [driver] = manager.full_status()["drivers"]
    assert driver["label"] == "Focuser Simulator" and driver["state"] == "running" and driver["crashed"] is False
    assert driver["restarts"] == 0 and driver["devices"] == ["Focuser Simulator"]
    assert driver["driver"]["binary"] == "indi_simulator_focus"

    os.kill(driver["pid"], signal.SIGKILL)
    status = manager.wait_status(lambda s: s["drivers"] and s["drivers"][0]["restarts"] == 1
                                 and s["drivers"][0]["state"] == "running", what="driver restarted")
    [restarted] = status["drivers"]
    assert restarted["crashed"] is True and restarted["pid"] != driver["pid"]
    assert "killed by signal 9" in restarted["last_exit"]
    assert any("killed by signal 9" in line for line in status["log"])
    # Still listed for Ekos: it runs again.
    assert [d["binary"] for d in manager.ok("GET", "/api/server/drivers")] == ["indi_simulator_focus"]


def test_server_stop_and_indi_web_exit_leave_no_process(web):
    manager = web()
    profile(manager, "Two", ["Telescope Simulator", "Filter Simulator"])
    manager.ok("POST", "/api/server/start/Two")
    status = manager.full_status()
    pids = [status["pid"]] + [d["pid"] for d in status["drivers"]]
    assert len(pids) == 3 and set(pids) <= set(manager.descendants())
    runtime_dir = os.path.dirname(status["command"][status["command"].index("--fifo") + 1])
    assert os.path.isdir(runtime_dir)

    manager.ok("POST", "/api/server/stop")
    assert manager.descendants() == []
    wait_until(lambda: not any(pid_alive(p) for p in pids), what="server and drivers gone")
    assert not os.path.exists(runtime_dir)

    # indi-web's own exit (SIGTERM) stops a running server too, and exits with status 0.
    manager.ok("POST", "/api/server/start/Two")
    status = manager.full_status()
    pids = [status["pid"]] + [d["pid"] for d in status["drivers"]]
    assert manager.stop(signal.SIGTERM) == 0
    wait_until(lambda: not any(pid_alive(p) for p in pids), what="server and drivers gone after SIGTERM")
    assert "INDI server of profile Two stopped" in manager.log_text()


def test_indi_web_sigint_stops_the_server(web):
    manager = web()
    profile(manager, "One", ["Dome Simulator"])
    manager.ok("POST", "/api/server/start/One")
    status = manager.full_status()
    pids = [status["pid"]] + [d["pid"] for d in status["drivers"]]
    assert manager.stop(signal.SIGINT) == 0
    wait_until(lambda: not any(pid_alive(p) for p in pids), what="server and drivers gone after SIGINT")


def test_indi_port_in_use_is_reported_at_once(web):
    manager = web()
    with socket.create_server(("", 0)) as taken:
        port = taken.getsockname()[1]
        profile(manager, "Busy", ["Focuser Simulator"], port=port)
        start = time.monotonic()
        response = manager.post("/api/server/start/Busy")
        elapsed = time.monotonic() - start
    assert response.status_code == 500
    detail = response.json()["detail"]
    assert f"port {port}" in detail and "Address already in use" in detail, detail
    assert elapsed < 5, f"took {elapsed:.1f} s"
    assert manager.ok("GET", "/api/server/status") == [{"status": "False", "active_profile": ""}]
    assert manager.descendants() == []
    assert "Address already in use" in manager.full_status()["last_exit"]


def test_autostart_profile_starts_with_indi_web(web, tmp_path):
    first = web("--no-autostart")
    port = profile(first, "Auto", ["GPS Simulator"], autostart=1, autoconnect=1)
    assert first.stop() == 0
    manager = web()  # same --conf: the profile marked autostart starts
    status = manager.wait_status(lambda s: s["running"] and s["drivers"], what="autostart profile running")
    assert status["profile"] == "Auto" and status["port"] == port and status["autoconnect"] is True
    assert "-n" not in status["command"]
    assert manager.ok("GET", "/api/server/status") == [{"status": "True", "active_profile": "Auto"}]
    wait_for(lambda: manager.ok("GET", "/api/devices") == [{"device": "GPS Simulator", "connected": True}],
             what="GPS Simulator connected")


def test_start_option_starts_the_named_profile_not_the_autostart_one(web):
    first = web("--no-autostart")
    profile(first, "Auto", ["GPS Simulator"], autostart=1, autoconnect=1)
    port = profile(first, "Night", ["Weather Simulator"], autoconnect=1)
    assert first.stop() == 0
    manager = web("--start", "Night")   # how scripts/run starts the Simulators profile
    status = manager.wait_status(lambda s: s["running"] and s["drivers"], what="the Night profile running")
    assert status["profile"] == "Night" and status["port"] == port
    wait_for(lambda: manager.ok("GET", "/api/devices") == [{"device": "Weather Simulator", "connected": True}],
             what="Weather Simulator connected")


def test_profile_without_autoconnect_passes_dash_n(web):
    manager = web()
    profile(manager, "Manual", ["Weather Simulator"], autoconnect=0)
    manager.ok("POST", "/api/server/start/Manual")
    assert manager.full_status()["command"][-1] == "-n"
    assert manager.ok("GET", "/api/devices") == [{"device": "Weather Simulator", "connected": False}]


def test_single_drivers_start_stop_and_the_server_reports_missing_ones(web):
    manager = web()
    profile(manager, "Small", ["Focuser Simulator", "Missing Driver"])
    manager.ok("POST", "/api/profiles/custom/add", json={"Label": "Ghost", "Name": "Ghost", "Family": "Domes",
                                                         "Exec": "indi_no_such_driver", "Version": "1"})
    started = manager.ok("POST", "/api/server/start/Small")
    assert started["problems"] == ["Missing Driver: not in the driver catalogue (is it installed?)"]

    assert manager.ok("POST", "/api/drivers/start/Filter Simulator") == {"message": "Driver Filter Simulator started"}
    assert manager.ok("POST", "/api/drivers/start/Filter Simulator") == {
        "message": "Driver Filter Simulator is already running"}
    assert sorted(d["label"] for d in manager.ok("GET", "/api/server/drivers")) == ["Filter Simulator",
                                                                                     "Focuser Simulator"]
    response = manager.post("/api/drivers/start/Ghost")
    assert response.status_code == 500 and "indi_no_such_driver not found" in response.json()["detail"]

    manager.ok("POST", "/api/drivers/stop/Filter Simulator")
    assert [d["label"] for d in manager.ok("GET", "/api/server/drivers")] == ["Focuser Simulator"]
    stopped = manager.full_status()["stopped_drivers"]
    assert [(d["name"], d["state"]) for d in stopped] == [("indi_simulator_wheel", "stopped")]
    response = manager.post("/api/drivers/stop/Filter Simulator")
    assert response.status_code == 404 and "not running" in response.json()["detail"]


def test_driver_scripts_run_without_a_shell_and_are_refused_when_not_executable(web, tmp_path):
    log = tmp_path / "scripts.log"
    stopping = write_script(tmp_path / "stopping.sh", f'echo "stopping $1" >> {log}\n')
    stopped = write_script(tmp_path / "stopped.sh", f"echo stopped >> {log}\n")
    not_executable = write_script(tmp_path / "plain.sh", f"echo never >> {log}\n", mode=0o644)
    rules = [{"Driver": "Focuser Simulator", "StoppingScript": [stopping, "focuser; rm -rf /"],
              "StoppingDelay": 0.1, "StoppedDelay": "0.1", "StoppedScript": stopped},
             {"Driver": "Dome Simulator", "PreScript": not_executable}]
    manager = web()
    profile(manager, "Scripted", ["Focuser Simulator", "Dome Simulator"], scripts=rules)
    started = manager.ok("POST", "/api/server/start/Scripted")
    assert started["problems"] == ["Dome Simulator: its PreScript failed: driver not started"]
    assert [d["label"] for d in manager.ok("GET", "/api/server/drivers")] == ["Focuser Simulator"]
    assert f"script {not_executable} is not executable" in manager.log_text()

    manager.ok("POST", "/api/drivers/stop/Focuser Simulator")
    # One argument, as given: no shell ever saw the semicolon.
    assert log.read_text().splitlines() == ["stopping focuser; rm -rf /", "stopped"]
    assert manager.descendants() == [manager.full_status()["pid"]]


def processes_with(argument: str) -> list[int]:
    """Live processes, anywhere, with this exact argument on their command line."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if argument.encode() in f.read().split(b"\0") and pid_alive(int(entry)):
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


def test_a_script_that_hangs_is_killed_after_the_timeout(web, tmp_path):
    marker = f"{time.time() % 1000 + 3600:.6f}"  # a sleep nobody else runs
    hang = write_script(tmp_path / "hang.sh", f"sleep {marker} &\nwait\n")
    manager = web("--script-timeout", "1")
    profile(manager, "Hang", ["Focuser Simulator"], scripts=[{"Driver": "Focuser Simulator", "PostScript": hang}])
    start = time.monotonic()
    started = manager.ok("POST", "/api/server/start/Hang")
    assert time.monotonic() - start < 8
    assert started["problems"] == ["Focuser Simulator: its PostScript failed"]
    assert "still running after 1 s: killed" in manager.log_text()
    # The script's own child went with it (its process group was killed), not left to init.
    wait_until(lambda: not processes_with(marker), what="the script's sleep killed")
    assert [d["label"] for d in manager.ok("GET", "/api/server/drivers")] == ["Focuser Simulator"]


def test_indi_web_exit_kills_a_script_still_running(web, tmp_path):
    marker = f"{time.time() % 1000 + 7200:.6f}"
    hang = write_script(tmp_path / "hang.sh", f"sleep {marker} &\nwait\n")
    first = web("--no-autostart")
    profile(first, "Slow", ["Focuser Simulator"], autostart=1,
            scripts=[{"Driver": "Focuser Simulator", "PreScript": hang}])
    first.stop()
    manager = web()  # the autostart profile starts, and its PreScript hangs
    wait_for(lambda: processes_with(marker), what="the PreScript running")
    server_pid = manager.full_status()["pid"]
    assert manager.stop(signal.SIGTERM) == 0
    wait_until(lambda: not processes_with(marker) and not pid_alive(server_pid), what="script and server gone")


def test_remote_drivers_of_another_server(web, servers, home_env):
    other = servers.ours(our_simulator("focus"), env=home_env)
    spec = f"Focuser Simulator@127.0.0.1:{other.port}"
    manager = web()
    profile(manager, "Chained", ["Telescope Simulator"], remote=[spec], autoconnect=0)
    manager.ok("POST", "/api/server/start/Chained")
    running = manager.ok("GET", "/api/server/drivers")
    assert {"name": spec, "label": spec, "skeleton": None, "version": "1.0", "binary": spec, "family": "Remote",
            "mdpd": False, "custom": False, "rule": None, "role": ""} in running
    wait_for(lambda: {d["device"] for d in manager.ok("GET", "/api/devices")} == {"Telescope Simulator",
                                                                                  "Focuser Simulator"},
             what="remote device listed")

    manager.ok("POST", f"/api/drivers/stop_remote/{spec}")
    assert [d["binary"] for d in manager.ok("GET", "/api/server/drivers")] == ["indi_simulator_telescope"]
    manager.ok("POST", f"/api/drivers/start_remote/{spec}")
    assert spec in [d["binary"] for d in manager.ok("GET", "/api/server/drivers")]


def test_device_lists_from_the_client_library_and_the_framed_client(servers, home_env):
    server = servers.ours(our_simulator("focus"), our_simulator("wheel"), env=home_env)
    expected = [{"device": "Filter Simulator", "connected": True}, {"device": "Focuser Simulator", "connected": True}]
    names = {d["device"] for d in expected}
    # Our indiserver connects the devices by itself, shortly after they are defined.
    wait_for(lambda: asyncio.run(list_devices("127.0.0.1", server.port, names)) == expected,
             what="both devices listed as connected")
    assert asyncio.run(list_devices_framed("127.0.0.1", server.port, names)) == expected
    assert asyncio.run(list_devices_framed("127.0.0.1", server.port, set())) == []


def test_a_server_killed_from_outside_is_reported(web):
    manager = web()
    profile(manager, "Fragile", ["Focuser Simulator"])
    manager.ok("POST", "/api/server/start/Fragile")
    status = manager.full_status()
    os.kill(status["pid"], signal.SIGKILL)
    wait_for(lambda: manager.ok("GET", "/api/server/status") == [{"status": "False", "active_profile": ""}],
             what="server reported down")
    full = manager.full_status()
    assert full["running"] is False and "killed by signal 9" in full["last_exit"]
    assert manager.ok("GET", "/api/server/drivers") == []
    # Its driver dies with it (the kernel's parent-death signal), and the profile starts again.
    wait_until(lambda: not pid_alive(status["drivers"][0]["pid"]), what="orphaned driver gone")
    manager.ok("POST", "/api/server/start/Fragile")
    assert [d["label"] for d in manager.ok("GET", "/api/server/drivers")] == ["Focuser Simulator"]


def test_server_options_reach_the_server_and_indi_web_still_connects(web):
    # Only 127.0.0.3 may connect; indi-web adds 127.0.0.1 for its own connections (device lists).
    manager = web("--server-options=--allow 127.0.0.3 --max-restarts 2")
    port = profile(manager, "Guarded", ["Weather Simulator"], autoconnect=1)
    manager.ok("POST", "/api/server/start/Guarded")
    command = manager.full_status()["command"]
    assert command[-6:] == ["--allow", "127.0.0.3", "--max-restarts", "2", "--allow", "127.0.0.1"], command
    wait_for(lambda: manager.ok("GET", "/api/devices") == [{"device": "Weather Simulator", "connected": True}],
             what="Weather Simulator listed by indi-web")

    def served_from(source: str) -> bool:
        with socket.socket() as sock:
            sock.bind((source, 0))
            sock.settimeout(10)
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"<getProperties version='1.7'/>\n")
            try:
                return sock.recv(65536) != b""
            except ConnectionResetError:
                return False

    assert served_from("127.0.0.3")
    assert not served_from("127.0.0.2")
