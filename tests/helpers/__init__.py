"""Test harness: servers as real processes, INDI peers on real sockets, and puppet drivers.

Everything waits for events (a log line, a message, a pingReply) with a deadline; nothing sleeps
for a fixed time.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from indi.protocol import Frame, Framer

HERE = Path(__file__).resolve().parent
RELAY_DRIVER = str(HERE / "relay_driver.py")
REFERENCE_SERVER = "/usr/bin/indiserver"
OUR_BIN = os.path.dirname(sys.executable)
OUR_SERVER = shutil.which("indiserver", path=OUR_BIN) or "indiserver"
TIMEOUT = 10.0


def load_fuzz_target(name: str):
    """fuzz/<name>.py as a module (its checks run without atheris, which it imports only to fuzz)."""
    spec = importlib.util.spec_from_file_location(name, HERE.parents[1] / "fuzz" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def our_simulator(kind: str) -> str:
    """The full path of our Python simulator indi_simulator_<kind> (never Debian's C++ one)."""
    path = os.path.join(OUR_BIN, f"indi_simulator_{kind}")
    assert os.access(path, os.X_OK), f"{path} is not installed (pip install -e .)"
    return path


def reference_simulator(kind: str) -> str:
    return f"/usr/bin/indi_simulator_{kind}"


def isolated_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment for servers and drivers with HOME in a temporary directory, so that driver
    configurations (~/.indi) never touch the user's."""
    return dict(os.environ, HOME=str(home), **extra)


def have_reference() -> bool:
    return os.access(REFERENCE_SERVER, os.X_OK)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Peer:
    """One INDI connection (a client, or a puppet driver's end): send XML, expect elements."""

    def __init__(self, sock: socket.socket, name: str = "peer") -> None:
        self.sock = sock
        self.name = name
        self.framer = Framer()
        self.pending: list[Frame] = []
        self.eof = False
        self._uid = 0

    @classmethod
    def connect(cls, port: int, host: str = "127.0.0.1", timeout: float = TIMEOUT) -> Peer:
        return cls(socket.create_connection((host, port), timeout=timeout), f"client:{port}")

    def send(self, xml: str | bytes) -> None:
        self.sock.sendall(xml.encode() if isinstance(xml, str) else xml)

    def _read(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self.eof:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            return False
        except OSError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.pending += self.framer.feed(data)
        return True

    def next(self, timeout: float = TIMEOUT) -> Frame:
        deadline = time.monotonic() + timeout
        while not self.pending:
            if not self._read(deadline):
                raise AssertionError(f"{self.name}: nothing received within {timeout} s (eof={self.eof})")
        return self.pending.pop(0)

    def expect(self, tag: str, timeout: float = TIMEOUT, **attrs: str) -> Frame:
        """The first element with this tag and attributes; earlier ones are discarded."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            while self.pending:
                frame = self.pending.pop(0)
                if frame.tag == tag and all(frame.attrs.get(k) == v for k, v in attrs.items()):
                    return frame
                seen.append(f"<{frame.tag} {frame.attrs}>")
            if not self._read(deadline):
                raise AssertionError(f"{self.name}: no <{tag} {attrs}> within {timeout} s; got {seen[-8:]} "
                                     f"(eof={self.eof})")

    def ping(self, timeout: float = TIMEOUT) -> list[Frame]:
        """Send a pingRequest and return everything that arrived before its pingReply."""
        self._uid += 1
        uid = f"test-{self._uid}"
        self.send(f'<pingRequest uid="{uid}"/>\n')
        before = []
        deadline = time.monotonic() + timeout
        while True:
            while self.pending:
                frame = self.pending.pop(0)
                if frame.tag == "pingReply" and frame.attrs.get("uid") == uid:
                    return before
                before.append(frame)
            if not self._read(deadline):
                raise AssertionError(f"{self.name}: no pingReply {uid} within {timeout} s (eof={self.eof})")

    def wait_closed(self, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self.eof:
            if not self._read(deadline) and not self.eof and time.monotonic() >= deadline:
                raise AssertionError(f"{self.name}: still open after {timeout} s")
            self.pending.clear()

    def close(self) -> None:
        self.sock.close()


class RelayListener:
    """Where puppet drivers (relay_driver.py) connect; each accepted connection is a DriverPuppet."""

    def __init__(self, directory: Path) -> None:
        self.path = str(directory / f"relay-{uuid.uuid4().hex[:8]}.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(16)

    def accept(self, timeout: float = TIMEOUT) -> DriverPuppet:
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        conn.settimeout(timeout)
        first = b""
        while not first.endswith(b"\n"):
            chunk = conn.recv(1)
            if not chunk:
                raise AssertionError("relay driver closed before saying its pid")
            first += chunk
        return DriverPuppet(conn, int(first))

    def close(self) -> None:
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


class DriverPuppet(Peer):
    def __init__(self, sock: socket.socket, pid: int) -> None:
        super().__init__(sock, f"driver:{pid}")
        self.pid = pid

    def define_blob(self, device: str, name: str = "testblob") -> None:
        self.send(f"<defBLOBVector device='{device}' name='{name}' label='test label' group='test_group' "
                  f"state='Idle' perm='ro' timeout='100' timestamp='2018-01-01T00:00:00'>\n"
                  f"<defBLOB name='content' label='content'/>\n</defBLOBVector>\n")

    def send_blob(self, device: str, name: str = "testblob", data: str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkK",
                  size: int = 21, fmt: str = ".fits") -> None:
        self.send(f"<setBLOBVector device='{device}' name='{name}' timestamp='2018-01-01T00:01:00'>\n"
                  f"<oneBLOB name='content' size='{size}' format='{fmt}' enclen='{len(data)}'>\n{data}\n"
                  f"</oneBLOB>\n</setBLOBVector>\n")


class ServerProcess:
    """An indiserver (ours or the reference) running as a process, with its log collected."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.args = args
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()
        self.port = port

    def _collect(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_log(self, pattern: str, timeout: float = TIMEOUT, start: int = 0) -> re.Match[str]:
        """Wait for a log line matching pattern (searched from line ``start``)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        index = start
        with self._cond:
            while True:
                while index < len(self.lines):
                    m = regex.search(self.lines[index])
                    index += 1
                    if m:
                        return m
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no log line matching {pattern!r} within {timeout} s; log:\n"
                                         + "\n".join(self.lines[-40:]))
                self._cond.wait(remaining)

    def log_text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def connect(self) -> Peer:
        assert self.port is not None
        return Peer.connect(self.port)

    def wait_exit(self, timeout: float = TIMEOUT) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(TIMEOUT)
        self._reader.join(TIMEOUT)
        return self.proc.returncode


def start_ours(*args: str, env: dict[str, str] | None = None, wait: bool = True) -> ServerProcess:
    """Our indiserver on a free port (-p 0), -v so that the port can be read from the log."""
    server = ServerProcess([OUR_SERVER, "-v", "-p", "0", *args], env=env)
    if wait:
        server.port = int(server.wait_log(r"listening to port (\d+)").group(1))
    return server


def start_reference(*args: str, env: dict[str, str] | None = None) -> ServerProcess:
    """Debian's indiserver on a free port, with its own unix socket so that several can run."""
    port = free_port()
    unix = f"/tmp/indi-test-{uuid.uuid4().hex[:8]}"
    server = ServerProcess([REFERENCE_SERVER, "-v", "-p", str(port), "-u", unix, *args], env=env, port=port)
    server.wait_log(rf"listening to port {port}")
    return server


def wait_until(condition, timeout: float = TIMEOUT, interval: float = 0.02, what: str = "condition"):
    """Poll a condition on state outside our control (process table, /proc); returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(interval)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def children_of(pid: int) -> list[int]:
    """Every live descendant process of pid (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                parents.setdefault(int(fields[1]), []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return [p for p in out if pid_alive(p)]
