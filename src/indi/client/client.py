"""The asyncio INDI client: a connection to a server, a live model of its devices, and requests.

``async with Client("localhost", 7624) as c:`` connects (TCP, a local socket or TLS), asks for
every property and keeps ``c.devices`` in step with what the server sends. Requests are checked
against the model before anything is sent (unknown names, read-only properties, numbers out of
range raise typed exceptions), and can wait for the device's answer. Waits re-check their
condition on every update received, with no polling. When the server goes away the client
reconnects with backoff (0.5 s doubling to 10 s), rebuilds the model and re-sends its BLOB
settings; pending waits keep waiting until their own timeouts.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import ssl as ssl_module
import sys
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from indi.protocol import (
    BlobData,
    BlobEnd,
    BLOBMember,
    BLOBMode,
    BlobStart,
    BlobStream,
    BlobStreamError,
    BlobVectorEnd,
    BlobVectorStart,
    DefVector,
    DelProperty,
    EnableBLOB,
    Frame,
    GetProperties,
    Message,
    NewVector,
    NumberFormatError,
    NumberMember,
    PingReply,
    PingRequest,
    PropertyState,
    PropertyType,
    ProtocolError,
    SetVector,
    SwitchMember,
    SwitchRule,
    SwitchState,
    TextMember,
    parse,
    parse_number,
    serialize,
)

from .blobs import Blob, BlobReceiver, _Sink
from .errors import (
    IndiError,
    IndiTimeout,
    NotConnected,
    ReadOnly,
    UnknownDevice,
    UnknownMember,
    ValueRefused,
)
from .events import (
    BlobReceived,
    Defined,
    Deleted,
    Disconnected,
    Event,
    MessageReceived,
    Updated,
)
from .model import BLOB, Device, IndiMessage, Number, Property, Switch

__all__ = ["Client", "DEFAULT_PORT"]

log = logging.getLogger("indi.client")

DEFAULT_PORT = 7624
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0
_C_SPACE = " \t\n\r\v\f"
_T = TypeVar("_T")
_sleep = asyncio.sleep   # the reconnection backoff's (a test replaces it)


class _Connection(asyncio.Protocol):
    """One connection to the server; everything it reads goes straight to the client."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._paused = False
        self._drained: list[asyncio.Future[None]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.client._data_received(self, data)

    def eof_received(self) -> bool | None:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()
        self.client._connection_lost(self, exc)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake()

    def _wake(self) -> None:
        for fut in self._drained:
            if not fut.done():
                fut.set_result(None)
        self._drained.clear()

    def write(self, data: bytes) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise NotConnected("not connected to the INDI server")
        self.transport.write(data)

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its high-water mark (or the connection is gone)."""
        while self._paused and not self.closed:
            fut = asyncio.get_running_loop().create_future()
            self._drained.append(fut)
            await fut

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _Receiving:
    """The oneBLOB being streamed: its attributes and where its bytes go."""

    __slots__ = ("attrs", "files", "memory", "memory_receivers")

    def __init__(self, attrs: dict[str, str]) -> None:
        self.attrs = attrs
        self.files: list[tuple[_Sink, BlobReceiver]] = []
        self.memory: _Sink | None = None
        self.memory_receivers: list[BlobReceiver] = []


class Client:
    """An asyncio INDI client with a live model of the server's devices.

    ``Client(host="localhost", port=7624, *, unix=None, ssl=None, reconnect=True)``:

    - ``unix``: a local socket path instead of TCP. On Linux a name starting with "@" (or NUL), or
      a path that does not exist on disk, is an abstract-namespace name, as ``indiserver -u`` uses.
    - ``ssl``: an ``ssl.SSLContext`` for TLS (``True`` for a default context); ``host`` is the
      name the server's certificate must carry.
    - ``reconnect``: when the server goes away, reconnect with backoff (0.5 s doubling to 10 s).
      Without it, pending waits fail with NotConnected.
    - ``define_timeout``: how long a request naming a device or property not defined yet waits
      for its definition before raising UnknownDevice/UnknownProperty (definitions arrive just
      after connecting).
    - ``keep_blobs``: keep the last BLOB of each member in the model (``member.value``) when no
      receiver took it; ``inflate``: inflate ".z" BLOBs.

    ``async with Client(...) as c:`` connects and asks for every property; ``c.devices`` maps
    names to Devices, ``c["Dev"]["PROP"]`` is a Property, ``c.messages`` holds the latest
    messages (IndiMessage: device, timestamp, text). Methods that wait take ``timeout`` in
    seconds (None: forever) and raise IndiTimeout.
    """

    def __init__(self, host: str = "localhost", port: int = DEFAULT_PORT, *, unix: str | None = None,
                 ssl: ssl_module.SSLContext | bool | None = None, reconnect: bool = True,
                 define_timeout: float = 2.0, keep_blobs: bool = True, inflate: bool = True,
                 max_messages: int = 1000) -> None:
        self.host = host
        self.port = port
        self.unix = unix
        self.ssl = ssl_module.create_default_context() if ssl is True else (ssl or None)
        self.reconnect = reconnect
        self.define_timeout = define_timeout
        self.keep_blobs = keep_blobs
        self.inflate = inflate
        self.devices: dict[str, Device] = {}
        self.messages: deque[IndiMessage] = deque(maxlen=max_messages)
        self.connections = 0             # successful connections so far (1 + reconnections)
        self._known: dict[str, Device] = {}
        self._conn: _Connection | None = None
        self._stream = BlobStream()
        self._waiters: list[tuple[Callable[[], Any], asyncio.Future]] = []
        self._receivers: list[BlobReceiver] = []
        self._blob_modes: dict[tuple[str, str | None], BLOBMode] = {}
        self._serials: dict[tuple[str, str], int] = {}
        self._last_message: dict[tuple[str, str], str | None] = {}
        self._message_count = 0
        self._pings: dict[str, asyncio.Future[None]] = {}
        self._uids = itertools.count(1)
        self._vector: dict[str, str] | None = None
        self._vector_blobs: list[str] = []   # the members of the BLOB vector being received
        self._listeners: list[Callable[[Event], None]] = []
        self._receiving: _Receiving | None = None
        self._claimed: set[BlobReceiver] = set()     # receivers given a BLOB of the current vector
        self._reconnecting: asyncio.Task | None = None
        self._closed = False
        self._started = False

    # ---------------------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        await self.close()

    @property
    def address(self) -> str:
        """Where the client connects, for messages: host:port or the local socket."""
        return f"local socket {self.unix}" if self.unix is not None else f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        """True while connected to the server."""
        return self._conn is not None and not self._conn.closed

    async def connect(self) -> None:
        """Connect (the first time); raises NotConnected if the server cannot be reached."""
        if self._closed:
            raise NotConnected("the client was closed")
        if self.connected:
            return
        self._started = True
        try:
            await self._open()
        except (OSError, ssl_module.SSLError) as exc:
            raise NotConnected(f"cannot connect to the INDI server at {self.address}: {exc}") from exc

    async def close(self) -> None:
        """Disconnect and stop reconnecting; pending waits raise NotConnected."""
        self._closed = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            self._reconnecting = None
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            self._lost_model()
        error = NotConnected("the client was closed")
        self._fail_all(error)

    def _unix_address(self) -> str:
        path = self.unix or ""
        if not sys.platform.startswith("linux"):
            return path.lstrip("@")
        if path.startswith("\0"):
            return path
        if path.startswith("@"):
            return "\0" + path[1:]
        return path if os.path.exists(path) else "\0" + path

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        if self.unix is not None:
            _, conn = await loop.create_unix_connection(
                lambda: _Connection(self), self._unix_address(), ssl=self.ssl,
                server_hostname=self.host if self.ssl else None)
        else:
            _, conn = await loop.create_connection(lambda: _Connection(self), self.host, self.port, ssl=self.ssl)
        if self._closed:
            conn.close()
            raise NotConnected("the client was closed")
        self._conn = conn
        self._stream.reset()
        self._vector = None
        self._receiving = None
        self.connections += 1
        log.info("connected to %s", self.address)
        out = [serialize(GetProperties())]
        out += [serialize(EnableBLOB(mode, device, name)) for (device, name), mode in self._blob_modes.items()]
        conn.write(b"".join(out))
        self._notify()

    def _connection_lost(self, conn: _Connection, exc: Exception | None) -> None:
        if conn is not self._conn:
            return
        self._conn = None
        log.info("connection to %s lost%s", self.address, f": {exc}" if exc else "")
        self._lost_model()
        if self._closed:
            return
        if self.reconnect:
            self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())
        else:
            self._fail_all(NotConnected(f"the connection to the INDI server at {self.address} was lost"))

    def _lost_model(self) -> None:
        """The server is gone: abort a BLOB in progress, mark every device gone and empty."""
        if self._receiving is not None:
            for sink, _ in self._receiving.files:
                sink.abort()
            if self._receiving.memory is not None:
                self._receiving.memory.abort()
            self._receiving = None
        self._claimed = set()  # receivers of an aborted BLOB wait for the next one
        self._vector = None
        self._vector_blobs = []
        gone = tuple(self.devices)
        for device in self.devices.values():
            device.gone = True
            for prop in device.properties.values():
                prop.deleted = True
            device.properties.clear()
        self.devices.clear()
        if gone:
            self._emit(Disconnected(gone))
        for fut in self._pings.values():
            if not fut.done():
                fut.set_exception(NotConnected("the connection was lost before the pingReply"))
        self._pings.clear()
        self._notify()

    async def _reconnect(self) -> None:
        delay = BACKOFF_FIRST
        while not self._closed:
            await _sleep(delay)
            try:
                await self._open()
            except (OSError, ssl_module.SSLError) as exc:
                log.info("reconnecting to %s: %s; next try in %g s", self.address, exc, min(delay * 2, BACKOFF_MAX))
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            except NotConnected:
                return
            self._reconnecting = None
            return

    def _fail_all(self, error: IndiError) -> None:
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(error)
        for receiver in list(self._receivers):
            receiver._fail(error)
        self._receivers.clear()

    # --------------------------------------------------------------------------------- model
    def __getitem__(self, device: str) -> Device:
        """The device of that name; UnknownDevice if it has not defined properties."""
        try:
            return self.devices[device]
        except KeyError:
            raise UnknownDevice(device) from None

    def __contains__(self, device: object) -> bool:
        return device in self.devices

    def _find(self, device: str, prop: str) -> Property:
        return self[device][prop]

    def _device(self, name: str) -> Device:
        device = self._known.get(name)
        if device is None:
            device = self._known[name] = Device(name)
        if device.gone or name not in self.devices:
            device.gone = False
            self.devices[name] = device
        return device

    # ------------------------------------------------------------------------------- reading
    def _data_received(self, conn: _Connection, data: bytes) -> None:
        if conn is not self._conn:
            return
        error: BlobStreamError | None = None
        try:
            events = self._stream.feed(data)
        except BlobStreamError as exc:
            events, error = exc.events, exc
        for event in events:
            try:
                self._handle(event)
            except Exception:  # a bug or an unusable element must not stop the connection
                log.exception("while handling %r", event)
            self._notify()
        if error is not None:
            log.warning("malformed data from %s: %s: reconnecting", self.address, error)
            conn.close()

    def _handle(self, event: Any) -> None:
        if isinstance(event, Frame):
            self._handle_frame(event)
        elif isinstance(event, BlobData):
            self._blob_data(event.data)
        elif isinstance(event, BlobStart):
            self._blob_start(event)
        elif isinstance(event, BlobEnd):
            self._blob_end(event)
        elif isinstance(event, BlobVectorStart):
            self._vector = event.attrs
            self._vector_blobs = []
            self._receiving = None
            self._claimed = set()
        elif isinstance(event, BlobVectorEnd):
            self._blob_vector_end()

    def _handle_frame(self, frame: Frame) -> None:
        tag = frame.tag
        if tag == "pingRequest":
            try:
                self._require_connection().write(serialize(PingReply(frame.attrs.get("uid", ""))))
            except NotConnected:
                pass
            return
        if tag == "pingReply":
            fut = self._pings.pop(frame.attrs.get("uid", ""), None)
            if fut is not None and not fut.done():
                fut.set_result(None)
            return
        if not (tag.startswith(("def", "set")) or tag in ("delProperty", "message")):
            return
        try:
            element = parse(frame)
        except ProtocolError as exc:
            log.warning("ignoring an invalid element from %s: %s", self.address, exc)
            return
        if isinstance(element, DefVector):
            self._define(element, _number_texts(frame) if element.type is PropertyType.NUMBER else None)
        elif isinstance(element, SetVector):
            self._update(element, _number_texts(frame) if element.type is PropertyType.NUMBER else None)
        elif isinstance(element, DelProperty):
            self._delete(element)
        elif isinstance(element, Message):
            if element.message is not None:
                self._add_message(element.device, element.timestamp, element.message)

    def _define(self, definition: DefVector, raw: dict[str, str] | None) -> None:
        device = self._device(definition.device)
        prop = Property(definition, raw)
        old = device.properties.get(definition.name)
        if old is not None and not old.deleted and old.type is prop.type:
            for slot in Property.__slots__:  # keep the object users may hold
                setattr(old, slot, getattr(prop, slot))
        else:
            if old is not None:
                old.deleted = True
            device.properties[definition.name] = prop
        key = (definition.device, definition.name)
        self._serials[key] = self._serials.get(key, 0) + 1
        self._last_message[key] = definition.message
        self._emit(Defined(device.properties[definition.name]))
        if definition.message:
            self._add_message(definition.device, definition.timestamp, definition.message)

    def _update(self, update: SetVector, raw: dict[str, str] | None) -> None:
        device = self.devices.get(update.device)
        prop = device.properties.get(update.name) if device is not None else None
        if prop is None:
            return  # as libindi: an update of a property never defined is ignored
        prop.update(update, raw)
        key = (update.device, update.name)
        self._serials[key] = self._serials.get(key, 0) + 1
        self._last_message[key] = update.message
        self._emit(Updated(prop, tuple(m.name for m in update.members), update.message))
        if update.message:
            self._add_message(update.device, update.timestamp, update.message)

    def _delete(self, element: DelProperty) -> None:
        device = self.devices.get(element.device)
        if device is not None:
            if element.name:
                prop = device.properties.pop(element.name, None)
                if prop is not None:
                    prop.deleted = True
                    key = (element.device, element.name)
                    self._serials[key] = self._serials.get(key, 0) + 1
                    self._emit(Deleted(element.device, element.name))
            else:
                for prop in device.properties.values():
                    prop.deleted = True
                device.properties.clear()
                device.gone = True
                del self.devices[element.device]
                self._emit(Deleted(element.device, None))
        if element.message:
            self._add_message(element.device, element.timestamp, element.message)

    def _add_message(self, device: str | None, timestamp: str | None, text: str) -> None:
        message = IndiMessage(device, timestamp, text)
        self.messages.append(message)
        self._message_count += 1
        self._emit(MessageReceived(message))

    # ---------------------------------------------------------------------------------- BLOBs
    def _blob_start(self, event: BlobStart) -> None:
        vector = self._vector or {}
        device, prop_name = vector.get("device", ""), vector.get("name", "")
        receiving = self._receiving = _Receiving(event.attrs)
        inflate = self.inflate and event.format.endswith(".z")
        wanting = [r for r in self._receivers if r not in self._claimed and r.wants(device, prop_name, event.name)]
        for receiver in wanting:
            self._claimed.add(receiver)
            if receiver.path is None:
                receiving.memory_receivers.append(receiver)
                continue
            try:
                receiving.files.append((_Sink(receiver.path, inflate), receiver))
            except OSError as exc:
                receiver._fail(exc)
                self._forget_receiver(receiver)
        if receiving.memory_receivers or (self.keep_blobs and not wanting):
            receiving.memory = _Sink(None, inflate)

    def _blob_data(self, data: bytes) -> None:
        receiving = self._receiving
        if receiving is None:
            return
        for entry in list(receiving.files):
            sink, receiver = entry
            try:
                sink.write(data)
            except Exception as exc:  # disk full, bad zlib data...
                sink.abort()
                receiving.files.remove(entry)
                receiver._fail(exc)
                self._forget_receiver(receiver)
        if receiving.memory is not None:
            try:
                receiving.memory.write(data)
            except Exception as exc:
                receiving.memory.abort()
                receiving.memory = None
                for receiver in receiving.memory_receivers:
                    receiver._fail(exc)
                    self._forget_receiver(receiver)
                receiving.memory_receivers = []

    def _blob_end(self, event: BlobEnd) -> None:
        receiving, self._receiving = self._receiving, None
        if receiving is None:
            return
        vector = self._vector or {}
        device, prop_name = vector.get("device", ""), vector.get("name", "")
        timestamp = vector.get("timestamp")
        fmt = receiving.attrs.get("format", "")
        if self.inflate and fmt.endswith(".z"):
            fmt = fmt[:-2]
        data: bytes | None = None
        if receiving.memory is not None:
            size = receiving.memory.size
            try:
                data = receiving.memory.finish()
            except Exception as exc:
                log.warning("BLOB %s.%s.%s: %s", device, prop_name, event.name, exc)
                for receiver in receiving.memory_receivers:
                    receiver._fail(exc)
            else:
                for receiver in receiving.memory_receivers:
                    receiver._deliver(Blob(device, prop_name, event.name, fmt, size, data, None, timestamp))
            for receiver in receiving.memory_receivers:
                self._forget_receiver(receiver)
        path: Path | None = None
        for sink, receiver in receiving.files:
            try:
                sink.finish()
            except Exception as exc:
                sink.abort()
                receiver._fail(exc)
            else:
                path = sink.path
                receiver._deliver(Blob(device, prop_name, event.name, fmt, sink.size, None, sink.path, timestamp))
            self._forget_receiver(receiver)
        # The model: what the BLOB was, and its bytes if they were kept.
        dev = self.devices.get(device)
        prop = dev.properties.get(prop_name) if dev is not None else None
        member = prop.members.get(event.name) if prop is not None else None
        if isinstance(member, BLOB):
            size_attr = receiving.attrs.get("size", "").strip()
            member.format = fmt
            member.size = int(size_attr) if size_attr.isascii() and size_attr.isdigit() else event.length
            member.value = data if self.keep_blobs else None
            member.path = str(path) if path is not None else None
            self._vector_blobs.append(event.name)
            self._emit(BlobReceived(prop, event.name, fmt, member.size, data, member.path))

    def _blob_vector_end(self) -> None:
        vector, self._vector = self._vector or {}, None
        self._receiving = None
        device, name = vector.get("device", ""), vector.get("name", "")
        dev = self.devices.get(device)
        prop = dev.properties.get(name) if dev is not None else None
        if prop is None:
            return
        update = SetVector(PropertyType.BLOB, device, name)
        try:
            if vector.get("state"):
                update.state = PropertyState(vector["state"].strip(_C_SPACE))
            if vector.get("timeout"):
                update.timeout = parse_number(vector["timeout"])
        except (ValueError, NumberFormatError):
            pass
        update.timestamp, update.message = vector.get("timestamp"), vector.get("message")
        prop.update(update)
        key = (device, name)
        self._serials[key] = self._serials.get(key, 0) + 1
        self._last_message[key] = update.message
        blobs, self._vector_blobs = tuple(self._vector_blobs), []
        self._emit(Updated(prop, blobs, update.message))
        if update.message:
            self._add_message(device, update.timestamp, update.message)

    def _forget_receiver(self, receiver: BlobReceiver) -> None:
        try:
            self._receivers.remove(receiver)
        except ValueError:
            pass

    def receive_blob(self, device: str, prop: str, to_file: str | os.PathLike[str] | None = None, *,
                     member: str | None = None, enable: bool = True) -> BlobReceiver:
        """Arm a receiver for the next BLOB of ``device``.``prop`` (its member ``member``, or the
        first one the vector carries): ``await receiver.wait(timeout)`` returns a Blob.

        With ``to_file`` the content is written to that file as it arrives (never held in memory;
        the Blob then has ``path`` and no ``data``). With ``enable`` (the default) BLOBs of that
        property are enabled ("Also") if they are not already, so the call can come right before
        the request that triggers the BLOB. Call it from the event loop's thread.
        """
        receiver = BlobReceiver(self, device, prop, member, to_file)
        self._receivers.append(receiver)
        if enable and self._blob_mode(device, prop) is BLOBMode.NEVER:
            self._set_blob_mode(device, prop, BLOBMode.ALSO)
        return receiver

    def _blob_mode(self, device: str, prop: str) -> BLOBMode:
        mode = self._blob_modes.get((device, prop))
        if mode is None:
            mode = self._blob_modes.get((device, None), BLOBMode.NEVER)
        return mode

    def _set_blob_mode(self, device: str, prop: str | None, mode: BLOBMode) -> None:
        key = (device, prop)
        self._blob_modes.pop(key, None)
        if prop is None:  # a device-wide setting replaces the property ones, as on the server
            for other in [k for k in self._blob_modes if k[0] == device]:
                del self._blob_modes[other]
        self._blob_modes[key] = mode
        if self.connected:
            assert self._conn is not None
            self._conn.write(serialize(EnableBLOB(mode, device, prop)))

    async def enable_blob(self, device: str, prop: str | None = None, mode: str | BLOBMode = "Also") -> None:
        """Ask the server for BLOBs of ``device`` (or just of its property ``prop``): ``mode`` is
        "Never", "Also" (BLOBs with everything else) or "Only" (nothing but BLOBs on this
        connection). The setting is re-sent after every reconnection."""
        try:
            mode = BLOBMode(mode) if isinstance(mode, BLOBMode) else BLOBMode(str(mode).capitalize())
        except ValueError:
            raise ValueRefused(f"BLOB mode {mode!r} is not one of Never, Also, Only") from None
        self._set_blob_mode(device, prop, mode)
        if self._conn is not None:
            await self._conn.drain()

    # ----------------------------------------------------------------------------- listeners
    def add_listener(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``listener(event)`` after every change of the model (``indi.client.events``:
        Defined, Updated, Deleted, MessageReceived, BlobReceived, Disconnected). Returns a function
        that removes the listener. An exception in a listener is logged, never raised here."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)
        return remove

    def _emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("listener %r failed on %s", listener, type(event).__name__)

    # ------------------------------------------------------------------------------- waiting
    def _notify(self) -> None:
        """Re-check every pending wait (called after each element received)."""
        if not self._waiters:
            return
        for predicate, fut in list(self._waiters):
            if fut.done():
                continue
            try:
                value = predicate()
            except LookupError:
                continue
            except Exception as exc:
                fut.set_exception(exc)
                continue
            if value:
                fut.set_result(value)

    async def wait_for(self, predicate: Callable[[], _T], timeout: float | None = 30.0, *,
                       what: str | None = None) -> _T:
        """Wait until ``predicate()`` is true and return its value; it is called now and after every
        update received, and a LookupError (a device or property not defined yet) counts as false.
        Raises IndiTimeout (naming ``what``) after ``timeout`` seconds."""
        if self._closed:
            raise NotConnected("the client was closed")
        try:
            value = predicate()
        except LookupError:
            value = None
        if value:
            return value
        if not self.connected and not self.reconnect and self._started:
            raise NotConnected(f"not connected to the INDI server at {self.address}")
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        entry = (predicate, fut)
        self._waiters.append(entry)
        try:
            if timeout is None:
                return await fut
            try:
                return await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    return fut.result()
                name = what or getattr(predicate, "__qualname__", None) or repr(predicate)
                raise IndiTimeout(f"timed out after {timeout:g} s waiting for {name}") from None
        finally:
            self._waiters.remove(entry)

    async def wait_device(self, device: str, timeout: float | None = 30.0) -> Device:
        """Wait until ``device`` has defined properties; returns the Device."""
        return await self.wait_for(lambda: self.devices.get(device), timeout, what=f"device {device!r}")

    async def wait_property(self, device: str, prop: str, timeout: float | None = 30.0) -> Property:
        """Wait until ``device`` defines ``prop``; returns the Property."""
        return await self.wait_for(lambda: self._find(device, prop), timeout, what=f"property {device}.{prop}")

    async def wait_state(self, device: str, prop: str, state: str | PropertyState,
                         timeout: float | None = 30.0) -> Property:
        """Wait until ``device``.``prop`` is in ``state`` ("Idle", "Ok", "Busy", "Alert"); returns it."""
        wanted = _state(state)

        def check() -> Property | None:
            p = self._find(device, prop)
            return p if p.state is wanted else None

        return await self.wait_for(check, timeout, what=f"{device}.{prop} to be {wanted}")

    async def ping(self, timeout: float | None = 10.0) -> None:
        """Send a pingRequest and wait for the server's pingReply: everything sent before it has
        been read by the server (and everything the server sent before has been handled)."""
        conn = self._require_connection()
        uid = f"client-{next(self._uids)}"
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pings[uid] = fut
        conn.write(serialize(PingRequest(uid)))
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise IndiTimeout(f"timed out after {timeout:g} s waiting for the pingReply {uid}") from None
        finally:
            self._pings.pop(uid, None)

    # ------------------------------------------------------------------------------- sending
    def _require_connection(self) -> _Connection:
        conn = self._conn
        if conn is None or conn.closed:
            raise NotConnected(f"not connected to the INDI server at {self.address}")
        return conn

    async def _lookup(self, device: str, prop: str) -> Property:
        """The property, waiting up to define_timeout for a definition not received yet."""
        self._require_connection()
        try:
            return self._find(device, prop)
        except LookupError:
            if not self.define_timeout:
                raise
        try:
            return await self.wait_for(lambda: self._find(device, prop), self.define_timeout,
                                       what=f"property {device}.{prop}")
        except IndiTimeout:
            return self._find(device, prop)  # raises UnknownDevice or UnknownProperty

    async def set(self, device: str, prop: str, values: dict[str, Any] | None = None, /, *, wait: bool = False,
                  timeout: float | None = 30.0, **members: Any) -> Property:
        """Send new values for members of ``device``.``prop``: ``set(dev, prop, NAME=value, ...)``
        or ``set(dev, prop, {"NAME": value})`` (for member names that are not identifiers).

        Values are converted by the property's type: numbers from int, float or strings, including
        sexagesimal ones ("5:35:17", "-5 23 28"); texts from str; switches from bool or
        "On"/"Off"; BLOBs from bytes, a file path (its suffix is the format) or a
        (bytes-or-path, format) pair. Before anything is sent, UnknownDevice, UnknownProperty,
        UnknownMember, ReadOnly or ValueRefused (a number outside min..max, a value that cannot be
        converted, several switches On under OneOfMany/AtMostOne) is raised.

        With ``wait`` it waits for the device's answer and until the property leaves Busy, then
        returns it if Ok or Idle, raises ValueRefused with the device's message if Alert, and
        IndiTimeout after ``timeout`` seconds. The answer is the first update after sending that
        is Busy or Alert, or that carries the values asked for (numbers to within rounding): an
        update the device sent before reading the request is not mistaken for it, but a device
        that answers Ok with other values (clamping them, say) makes the wait time out.
        Returns the Property.
        """
        requested = dict(values or {})
        requested.update(members)
        if not requested:
            raise ValueRefused(f"no values given for {device}.{prop}", device, prop)
        p = await self._lookup(device, prop)
        if p.type is PropertyType.LIGHT or p.perm == "ro":
            raise ReadOnly(f"{device}.{prop} is read-only")
        elements = [_convert(p, name, value) for name, value in requested.items()]
        if p.type is PropertyType.SWITCH and p.rule in (SwitchRule.ONE_OF_MANY, SwitchRule.AT_MOST_ONE):
            on = [m.name for m in elements if isinstance(m, SwitchMember) and m.value is SwitchState.ON]
            if len(on) > 1:
                raise ValueRefused(f"{device}.{prop} is {p.rule}: only one member may be On, not {on}",
                                   device, prop)
        return await self._send_new(p, elements, wait, timeout)

    async def select(self, device: str, prop: str, member: str, *, wait: bool = False,
                     timeout: float | None = 30.0) -> Property:
        """Turn the switch ``member`` of ``device``.``prop`` On, following the property's rule:
        OneOfMany sends just that member On (the device turns the others Off), AtMostOne also
        turns Off those that are On, AnyOfMany leaves the others as they are. ``wait`` and
        ``timeout`` as for set()."""
        p = await self._lookup(device, prop)
        if p.type is not PropertyType.SWITCH:
            raise ValueRefused(f"{device}.{prop} is a {p.type} property, not a switch", device, prop)
        if p.perm == "ro":
            raise ReadOnly(f"{device}.{prop} is read-only")
        if member not in p.members:
            raise UnknownMember(device, prop, member)
        elements = [SwitchMember(member, SwitchState.ON)]
        if p.rule is SwitchRule.AT_MOST_ONE:
            elements += [SwitchMember(name, SwitchState.OFF) for name in p.on if name != member]
        return await self._send_new(p, elements, wait, timeout)

    async def _send_new(self, p: Property, elements: list, wait: bool, timeout: float | None) -> Property:
        conn = self._require_connection()
        device, name = p.device, p.name
        key = (device, name)
        seen = self._serials.get(key, 0)
        messages_before = self._message_count
        conn.write(serialize(NewVector(p.type, device, name, elements)))
        await conn.drain()
        if not wait:
            return p
        wanted = {m.name: m.value for m in elements if not isinstance(m, BLOBMember)}
        answered = False

        def answer() -> Property | None:
            nonlocal seen, answered
            serial = self._serials.get(key, 0)
            if serial == seen:
                return None
            seen = serial
            current = self._find(device, name)
            if not answered:
                if current.state in (PropertyState.BUSY, PropertyState.ALERT) or _matches(current, wanted):
                    answered = True
                else:
                    return None
            return None if current.state is PropertyState.BUSY else current

        result = await self.wait_for(answer, timeout, what=f"{device}.{name} to answer and leave Busy")
        if result.state is PropertyState.ALERT:
            reason = self._last_message.get(key)
            if not reason:
                recent = list(self.messages)[-(self._message_count - messages_before):] \
                    if self._message_count > messages_before else []
                from_device = [m.text for m in recent if m.device == device]
                reason = from_device[-1] if from_device else None
            raise ValueRefused(f"{device}.{name} refused: {reason}" if reason else f"{device}.{name} ended Alert",
                               device, name)
        return result

    async def connect_device(self, device: str, timeout: float | None = 30.0) -> Device:
        """Connect ``device`` (CONNECTION CONNECT On) and wait until CONNECTION is Ok; nothing is
        sent if it is already connected. Returns the Device."""
        p = await self._lookup(device, "CONNECTION")
        if _connected(p):
            return self[device]
        loop = asyncio.get_running_loop()
        start = loop.time()
        await self.set(device, "CONNECTION", CONNECT=True, wait=True, timeout=timeout)
        remaining = None if timeout is None else max(0.0, timeout - (loop.time() - start))
        await self.wait_for(lambda: _connected(self._find(device, "CONNECTION")), remaining,
                            what=f"{device} to be connected (CONNECTION Ok)")
        return self[device]

    async def disconnect_device(self, device: str, timeout: float | None = 30.0) -> Device:
        """Disconnect ``device`` (CONNECTION DISCONNECT On) and wait for the answer."""
        await self.set(device, "CONNECTION", DISCONNECT=True, wait=True, timeout=timeout)
        return self[device]

    def __repr__(self) -> str:
        state = "connected" if self.connected else ("closed" if self._closed else "not connected")
        return f"<Client {self.address} {state}, {len(self.devices)} devices>"


# ------------------------------------------------------------------------------------ helpers
def _state(state: str | PropertyState) -> PropertyState:
    try:
        return state if isinstance(state, PropertyState) else PropertyState(str(state).capitalize())
    except ValueError:
        raise ValueError(f"{state!r} is not one of Idle, Ok, Busy, Alert") from None


def _connected(p: Property) -> bool:
    member = p.members.get("CONNECT")
    return bool(member is not None and member.value and p.state is PropertyState.OK)


def _number_texts(frame: Frame) -> dict[str, str]:
    """The members' texts exactly as received (stripped), by name: numbers' raw text."""
    try:
        root = ET.fromstring(frame.raw)
    except ET.ParseError:
        return {}
    return {child.get("name", ""): (child.text or "").strip(_C_SPACE) for child in root}


def _matches(p: Property, wanted: dict[str, Any]) -> bool:
    """True if the property's members have the values requested (numbers within rounding)."""
    for name, value in wanted.items():
        member = p.members.get(name)
        if member is None:
            return False
        if isinstance(member, Number):
            got = member.value
            tolerance = max(1e-9, 1e-6 * abs(value), member.step / 2 if member.step > 0 else 0.0)
            if not (abs(got - value) <= tolerance or (math.isnan(got) and math.isnan(value))):
                return False
        elif isinstance(member, Switch):
            if member.value != (value is SwitchState.ON):
                return False
        elif member.value != value:
            return False
    return True


_TRUE = {"on", "true", "1", "yes"}
_FALSE = {"off", "false", "0", "no"}


def _convert(p: Property, name: str, value: Any) -> Any:
    """One member's value, converted to the protocol's member for a new*Vector (or ValueRefused)."""
    member = p.members.get(name)
    if member is None:
        raise UnknownMember(p.device, p.name, name)
    where = f"{p.device}.{p.name}.{name}"
    if p.type is PropertyType.NUMBER:
        assert isinstance(member, Number)
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueRefused(f"{where}: {value!r} is not a number", p.device, p.name)
        if isinstance(value, str):
            try:
                number = parse_number(value)
            except NumberFormatError:
                raise ValueRefused(f"{where}: {value!r} is not a number", p.device, p.name) from None
        else:
            number = float(value)
        if math.isnan(number):
            raise ValueRefused(f"{where}: NaN is not a value", p.device, p.name)
        if member.min < member.max and not member.min <= number <= member.max:
            raise ValueRefused(f"{where}: {value!r} is outside {member.min:g}..{member.max:g}", p.device, p.name)
        return NumberMember(name, number)
    if p.type is PropertyType.TEXT:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueRefused(f"{where}: {value!r} is not text", p.device, p.name)
        return TextMember(name, str(value))
    if p.type is PropertyType.SWITCH:
        if isinstance(value, SwitchState):
            return SwitchMember(name, value)
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return SwitchMember(name, SwitchState.ON if value else SwitchState.OFF)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return SwitchMember(name, SwitchState.ON if value.strip().lower() in _TRUE else SwitchState.OFF)
        raise ValueRefused(f"{where}: {value!r} is not On/Off (True/False)", p.device, p.name)
    if p.type is PropertyType.BLOB:
        fmt = None
        if isinstance(value, tuple) and len(value) == 2:
            value, fmt = value
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
        elif isinstance(value, (str, os.PathLike)):
            path = Path(value)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise ValueRefused(f"{where}: cannot read {str(path)!r}: {exc.strerror}", p.device, p.name) from None
            if fmt is None:
                fmt = path.suffix
        else:
            raise ValueRefused(f"{where}: {value!r} is neither bytes nor a file path", p.device, p.name)
        return BLOBMember(name, data, fmt or "", len(data))
    raise ReadOnly(f"{p.device}.{p.name} is read-only")

