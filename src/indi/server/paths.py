"""Finding driver executables: in -l directories first, then on PATH, as the user would expect."""

from __future__ import annotations

import os

__all__ = ["DriverNotFound", "find_driver"]


class DriverNotFound(Exception):
    """A driver that cannot be run; the message says where we looked and what to do."""


def find_driver(name: str, directories: list[str], prefix: str | None = None) -> str:
    """The path of driver ``name``: a path as given, else from ``directories``, else from PATH."""
    if prefix:
        candidates = [os.path.join(prefix, "bin", os.path.basename(name))]
        where = [os.path.join(prefix, "bin")]
    elif os.sep in name:
        candidates = [name]
        where = []
    else:
        path_dirs = [d or "." for d in os.environ.get("PATH", os.defpath).split(os.pathsep)]
        where = list(dict.fromkeys(list(directories) + path_dirs))
        candidates = [os.path.join(d, name) for d in where]
    for candidate in candidates:
        if os.path.isfile(candidate):
            if not os.access(candidate, os.X_OK):
                raise DriverNotFound(f"driver {candidate} is not executable: make it so with chmod +x {candidate}")
            return os.path.abspath(candidate)
    if not where:
        raise DriverNotFound(f"driver {name} not found: check the path")
    hint = "add its directory with -l DIR" if not prefix else "check the prefix"
    raise DriverNotFound(f"driver {name} not found in {', '.join(where)}: check the name, install it, or {hint}")
