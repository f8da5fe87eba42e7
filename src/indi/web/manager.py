"""Running our indiserver for a profile: start it, start and stop its drivers, and report the truth.

The server is a child process of indi-web::

    indiserver -p PORT -m 1000 -v --fifo FIFO --status STATUS -l DIR [-n]

with the FIFO and the status socket in a private runtime directory (several indi-web instances can
run on one machine). ``-l DIR`` makes the server look for drivers in our own bin directory first, so
our Python simulators win over Debian's C++ programs of the same names (``--driver-dir`` and
``--system-drivers`` change that). ``-n`` is given when the profile does not auto-connect: our server
connects devices itself otherwise.

Drivers are started and stopped by writing indiwebmanager's lines to the FIFO (``start BINARY -n
"LABEL"``, ``stop BINARY -n "LABEL"``, ``start "dev"@host:port``). What runs is never assumed: every
answer comes from the ``--status`` socket (drivers with their true state, pid, restarts and last
exit), so a crashed driver shows as crashed and one that failed to start is not listed.

If the server cannot start (its port is taken...), its one-line error on stderr is reported at once.
Stopping it (or indi-web exiting) leaves nothing behind: the server stops its drivers (end of file,
SIGTERM, SIGKILL); a server that does not exit in time is killed, and then so is any driver of it
still alive. Every child also gets SIGTERM from the kernel should indi-web die (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import shlex
import shutil
import signal
import stat
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from ..childproc import die_with_parent
from .catalogue import Catalogue, DeviceDriver
from .config import WebConfig
from .events import EventHub
from .indi_client import list_devices
from .process import kill_quietly, pid_alive
from .scripts import ScriptRunner, rule_delay
from .status import StatusUnavailable, read_status

__all__ = ["ServerManager", "ServerError", "fifo_start_line", "fifo_stop_line", "remote_spec"]

log = logging.getLogger("indi.web")

START_TIMEOUT = 10.0        # seconds for the server to answer on its status socket
DRIVER_TIMEOUT = 5.0        # seconds for a driver to show up in (or leave) the status
STOP_TIMEOUT = 8.0          # seconds for the server to stop its drivers and exit after SIGTERM
LOG_LINES = 1000            # lines of the server's output kept
POLL = 0.05                 # seconds between status polls while waiting for something to happen
DEVICES_WAIT = 3.0         # seconds for newly started drivers to define their devices (GET /api/devices)
READ_LIMIT = 4 * 1024 * 1024


class ServerError(Exception):
    """A request the server cannot carry out; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


def _quote(text: str) -> str:
    """A double-quoted word for the FIFO line (read with shell-like quoting by the server)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _word(text: str) -> str:
    """An executable as indiwebmanager writes it (bare), quoted only when it has to be."""
    return text if text and not any(c.isspace() or c in "\"'\\" for c in text) else _quote(text)


def remote_spec(binary: str) -> str:
    """``device@host:port`` as the server names a remote driver (quotes around the device removed)."""
    device, _, where = binary.rpartition("@")
    return f"{device.strip().strip(chr(34))}@{where.strip()}"


def _remote_word(binary: str) -> str:
    device, _, where = remote_spec(binary).rpartition("@")
    return (_quote(device) if device else "") + "@" + where


def _one_line(driver: DeviceDriver) -> None:
    """A FIFO command is one line: a name with a control character (a newline would start another
    command: ``start /any/program``) is refused, whoever wrote it (a custom driver, a remote spec)."""
    for text in (driver.binary, driver.label, driver.skeleton or ""):
        if any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise ServerError(f"driver {text!r} has a control character in its name: refused", 422)


def fifo_start_line(driver: DeviceDriver) -> str:
    """The FIFO line that starts a driver, as indiwebmanager writes it."""
    _one_line(driver)
    if driver.remote:
        return f"start {_remote_word(driver.binary)}"
    line = f"start {_word(driver.binary)}"
    if driver.skeleton:
        line += f" -s {_quote(driver.skeleton)}"
    if not driver.mdpd:  # a multi-device driver names its devices itself
        line += f" -n {_quote(driver.label)}"
    return line


def fifo_stop_line(driver: DeviceDriver) -> str:
    _one_line(driver)
    if driver.remote:
        return f"stop {_remote_word(driver.binary)}"
    line = f"stop {_word(driver.binary)}"
    if not driver.mdpd:
        line += f" -n {_quote(driver.label)}"
    return line


def matches(entry: dict[str, Any], driver: DeviceDriver) -> bool:
    """Whether a driver of the server's status is this driver."""
    if driver.remote:
        return entry.get("kind") == "remote" and entry.get("name") == remote_spec(driver.binary)
    if entry.get("kind") != "local" or entry.get("name") != driver.binary:
        return False
    return driver.mdpd or entry.get("device_name") == driver.label


@dataclass
class ServerRun:
    """One run of the indiserver process."""
    profile: str
    port: int
    autoconnect: bool
    argv: list[str]
    proc: asyncio.subprocess.Process
    runtime_dir: str
    fifo: str
    fifo_created: bool
    status_path: str
    rules: list[dict[str, Any]]
    started: float = field(default_factory=time.time)
    drivers: list[DeviceDriver] = field(default_factory=list)   # what we started, with their rules
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    log_total: int = 0
    stderr: deque[str] = field(default_factory=lambda: deque(maxlen=50))
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    waiter: asyncio.Task[int] | None = None
    watcher: asyncio.Task[None] | None = None
    start_task: asyncio.Task[list[str]] | None = None
    stopping: bool = False

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None and not (self.waiter is not None and self.waiter.done())

    def lines_since(self, mark: int) -> list[str]:
        count = min(self.log_total - mark, len(self.log))
        return list(self.log)[len(self.log) - count:] if count > 0 else []


class ServerManager:
    def __init__(self, config: WebConfig, catalogue: Catalogue, events: EventHub | None = None) -> None:
        self.config = config
        self.catalogue = catalogue
        self.events = events or EventHub()
        self.scripts = ScriptRunner(config.script_timeout)
        self.run: ServerRun | None = None
        self.last_run: ServerRun | None = None      # kept for the status page after a stop or a crash
        self.last_exit: str | None = None           # how the last server ended, if not by our stop
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------------------- queries
    @property
    def running(self) -> bool:
        return self.run is not None and self.run.alive

    @property
    def active_profile(self) -> str:
        return self.run.profile if self.running and self.run is not None else ""

    async def snapshot(self) -> dict[str, Any] | None:
        """The server's status right now, or None if it is not running (or does not answer)."""
        run = self.run
        if run is None or not run.alive:
            return None
        try:
            return await read_status(run.status_path)
        except StatusUnavailable as exc:
            log.warning("%s", exc)
            return None

    def _describe(self, entry: dict[str, Any], run: ServerRun | None, used: set[int]) -> DeviceDriver:
        """The driver object for a driver of the status: the one we started, else from the catalogue."""
        if run is not None:
            for index, driver in enumerate(run.drivers):
                if index not in used and matches(entry, driver):
                    used.add(index)
                    return driver
        name = str(entry.get("name", ""))
        if entry.get("kind") == "remote":
            return DeviceDriver(name, name, "1.0", name, "Remote", source="remote")
        label = entry.get("device_name")
        known = self.catalogue.by_label(label) if label else None
        if known is None or known.binary != name:
            known = self.catalogue.by_binary(name)
        if known is not None:
            return replace(known, label=label or known.label)
        devices = entry.get("devices") or []
        return DeviceDriver(name, label or (devices[0] if devices else name), "", name, "Unknown")

    async def running_drivers(self) -> list[dict[str, Any]]:
        """Driver objects (indiwebmanager's shape) for each driver the server really runs."""
        status = await self.snapshot()
        if status is None:
            return []
        used: set[int] = set()
        return [self._describe(entry, self.run, used).to_json() for entry in status.get("drivers", [])]

    async def full_status(self) -> dict[str, Any]:
        """Everything known: the server, its drivers (crashed ones marked), clients and logs."""
        run = self.run if self.running else None
        status = await self.snapshot() if run is not None else None
        shown = run or self.last_run
        used: set[int] = set()

        def enrich(entry: dict[str, Any]) -> dict[str, Any]:
            driver = self._describe(entry, run, used)
            state = entry.get("state")
            crashed = bool(entry.get("restarts")) or state in ("restarting", "failed")
            return {**entry, "label": driver.label, "crashed": crashed, "driver": driver.to_json()}

        return {
            "running": run is not None,
            "profile": run.profile if run else "",
            "port": run.port if run else None,
            "pid": run.proc.pid if run else None,
            "autoconnect": run.autoconnect if run else None,
            "started": run.started if run else None,
            "command": shown.argv if shown else [],
            "driver_dirs": list(self.config.driver_dirs),
            "drivers": [enrich(e) for e in status.get("drivers", [])] if status else [],
            "stopped_drivers": [enrich(e) for e in status.get("stopped_drivers", [])] if status else [],
            "clients": status.get("clients", []) if status else [],
            "log": list(status.get("log", [])) if status else (list(shown.log)[-200:] if shown else []),
            "last_exit": self.last_exit,
        }

    async def devices(self) -> list[dict[str, Any]]:
        """``[{"device", "connected"}]`` from the running server, as an INDI client sees them."""
        status = await self.snapshot()
        run = self.run
        if status is None or run is None:
            return []
        # A driver just started (or restarted) has not defined its devices yet: give it a moment to.
        await self._wait_devices(run)
        status = await self.snapshot()
        if status is None:
            return []
        expected = {device for entry in status.get("drivers", []) for device in entry.get("devices", [])}
        try:
            return await list_devices("127.0.0.1", run.port, expected)
        except (OSError, TimeoutError) as exc:
            log.warning("cannot list devices of the INDI server on port %d: %s", run.port, exc)
            return []

    # ------------------------------------------------------------------------------ starting
    async def start(self, profile: str, port: int, autoconnect: bool, drivers: list[DeviceDriver],
                    rules: list[dict[str, Any]] | None = None, wait: float = 10.0) -> list[str]:
        """(Re)start the server for a profile and start its drivers in order, running their scripts.

        Returns the problems met (a driver that could not be found...). Waits at most ``wait``
        seconds for the drivers: long script delays go on in the background.
        """
        async with self._lock:
            await self._stop_locked()
            run = await self._launch(profile, port, autoconnect, rules or [])
            self.run = run
            self.last_exit = None
            run.start_task = asyncio.get_running_loop().create_task(self._start_drivers(run, drivers))
        self.events.publish("server_started", profile=profile, port=run.port, pid=run.proc.pid)
        done, _ = await asyncio.wait({run.start_task}, timeout=wait)
        if not done:
            log.info("profile %s: drivers are still starting (script delays); carrying on in the background",
                     profile)
            return []
        if run.start_task.cancelled():
            return ["stopped while starting drivers"]
        return run.start_task.result()

    async def _launch(self, profile: str, port: int, autoconnect: bool, rules: list[dict[str, Any]]) -> ServerRun:
        config = self.config
        runtime_dir = tempfile.mkdtemp(prefix="indi-web-", dir=os.environ.get("XDG_RUNTIME_DIR") or None)
        fifo = config.fifo or os.path.join(runtime_dir, "indi.fifo")
        status_path = os.path.join(runtime_dir, "status.sock")
        try:
            fifo_created = self._make_fifo(fifo)
        except ServerError:
            shutil.rmtree(runtime_dir, ignore_errors=True)
            raise
        argv = [config.server, "-p", str(port), "-m", str(config.memory_mb), "-v", "--fifo", fifo,
                "--status", status_path]
        for directory in config.driver_dirs:
            argv += ["-l", directory]
        argv += config.server_options
        if not autoconnect:
            argv.append("-n")
        log.info("starting INDI server for profile %s: %s", profile, shlex.join(argv))
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True, preexec_fn=die_with_parent,
                limit=READ_LIMIT)
        except OSError as exc:
            self._remove_files(runtime_dir, fifo if fifo_created else None)
            raise ServerError(f"cannot run the INDI server {config.server}: {exc.strerror or exc}") from None
        run = ServerRun(profile, port, autoconnect, argv, proc, runtime_dir, fifo, fifo_created, status_path, rules)
        loop = asyncio.get_running_loop()
        run.readers = [loop.create_task(self._read_output(run, proc.stdout, False)),
                       loop.create_task(self._read_output(run, proc.stderr, True))]
        run.waiter = loop.create_task(proc.wait())
        try:
            await self._wait_ready(run)
        except BaseException:
            # Failed, or cancelled (indi-web exiting while the server starts): leave nothing behind.
            if run.alive:
                kill_quietly(proc.pid, signal.SIGKILL, group=True)
                await asyncio.wait({run.waiter}, timeout=5)
            self._cleanup(run)
            raise
        run.watcher = loop.create_task(self._watch(run))
        log.info("INDI server for profile %s running on port %d (pid %d)", profile, port, proc.pid)
        return run

    async def _wait_ready(self, run: ServerRun) -> None:
        """Wait for the status socket to answer; ServerError with the server's own words if it exits."""
        assert run.waiter is not None
        proc = run.proc
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if run.waiter.done():
                await asyncio.wait(run.readers, timeout=2)
                self.last_run = run
                reason = run.stderr[-1] if run.stderr else f"the INDI server exited with status {proc.returncode}"
                self.last_exit = reason
                log.error("profile %s: the INDI server could not start: %s", run.profile, reason)
                raise ServerError(f"cannot start the INDI server on port {run.port}: {reason}")
            try:
                await read_status(run.status_path, timeout=1.0)
                return
            except StatusUnavailable:
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"the INDI server did not answer within {START_TIMEOUT:g} s")
            await asyncio.wait({run.waiter}, timeout=POLL)

    @staticmethod
    def _make_fifo(path: str) -> bool:
        """Create the FIFO (True), or reuse an existing one (False)."""
        try:
            os.mkfifo(path, 0o600)
            return True
        except FileExistsError:
            if stat.S_ISFIFO(os.stat(path).st_mode):
                return False
            raise ServerError(f"{path} exists and is not a FIFO: remove it or choose another --fifo") from None
        except OSError as exc:
            raise ServerError(f"cannot create FIFO {path}: {exc.strerror}") from None

    async def _read_output(self, run: ServerRun, stream: asyncio.StreamReader | None, is_stderr: bool) -> None:
        if stream is None:
            return
        while True:
            try:
                raw = await stream.readline()
            except (ValueError, asyncio.LimitOverrunError):
                raw = await stream.read(READ_LIMIT)  # an overlong line: take it in pieces
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if is_stderr:
                run.stderr.append(line)
                log.warning("indiserver: %s", line)
            else:
                log.debug("indiserver: %s", line)
            run.log.append(line)
            run.log_total += 1

    async def _watch(self, run: ServerRun) -> None:
        """Notice a server that exits without being asked to (killed, crashed)."""
        assert run.waiter is not None
        code = await run.waiter
        if run.stopping:
            return
        await asyncio.wait(run.readers, timeout=2)
        how = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
        last = run.stderr[-1] if run.stderr else (run.log[-1] if run.log else "")
        self.last_exit = f"the INDI server {how}" + (f": {last}" if last else "")
        log.error("profile %s: %s", run.profile, self.last_exit)
        if run.start_task is not None and not run.start_task.done():
            run.start_task.cancel()
        if self.run is run:
            self.run = None
        self.last_run = run
        self._cleanup(run)
        self.events.publish("server_exited", profile=run.profile, reason=self.last_exit)

    def _fifo_send(self, run: ServerRun, line: str) -> None:
        if "\n" in line or "\r" in line:
            raise ServerError("a driver name cannot contain a line break", 400)
        log.info("FIFO: %s", line)
        try:
            fd = os.open(run.fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                raise ServerError("the INDI server is not reading its FIFO") from None
            raise ServerError(f"cannot open FIFO {run.fifo}: {exc.strerror}") from None
        try:
            os.write(fd, (line + "\n").encode())
        except OSError as exc:
            raise ServerError(f"cannot write to FIFO {run.fifo}: {exc.strerror}") from None
        finally:
            os.close(fd)

    def rule_for(self, driver: DeviceDriver, rules: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The profile's script rule for this driver (its ``Driver`` is the label, or a device name
        that the label starts, as labels are looked up)."""
        for rule in rules:
            target = str(rule.get("Driver", ""))
            if target == driver.label or (driver.remote and remote_spec(target) == remote_spec(driver.binary)):
                return rule
            if not driver.remote:
                found = self.catalogue.by_label(target)
                if found is not None and found.label == driver.label:
                    return rule
        return None

    async def _start_drivers(self, run: ServerRun, drivers: list[DeviceDriver]) -> list[str]:
        problems = []
        for driver in drivers:
            if run.stopping or self.run is not run:
                break
            try:
                problem = await self._start_one(run, driver)
            except ServerError as exc:
                problem = f"{driver.label}: {exc}"
            if problem:
                log.error("%s", problem)
                problems.append(problem)
        await self._wait_devices(run)
        return problems

    async def _wait_devices(self, run: ServerRun) -> None:
        """Give the drivers just started a moment to define their devices, so that whoever asks next
        (Ekos, the page) sees them; a driver slow to do so is not an error."""
        deadline = time.monotonic() + DEVICES_WAIT
        while run.alive and time.monotonic() < deadline:
            try:
                status = await read_status(run.status_path)
            except StatusUnavailable:
                return
            # Only drivers started moments ago: one that never defines a device must not slow every call.
            recent = time.time() - DEVICES_WAIT
            if not any(e.get("state") == "running" and not e.get("devices") and (e.get("started") or 0) > recent
                       for e in status.get("drivers", [])):
                return
            await asyncio.sleep(POLL)

    async def _start_one(self, run: ServerRun, driver: DeviceDriver) -> str | None:
        """Start one driver with its scripts; a problem for the log and the caller, or None."""
        driver = replace(driver, rule=self.rule_for(driver, run.rules))
        rule = driver.rule
        delay = rule_delay(rule, "PreDelay")
        if delay:
            log.info("%s: waiting %g s before starting it (PreDelay)", driver.label, delay)
            await asyncio.sleep(delay)
        if rule and rule.get("PreScript"):
            if not await self.scripts.run(rule["PreScript"], f"{driver.label} PreScript"):
                return f"{driver.label}: its PreScript failed: driver not started"
        before = await self._count(run, driver)
        mark = run.log_total
        self._fifo_send(run, fifo_start_line(driver))
        run.drivers.append(driver)
        problem = await self._wait_count(run, driver, lambda n: n > before, mark)
        if problem:
            run.drivers.remove(driver)
            return problem
        self.events.publish("driver_started", label=driver.label, binary=driver.binary)
        delay = rule_delay(rule, "PostDelay")
        if delay:
            log.info("%s: waiting %g s before its PostScript (PostDelay)", driver.label, delay)
            await asyncio.sleep(delay)
        if rule and rule.get("PostScript"):
            if not await self.scripts.run(rule["PostScript"], f"{driver.label} PostScript"):
                return f"{driver.label}: its PostScript failed"
        return None

    async def _count(self, run: ServerRun, driver: DeviceDriver) -> int:
        try:
            status = await read_status(run.status_path)
        except StatusUnavailable:
            return 0
        return sum(1 for entry in status.get("drivers", []) if matches(entry, driver))

    async def _wait_count(self, run: ServerRun, driver: DeviceDriver, done, mark: int) -> str | None:
        """Wait until the number of this driver's entries in the status satisfies ``done``; a problem
        (the server's own words when it could not find the driver) if it does not in time."""
        deadline = time.monotonic() + DRIVER_TIMEOUT
        while True:
            if not run.alive:
                return f"{driver.label}: the INDI server exited"
            if done(await self._count(run, driver)):
                return None
            for line in run.lines_since(mark):
                if "FIFO: " in line and driver.binary in line and ("not found" in line or "not executable" in line):
                    return f"{driver.label}: {line.split('FIFO: ', 1)[1]}"
            if time.monotonic() > deadline:
                return f"{driver.label}: not seen running within {DRIVER_TIMEOUT:g} s"
            await asyncio.sleep(POLL)

    # ------------------------------------------------------------------------ single drivers
    def _require_run(self) -> ServerRun:
        run = self.run
        if run is None or not run.alive:
            raise ServerError("the INDI server is not running: start a profile first", 409)
        return run

    async def start_driver(self, driver: DeviceDriver) -> bool:
        """Start one driver; False if it already runs (a second copy would fight over its device)."""
        async with self._lock:
            run = self._require_run()
            if await self._count(run, driver):
                return False
            problem = await self._start_one(run, driver)
        if problem:
            raise ServerError(problem)
        return True

    async def stop_driver(self, driver: DeviceDriver) -> None:
        async with self._lock:
            await self._stop_one(self._require_run(), driver)

    async def restart_driver(self, driver: DeviceDriver) -> None:
        """Stop the driver if it runs, then start it (KStars: POST /api/drivers/restart/{device})."""
        async with self._lock:
            run = self._require_run()
            if await self._count(run, driver):
                await self._stop_one(run, driver)
            problem = await self._start_one(run, driver)
        if problem:
            raise ServerError(problem)

    async def _stop_one(self, run: ServerRun, driver: DeviceDriver) -> None:
        before = await self._count(run, driver)
        if not before:
            raise ServerError(f"driver {driver.label} is not running", 404)
        ours = next((d for d in run.drivers if d.label == driver.label and d.binary == driver.binary), None)
        rule = ours.rule if ours is not None else self.rule_for(driver, run.rules)
        await self._stopping_scripts(driver.label, rule)
        self._fifo_send(run, fifo_stop_line(driver))
        problem = await self._wait_count(run, driver, lambda n: n < before, run.log_total)
        if ours is not None:
            run.drivers.remove(ours)
        if problem:
            raise ServerError(problem.replace("not seen running", "still running after"))
        self.events.publish("driver_stopped", label=driver.label, binary=driver.binary)
        await self._stopped_scripts(driver.label, rule)

    async def _stopping_scripts(self, label: str, rule: dict[str, Any] | None) -> None:
        if rule and rule.get("StoppingScript"):
            await self.scripts.run(rule["StoppingScript"], f"{label} StoppingScript")
        delay = rule_delay(rule, "StoppingDelay")
        if delay:
            log.info("%s: waiting %g s before stopping it (StoppingDelay)", label, delay)
            await asyncio.sleep(delay)

    async def _stopped_scripts(self, label: str, rule: dict[str, Any] | None) -> None:
        delay = rule_delay(rule, "StoppedDelay")
        if delay:
            log.info("%s: waiting %g s before its StoppedScript (StoppedDelay)", label, delay)
            await asyncio.sleep(delay)
        if rule and rule.get("StoppedScript"):
            await self.scripts.run(rule["StoppedScript"], f"{label} StoppedScript")

    # ------------------------------------------------------------------------------ stopping
    async def stop(self) -> None:
        async with self._lock:
            await self._stop_locked()

    async def _stop_locked(self) -> None:
        run = self.run
        if run is None:
            return
        run.stopping = True
        if run.start_task is not None and not run.start_task.done():
            run.start_task.cancel()
            await asyncio.wait({run.start_task}, timeout=5)
        with_rules = [d for d in run.drivers if d.rule]
        if run.alive:
            for driver in with_rules:
                await self._stopping_scripts(driver.label, driver.rule)
        try:
            status = await read_status(run.status_path) if run.alive else {}
        except StatusUnavailable:
            status = {}
        pids = [e["pid"] for e in status.get("drivers", []) if e.get("pid")]
        assert run.waiter is not None
        if run.alive:
            log.info("stopping the INDI server (pid %d) of profile %s", run.proc.pid, run.profile)
            kill_quietly(run.proc.pid, signal.SIGTERM)
            done, _ = await asyncio.wait({run.waiter}, timeout=STOP_TIMEOUT)
            if not done:
                log.warning("the INDI server (pid %d) did not exit within %g s: killing it", run.proc.pid,
                            STOP_TIMEOUT)
                kill_quietly(run.proc.pid, signal.SIGKILL, group=True)
                await run.waiter
        # The server stops its drivers; any still alive (a server that was killed) goes now.
        for pid in pids:
            if pid_alive(pid):
                log.warning("driver process %d outlived the INDI server: killing it", pid)
                kill_quietly(pid, signal.SIGKILL, group=True)
                kill_quietly(pid, signal.SIGKILL)
        await asyncio.wait(run.readers, timeout=2)
        if run.watcher is not None:
            run.watcher.cancel()
        self._cleanup(run)
        self.run = None
        self.last_run = run
        log.info("INDI server of profile %s stopped", run.profile)
        for driver in with_rules:
            await self._stopped_scripts(driver.label, driver.rule)
        self.events.publish("server_stopped", profile=run.profile)

    def _cleanup(self, run: ServerRun) -> None:
        self._remove_files(run.runtime_dir, run.fifo if run.fifo_created else None)

    @staticmethod
    def _remove_files(runtime_dir: str, fifo: str | None) -> None:
        if fifo:
            try:
                os.unlink(fifo)
            except OSError:
                pass
        shutil.rmtree(runtime_dir, ignore_errors=True)

    async def shutdown(self) -> None:
        """indi-web is exiting: stop the server and kill any script still running."""
        try:
            await self.stop()
        finally:
            await self.scripts.kill_all()
