"""Reading our indiserver's ``--status`` socket: a JSON snapshot of what really runs.

The server answers each connection with one JSON document and closes it: its drivers with their
true state (running, restarting...), pid, restarts, last exit and devices; the drivers that stopped
or gave up; its clients; and the tail of its log. This is what indi-web reports, rather than what
it asked for.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

__all__ = ["read_status", "StatusUnavailable"]

MAX_STATUS = 64 * 1024 * 1024


class StatusUnavailable(Exception):
    """The status socket did not answer (the server is not up yet, or has gone)."""


async def read_status(path: str, timeout: float = 3.0) -> dict[str, Any]:
    """One snapshot from the status socket at ``path``; StatusUnavailable if there is none."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path, limit=MAX_STATUS), timeout)
    except (OSError, TimeoutError) as exc:
        raise StatusUnavailable(f"status socket {path}: {exc}") from None
    try:
        data = await asyncio.wait_for(reader.read(), timeout)
    except (OSError, TimeoutError) as exc:
        raise StatusUnavailable(f"status socket {path}: {exc}") from None
    finally:
        writer.close()
    try:
        status = json.loads(data)
    except ValueError as exc:
        raise StatusUnavailable(f"status socket {path}: not a JSON answer ({exc})") from None
    if not isinstance(status, dict):
        raise StatusUnavailable(f"status socket {path}: not a JSON object")
    return status
