"""--status PATH: the server's state as JSON on a local socket, the truth indi-web reports."""

from __future__ import annotations

import json
import os
import signal
import socket

from helpers import wait_until


def read_status(path: str) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(path)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            assert chunk, "status socket closed before a whole answer"
            data += chunk
    return json.loads(data)


def test_status_reports_drivers_clients_restarts_and_log(servers, relay, tmp_path):
    path = str(tmp_path / "status.sock")
    server = servers.ours("--status", path, relay.driver, env=relay.env)
    driver = relay.accept()
    driver.expect("getProperties")
    driver.send("<defTextVector device='Dev S' name='P' state='Idle' perm='ro'><defText name='t'>x</defText>"
                "</defTextVector>\n")
    driver.ping()
    client = server.connect()
    client.send("<getProperties version='1.7'/>\n")
    client.ping()

    status = read_status(path)
    assert status["pid"] == server.proc.pid and status["port"] == server.port
    [entry] = status["drivers"]
    assert entry["name"] == relay.driver and entry["state"] == "running" and entry["pid"] == driver.pid
    assert entry["devices"] == ["Dev S"] and entry["restarts"] == 0
    [peer] = status["clients"]
    assert peer["address"].startswith("127.0.0.1:") and peer["bytes_in"] > 0 and peer["bytes_out"] > 0
    assert any("new arrival" in line for line in status["log"])

    # A driver that dies shows as restarted, with how it died; the truth, not the plan.
    os.kill(driver.pid, signal.SIGKILL)
    restarted = relay.accept()
    restarted.expect("getProperties")
    status = read_status(path)
    [entry] = status["drivers"]
    assert entry["restarts"] == 1 and entry["pid"] == restarted.pid
    assert "killed by signal 9" in entry["last_exit"]


def test_status_socket_is_removed_when_the_server_stops(servers, relay, tmp_path):
    path = str(tmp_path / "status.sock")
    server = servers.ours("--status", path, relay.driver, env=relay.env)
    relay.accept().expect("getProperties")
    assert read_status(path)["drivers"]
    server.stop()
    wait_until(lambda: not os.path.exists(path), what="status socket removed")
