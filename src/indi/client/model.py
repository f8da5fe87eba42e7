"""The client's live model of a server: devices, their properties and the properties' members.

The client builds it from what the server sends (def*Vector, set*Vector, delProperty, message)
and keeps it in step; user code reads it, ``client["Telescope Simulator"]["EQUATORIAL_EOD_COORD"]``.
Members keep both the typed ``value`` and ``raw``, the text exactly as received (stripped of
surrounding whitespace), and ``text``, the value formatted as the device asks (numbers with their
printf or sexagesimal ``format``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from indi.protocol import (
    BLOBMember,
    DefVector,
    LightMember,
    NumberFormatError,
    NumberMember,
    Permission,
    PropertyState,
    PropertyType,
    SetVector,
    SwitchMember,
    SwitchRule,
    SwitchState,
    TextMember,
    format_number,
    format_value,
)

from .errors import UnknownMember, UnknownProperty

__all__ = ["Member", "Text", "Number", "Switch", "Light", "BLOB", "Property", "Device", "IndiMessage"]


class IndiMessage(NamedTuple):
    """A message from a device (``device`` None for the server's universal messages)."""
    device: str | None
    timestamp: str | None
    text: str


class Member:
    """One member of a property: ``name``, ``label``, ``value`` and ``raw`` (the text as received)."""

    __slots__ = ("name", "label", "value", "raw")
    type: PropertyType

    def __init__(self, name: str, label: str | None, value: Any, raw: str | None) -> None:
        self.name = name
        self.label = label if label is not None else name
        self.value = value
        self.raw = raw

    @property
    def text(self) -> str:
        """The value as text (as a GUI would show it)."""
        return self.raw if self.raw is not None else str(self.value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.value!r})"


class Text(Member):
    """A text member: ``value`` is a str."""
    __slots__ = ()
    type = PropertyType.TEXT


class Number(Member):
    """A number member: ``value`` is a float; ``format`` (printf or ``%<w>.<f>m`` sexagesimal),
    ``min``, ``max`` and ``step`` are as defined; ``text`` is the value formatted with ``format``."""
    __slots__ = ("format", "min", "max", "step")
    type = PropertyType.NUMBER

    def __init__(self, name: str, label: str | None, value: float, raw: str | None, format: str = "%g",
                 min: float = 0.0, max: float = 0.0, step: float = 0.0) -> None:
        super().__init__(name, label, value, raw)
        self.format, self.min, self.max, self.step = format, min, max, step

    @property
    def text(self) -> str:
        """The value formatted with the member's format, as libindi's numberFormat does."""
        try:
            return format_number(self.format, self.value)
        except (NumberFormatError, ValueError, TypeError, OverflowError):
            return format_value(self.value)


class Switch(Member):
    """A switch member: ``value`` is True (On) or False (Off); ``text`` is "On" or "Off"."""
    __slots__ = ()
    type = PropertyType.SWITCH

    @property
    def text(self) -> str:
        """The text "On" or "Off"."""
        return "On" if self.value else "Off"


class Light(Member):
    """A light member: ``value`` is a PropertyState (Idle, Ok, Busy, Alert)."""
    __slots__ = ()
    type = PropertyType.LIGHT

    @property
    def text(self) -> str:
        """The light's state: "Idle", "Ok", "Busy" or "Alert"."""
        return str(self.value)


class BLOB(Member):
    """A BLOB member: ``format`` and ``size`` of the last BLOB received, ``value`` its bytes when the
    client kept them in memory (None before the first, and when it was streamed to a file, whose
    path is then ``path``)."""
    __slots__ = ("format", "size", "path")
    type = PropertyType.BLOB

    def __init__(self, name: str, label: str | None, value: bytes | None = None, format: str = "",
                 size: int | None = None, path: str | None = None) -> None:
        super().__init__(name, label, value, None)
        self.format, self.size, self.path = format, size, path

    @property
    def text(self) -> str:
        """A summary such as "2880 bytes .fits" (the content itself is in ``value`` or ``path``)."""
        size = f"{self.size or 0} bytes"
        return f"{size} {self.format}" if self.format else size


def _member_from_definition(m: Any, raw: str | None) -> Member:
    if isinstance(m, NumberMember):
        return Number(m.name, m.label, m.value, raw, m.format, m.min, m.max, m.step)
    if isinstance(m, TextMember):
        return Text(m.name, m.label, m.value, m.value)
    if isinstance(m, SwitchMember):
        return Switch(m.name, m.label, m.value is SwitchState.ON, str(m.value))
    if isinstance(m, LightMember):
        return Light(m.name, m.label, m.value, str(m.value))
    assert isinstance(m, BLOBMember)
    return BLOB(m.name, m.label)


class Property:
    """One property (vector) of a device, as last defined and updated.

    Attributes: ``device`` (its name), ``name``, ``type`` (PropertyType), ``label``, ``group``,
    ``perm`` (Permission; lights are read-only), ``rule`` (SwitchRule, switches only), ``state``
    (PropertyState), ``timeout``, ``timestamp``, ``message`` (the last message it carried),
    ``members`` (name -> Member, in the device's order) and ``deleted`` (True once the device
    deleted it or the connection was lost). ``prop["RA"]`` is a member; iterating gives members.
    """

    __slots__ = ("device", "name", "type", "label", "group", "perm", "rule", "state", "timeout", "timestamp",
                 "message", "members", "deleted")

    def __init__(self, definition: DefVector, raw: dict[str, str] | None = None) -> None:
        self.device = definition.device
        self.name = definition.name
        self.type = definition.type
        self.label = definition.label if definition.label is not None else definition.name
        self.group = definition.group or ""
        self.perm = Permission.RO if definition.type is PropertyType.LIGHT else definition.perm
        self.rule: SwitchRule | None = definition.rule
        self.state = definition.state
        self.timeout = definition.timeout
        self.timestamp = definition.timestamp
        self.message = definition.message
        self.deleted = False
        raw = raw or {}
        self.members: dict[str, Member] = {m.name: _member_from_definition(m, raw.get(m.name))
                                           for m in definition.members}

    def update(self, update: SetVector, raw: dict[str, str] | None = None) -> None:
        """Apply a set*Vector: state, timeout, timestamp, message and the members it names."""
        if update.state is not None:
            self.state = update.state
        if update.timeout is not None:
            self.timeout = update.timeout
        if update.timestamp is not None:
            self.timestamp = update.timestamp
        if update.message is not None:
            self.message = update.message
        raw = raw or {}
        for m in update.members:
            member = self.members.get(m.name)
            if member is None:
                continue
            if isinstance(member, Number):
                member.value = m.value
                member.raw = raw.get(m.name, format_value(m.value))
            elif isinstance(member, Switch):
                member.value = m.value is SwitchState.ON
                member.raw = str(m.value)
            elif isinstance(member, BLOB):
                member.value, member.format, member.size = m.value, m.format, m.size
                member.path = None
            else:
                member.value = m.value
                member.raw = str(m.value)

    # ------------------------------------------------------------------------------ reading
    def __getitem__(self, member: str) -> Member:
        try:
            return self.members[member]
        except KeyError:
            raise UnknownMember(self.device, self.name, member) from None

    def __contains__(self, member: object) -> bool:
        return member in self.members

    def __iter__(self) -> Iterator[Member]:
        return iter(self.members.values())

    def __len__(self) -> int:
        return len(self.members)

    @property
    def values(self) -> dict[str, Any]:
        """Every member's value, by name."""
        return {name: m.value for name, m in self.members.items()}

    @property
    def on(self) -> list[str]:
        """For a switch property, the names of the members that are On."""
        return [name for name, m in self.members.items() if isinstance(m, Switch) and m.value]

    @property
    def busy(self) -> bool:
        """True while the state is Busy."""
        return self.state is PropertyState.BUSY

    def __repr__(self) -> str:
        gone = " deleted" if self.deleted else ""
        return f"<Property {self.device}.{self.name} {self.type} {self.state}{gone} {self.values!r}>"


class Device(Mapping[str, Property]):
    """A device: a read-only mapping of property name -> Property, in the order of definition.

    ``gone`` is True while the client is not connected (the device's properties are then
    cleared; they are defined again after reconnecting), and ``connected`` tells whether its
    CONNECTION property says CONNECT.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.properties: dict[str, Property] = {}
        self.gone = False

    def __getitem__(self, name: str) -> Property:
        try:
            return self.properties[name]
        except KeyError:
            raise UnknownProperty(self.name, name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.properties)

    def __len__(self) -> int:
        return len(self.properties)

    def __contains__(self, name: object) -> bool:
        return name in self.properties

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    @property
    def connected(self) -> bool:
        """True if the device's CONNECTION property has CONNECT On."""
        prop = self.properties.get("CONNECTION")
        member = prop.members.get("CONNECT") if prop is not None else None
        return bool(member is not None and member.value)

    def __repr__(self) -> str:
        gone = " gone" if self.gone else ""
        return f"<Device {self.name!r}{gone} {len(self.properties)} properties>"
