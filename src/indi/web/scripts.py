"""A profile's script rules: programs run before and after a driver starts or stops.

A profile's ``scripts`` column holds rules as indiwebmanager and KStars write them::

    [{"Driver": "CCD Simulator", "PreDelay": 2, "PreScript": "/home/me/power_on.sh",
      "PostDelay": 0, "PostScript": "", "StoppingScript": "", "StoppingDelay": 0,
      "StoppedDelay": 1, "StoppedScript": "/home/me/power_off.sh"}]

Unlike indiwebmanager, a script runs without a shell, from an argument list: a path that is not an
executable file (or a name not found on PATH) is refused with a logged error rather than handed to
``sh``. A script that runs longer than the timeout is killed with its process group. Its output is
logged line by line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import shutil
import signal
from typing import Any

from ..childproc import die_with_parent

__all__ = ["ScriptRunner", "parse_rules", "rule_delay", "script_argv", "RULE_KEYS"]

log = logging.getLogger("indi.web")

RULE_KEYS = ("Driver", "PreDelay", "PreScript", "PostDelay", "PostScript", "StoppingScript", "StoppingDelay",
             "StoppedDelay", "StoppedScript")
MAX_DELAY = 600.0  # seconds: a longer delay is surely a mistake (minutes typed as seconds)


def parse_rules(scripts: Any) -> list[dict[str, Any]]:
    """The rules of a profile's ``scripts`` value: JSON text (as stored) or already decoded."""
    if scripts is None or scripts == "":
        return []
    if isinstance(scripts, str):
        try:
            scripts = json.loads(scripts)
        except ValueError as exc:
            log.warning("profile scripts are not valid JSON (%s): no scripts will run", exc)
            return []
    if isinstance(scripts, dict):
        scripts = [scripts]
    if not isinstance(scripts, list):
        log.warning("profile scripts are neither a list nor an object of rules: no scripts will run")
        return []
    return [rule for rule in scripts if isinstance(rule, dict) and rule.get("Driver")]


def rule_delay(rule: dict[str, Any] | None, key: str) -> float:
    """A delay of the rule in seconds (0 when absent or not a number)."""
    if not rule:
        return 0.0
    value = rule.get(key)
    if value in (None, ""):
        return 0.0
    try:
        delay = float(value)
    except (TypeError, ValueError):
        log.warning("script rule for %s: %s=%r is not a number of seconds: ignored", rule.get("Driver"), key, value)
        return 0.0
    if delay > MAX_DELAY:
        log.warning("script rule for %s: %s=%g s is more than %g s: using %g s", rule.get("Driver"), key, delay,
                    MAX_DELAY, MAX_DELAY)
    return max(0.0, min(delay, MAX_DELAY))


def script_argv(command: Any) -> list[str]:
    """The argument list of a script: a list as given, or a string that is a path (spaces and all)
    or a command line split as the shell would split words. ValueError says why it cannot run."""
    if isinstance(command, list):
        argv = [str(word) for word in command]
    elif isinstance(command, str):
        text = command.strip()
        if os.path.isfile(os.path.expanduser(text)):
            argv = [text]
        else:
            try:
                argv = shlex.split(text)
            except ValueError as exc:
                raise ValueError(f"cannot read script {text!r}: {exc}") from None
    else:
        raise ValueError(f"a script must be a path or a list of arguments, not {command!r}")
    if not argv or not argv[0]:
        raise ValueError("empty script")
    program = os.path.expanduser(argv[0])
    if os.sep in program:
        if not os.path.isfile(program):
            raise ValueError(f"script {program} is not a file")
        if not os.access(program, os.X_OK):
            raise ValueError(f"script {program} is not executable: make it so with chmod +x {program}")
        argv[0] = os.path.abspath(program)
    else:
        found = shutil.which(program)
        if not found:
            raise ValueError(f"script {program} not found on PATH: give its full path")
        argv[0] = found
    return argv


class ScriptRunner:
    """Runs scripts one at a time per call, with a timeout, and can kill every one still running."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._running: set[asyncio.subprocess.Process] = set()

    async def run(self, command: Any, what: str) -> bool:
        """Run a script; True if it ran and exited with status 0. ``what`` names it in the log."""
        try:
            argv = script_argv(command)
        except ValueError as exc:
            log.error("%s: %s: not run", what, exc)
            return False
        log.info("%s: running %s", what, shlex.join(argv))
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)
        except OSError as exc:
            log.error("%s: cannot run %s: %s", what, argv[0], exc.strerror or exc)
            return False
        self._running.add(proc)
        try:
            try:
                output, _ = await asyncio.wait_for(proc.communicate(), self.timeout)
            except TimeoutError:
                log.error("%s: still running after %g s: killed", what, self.timeout)
                self._kill(proc)
                await proc.wait()
                return False
            except asyncio.CancelledError:
                # The server is being stopped while the script runs: do not leave it behind.
                log.warning("%s: cancelled: killed", what)
                self._kill(proc)
                raise
        finally:
            self._running.discard(proc)
        for line in output.decode("utf-8", "replace").splitlines():
            log.info("%s: %s", what, line)
        if proc.returncode != 0:
            how = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
                   else f"exited with status {proc.returncode}")
            log.error("%s: %s", what, how)
            return False
        return True

    @staticmethod
    def _kill(proc: asyncio.subprocess.Process) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the script and whatever it started
        except (ProcessLookupError, PermissionError):
            try:
                proc.kill()
            except ProcessLookupError:
                pass

    async def kill_all(self) -> None:
        """Kill every script still running (indi-web is exiting) and reap them."""
        procs = list(self._running)
        for proc in procs:
            self._kill(proc)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 2)
            except TimeoutError:
                pass
