"""A link to one peer over non-blocking file descriptors: the server's only I/O primitive.

Bytes read are framed into elements and handed to the link's ``on_frame``; bytes to send go into
an outbound queue of immutable buffers (the same ``bytes`` object is shared by every recipient of
a message, so fan-out copies nothing) which is written with ``writev`` once per event-loop turn,
and again whenever the descriptor becomes writable. The queue's size is policed by the owner: a
client too far behind is dropped, a driver that stops reading is restarted.
"""

from __future__ import annotations

import errno
import os
from collections import deque
from typing import TYPE_CHECKING

from ..iobuffers import write_queue
from ..protocol import Frame, Framer, FramingError

if TYPE_CHECKING:
    from .server import Server

__all__ = ["Link"]

READ_SIZE = 1 << 20

# One read buffer for the whole server: the loop runs one read at a time and the framer copies
# what it keeps, so a thousand idle clients cost no read memory.
_READ_BUFFER = bytearray(READ_SIZE)
_READ_VIEW = memoryview(_READ_BUFFER)

_GONE = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN, errno.ETIMEDOUT,
         errno.EHOSTUNREACH, errno.ENETUNREACH)


class Link:
    """One peer: override ``on_frame``, ``on_eof``, ``on_failure``."""

    kind = "Link"

    def __init__(self, server: Server, label: str) -> None:
        self.server = server
        self.loop = server.loop
        self.log = server.log
        self.label = label
        self.closed = True
        self.rfd = -1
        self.wfd = -1
        self.reading = False
        self.framer = Framer(server.max_element)
        self._out: deque[bytes | memoryview] = deque()
        self.queued = 0
        self._writer_on = False
        self._dirty = False
        self.bytes_in = 0
        self.bytes_out = 0
        self.messages_in = 0

    # ----------------------------------------------------------------------------- lifecycle
    def attach(self, rfd: int, wfd: int) -> None:
        """Start serving the peer on these descriptors (the link owns them from now on)."""
        os.set_blocking(rfd, False)
        if wfd != rfd:
            os.set_blocking(wfd, False)
        self.rfd, self.wfd = rfd, wfd
        self.closed = False
        self.framer.reset()
        self.resume_reading()

    def resume_reading(self) -> None:
        if not self.reading and not self.closed:
            self.loop.add_reader(self.rfd, self._on_readable)
            self.reading = True

    def stop_reading(self) -> None:
        if self.reading:
            self.loop.remove_reader(self.rfd)
            self.reading = False

    def detach(self) -> None:
        """Stop all I/O, close the descriptors and drop whatever was still queued."""
        if self.closed:
            return
        self.closed = True
        self.stop_reading()
        if self._writer_on:
            self.loop.remove_writer(self.wfd)
            self._writer_on = False
        for fd in {self.rfd, self.wfd}:
            try:
                os.close(fd)
            except OSError:
                pass
        self.rfd = self.wfd = -1
        self._out.clear()
        self.queued = 0

    # ------------------------------------------------------------------------------- reading
    def _on_readable(self) -> None:
        try:
            n = os.readv(self.rfd, [_READ_VIEW])
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.on_failure("peer went away" if exc.errno in _GONE else f"read error: {exc.strerror or exc}")
            return
        if n == 0:
            self.on_eof()
            return
        self.bytes_in += n
        self.feed(_READ_VIEW[:n])

    def feed(self, data: bytes | memoryview) -> None:
        """Frame data and handle each complete element."""
        framer = self.framer
        error = None
        try:
            frames = framer.feed(data)
        except FramingError as exc:
            frames, error = exc.frames, exc  # the elements before the error are still delivered
        if framer.junk_skipped:
            if self.log.v:
                self.log(f"{self.label}: ignored {framer.junk_skipped} bytes of text outside any element: "
                         f"{framer.junk_sample[:80]!r}")
            framer.junk_skipped = 0
        self.messages_in += len(frames)
        for frame in frames:
            if self.closed:
                return
            self.on_frame(frame)
        if error is not None and not self.closed:
            self.on_failure(f"malformed XML: {error}")

    def drain(self) -> None:
        """Read whatever the peer wrote before going away, so that nothing it sent is lost."""
        while not self.closed:
            try:
                n = os.readv(self.rfd, [_READ_VIEW])
            except OSError:
                return
            if n <= 0:
                return
            self.bytes_in += n
            self.feed(_READ_VIEW[:n])

    # ------------------------------------------------------------------------------- writing
    def send(self, data: bytes) -> None:
        """Queue bytes for the peer; they are written at the end of this loop turn."""
        if self.closed:
            return
        self._out.append(data)
        self.queued += len(data)
        if not self._dirty and not self._writer_on:
            self._dirty = True
            self.server.mark_dirty(self)

    def flush(self) -> None:
        """Write as much of the queue as the descriptor takes, then wait for it to be writable."""
        self._dirty = False
        out = self._out
        if out and not self.closed:
            try:
                written = write_queue(self.wfd, out)
            except OSError as exc:
                self.on_failure("peer went away" if exc.errno in _GONE else f"write error: {exc.strerror}")
                return
            self.bytes_out += written
            self.queued -= written
        if self.closed:
            return
        if out and not self._writer_on:
            self.loop.add_writer(self.wfd, self.flush)
            self._writer_on = True
        elif not out and self._writer_on:
            self.loop.remove_writer(self.wfd)
            self._writer_on = False
            self.on_drained()

    # --------------------------------------------------------------------------------- hooks
    def on_frame(self, frame: Frame) -> None:
        raise NotImplementedError

    def on_eof(self) -> None:
        raise NotImplementedError

    def on_failure(self, reason: str) -> None:
        raise NotImplementedError

    def on_drained(self) -> None:
        """Called when a queue that had to wait for the peer is empty again."""
