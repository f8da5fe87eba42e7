"""Framing of elements larger than the framer's fast paths: BLOBs of hundreds of kilobytes.

The framer keeps such an element as the pieces it arrived in and joins them once (one copy) when
its end tag has come, which may be split across pieces anywhere; whatever followed the element in
the same read must still be framed, and a malformed tail must not spoil the element completed
before it. Also: the end tag is found however long the body without markup, max_element holds,
and the start-tag cache never mixes up elements or shares their attributes.
"""

from __future__ import annotations

import base64
import random

import pytest

from indi.protocol import Framer, FramingError


def blob_element(size: int, seed: int = 1, name: str = "CCD1") -> bytes:
    payload = base64.b64encode(random.Random(seed).randbytes(size))
    lines = b"\n".join(payload[i:i + 72] for i in range(0, len(payload), 72))
    return (f"<setBLOBVector device='CCD Simulator' name='{name}' state='Ok'>\n"
            f"  <oneBLOB name='CCD1' size='{size}' format='.fits' enclen='{len(payload)}'>\n").encode() \
        + lines + b"\n  </oneBLOB>\n</setBLOBVector>"


SMALL = b"<setNumberVector device='CCD Simulator' name='T'><oneNumber name='T'>1</oneNumber></setNumberVector>"


def feed_all(chunks: list[bytes]) -> list[tuple[bytes, str, dict[str, str]]]:
    framer = Framer()
    frames = []
    for chunk in chunks:
        frames += framer.feed(chunk)
    assert framer.idle
    return [(bytes(f.raw), f.tag, f.attrs) for f in frames]


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("chunk", [1 << 20, 65536, 100_000, 4096, 7777])
@pytest.mark.parametrize("newline", [True, False])
def test_large_elements_then_small_ones_however_split(chunk, newline):
    big1, big2 = blob_element(300_000, 1), blob_element(200_000, 2, "CCD2")
    sep = b"\n" if newline else b""
    stream = big1 + sep + SMALL + sep + big2 + sep + SMALL + b"\n"
    got = feed_all(split(stream, chunk))
    assert [raw for raw, _, _ in got] == [big1 + b"\n", SMALL + b"\n", big2 + b"\n", SMALL + b"\n"]
    assert [tag for _, tag, _ in got] == ["setBLOBVector", "setNumberVector", "setBLOBVector", "setNumberVector"]
    assert got[2][2] == {"device": "CCD Simulator", "name": "CCD2", "state": "Ok"}


def test_the_end_of_a_large_element_is_found_at_every_split_near_it():
    big = blob_element(150_000)
    stream = big + b"\n" + SMALL + b"\n"
    for cut in range(len(big) - 40, len(big) + 3):
        got = feed_all([stream[:70_000], stream[70_000:cut], stream[cut:]])
        assert [raw for raw, _, _ in got] == [big + b"\n", SMALL + b"\n"], cut


def test_a_large_element_before_malformed_input_is_still_delivered_whole():
    big = blob_element(200_000)
    framer = Framer()
    framer.feed(big[:100_000])
    with pytest.raises(FramingError) as failure:
        framer.feed(big[100_000:] + b"\n" + SMALL + b"\n</oops>")
    assert [bytes(f.raw) for f in failure.value.frames] == [big + b"\n", SMALL + b"\n"]


def test_frames_do_not_share_or_change_what_they_hold():
    big = blob_element(100_000)
    framer = Framer()
    frames = framer.feed(big[:80_000]) + framer.feed(big[80_000:] + b"\n" + big + b"\n")
    assert len(frames) == 2
    assert frames[0].raw == frames[1].raw == big + b"\n"
    assert frames[0].raw is not frames[1].raw
    frames[0].attrs["name"] = "changed"  # each frame owns its attributes
    assert frames[1].attrs["name"] == "CCD1"
    assert framer.feed(SMALL)[0].attrs == {"device": "CCD Simulator", "name": "T"}


def test_a_repeated_start_tag_gives_the_same_attributes_as_a_new_one():
    tags = [b"<message device='a' message='x &amp; y'/>", b"<message device='a' message='x &amp; y'/>",
            b"<message  device='a' message='x &amp; y'/>", b"<message device='a' message='x &gt; y'/>"]
    got = feed_all([b"\n".join(tags) + b"\n"])
    assert [attrs["message"] for _, _, attrs in got] == ["x & y", "x & y", "x & y", "x > y"]


def test_a_long_body_full_of_markup_is_framed():
    """Many '<' that are not the end tag: the search falls back to bytes.find and still ends right."""
    body = b"".join(b"<oneSwitch name='s%d'>Off</oneSwitch>\n" % i for i in range(5000))
    element = b"<defSwitchVector device='d' name='many'>\n" + body + b"</defSwitchVector>"
    for chunk in (len(element) + 1, 50_000, 4096):
        assert [raw for raw, _, _ in feed_all(split(element + b"\n", chunk))] == [element + b"\n"]


@pytest.mark.parametrize("end_tag", [b"</setBLOBVector>", b"</setBLOBVector \n\t >"])
def test_an_end_tag_split_anywhere_after_a_large_body_one_byte_at_a_time(end_tag):
    big = blob_element(120_000).removesuffix(b"</setBLOBVector>")
    decoy = b"<setBLOBVectorX>x</setBLOBVectorX>\n"  # a longer name: not the end
    element = big + decoy + end_tag
    stream = element + b"\n" + SMALL + b"\n"
    head = len(big) - 30
    for cut in range(head, len(element) + 2, 3):
        chunks = [stream[:100_000], stream[100_000:head]] + [stream[i:i + 1] for i in range(head, cut)] + [stream[cut:]]
        assert [raw for raw, _, _ in feed_all(chunks)] == [element + b"\n", SMALL + b"\n"], cut


def test_a_large_element_fed_in_small_pieces_is_not_held_piece_by_piece():
    framer = Framer()
    big = blob_element(200_000)
    framer.feed(big[:70_000])
    for i in range(70_000, len(big) - 100, 10):
        framer.feed(big[i:i + 10])
    assert len(framer._pieces) < 10  # gathered into few pieces, not thousands of tiny objects
    assert framer.buffered > 190_000 and not framer.idle


def test_a_large_element_over_max_element_fails_however_it_arrives():
    element = blob_element(100_000)
    for chunks in ([element], split(element, 30_000), split(element, 70_000)):
        framer = Framer(max_element=len(element) - 1)
        with pytest.raises(FramingError):
            for chunk in chunks:
                framer.feed(chunk)
        framer = Framer(max_element=len(element))
        got = []
        for chunk in chunks:
            got += framer.feed(chunk)
        assert [f.raw for f in got] == [element + b"\n"]
