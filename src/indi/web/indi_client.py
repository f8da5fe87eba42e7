"""indi-web as an INDI client: the one module that speaks INDI to the server it runs.

The REST API needs little of the protocol: which devices the running server has and whether each
is connected (``GET /api/devices``). That is asked of the project's client library
(``indi.client.Client``, with its live model of the devices) when it is installed, else of the small
:class:`IndiClient` below, built on indi.protocol's Framer. The live control panel's long-lived
``indi.client.Client`` to the running server is :mod:`indi.web.live`'s bridge.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..protocol import DefVector, Frame, Framer, FramingError, ProtocolError, SetVector, SwitchState, parse

__all__ = ["IndiClient", "list_devices", "list_devices_framed"]


class IndiClient:
    """One connection to an INDI server: send XML, receive whole elements (Frames)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.framer = Framer()
        self._pending: list[Frame] = []
        self.eof = False

    @classmethod
    async def connect(cls, host: str, port: int, timeout: float = 3.0) -> IndiClient:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        return cls(reader, writer)

    async def send(self, xml: str | bytes) -> None:
        self.writer.write(xml.encode() if isinstance(xml, str) else xml)
        await self.writer.drain()

    async def next_frame(self, timeout: float | None = None) -> Frame | None:
        """The next element; None at end of stream. TimeoutError if nothing complete arrives in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._pending:
            if self.eof:
                return None
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            data = await asyncio.wait_for(self.reader.read(1 << 20), remaining)
            if not data:
                self.eof = True
                continue
            try:
                self._pending += self.framer.feed(data)
            except FramingError as exc:
                self._pending += exc.frames
                self.eof = True
        return self._pending.pop(0)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


def _connection_state(frame: Frame) -> bool | None:
    """True/False if the frame defines or sets CONNECTION.CONNECT, else None."""
    if frame.name != "CONNECTION" or frame.tag not in ("defSwitchVector", "setSwitchVector"):
        return None
    try:
        element = parse(frame)
    except ProtocolError:
        return None
    if not isinstance(element, DefVector | SetVector):
        return None
    for member in element.members:
        if member.name == "CONNECT":
            return member.value == SwitchState.ON
    return None


async def list_devices(host: str, port: int, expected: set[str] | None = None,
                       timeout: float = 3.0) -> list[dict[str, Any]]:
    """``[{"device": name, "connected": bool}]`` for each device that has a CONNECTION property.

    Returns as soon as every ``expected`` device (those the server's status names) has answered,
    else when ``timeout`` runs out, with what arrived by then. OSError if the server cannot be reached.
    """
    if expected is not None and not expected:
        return []
    try:
        from ..client import Client  # the project's client library
    except ImportError:
        return await list_devices_framed(host, port, expected, timeout)
    return await _list_devices_with(Client, host, port, expected, timeout)


async def _list_devices_with(client_class: Any, host: str, port: int, expected: set[str] | None,
                             timeout: float) -> list[dict[str, Any]]:
    from ..client import IndiError

    client = client_class(host, port, reconnect=False)
    try:
        await client.connect()
    except IndiError as exc:
        raise OSError(str(exc)) from None
    try:
        def with_connection() -> dict[str, Any]:
            return {name: device for name, device in client.devices.items() if "CONNECTION" in device}

        try:
            await client.wait_for(lambda: expected is not None and expected <= with_connection().keys(), timeout,
                                  what="the devices' CONNECTION")
        except IndiError:
            pass  # timed out or lost: report what arrived
        return [{"device": name, "connected": bool(device.connected)}
                for name, device in sorted(with_connection().items())]
    finally:
        await client.close()


async def list_devices_framed(host: str, port: int, expected: set[str] | None = None,
                              timeout: float = 3.0) -> list[dict[str, Any]]:
    """``list_devices`` with this module's own small client (no client library needed)."""
    if expected is not None and not expected:
        return []
    states: dict[str, bool] = {}
    client = await IndiClient.connect(host, port, timeout)
    try:
        await client.send('<getProperties version="1.7"/>\n')
        deadline = time.monotonic() + timeout
        while expected is None or not expected <= states.keys():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                frame = await client.next_frame(remaining)
            except TimeoutError:
                break
            if frame is None:
                break
            state = _connection_state(frame)
            if state is not None and frame.device:
                states[frame.device] = state
    finally:
        await client.close()
    return [{"device": device, "connected": connected} for device, connected in sorted(states.items())]
