"""A link to one peer over non-blocking file descriptors: the server's only I/O primitive.

Reading: each read makes a new ``bytes`` object (64 KB to 1 MB, following the traffic) that the
framer slices elements out of without copying it; nothing is held between reads, so a thousand
idle clients cost no read memory. Complete elements go to the link's ``on_frame``.

Writing: an outbound queue of immutable buffers (the same ``bytes`` object is shared by every
recipient of a message, so fan-out copies nothing). What handling one read queued is written as
soon as that read is handled, with ``writev``, at most 1 MB per turn of the loop, and again
whenever the descriptor becomes writable; a buffer of 256 KB or more (a BLOB) is written from a
worker thread, whose copy into the kernel runs without the GIL while the loop goes on reading.
The queue's size is policed by the owner: a client too far behind is dropped, a driver that stops
reading is restarted.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..iobuffers import consume, take_batch, write_queue
from ..protocol import Frame, Framer, FramingError

if TYPE_CHECKING:
    from .server import Server

__all__ = ["Link", "tune_allocator"]

READ_SIZE = 1 << 20     # the most one read takes (a driver's pipe holds 1 MB)
READ_MIN = 1 << 16      # the least: a link's read size doubles while reads fill it, halves when idle
# The most one flush writes: the rest waits for the next turn of the loop, so that reading a
# driver and writing to clients take turns (the driver refills its pipe while a BLOB goes out).
WRITE_SIZE = 1 << 20
# A buffer at least this large (a BLOB) is written from a worker thread: the kernel's copy into the
# socket runs without the GIL, on another core, while this thread goes on reading drivers. Small
# messages are written here, where a writev of a thousand of them costs less than a thread hop.
THREAD_WRITE = 256 << 10
THREAD_WRITE_SIZE = 16 << 20  # at most, per writev in a worker: what the socket takes
_writers: ThreadPoolExecutor | None = None


def _writer_pool() -> ThreadPoolExecutor:
    global _writers
    if _writers is None:
        _writers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="indi-write")
    return _writers

# glibc's malloc (mallopt parameters): allocations up to this size come from the heap and are
# reused, and this much free memory may stay there instead of going back to the system.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
HEAP_LARGEST = 32 << 20
HEAP_KEEP = 128 << 20


def tune_allocator() -> bool:
    """Let the server reuse the memory of the BLOBs it forwards (glibc only; False elsewhere).

    Every BLOB passing through is joined into one new buffer of megabytes, freed once written.
    glibc gives such sizes their own mapping, or trims them off the heap when freed, so the next
    BLOB faults in fresh zeroed pages, one per 4 KB: that costs as much as the copying. Serving
    buffers up to 32 MB from the heap and keeping up to 128 MB of it free makes the next BLOB reuse
    the pages of the last; the queue limit (-m), not this, bounds the memory in use.
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, HEAP_LARGEST)) and bool(mallopt(M_TRIM_THRESHOLD, HEAP_KEEP))


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
        self._read_size = READ_MIN
        self._out: deque[bytes | memoryview] = deque()
        self.queued = 0
        self._writer_on = False
        self._dirty = False
        self._inflight: tuple[int, object, list[int], bool] | None = None  # a write in a worker thread
        self._close_after_write = False
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
            if self._inflight is not None and fd == self._inflight[0]:
                self._close_after_write = True  # a worker is writing to it: closed when it is done
                continue
            try:
                os.close(fd)
            except OSError:
                pass
        self.rfd = self.wfd = -1
        self._out.clear()
        self.queued = 0

    # ------------------------------------------------------------------------------- reading
    def _read(self) -> bytes:
        """One read of what the peer sent (b"" at end of file); OSError as os.read."""
        size = self._read_size
        data = os.read(self.rfd, size)
        n = len(data)
        if n == size:
            if size < READ_SIZE:
                self._read_size = size << 1
        elif n < size >> 2 and size > READ_MIN:
            self._read_size = size >> 1
        return data

    def _on_readable(self) -> None:
        try:
            data = self._read()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.on_failure("peer went away" if exc.errno in _GONE else f"read error: {exc.strerror or exc}")
            return
        if not data:
            self.on_eof()
            return
        self.bytes_in += len(data)
        server = self.server
        if server._scheduled:
            self.feed(data)
            return
        # What this read causes is written as soon as it is handled, not one loop turn later: the
        # batch is the same (everything one read brought), a round trip saves a turn of the loop.
        server._scheduled = True
        try:
            self.feed(data)
        finally:
            server._end_of_turn()

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
        if len(frames) > 1:
            # Driver messages of one read for the same clients are queued to them together.
            router = self.server.router
            router.begin_batch()
            try:
                for frame in frames:
                    if self.closed:
                        return
                    self.on_frame(frame)
            finally:
                router.end_batch()
        else:
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
                data = self._read()
            except OSError:
                return
            if not data:
                return
            self.bytes_in += len(data)
            self.feed(data)

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
        if self._inflight is not None or self.closed:
            return  # the worker's write, when done, goes on with the rest
        out = self._out
        if out:
            if len(out[0]) >= THREAD_WRITE:
                self._write_in_worker()
                return
            try:
                written = write_queue(self.wfd, out, WRITE_SIZE)
            except OSError as exc:
                self.on_failure("peer went away" if exc.errno in _GONE else f"write error: {exc.strerror}")
                return
            self.bytes_out += written
            self.queued -= written
            if self.closed:
                return
        self._await_writable()

    def _await_writable(self) -> None:
        if self._out and not self._writer_on:
            self.loop.add_writer(self.wfd, self.flush)
            self._writer_on = True
        elif not self._out and self._writer_on:
            self.loop.remove_writer(self.wfd)
            self._writer_on = False
            self.on_drained()

    def _write_in_worker(self) -> None:
        """One writev of up to WRITE_SIZE bytes of the queue, in a worker thread; _written goes on."""
        if self._writer_on:  # no readiness callbacks while the worker writes
            self.loop.remove_writer(self.wfd)
            self._writer_on = False
        batch, ends, cut = take_batch(self._out, THREAD_WRITE_SIZE)
        future = _writer_pool().submit(os.writev, self.wfd, batch)
        self._inflight = (self.wfd, self._out[0], ends, cut)
        future.add_done_callback(self._written_elsewhere)

    def _written_elsewhere(self, future: Future[int]) -> None:
        """In the worker thread: hand the result to the loop's thread."""
        try:
            self.loop.call_soon_threadsafe(self._written, future)
        except RuntimeError:  # the loop is closed: the server is exiting
            pass

    def _written(self, future: Future[int]) -> None:
        fd, head, ends, cut = self._inflight
        self._inflight = None
        if self._close_after_write:
            self._close_after_write = False
            try:
                os.close(fd)
            except OSError:
                pass
        if self.closed:
            return
        out = self._out
        if fd != self.wfd or not out or out[0] is not head:
            self.flush()  # reattached, or its queue dropped, meanwhile: go on with what is queued now
            return
        try:
            written = future.result()
        except (BlockingIOError, InterruptedError):
            written = 0
        except OSError as exc:
            self.on_failure("peer went away" if exc.errno in _GONE else f"write error: {exc.strerror}")
            return
        full = not consume(out, ends, cut, written)
        self.bytes_out += written
        self.queued -= written
        if full:
            self._await_writable()
        else:
            self.flush()

    # --------------------------------------------------------------------------------- hooks
    def on_frame(self, frame: Frame) -> None:
        raise NotImplementedError

    def on_eof(self) -> None:
        raise NotImplementedError

    def on_failure(self, reason: str) -> None:
        raise NotImplementedError

    def on_drained(self) -> None:
        """Called when a queue that had to wait for the peer is empty again."""
