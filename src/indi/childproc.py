"""Child processes that end with the process that started them (indiserver's drivers, indi-web's
indiserver and scripts)."""

from __future__ import annotations

import ctypes
import signal

__all__ = ["die_with_parent"]

PR_SET_PDEATHSIG = 1
_SIGTERM = int(signal.SIGTERM)


def _libc_prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not glibc/Linux: children are still ended on a clean exit
        return None


# Looked up here, in the parent: the child runs die_with_parent between fork and exec, forked from
# a process with other threads (writers, executors), where loading a library could wait forever
# on a lock that one of those threads held at the fork.
_PRCTL = _libc_prctl()


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel to SIGTERM this child when the thread that started it ends, even by SIGKILL,
    so that nothing is left behind. Children are started from the event loop's thread, which lives
    as long as the process."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, _SIGTERM)
