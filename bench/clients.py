"""The benchmark's clients: fast readers in processes of their own, a round-trip client, idle and
stalled clients.

A reader connects, asks for the Bench device (``enableBLOB Also`` first when it wants BLOBs, then
``getProperties``), waits for the driver's definitions and reports ready. For each round the
orchestrator tells every reader how many messages to expect; one of them also sends the request
that makes the driver emit them. A reader then only does ``recv_into`` a 4 MB buffer and counts
end tags (``</setNumberVector>`` with ``bytearray.count``, ``</setBLOBVector>`` by jumping from
``<`` to ``<`` with ``find``, which is memchr and leaves the CPU to the server), plus the tags
that straddle two reads (found in the last ``len(tag) - 1`` bytes of one read joined to the first
``len(tag) - 1`` of the next, a window that cannot hold a whole tag of either side alone). It
stops at the expected count and reports when its last byte arrived (CLOCK_MONOTONIC, the same
clock in every process). For bursts it also keeps what it read and, after the clock has stopped,
checks that the sequence numbers are exactly 0..N-1 in order.
"""

from __future__ import annotations

import multiprocessing
import re
import socket
import struct
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

BUFFER = 4 << 20
TAGS = {"burst": b"</setNumberVector>", "blob": b"</setBLOBVector>"}
SEQ = re.compile(rb"<oneNumber\s+name=[\"']seq[\"']\s*>\s*(\d+)")
READY_TIMEOUT = 30.0
STAMP = "2024-01-01T00:00:00"

_CTX = multiprocessing.get_context("fork")


def burst_request(count: int) -> bytes:
    return (f'<newNumberVector device="Bench" name="burst" timestamp="{STAMP}">\n'
            f'  <oneNumber name="count">\n{count}\n  </oneNumber>\n</newNumberVector>\n').encode()


def blob_request(count: int, size: int, enclen: bool = True) -> bytes:
    """Ask for ``count`` BLOBs of ``size`` bytes, with libindi's ``enclen`` attribute or without it."""
    return (f'<newNumberVector device="Bench" name="blob" timestamp="{STAMP}">\n'
            f'  <oneNumber name="count">\n{count}\n  </oneNumber>\n'
            f'  <oneNumber name="size">\n{size}\n  </oneNumber>\n'
            f'  <oneNumber name="enclen">\n{int(enclen)}\n  </oneNumber>\n</newNumberVector>\n').encode()


def echo_request(value: int) -> bytes:
    return (f'<newNumberVector device="Bench" name="echo" timestamp="{STAMP}">\n'
            f'  <oneNumber name="value">\n{value}\n  </oneNumber>\n</newNumberVector>\n').encode()


def blob_wire_size(size: int, enclen: bool = True) -> int:
    """Bytes of one BLOB message as the driver writes it (base64 in 72-character lines)."""
    length = 4 * ((size + 2) // 3)
    attr = f' enclen="{length}"' if enclen else ""
    head = (f'<setBLOBVector device="Bench" name="image" state="Ok" timeout="60" timestamp="{STAMP}">\n'
            f'    <oneBLOB name="image" size="{size}" format=".fits"{attr}>\n')
    return len(head) + length + (length + 71) // 72 + len("    </oneBLOB>\n</setBLOBVector>\n")


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def subscribe(sock: socket.socket, blob: bool, timeout: float = READY_TIMEOUT) -> None:
    """Ask for the Bench device (and its BLOBs) and wait until its definitions have arrived."""
    if blob:
        sock.sendall(b'<enableBLOB device="Bench">Also</enableBLOB>\n')
    sock.sendall(b'<getProperties version="1.7"/>\n')
    wait_for(sock, b"</defBLOBVector>", timeout)


def wait_for(sock: socket.socket, needle: bytes, timeout: float) -> bytes:
    """Read until needle has arrived; returns what was read."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    while needle not in data[-(len(needle) + (1 << 20)):]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {needle!r} within {timeout} s (got {bytes(data[-300:])!r})")
        sock.settimeout(remaining)
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError(f"connection closed while waiting for {needle!r}")
        data += chunk
    return bytes(data)


def _set_recv_timeout(sock: socket.socket, seconds: float) -> None:
    """A kernel receive timeout (SO_RCVTIMEO) on a blocking socket: no poll() before each recv."""
    sock.settimeout(None)
    sec = int(seconds)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", sec, int((seconds - sec) * 1e6)))


def check_sequence(data: bytes, expected: int) -> dict[str, object]:
    """Are the seq members exactly 0..expected-1, in order?"""
    seqs = list(map(int, SEQ.findall(data)))
    ok = seqs == list(range(expected))
    result: dict[str, object] = {"seq_ok": ok, "seq_seen": len(seqs)}
    if not ok:
        distinct = set(seqs)
        result["seq_missing"] = sum(1 for i in range(expected) if i not in distinct)
        result["seq_duplicates"] = len(seqs) - len(distinct)
        result["seq_out_of_order"] = sum(1 for a, b in zip(seqs, seqs[1:], strict=False) if b < a)
    return result


class _Counter:
    """Counts one end tag in a stream read in arbitrary pieces."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray(BUFFER)
        self.view = memoryview(self.buf)
        self.tails: dict[bytes, bytes] = {}

    def read(self, tag: bytes, expected: int, deadline: float, store: bool) -> dict[str, object]:
        sock, buf, view = self.sock, self.buf, self.view
        edge = len(tag) - 1
        tail = self.tails.get(tag, b"")
        count = nbytes = 0
        first = last = None
        chunks: list[bytes] = []
        eof = False
        sparse = tag == TAGS["blob"]
        now = time.monotonic
        while count < expected:
            try:
                n = sock.recv_into(buf)
            except (BlockingIOError, TimeoutError, InterruptedError):
                if now() > deadline:
                    break
                continue
            except OSError:
                eof = True
                break
            if n == 0:
                eof = True
                break
            last = now()
            if first is None:
                first = last
            nbytes += n
            if tail:
                count += (tail + buf[:min(n, edge)]).count(tag)
            if sparse:
                # BLOBs: few '<' in megabytes of base64; memchr from '<' to '<' is far cheaper
                # than count() of a multi-byte needle, so the reader takes little of the CPU
                p = buf.find(b"<", 0, n)
                while p >= 0:
                    if buf.startswith(tag, p, n):
                        count += 1
                    p = buf.find(b"<", p + 1, n)
            else:
                count += buf.count(tag, 0, n)
            tail = bytes(view[n - edge:n]) if n >= edge else (tail + bytes(view[:n]))[-edge:]
            if store:
                chunks.append(bytes(view[:n]))
            if last > deadline:
                break
        self.tails[tag] = tail
        result: dict[str, object] = {"count": count, "bytes": nbytes, "first": first, "last": last, "eof": eof,
                                     "timed_out": count < expected and not eof}
        if store:
            result.update(check_sequence(b"".join(chunks), expected))
        return result


def _reader_main(pipe: Connection, port: int | None, sock: socket.socket | None, blob: bool) -> None:
    try:
        if sock is None:
            sock = connect(port)
        subscribe(sock, blob)
        _set_recv_timeout(sock, 0.5)
        counter = _Counter(sock)
        pipe.send(("ready", None))
        while True:
            command = pipe.recv()
            if command[0] == "stop":
                break
            _, kind, expected, trigger, timeout = command
            t0 = time.monotonic()
            if trigger:
                sock.sendall(trigger)
            result = counter.read(TAGS[kind], expected, t0 + timeout, store=(kind == "burst"))
            result["t0"] = t0 if trigger else None
            pipe.send(("done", result))
    except Exception as exc:  # noqa: BLE001 - reported to the orchestrator
        try:
            pipe.send(("error", f"{type(exc).__name__}: {exc}"))
        except OSError:
            pass
    finally:
        if sock is not None:
            sock.close()


@dataclass
class Round:
    """One measured round: every reader's result, and the figures derived from them."""
    expected: int
    readers: list[dict[str, object]] = field(default_factory=list)
    elapsed: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def delivered(self) -> int:
        return sum(int(r["count"]) for r in self.readers)

    @property
    def bytes(self) -> int:
        return sum(int(r["bytes"]) for r in self.readers)

    @property
    def timed_out(self) -> bool:
        """Cut short at the round's time limit (messages were still coming, none known lost)."""
        return any(r.get("timed_out") for r in self.readers)

    @property
    def complete(self) -> bool:
        return not self.errors and all(int(r["count"]) == self.expected and r.get("seq_ok", True)
                                       for r in self.readers)

    def summary(self) -> dict[str, object]:
        return {"expected_per_client": self.expected, "delivered": self.delivered, "bytes": self.bytes,
                "elapsed": self.elapsed, "complete": self.complete, "timed_out": self.timed_out,
                "errors": self.errors,
                "readers": [{k: v for k, v in r.items() if k not in ("first", "last", "t0")} for r in self.readers]}


class Readers:
    """K reader processes on one server (or on given sockets), driven round by round."""

    def __init__(self, k: int, port: int | None = None, socks: list[socket.socket] | None = None,
                 blob: bool = False) -> None:
        self.pipes: list[Connection] = []
        self.procs = []
        try:
            for i in range(k):
                parent, child = _CTX.Pipe()
                proc = _CTX.Process(target=_reader_main, args=(child, port, socks[i] if socks else None, blob),
                                    daemon=True, name=f"bench-reader-{i}")
                proc.start()
                child.close()
                self.pipes.append(parent)
                self.procs.append(proc)
            for pipe in self.pipes:
                status, detail = self._recv(pipe, READY_TIMEOUT + 5)
                if status != "ready":
                    raise RuntimeError(f"reader not ready: {detail}")
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _recv(pipe: Connection, timeout: float) -> tuple[str, object]:
        if not pipe.poll(timeout):
            return "error", f"no answer within {timeout:.0f} s"
        try:
            return pipe.recv()
        except EOFError:
            return "error", "reader process died"

    def round(self, kind: str, expected: int, trigger: bytes, timeout: float) -> Round:
        """Every reader expects ``expected`` messages; reader 0 sends the trigger."""
        for pipe in self.pipes[1:]:
            pipe.send(("go", kind, expected, None, timeout))
        self.pipes[0].send(("go", kind, expected, trigger, timeout))
        result = Round(expected)
        for pipe in self.pipes:
            status, detail = self._recv(pipe, timeout + 60)
            if status == "done":
                result.readers.append(detail)  # type: ignore[arg-type]
            else:
                result.errors.append(str(detail))
                result.readers.append({"count": 0, "bytes": 0, "first": None, "last": None})
        t0 = result.readers[0].get("t0")
        lasts = [r["last"] for r in result.readers if r.get("last") is not None]
        if t0 is not None and result.timed_out:
            result.elapsed = timeout  # the figure is then what arrived within the time allowed
        elif t0 is not None and lasts:
            result.elapsed = max(lasts) - t0  # type: ignore[operator]
        return result

    def close(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(("stop",))
            except OSError:
                pass
        for proc in self.procs:
            proc.join(2)
            if proc.is_alive():
                proc.kill()
                proc.join(2)
        for pipe in self.pipes:
            pipe.close()
        self.pipes, self.procs = [], []

    def __enter__(self) -> Readers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def round_trips(port: int, count: int, warmup: int, timeout: float = 10.0) -> list[float]:
    """Seconds for each of ``count`` newNumberVector -> driver -> setNumberVector round trips."""
    sock = connect(port)
    try:
        subscribe(sock, blob=False)
        sock.settimeout(timeout)
        pending = bytearray()
        end = TAGS["burst"]
        samples = []
        for i in range(warmup + count):
            request = echo_request(i)
            want = b"\n%d\n" % i
            t0 = time.perf_counter()
            sock.sendall(request)
            while True:
                stop = pending.find(end)
                if stop >= 0:
                    reply = bytes(pending[:stop])
                    del pending[:stop + len(end)]
                    if b'name="echo"' in reply and want in reply:
                        break
                    continue
                chunk = sock.recv(1 << 16)
                if not chunk:
                    raise ConnectionError("server closed the connection during round trips")
                pending += chunk
            if i >= warmup:
                samples.append(time.perf_counter() - t0)
        return samples
    finally:
        sock.close()


def open_idle(port: int, count: int) -> list[socket.socket]:
    """Connections that say and read nothing."""
    socks = []
    try:
        for _ in range(count):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=15))
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def open_stalled(port: int, blob: bool) -> socket.socket:
    """A client that asks for everything (BLOBs too) and then never reads again."""
    sock = connect(port)
    subscribe(sock, blob)
    return sock
