"""Helpers for testing the driver framework through real processes.

The test drivers in drivers/ are executable Python files built on indi.driver; they run under our
indiserver (always with -n: ours connects devices by itself otherwise) or Debian's. Their
shebang is ``/usr/bin/env python3``, so the environment puts this virtualenv's bin first on PATH.
A client is a Peer that asked for every device's properties; everything here waits for elements
with a deadline.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers import OUR_BIN, Peer, pid_alive
from indi.protocol import DefVector, Frame, Message, SetVector, parse, xml_attributes

DRIVERS = Path(__file__).resolve().parent / "drivers"
BASIC = str(DRIVERS / "basic.py")
TIMERS = str(DRIVERS / "timers.py")
SNOOPER = str(DRIVERS / "snooper.py")
BLOBBER = str(DRIVERS / "blobber.py")

BASIC_DEVICE = "Framework Test"
TIMER_DEVICE = "Timer Test"
SNOOP_DEVICE = "Snoop Test"
BLOB_DEVICE = "BLOB Test"

SERVER_KINDS = ["ours", "reference"]
WAIT = 20.0  # a deadline, never a delay: only a failing test waits this long
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$")


def driver_env(home_env: dict[str, str], **extra: str) -> dict[str, str]:
    """home_env with this virtualenv's python first on PATH (for the drivers' shebang) and extras."""
    env = dict(home_env, **extra)
    env["PATH"] = OUR_BIN + os.pathsep + env.get("PATH", "")
    return env


def start_server(servers, kind: str, *drivers: str, env: dict[str, str]):
    """Our indiserver (-n: no automatic connection) or the reference one, running these drivers."""
    if kind == "ours":
        return servers.ours("-n", *drivers, env=env)
    return servers.reference(*drivers, env=env)


def client(server) -> Peer:
    """A client that asked for every device's properties."""
    peer = server.connect()
    peer.send("<getProperties version='1.7'/>\n")
    return peer


# ------------------------------------------------------------------------------------- waiting
def collect_until(peer: Peer, match: Callable[[Frame], bool], timeout: float = WAIT, what: str = "") -> list[Frame]:
    """Every frame received up to and including the first that matches."""
    deadline = time.monotonic() + timeout
    seen: list[Frame] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{peer.name}: no {what or 'matching element'} within {timeout} s; last seen: "
                                 f"{[f'<{f.tag} {f.attrs}>' for f in seen[-10:]]}")
        try:
            frame = peer.next(timeout=remaining)
        except AssertionError:
            continue
        seen.append(frame)
        if match(frame):
            return seen


def is_vector(frame: Frame, device: str, name: str, op: str = "set") -> bool:
    return frame.tag.startswith(op) and frame.tag.endswith("Vector") and frame.attrs.get("device") == device \
        and frame.attrs.get("name") == name


def wait_vector(peer: Peer, device: str, name: str, op: str = "set", where: Callable[[Any], bool] = lambda e: True,
                timeout: float = WAIT) -> Any:
    """The next def/set of device.name (parsed) for which ``where`` holds."""
    frames = collect_until(peer, lambda f: is_vector(f, device, name, op) and where(parse(f)), timeout,
                           f"{op} {device}.{name} as expected")
    return parse(frames[-1])


def wait_defs(peer: Peer, device: str, last: str, timeout: float = WAIT) -> dict[str, DefVector]:
    """The definitions received up to that of ``last``, by property name."""
    frames = collect_until(peer, lambda f: is_vector(f, device, last, "def"), timeout, f"def {device}.{last}")
    return {e.name: e for e in map(parse, (f for f in frames if is_vector(f, device, f.attrs.get("name", ""), "def")))}


def wait_names(peer: Peer, device: str, names: set[str], tag: str = "def", timeout: float = WAIT) -> list[Frame]:
    """Everything received until each of these properties of device has had an element whose tag
    starts with ``tag`` ("def", "set", "delProperty")."""
    missing = set(names)

    def done(frame: Frame) -> bool:
        if frame.tag.startswith(tag) and frame.attrs.get("device") == device:
            missing.discard(frame.attrs.get("name", ""))
        return not missing
    return collect_until(peer, done, timeout, f"<{tag}...> for each of {sorted(names)}")


def wait_message(peer: Peer, device: str, pattern: str, timeout: float = WAIT) -> tuple[Message, list[Frame]]:
    """The next message from device matching the regex, and everything received until then."""
    regex = re.compile(pattern)
    frames = collect_until(peer, lambda f: f.tag == "message" and f.attrs.get("device") == device
                           and bool(regex.search(f.attrs.get("message", ""))), timeout, f"message /{pattern}/")
    return parse(frames[-1]), frames


def values(element: Any) -> dict[str, Any]:
    return {member.name: member.value for member in element.members}


def messages(frames: list[Frame]) -> list[str]:
    return [f.attrs.get("message", "") for f in frames if f.tag == "message"]


# ------------------------------------------------------------------------------------ sending
def new_vector(kind: str, device: str, name: str, **members: Any) -> str:
    """newXXXVector for kind Switch/Number/Text; a member called "Scan Ports" can be passed with a dict."""
    body = "".join(f"<one{kind}{xml_attributes([('name', member)])}>{value}</one{kind}>"
                   for member, value in members.items())
    return f"<new{kind}Vector{xml_attributes([('device', device), ('name', name)])}>{body}</new{kind}Vector>\n"


def new_switch(device: str, name: str, **members: str) -> str:
    return new_vector("Switch", device, name, **members)


def new_number(device: str, name: str, **members: Any) -> str:
    return new_vector("Number", device, name, **members)


def new_text(device: str, name: str, **members: str) -> str:
    return new_vector("Text", device, name, **members)


def set_connected(peer: Peer, device: str, on: bool = True) -> SetVector:
    """Connect or disconnect; returns the CONNECTION update that says it is done."""
    peer.send(new_switch(device, "CONNECTION", **({"CONNECT": "On"} if on else {"DISCONNECT": "On"})))
    return wait_vector(peer, device, "CONNECTION", where=lambda e: e.state == ("Ok" if on else "Idle")
                       and values(e)["CONNECT"] == ("On" if on else "Off"))


def round_trip(peer: Peer, device: str) -> list[Frame]:
    """Everything received until the device has handled one more request: CONFIG_PROCESS with no
    switch On, a no-op every framework device answers. The device handles requests in order and
    servers forward in order, so whatever an earlier request caused has arrived by then."""
    peer.send(new_switch(device, "CONFIG_PROCESS", CONFIG_LOAD="Off"))
    return collect_until(peer, lambda f: is_vector(f, device, "CONFIG_PROCESS"), what=f"{device} round trip")


# ---------------------------------------------------------------------------------- cleaning up
def processes_with_home(home: str) -> list[int]:
    """Live processes whose environment has exactly this HOME (a test's drivers and servers)."""
    token = f"\0HOME={home}\0".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    environment = b"\0" + f.read()
            except OSError:
                continue
            if token in environment and pid_alive(int(entry)):
                found.append(int(entry))
    return found


def reap(home: str) -> list[int]:
    """Kill (by pid) whatever a test left running with its HOME; returns the pids killed."""
    pids = processes_with_home(home)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids
