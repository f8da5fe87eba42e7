"""Properties as a driver holds them: vectors of members with their current values and state.

A driver declares each property once (``NumberVector("ABS_FOCUS_POSITION", ..., members=[...])``);
the framework defines it to clients, validates what clients send against its permission, switch
rule and number ranges, and sends its new values with ``send()``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from ..protocol import (
    BLOBMember,
    DefVector,
    LightMember,
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
    timestamp,
)
from ..protocol.elements import Member as ElementMember

if TYPE_CHECKING:
    from .device import Device

__all__ = ["Text", "Number", "Switch", "Light", "BLOB", "Vector", "TextVector", "NumberVector",
           "SwitchVector", "LightVector", "BLOBVector", "Rejected", "IDLE", "OK", "BUSY", "ALERT", "ON", "OFF"]

IDLE, OK, BUSY, ALERT = PropertyState.IDLE, PropertyState.OK, PropertyState.BUSY, PropertyState.ALERT
ON, OFF = SwitchState.ON, SwitchState.OFF


class Rejected(ValueError):
    """A client's new values cannot be applied; the message goes back to the client.

    ``state`` is what libindi reports the property as: Idle for an unknown member or a broken
    switch rule, Alert for a number out of range, None to leave it as it is (read-only).
    """

    def __init__(self, message: str, state: PropertyState | None = PropertyState.IDLE) -> None:
        super().__init__(message)
        self.state = state


# ------------------------------------------------------------------------------------------ members

class Member:
    """One element of a vector: a name, a label and a value."""

    __slots__ = ("name", "label", "value")

    def __init__(self, name: str, label: str | None = None, value: Any = None) -> None:
        self.name = name
        self.label = label if label is not None else name
        self.value = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, value={self.value!r})"


class Text(Member):
    __slots__ = ()

    def __init__(self, name: str, label: str | None = None, value: str = "") -> None:
        super().__init__(name, label, value)


class Number(Member):
    """A number with its printf/%m format and range (min == max means no range)."""

    __slots__ = ("format", "min", "max", "step")

    def __init__(self, name: str, label: str | None = None, format: str = "%g", min: float = 0.0,
                 max: float = 0.0, step: float = 0.0, value: float = 0.0) -> None:
        super().__init__(name, label, float(value))
        self.format, self.min, self.max, self.step = format, float(min), float(max), float(step)

    @property
    def text(self) -> str:
        """The value formatted as the member's format says (sexagesimal for %m)."""
        return format_number(self.format, self.value)

    def check(self, value: float) -> None:
        if math.isnan(value):
            raise Rejected(f"{self.label} ({self.name}): not a number")
        if self.min < self.max and not self.min <= value <= self.max:
            raise Rejected(f"Invalid range for {self.label} ({self.name}). Valid range is from "
                           f"{self.min:g} to {self.max:g}. Requested value is {value:g}", ALERT)


class Switch(Member):
    __slots__ = ()

    def __init__(self, name: str, label: str | None = None, value: SwitchState | bool = OFF) -> None:
        super().__init__(name, label, ON if value is True or value == ON else OFF)


class Light(Member):
    __slots__ = ()

    def __init__(self, name: str, label: str | None = None, value: PropertyState = IDLE) -> None:
        super().__init__(name, label, PropertyState(value))


class BLOB(Member):
    """A BLOB: ``value`` is the bytes, ``format`` its type (".fits", ".stream", ...)."""

    __slots__ = ("format", "size")

    def __init__(self, name: str, label: str | None = None, value: bytes = b"", format: str = "") -> None:
        super().__init__(name, label, value)
        self.format = format
        self.size: int | None = None  # decoded size when it differs from len(value) (compressed)


# ------------------------------------------------------------------------------------------ vectors

class Vector:
    """A property: named members, a label, a group, a permission and a state.

    ``device`` is set when the vector is added to a Device. Members are reached by name
    (``vector["RA"]``); ``values`` maps every member to its value.
    """

    type: ClassVar[PropertyType]
    member_class: ClassVar[type[Member]]

    def __init__(self, name: str, label: str | None = None, group: str = "Main Control",
                 perm: Permission | str = Permission.RW, state: PropertyState | str = IDLE,
                 timeout: float = 60, members: Iterable[Member] = (), *, save: bool = False) -> None:
        self.name = name
        self.label = label if label is not None else name
        self.group = group
        self.perm = Permission(perm)
        self.state = PropertyState(state)
        self.timeout = timeout
        self.members: dict[str, Member] = {}
        for member in members:
            if not isinstance(member, self.member_class):
                raise TypeError(f"{name}: {member!r} is not a {self.member_class.__name__}")
            self.members[member.name] = member
        self.save = save  # saved by CONFIG_SAVE, loaded on connect and by CONFIG_LOAD
        self.device: Device | None = None
        self.requested: dict[str, Any] = {}  # the values of the client's latest request, as sent

    def __getitem__(self, name: str) -> Any:
        return self.members[name]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.members.values())

    def __len__(self) -> int:
        return len(self.members)

    def __contains__(self, name: object) -> bool:
        return name in self.members

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.state}, {self.values!r})"

    @property
    def values(self) -> dict[str, Any]:
        return {name: member.value for name, member in self.members.items()}

    def value(self, name: str) -> Any:
        return self.members[name].value

    # ---- client input
    def check(self, values: dict[str, Any]) -> dict[str, Any]:
        """Validate new values from a client; returns them as they would be applied. Raises Rejected."""
        if self.perm is Permission.RO:
            raise Rejected(f"Cannot set read-only property {self.label} ({self.name})", None)
        unknown = [name for name in values if name not in self.members]
        if unknown:
            raise Rejected(f"{', '.join(unknown)} {'is not a member' if len(unknown) == 1 else 'are not members'}"
                           f" of {self.label} ({self.name})")
        return values

    def apply(self, values: dict[str, Any]) -> None:
        """Set member values (after check)."""
        for name, value in values.items():
            self.members[name].value = value

    # ---- to clients
    def _member_elements(self, definition: bool) -> list[ElementMember]:
        raise NotImplementedError

    def definition(self) -> DefVector:
        return DefVector(self.type, self._device_name(), self.name, self._member_elements(True), self.label,
                         self.group, self.state, self.perm, getattr(self, "rule", None), self.timeout, timestamp())

    def update_element(self, message: str | None = None) -> SetVector:
        return SetVector(self.type, self._device_name(), self.name, self._member_elements(False), self.state,
                         self.timeout, timestamp(), message)

    def _device_name(self) -> str:
        if self.device is None:
            raise RuntimeError(f"{self.name} has not been added to a device")
        return self.device.name

    def send(self, message: str | None = None, state: PropertyState | str | None = None, **values: Any) -> None:
        """Send the current values to clients (setXXXVector), after setting ``state`` and ``values``."""
        if state is not None:
            self.state = PropertyState(state)
        if values:
            self.apply(values)
        if self.device is not None:
            self.device.send_update(self, message)


class TextVector(Vector):
    type = PropertyType.TEXT
    member_class = Text

    def check(self, values: dict[str, Any]) -> dict[str, Any]:
        super().check(values)
        return {name: str(value) for name, value in values.items()}

    def _member_elements(self, definition: bool) -> list[ElementMember]:
        return [TextMember(m.name, m.value, m.label if definition else None) for m in self.members.values()]


class NumberVector(Vector):
    type = PropertyType.NUMBER
    member_class = Number

    def check(self, values: dict[str, Any]) -> dict[str, Any]:
        super().check(values)
        checked = {}
        for name, value in values.items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise Rejected(f"{value!r} is not a number for {self.label} ({name})") from None
            self.members[name].check(value)
            checked[name] = value
        return checked

    def _member_elements(self, definition: bool) -> list[ElementMember]:
        if definition:
            return [NumberMember(m.name, m.value, m.label, m.format, m.min, m.max, m.step)
                    for m in self.members.values()]
        return [NumberMember(m.name, m.value) for m in self.members.values()]


class SwitchVector(Vector):
    type = PropertyType.SWITCH
    member_class = Switch

    def __init__(self, name: str, label: str | None = None, group: str = "Main Control",
                 perm: Permission | str = Permission.RW, state: PropertyState | str = IDLE,
                 timeout: float = 60, members: Iterable[Member] = (),
                 rule: SwitchRule | str = SwitchRule.ONE_OF_MANY, *, save: bool = False) -> None:
        super().__init__(name, label, group, perm, state, timeout, members, save=save)
        self.rule = SwitchRule(rule)

    @property
    def on(self) -> str | None:
        """The name of the first member that is On (the selection of a OneOfMany), or None."""
        for member in self.members.values():
            if member.value is ON:
                return member.name
        return None

    def is_on(self, name: str) -> bool:
        return self.members[name].value is ON

    def select(self, name: str | None) -> None:
        """Turn ``name`` On and every other member Off (None: all Off)."""
        for member in self.members.values():
            member.value = ON if member.name == name else OFF

    def check(self, values: dict[str, Any]) -> dict[str, Any]:
        super().check(values)
        checked = {name: ON if value == ON or value is True else OFF for name, value in values.items()}
        result = {name: member.value for name, member in self.members.items()}
        if self.rule is SwitchRule.ONE_OF_MANY or (self.rule is SwitchRule.AT_MOST_ONE
                                                   and any(v is ON for v in checked.values())):
            # As libindi's IUUpdateSwitch: the others go Off, so OneOfMany needs one sent On.
            result = dict.fromkeys(result, OFF)
        result.update(checked)
        on = sum(1 for v in result.values() if v is ON)
        if self.rule is SwitchRule.ONE_OF_MANY and on != 1:
            raise Rejected(f"invalid state switch for property {self.label} ({self.name}): "
                           f"{'no' if on == 0 else on} switches On, exactly one must be")
        if self.rule is SwitchRule.AT_MOST_ONE and on > 1:
            raise Rejected(f"invalid state switch for property {self.label} ({self.name}): "
                           f"{on} switches On, at most one may be")
        return result

    def _member_elements(self, definition: bool) -> list[ElementMember]:
        return [SwitchMember(m.name, m.value, m.label if definition else None) for m in self.members.values()]


class LightVector(Vector):
    type = PropertyType.LIGHT
    member_class = Light

    def __init__(self, name: str, label: str | None = None, group: str = "Main Control",
                 state: PropertyState | str = IDLE, members: Iterable[Member] = ()) -> None:
        super().__init__(name, label, group, Permission.RO, state, 0, members)

    def _member_elements(self, definition: bool) -> list[ElementMember]:
        return [LightMember(m.name, m.value, m.label if definition else None) for m in self.members.values()]


class BLOBVector(Vector):
    """BLOBs. New values from clients arrive as protocol BLOBMembers (bytes, format and size)."""

    type = PropertyType.BLOB
    member_class = BLOB

    def check(self, values: dict[str, Any]) -> dict[str, Any]:
        super().check(values)
        return values

    def apply(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            member = self.members[name]
            if isinstance(value, BLOBMember):
                member.value, member.format = value.value or b"", value.format
                member.size = value.size if value.size != len(member.value) else None
            else:
                member.value = value

    def _member_elements(self, definition: bool) -> list[ElementMember]:
        if definition:
            return [BLOBMember(m.name, None, label=m.label) for m in self.members.values()]
        return [BLOBMember(m.name, m.value, m.format, m.size) for m in self.members.values()]
