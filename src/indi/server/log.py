"""The server's log, in the reference indiserver's format: ``YYYY-MM-DDTHH:MM:SS: message`` (UTC).

Verbosity as in the reference: -v lifecycle events, -vv one line per message, -vvv the XML too.
Problems (a driver dying, a client dropped) are logged whatever the verbosity.
"""

from __future__ import annotations

import re
import sys
import time
from collections import deque
from typing import TextIO

__all__ = ["Log", "describe_xml"]

# A BLOB body: everything between a oneBLOB start tag and its end tag.
_BLOB_BODY = re.compile(rb"(<oneBLOB\b[^>]*[^/]>)(.*?)(</oneBLOB\s*>)", re.DOTALL)


def describe_xml(raw: bytes, limit: int = 4096) -> str:
    """XML for the log: BLOB contents replaced by their length, long elements cut at ``limit``."""
    if b"<oneBLOB" in raw:
        raw = _BLOB_BODY.sub(lambda m: m.group(1) + b"[%d bytes of base64]" % len(m.group(2).strip())
                             + m.group(3), raw)
    text = raw.decode("utf-8", "replace").rstrip()
    if len(text) > limit:
        text = text[:limit] + f"... [{len(text) - limit} more characters]"
    return text


class Log:
    """Writes timestamped lines to a stream: standard output unless -f gives a file (the spec's
    "-f path: log to a file instead of stdout"). Errors that stop the server go to stderr."""

    def __init__(self, verbosity: int = 0, stream: TextIO | None = None) -> None:
        self.verbosity = verbosity
        self.stream = stream if stream is not None else sys.stdout
        self._second = -1
        self._stamp = ""
        self.tail: deque[str] = deque(maxlen=200)  # the latest lines, for status reports

    @property
    def v(self) -> bool:
        return self.verbosity >= 1

    @property
    def vv(self) -> bool:
        return self.verbosity >= 2

    @property
    def vvv(self) -> bool:
        return self.verbosity >= 3

    def __call__(self, message: str) -> None:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        line = f"{self._stamp}: {message}"
        self.tail.append(line)
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or full log must never take the server down
