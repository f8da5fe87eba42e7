"""The live WebSocket ``/ws``: the server's status, and an INDI control panel bridged to the running server.

indi-web holds ONE :class:`indi.client.Client` (the :class:`LiveBridge`'s) connected to the running
indiserver's port while it runs (replaced when the server is restarted, closed when it stops); every
browser's WebSocket is fed from its model's events. While at least one browser is open, BLOBs are
enabled ("Also") for every device so that images arrive; with none, they are turned off again, so an
imaging night without a browser costs indi-web nothing. Each socket has a bounded queue: a browser
that stops reading is dropped (closed with code 1013) without holding the others back; it reconnects
and gets everything afresh.

Messages from indi-web to the browser (JSON text frames, one object each, always with ``"type"``):

``{"type": "status", "status": {...}}``
    The object of ``GET /api/server/status/full``. Sent first on connect, then whenever it changes
    (server started/stopped/exited, drivers started/stopped/crashed/restarted, clients come and go,
    log lines): pushed on indi-web's events and checked every second, sent only when different.

``{"type": "def", "device": D, "name": P, "kind": "number"|"text"|"switch"|"light"|"blob", "label": str,
"group": str, "state": "Idle"|"Ok"|"Busy"|"Alert", "perm": "ro"|"wo"|"rw", "rule": "OneOfMany"|"AtMostOne"|
"AnyOfMany"|null, "timeout": float|null, "timestamp": str|null, "message": str|null, "members": [...]}``
    A property defined (or defined again: replace it). After the status, a new socket gets one def
    for every property known, then the last 50 messages. Lights are always "ro". Each member is
    ``{"name", "label", "value", "display"}`` plus, for numbers, ``"format", "min", "max", "step"``
    and, for BLOBs, ``"format", "size"``. ``value`` is: numbers a float (null if not finite), texts a
    string, switches "On"/"Off", lights "Idle"/"Ok"/"Busy"/"Alert", BLOBs null (images come as
    ``image`` messages). ``display`` is the value as INDI tools show it: numbers formatted with their
    printf or sexagesimal (``%m``) format, BLOBs "<size> bytes <format>" (or ""), others as ``value``.

``{"type": "set", "device": D, "name": P, "state": ..., "timeout": float|null, "timestamp": str|null,
"message": str|null, "members": {member: value, ...}, "display": {member: text, ...}}``
    A property updated: its state, and the members the update carried (often not all of them),
    values and displays as in ``def``. A BLOB vector's set names the BLOB members it carried.

``{"type": "del", "device": D, "name": P|null}``
    A property deleted, or with ``name`` null a whole device (its driver stopped or exited, the
    server stopped, or indi-web lost its connection to the server).

``{"type": "message", "device": D|null, "timestamp": str|null, "message": str}``
    A device's message (null device: the server's).

``{"type": "image", "device": D, "name": P, "member": M, "format": ".fits", "size": bytes,
"url": "/api/preview/<device>/<property>/<member>.png?n=<counter>"}``
    A BLOB arrived (format as received, ".z" already inflated; size of its content in bytes). The
    URL (names percent-encoded) gives it as PNG (see :mod:`indi.web.preview`); ``n`` grows with every
    image. Video streams send many: fetch the next only after the previous one loaded. A new socket
    gets the latest image of each BLOB member after the definitions.

``{"type": "error", "message": str, "device": D|null, "name": P|null, "id": ...}``
    A request refused: by indi-web before sending (unknown property, read-only, a number out of range
    or not a number, several switches On under OneOfMany/AtMostOne, no server running, a malformed
    message) or by the device (the property went Alert; ``message`` then carries its reason).
    ``id`` is the request's own, if it gave one.

``{"type": "pong", "id": ...}``
    The answer to a ping.

Messages from the browser:

``{"type": "new", "device": D, "name": P, "members": {member: value, ...}, "id": optional}``
    New values, sent to the device through the client (its conversion and checks): numbers as
    numbers or strings (sexagesimal "5:35:17" and "-5 23 28" too), texts as strings, switches "On"/"Off"
    (or true/false). A switch request naming one member "On" alone follows the rule (AtMostOne turns
    the others Off). BLOB properties cannot be set from the browser.

``{"type": "ping", "id": optional}``
    Answered with ``pong``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections import deque
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import APIRouter, WebSocket

from ..client import (
    BlobReceived,
    Client,
    Defined,
    Deleted,
    Disconnected,
    Event,
    IndiError,
    IndiTimeout,
    MessageReceived,
    Updated,
)
from ..client.model import BLOB, Number, Property, Switch
from ..protocol import PropertyType
from .preview import PreviewStore, preview_url

if TYPE_CHECKING:
    from .state import WebState

__all__ = ["LiveBridge", "Subscriber", "router", "def_message", "set_message"]

log = logging.getLogger("indi.web")

STATUS_PERIOD = 1.0          # seconds between checks of the status for changes
MESSAGES_KEPT = 50           # messages a new socket gets
QUEUE_MESSAGES = 5000        # a socket further behind than this many messages is dropped...
QUEUE_BYTES = 32 * 1024 * 1024   # ...or than this many bytes
NEW_TIMEOUT = 120.0          # seconds a request waits for the device's answer (to report an Alert)
REQUESTS_PER_SOCKET = 64     # requests of one socket waiting for their answers at once
CLOSE_TOO_SLOW = 1013        # "try again later": the page reconnects
CLOSE_GOING_AWAY = 1001      # indi-web is stopping


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _value(member: Any) -> Any:
    if isinstance(member, Number):
        return _number(member.value)
    if isinstance(member, Switch):
        return "On" if member.value else "Off"
    if isinstance(member, BLOB):
        return None
    return str(member.value) if member.value is not None else ""


def _display(member: Any) -> str:
    if isinstance(member, BLOB):
        return member.text if member.size is not None or member.format else ""
    return member.text


def _member(member: Any) -> dict[str, Any]:
    out = {"name": member.name, "label": member.label, "value": _value(member), "display": _display(member)}
    if isinstance(member, Number):
        out.update(format=member.format, min=_number(member.min), max=_number(member.max), step=_number(member.step))
    elif isinstance(member, BLOB):
        out.update(format=member.format or "", size=member.size)
    return out


def def_message(p: Property) -> dict[str, Any]:
    """The ``def`` message of a property of the client's model."""
    return {"type": "def", "device": p.device, "name": p.name, "kind": str(p.type).lower(), "label": p.label,
            "group": p.group, "state": str(p.state), "perm": str(p.perm),
            "rule": str(p.rule) if p.rule is not None and p.type is PropertyType.SWITCH else None,
            "timeout": _number(p.timeout) if p.timeout is not None else None, "timestamp": p.timestamp,
            "message": p.message, "members": [_member(m) for m in p.members.values()]}


def set_message(p: Property, names: list[str], timestamp: str | None = None,
                message: str | None = None) -> dict[str, Any]:
    """The ``set`` message of an update of a property: its state and the members named."""
    members = [p.members[n] for n in dict.fromkeys(names) if n in p.members]
    return {"type": "set", "device": p.device, "name": p.name, "state": str(p.state),
            "timeout": _number(p.timeout) if p.timeout is not None else None,
            "timestamp": timestamp if timestamp is not None else p.timestamp, "message": message,
            "members": {m.name: _value(m) for m in members}, "display": {m.name: _display(m) for m in members}}


def image_message(device: str, prop: str, member: str, fmt: str, size: int, counter: int) -> dict[str, Any]:
    return {"type": "image", "device": device, "name": prop, "member": member, "format": fmt, "size": size,
            "url": preview_url(device, prop, member, counter)}


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), default=str)


class Subscriber:
    """One browser's queue of JSON texts; dropped (``dropped`` set) when it falls too far behind."""

    def __init__(self, max_messages: int = QUEUE_MESSAGES, max_bytes: int = QUEUE_BYTES) -> None:
        self.max_messages, self.max_bytes = max_messages, max_bytes
        self.queue: deque[str] = deque()
        self.size = 0
        self.ready = asyncio.Event()
        self.dropped = asyncio.Event()     # set when the socket is to be closed, with close_code
        self.close_code, self.close_reason = CLOSE_TOO_SLOW, "too far behind: reconnect"

    def drop(self, code: int, reason: str) -> None:
        if not self.dropped.is_set():
            self.close_code, self.close_reason = code, reason
            self.dropped.set()

    def push(self, text: str) -> None:
        if self.dropped.is_set():
            return
        self.queue.append(text)
        self.size += len(text)
        if len(self.queue) > self.max_messages or self.size > self.max_bytes:
            self.queue.clear()
            self.size = 0
            self.dropped.set()
        self.ready.set()

    def send(self, message: dict[str, Any]) -> None:
        self.push(_dumps(message))

    async def next(self) -> str:
        while not self.queue:
            self.ready.clear()
            await self.ready.wait()
        text = self.queue.popleft()
        self.size -= len(text)
        return text


class LiveBridge:
    """The one INDI client of indi-web, following the server it runs, and the sockets it feeds."""

    def __init__(self, web: WebState) -> None:
        self.web = web
        self.previews = PreviewStore()
        self.client: Client | None = None
        self.subscribers: set[Subscriber] = set()
        self.messages: deque[str] = deque(maxlen=MESSAGES_KEPT)
        self._run: Any = None                      # the manager's ServerRun the client follows
        self._task: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[dict[str, Any]] | None = None
        self._last_status: str | None = None
        self._blobs_on: set[str] = set()           # devices whose images the client asked for
        self._tasks: set[asyncio.Task[None]] = set()   # enableBLOB requests being sent

    # ------------------------------------------------------------------------------ life cycle
    def start(self) -> None:
        if self._task is None:
            self._events = self.web.events.subscribe()
            self._task = asyncio.get_running_loop().create_task(self._supervise(), name="indi-web live bridge")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._events is not None:
            self.web.events.unsubscribe(self._events)
            self._events = None
        await self._drop_client()
        for subscriber in list(self.subscribers):
            subscriber.drop(CLOSE_GOING_AWAY, "indi-web is stopping")

    async def _supervise(self) -> None:
        assert self._events is not None
        while True:
            try:
                await self._follow_server()
                if self.subscribers:
                    await self._refresh_status()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the bridge must outlive any one failure
                log.exception("live bridge")
            try:  # an event (server or driver started, stopped, exited) at once, else the next tick
                await asyncio.wait_for(self._events.get(), STATUS_PERIOD)
            except TimeoutError:
                pass
            while not self._events.empty():   # several events at once: one status
                self._events.get_nowait()

    async def _follow_server(self) -> None:
        manager = self.web.manager
        run = manager.run if manager.running else None
        if run is not self._run:
            await self._drop_client()
            self._run = run
        if run is None or self.client is not None:
            return
        client = Client("127.0.0.1", run.port, reconnect=True, define_timeout=2.0, keep_blobs=True, inflate=True,
                        max_messages=MESSAGES_KEPT)
        client.add_listener(self._on_event)
        try:
            await asyncio.wait_for(client.connect(), 5)
        except (IndiError, TimeoutError) as exc:
            log.debug("live bridge: %s (retrying)", exc)
            await client.close()
            return
        self.client = client
        log.info("live bridge connected to the INDI server on port %d", run.port)

    async def _drop_client(self) -> None:
        client, self.client = self.client, None
        self._blobs_on.clear()
        if client is not None:
            await client.close()   # the devices' del messages go out from its _lost_model
        self.previews.clear()

    async def _refresh_status(self) -> None:
        text = _dumps({"type": "status", "status": await self.web.full_status()})
        if text != self._last_status:
            self._last_status = text
            self.broadcast(text)

    # ----------------------------------------------------------------------- the client's model
    def _on_event(self, event: Event) -> None:
        """Turn a change of the client's model into the browsers' messages."""
        match event:
            case Defined(prop=p):
                if self.subscribers:
                    self._want_blobs(p.device, True)
                self.emit(def_message(p))
            case Updated(prop=p, members=names, message=message):
                self.emit(set_message(p, list(names), p.timestamp, message))
            case Deleted(device=device, name=name):
                self.forget(device, name)
                self.emit({"type": "del", "device": device, "name": name})
            case MessageReceived(message=m):
                self.message(m.device, m.timestamp, m.text)
            case BlobReceived(prop=p, member=member, format=fmt, data=data) if data is not None:
                self.image(p.device, p.name, member, fmt, bytes(data))
            case Disconnected(devices=devices):
                self._blobs_on.clear()   # asked again of the next connection's devices
                for device in devices:
                    self.forget(device, None)
                    self.emit({"type": "del", "device": device, "name": None})

    def _want_blobs(self, device: str, on: bool) -> None:
        """Ask for a device's images (once), or stop them."""
        client = self.client
        if client is None or not client.connected or (device in self._blobs_on) == on:
            return
        if on:
            self._blobs_on.add(device)
        else:
            self._blobs_on.discard(device)
        task = asyncio.get_running_loop().create_task(client.enable_blob(device, None, "Also" if on else "Never"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------------------ outgoing
    def broadcast(self, text: str) -> None:
        for subscriber in list(self.subscribers):
            subscriber.push(text)

    def emit(self, message: dict[str, Any]) -> None:
        try:
            text = _dumps(message)
        except (TypeError, ValueError):
            log.exception("live bridge: cannot send %r", message)
            return
        self.broadcast(text)

    def message(self, device: str | None, timestamp: str | None, text: str) -> None:
        encoded = _dumps({"type": "message", "device": device, "timestamp": timestamp, "message": text})
        self.messages.append(encoded)
        self.broadcast(encoded)

    def image(self, device: str, prop: str, member: str, fmt: str, data: bytes) -> None:
        counter = self.previews.put(device, prop, member, fmt, data)
        self.emit(image_message(device, prop, member, fmt, len(data), counter))

    def forget(self, device: str, prop: str | None) -> None:
        self.previews.forget(device, prop)

    async def subscribe(self) -> Subscriber:
        """A new socket's queue, holding the status, every property known and the latest messages."""
        status = await self.web.full_status()
        subscriber = Subscriber()
        # From here on nothing awaits: the snapshot and the live updates after it neither overlap nor miss.
        subscriber.send({"type": "status", "status": status})
        client = self.client
        if client is not None:
            for device in list(client.devices.values()):
                for p in list(device.properties.values()):
                    subscriber.send(def_message(p))
        for image in self.previews.latest():
            subscriber.send(image_message(image.device, image.property, image.member, image.format,
                                          len(image.data), image.counter))
        for text in self.messages:
            subscriber.push(text)
        if not self.subscribers and client is not None:
            for device in list(client.devices):
                self._want_blobs(device, True)
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        if not self.subscribers and self.client is not None:
            for device in list(self.client.devices):
                self._want_blobs(device, False)

    # ------------------------------------------------------------------------------ incoming
    async def new(self, device: Any, name: Any, members: Any) -> None:
        """Send new values to a device; IndiError (or ValueError) with the reason if refused."""
        if not isinstance(device, str) or not isinstance(name, str) or not device or not name:
            raise ValueError("a new request needs \"device\" and \"name\" strings")
        if not isinstance(members, dict) or not members:
            raise ValueError(f"{device}.{name}: give \"members\" as an object of member: value")
        client = self.client
        if client is None or not client.connected:
            raise ValueError("the INDI server is not running" if self._run is None
                             else "not connected to the INDI server yet")
        p = client.devices[device].properties.get(name) if device in client.devices else None
        if p is None:
            raise ValueError(f"unknown property {device}.{name}")
        if p.type is PropertyType.BLOB:
            raise ValueError(f"{device}.{name} is a BLOB property: files cannot be sent from the page")
        values: dict[str, Any] = {}
        for member, value in members.items():
            if not isinstance(value, str | int | float) or (isinstance(value, float) and not math.isfinite(value)):
                raise ValueError(f"{device}.{name}.{member}: {value!r} is not a value")
            values[str(member)] = value
        try:
            if p.type is PropertyType.SWITCH and len(values) == 1:
                [(member, value)] = values.items()
                on = value is True or (not isinstance(value, bool) and str(value).strip().lower() in _ON)
                if on:
                    await client.select(device, name, member, wait=True, timeout=NEW_TIMEOUT)
                    return
            await client.set(device, name, values, wait=True, timeout=NEW_TIMEOUT)
        except IndiTimeout:
            pass  # sent; the device is still busy (or answered with other values): its sets tell the rest


_ON = ("on", "true", "1", "yes")

router = APIRouter()


def _error(text: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
    request = request or {}
    answer = {"type": "error", "message": text, "device": request.get("device"), "name": request.get("name")}
    if "id" in request:
        answer["id"] = request["id"]
    return answer


async def _send_loop(websocket: WebSocket, subscriber: Subscriber) -> None:
    while True:
        await websocket.send_text(await subscriber.next())


async def _request(bridge: LiveBridge, subscriber: Subscriber, request: dict[str, Any]) -> None:
    try:
        await bridge.new(request.get("device"), request.get("name"), request.get("members"))
    except (IndiError, ValueError, LookupError) as exc:
        subscriber.send(_error(str(exc), request))
    except Exception as exc:  # noqa: BLE001 - a bug must not end the socket
        log.exception("live: request %r", request)
        subscriber.send(_error(f"internal error: {exc}", request))


async def _receive_loop(websocket: WebSocket, bridge: LiveBridge, subscriber: Subscriber) -> None:
    pending: set[asyncio.Task[None]] = set()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None and message.get("bytes") is not None:
                raw = message["bytes"].decode("utf-8", "replace")
            try:
                request = json.loads(raw or "")
            except ValueError:
                subscriber.send(_error("not a JSON message"))
                continue
            if not isinstance(request, dict):
                subscriber.send(_error("a message is a JSON object with a \"type\""))
                continue
            kind = request.get("type")
            if kind == "ping":
                subscriber.send({"type": "pong", **({"id": request["id"]} if "id" in request else {})})
            elif kind == "new":
                if len(pending) >= REQUESTS_PER_SOCKET:
                    subscriber.send(_error("too many requests waiting for their devices' answers", request))
                    continue
                task = asyncio.get_running_loop().create_task(_request(bridge, subscriber, request))
                pending.add(task)
                task.add_done_callback(pending.discard)
            else:
                subscriber.send(_error(f"unknown message type {kind!r}: send \"new\" or \"ping\"", request))
    finally:
        for task in pending:
            task.cancel()


@router.websocket("/ws")
async def live_socket(websocket: WebSocket) -> None:
    """The live view: status, INDI properties, messages and images out; new values and pings in."""
    web: WebState = websocket.app.state.web
    bridge = web.live
    await websocket.accept()
    subscriber = await bridge.subscribe()
    ended: list[str] = []

    async def until_done(what: str, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
            ended.append(what)
        except Exception as exc:  # noqa: BLE001 - a socket that failed: close it, the others go on
            log.debug("live: %s: %s", what, exc)
            ended.append(f"{what} failed")
        finally:
            group.cancel_scope.cancel()

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(until_done, "sender", _send_loop(websocket, subscriber))
            group.start_soon(until_done, "browser", _receive_loop(websocket, bridge, subscriber))
            group.start_soon(until_done, "dropped", subscriber.dropped.wait())
    finally:
        bridge.unsubscribe(subscriber)
    if ended[:1] == ["browser"]:
        return  # the browser closed it
    if subscriber.dropped.is_set():
        if subscriber.close_code == CLOSE_TOO_SLOW:
            log.warning("live: a browser fell too far behind: closing its socket")
        code, reason = subscriber.close_code, subscriber.close_reason
    else:
        code, reason = 1011, "internal error"
    with anyio.move_on_after(2), contextlib.suppress(Exception):
        await websocket.close(code, reason)
