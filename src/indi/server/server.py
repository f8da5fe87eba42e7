"""The server: listens for clients, runs drivers, and routes between them on one event loop.

The Server owns every link (clients, local drivers, remote servers), the listening sockets, the
FIFO and the timers; each link owns its descriptors and queue. Writes are batched: a link with
new output is flushed once at the end of the loop turn in which it was queued.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket
import ssl
import stat
import sys
import time
from collections import deque
from dataclasses import dataclass, field

from ..protocol import DEFAULT_MAX_ELEMENT, Frame, ProtocolError, SwitchState, is_timestamp, parse, timestamp
from ..protocol.elements import xml_attributes
from .clients import ClientLink
from .drivers import EOF_GRACE, TERM_GRACE, DriverSpec, LocalDriver, RemoteDriver
from .fifo import FifoReader, parse_fifo_command
from .log import Log
from .paths import DriverNotFound, find_driver
from .routing import Router
from .security import DEFAULT_TLS_PORT, AccessList, ListenError, RateLimitedLog, TlsRelay, bind_all

__all__ = ["Server", "ServerConfig", "UserError", "DEFAULT_PORT"]

DEFAULT_PORT = 7624
MB = 1024 * 1024
CONNECT_SETTLE = 0.25   # seconds after CONNECTION is defined before connecting (SIMULATION first)
MEMORY_POLL = 1.0       # seconds between driver memory checks


class UserError(Exception):
    """A problem the user can fix; the message is one line that says what to do."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ServerConfig:
    port: int = DEFAULT_PORT
    listen: list[str] = field(default_factory=list)     # local addresses (--listen); none: all interfaces
    allow: AccessList = field(default_factory=lambda: AccessList([]))  # --allow networks; none: everyone
    tls: ssl.SSLContext | None = None       # --tls-cert/--tls-key
    tls_port: int = DEFAULT_TLS_PORT
    unix_socket: str | None = None
    drivers: list[DriverSpec] = field(default_factory=list)
    remotes: list[str] = field(default_factory=list)
    verbosity: int = 0
    driver_memory: int | None = None        # bytes of resident memory per driver (-m)
    max_queue: int = 128 * MB               # bytes a client may fall behind (-m, reference default)
    stream_drop: int = 5 * MB               # bytes behind at which stream frames are dropped
    max_restarts: int = 10
    fifo: str | None = None
    log_dir: str | None = None
    debug: bool = False
    simulation: bool = False
    autoconnect: bool = True
    driver_dirs: list[str] = field(default_factory=list)
    max_element: int = DEFAULT_MAX_ELEMENT
    status_socket: str | None = None        # a unix socket that answers with the status as JSON


class Server:
    def __init__(self, config: ServerConfig, log: Log) -> None:
        self.config = config
        self.log = log
        self.router = Router(log, config.verbosity)
        self.max_queue = config.max_queue
        self.stream_drop = config.stream_drop
        self.max_restarts = config.max_restarts
        self.max_element = config.max_element
        self.port = config.port
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.fifo: FifoReader | None = None
        self._listeners: list[socket.socket] = []
        self._dirty: list = []
        self._retired = False
        self._scheduled = False
        self._client_seq = 0
        self._done: asyncio.Future[int] | None = None
        self._shutting_down = False
        self._memory_timer: asyncio.TimerHandle | None = None
        self._drivers_gone: asyncio.Event | None = None
        self._auto = config.autoconnect or config.debug or config.simulation
        self.started_at = time.time()
        self.retired: deque = deque(maxlen=50)   # drivers that stopped or gave up, for status
        self._status_sock: socket.socket | None = None
        self._status_tasks: set[asyncio.Task[None]] = set()
        self.tls_port: int | None = None
        self._tls_listeners: set[int] = set()
        self._tls_relays: set[TlsRelay] = set()
        self._tls_tasks: set[asyncio.Task[None]] = set()
        self._refusals = RateLimitedLog(log)

    # ------------------------------------------------------------------------------- running
    async def run(self) -> int:
        """Serve until a signal or until no driver is left; returns the exit status."""
        self.loop = asyncio.get_running_loop()
        self._done = self.loop.create_future()
        self._drivers_gone = asyncio.Event()
        self._listen()
        if self.config.fifo:
            try:
                self.fifo = FifoReader(self.loop, self.config.fifo, self.fifo_command)
            except OSError as exc:
                raise UserError(f"cannot open FIFO {self.config.fifo}: {exc.strerror}. Create it with "
                                f"mkfifo {self.config.fifo}") from None
            if self.log.v:
                self.log(f"listening to FIFO {self.config.fifo}")
            if os.fstat(self.fifo.fd).st_mode & stat.S_IWOTH:
                self.log(f"warning: FIFO {self.config.fifo} is writable by every user of this machine, who can "
                         f"then start any program as you: chmod o-w {self.config.fifo}")
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self.loop.add_signal_handler(sig, self.request_stop, sig.name)
        if not hasattr(os, "pidfd_open"):
            self.loop.add_signal_handler(signal.SIGCHLD, self._reap_children)
        if self.config.status_socket:
            self._listen_status(self.config.status_socket)
        for spec in self.config.drivers:
            self.add_local(spec)
        for remote in self.config.remotes:
            self.add_remote(remote)
        if self.config.driver_memory:
            self._memory_timer = self.loop.call_later(MEMORY_POLL, self._watch_memory)
        status = await self._done
        await self._shutdown()
        return status

    def request_stop(self, why: str) -> None:
        if self._done is not None and not self._done.done():
            self.log(f"{why}: shutting down")
            self._done.set_result(0)

    def _finish(self, status: int) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(status)

    async def _shutdown(self) -> None:
        self._shutting_down = True
        for sock in self._listeners:
            self.loop.remove_reader(sock.fileno())
            sock.close()
        self._listeners.clear()
        if self.fifo is not None:
            self.fifo.close()
        if self._status_sock is not None:
            self.loop.remove_reader(self._status_sock.fileno())
            self._status_sock.close()
            try:
                os.unlink(self.config.status_socket)
            except OSError:
                pass
        if self._memory_timer is not None:
            self._memory_timer.cancel()
        for driver in list(self.router.drivers):
            driver.stop()
        if self._local_alive():
            try:
                await asyncio.wait_for(self._drivers_gone.wait(), EOF_GRACE + TERM_GRACE + 3)
            except TimeoutError:
                self.log("some drivers did not exit")
        for client in list(self.router.clients):
            client.flush()
            client.close("server shutting down", problem=False)
        for task in list(self._tls_tasks):
            task.cancel()
        for relay in list(self._tls_relays):
            relay.close()

    def _local_alive(self) -> bool:
        return any(isinstance(d, LocalDriver) and d.pid is not None for d in self.router.drivers)

    # ----------------------------------------------------------------------------- listening
    def _listen(self) -> None:
        config = self.config
        try:
            plain = bind_all(config.listen, config.port, "")
        except ListenError as exc:
            raise UserError(str(exc)) from None
        try:
            tls = bind_all(config.listen, config.tls_port, " (TLS)") if config.tls is not None else []
        except ListenError as exc:
            for sock in plain:
                sock.close()
            raise UserError(str(exc)) from None
        self.port = plain[0].getsockname()[1]
        for sock in tls:
            self._add_listener(sock)
            self._tls_listeners.add(sock.fileno())
        if tls:
            self.tls_port = tls[0].getsockname()[1]
            if self.log.v:
                self.log(f"listening to TLS port {self.tls_port} on fd {tls[0].fileno()}")
        for sock in plain:
            self._add_listener(sock)
        if config.allow.networks and self.log.v:
            self.log(f"serving clients from {config.allow} only")
        if config.unix_socket:
            path = config.unix_socket
            unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            # Like the reference on Linux: an abstract name, nothing left on disk.
            address = ("\0" + path.lstrip("@")) if sys.platform.startswith("linux") else path
            try:
                unix.bind(address)
                unix.listen(256)
            except OSError as exc:
                unix.close()
                raise UserError(f"cannot listen on local socket {path}: {exc.strerror}. Another server "
                                f"may use it: pick another path with -u PATH") from None
            self._add_listener(unix)
            if self.log.v:
                self.log(f"Local server: listening on local domain at: @{path.lstrip('@')}")
        # Logged last: scripts and tests wait for this line before they connect, to either socket.
        if self.log.v:
            self.log(f"listening to port {self.port} on fd {plain[0].fileno()}")

    def _add_listener(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._listeners.append(sock)
        self.loop.add_reader(sock.fileno(), self._accept, sock)

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(64):
            try:
                conn, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.log(f"cannot accept clients: {exc.strerror}; trying again in 1 s")
                    fd = listener.fileno()
                    self.loop.remove_reader(fd)
                    self.loop.call_later(1.0, self._resume_accept, listener)
                    return
                continue
            if conn.family != socket.AF_UNIX:
                host, port = address[0], address[1]
                if host.startswith("::ffff:"):
                    host = host[7:]
                where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                if not self.config.allow.allows(host):
                    conn.close()
                    self._refusals(host, f"refused connection from {where}: not in an allowed network "
                                         f"(--allow {self.config.allow})")
                    continue
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                if listener.fileno() in self._tls_listeners:
                    self._start_tls(conn, where)
                    continue
            else:
                where = "local socket"
            self._add_client(conn.detach(), where)

    def _add_client(self, fd: int, where: str, how: str = "") -> ClientLink:
        self._client_seq += 1
        client = ClientLink(self, self._client_seq, where)
        client.attach(fd, fd)
        self.router.clients.append(client)
        if self.log.v:
            self.log(f"{client.label}: new arrival from {where}{how} - welcome!")
        return client

    def _start_tls(self, conn: socket.socket, where: str) -> None:
        """Handshake in a task of its own; the client is served once it is done."""
        relay = TlsRelay(self.loop, self.config.tls, self._tls_relays.discard)
        self._tls_relays.add(relay)
        task = self.loop.create_task(self._tls_handshake(relay, conn, where))
        self._tls_tasks.add(task)
        task.add_done_callback(self._tls_tasks.discard)

    async def _tls_handshake(self, relay: TlsRelay, conn: socket.socket, where: str) -> None:
        host = where.rsplit(":", 1)[0]
        try:
            fd = await relay.start(conn)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            self._refusals("tls " + host, f"TLS client {where}: handshake failed: {reason}: closing")
            return
        if self._shutting_down:
            os.close(fd)
            relay.close()
            return
        self._add_client(fd, where, f" over {relay.version}")

    def _resume_accept(self, listener: socket.socket) -> None:
        if not self._shutting_down and listener.fileno() >= 0:
            self.loop.add_reader(listener.fileno(), self._accept, listener)

    # ---------------------------------------------------------------------- batching, retiring
    def mark_dirty(self, link) -> None:
        self._dirty.append(link)
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._end_of_turn)

    def retire(self, link) -> None:
        """A client closed: drop it from the routing tables at the end of this turn."""
        self._retired = True
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._end_of_turn)

    def _end_of_turn(self) -> None:
        self._scheduled = False
        while self._dirty:
            dirty, self._dirty = self._dirty, []
            for link in dirty:
                link.flush()
        if self._retired:
            self._retired = False
            self.router.clients = [c for c in self.router.clients if not c.closed]

    # ------------------------------------------------------------------------------- drivers
    def add_local(self, spec: DriverSpec) -> LocalDriver:
        driver = LocalDriver(self, spec)
        self.router.drivers.append(driver)
        driver.start()
        return driver

    def add_remote(self, spec: str) -> RemoteDriver | None:
        try:
            driver = RemoteDriver(self, spec)
        except ValueError as exc:
            self.log(f"bad remote server {spec!r}: {exc}")
            return None
        self.router.drivers.append(driver)
        driver.start()
        return driver

    def driver_removed(self, driver) -> None:
        self.router.drivers = [d for d in self.router.drivers if d is not driver]
        self.retired.append(driver.status())
        if not self._local_alive() and self._drivers_gone is not None:
            self._drivers_gone.set()
        if not self.router.drivers and self.fifo is None and not self._shutting_down:
            self.log("no drivers left: exiting")
            self._finish(1)

    def _reap_children(self) -> None:
        for driver in list(self.router.drivers):
            if isinstance(driver, LocalDriver):
                driver.poll_exit()

    def driver_frame(self, driver, frame: Frame) -> None:
        """A message from a driver or remote server: route it, then the server's own duties."""
        self.router.from_driver(driver, frame)
        if self.config.log_dir and "message" in frame.attrs:
            self._log_driver_message(frame)
        if self._auto and frame.tag == "defSwitchVector" and driver.remote_uid is None:
            name = frame.attrs.get("name")
            if name == "CONNECTION" or name == "DEBUG" or name == "SIMULATION":
                self._auto_switch(driver, frame, name)

    def _auto_switch(self, driver: LocalDriver, frame: Frame, name: str) -> None:
        """-d, -s and auto-connection: switch DEBUG/SIMULATION/CONNECTION on, once per driver run."""
        config = self.config
        wanted = {"CONNECTION": config.autoconnect, "DEBUG": config.debug, "SIMULATION": config.simulation}[name]
        device = frame.attrs.get("device", "")
        if not wanted or not device or (device, name) in driver.auto_done:
            return
        driver.auto_done.add((device, name))
        try:
            values = {m.name: m.value for m in parse(frame).members}
        except ProtocolError:
            return
        on = "CONNECT" if name == "CONNECTION" else "ENABLE"
        if values.get(on) == SwitchState.ON or on not in values:
            return
        if name == "CONNECTION":
            # Let the rest of the definitions arrive first, so that SIMULATION is set before connecting.
            old = driver.auto_timers.pop(device, None)
            if old is not None:
                old.cancel()
            driver.auto_timers[device] = self.loop.call_later(CONNECT_SETTLE, self._switch_on, driver, device,
                                                              name, on)
        else:
            self._switch_on(driver, device, name, on)

    def _switch_on(self, driver: LocalDriver, device: str, name: str, member: str) -> None:
        if name == "CONNECTION":
            driver.auto_timers.pop(device, None)
        if driver.closed:
            return
        if self.log.v:
            what = {"CONNECTION": "connecting", "DEBUG": "enabling debug on", "SIMULATION": "enabling simulation on"}
            self.log(f"{driver.label}: {what[name]} {device}")
        attrs = xml_attributes([("device", device), ("name", name)])
        driver.send(f'<newSwitchVector{attrs}>\n  <oneSwitch name="{member}">On</oneSwitch>\n'
                    f'</newSwitchVector>\n'.encode())

    def _log_driver_message(self, frame: Frame) -> None:
        """--log-dir: append the driver's message to DIR/YYYY-MM-DD.islog, as the reference's -l."""
        stamp = frame.attrs.get("timestamp", "")
        if not is_timestamp(stamp):
            stamp = timestamp()
        path = os.path.join(self.config.log_dir, f"{stamp[:10]}.islog")
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"{stamp}: {frame.attrs.get('device', '')}: {frame.attrs['message']}\n")
        except OSError as exc:
            self.log(f"cannot write driver log {path}: {exc.strerror}")

    def _watch_memory(self) -> None:
        limit = self.config.driver_memory
        for driver in list(self.router.drivers):
            if isinstance(driver, LocalDriver):
                rss = driver.resident_memory()
                if rss is not None and rss > limit:
                    driver.kill(f"resident memory {rss / MB:.0f} MB is over the {limit // MB} MB limit (-m)")
        self._memory_timer = self.loop.call_later(MEMORY_POLL, self._watch_memory)

    # ---------------------------------------------------------------------------------- FIFO
    def fifo_command(self, line: str) -> None:
        if self.log.v:
            self.log(f"FIFO: {line.strip()}")
        try:
            command = parse_fifo_command(line)
        except ValueError as exc:
            self.log(f"FIFO: {exc}")
            return
        if command.action == "start":
            if command.remote:
                self.add_remote(command.driver)
                return
            try:
                path = find_driver(command.driver, self.config.driver_dirs, command.prefix)
            except DriverNotFound as exc:
                self.log(f"FIFO: {exc}")
                return
            self.add_local(DriverSpec(command.driver, path, command.name, command.config, command.skeleton,
                                      command.prefix, from_fifo=True))
            return
        for driver in self.router.drivers:
            if driver.spec != command.driver and getattr(driver.spec, "name", None) != command.driver:
                continue
            if command.name and command.name not in driver.devices and \
                    getattr(driver.spec, "env_dev", None) != command.name:
                continue
            if self.log.v:
                self.log(f"FIFO: Shutting down driver: {command.driver}")
            driver.stop()
            return
        self.log(f"FIFO: no driver {command.driver}" + (f" with device {command.name!r}" if command.name else "")
                 + " is running: nothing to stop")

    # -------------------------------------------------------------------------------- status
    def status(self) -> dict[str, object]:
        """What runs, for monitoring (indi-web): drivers with their true state, clients, log tail."""
        return {"pid": os.getpid(), "port": self.port, "started": self.started_at,
                "drivers": [d.status() for d in self.router.drivers],
                "stopped_drivers": list(self.retired),
                "clients": [c.status() for c in self.router.clients if not c.closed],
                "log": list(self.log.tail)}

    def _listen_status(self, path: str) -> None:
        if os.path.exists(path):
            if not stat.S_ISSOCK(os.stat(path).st_mode):
                raise UserError(f"--status {path} exists and is not a socket: choose another path")
            os.unlink(path)  # left over from a server that did not exit cleanly
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            os.chmod(path, 0o600)   # the status names clients' addresses: for this user only
            sock.listen(16)
        except OSError as exc:
            sock.close()
            raise UserError(f"cannot create status socket {path}: {exc.strerror}") from None
        sock.setblocking(False)
        self._status_sock = sock
        self.loop.add_reader(sock.fileno(), self._answer_status)

    def _answer_status(self) -> None:
        try:
            conn, _ = self._status_sock.accept()
        except OSError:
            return
        conn.setblocking(False)
        data = (json.dumps(self.status()) + "\n").encode()

        async def send() -> None:
            try:
                await asyncio.wait_for(self.loop.sock_sendall(conn, data), 5)
            except (OSError, TimeoutError):
                pass
            finally:
                conn.close()
        task = self.loop.create_task(send())
        self._status_tasks.add(task)
        task.add_done_callback(self._status_tasks.discard)
