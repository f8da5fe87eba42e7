"""Drivers: local driver processes on pipes, and other INDI servers reached over TCP.

A local driver is started with its stdin/stdout on pipes to the server and its stderr logged line
by line. When it exits (or misbehaves, or stops reading, or grows past the memory limit) clients
get delProperty for its devices and it is restarted with backoff, up to --max-restarts times; the
count starts again after a minute of healthy running. A remote server that cannot be reached or
goes away is retried with backoff for as long as the server runs.

Everything a driver or remote server sends is checked to be well-formed XML before it is routed
(clients' libindi parsers give up on the connection at the first error, so one bad element would
cut every client off): a peer that sends malformed XML is dropped. A local driver runs in a process
group of its own; when it exits, what it left running in that group is sent SIGTERM, so that no
helper process outlives it (one that puts itself in another group, as daemons do, is left alone).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import signal
import socket
import subprocess
import time
import xml.parsers.expat
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..childproc import die_with_parent
from ..protocol import Frame
from .links import Link
from .log import describe_xml
from .routing import Misbehaving, Snoops

if TYPE_CHECKING:
    from .server import Server

__all__ = ["DriverSpec", "LocalDriver", "RemoteDriver", "parse_remote", "restart_delay", "HEALTHY_RUN"]

HEALTHY_RUN = 60.0          # seconds of running after which the restart count starts again
STDERR_LINE_MAX = 1 << 20   # a longer stderr "line" is logged in pieces of this size
EOF_GRACE = 1.0             # seconds a driver has to exit on end-of-file before SIGTERM
TERM_GRACE = 2.0            # seconds between SIGTERM and SIGKILL
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
PIPE_SIZE = 1 << 20


# C0 control characters other than tab, newline and carriage return: not XML, but lilxml (libindi's
# parser, in drivers and clients alike) passes them, so they are not a reason to drop a driver.
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_BLANK_CONTROLS = bytes.maketrans(bytes(c for c in range(32) if c not in (9, 10, 13)), b" " * 29)
_ONE_BLOB = re.compile(rb"<oneBLOB\b(?:[^>\"']|\"[^\"]*\"|'[^']*')*>")

# Shapes of elements already found well-formed: the bytes with every digit made 0. Changing digits
# cannot make a well-formed element malformed (names keep their first character, and elements with
# character references, "&#...;", are never remembered), and a driver repeats a few shapes with
# new numbers and timestamps, so most of its messages are checked by one translate and one lookup.
_SHAPE = bytes.maketrans(b"123456789", b"000000000")
_SHAPES: set[bytes] = set()
SHAPES_MAX = 4096           # shapes remembered (then forgotten all at once)
SHAPE_SIZE_MAX = 2048       # longer elements are always parsed


def check_xml(raw: bytes, tag: str) -> None:
    """Raise Misbehaving unless ``raw`` is one well-formed element.

    As lenient as lilxml where lilxml is: control characters and undefined entities (``&deg;``)
    pass. BLOB data is not handed to expat, only checked to hold no markup ('<' or '&') at the
    speed of memchr, so that checking a 100 MB image costs next to nothing.
    """
    shape = None
    if len(raw) <= SHAPE_SIZE_MAX:
        shape = raw.translate(_SHAPE)
        if shape in _SHAPES:
            return
    parser = xml.parsers.expat.ParserCreate("ISO-8859-1")
    parser.UseForeignDTD(True)  # an undefined entity could be defined there: not an error
    try:
        if tag == "setBLOBVector" and b"<oneBLOB" in raw:
            pos = 0
            while (m := _ONE_BLOB.search(raw, pos)) is not None:
                body = m.end()
                if raw[body - 2] == 0x2F:  # <oneBLOB .../>: no data
                    _parse(parser, raw[pos:body], False)
                    pos = body
                    continue
                # The first '<' after the data (memchr) is normally its end tag; a multi-byte find
                # over megabytes of base64 would cost ten times as much.
                end = raw.find(b"<", body)
                if end >= 0 and raw.startswith(b"</oneBLOB", end):
                    if raw.find(b"&", body, end) >= 0:
                        raise Misbehaving("malformed XML: markup inside BLOB data")
                else:
                    end = raw.find(b"</oneBLOB", body)
                    if end < 0:
                        break
                    if raw.find(b"<", body, end) >= 0 or raw.find(b"&", body, end) >= 0:
                        raise Misbehaving("malformed XML: markup inside BLOB data")
                _parse(parser, raw[pos:body], False)
                pos = end
            _parse(parser, raw[pos:], True)
        else:
            _parse(parser, raw, True)
    except xml.parsers.expat.ExpatError as exc:
        raise Misbehaving(f"malformed XML: {xml.parsers.expat.ErrorString(exc.code)} "
                          f"at line {exc.lineno} column {exc.offset}") from None
    if shape is not None and b"&#" not in raw:
        if len(_SHAPES) >= SHAPES_MAX:
            _SHAPES.clear()
        _SHAPES.add(shape)


def _parse(parser, data: bytes, final: bool) -> None:
    if _CONTROL.search(data):
        data = data.translate(_BLANK_CONTROLS)
    parser.Parse(data, final)


def restart_delay(restart: int) -> float:
    """Seconds to wait before restart number ``restart`` (1-based): 0, 0.5, 1, 2, ... up to 30."""
    return 0.0 if restart <= 1 else min(30.0, 0.25 * 2 ** (restart - 1))


@dataclass
class DriverSpec:
    """A local driver to run: ``name`` as the user gave it (argv[0]), ``path`` the executable."""
    name: str
    path: str
    env_dev: str | None = None
    config: str | None = None
    skeleton: str | None = None
    prefix: str | None = None
    from_fifo: bool = False


class DriverLink(Link):
    """What local drivers and remote servers share: the devices they own, their snoops, and
    handing their messages to the server."""

    remote_uid: str | None = None

    def __init__(self, server: Server, label: str) -> None:
        super().__init__(server, label)
        self.devices: set[str] = set()
        self.snoops = Snoops()

    def on_frame(self, frame: Frame) -> None:
        log = self.log
        if log.vv:
            if log.vvv:
                log(f"{self.label}: read {describe_xml(frame.raw)}")
            else:
                log(f"{self.label}: read <{frame.tag} device='{frame.attrs.get('device', '')}' "
                    f"name='{frame.attrs.get('name', '')}'>")
        try:
            check_xml(frame.raw, frame.tag)
            self.server.driver_frame(self, frame)
        except Misbehaving as exc:
            self.misbehaved(str(exc))

    def misbehaved(self, reason: str) -> None:
        raise NotImplementedError


class LocalDriver(DriverLink):
    kind = "Driver"

    def __init__(self, server: Server, spec: DriverSpec) -> None:
        super().__init__(server, f"Driver {spec.name}")
        self.spec = spec
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self.restarts = 0
        self.started_at = 0.0
        self.started_wall: float | None = None
        self.state = "starting"
        self.last_exit = ""
        self.stopping = False       # stopped on purpose: no restart
        self._pidfd = -1
        self._errfd = -1
        self._errbuf = bytearray()
        self._reaped = True
        self._kill_timer: asyncio.TimerHandle | None = None
        self._restart_timer: asyncio.TimerHandle | None = None
        self.auto_done: set[tuple[str, str]] = set()
        self.auto_timers: dict[str, asyncio.TimerHandle] = {}

    # ------------------------------------------------------------------------------- process
    def start(self) -> None:
        self._restart_timer = None
        if self.stopping:
            return
        spec = self.spec
        env = dict(os.environ)
        for var, value in (("INDIDEV", spec.env_dev), ("INDICONFIG", spec.config), ("INDISKEL", spec.skeleton)):
            if value:
                env[var] = value
            elif spec.from_fifo:
                env.pop(var, None)  # as the reference: FIFO drivers do not inherit the server's
        executable = spec.path
        if spec.prefix:
            env["INDIPREFIX"] = spec.prefix
            executable = os.path.join(spec.prefix, "bin", os.path.basename(spec.name))
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        for fd in (in_w, out_r):
            try:
                fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)  # fewer wakeups for big BLOBs
            except OSError:
                pass
        try:
            proc = subprocess.Popen([spec.name], executable=executable, stdin=in_r, stdout=out_w, stderr=err_w,
                                    env=env, close_fds=True, start_new_session=True,
                                    preexec_fn=die_with_parent)
        except (OSError, ValueError) as exc:  # ValueError: a NUL in an argument or the environment
            for fd in (in_r, in_w, out_r, out_w, err_r, err_w):
                os.close(fd)
            reason = getattr(exc, "strerror", None) or str(exc)
            self.log(f"{self.label}: cannot start {executable}: {reason}")
            self.started_at = time.monotonic()
            self.last_exit = f"cannot start: {reason}"
            self._finished()
            return
        for fd in (in_r, out_w, err_w):
            os.close(fd)
        self.proc, self.pid = proc, proc.pid
        self._reaped = False
        self.started_at = time.monotonic()
        self.started_wall = time.time()
        self.state = "running"
        self.devices.clear()
        self.snoops.clear()
        self.auto_done.clear()
        self.attach(out_r, in_w)
        self._errfd = err_r
        os.set_blocking(err_r, False)
        self.loop.add_reader(err_r, self._on_stderr)
        try:
            self._pidfd = os.pidfd_open(proc.pid)
            self.loop.add_reader(self._pidfd, self._on_exit)
        except (AttributeError, OSError):
            self._pidfd = -1  # no pidfd: the server's SIGCHLD handler calls poll_exit()
        if self.log.v:
            self.log(f"{self.label}: pid={proc.pid} rfd={out_r} wfd={in_w} efd={err_r}")
        self.send(b'<getProperties version="1.7"/>\n')

    def poll_exit(self) -> None:
        if self.proc is not None and not self._reaped and self._has_exited():
            self._on_exit()

    def _has_exited(self) -> bool:
        """Whether the process has exited, leaving it unreaped: while it is a zombie its pid, which is
        also its process group's id, cannot be given to another process."""
        try:
            return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True     # already reaped
        except OSError:
            return self.proc.poll() is not None

    def _on_exit(self) -> None:
        proc = self.proc
        if proc is None or self._reaped:
            return
        if not self._has_exited():
            return
        # Whatever it started and left behind in its process group goes with it.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except OSError:
            pass
        if proc.poll() is None:  # pragma: no cover - waitid said it had exited
            return
        self._reaped = True
        if self._pidfd >= 0:
            self.loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
        # Deliver everything it wrote before it died, then log its last words.
        if not self.closed:
            self.drain()
        self._drain_stderr()
        code = proc.returncode
        if code < 0:
            try:
                sig = signal.Signals(-code)
                self.last_exit = f"killed by signal {-code} ({signal.strsignal(sig) or sig.name})"
            except ValueError:
                self.last_exit = f"killed by signal {-code}"
        else:
            self.last_exit = f"exited with status {code}"
        self.log(f"{self.label}: process {proc.pid} {self.last_exit}")
        if self._kill_timer is not None:
            self._kill_timer.cancel()
            self._kill_timer = None
        if not self.closed:
            self._link_lost(None)
        self._finished()

    def _signal(self, sig: int) -> None:
        if self.pid is not None and not self._reaped:
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass
            except PermissionError:
                try:
                    os.kill(self.pid, sig)
                except OSError:
                    pass

    def terminate(self) -> None:
        """With its stdin closed, a driver normally exits (saving what it must); SIGTERM if it is
        still there after EOF_GRACE seconds, SIGKILL after TERM_GRACE more."""
        if self._kill_timer is None and not self._reaped:
            self._kill_timer = self.loop.call_later(EOF_GRACE, self._escalate, signal.SIGTERM)

    def _escalate(self, sig: int) -> None:
        self._signal(sig)
        if sig == signal.SIGTERM and not self._reaped:
            self._kill_timer = self.loop.call_later(TERM_GRACE, self._escalate, signal.SIGKILL)

    # ------------------------------------------------------------------------------- stderr
    def _on_stderr(self) -> None:
        try:
            data = os.read(self._errfd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close_stderr()
            return
        self._stderr_data(data)

    def _stderr_data(self, data: bytes) -> None:
        buf = self._errbuf
        buf += data
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            self._stderr_line(buf[start:nl])
            start = nl + 1
        del buf[:start]
        while len(buf) >= STDERR_LINE_MAX:
            self._stderr_line(buf[:STDERR_LINE_MAX])
            del buf[:STDERR_LINE_MAX]

    def _stderr_line(self, line: bytes | bytearray) -> None:
        text = bytes(line).rstrip(b"\r").decode("utf-8", "replace")
        self.log(f"{self.label}: {text}")

    def _drain_stderr(self) -> None:
        while self._errfd >= 0:
            try:
                data = os.read(self._errfd, 65536)
            except OSError:
                data = b""
            if not data:
                break
            self._stderr_data(data)
        if self._errbuf:
            self._stderr_line(self._errbuf)
            self._errbuf.clear()

    def _close_stderr(self) -> None:
        if self._errfd >= 0:
            if self._errbuf:
                self._stderr_line(self._errbuf)
                self._errbuf.clear()
            self.loop.remove_reader(self._errfd)
            os.close(self._errfd)
            self._errfd = -1

    # ---------------------------------------------------------------------------------- link
    def misbehaved(self, reason: str) -> None:
        self.kill(f"{reason}: dropping it")

    def kill(self, reason: str) -> None:
        """Log why, and kill the driver (it is then restarted like any driver that died)."""
        self.log(f"{self.label}: {reason}")
        self._link_lost(signal.SIGKILL)

    def on_eof(self) -> None:
        if self.log.v:
            self.log(f"{self.label}: stdout EOF")
        self._link_lost(signal.SIGTERM)

    def on_failure(self, reason: str) -> None:
        if reason.startswith("malformed XML"):
            self.misbehaved(reason)
        elif reason == "peer went away":
            # Its stdin is closed: it is exiting. Deliver what it wrote, then see it go.
            if self.log.v:
                self.log(f"{self.label}: closed its input")
            self._out.clear()
            self.queued = 0
            self.drain()
            self._link_lost(signal.SIGTERM)
        else:
            self.kill(reason)

    def send(self, data: bytes) -> None:
        super().send(data)
        if self.queued > self.server.max_queue and not self.closed:
            self.kill(f"{self.queued} bytes behind: it has stopped reading its input; killing it")

    def _link_lost(self, sig: int | None) -> None:
        """The conversation with the driver is over: tell clients, and make sure the process goes."""
        for timer in self.auto_timers.values():
            timer.cancel()
        self.auto_timers.clear()
        if not self.closed:
            self.detach()
            self.server.router.driver_gone(self)
        if sig == signal.SIGTERM:
            self.terminate()
        elif sig is not None:
            self._signal(sig)

    def _finished(self) -> None:
        """Both the link and the process are gone: restart, or give up."""
        self._close_stderr()
        self.proc = None
        self.pid = None
        if self.stopping:
            self.state = "stopped"
            self.server.driver_removed(self)
            return
        if time.monotonic() - self.started_at >= HEALTHY_RUN:
            self.restarts = 0
        if self.restarts >= self.server.max_restarts:
            self.log(f"{self.label}: Terminated after #{self.restarts} restarts.")
            self.state = "failed"
            self.server.driver_removed(self)
            return
        self.restarts += 1
        delay = restart_delay(self.restarts)
        self.state = "restarting"
        self.log(f"{self.label}: restart #{self.restarts}" + (f" in {delay:g} s" if delay else ""))
        self._restart_timer = self.loop.call_later(delay, self.start)

    def stop(self) -> None:
        """Stop for good (FIFO stop, server shutdown): EOF on its stdin, then SIGTERM, then SIGKILL."""
        self.stopping = True
        if self._restart_timer is not None:
            self._restart_timer.cancel()
            self._restart_timer = None
            self.log(f"{self.label}: stopped while waiting to restart (after #{self.restarts} restarts)")
            self.state = "stopped"
            self.server.driver_removed(self)
            return
        if self._reaped and self.closed:
            return
        self._link_lost(signal.SIGTERM)

    def resident_memory(self) -> int | None:
        """The driver process's resident set size in bytes (Linux /proc), or None."""
        if self.pid is None or self._reaped:
            return None
        try:
            with open(f"/proc/{self.pid}/statm", "rb") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return None

    def status(self) -> dict[str, object]:
        return {"kind": "local", "name": self.spec.name, "path": self.spec.path, "device_name": self.spec.env_dev,
                "state": self.state, "pid": self.pid, "started": self.started_wall, "restarts": self.restarts,
                "devices": sorted(self.devices), "last_exit": self.last_exit, "queued": self.queued,
                "bytes_in": self.bytes_in, "bytes_out": self.bytes_out}


def _keepalive(sock: socket.socket) -> None:
    """TCP keepalive probes after 30 s of silence, every 10 s, 3 of them: a remote server whose
    machine vanished from the network (no reset ever comes) is noticed in about a minute."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
            except OSError:
                pass


def parse_remote(spec: str) -> tuple[str, str, int]:
    """Split ``device@host[:port]``, ``@host[:port]`` or ``host:port`` into (device, host, port)."""
    device, at, rest = spec.rpartition("@")
    if not at:
        device, rest = "", spec
    host, colon, port_text = rest.rpartition(":")
    if not colon or "]" in port_text:
        host, port_text = rest, "7624"
    host = host.strip("[]")
    if not host:
        raise ValueError(f"no host in {spec!r}")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"bad port {port_text!r} in {spec!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"port {port} out of range in {spec!r}")
    return device.strip('"'), host, port


class RemoteDriver(DriverLink):
    """Another INDI server whose devices this server makes available (device@host:port, -r)."""

    kind = "Remote"

    def __init__(self, server: Server, spec: str) -> None:
        device, host, port = parse_remote(spec)
        super().__init__(server, f"Driver {spec}")
        self.spec = spec
        self.host, self.port = host, port
        self.fixed_device = device
        if device:
            self.devices.add(device)
        self.remote_uid = f"{host}:{port}"
        self.state = "connecting"
        self.attempts = 0
        self.stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        while not self.stopping:
            sock = None
            try:
                infos = await self.loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
                family, kind, proto, _, address = infos[0]
                sock = socket.socket(family, kind, proto)
                sock.setblocking(False)
                await asyncio.wait_for(self.loop.sock_connect(sock, address), 10)
            except (TimeoutError, OSError) as exc:
                if sock is not None:
                    sock.close()
                self.attempts += 1
                delay = min(30.0, 2.0 ** (self.attempts - 1))
                reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else (
                    getattr(exc, "strerror", None) or str(exc))
                self.state = "unreachable"
                self.log(f"{self.label}: cannot connect to {self.host}:{self.port}: {reason}; "
                         f"retrying in {delay:g} s")
                await asyncio.sleep(delay)
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _keepalive(sock)
            fd = sock.detach()
            self.attempts = 0
            self.state = "connected"
            self.attach(fd, fd)
            if self.log.v:
                self.log(f"{self.label}: connected to {self.host}:{self.port} socket={fd}")
            if self.fixed_device:
                self.send(f'<getProperties device="{self._quoted(self.fixed_device)}" version="1.7"/>\n'.encode())
            else:
                # "*" tells the other server we are a server (it sends us everything, snoops
                # included); the plain request then makes its drivers define their properties.
                self.send(b'<getProperties device="*" version="1.7"/>\n<getProperties version="1.7"/>\n')
            return

    def send(self, data: bytes) -> None:
        super().send(data)
        if self.queued > self.server.max_queue and not self.closed:
            self._lost(f"{self.queued} bytes behind: it has stopped reading (limit "
                       f"{self.server.max_queue >> 20} MB, see -m)")

    @staticmethod
    def _quoted(text: str) -> str:
        return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")

    def misbehaved(self, reason: str) -> None:
        self._lost(reason)

    def on_eof(self) -> None:
        self._lost("closed the connection")

    def on_failure(self, reason: str) -> None:
        self._lost(reason)

    def _lost(self, reason: str) -> None:
        if self.closed:
            return
        self.detach()
        self.server.router.driver_gone(self)
        if self.fixed_device:
            self.devices.add(self.fixed_device)
        if self.stopping:
            return
        self.state = "reconnecting"
        self.log(f"{self.label}: connection to {self.host}:{self.port} lost ({reason}); reconnecting")
        self.attempts = 1
        self._task = self.loop.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        await asyncio.sleep(1.0)
        await self._connect()

    def stop(self) -> None:
        self.stopping = True
        if self._task is not None:
            self._task.cancel()
        if not self.closed:
            self.detach()
            self.server.router.driver_gone(self)
            self.log(f"{self.label}: connection to {self.host}:{self.port} closed")
        else:
            self.log(f"{self.label}: stopped ({self.state})")
        self.state = "stopped"
        self.server.driver_removed(self)

    def status(self) -> dict[str, object]:
        return {"kind": "remote", "name": self.spec, "path": None, "device_name": self.fixed_device or None,
                "state": self.state, "pid": None, "started": None, "restarts": 0, "devices": sorted(self.devices),
                "last_exit": "", "queued": self.queued, "bytes_in": self.bytes_in, "bytes_out": self.bytes_out}
