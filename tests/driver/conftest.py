"""tests/driver: every test that runs drivers gets their leftovers reaped.

A driver of a test is recognised by its HOME (home_env's, unique to the test). After the servers
are stopped, any such process still alive is killed by pid, so that a driver that does not leave
when its server does (see test_a_driver_leaves_when_its_server_goes_away) cannot linger.
"""

from __future__ import annotations

import pytest
from framework_helpers import reap


@pytest.fixture(autouse=True)
def _reap_leftover_drivers(home_env):
    yield  # torn down after the servers fixture, which the test requested later
    reap(home_env["HOME"])
