"""Password protection: off by default; with --password the REST API and /ws need the session cookie
of a login or the API token, and the login page's own routes stay reachable."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess

import httpx
import pytest
from web_helpers import INDI_WEB
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from indi.web.auth import (
    AUTH_FILE,
    COOKIE,
    AuthError,
    hash_password,
    read_new_password,
    set_password,
    verify_password,
)

TIMEOUT = 30.0
PASSWORD = "correct horse battery staple"


def indi_web(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([INDI_WEB, *args], input=stdin, capture_output=True, text=True, env=env, timeout=TIMEOUT)


def one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    line = result.stderr.strip()
    assert line.startswith("indi-web: ")
    for needle in needles:
        assert needle in line, line
    return line


def socket_status(port: int, **kwargs) -> dict:
    """Open /ws and return its first message (the status)."""
    with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=TIMEOUT, **kwargs) as ws:
        return json.loads(ws.recv(timeout=TIMEOUT))


def refused(port: int, **kwargs) -> int:
    """The HTTP status with which /ws refuses the handshake."""
    with pytest.raises(InvalidStatus) as info:
        socket_status(port, **kwargs)
    return info.value.response.status_code


def test_password_hashes():
    record = hash_password(PASSWORD)
    assert record["scheme"] == "scrypt" and {"n", "r", "p", "dklen", "salt", "hash"} <= set(record)
    assert PASSWORD not in json.dumps(record)
    assert verify_password(PASSWORD, record) and not verify_password(PASSWORD + " ", record)
    assert hash_password(PASSWORD)["hash"] != record["hash"]          # salted
    assert not verify_password(PASSWORD, {**record, "n": 2 ** 40})  # absurd parameters are refused
    assert not verify_password(PASSWORD, {"scheme": "plain", "hash": PASSWORD})


def test_a_new_password_is_asked_twice_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = iter(["one", "one", "one", "two"])
    assert read_new_password(Terminal(), lambda prompt: next(answers)) == "one"
    with pytest.raises(AuthError, match="differ"):
        read_new_password(Terminal(), lambda prompt: next(answers))
    assert read_new_password(io.StringIO("piped\nignored\n")) == "piped"
    with pytest.raises(AuthError, match="empty"):
        read_new_password(io.StringIO(""))


def test_set_password_show_token_and_password_without_one(tmp_path, home_env):
    conf = tmp_path / "conf"
    result = indi_web(["--conf", str(conf), "--password", "--port", "0"], home_env)
    one_line_error(result, "--password", "no password is set", "--set-password")

    result = indi_web(["--conf", str(conf), "--set-password"], home_env, stdin=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    path = conf / AUTH_FILE
    assert str(path) in result.stdout and "--password" in result.stdout
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    assert PASSWORD not in text
    record = json.loads(text)
    assert verify_password(PASSWORD, record["password"]) and record["password"]["n"] >= 2 ** 14

    first = indi_web(["--conf", str(conf), "--show-token"], home_env)
    second = indi_web(["--conf", str(conf), "--show-token"], home_env)
    assert first.returncode == 0 and first.stdout == second.stdout
    token = first.stdout.strip()
    assert len(token) >= 32 and token == json.loads(path.read_text())["token"]

    # A new password keeps the token; an empty one changes nothing.
    assert indi_web(["--conf", str(conf), "--set-password"], home_env, stdin="another\n").returncode == 0
    record = json.loads(path.read_text())
    assert record["token"] == token and verify_password("another", record["password"])
    one_line_error(indi_web(["--conf", str(conf), "--set-password"], home_env, stdin="\n"), "empty")
    assert verify_password("another", json.loads(path.read_text())["password"])

    # --show-token alone makes one (no password needed for that).
    other = tmp_path / "other"
    token = indi_web(["--conf", str(other), "--show-token"], home_env).stdout.strip()
    assert token and stat.S_IMODE(os.stat(other / AUTH_FILE).st_mode) == 0o600


def test_with_password_everything_needs_the_cookie_or_the_token(web, tmp_path, home_env):
    conf = tmp_path / "conf"
    set_password(str(conf), PASSWORD)
    token = indi_web(["--conf", str(conf), "--show-token"], home_env).stdout.strip()
    manager = web("--password", "--no-autostart", conf_dir=conf)
    base = f"http://127.0.0.1:{manager.port}"

    # What the page needs to show its login form.
    assert manager.get("/api/auth/status").json() == {"required": True, "authenticated": False}
    assert manager.get("/").status_code == 200
    # Everything else: 401 without credentials, or with wrong ones.
    for path in ("/api/profiles", "/api/server/status/full", "/api/preview/CCD/CCD1/CCD1.png", "/openapi.json"):
        answer = manager.get(path)
        assert answer.status_code == 401 and "detail" in answer.json(), path
    assert manager.post("/api/server/stop").status_code == 401
    assert manager.get("/api/profiles", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert manager.get("/api/profiles", headers={"Cookie": f"{COOKIE}=forged.cookie"}).status_code == 401
    assert refused(manager.port) == 403
    assert refused(manager.port, additional_headers={"Authorization": "Bearer nope"}) == 403

    # The token (scripts).
    bearer = {"Authorization": f"Bearer {token}"}
    answer = manager.get("/api/profiles", headers=bearer)
    assert answer.status_code == 200 and answer.json()[0]["name"] == "Simulators"
    assert socket_status(manager.port, additional_headers=bearer)["type"] == "status"
    # Reboot stays refused unless indi-web was started with --allow-reboot, credentials or not.
    assert manager.post("/api/system/reboot", headers=bearer).status_code == 403

    # The login (browsers).
    with httpx.Client(base_url=base, timeout=TIMEOUT) as browser:
        wrong = browser.post("/api/auth/login", json={"password": "guess"})
        assert wrong.status_code == 401 and COOKIE not in browser.cookies
        good = browser.post("/api/auth/login", json={"password": PASSWORD})
        assert good.status_code == 200 and good.json() == {"required": True, "authenticated": True}
        cookie_header = good.headers["set-cookie"].lower()
        assert "httponly" in cookie_header and "samesite=strict" in cookie_header and "path=/" in cookie_header
        cookie = browser.cookies[COOKIE]
        assert browser.get("/api/auth/status").json() == {"required": True, "authenticated": True}
        assert browser.get("/api/profiles").status_code == 200
        assert browser.get("/api/server/status/full").json()["running"] is False

        session = {"Cookie": f"{COOKIE}={cookie}"}
        assert socket_status(manager.port, additional_headers=session)["status"]["running"] is False
        assert socket_status(manager.port, additional_headers=session, origin=base)["type"] == "status"
        # Another site's page cannot use the browser's cookie for the socket.
        assert refused(manager.port, additional_headers=session, origin="http://evil.example") == 403

        assert browser.post("/api/auth/logout").status_code == 200
        assert browser.get("/api/profiles").status_code == 401
    assert manager.get("/api/profiles", headers=session).status_code == 401   # that session is over
    assert refused(manager.port, additional_headers=session) == 403
    assert "failed login" in manager.log_text()


def test_without_password_everything_is_open(app_client, tmp_path):
    set_password(str(tmp_path / "conf"), PASSWORD)   # stored, but not asked for (no --password)
    client = app_client()
    assert client.get("/api/auth/status").json() == {"required": False, "authenticated": True}
    assert client.get("/api/profiles").status_code == 200
    assert client.post("/api/auth/login", json={"password": "anything"}).status_code == 200
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "status"


def test_in_process_password_and_a_changed_password_ends_sessions(app_client, tmp_path):
    conf = tmp_path / "conf"
    set_password(str(conf), PASSWORD)
    client = app_client(password=True)
    assert client.get("/api/profiles").status_code == 401
    assert client.post("/api/auth/login", json={}).status_code == 422
    assert client.post("/api/auth/login", json={"password": PASSWORD}).status_code == 200
    assert client.get("/api/profiles").status_code == 200
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "status"
    set_password(str(conf), "changed")
    assert client.get("/api/profiles").status_code == 401
    assert client.post("/api/auth/login", json={"password": "changed"}).status_code == 200
    assert client.get("/api/profiles").status_code == 200
