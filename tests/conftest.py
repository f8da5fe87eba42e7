"""Fixtures: servers that are always stopped, puppet drivers, and the reference peers' availability."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from helpers import (  # noqa: E402
    RELAY_DRIVER,
    RelayListener,
    ServerProcess,
    have_reference,
    isolated_env,
    start_ours,
    start_reference,
)


@pytest.fixture
def servers():
    """Start servers with servers.ours(...) / servers.reference(...); all are stopped afterwards."""
    started: list[ServerProcess] = []

    class Factory:
        @staticmethod
        def ours(*args, env=None, wait=True) -> ServerProcess:
            server = start_ours(*args, env=env, wait=wait)
            started.append(server)
            return server

        @staticmethod
        def reference(*args, env=None) -> ServerProcess:
            if not have_reference():
                pytest.skip("Debian's indi-bin is not installed (apt-get install indi-bin)")
            server = start_reference(*args, env=env)
            started.append(server)
            return server

    yield Factory
    for server in started:
        server.stop()


@pytest.fixture
def relay(tmp_path):
    """A listener for puppet drivers, and the environment that points relay_driver.py at it."""
    listener = RelayListener(tmp_path)
    listener.env = dict(os.environ, INDI_TEST_RELAY=listener.path)
    listener.driver = RELAY_DRIVER
    yield listener
    listener.close()


@pytest.fixture
def home_env(tmp_path):
    """Environment with HOME in tmp_path: drivers' ~/.indi configurations stay in the test."""
    home = tmp_path / "home"
    home.mkdir()
    return isolated_env(home)


@pytest.fixture
def reference_required():
    if not have_reference():
        pytest.skip("Debian's indi-bin is not installed (apt-get install indi-bin)")
