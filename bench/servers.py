"""The servers under test, run as processes: ours, Debian's reference indiserver, indipyserver.

Each is started on a port of its own with the driver(s) given, and is ready once a client that
sends getProperties gets the driver's definitions back. Their log is collected by a thread;
``peak_memory`` and ``cpu_seconds`` read /proc for the server process itself (not its drivers).
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

HERE = Path(__file__).resolve().parent
# Our server: the one installed beside this Python, or another build of it (--ours, INDI_BENCH_OURS),
# for instance the previous commit's, to measure a change.
OUR_SERVER = os.environ.get("INDI_BENCH_OURS") or os.path.join(os.path.dirname(sys.executable), "indiserver")
REFERENCE_SERVER = "/usr/bin/indiserver"
IPYSERVER_RUNNER = str(HERE / "ipyserver_run.py")
SERVERS = ("ours", "reference", "indipyserver")
# indipyserver accepts at most this many clients (IPyServer maxconnections is 1..10).
MAX_CLIENTS = {"indipyserver": 10}
START_TIMEOUT = 20.0


class Unavailable(Exception):
    """This server (or what a scenario needs of it) is not available here."""


def available(name: str) -> str | None:
    """None if the server can run here, else why not."""
    if name == "ours":
        return None if os.access(OUR_SERVER, os.X_OK) else f"{OUR_SERVER} not found (pip install -e .)"
    if name == "reference":
        return None if os.access(REFERENCE_SERVER, os.X_OK) else \
            f"{REFERENCE_SERVER} not installed (apt-get install indi-bin)"
    if name == "indipyserver":
        try:
            found = importlib.util.find_spec("indipyserver") is not None
        except (ImportError, ValueError):
            found = False
        return None if found else "indipyserver not installed (pip install indipyserver indipydriver)"
    return f"unknown server {name!r} (choose from {', '.join(SERVERS)})"


def version(name: str) -> str:
    if name == "ours":
        default = os.path.join(os.path.dirname(sys.executable), "indiserver")
        if OUR_SERVER != default:
            return f"indi-python ({OUR_SERVER})"
        try:
            import indi
            loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
            return f"indi-python {indi.__version__} ({loop})"
        except ImportError:  # pragma: no cover
            return "indi-python"
    if name == "reference":
        try:
            out = subprocess.run([REFERENCE_SERVER], capture_output=True, text=True, timeout=5)
            m = re.search(r"INDI Library: (\S+)", out.stdout + out.stderr)
            return f"indiserver {m.group(1)}" if m else "indiserver"
        except (OSError, subprocess.SubprocessError):
            return "indiserver"
    if name == "indipyserver":
        try:
            from importlib.metadata import version as dist_version
            return f"indipyserver {dist_version('indipyserver')}"
        except Exception:  # noqa: BLE001 - only a label
            return "indipyserver"
    return name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid: int, field: str) -> int | None:
    """A kB figure from /proc/PID/status (VmHWM, VmRSS), in bytes."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """CPU time the process has run so far, all its threads: from schedstat (nanoseconds), else
    from stat (user + system, in clock ticks of 10 ms, too coarse for rounds of milliseconds)."""
    try:
        total = 0
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class Server:
    """One server process with its log; ``port`` is where clients connect."""

    def __init__(self, name: str, drivers: list[str], env: dict[str, str], port: int | None = None) -> None:
        self.name = name
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.unix = None
        if name == "ours":
            args = [OUR_SERVER, "-v", "-p", str(port if port else 0), *drivers]
        elif name == "reference":
            port = port or free_port()
            self.unix = f"/tmp/indi-bench-{uuid.uuid4().hex[:8]}"
            args = [REFERENCE_SERVER, "-v", "-p", str(port), "-u", self.unix, *drivers]
        elif name == "indipyserver":
            port = port or free_port()
            args = [sys.executable, IPYSERVER_RUNNER, str(port), *drivers]
        else:
            raise Unavailable(f"unknown server {name!r}")
        self.args = args
        self.started = time.monotonic()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        self.pid = self.proc.pid
        self.port = port
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                if len(self.lines) > 20000:
                    del self.lines[:10000]
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_log(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        index = 0
        with self._cond:
            while True:
                while index < len(self.lines):
                    m = regex.search(self.lines[index])
                    index += 1
                    if m:
                        return m
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.proc.poll() is not None and not self._reader.is_alive():
                    raise Unavailable(f"{self.name}: no log line {pattern!r} within {timeout} s; log:\n"
                                      + "\n".join(self.lines[-20:]))
                self._cond.wait(min(remaining, 0.2))

    def log_text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_listening(self, timeout: float = START_TIMEOUT) -> None:
        """Until the port accepts connections (ours: its log names the port it chose)."""
        if self.name == "ours":
            self.port = int(self.wait_log(r"listening to port (\d+)", timeout).group(1))
            return
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise Unavailable(f"{self.name} exited with status {self.proc.returncode}:\n{self.log_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise Unavailable(f"{self.name}: port {self.port} not open within {timeout} s") from None
                time.sleep(0.002)

    def peak_memory(self) -> int | None:
        return proc_status(self.pid, "VmHWM")

    def cpu_seconds(self) -> float | None:
        return cpu_seconds(self.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        try:
            os.killpg(self.pid, signal.SIGKILL)  # drivers left in its session
        except (ProcessLookupError, PermissionError):
            pass
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(name: str, drivers: list[str], env: dict[str, str], port: int | None = None) -> Server:
    """Start a server and wait until it listens (not until its drivers are up: see clients.wait_ready)."""
    why = available(name)
    if why:
        raise Unavailable(why)
    server = Server(name, drivers, env, port)
    try:
        server.wait_listening()
        if name == "indipyserver":
            # Its driver task writes to the driver's stdin without checking that the process is
            # started yet: a client's getProperties in the first 0.1 s brings the whole server down.
            time.sleep(0.3)
    except BaseException:
        server.stop()
        raise
    return server


def which_cc() -> str | None:
    return shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
