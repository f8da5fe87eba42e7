"""INDI timestamps: ISO 8601 UTC, ``YYYY-MM-DDTHH:MM:SS[.s]``, as libindi writes and reads them."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

__all__ = ["timestamp", "parse_timestamp", "is_timestamp"]

_TIMESTAMP = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?Z?\Z", re.ASCII)


def timestamp(when: float | None = None, decimals: int = 0) -> str:
    """The INDI timestamp for ``when`` (seconds since the epoch; now if None), in UTC.

    libindi writes whole seconds; ``decimals`` adds fractional digits, which the protocol allows.
    """
    if when is None:
        when = time.time()
    if decimals <= 0:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(when)))
    scale = 10 ** decimals
    whole, fraction = divmod(round(when * scale), scale)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{fraction:0{decimals}d}"


def is_timestamp(text: str) -> bool:
    """True if ``text`` has the form of an INDI timestamp."""
    return _TIMESTAMP.match(text) is not None


def parse_timestamp(text: str) -> datetime:
    """Parse an INDI timestamp into an aware UTC datetime; ValueError if it is not one."""
    m = _TIMESTAMP.match(text.strip())
    if not m:
        raise ValueError(f"not an INDI timestamp: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = round(float(m.group(7)) * 1_000_000) if m.group(7) else 0
    if micro >= 1_000_000:
        micro = 999_999
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
