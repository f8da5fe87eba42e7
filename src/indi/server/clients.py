"""A connected INDI client: its interests, its bounded outbound queue, and how it leaves.

A client that sends malformed XML is dropped with a log line. A client that half-closes (shuts
down its sending side after its requests) keeps receiving; whitespace probes, which every INDI
parser skips, find out when it has really gone so its descriptor is released.
"""

from __future__ import annotations

import socket
import time
import xml.parsers.expat
from typing import TYPE_CHECKING

from ..protocol import Frame
from .links import Link
from .log import describe_xml
from .routing import ClientInterest, Misbehaving

if TYPE_CHECKING:
    from .server import Server

__all__ = ["ClientLink"]

# After EOF: probe at once, then after these delays (seconds), then every PROBE_INTERVAL. A peer
# that has really closed answers the first probe with a reset, so the second one fails.
_PROBE_DELAYS = (0.05, 0.25, 1.0)
PROBE_INTERVAL = 5.0
BLOB_SEND_BUFFER = 4 << 20  # SO_SNDBUF for clients that enable BLOBs (the kernel doubles it, within wmem_max)


def check_well_formed(raw: bytes) -> None:
    """Raise Misbehaving unless raw is one well-formed XML element (expat, in C).

    Bytes are read as Latin-1, so any encoding passes (the reference server and libindi drivers
    do not check encodings); the structure must be right.
    """
    parser = xml.parsers.expat.ParserCreate("ISO-8859-1")
    try:
        parser.Parse(raw, True)
    except xml.parsers.expat.ExpatError as exc:
        raise Misbehaving(f"malformed XML: {xml.parsers.expat.ErrorString(exc.code)} "
                          f"at line {exc.lineno} column {exc.offset}") from None


class ClientLink(Link):
    kind = "Client"

    def __init__(self, server: Server, number: int, address: str) -> None:
        super().__init__(server, f"Client {number}")
        self.number = number
        self.address = address
        self.connected_at = time.time()
        self.interest = ClientInterest()
        self.half_closed = False
        self._probe = None
        self._probes_sent = 0
        self.streams_dropped = 0
        self._big_buffer = False
        self._max_queue = server.max_queue

    # ------------------------------------------------------------------------- from the client
    def on_frame(self, frame: Frame) -> None:
        log = self.log
        if log.vv:
            if log.vvv:
                log(f"{self.label}: read {describe_xml(frame.raw)}")
            else:
                log(f"{self.label}: read <{frame.tag} device='{frame.attrs.get('device', '')}' "
                    f"name='{frame.attrs.get('name', '')}'>")
        try:
            check_well_formed(frame.raw)
            self.server.router.from_client(self, frame)
        except Misbehaving as exc:
            self.close(f"{exc}: closing")
            return
        if frame.tag == "enableBLOB" and not self._big_buffer and frame.text != "Never" and not self.closed:
            self._enlarge_send_buffer()

    def _enlarge_send_buffer(self) -> None:
        """A client that takes BLOBs gets a larger socket send buffer than TCP's autotuning grows to
        (writes of megabytes each take fewer calls and wakeups); one that does not costs no more."""
        self._big_buffer = True
        try:
            sock = socket.socket(fileno=self.wfd)
        except OSError:
            return
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BLOB_SEND_BUFFER)
        except OSError:
            pass
        finally:
            sock.detach()

    def on_eof(self) -> None:
        """The client shut down its sending side: keep serving it until it is really gone."""
        self.stop_reading()
        if not self.framer.idle and self.log.v:
            self.log(f"{self.label}: read EOF in the middle of an element")
        self.half_closed = True
        if self.log.v:
            self.log(f"{self.label}: read EOF")
        self._send_probe()

    def _send_probe(self) -> None:
        self._probe = None
        if self.closed:
            return
        if not self._out:
            self.send(b"\n")
        delay = _PROBE_DELAYS[self._probes_sent] if self._probes_sent < len(_PROBE_DELAYS) else PROBE_INTERVAL
        self._probes_sent += 1
        self._probe = self.loop.call_later(delay, self._send_probe)

    def on_failure(self, reason: str) -> None:
        if reason == "peer went away":
            # A client that sends a request and exits at once resets the connection; what it sent
            # before is still readable, and must reach the driver (indi_setprop does this).
            self._out.clear()
            self.queued = 0
            self.drain()
            self.close("shut down complete - bye!", problem=False)
        else:
            self.close(reason)

    # --------------------------------------------------------------------------- to the client
    def deliver(self, frame: Frame, stream: bool) -> None:
        """Queue a message from a driver, dropping stream frames or the client when too far behind."""
        queued = self.queued
        if stream or queued > self._max_queue:  # rarely: the checks of a client behind
            server = self.server
            if stream and server.stream_drop and queued > server.stream_drop:
                self.streams_dropped += 1
                if self.log.vv:
                    self.log(f"{self.label}: {queued} bytes behind: dropping stream BLOB")
                return
            if queued > server.max_queue:
                self.close(f"{queued} bytes behind (limit {server.max_queue >> 20} MB, see -m): shutting down")
                return
        if self.closed:
            return
        # Link.send, inlined: this runs once per message and client
        data = frame.raw
        self._out.append(data)
        self.queued = queued + len(data)
        if not self._dirty and not self._writer_on:
            self._dirty = True
            self.server.mark_dirty(self)

    def deliver_many(self, raws: list[bytes], size: int) -> None:
        """Queue several messages from a driver (none of them a BLOB; ``size`` is their length)."""
        if self.closed:
            return
        queued = self.queued
        if queued + size > self._max_queue:  # near the limit: one by one, dropped where deliver would
            limit = self.server.max_queue
            out = self._out
            for data in raws:
                if queued > limit:
                    self.queued = queued
                    self.close(f"{queued} bytes behind (limit {limit >> 20} MB, see -m): shutting down")
                    return
                out.append(data)
                queued += len(data)
        else:
            self._out.extend(raws)
            queued += size
        self.queued = queued
        if not self._dirty and not self._writer_on:
            self._dirty = True
            self.server.mark_dirty(self)

    def close(self, reason: str, problem: bool = True) -> None:
        """Drop the client; problems are logged at any verbosity, ordinary leaving with -v."""
        if self.closed:
            return
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        self.detach()
        self.server.retire(self)
        if problem or self.log.v:
            self.log(f"{self.label}: {reason}")

    def status(self) -> dict[str, object]:
        return {"id": self.number, "address": self.address, "since": self.connected_at,
                "bytes_in": self.bytes_in, "bytes_out": self.bytes_out, "queued": self.queued,
                "half_closed": self.half_closed}
