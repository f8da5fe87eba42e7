"""Fixtures for indi-web: real ``indi-web`` processes (with HOME and --conf in tmp_path) and an
in-process application for the API's database and catalogue behaviour (no INDI server there)."""

from __future__ import annotations

import warnings

import pytest
from web_helpers import WebProcess, system_xmldir

from helpers import pid_alive, wait_until
from indi.web import WebConfig, create_app
from indi.web.state import WebState


@pytest.fixture
def web(tmp_path, home_env):
    """Start indi-web processes with web(*args); each is stopped (SIGTERM) afterwards, and must leave
    no process behind."""
    started: list[WebProcess] = []
    conf = tmp_path / "conf"

    def start(*args: str, conf_dir=conf, xmldir: list[str] | None = None, env=None) -> WebProcess:
        process = WebProcess(["--conf", str(conf_dir), *(system_xmldir() if xmldir is None else xmldir), *args],
                             env or home_env)
        started.append(process)
        return process

    yield start
    for process in started:
        descendants = process.descendants()
        process.stop()
        for pid in descendants:
            wait_until(lambda pid=pid: not pid_alive(pid), what=f"process {pid} of indi-web gone")


@pytest.fixture
def app_client(tmp_path):
    """An in-process indi-web (no INDI server is started) with its database in tmp_path."""
    with warnings.catch_warnings():
        # Starlette now prefers httpx2 for its TestClient; httpx (our test dependency) still works.
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    clients = []

    def make(xml_dir: str | None = None, **config) -> TestClient:
        conf = config.pop("conf_dir", str(tmp_path / "conf"))
        config.setdefault("autostart", False)  # no INDI server in-process: autostart is tested with processes
        cfg = WebConfig(conf_dir=conf, xml_dir=xml_dir if xml_dir is not None else str(tmp_path / "no-xml"),
                        **config)
        state = WebState(cfg)
        client = TestClient(create_app(cfg, state))
        client.__enter__()
        clients.append((client, state))
        return client

    yield make
    for client, state in clients:
        client.__exit__(None, None, None)
        state.close()

