"""The FIFO through which indiwebmanager and KStars start and stop drivers while the server runs.

One command a line, as the reference server reads them::

    start indi_simulator_ccd -n "CCD Simulator" -c "/path/config.xml" -s "/path/skel.xml" -p "/opt/prefix"
    stop  indi_simulator_ccd -n "CCD Simulator"
    start "Dev Name"@host:port

The FIFO is opened read-write, so it never reports end-of-file when a writer closes it.

A line is data, never shell: it is split into words with shell-like quoting (shlex), and nothing
else of the shell applies. ``$(...)``, backquotes, ``;``, ``|``, globs and variables are parts of
words; the driver word names an executable that is run directly, with its argument list, so
``start "x; rm -rf ~"`` looks for a driver of that odd name and logs that there is none. Values
go to the driver's environment (INDIDEV, INDICONFIG, ...) as they are; a NUL character, which no
environment can hold, makes the line invalid.
"""

from __future__ import annotations

import os
import shlex
import stat
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FifoCommand", "parse_fifo_command", "FifoReader", "is_fifo"]

LINE_MAX = 64 * 1024
_OPTIONS = {"-n": "name", "-c": "config", "-s": "skeleton", "-p": "prefix"}


@dataclass
class FifoCommand:
    action: str              # "start" or "stop"
    driver: str              # executable name, or device@host:port for a remote server
    name: str | None = None  # -n: the device name (INDIDEV)
    config: str | None = None
    skeleton: str | None = None
    prefix: str | None = None

    @property
    def remote(self) -> bool:
        return "@" in self.driver


def parse_fifo_command(line: str) -> FifoCommand:
    """Parse one FIFO line; ValueError with a message for the log if it is not a command."""
    text = line.strip()
    if "\0" in text:
        raise ValueError(f"FIFO command {text.replace(chr(0), '^@')!r} contains a NUL character")
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"cannot read FIFO command {text!r}: {exc}") from None
    if len(words) < 2 or words[0] not in ("start", "stop"):
        raise ValueError(f"not a FIFO command (start|stop driver [-n name] ...): {text!r}")
    if "@" in words[1]:
        # A remote server: "Dev Name"@host:port reads as one word with the quotes removed.
        return FifoCommand(words[0], " ".join(words[1:]))
    command = FifoCommand(words[0], words[1])
    rest = words[2:]
    while rest:
        option = rest.pop(0)
        field = _OPTIONS.get(option)
        if field is None or not rest:
            raise ValueError(f"bad option {option!r} in FIFO command {text!r}")
        setattr(command, field, rest.pop(0))
    return command


def is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


class FifoReader:
    """Reads command lines from a FIFO on the event loop and hands each one to ``handle``."""

    def __init__(self, loop, path: str, handle: Callable[[str], None]) -> None:
        self.loop = loop
        self.path = path
        self.handle = handle
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self._buf = bytearray()
        loop.add_reader(self.fd, self._on_readable)

    def _on_readable(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        self._buf += data
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                break
            line = self._buf[:nl].decode("utf-8", "replace")
            del self._buf[:nl + 1]
            if line.strip():
                self.handle(line)
        if len(self._buf) > LINE_MAX:
            # Not a command anyone meant: hand over its start, which will not parse, and move on.
            line = self._buf[:200].decode("utf-8", "replace")
            self._buf.clear()
            self.handle(line)

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1
