"""The client's typed exceptions: every refusal and failure of indi.client is an IndiError.

Lookups that fail are also LookupErrors (so a predicate given to ``wait_for`` that looks up a
property not defined yet simply counts as false), a timeout is also a TimeoutError, and a lost
connection is also a ConnectionError.
"""

from __future__ import annotations

__all__ = ["IndiError", "IndiTimeout", "UnknownDevice", "UnknownProperty", "UnknownMember", "ValueRefused",
           "ReadOnly", "NotConnected"]


class IndiError(Exception):
    """Base class of every error raised by indi.client."""


class IndiTimeout(IndiError, TimeoutError):
    """What was awaited did not happen in time; the message names it."""


class UnknownDevice(IndiError, LookupError):
    """No device of that name has defined properties (on this server, so far)."""

    def __init__(self, device: str, message: str | None = None) -> None:
        super().__init__(message or f"unknown device {device!r}")
        self.device = device

    def __str__(self) -> str:
        return self.args[0]


class UnknownProperty(IndiError, LookupError):
    """The device has not defined a property of that name."""

    def __init__(self, device: str, name: str, message: str | None = None) -> None:
        super().__init__(message or f"device {device!r} has no property {name!r}")
        self.device, self.name = device, name

    def __str__(self) -> str:
        return self.args[0]


class UnknownMember(IndiError, LookupError):
    """The property has no member of that name."""

    def __init__(self, device: str, prop: str, member: str, message: str | None = None) -> None:
        super().__init__(message or f"{device}.{prop} has no member {member!r}")
        self.device, self.property, self.member = device, prop, member

    def __str__(self) -> str:
        return self.args[0]


class ValueRefused(IndiError, ValueError):
    """A value was refused: locally (out of range, not a number...) before anything was sent, or by
    the device, which answered Alert; ``message`` is the reason (the device's message if it gave one)."""

    def __init__(self, message: str, device: str | None = None, prop: str | None = None) -> None:
        super().__init__(message)
        self.message, self.device, self.property = message, device, prop


class ReadOnly(IndiError):
    """The property is read-only (perm "ro", or a light): nothing was sent."""


class NotConnected(IndiError, ConnectionError):
    """The client is not connected to a server (or could not connect, or was closed)."""
