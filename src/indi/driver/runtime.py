"""Running devices as an INDI driver: messages in on stdin, out on stdout, one event loop.

The server's requests are framed with ``indi.protocol`` and handled one at a time, in order; a
handler that starts something long (a slew, an exposure) runs it as a task of its device. Output
is queued and written without blocking; a BLOB is written in pieces (no copy of the encoded
image) and followed by a pingRequest whose reply the device waits for.
"""

from __future__ import annotations

import array
import asyncio
import binascii
import os
import signal
import socket
import stat
import sys
import traceback
from collections import deque
from collections.abc import Iterator
from typing import Any

from ..iobuffers import write_queue
from ..protocol import (
    BLOBMember,
    DefVector,
    DelProperty,
    Frame,
    Framer,
    FramingError,
    NewVector,
    PropertyType,
    ProtocolError,
    SetVector,
    parse,
    timestamp,
)
from ..protocol.elements import xml_attributes
from .device import Device
from .properties import BLOBVector

__all__ = ["Driver", "run"]

READ_SIZE = 1 << 20


class _Output:
    """Non-blocking writes to a descriptor, batched once per loop turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, on_closed: Any) -> None:
        self.loop = loop
        self.fd = fd
        self.on_closed = on_closed
        self.queue: deque[bytes | memoryview] = deque()
        self.scheduled = False
        self.waiting = False
        self.closed = False
        os.set_blocking(fd, False)

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        self.queue.append(data)
        if not self.scheduled and not self.waiting:
            self.scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        queue = self.queue
        if queue and not self.closed:
            try:
                write_queue(self.fd, queue)
            except OSError:
                self.closed = True
                queue.clear()
                self.on_closed()
                return
        if queue and not self.waiting:
            self.loop.add_writer(self.fd, self.flush)
            self.waiting = True
        elif not queue and self.waiting:
            self.loop.remove_writer(self.fd)
            self.waiting = False


class Driver:
    """Serves one or more devices on stdin/stdout until the server closes stdin."""

    def __init__(self, *devices: type[Device] | Device, stdin: int = 0, stdout: int = 1) -> None:
        self._device_specs = devices
        self.devices: list[Device] = []
        self.stdin, self.stdout = stdin, stdout
        self._framer = Framer()
        self._pings: dict[str, asyncio.Future[None]] = {}
        self._ping_count = 0
        self._queue: asyncio.Queue[tuple[Frame, list[bytes]]] = asyncio.Queue()
        self._socket: socket.socket | None = None   # stdin, when the server gave us a socket
        self._fds: deque[int] = deque()             # buffers passed with SCM_RIGHTS, in order
        self._output: _Output | None = None
        self._done: asyncio.Event | None = None

    def _make_devices(self) -> None:
        single = len(self._device_specs) == 1
        for spec in self._device_specs:
            if isinstance(spec, Device):
                spec.driver = self
                self.devices.append(spec)
            else:
                # INDIDEV names the device of a single-device driver, as with libindi.
                name = os.environ.get("INDIDEV") if single else None
                self.devices.append(spec(self, name or None))

    def device(self, name: str) -> Device | None:
        for device in self.devices:
            if device.name == name:
                return device
        return None

    # -------------------------------------------------------------------------------- output
    def write(self, data: bytes) -> None:
        if self._output is not None:
            self._output.write(data)

    def write_blob(self, vector: BLOBVector, message: str | None = None) -> None:
        """setBLOBVector in pieces: the base64 text is written as it is, never copied again."""
        device = vector.device.name if vector.device else ""
        attributes = xml_attributes([("device", device), ("name", vector.name), ("state", vector.state),
                                     ("timeout", vector.timeout), ("timestamp", timestamp()), ("message", message)])
        self.write(f"<setBLOBVector{attributes}>\n".encode())
        for member in vector:
            data = member.value or b""
            size = member.size if member.size is not None else len(data)
            attributes = xml_attributes([("name", member.name), ("size", size), ("format", member.format),
                                         ("enclen", (len(data) + 2) // 3 * 4)])
            self.write(f"  <oneBLOB{attributes}>\n".encode())
            for block in _base64_lines(data):
                self.write(block)
            self.write(b"  </oneBLOB>\n")
        self.write(b"</setBLOBVector>\n")

    async def ping(self, timeout: float = 60.0) -> bool:
        """pingRequest to the server; True once it answers (it has read everything before)."""
        self._ping_count += 1
        uid = f"SetBLOB/{self._ping_count}"
        future = asyncio.get_running_loop().create_future()
        self._pings[uid] = future
        self.write(f'<pingRequest uid="{uid}"/>\n'.encode())
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._pings.pop(uid, None)

    # --------------------------------------------------------------------------------- input
    def _read(self) -> bytes:
        if self._socket is None:
            return os.read(self.stdin, READ_SIZE)
        # The reference server hands BLOBs to drivers on its socketpair as attached buffers
        # (<oneBLOB attached="true"/> plus a memfd passed with SCM_RIGHTS), not as base64.
        data, ancillary, _, _ = self._socket.recvmsg(READ_SIZE, socket.CMSG_SPACE(64 * 4))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                self._fds.extend(array.array("i", payload[:len(payload) - len(payload) % 4]))
        return data

    def _attachments(self, frame: Frame) -> list[bytes]:
        """The contents of a BLOB vector's attached buffers, taken in order from those received."""
        if not frame.tag.endswith("BLOBVector") or b"attached" not in frame.raw:
            return []
        contents = []
        for blob in frame.child_start_tags(b"oneBLOB"):
            if blob.get("attached", "").lower() != "true" or not self._fds:
                continue
            fd = self._fds.popleft()
            try:
                size = int(blob.get("size", "0"))
                contents.append(os.pread(fd, size, 0) if size > 0 else b"")
            except (OSError, ValueError):
                contents.append(b"")
            finally:
                os.close(fd)
        return contents

    def _on_stdin(self) -> None:
        try:
            data = self._read()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._stop("EOF")
            return
        try:
            frames = self._framer.feed(data)
        except FramingError as exc:
            print(f"{os.path.basename(sys.argv[0])}: bad XML from the server: {exc}", file=sys.stderr)
            frames = exc.frames
            self._framer.reset()
        for frame in frames:
            if frame.tag == "pingReply":  # answered at once: a handler may be waiting for it
                future = self._pings.get(frame.attrs.get("uid", ""))
                if future is not None and not future.done():
                    future.set_result(None)
            else:
                self._queue.put_nowait((frame, self._attachments(frame)))

    def _stop(self, why: str) -> None:
        if self._done is not None and not self._done.is_set():
            self._done.set()  # first: printing to a server that is gone can fail
            if why == "EOF":
                try:
                    print(f"{os.path.basename(sys.argv[0])}: EOF", file=sys.stderr)
                except (OSError, ValueError):
                    pass

    async def _dispatch_forever(self) -> None:
        while True:
            frame, attachments = await self._queue.get()
            try:
                await self.dispatch(frame, attachments)
            except ProtocolError as exc:
                print(f"{os.path.basename(sys.argv[0])}: ignored {frame.tag}: {exc}", file=sys.stderr)
            except Exception:  # a bug handling one message must not stop the driver answering
                traceback.print_exc()

    async def dispatch(self, frame: Frame, attachments: list[bytes] | None = None) -> None:
        tag = frame.tag
        if tag == "getProperties":
            device, name = frame.attrs.get("device"), frame.attrs.get("name")
            for target in self.devices:
                if device is None or device == target.name:
                    target.get_properties(name)
            return
        if tag.startswith("new"):
            element = parse(frame)
            assert isinstance(element, NewVector)
            _fill_attachments(element, attachments)
            target = self.device(element.device)
            vector = target.properties.get(element.name) if target else None
            if target is None or vector is None or vector.name not in target.defined:
                return  # not ours, or not defined now: libindi ignores these too
            if element.type is not vector.type:
                target.send_update(vector, f"Error: {element.name} is a {vector.type} property")
                return
            if element.type is PropertyType.BLOB:
                values = {m.name: m for m in element.members}
            else:
                values = {m.name: m.value for m in element.members}
            await target.handle_new(vector, values)
            return
        if tag.startswith(("def", "set")) or tag == "delProperty":
            device = frame.attrs.get("device", "")
            interested = [d for d in self.devices if d.snoops(device)]
            if interested:
                element = parse(frame)
                assert isinstance(element, (DefVector, SetVector, DelProperty))
                _fill_attachments(element, attachments)
                for target in interested:
                    target.snooped(element)

    # ------------------------------------------------------------------------------- serving
    async def serve(self) -> int:
        loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        self._output = _Output(loop, self.stdout, lambda: self._stop("stdout closed"))
        self._make_devices()
        os.set_blocking(self.stdin, False)
        if stat.S_ISSOCK(os.fstat(self.stdin).st_mode):
            self._socket = socket.socket(fileno=os.dup(self.stdin))
        loop.add_reader(self.stdin, self._on_stdin)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop, sig.name)
        dispatcher = loop.create_task(self._dispatch_forever())
        try:
            await self._done.wait()
        finally:
            loop.remove_reader(self.stdin)
            dispatcher.cancel()
            for device in self.devices:
                if device.connected:
                    try:
                        await asyncio.wait_for(device.disconnect(), 5)
                    except Exception:  # leaving anyway
                        pass
                device.shutdown()
            self._output.flush()
        return 0


def _base64_lines(data: bytes, lines_per_block: int = 1024) -> Iterator[bytes]:
    """Base64 in lines of 72 characters, as libindi writes it (its readers drop a line of 48 KiB or
    more, and Debian's indiserver loses BLOBs in longer lines), a block at a time: the encoded
    image is never held twice."""
    view = memoryview(data)
    step = 54 * lines_per_block
    for start in range(0, len(view), step):
        chunk = view[start:start + step]
        yield b"".join(binascii.b2a_base64(chunk[i:i + 54]) for i in range(0, len(chunk), 54))


def _fill_attachments(element: object, attachments: list[bytes] | None) -> None:
    """Put attached buffers' contents into the BLOB members that were sent as attached."""
    if not attachments:
        return
    contents = iter(attachments)
    for member in getattr(element, "members", []):
        if isinstance(member, BLOBMember) and not member.value:
            member.value = next(contents, b"")


def run(*devices: type[Device] | Device) -> None:
    """Run these devices as a driver until the server closes stdin (a simulator's entry point)."""
    sys.exit(asyncio.run(Driver(*devices).serve()))
