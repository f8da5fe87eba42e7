"""Property tests of the stream parsers on arbitrary input: indi.protocol.Framer and BlobStream.

Covered (hypothesis, on random bytes and on random sequences of INDI-like tokens: tags, quotes,
entities, comments, processing instructions, base64, end tags of other elements...):
- feeding ANY bytes, in any chunking, either returns frames or raises FramingError: never another
  exception, never a hang (each example has a deadline);
- the same bytes cut into different chunks (whole, random cuts, one byte at a time) give the same
  frames (raw bytes, tag, attributes), the same failure or success, and the same count of skipped
  stray text;
- a failed framer stays failed (every later feed raises FramingError) until reset(), and then frames
  again;
- memory is bounded: after every feed that did not fail the framer holds at most max_element bytes
  (plus the three bytes of a possible tag start); with a small max_element, anything longer fails;
- every frame is a contiguous piece of the input (its raw bytes minus the final newline), frames
  come in input order without overlapping, and each starts with its own tag;
- parse() of any frame returns an element or raises ProtocolError, nothing else;
- BlobStream gives the same events however the input is cut (BLOB content compared as the
  concatenation of its BlobData), fails the same way, and when it streams nothing its frames are
  exactly the Framer's.

INDI_FUZZ_EXAMPLES (default 200) sets the number of examples per test; fuzz/README.md has the
coverage-guided fuzzer (atheris) for the same properties.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import load_fuzz_target
from indi.protocol import (
    BlobData,
    BlobEnd,
    BlobStart,
    BlobStream,
    BlobStreamError,
    BlobVectorEnd,
    BlobVectorStart,
    Frame,
    Framer,
    FramingError,
    ProtocolError,
    parse,
)

EXAMPLES = int(os.environ.get("INDI_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=2000,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Pieces of INDI traffic, broken and recombined: hypothesis reaches far more of the parsers' states
# from these than from uniformly random bytes.
TOKENS = [
    b"<", b">", b"/>", b"</", b"=", b'"', b"'", b" ", b"\n", b"\r\n", b"\t", b"x", b"&", b"&amp;", b"&lt;",
    b"&#10;", b"&#x41;", b"&#99999999;", b"&bogus;", b"<!--", b"-->", b"<?xml version='1.0'?>", b"<?", b"?>",
    b"<!DOCTYPE x>", b"<![CDATA[", b"]]>", b"setBLOBVector", b"oneBLOB", b"defNumberVector", b"oneNumber",
    b"newTextVector", b"getProperties", b"enableBLOB", b"a", b"ab", b"device='d'", b'name="n"',
    b" size='3' format='.fits'", b"QUJD", b"QU=", b"=", b"AAAA\n", b"<setBLOBVector device='d' name='n'>",
    b"<oneBLOB name='b' size='3' format='.x'>", b"</oneBLOB>", b"</setBLOBVector>",
    b"<getProperties version='1.7'/>", b"<defNumberVector device='d' name='n'><defNumber name='x' format='%g'>",
    b"</defNumber></defNumberVector>", b"<oneNumber name='x'>", b"</oneNumber>", b"1:30:00", b"0x1p99999",
    b"<enableBLOB>Also</enableBLOB>", b"\x00", b"\xff", b"\xc3\xa9", b"\xe2\x82",
]
INDI_LIKE = st.lists(st.sampled_from(TOKENS) | st.binary(max_size=6), max_size=60).map(b"".join)
ANY_BYTES = st.binary(max_size=600) | INDI_LIKE


@st.composite
def chunked(draw, data_strategy=ANY_BYTES):
    """(data, chunks): the data and one way of cutting it."""
    data = draw(data_strategy)
    cuts = sorted(draw(st.sets(st.integers(0, len(data)), max_size=12)))
    edges = [0, *cuts, len(data)]
    return data, [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


# The framer's driver and its invariants are the fuzz target's own, so that both check the same things.
FUZZ_TARGET = load_fuzz_target("fuzz_framer")
frame_key, run_framer = FUZZ_TARGET.frame_key, FUZZ_TARGET.run_framer


def check_frames_are_pieces_of(data: bytes, frames: list[tuple]) -> None:
    pos = 0
    for raw, tag, _attrs, body_start in frames:
        assert raw.endswith(b"\n")
        element = raw[:-1]
        found = data.find(element, pos)
        assert found >= 0, f"frame {raw[:60]!r} is not a piece of the input after offset {pos}"
        assert raw.startswith(b"<" + tag.encode())
        assert 0 < body_start <= len(raw)
        pos = found + len(element)


def check_parse(raw: bytes) -> None:
    try:
        parse(raw)
    except ProtocolError:
        pass


@FUZZ
@given(chunked())
def test_any_bytes_in_any_chunking_give_the_same_frames(case):
    data, chunks = case
    whole = run_framer([data])
    cut = run_framer(chunks)
    assert cut[:2] == whole[:2], f"{data!r} cut as {chunks!r}"
    assert cut[2] == whole[2], f"stray text counted differently: {data!r} cut as {chunks!r}"
    check_frames_are_pieces_of(data, whole[0])
    for raw, *_ in whole[0]:
        check_parse(raw)


@settings(FUZZ, max_examples=max(10, EXAMPLES // 4))
@given(st.binary(max_size=200) | INDI_LIKE.filter(lambda d: len(d) <= 400))
def test_one_byte_at_a_time_gives_the_same_frames(data):
    assert run_framer([data[i:i + 1] for i in range(len(data))])[:2] == run_framer([data])[:2]


@FUZZ
@given(chunked(), st.integers(1, 80))
def test_memory_is_bounded_by_max_element(case, max_element):
    data, chunks = case
    frames, failed, _ = run_framer(chunks, max_element)
    for raw, *_ in frames:
        assert len(raw) - 1 <= max_element
    # The same frames and outcome as cut any other way.
    assert (frames, failed) == run_framer([data], max_element)[:2]


@FUZZ
@given(chunked())
def test_valid_elements_after_garbage_and_reset(case):
    """Whatever came before, reset() makes the framer good as new."""
    _, chunks = case
    framer = Framer()
    for chunk in chunks:
        try:
            framer.feed(chunk)
        except FramingError:
            break
    framer.reset()
    assert framer.idle and framer.buffered == 0
    frames = framer.feed(b"<message device='d' message='&lt;ok&gt;'/>\n<enableBLOB>Also</enableBLOB>")
    assert [(f.tag, f.attrs) for f in frames] == [("message", {"device": "d", "message": "<ok>"}),
                                                  ("enableBLOB", {})]


# ------------------------------------------------------------------------------------------ BlobStream

def run_blobstream(chunks: list[bytes], stream=None) -> tuple[list[tuple], bool]:
    """Feed the chunks; events normalised so that BLOB content is compared whole."""
    bs = BlobStream(stream=stream)
    out: list[tuple] = []
    failed = False

    def add(events):
        for e in events:
            if isinstance(e, BlobData):
                if out and out[-1][0] == "data":
                    out[-1] = ("data", out[-1][1] + e.data)
                else:
                    out.append(("data", e.data))
            elif isinstance(e, Frame):
                out.append(("frame", *frame_key(e)))
            elif isinstance(e, BlobVectorStart | BlobStart):
                out.append((type(e).__name__, e.attrs))
            elif isinstance(e, BlobEnd | BlobVectorEnd):
                out.append((type(e).__name__, repr(e)))
            else:
                raise AssertionError(f"unknown event {e!r}")

    for chunk in chunks:
        try:
            add(bs.feed(chunk))
        except BlobStreamError as exc:
            add(exc.events)
            failed = True
            break
    if not failed:
        try:
            bs.close()
        except BlobStreamError:
            failed = True
    return out, failed


def without_data(events: list[tuple]) -> list[tuple]:
    return [e for e in events if e[0] != "data"]


@FUZZ
@given(chunked())
def test_blobstream_gives_the_same_events_in_any_chunking(case):
    data, chunks = case
    whole, whole_failed = run_blobstream([data])
    cut, cut_failed = run_blobstream(chunks)
    assert cut_failed == whole_failed, f"{data!r} cut as {chunks!r}"
    if whole_failed:
        # Content decoded before an error depends on where the input was cut; the rest does not.
        assert without_data(cut) == without_data(whole), f"{data!r} cut as {chunks!r}"
    else:
        assert cut == whole, f"{data!r} cut as {chunks!r}"
    for event in whole:
        if event[0] == "frame":
            check_parse(event[1])


@FUZZ
@given(chunked())
def test_blobstream_streaming_nothing_is_the_framer(case):
    data, chunks = case
    events, failed = run_blobstream(chunks, stream=lambda attrs: False)
    frames, framer_failed, _ = run_framer([data])
    assert [e[1:] for e in events] == frames
    # The Framer does not fail on a stream that merely ends early; BlobStream.close() does.
    assert failed or not framer_failed
