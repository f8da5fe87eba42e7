"""Helpers for the client tests: running a coroutine with a deadline, a fake INDI server the
test speaks for (to see exactly what the client sends), and the simulators' sky."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from helpers import our_simulator
from indi.protocol import Frame, Framer
from indi.simulators import astro

HERE = Path(__file__).resolve().parent
DRIVERS = HERE / "drivers"
SCOPE = "Telescope Simulator"
CAMERA = "CCD Simulator"
FOCUSER = "Focuser Simulator"
DEADLINE = 60.0     # for a whole test body: generous, the machine is shared
WAIT = 30.0         # for one event


def run(coro, timeout: float = DEADLINE):
    """Run a test's coroutine to completion, failing it if it takes longer than timeout."""
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


def start(servers, which: str, *drivers: str, env=None, args: tuple[str, ...] = ()):
    """Our server or the reference one with these drivers (our server connects devices itself)."""
    if which == "ours":
        return servers.ours(*args, *drivers, env=env)
    return servers.reference(*args, *drivers, env=env)


def sim(kind: str) -> str:
    return our_simulator(kind)


def lst_hours(longitude: float = 0.0) -> float:
    """Local sidereal time now where the telescope simulator is (lat 0, long 0 by default)."""
    return astro.lst_hours(time.time(), longitude)


def sexagesimal(hours: float) -> str:
    """A value as d:mm:ss text (the way a user types coordinates)."""
    sign = "-" if hours < 0 else ""
    seconds = round(abs(hours) * 3600)
    return f"{sign}{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class FakeLink:
    """The server's end of one client connection: the test sends XML and expects elements."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.framer = Framer()
        self.pending: list[Frame] = []
        self.eof = False

    async def send(self, xml: str | bytes) -> None:
        self.writer.write(xml.encode() if isinstance(xml, str) else xml)
        await self.writer.drain()

    async def next(self, timeout: float = WAIT) -> Frame:
        deadline = time.monotonic() + timeout
        while not self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.eof:
                raise AssertionError(f"nothing received from the client within {timeout} s (eof={self.eof})")
            try:
                data = await asyncio.wait_for(self.reader.read(1 << 16), remaining)
            except TimeoutError:
                continue
            if not data:
                self.eof = True
                continue
            self.pending += self.framer.feed(data)
        return self.pending.pop(0)

    async def expect(self, tag: str, timeout: float = WAIT, **attrs: str) -> Frame:
        """The next element with this tag and attributes; the ones before it are returned by
        ``skipped`` for the test to check."""
        self.skipped: list[Frame] = []
        while True:
            frame = await self.next(timeout)
            if frame.tag == tag and all(frame.attrs.get(k) == v for k, v in attrs.items()):
                return frame
            self.skipped.append(frame)

    async def answer_ping(self, timeout: float = WAIT) -> list[Frame]:
        """Wait for the client's pingRequest, answer it, and return what the client sent before it."""
        frame = await self.expect("pingRequest", timeout)
        before = self.skipped
        await self.send(f'<pingReply uid="{frame.attrs.get("uid", "")}"/>\n')
        return before

    def close(self) -> None:
        self.writer.close()


class FakeServer:
    """A TCP listener in the test's event loop; each client connection becomes a FakeLink."""

    def __init__(self) -> None:
        self.links: asyncio.Queue[FakeLink] = asyncio.Queue()
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def __aenter__(self) -> FakeServer:
        async def accepted(reader, writer):
            await self.links.put(FakeLink(reader, writer))
        self.server = await asyncio.start_server(accepted, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.server is not None
        self.server.close()

    async def accept(self, timeout: float = WAIT) -> FakeLink:
        link = await asyncio.wait_for(self.links.get(), timeout)
        await link.expect("getProperties")
        return link


async def barrier(client, link: FakeLink) -> list[Frame]:
    """The client pings, the fake server answers: returns what the client sent before the ping."""
    _, before = await asyncio.gather(client.ping(), link.answer_ping())
    return before


def vm_hwm_kb() -> int:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/self/status")
