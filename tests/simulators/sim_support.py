"""What the dome, GPS and weather simulator tests share: a client that keeps the properties it
has seen, waits for conditions on them with deadlines, and compares definitions with the
recordings of Debian's C++ simulators (tests/simulators/reference/*.json).

Servers come from the ``servers`` fixture: ours with -n (devices are connected by the tests, as
with the reference server), or /usr/bin/indiserver. Our simulators are always run by full path.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import Peer, our_simulator
from indi.protocol import DefVector, DelProperty, Message, ProtocolError, SetVector, parse

REFERENCE = Path(__file__).resolve().parent / "reference"
TELESCOPE = "Telescope Simulator"
CPP_TELESCOPE = "/usr/bin/indi_simulator_telescope"
WAIT = 20.0


def start(servers, which: str, *drivers: str, env: dict[str, str]):
    """Our server (-n: nothing connects by itself) or the reference one, running these drivers;
    a bare name is our simulator of that kind ("dome"), a path is used as it is."""
    paths = [driver if driver.startswith("/") else our_simulator(driver) for driver in drivers]
    return servers.ours("-n", *paths, env=env) if which == "ours" else servers.reference(*paths, env=env)


@dataclass
class Prop:
    """A property as a client sees it: its definition, state and member values, and every update."""
    definition: DefVector
    state: Any
    values: dict[str, Any]
    history: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)


class Client:
    """An INDI client over a Peer that remembers what it has seen."""

    def __init__(self, server) -> None:
        self.server = server
        self.peer: Peer = server.connect()
        self.props: dict[tuple[str, str], Prop] = {}
        self.messages: list[str] = []

    def close(self) -> None:
        """Disconnect; and no driver may have hit a bug meanwhile (their stderr is in the server's log)."""
        self.peer.close()
        log = self.server.log_text()
        assert "Traceback" not in log, log[log.index("Traceback") - 200:][:3000]

    # ------------------------------------------------------------------------------ reading
    def pump(self, deadline: float) -> bool:
        """Read and file one element; False if none came before the deadline."""
        try:
            frame = self.peer.next(timeout=max(0.01, deadline - time.monotonic()))
        except AssertionError:
            return False
        self.file(frame)
        return True

    def file(self, frame) -> None:
        try:
            element = parse(frame)
        except ProtocolError:
            return
        if isinstance(element, DefVector):
            values = {m.name: m.value for m in element.members}
            prop = self.props.get((element.device, element.name))
            if prop is None:  # a definition again (another getProperties) continues the history
                prop = self.props[(element.device, element.name)] = Prop(element, element.state, values)
            prop.definition, prop.state, prop.values = element, element.state, values
            prop.history.append((element.state, dict(values)))
        elif isinstance(element, SetVector):
            prop = self.props.get((element.device, element.name))
            if prop is not None:
                prop.values.update({m.name: m.value for m in element.members})
                if element.state is not None:
                    prop.state = element.state
                prop.history.append((prop.state, dict(prop.values)))
        elif isinstance(element, DelProperty):
            for key in [k for k in self.props if k[0] == element.device and element.name in (None, k[1])]:
                del self.props[key]
        elif isinstance(element, Message) and element.message:
            self.messages.append(element.message)

    def wait(self, condition, timeout: float = WAIT, what: str = "condition") -> Any:
        """Read until condition() is true (its value is returned), or fail after timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = condition()
            except KeyError:
                value = None
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"{what}: not within {timeout} s; last messages {self.messages[-5:]}")
            self.pump(deadline)

    def drain(self) -> None:
        """File whatever has already arrived."""
        while self.pump(time.monotonic() + 0.01):
            pass

    # ------------------------------------------------------------------------------ looking
    def prop(self, device: str, name: str) -> Prop:
        return self.props[(device, name)]

    def value(self, device: str, name: str, member: str) -> Any:
        return self.props[(device, name)].values[member]

    def state(self, device: str, name: str) -> str:
        return str(self.props[(device, name)].state)

    def mark(self, device: str, name: str) -> int:
        """How many updates of a property have been seen (for updates_since)."""
        prop = self.props.get((device, name))
        return len(prop.history) if prop else 0

    def updates_since(self, device: str, name: str, mark: int) -> list[tuple[Any, dict[str, Any]]]:
        return self.props[(device, name)].history[mark:]

    # ------------------------------------------------------------------------------ sending
    def get_properties(self, device: str | None = None) -> None:
        attribute = f" device='{device}'" if device else ""
        self.peer.send(f"<getProperties version='1.7'{attribute}/>\n")

    def wait_defined(self, device: str, name: str, timeout: float = WAIT) -> Prop:
        """Wait for a definition, asking for the properties if the device is not known yet, and
        again now and then (a driver that has just started may have missed the first request)."""
        deadline = time.monotonic() + timeout
        ask = not any(known == device for known, _ in self.props)
        while (device, name) not in self.props:
            if ask:
                self.get_properties()
            ask = True
            try:
                return self.wait(lambda: self.props.get((device, name)), min(2.0, deadline - time.monotonic()),
                                 f"{device}.{name} defined")
            except AssertionError:
                if time.monotonic() >= deadline:
                    raise
        return self.props[(device, name)]

    def send_new(self, kind: str, device: str, name: str, values: dict[str, Any]) -> None:
        members = "".join(f"<one{kind} name='{member}'>{value}</one{kind}>" for member, value in values.items())
        self.peer.send(f"<new{kind}Vector device='{device}' name='{name}'>{members}</new{kind}Vector>\n")

    def numbers(self, device: str, name: str, **values: float) -> None:
        self.send_new("Number", device, name, values)

    def switches(self, device: str, name: str, *on: str, off: tuple[str, ...] = ()) -> None:
        self.send_new("Switch", device, name, {**{m: "Off" for m in off}, **{m: "On" for m in on}})

    def texts(self, device: str, name: str, **values: str) -> None:
        self.send_new("Text", device, name, values)

    def connect_device(self, device: str, timeout: float = WAIT) -> None:
        self.wait_defined(device, "CONNECTION", timeout)
        self.switches(device, "CONNECTION", "CONNECT")
        self.wait(lambda: self.state(device, "CONNECTION") == "Ok"
                  and self.value(device, "CONNECTION", "CONNECT") == "On", timeout, f"{device} connected")


# ------------------------------------------------------------------------ reference definitions

def reference(driver: str) -> dict[str, Any]:
    return json.loads((REFERENCE / f"{driver}.json").read_text())


def describe(definition: DefVector) -> dict[str, Any]:
    """The parts of a definition that clients rely on (values and states change; these do not)."""
    out: dict[str, Any] = {"type": str(definition.type), "label": definition.label, "group": definition.group,
                           "perm": None if str(definition.type) == "Light" else str(definition.perm),
                           "rule": str(definition.rule) if definition.rule else None,
                           "timeout": None if str(definition.type) == "Light" else float(definition.timeout or 0)}
    members = []
    for member in definition.members:
        item: dict[str, Any] = {"name": member.name, "label": member.label}
        if str(definition.type) == "Number":
            item.update(format=member.format, min=float(member.min), max=float(member.max), step=float(member.step))
        members.append(item)
    out["members"] = members
    return out


def describe_recorded(prop: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": prop["type"], "label": prop["label"], "group": prop["group"],
                           "perm": None if prop["type"] == "Light" else prop["perm"], "rule": prop["rule"],
                           "timeout": None if prop["type"] == "Light" else float(prop["timeout"] or 0)}
    members = []
    for member in prop["members"]:
        item: dict[str, Any] = {"name": member["name"], "label": member["label"]}
        if prop["type"] == "Number":
            item.update(format=member["format"], min=float(member["min"]), max=float(member["max"]),
                        step=float(member["step"]))
        members.append(item)
    out["members"] = members
    return out


def compare_definitions(client: Client, device: str, recorded: list[dict[str, Any]], what: str) -> None:
    """Every recorded property is defined by the device exactly so, and it defines nothing else."""
    expected = {prop["name"]: describe_recorded(prop) for prop in recorded}
    client.wait(lambda: all((device, name) in client.props for name in expected), WAIT,
                f"{what}: {sorted(set(expected) - {n for d, n in client.props if d == device})} defined")
    for frame in client.peer.ping():  # whatever else the device defined with them has arrived by now
        client.file(frame)
    actual = {name: describe(prop.definition) for (dev, name), prop in client.props.items() if dev == device}
    problems = [f"{name}: expected {expected[name]}, got {actual[name]}" for name in expected
                if actual[name] != expected[name]]
    extra = sorted(set(actual) - set(expected))
    assert not problems and not extra, f"{what}: {problems[:5]} extra {extra}"


def check_against_reference(servers, env: dict[str, str], kind: str, device: str) -> None:
    """Our simulator of this kind defines what Debian's does, before and after connecting."""
    recorded = reference(f"indi_simulator_{kind}")
    server = start(servers, "ours", kind, env=env)
    client = Client(server)
    try:
        client.wait_defined(device, "CONNECTION")
        compare_definitions(client, device, recorded["before_connect"], "before connecting")
        client.connect_device(device)
        client.props.clear()
        client.get_properties(device)
        # The recording after connecting lists what connecting added (and CONNECTION again).
        added = {prop["name"] for prop in recorded["after_connect"]}
        everything = [prop for prop in recorded["before_connect"] if prop["name"] not in added]
        compare_definitions(client, device, everything + recorded["after_connect"], "after connecting")
    finally:
        client.close()
