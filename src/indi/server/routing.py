"""Who gets which message: the reference indiserver's routing rules, with no I/O in them.

Clients register interest in devices and properties by what they send; drivers own the devices
they announce and snoop on others with getProperties. The Router forwards the bytes it received
(never re-serialised) to peers through their ``send``/``deliver`` methods, so it can be tested with
plain objects and used by any I/O layer.

Who receives a driver's message depends only on its device and name (and whether it is a BLOB), so
the answer is kept per (device, name) until anything it depends on changes: a client's interests
or BLOB modes, a driver's snoops, or the lists of clients and drivers. A burst of messages for one
property then costs a dictionary lookup each, not a pass over every connected client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..protocol import PROTOCOL_VERSION, BLOBMode, Frame
from ..protocol.elements import xml_attributes

__all__ = ["ClientInterest", "Snoops", "Router", "Misbehaving", "ClientPeer", "DriverPeer"]

_BLOB_MODES = {"Never": BLOBMode.NEVER, "Also": BLOBMode.ALSO, "Only": BLOBMode.ONLY}

# Bumped by every change that can alter who receives what (interests, BLOB modes, snoops, the lists
# of peers): routers drop the recipients they remembered when it moves.
_changes = [0]
_ROUTE_CACHE_SIZE = 4096


def _changed() -> None:
    _changes[0] += 1


class _PeerList(list):
    """A list of peers that reports every change of its membership (see _changes)."""

    __slots__ = ()

    def append(self, item):
        _changed()
        super().append(item)

    def extend(self, items):
        _changed()
        super().extend(items)

    def insert(self, index, item):
        _changed()
        super().insert(index, item)

    def remove(self, item):
        _changed()
        super().remove(item)

    def pop(self, index=-1):
        _changed()
        return super().pop(index)

    def clear(self):
        _changed()
        super().clear()

    def __setitem__(self, index, value):
        _changed()
        super().__setitem__(index, value)

    def __delitem__(self, index):
        _changed()
        super().__delitem__(index)

    def __iadd__(self, items):
        _changed()
        return super().__iadd__(items)


class Misbehaving(Exception):
    """A peer sent something that shows it cannot be trusted to speak INDI; it must be closed."""


class ClientInterest:
    """What one client has asked for, registered as the reference server does.

    ``all_props`` is 0 (only what it named), 1 (everything: a plain client that sent getProperties
    before naming any device) or 2 (everything: a chained server, which sends device "*").
    BLOB modes are per property, then per device, then client-wide; the default is Never.
    """

    __slots__ = ("all_props", "devices", "properties", "blob_default", "blob_modes")

    def __init__(self) -> None:
        self.all_props = 0
        self.devices: set[str] = set()
        self.properties: set[tuple[str, str]] = set()
        self.blob_default = BLOBMode.NEVER
        self.blob_modes: dict[tuple[str, str | None], BLOBMode] = {}

    def wants(self, device: str, name: str) -> bool:
        return (self.all_props > 0 or not device or device in self.devices
                or (device, name) in self.properties)

    def blob_mode(self, device: str, name: str) -> BLOBMode:
        modes = self.blob_modes
        if not modes:
            return self.blob_default
        return modes.get((device, name)) or modes.get((device, None)) or self.blob_default

    def note(self, tag: str, device: str, name: str) -> None:
        """Register the interest that a message from this client implies."""
        if device:
            # Don't widen to all devices once a specific one was named, or chained servers
            # would start receiving far too much (the reference's rule).
            if device[0] == "*" and not self.devices and not self.properties:
                if self.all_props != 2:
                    self.all_props = 2
                    _changed()
            elif not self.wants(device, name):
                if name:
                    self.properties.add((device, name))
                else:
                    self.devices.add(device)
                _changed()
        elif tag == "getProperties" and not self.devices and not self.properties and self.all_props == 0:
            self.all_props = 1
            _changed()

    def enable_blob(self, device: str, name: str, mode: BLOBMode) -> None:
        _changed()
        if not device:
            self.blob_default = mode
        else:
            self.blob_modes[(device, name or None)] = mode


class Snoops:
    """The devices and properties a driver snoops on, each with the BLOB mode it asked for."""

    __slots__ = ("_by_device",)

    def __init__(self) -> None:
        self._by_device: dict[str, dict[str | None, BLOBMode]] = {}

    def __bool__(self) -> bool:
        return bool(self._by_device)

    def devices(self) -> set[str]:
        return set(self._by_device)

    def add(self, device: str, name: str) -> bool:
        """Snoop on device (and name, if given); False if that was already covered."""
        names = self._by_device.setdefault(device, {})
        if None in names or (name and name in names):
            return False
        names[name or None] = BLOBMode.NEVER
        _changed()
        return True

    def mode(self, device: str, name: str) -> BLOBMode | None:
        """The BLOB mode for a snooped message, or None if this driver is not snooping on it."""
        names = self._by_device.get(device)
        if names is None:
            return None
        mode = names.get(name) if name else None
        if mode is None:
            mode = names.get(None)
        return mode

    def enable_blob(self, device: str, name: str, mode: BLOBMode) -> bool:
        names = self._by_device.get(device)
        if names is None:
            return False
        key = name if name and name in names else None
        if key not in names:
            return False
        names[key] = mode
        _changed()
        return True

    def clear(self) -> None:
        if self._by_device:
            self._by_device.clear()
            _changed()


class ClientPeer(Protocol):
    label: str
    closed: bool
    interest: ClientInterest

    def send(self, data: bytes) -> None: ...
    def deliver(self, frame: Frame, is_blob: bool) -> None: ...
    def deliver_many(self, raws: list[bytes], size: int) -> None: ...


class DriverPeer(Protocol):
    label: str
    closed: bool
    devices: set[str]
    snoops: Snoops
    remote_uid: str | None

    def send(self, data: bytes) -> None: ...


def _blob_mode(frame: Frame) -> BLOBMode:
    mode = _BLOB_MODES.get(frame.text)
    if mode is None:
        raise Misbehaving(f"enableBLOB must be Never, Also or Only, not {frame.text!r}")
    return mode


def ping_reply(frame: Frame) -> bytes:
    """The pingReply to a pingRequest: same attributes, element renamed."""
    return f"<pingReply{xml_attributes(list(frame.attrs.items()))}/>\n".encode()


def _version_ok(version: str | None) -> bool:
    try:
        return version is not None and float(version) <= float(PROTOCOL_VERSION)
    except ValueError:
        return False


def get_properties_for_driver(frame: Frame) -> bytes:
    """The getProperties to pass to a driver: libindi drivers exit when the version is missing
    or above 1.7, so those are replaced by 1.7; anything else passes unchanged."""
    if _version_ok(frame.attrs.get("version")):
        return frame.raw
    attrs = dict(frame.attrs, version=PROTOCOL_VERSION)
    ordered = [("version", attrs.pop("version"))] + list(attrs.items())
    return f"<getProperties{xml_attributes(ordered)}/>\n".encode()


def check_blobs(frame: Frame, over_pipe: bool) -> bool:
    """Validate the oneBLOB children of a BLOB vector; returns True if any is a stream frame.

    A oneBLOB must have a numeric size (the reference crashes or closes the sender otherwise), and
    on a pipe or TCP link it cannot be ``attached`` (there is no buffer to attach).
    """
    stream = False
    for attrs in frame.child_start_tags(b"oneBLOB"):
        size = attrs.get("size", "").strip()
        digits = size.lstrip("-")
        if not (digits.isascii() and digits.isdigit()):
            raise Misbehaving(f"oneBLOB {attrs.get('name', '')!r} has no numeric size ({size!r})")
        if over_pipe and attrs.get("attached", "").lower() == "true":
            raise Misbehaving(f"oneBLOB {attrs.get('name', '')!r} claims an attached buffer, "
                              "which a pipe cannot carry")
        if "stream" in attrs.get("format", ""):
            stream = True
    return stream


class Router:
    """The routing tables and rules. ``log`` takes one line; ``verbose`` as the server's -v count."""

    def __init__(self, log: Callable[[str], None], verbose: int = 0) -> None:
        self.log = log
        self.verbose = verbose
        self._clients: list[ClientPeer] = _PeerList()
        self._drivers: list[DriverPeer] = _PeerList()
        # (device, name, is_blob) -> the clients and the snooping drivers that want such a message
        self._recipients: dict[tuple[str, str, bool], tuple[list[ClientPeer], list[DriverPeer]]] = {}
        self._seen = -1  # the _changes count the remembered recipients are valid for
        # While a link hands over the frames of one read (begin_batch), driver messages for the same
        # recipients are gathered and queued to each client at once (see deliver_many).
        self._batching = 0
        self._batch_clients: list[ClientPeer] | None = None
        self._batch: list[bytes] = []
        self._batch_size = 0

    @property
    def clients(self) -> list[ClientPeer]:
        return self._clients

    @clients.setter
    def clients(self, peers: list[ClientPeer]) -> None:
        self._clients = _PeerList(peers)
        _changed()

    @property
    def drivers(self) -> list[DriverPeer]:
        return self._drivers

    @drivers.setter
    def drivers(self, peers: list[DriverPeer]) -> None:
        self._drivers = _PeerList(peers)
        _changed()

    def begin_batch(self) -> None:
        """From now until end_batch(), a client may get driver messages queued together, in order,
        when end_batch() comes or before anything else is sent to it (peers with deliver_many)."""
        self._batching += 1

    def end_batch(self) -> None:
        self._batching -= 1
        if not self._batching:
            self.flush_batch()

    def flush_batch(self) -> None:
        """Queue the gathered messages to their clients."""
        clients = self._batch_clients
        if clients is None:
            return
        raws, size = self._batch, self._batch_size
        self._batch_clients, self._batch, self._batch_size = None, [], 0
        for client in clients:
            if not client.closed:
                client.deliver_many(raws, size)

    def recipients(self, device: str, name: str, is_blob: bool) -> tuple[list[ClientPeer], list[DriverPeer]]:
        """The clients (the reference's q2Clients rules, BLOB modes per property and per device)
        and the snooping drivers that want a driver's message for device and name, closed or not."""
        if self._seen != _changes[0]:
            self._recipients.clear()
            self._seen = _changes[0]
        key = (device, name, is_blob)
        found = self._recipients.get(key)
        if found is not None:
            return found
        clients = []
        for client in self._clients:
            interest = client.interest
            if not (interest.all_props or not device or device in interest.devices
                    or (device, name) in interest.properties):
                continue
            mode = interest.blob_mode(device, name)
            if (mode is BLOBMode.NEVER) if is_blob else (mode is BLOBMode.ONLY):
                continue
            clients.append(client)
        snoopers = []
        for driver in self._drivers:
            mode = driver.snoops.mode(device, name)
            if mode is None or ((mode is BLOBMode.NEVER) if is_blob else (mode is BLOBMode.ONLY)):
                continue
            snoopers.append(driver)
        if len(self._recipients) >= _ROUTE_CACHE_SIZE:
            self._recipients.clear()
        found = self._recipients[key] = (clients, snoopers)
        return found

    # ------------------------------------------------------------------ messages from clients
    def from_client(self, client: ClientPeer, frame: Frame) -> None:
        if self._batch_clients is not None:
            self.flush_batch()
        tag = frame.tag
        attrs = frame.attrs
        device = attrs.get("device", "")
        name = attrs.get("name", "")
        client.interest.note(tag, device, name)

        if tag == "pingRequest":
            client.send(ping_reply(frame))
            return
        if tag == "enableBLOB":
            client.interest.enable_blob(device, name, _blob_mode(frame))
        is_blob = tag == "setBLOBVector"
        if tag == "setBLOBVector" or tag == "newBLOBVector":
            check_blobs(frame, over_pipe=True)

        self._to_owners(frame, device, tag, client.label)
        if tag.startswith("set"):
            # A chained server forwards its drivers' traffic to ours as a client: snoopers want it.
            self._to_snoopers(None, frame, self.recipients(device, name, is_blob)[1])
        elif tag.startswith("new"):
            self._to_clients(frame, device, name, is_blob, client)

    def _to_owners(self, frame: Frame, device: str, tag: str, origin: str, snoop: bool = False) -> None:
        """The reference's q2RDrivers: to the drivers responsible for device, or to all of them."""
        data = get_properties_for_driver(frame) if tag == "getProperties" else frame.raw
        everyone = not device or device[0] == "*"
        remotes_seen: set[str] = set()
        delivered = False
        for driver in self._drivers:
            if driver.closed:
                continue
            remote = driver.remote_uid
            if not everyone and device not in driver.devices:
                continue
            if remote is None:
                if tag == "enableBLOB":
                    continue  # a local driver has no use for a client's BLOB preferences
                if device and device[0] == "*":
                    continue  # "*" marks a chained server; local drivers answer nothing to it
            elif not device:
                # One generic request per upstream server: it fans out there.
                if remote in remotes_seen:
                    continue
                remotes_seen.add(remote)
            driver.send(data)
            delivered = True
        if not delivered and device and not everyone and tag != "enableBLOB" and self.verbose > (1 if snoop else 0):
            self.log(f"{origin}: no driver has announced device '{device}': <{tag}> dropped")

    # ------------------------------------------------------------------ messages from drivers
    def from_driver(self, driver: DriverPeer, frame: Frame) -> None:
        tag = frame.tag
        attrs = frame.attrs
        device = attrs.get("device", "")
        name = attrs.get("name", "")

        if tag == "getProperties":
            # A snoop: remember it, let chained servers know, and ask the owner to (re)define.
            self.flush_batch()
            if device and driver.snoops.add(device, name) and self.verbose:
                self.log(f"{driver.label}: snooping on {device}.{name}")
            self._to_upstream_servers(driver, frame)
            self._to_owners(frame, device, tag, driver.label, snoop=True)
            return
        if tag == "enableBLOB":
            driver.snoops.enable_blob(device, name, _blob_mode(frame))
            # A snooped device on another server only sends BLOBs if asked there.
            for owner in self._drivers:
                if owner.remote_uid is not None and device in owner.devices and not owner.closed:
                    owner.send(frame.raw)
            return
        if tag == "pingRequest":
            driver.send(ping_reply(frame))
            return
        if device and device not in driver.devices:
            driver.devices.add(device)
            if self.verbose:
                self.log(f"{driver.label}: owns device '{device}'")
        is_blob = tag == "setBLOBVector"
        stream = check_blobs(frame, over_pipe=True) if is_blob else False
        clients, snoopers = self.recipients(device, name, is_blob)
        if self._batching and not is_blob:
            if clients is not self._batch_clients:
                self.flush_batch()
                if clients:
                    self._batch_clients = clients
            if clients:
                raw = frame.raw
                self._batch.append(raw)
                self._batch_size += len(raw)
        else:
            if self._batch_clients is not None:
                self.flush_batch()
            for client in clients:
                if not client.closed:
                    client.deliver(frame, stream)
        if snoopers:
            self._to_snoopers(driver, frame, snoopers)

    def _to_clients(self, frame: Frame, device: str, name: str, is_blob: bool,
                    exclude: ClientPeer | None, stream: bool = False) -> None:
        """The reference's q2Clients, with BLOB modes per property and per device."""
        if self._batch_clients is not None:
            self.flush_batch()
        for client in self.recipients(device, name, is_blob)[0]:
            if client is not exclude and not client.closed:
                client.deliver(frame, stream)

    def _to_snoopers(self, origin: DriverPeer | None, frame: Frame, snoopers: list[DriverPeer]) -> None:
        """Pass the message to the snooping drivers (from recipients()), except back to its origin server."""
        origin_remote = origin.remote_uid if origin is not None else None
        for driver in snoopers:
            if driver.closed:
                continue
            if origin_remote is not None and driver.remote_uid == origin_remote:
                continue  # that server handles its own snoops
            driver.send(frame.raw)

    def _to_upstream_servers(self, driver: DriverPeer, frame: Frame) -> None:
        """The reference's q2Servers: a driver's snoop request also goes to chained servers that
        connected to us, so that devices living there can be snooped from here."""
        if self._batch_clients is not None:
            self.flush_batch()
        for client in self._clients:
            if client.closed:
                continue
            interest = client.interest
            if interest.all_props == 2 or (interest.all_props == 0 and (
                    driver.devices & interest.devices or any(d in driver.devices for d, _ in interest.properties))):
                client.send(frame.raw)

    # ------------------------------------------------------------------ peers coming and going
    def driver_gone(self, driver: DriverPeer) -> None:
        """Tell interested clients that the driver's devices are gone; forget what it owned."""
        for device in sorted(driver.devices):
            data = f"<delProperty{xml_attributes([('device', device)])}/>\n".encode()
            self._to_clients(Frame(data, "delProperty", {"device": device}, len(data)), device, "", False, None)
        driver.devices.clear()
        driver.snoops.clear()
