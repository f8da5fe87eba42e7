"""Framing of the root-less INDI stream: indi.protocol.Framer and Frame.

Covered:
- a corpus of realistic traffic: client messages, entities (&amp; &lt; &quot; &apos; &#10; &#x41;) and
  '>' inside attribute values, self-closing elements, comments, XML declarations and stray text between
  elements, a setBLOBVector with a few KB of base64 in 72-character lines, and root-tag-prefix traps
  (<a><ab/></a>, <setBLOBVectorX> inside <setBLOBVector>);
- output of real libindi 1.9.9 C++ drivers (Debian's indi-bin), recorded in data/:
  indi_simulator_ccd.out is the stdout of indi_simulator_ccd given getProperties, CONNECT, enableBLOB Also,
  a 32x32 CCD_FRAME and a 0.01 s exposure (snooping getProperties, def/set vectors, a real setBLOBVector,
  a pingRequest); indi_simulator_weather.out is indi_simulator_weather after CONNECT (defLightVector,
  setLightVector). Every element there is preceded by <?xml version='1.0'?> except the pingRequest;
- feeding a stream whole, split in two at every byte position, one byte at a time and in random chunks gives
  the same frames (raw bytes, tag, attributes), and raw is exactly the bytes of the element as sent
  followed by one newline (so that what the server forwards is line-terminated, as the reference's is);
- malformed input raises FramingError, the framer stays failed until reset(), then frames again;
- max_element, stray text and junk_skipped, Frame.text and Frame.child_start_tags.

Expected values never come from the framer: element boundaries come from the pieces the corpus is built
from, or from expat (an independent XML parser) for the captured files; tags and attributes come from
ElementTree.
"""

from __future__ import annotations

import base64
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.parsers import expat

import pytest

from indi.protocol import Framer, FramingError

DATA = Path(__file__).parent / "data"
CAPTURES = ["indi_simulator_ccd.out", "indi_simulator_weather.out"]
XML_DECL = b"<?xml version='1.0'?>\n"


# ------------------------------------------------------------------------------------------ helpers

def element(frame) -> bytes:
    """The element bytes of a frame: its raw bytes, which must end with exactly one newline, without it."""
    assert frame.raw.endswith(b"\n"), frame.raw[-40:]
    return frame.raw[:-1]


def frames_of(chunks, **framer_options) -> list[tuple[bytes, str, dict[str, str]]]:
    """Feed chunks to a new Framer; (element bytes, tag, attrs) of every frame."""
    framer = Framer(**framer_options)
    frames = []
    for chunk in chunks:
        frames += framer.feed(chunk)
    return [(element(f), f.tag, f.attrs) for f in frames]


def one_byte_at_a_time(data: bytes) -> list[bytes]:
    return [data[i:i + 1] for i in range(len(data))]


def random_chunks(data: bytes, seed: int, largest: int = 300) -> list[bytes]:
    rng = random.Random(seed)
    chunks, pos = [], 0
    while pos < len(data):
        size = rng.randint(1, largest)
        chunks.append(data[pos:pos + size])
        pos += size
    return chunks


def expected_frame(raw: bytes) -> tuple[bytes, str, dict[str, str]]:
    """What a frame of this element must hold, according to ElementTree."""
    root = ET.fromstring(raw)
    return raw, root.tag, root.attrib


def expat_spans(stream: bytes) -> list[tuple[int, int]]:
    """Byte spans of the top-level elements of a stream, as expat sees them.

    The stream is wrapped in a root element (XML declarations blanked to spaces, keeping offsets); a
    top-level element starts at its start-tag event and ends where expat's next event starts.
    """
    body = re.sub(rb"<\?xml[^>]*\?>", lambda m: b" " * len(m.group()), stream)
    prefix = b"<root>"
    parser = expat.ParserCreate()
    spans: list[tuple[int, int]] = []
    depth, start, ended = 0, 0, False

    def any_event(*_):
        nonlocal ended
        if ended:
            spans.append((start, parser.CurrentByteIndex - len(prefix)))
            ended = False

    def on_start(*_):
        nonlocal depth, start
        any_event()
        depth += 1
        if depth == 2:
            start = parser.CurrentByteIndex - len(prefix)

    def on_end(*_):
        nonlocal depth, ended
        any_event()
        depth -= 1
        ended = depth == 1

    parser.StartElementHandler = on_start
    parser.EndElementHandler = on_end
    parser.CharacterDataHandler = any_event
    parser.CommentHandler = any_event
    parser.ProcessingInstructionHandler = any_event
    parser.Parse(prefix + body + b"</root>", True)
    return spans


# ------------------------------------------------------------------------------------------ corpus

def libindi_blob_vector(payload: bytes) -> bytes:
    """A setBLOBVector laid out as libindi 1.9.9 writes one: base64 in lines of 72 characters."""
    encoded = base64.b64encode(payload)
    lines = b"\n".join(encoded[i:i + 72] for i in range(0, len(encoded), 72))
    return (b"<setBLOBVector\n  device='CCD Simulator'\n  name='CCD1'\n  state='Ok'\n  timeout='60'\n"
            b"  timestamp='2024-05-01T12:00:00'\n>\n  <oneBLOB\n    name='CCD1'\n"
            b"    size='%d'\n    enclen='%d'\n    format='.fits'>\n%s\n  </oneBLOB>\n</setBLOBVector>"
            % (len(payload), len(encoded), lines))


BLOB_PAYLOAD = bytes(range(256)) * 12          # 3 KB -> 4 KB of base64, 57 lines
ELEMENTS = [
    b"<getProperties version='1.7'/>",
    b'<getProperties version="1.7" device="CCD Simulator" name="CCD1"/>',
    b'<enableBLOB device="CCD Simulator">Also</enableBLOB>',
    b"<newNumberVector device='Telescope Simulator' name='EQUATORIAL_EOD_COORD'>\n"
    b"  <oneNumber name='RA'>5:35:17.3</oneNumber>\n  <oneNumber name='DEC'>-5:23:28</oneNumber>\n"
    b"</newNumberVector>",
    b'<newSwitchVector device="Telescope Simulator" name="CONNECTION"><oneSwitch name="CONNECT">On'
    b'</oneSwitch></newSwitchVector>',
    b'<newTextVector device="Dev" name="T"><oneText name="t">a &lt;b&gt; &amp; "c" \xc3\xa9\xe2\x82\xac'
    b'</oneText></newTextVector>',
    b'<message device="A &amp; B" timestamp="2024-05-01T12:00:00" '
    b'message="x &lt; y &amp;&amp; y > z, &quot;q&quot;&#10;line 2"/>',
    b"<message message='it&apos;s > 3 &#x41;'/>",
    b'<delProperty device="Dev" name="OLD"/>',
    b"<pingRequest uid='SetBLOB/1' />",
    b'<pingReply uid="SetBLOB/1"/>',
    b"<a><ab/><ab>x</ab></a>",
    b"<setBLOBVector device='d' name='n'><setBLOBVectorX>x</setBLOBVectorX></setBLOBVector  >",
    libindi_blob_vector(BLOB_PAYLOAD),
    b"<setTextVector device='Dev' name='T' state='Ok'>\n  <oneText name='t'>\n      &lt;/setTextVector&gt;\n"
    b"  </oneText>\n</setTextVector>",
]
# What may come between elements: whitespace, declarations, comments, stray text (some drivers print
# debugging output on stdout).
FILLERS = [b"\n", b"", b"  \r\n\t", XML_DECL, b"<!-- a comment with <tags> in it -->\n", b"\n", b"",
           b"stray-driver-output\n", b"\n", XML_DECL, b"", b"\n", b"<?indi some-instruction?>", b"\n", b"\n"]


def captured(name: str) -> bytes:
    return (DATA / name).read_bytes()


def captured_head(name: str, elements: int) -> bytes:
    """The first elements of a capture, with what precedes each."""
    data = captured(name)
    return data[:expat_spans(data)[elements - 1][1]]


CORPUS = b"".join(filler + element for filler, element in zip(FILLERS, ELEMENTS, strict=True)) + b"\n"
# Small enough to frame once per split position: the handmade corpus plus the start of real driver output.
SPLIT_CORPUS = CORPUS + captured_head("indi_simulator_weather.out", 6)


# ------------------------------------------------------------------------------------------ tests

def test_corpus_frames_are_the_elements_as_sent():
    assert frames_of([CORPUS]) == [expected_frame(e) for e in ELEMENTS]
    # The oracle used for the captured files agrees with how the corpus was built.
    assert [CORPUS[a:b] for a, b in expat_spans(CORPUS)] == ELEMENTS


def test_every_two_way_split_gives_the_same_frames():
    expected = [expected_frame(SPLIT_CORPUS[a:b]) for a, b in expat_spans(SPLIT_CORPUS)]
    assert frames_of([SPLIT_CORPUS]) == expected
    for cut in range(1, len(SPLIT_CORPUS)):
        got = frames_of([SPLIT_CORPUS[:cut], SPLIT_CORPUS[cut:]])
        assert got == expected, f"split at byte {cut}"


def test_one_byte_at_a_time_gives_the_same_frames():
    assert frames_of(one_byte_at_a_time(SPLIT_CORPUS)) == frames_of([SPLIT_CORPUS])
    assert frames_of(one_byte_at_a_time(CORPUS)) == [expected_frame(e) for e in ELEMENTS]


@pytest.mark.parametrize("name", CAPTURES)
def test_captured_libindi_driver_output(name):
    data = captured(name)
    expected = [expected_frame(data[a:b]) for a, b in expat_spans(data)]
    assert len(expected) >= data.count(XML_DECL) > 20  # each declaration precedes an element
    assert frames_of([data]) == expected
    assert frames_of(one_byte_at_a_time(data)) == expected
    for seed in range(5):
        assert frames_of(random_chunks(data, seed)) == expected
    framer = Framer()
    framer.feed(data)
    assert framer.idle and framer.junk_skipped == 0


def test_captured_output_has_the_element_kinds_we_rely_on():
    tags = {tag for name in CAPTURES for _, tag, _ in frames_of([captured(name)])}
    assert {"getProperties", "defTextVector", "defNumberVector", "defSwitchVector", "defLightVector",
            "defBLOBVector", "setNumberVector", "setSwitchVector", "setTextVector", "setLightVector",
            "setBLOBVector", "message", "pingRequest"} <= tags


def test_attribute_values_are_decoded():
    frames = frames_of([b'<message device="A &amp; B" message="x &lt; y &amp;&amp; y > z, &quot;q&quot;&#10;l2"/>'
                        b"<message message='it&apos;s > 3 &#x41;&#233;'/>"])
    assert frames[0][2] == {"device": "A & B", "message": 'x < y && y > z, "q"\nl2'}
    assert frames[1][2] == {"message": "it's > 3 A\u00e9"}


def test_non_ascii_attribute_values_are_utf8():
    frames = frames_of(["<message device='Caméra №1' message='température 20 °C'/>".encode()])
    assert frames[0][2] == {"device": "Caméra №1", "message": "température 20 °C"}


def test_comments_declarations_and_doctype_are_skipped_without_counting_as_junk():
    stream = (b"<!DOCTYPE INDI>\n<?xml version='1.0'?><!-- <notAnElement/> -->"
              b"<?pi <x/> ?><getProperties version='1.7'/>")
    for chunks in ([stream], one_byte_at_a_time(stream)):
        framer = Framer()
        frames = [f for chunk in chunks for f in framer.feed(chunk)]
        assert [element(f) for f in frames] == [b"<getProperties version='1.7'/>"]
        assert framer.junk_skipped == 0


@pytest.mark.parametrize("junk", [b"driver-debug-output", b"driver debug output: x = 3 > 2"])
def test_stray_text_between_elements_is_skipped_and_counted(junk):
    stream = b"<a/>" + junk + b"<b/>"
    for chunks in ([stream], one_byte_at_a_time(stream), [stream[:9], stream[9:]]):
        framer = Framer()
        frames = [element(f) for chunk in chunks for f in framer.feed(chunk)]
        assert frames == [b"<a/>", b"<b/>"]
        assert framer.junk_skipped == len(junk), f"chunks of {len(chunks[0])} bytes"


def test_junk_sample_shows_the_stray_text():
    framer = Framer()
    framer.feed(b"<a/>oops, not XML<b/>")
    assert framer.junk_sample == b"oops, not XML"


MALFORMED = {
    "double <": b"<<getProperties/>",
    "space after <": b"< a/>",
    "unquoted attribute": b"<a b=c>",
    "end tag at top level": b"</x>",
    "< inside a start tag": b'<a b="1" <getProperties version="1.7"/>',
    "missing =": b'<a b "1"/>',
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.parametrize("how", ["whole", "one byte at a time"])
def test_malformed_input_fails_until_reset(data, how):
    framer = Framer()
    with pytest.raises(FramingError):
        for chunk in ([data] if how == "whole" else one_byte_at_a_time(data)):
            framer.feed(chunk)
    # Stays failed, even for good input...
    for _ in range(2):
        with pytest.raises(FramingError):
            framer.feed(b"<getProperties version='1.7'/>")
    # ...until reset.
    framer.reset()
    assert [element(f) for f in framer.feed(b"<getProperties version='1.7'/>")] == [
        b"<getProperties version='1.7'/>"]


def test_unclosed_element_larger_than_max_element_fails():
    framer = Framer(max_element=1000)
    framer.feed(b"<setBLOBVector device='d' name='n'><oneBLOB name='b'>")
    with pytest.raises(FramingError):
        for _ in range(20):
            framer.feed(b"QUJD" * 25)
    with pytest.raises(FramingError):
        framer.feed(b"</oneBLOB></setBLOBVector>")
    framer.reset()
    assert len(framer.feed(b"<a/>")) == 1


def test_start_tag_larger_than_max_element_fails():
    framer = Framer(max_element=1000)
    with pytest.raises(FramingError):
        framer.feed(b"<message message='")
        for _ in range(20):
            framer.feed(b"x" * 100)


def test_element_of_exactly_max_element_bytes_is_accepted():
    element = b"<a>" + b"x" * 93 + b"</a>"
    assert len(element) == 100
    for chunks in ([element], one_byte_at_a_time(element)):
        assert [raw for raw, _, _ in frames_of(chunks, max_element=100)] == [element]


def test_element_larger_than_max_element_fails_however_it_arrives():
    """The limit must not depend on how the bytes happen to be split by the network.

    Today an over-long element that completes within one feed() is accepted, while the same bytes fed in
    smaller pieces are rejected.
    """
    element = b"<a>" + b"x" * 150 + b"</a>"
    for chunks in ([element], [element[:80], element[80:]], one_byte_at_a_time(element)):
        with pytest.raises(FramingError):
            frames_of(chunks, max_element=100)


@pytest.mark.parametrize("element", [
    b"<a><ab/></a>",
    b"<a><ab>text</ab><abc/></a>",
    b"<setBLOBVector device='d' name='n'>\n<setBLOBVectorX>x</setBLOBVectorX>\n</setBLOBVector>",
    b"<a>x</a \n\t>",
])
def test_a_longer_end_tag_does_not_end_the_element(element):
    stream = element + b"<b/>"
    expected = [element, b"<b/>"]
    for cut in range(1, len(stream)):
        assert [raw for raw, _, _ in frames_of([stream[:cut], stream[cut:]])] == expected


def test_idle_only_between_elements():
    framer = Framer()
    assert framer.idle
    framer.feed(b"<setTextVector device='d' name='n'><oneText name='t'>x</oneText>")
    assert not framer.idle and framer.buffered > 0
    framer.feed(b"</setTextVector>\n")
    assert framer.idle


# ------------------------------------------------------------------------------------------ Frame

@pytest.mark.parametrize(("raw", "text"), [
    (b'<enableBLOB device="CCD Simulator">Also</enableBLOB>', "Also"),
    (b"<enableBLOB device='CCD Simulator' name='CCD1'>\n    Only\n</enableBLOB>", "Only"),
    (b"<enableBLOB>&#78;ever</enableBLOB >", "Never"),
    (b"<enableBLOB device='d'/>", ""),
])
def test_frame_text(raw, text):
    [frame] = Framer().feed(raw)
    assert frame.text == text


def test_frame_device_and_name():
    [frame] = Framer().feed("<setNumberVector device='Caméra &amp; co' name='CCD_TEMP'/>".encode())
    assert (frame.device, frame.name) == ("Caméra & co", "CCD_TEMP")
    [frame] = Framer().feed(b"<message message='hi'/>")
    assert (frame.device, frame.name) == ("", "")


def oneblob_attributes(raw: bytes) -> list[dict[str, str]]:
    return [child.attrib for child in ET.fromstring(raw) if child.tag == "oneBLOB"]


def test_child_start_tags_of_a_captured_blob():
    data = captured("indi_simulator_ccd.out")
    blobs = [f for f in Framer().feed(data) if f.tag == "setBLOBVector"]
    assert len(blobs) == 1
    assert blobs[0].child_start_tags(b"oneBLOB") == oneblob_attributes(blobs[0].raw)
    assert blobs[0].child_start_tags(b"oneBLOB")[0]["format"] == ".fits"


def test_child_start_tags_skip_content_and_longer_names():
    raw = (b"<setBLOBVector device='d' name='n'>\n"
           b"  <oneBLOBX name='decoy'>x</oneBLOBX>\n"
           b"  <oneBLOB name='a' size='3' format='.txt'>YWJj</oneBLOB>\n"
           b"  <oneBLOB name='empty' size='0' format='.z'/>\n"
           b"  <oneBLOB\n    name='b&amp;c'\n    size='6'\n    enclen='8'\n    format='.fits'>\n"
           b"ZGVmZ2hp\n  </oneBLOB>\n"
           b"</setBLOBVector>")
    [frame] = Framer().feed(raw)
    assert frame.child_start_tags(b"oneBLOB") == oneblob_attributes(raw)
    assert [a["name"] for a in frame.child_start_tags(b"oneBLOB")] == ["a", "empty", "b&c"]
    assert frame.child_start_tags(b"oneText") == []
