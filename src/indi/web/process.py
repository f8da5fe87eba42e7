"""Process helpers: children that die with indi-web, and checks that nothing is left behind."""

from __future__ import annotations

import ctypes
import os
import signal

__all__ = ["die_with_parent", "pid_alive", "kill_quietly"]


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel to SIGTERM this child if indi-web dies, even by SIGKILL, so nothing is left
    behind. Children are started from the event loop's thread, which lives as long as indi-web."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def pid_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie (Linux /proc; kill(0) elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True


def kill_quietly(pid: int, sig: int = signal.SIGKILL, group: bool = False) -> None:
    """Signal a process (or its group), ignoring one that is already gone."""
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
