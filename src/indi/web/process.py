"""Process helpers: checks that nothing is left behind (children end with indi-web: see
``indi.childproc``)."""

from __future__ import annotations

import os
import signal

__all__ = ["pid_alive", "kill_quietly"]


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
