"""What KStars/Ekos does with a remote Web Manager, request by request, against a real indi-web.

Ekos (kstars/indi/indiwebmanager.cpp, kstars/ekos/manager.cpp): check the manager is online, send
the profile's custom drivers, read the version, look at the running drivers, then (not running)
stop, create the profile, PUT its port/autoconnect/scripts (scripts as a JSON array), POST its
drivers, start it, and require every profile driver's executable among the running drivers'
``binary`` ("Driver X failed to start on the remote INDI server" otherwise). Restarting a driver
uses its device name; disconnecting stops the server.
"""

from __future__ import annotations

import os
import socket

import pytest
from web_helpers import INDI_GETPROP, indi_getprop, wait_for

from helpers import free_port, pid_alive, wait_until

PROFILE = "Ekos Remote"
CUSTOM = {"Label": "My Dome", "Name": "My Dome", "Family": "Domes", "Exec": "indi_simulator_dome", "Version": "1.0"}
LABELS = ["Telescope Simulator", "CCD Simulator", "My Dome"]
EXECUTABLES = {"indi_simulator_telescope", "indi_simulator_ccd", "indi_simulator_dome"}


def write_script(path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_ekos_remote_profile_sequence(web, tmp_path):
    indi_port = free_port()
    log = tmp_path / "scripts.log"
    pre = write_script(tmp_path / "pre.sh", f"echo pre >> {log}\n")
    post = write_script(tmp_path / "post.sh", f"echo post >> {log}\n")
    manager = web()

    # 1. Online? (a TCP connection; older versions GET /api/server/status)
    socket.create_connection(("127.0.0.1", manager.port), timeout=5).close()
    assert manager.ok("GET", "/api/server/status") == [{"status": "False", "active_profile": ""}]
    # 2. The profile's custom drivers.
    assert "message" in manager.ok("POST", "/api/profiles/custom/add", json=CUSTOM)
    # 3. The version: an object with "version".
    assert isinstance(manager.ok("GET", "/api/info/version")["version"], str)
    # 4. Running drivers: an array (none yet).
    assert manager.ok("GET", "/api/server/drivers") == []
    # 5. Not running: stop, create the profile, set it up, its drivers, start.
    manager.ok("POST", "/api/server/stop")
    manager.ok("POST", f"/api/profiles/{PROFILE}")
    rules = [{"Driver": "Telescope Simulator", "PreDelay": 0, "PreScript": pre, "PostDelay": 0, "PostScript": post,
              "StoppingScript": "", "StoppingDelay": 0, "StoppedDelay": 0, "StoppedScript": ""}]
    manager.ok("PUT", f"/api/profiles/{PROFILE}",
               json={"port": indi_port, "driver_source": 0, "autoconnect": 1, "scripts": rules})
    manager.ok("POST", f"/api/profiles/{PROFILE}/drivers", json=[{"label": label} for label in LABELS])
    started = manager.ok("POST", f"/api/server/start/{PROFILE}")
    assert "problems" not in started, started

    assert manager.ok("GET", "/api/server/status") == [{"status": "True", "active_profile": PROFILE}]
    running = manager.ok("GET", "/api/server/drivers")
    assert EXECUTABLES <= {d["binary"] for d in running}, running
    assert {d["label"] for d in running} == set(LABELS)
    telescope = next(d for d in running if d["label"] == "Telescope Simulator")
    assert telescope["rule"]["PreScript"] == pre and telescope["family"] == "Telescopes"
    assert log.read_text().splitlines() == ["pre", "post"]  # the rule's scripts ran around its start

    # The drivers really run on the profile's port, and autoconnect connected their devices.
    def connected():
        devices = manager.ok("GET", "/api/devices")
        return devices if {d["device"] for d in devices} == set(LABELS) and all(d["connected"] for d in devices) \
            else None
    wait_for(connected, what="every device connected")
    if os.access(INDI_GETPROP, os.X_OK):
        props = indi_getprop(indi_port, "*.CONNECTION.CONNECT")
        assert props == {f"{label}.CONNECTION.CONNECT": "On" for label in LABELS}, props

    # 6. Restart a driver by its device name, as Ekos does.
    ccd_pid = next(d["pid"] for d in manager.full_status()["drivers"] if d["label"] == "CCD Simulator")
    manager.ok("POST", "/api/drivers/restart/CCD Simulator")
    ccd = [d for d in manager.full_status()["drivers"] if d["label"] == "CCD Simulator"]
    assert len(ccd) == 1 and ccd[0]["pid"] != ccd_pid and ccd[0]["state"] == "running"
    assert not pid_alive(ccd_pid)
    assert EXECUTABLES <= {d["binary"] for d in manager.ok("GET", "/api/server/drivers")}

    # On disconnect: stop. Nothing is left: not the server, not a driver.
    pids = [d["pid"] for d in manager.full_status()["drivers"]] + [manager.full_status()["pid"]]
    assert set(pids) <= set(manager.descendants())
    manager.ok("POST", "/api/server/stop")
    assert manager.ok("GET", "/api/server/status") == [{"status": "False", "active_profile": ""}]
    assert manager.ok("GET", "/api/server/drivers") == []
    assert manager.descendants() == []
    wait_until(lambda: not any(pid_alive(p) for p in pids), what="server and drivers gone")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", indi_port), timeout=2).close()
