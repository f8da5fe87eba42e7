"""Device configuration files in libindi's format: ``~/.indi/<Device>_config.xml``.

The file is an ``<INDIDriver>`` element holding one ``new*Vector`` per saved property, as libindi
writes it, so a configuration saved by a C++ driver loads here and the other way round.
``$INDICONFIG`` names the file instead, as with libindi drivers started by indiserver -c.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from ..protocol import NewVector, ProtocolError, parse, serialize

__all__ = ["config_path", "read_config", "write_config", "ConfigError"]


class ConfigError(Exception):
    """A configuration file that cannot be read or written; the message says which and why."""


def config_path(device: str) -> Path:
    override = os.environ.get("INDICONFIG")
    if override:
        return Path(override)
    return Path.home() / ".indi" / f"{device}_config.xml"


def read_config(path: Path) -> list[NewVector]:
    """The properties saved in a configuration file (missing file: none)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ConfigError(f"{path} is not valid XML ({exc})") from None
    vectors = []
    for child in root:
        try:
            element = parse(ET.tostring(child))
        except ProtocolError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        if isinstance(element, NewVector):
            vectors.append(element)
    return vectors


def write_config(path: Path, vectors: list[NewVector]) -> None:
    """Write the file atomically (a crash never leaves half a configuration)."""
    body = b"".join(serialize(vector) for vector in vectors)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_bytes(b"<INDIDriver>\n" + body + b"</INDIDriver>\n")
        os.replace(temporary, path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
