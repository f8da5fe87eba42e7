"""Property tests: what we write, we (and the stream parsers) read back the same.

Covered (hypothesis):
- streams of elements of every kind (def/set/new vectors of every type, getProperties, enableBLOB,
  delProperty, message, ping) with names, labels, messages and values full of XML-special
  characters (< > & " ' and entity-like text such as "&amp;" or "&#10;"), Unicode (accents, CJK,
  emoji), numbers of every size including inf and nan: serialize() each, join them with the
  noise real streams carry between elements (newlines, XML declarations, comments), cut the stream
  anywhere, frame it, parse() each frame: the elements come back equal;
- the same stream through BlobStream, streaming every setBLOBVector: the BLOB events carry the
  device, property, member names, formats and the exact bytes of each BLOB; the other elements
  come out as frames that parse back equal;
- numbers: format_value() and parse_number() round-trip every double exactly; printf formats
  (%f, %e, %g with any precision) and sexagesimal formats (%<w>.<f>m, every layout: :mm, :mm.m,
  :mm:ss, :mm:ss.s, :mm:ss.ss) read back with parse_number() to within the format's precision;
  sexagesimal text d:m:s (also ; or space separated, negative) reads as d + m/60 + s/3600.

test_elements.py holds the single-element round trips; this adds streams, cutting, BlobStream,
the XML-special alphabet and numbers' formats.
"""

from __future__ import annotations

import dataclasses
import math
import os

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from helpers.element_strategies import Alphabet, optional, other_elements, same, vectors
from indi.protocol import (
    BlobData,
    BlobEnd,
    BlobStart,
    BlobStream,
    BlobVectorEnd,
    BlobVectorStart,
    Frame,
    Framer,
    NewVector,
    NumberFormatError,
    PropertyType,
    SetVector,
    format_number,
    format_value,
    parse,
    parse_number,
    serialize,
)

EXAMPLES = int(os.environ.get("INDI_FUZZ_EXAMPLES", "200"))
PROPS = settings(max_examples=EXAMPLES, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
T = PropertyType

# Characters XML cannot carry at all, and those it turns into spaces in attribute values (libindi
# does not decode the character references that would protect them; see test_elements.py).
XML_INVALID = "".join(chr(c) for c in range(0x20) if chr(c) not in "\t\n\r") + "\ufffe\uffff"
SPECIAL = ["<", ">", "&", '"', "'", "&amp;", "&lt;", "&#10;", "&#x41;", "]]>", "<!--", "-->", "</a>", "<a/>",
           "é", "Ω", "星", "🔭", "\u00a0", "\u2028", "=", "/"]
CHARS = st.characters(codec="utf-8", exclude_characters=XML_INVALID + "\t\n\r")


def special_text(chars=CHARS, max_size: int = 12):
    """Text built from XML-special pieces and arbitrary characters."""
    piece = st.sampled_from(SPECIAL) | st.text(chars, min_size=1, max_size=4)
    return st.lists(piece, max_size=max_size).map("".join)


ATTR = special_text()
# Text content keeps newlines and tabs inside (not CR: see test_elements.py); libindi strips ASCII
# whitespace at both ends.
TEXT = special_text(st.characters(codec="utf-8", exclude_characters=XML_INVALID + "\r"), 16).map(
    lambda s: s.strip(" \t\n\r\v\f"))
NUMBERS = st.floats() | st.sampled_from([0.0, -0.0, 1e-300, -1e300, 5e-324, 12.5, -90.0, 359.99999])
FORMATS = st.sampled_from(["%g", "%.3f", "%010.6m", "%9.6m", "%6.3m", "%8.5m", "%10.8m", "%12.9m", "%5.0f"]) | ATTR
SPECIAL_TEXT = Alphabet(names=ATTR, attributes=ATTR, text=TEXT, numbers=NUMBERS, formats=FORMATS,
                        blob_sizes=optional(st.integers(0, 2**40)), max_blob=200, max_members=3)
ELEMENTS = vectors(SPECIAL_TEXT) | other_elements(SPECIAL_TEXT)

# What real streams carry between elements, and the framer skips.
BETWEEN = st.sampled_from([b"", b"\n", b"\r\n", b"  \t", b"<?xml version='1.0'?>\n", b"<!-- a <comment/> -->"])


def as_sent(element):
    """The element as it reads back: a BLOB's size, when not given, is sent as its length."""
    if not isinstance(element, SetVector | NewVector) or element.type is not T.BLOB:
        return element
    members = [dataclasses.replace(m, size=len(m.value or b"")) if m.size is None else m for m in element.members]
    return dataclasses.replace(element, members=members)


@st.composite
def streams(draw, elements=ELEMENTS):
    items = draw(st.lists(elements, min_size=1, max_size=6))
    parts = []
    for item in items:
        parts += [draw(BETWEEN), serialize(item)]
    data = b"".join(parts)
    cuts = sorted(draw(st.sets(st.integers(0, len(data)), max_size=10)))
    edges = [0, *cuts, len(data)]
    return items, data, [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


@PROPS
@given(streams())
def test_element_streams_cut_anywhere_parse_back_equal(case):
    items, data, chunks = case
    framer = Framer()
    frames = [frame for chunk in chunks for frame in framer.feed(chunk)]
    assert framer.idle
    assert framer.junk_skipped == 0
    back = [parse(frame) for frame in frames]
    assert len(back) == len(items)
    for original, parsed, frame in zip(items, back, frames, strict=True):
        assert same(parsed, as_sent(original)), f"{original!r}\n-> {frame.raw!r}\n-> {parsed!r}"
        assert frame.raw == serialize(original)


def is_streamed_blob(element) -> bool:
    return isinstance(element, SetVector) and element.type is T.BLOB


@PROPS
@given(streams(vectors(SPECIAL_TEXT, kinds=("set",)) | ELEMENTS))
def test_element_streams_through_blobstream(case):
    items, _, chunks = case
    bs = BlobStream()
    events = [event for chunk in chunks for event in bs.feed(chunk)]
    bs.close()
    it = iter(events)
    for original in items:
        if not is_streamed_blob(original):
            frame = next(it)
            assert isinstance(frame, Frame)
            assert same(parse(frame), as_sent(original))
            continue
        start = next(it)
        assert isinstance(start, BlobVectorStart)
        assert (start.device, start.name) == (original.device, original.name)
        for member in original.members:
            blob = next(it)
            assert isinstance(blob, BlobStart)
            assert (blob.name, blob.format) == (member.name, member.format)
            assert blob.size == (member.size if member.size is not None else len(member.value))
            data = b""
            event = next(it)
            while isinstance(event, BlobData):
                data += event.data
                event = next(it)
            assert isinstance(event, BlobEnd)
            assert (event.name, data) == (member.name, member.value)
        assert isinstance(next(it), BlobVectorEnd)
    assert next(it, None) is None


# ------------------------------------------------------------------------------------------ numbers

@PROPS
@given(st.floats())
def test_format_value_round_trips_every_double(value):
    back = parse_number(format_value(value))
    if math.isnan(value):
        assert math.isnan(back)
    else:
        assert back == value and math.copysign(1, back) == math.copysign(1, value)


@PROPS
@given(st.floats(-1e15, 1e15), st.integers(0, 12), st.sampled_from("fFeEgG"), st.sampled_from(["", "-", "+", "0", " "]),
       st.integers(0, 20))
def test_printf_formats_read_back_within_their_precision(value, precision, conv, flag, width):
    fmt = f"%{flag}{width or ''}.{precision}{conv}"
    text = format_number(fmt, value)
    back = parse_number(text)
    if conv in "fF":
        tolerance = 0.5 * 10.0 ** -precision
    elif conv in "eE":  # precision digits after the first significant one
        tolerance = 0.5 * 10.0 ** -precision * abs(value)
    else:  # precision significant digits (0 means 1)
        tolerance = 0.5 * 10.0 ** -(max(precision, 1) - 1) * abs(value)
    assert abs(back - value) <= tolerance * (1 + 1e-9) + 2 * math.ulp(value), (fmt, value, text, back)


# %<w>.<f>m: the precision selects the layout and so the unit of the last field, in degrees (or hours).
SEXA_UNITS = {3: 1 / 60, 5: 1 / 600, 6: 1 / 3600, 8: 1 / 36000, 9: 1 / 360000}


@PROPS
@given(st.floats(-1e6, 1e6), st.sampled_from(sorted(SEXA_UNITS)), st.integers(0, 6))
@example(-0.49999, 6, 2)
@example(-0.0001, 9, 3)
@example(0.99999999, 6, 3)
@example(23.999999, 9, 3)
def test_sexagesimal_formats_read_back_within_their_precision(value, precision, extra_width):
    fmt = f"%{precision + extra_width}.{precision}m"
    text = format_number(fmt, value)
    back = parse_number(text)
    unit = SEXA_UNITS[precision]
    assert abs(back - value) <= unit / 2 + 1e-9 * max(1.0, abs(value)), (fmt, value, text, back)


@pytest.mark.parametrize("separator", [":", ";", " "])
@given(st.integers(0, 359), st.integers(0, 59), st.floats(0, 59.99, allow_nan=False).map(lambda s: round(s, 2)),
       st.booleans())
@settings(max_examples=max(10, EXAMPLES // 2), deadline=None)
def test_sexagesimal_text_reads_as_degrees_minutes_seconds(separator, d, m, s, negative):
    text = f"{'-' if negative else ''}{d}{separator}{m:02d}{separator}{s:05.2f}"
    expected = d + m / 60 + s / 3600
    back = parse_number(text)
    assert math.isclose(back, -expected if negative else expected, rel_tol=1e-12, abs_tol=1e-12), text


@PROPS
@given(st.text(max_size=30))
def test_parse_number_raises_only_its_own_error(text):
    """Any text is a number or a NumberFormatError, never another exception (OverflowError...)."""
    assume("\x00" not in text)
    try:
        parse_number(text)
    except NumberFormatError:
        pass


def test_parse_number_reads_hexadecimal_overflow_as_infinity_as_strtod_does():
    """strtod gives HUGE_VAL for a hexadecimal float too large; float.fromhex raises OverflowError."""
    assert parse_number("0x1p99999") == math.inf
    assert parse_number("-0x1p99999") == -math.inf
    assert parse_number("0x" + "f" * 300) == math.inf
    raw = b"<setNumberVector device='d' name='n'><oneNumber name='x'>0x1p99999</oneNumber></setNumberVector>"
    assert parse(raw).members[0].value == math.inf


FORMAT_PIECES = st.sampled_from(["%", "%%", ".", "-", "+", " ", "#", "0", "1", "9", "12", "2147483648", "99999999999",
                                 "l", "h", "L", "d", "u", "x", "f", "e", "g", "G", "a", "s", "c", "m", "*", "n", "|"])


@PROPS
@given(st.lists(FORMAT_PIECES, max_size=8).map("".join), st.floats())
@example("%2147483648.3f", 12.5)
@example("%9999999999.9m", 12.5)
@example("%.99999999999f", 1.0)
def test_format_number_output_is_bounded_or_refused(fmt, value):
    """Any format a peer sends gives short text or NumberFormatError: never a huge string, never another error.

    Found by fuzzing: "%2147483648.3f" built a 2 GB string (libindi writes at most 63 characters; on
    "%9999999999.9m" it crashes).
    """
    try:
        text = format_number(fmt, value)
    except NumberFormatError:
        return
    assert len(text) <= len(fmt) + 2 * 1024 + 400
