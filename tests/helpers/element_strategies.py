"""Hypothesis strategies for INDI elements of every kind (def/set/new vectors of every type, and the
other elements), drawn from an ``Alphabet``: test_elements.py round-trips single elements over plain
text, test_properties_roundtrip.py streams of them over XML-special text."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from indi.protocol import (
    BLOBMember,
    BLOBMode,
    DefVector,
    DelProperty,
    EnableBLOB,
    GetProperties,
    LightMember,
    Message,
    NewVector,
    NumberMember,
    Permission,
    PingReply,
    PingRequest,
    PropertyState,
    PropertyType,
    SetVector,
    SwitchMember,
    SwitchRule,
    SwitchState,
    TextMember,
)

T = PropertyType
TIMESTAMPS = st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S"))


def same(a, b) -> bool:
    """Equality that treats nan as equal to nan (and still tells -0.0 from 0.0)."""
    return type(a) is type(b) and repr(dataclasses.astuple(a)) == repr(dataclasses.astuple(b))


def optional(strategy: SearchStrategy) -> SearchStrategy:
    return st.none() | strategy


@dataclass(frozen=True)
class Alphabet:
    """What the parts of an element are drawn from."""
    names: SearchStrategy[str]          # device, property and member names
    attributes: SearchStrategy[str]     # labels, groups, messages, BLOB formats
    text: SearchStrategy[str]           # text members' values
    numbers: SearchStrategy[float]
    formats: SearchStrategy[str]        # number formats in definitions
    blob_sizes: SearchStrategy          # oneBLOB size attributes
    max_blob: int                       # bytes of BLOB data
    max_members: int


def members(abc: Alphabet, ptype: PropertyType, definition: bool) -> SearchStrategy:
    label = optional(abc.attributes) if definition else st.none()
    if ptype is T.TEXT:
        return st.builds(TextMember, abc.names, abc.text, label)
    if ptype is T.NUMBER:
        if definition:
            return st.builds(NumberMember, abc.names, abc.numbers, label, abc.formats, abc.numbers, abc.numbers,
                             abc.numbers)
        return st.builds(NumberMember, abc.names, abc.numbers)
    if ptype is T.SWITCH:
        return st.builds(SwitchMember, abc.names, st.sampled_from(SwitchState), label)
    if ptype is T.LIGHT:
        return st.builds(LightMember, abc.names, st.sampled_from(PropertyState), label)
    if definition:
        return st.builds(BLOBMember, abc.names, label=label)
    return st.builds(BLOBMember, abc.names, st.binary(max_size=abc.max_blob), abc.attributes, abc.blob_sizes)


@st.composite
def vectors(draw, abc: Alphabet, kinds=("def", "set", "new")):
    ptype = draw(st.sampled_from(PropertyType))
    # Lights are never sent by clients (no newLightVector).
    kind = draw(st.sampled_from([k for k in kinds if not (ptype is T.LIGHT and k == "new")] or ["set"]))
    items = draw(st.lists(members(abc, ptype, kind == "def"), max_size=abc.max_members))
    device, name, stamp = draw(abc.names), draw(abc.names), draw(optional(TIMESTAMPS))
    if kind == "new":
        return NewVector(ptype, device, name, items, stamp)
    # Lights have no timeout and no permission in the protocol.
    timeout = None if ptype is T.LIGHT else draw(optional(st.floats(0, 1e6)))
    message = draw(optional(abc.attributes))
    if kind == "set":
        return SetVector(ptype, device, name, items, draw(optional(st.sampled_from(PropertyState))), timeout,
                         stamp, message)
    perm = Permission.RO if ptype is T.LIGHT else draw(st.sampled_from(Permission))
    rule = draw(st.sampled_from(SwitchRule)) if ptype is T.SWITCH else None
    return DefVector(ptype, device, name, items, draw(optional(abc.attributes)), draw(optional(abc.attributes)),
                     draw(st.sampled_from(PropertyState)), perm, rule, timeout, stamp, message)


def other_elements(abc: Alphabet) -> SearchStrategy:
    """getProperties, enableBLOB, delProperty, message, pingRequest, pingReply."""
    return st.one_of(
        st.builds(GetProperties, optional(st.just("1.7")), optional(abc.names), optional(abc.names)),
        st.builds(EnableBLOB, st.sampled_from(BLOBMode), optional(abc.names), optional(abc.names)),
        st.builds(DelProperty, abc.names, optional(abc.names), optional(TIMESTAMPS), optional(abc.attributes)),
        st.builds(Message, optional(abc.attributes), optional(abc.names), optional(TIMESTAMPS)),
        st.builds(PingRequest, abc.attributes),
        st.builds(PingReply, abc.attributes),
    )
