"""Typed INDI elements: parse a framed element into one, and serialise one back to bytes.

Each class is one element of the protocol (version 1.7, plus libindi's ping extension). Vectors
carry a PropertyType, so ``DefVector(PropertyType.NUMBER, ...)`` is a ``defNumberVector``.
"""

from __future__ import annotations

import binascii
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from enum import StrEnum

from .framing import Frame
from .numbers import NumberFormatError, parse_number

__all__ = [
    "PropertyType", "PropertyState", "Permission", "SwitchRule", "SwitchState", "BLOBMode",
    "TextMember", "NumberMember", "SwitchMember", "LightMember", "BLOBMember", "Member",
    "DefVector", "SetVector", "NewVector", "GetProperties", "EnableBLOB", "DelProperty",
    "Message", "PingRequest", "PingReply", "Element", "ProtocolError", "parse", "serialize",
    "PROTOCOL_VERSION", "format_value", "xml_attributes",
]

PROTOCOL_VERSION = "1.7"


class ProtocolError(ValueError):
    """Well-formed XML that is not a valid INDI element."""


class PropertyType(StrEnum):
    TEXT = "Text"
    NUMBER = "Number"
    SWITCH = "Switch"
    LIGHT = "Light"
    BLOB = "BLOB"


class PropertyState(StrEnum):
    IDLE = "Idle"
    OK = "Ok"
    BUSY = "Busy"
    ALERT = "Alert"


class Permission(StrEnum):
    RO = "ro"
    WO = "wo"
    RW = "rw"


class SwitchRule(StrEnum):
    ONE_OF_MANY = "OneOfMany"
    AT_MOST_ONE = "AtMostOne"
    ANY_OF_MANY = "AnyOfMany"


class SwitchState(StrEnum):
    ON = "On"
    OFF = "Off"


class BLOBMode(StrEnum):
    NEVER = "Never"
    ALSO = "Also"
    ONLY = "Only"


@dataclass(slots=True)
class TextMember:
    name: str
    value: str = ""
    label: str | None = None


@dataclass(slots=True)
class NumberMember:
    name: str
    value: float = 0.0
    label: str | None = None
    format: str = "%g"
    min: float = 0.0
    max: float = 0.0
    step: float = 0.0


@dataclass(slots=True)
class SwitchMember:
    name: str
    value: SwitchState = SwitchState.OFF
    label: str | None = None


@dataclass(slots=True)
class LightMember:
    name: str
    value: PropertyState = PropertyState.IDLE
    label: str | None = None


@dataclass(slots=True)
class BLOBMember:
    """A BLOB: ``value`` holds the decoded bytes (None in a definition); ``size`` is as sent."""
    name: str
    value: bytes | None = None
    format: str = ""
    size: int | None = None
    label: str | None = None


Member = TextMember | NumberMember | SwitchMember | LightMember | BLOBMember


@dataclass(slots=True)
class DefVector:
    type: PropertyType
    device: str
    name: str
    members: list[Member] = field(default_factory=list)
    label: str | None = None
    group: str | None = None
    state: PropertyState = PropertyState.IDLE
    perm: Permission = Permission.RW
    rule: SwitchRule | None = None
    timeout: float | None = None
    timestamp: str | None = None
    message: str | None = None


@dataclass(slots=True)
class SetVector:
    type: PropertyType
    device: str
    name: str
    members: list[Member] = field(default_factory=list)
    state: PropertyState | None = None
    timeout: float | None = None
    timestamp: str | None = None
    message: str | None = None


@dataclass(slots=True)
class NewVector:
    type: PropertyType
    device: str
    name: str
    members: list[Member] = field(default_factory=list)
    timestamp: str | None = None


@dataclass(slots=True)
class GetProperties:
    version: str | None = PROTOCOL_VERSION
    device: str | None = None
    name: str | None = None


@dataclass(slots=True)
class EnableBLOB:
    mode: BLOBMode
    device: str | None = None
    name: str | None = None


@dataclass(slots=True)
class DelProperty:
    device: str
    name: str | None = None
    timestamp: str | None = None
    message: str | None = None


@dataclass(slots=True)
class Message:
    message: str | None = None
    device: str | None = None
    timestamp: str | None = None


@dataclass(slots=True)
class PingRequest:
    uid: str = ""


@dataclass(slots=True)
class PingReply:
    uid: str = ""


Element = (DefVector | SetVector | NewVector | GetProperties | EnableBLOB | DelProperty | Message
           | PingRequest | PingReply)

_VECTOR_TAGS: dict[str, tuple[type, PropertyType]] = {}
for _type in PropertyType:
    _VECTOR_TAGS[f"def{_type}Vector"] = (DefVector, _type)
    _VECTOR_TAGS[f"set{_type}Vector"] = (SetVector, _type)
    if _type is not PropertyType.LIGHT:
        _VECTOR_TAGS[f"new{_type}Vector"] = (NewVector, _type)


# ---------------------------------------------------------------------------------------- parsing

def _number(text: str | None, what: str) -> float:
    try:
        return parse_number(text or "")
    except NumberFormatError:
        raise ProtocolError(f"{what}: {text!r} is not a number") from None


def _enum(enum: type, text: str | None, what: str):
    try:
        return enum(text.strip(_C_SPACE)) if text is not None else None
    except ValueError:
        choices = ", ".join(e.value for e in enum)
        raise ProtocolError(f"{what}: {text!r} is not one of {choices}") from None


def _required(el: ET.Element, attr: str) -> str:
    value = el.get(attr)
    if value is None:
        raise ProtocolError(f"<{el.tag}> has no {attr} attribute")
    return value


# libindi trims C isspace() characters around values, and nothing else.
_C_SPACE = " \t\n\r\v\f"
# XML parsers turn a raw CR in text into LF; libindi keeps it. Text between tags is escaped first.
_TEXT_CR = re.compile(rb">[^<]*\r[^<]*<")


def _member(el: ET.Element, ptype: PropertyType, definition: bool) -> Member:
    name = _required(el, "name")
    text = (el.text or "").strip(_C_SPACE)
    label = el.get("label")
    what = f"{el.tag} {name}"
    if ptype is PropertyType.TEXT:
        return TextMember(name, text, label)
    if ptype is PropertyType.NUMBER:
        number = NumberMember(name, _number(text, what), label)
        if definition:
            number.format = el.get("format", "%g")
            number.min = _number(el.get("min", "0"), what + " min")
            number.max = _number(el.get("max", "0"), what + " max")
            number.step = _number(el.get("step", "0"), what + " step")
        return number
    if ptype is PropertyType.SWITCH:
        return SwitchMember(name, _enum(SwitchState, text, what), label)
    if ptype is PropertyType.LIGHT:
        return LightMember(name, _enum(PropertyState, text, what), label)
    if definition:
        return BLOBMember(name, None, label=label)
    size_text = el.get("size")
    try:
        size = int(size_text) if size_text is not None else None
    except ValueError:
        raise ProtocolError(f"{what}: size {size_text!r} is not an integer") from None
    try:
        data = binascii.a2b_base64(el.text or "")
    except ValueError as exc:  # binascii.Error, or text that is not ASCII
        raise ProtocolError(f"{what}: bad base64 ({exc})") from None
    return BLOBMember(name, data, el.get("format", ""), size, label)


def parse(source: Frame | bytes) -> Element:
    """Parse one complete element (a Frame or its bytes) into its typed form.

    Raises ProtocolError for XML that is malformed or is not a valid INDI element.
    """
    raw = source.raw if isinstance(source, Frame) else source
    if b"\r" in raw:
        raw = _TEXT_CR.sub(lambda m: m.group(0).replace(b"\r", b"&#13;"), raw)
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise ProtocolError(f"malformed XML: {exc}") from None
    tag = root.tag
    if tag in _VECTOR_TAGS:
        cls, ptype = _VECTOR_TAGS[tag]
        device, name = _required(root, "device"), _required(root, "name")
        definition = cls is DefVector
        child_tag = (f"def{ptype}" if definition else f"one{ptype}")
        members = []
        for child in root:
            if child.tag != child_tag:
                raise ProtocolError(f"<{tag}> cannot contain <{child.tag}>")
            members.append(_member(child, ptype, definition))
        timestamp = root.get("timestamp")
        if cls is NewVector:
            return NewVector(ptype, device, name, members, timestamp)
        timeout = _number(root.get("timeout"), f"{tag} timeout") if root.get("timeout") else None
        message = root.get("message")
        if cls is SetVector:
            return SetVector(ptype, device, name, members, _enum(PropertyState, root.get("state"), f"{tag} state"),
                             timeout, timestamp, message)
        perm = Permission.RO if ptype is PropertyType.LIGHT else \
            _enum(Permission, root.get("perm", "rw"), f"{tag} perm")
        rule = _enum(SwitchRule, root.get("rule", "AnyOfMany"), f"{tag} rule") \
            if ptype is PropertyType.SWITCH else None
        return DefVector(ptype, device, name, members, root.get("label"), root.get("group"),
                         _enum(PropertyState, root.get("state", "Idle"), f"{tag} state"), perm, rule,
                         timeout, timestamp, message)
    if tag == "getProperties":
        return GetProperties(root.get("version"), root.get("device"), root.get("name"))
    if tag == "enableBLOB":
        return EnableBLOB(_enum(BLOBMode, (root.text or "").strip(_C_SPACE), "enableBLOB"), root.get("device"),
                          root.get("name"))
    if tag == "delProperty":
        return DelProperty(_required(root, "device"), root.get("name"), root.get("timestamp"),
                           root.get("message"))
    if tag == "message":
        return Message(root.get("message"), root.get("device"), root.get("timestamp"))
    if tag == "pingRequest":
        return PingRequest(root.get("uid", ""))
    if tag == "pingReply":
        return PingReply(root.get("uid", ""))
    raise ProtocolError(f"unknown element <{tag}>")


# ---------------------------------------------------------------------------------- serialisation

# Only the named entities: libindi does not decode numeric character references.
_ATTR_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"})
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def format_value(value: float) -> str:
    """A number as INDI text: the shortest form that reads back as the same double."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def xml_attributes(pairs: list[tuple[str, object]]) -> str:
    """' key="value"' for each pair whose value is not None, escaped for XML."""
    out = []
    for key, value in pairs:
        if value is None:
            continue
        if isinstance(value, float):
            value = format_value(value)
        out.append(f' {key}="{str(value).translate(_ATTR_ESCAPES)}"')
    return "".join(out)


def _member_xml(m: Member, tag: str, definition: bool) -> str:
    pairs: list[tuple[str, object]] = [("name", m.name)]
    if definition:
        pairs.append(("label", m.label))
    if isinstance(m, NumberMember):
        if definition:
            pairs += [("format", m.format), ("min", m.min), ("max", m.max), ("step", m.step)]
        body = format_value(m.value)
    elif isinstance(m, BLOBMember):
        if definition:
            return f"<{tag}{xml_attributes(pairs)}/>"
        data = m.value or b""
        encoded = binascii.b2a_base64(data, newline=False).decode("ascii")
        pairs += [("size", m.size if m.size is not None else len(data)), ("format", m.format),
                  ("enclen", len(encoded))]
        body = encoded
    elif isinstance(m, TextMember):
        body = m.value.translate(_TEXT_ESCAPES)
    else:
        body = str(m.value)
    return f"<{tag}{xml_attributes(pairs)}>{body}</{tag}>"


def serialize(element: Element) -> bytes:
    """The XML of one element, newline-terminated, UTF-8."""
    if isinstance(element, (DefVector, SetVector, NewVector)):
        ptype = element.type
        if isinstance(element, DefVector):
            op, child, definition = "def", f"def{ptype}", True
            pairs: list[tuple[str, object]] = [
                ("device", element.device), ("name", element.name), ("label", element.label),
                ("group", element.group), ("state", element.state),
                ("perm", None if ptype is PropertyType.LIGHT else element.perm),
                ("rule", (element.rule or SwitchRule.ANY_OF_MANY) if ptype is PropertyType.SWITCH else None),
                ("timeout", None if ptype is PropertyType.LIGHT else element.timeout),
                ("timestamp", element.timestamp), ("message", element.message)]
        elif isinstance(element, SetVector):
            op, child, definition = "set", f"one{ptype}", False
            pairs = [("device", element.device), ("name", element.name), ("state", element.state),
                     ("timeout", None if ptype is PropertyType.LIGHT else element.timeout),
                     ("timestamp", element.timestamp), ("message", element.message)]
        else:
            op, child, definition = "new", f"one{ptype}", False
            pairs = [("device", element.device), ("name", element.name), ("timestamp", element.timestamp)]
        tag = f"{op}{ptype}Vector"
        members = "".join(f"\n  {_member_xml(m, child, definition)}" for m in element.members)
        return f"<{tag}{xml_attributes(pairs)}>{members}\n</{tag}>\n".encode()
    if isinstance(element, GetProperties):
        pairs = [("version", element.version), ("device", element.device), ("name", element.name)]
        return f"<getProperties{xml_attributes(pairs)}/>\n".encode()
    if isinstance(element, EnableBLOB):
        pairs = [("device", element.device), ("name", element.name)]
        return f"<enableBLOB{xml_attributes(pairs)}>{element.mode}</enableBLOB>\n".encode()
    if isinstance(element, DelProperty):
        pairs = [("device", element.device), ("name", element.name), ("timestamp", element.timestamp),
                 ("message", element.message)]
        return f"<delProperty{xml_attributes(pairs)}/>\n".encode()
    if isinstance(element, Message):
        pairs = [("device", element.device), ("timestamp", element.timestamp), ("message", element.message)]
        return f"<message{xml_attributes(pairs)}/>\n".encode()
    if isinstance(element, PingRequest):
        return f"<pingRequest{xml_attributes([('uid', element.uid)])}/>\n".encode()
    if isinstance(element, PingReply):
        return f"<pingReply{xml_attributes([('uid', element.uid)])}/>\n".encode()
    raise TypeError(f"not an INDI element: {element!r}")
