"""BlobStream: setBLOBVector content streamed and decoded as it arrives, everything else framed.

Each stream is checked against feeding it whole: the same events whatever the split (at every
byte position of a small stream, in random chunks for a multi-megabyte BLOB), decoded content
identical to the source bytes, and malformed input failing with a clear error.
"""

from __future__ import annotations

import base64
import hashlib
import random
import time

import pytest

from indi.protocol import (
    Base64Decoder,
    BlobData,
    BlobEnd,
    BLOBMember,
    BlobStart,
    BlobStream,
    BlobStreamError,
    BlobVectorEnd,
    BlobVectorStart,
    Frame,
    FramingError,
    SetVector,
    parse,
)


def blob_vector(blobs: list[tuple[str, bytes, str]], device: str = "CCD Simulator", name: str = "CCD1",
                line: int = 76, extra: str = "") -> bytes:
    """A setBLOBVector as libindi writes it: base64 in lines, one oneBLOB per (name, data, format)."""
    parts = [f'<setBLOBVector device="{device}" name="{name}" state="Ok" timeout="60" '
             f'timestamp="2026-01-01T00:00:00"{extra}>\n'.encode()]
    for blob_name, data, fmt in blobs:
        encoded = base64.b64encode(data)
        lines = b"\n".join(encoded[i:i + line] for i in range(0, len(encoded), line)) if line else encoded
        parts.append(f'    <oneBLOB name="{blob_name}" size="{len(data)}" enclen="{len(encoded)}" '
                     f'format="{fmt}">\n'.encode() + lines + b"\n    </oneBLOB>\n")
    parts.append(b"</setBLOBVector>\n")
    return b"".join(parts)


def normalise(events: list) -> list:
    """Events with consecutive BlobData merged and Frames reduced to their bytes, for comparison."""
    out: list = []
    for event in events:
        if isinstance(event, BlobData):
            if out and isinstance(out[-1], bytearray):
                out[-1] += event.data
            else:
                out.append(bytearray(event.data))
        elif isinstance(event, Frame):
            out.append(("frame", event.tag, event.raw))
        else:
            out.append(event)
    return [bytes(e) if isinstance(e, bytearray) else e for e in out]


def feed_all(stream: BlobStream, data: bytes, sizes) -> list:
    events: list = []
    pos = 0
    for size in sizes:
        if pos >= len(data):
            break
        events += stream.feed(data[pos:pos + size])
        pos += size
    if pos < len(data):
        events += stream.feed(data[pos:])
    return events


IMAGE = bytes(range(256)) * 3 + b"\x00\xff" * 20 + b"end"
SMALL = (b'<message device="CCD Simulator" message="exposure done"/>\n'
         + blob_vector([("CCD1", IMAGE, ".fits"), ("empty", b"", ".raw"), ("two", b"ab", ".bin")])
         + b'<defTextVector device="CCD Simulator" name="T" state="Idle" perm="rw">'
           b'<defText name="x">setBLOBVector &lt;oneBLOB&gt;</defText></defTextVector>\n'
         + blob_vector([("CCD2", b"guide image", ".fits")], name="CCD2", line=5))


def test_small_stream_events_whole():
    events = normalise(BlobStream().feed(SMALL))
    assert [type(e).__name__ if not isinstance(e, (tuple, bytes)) else (e[0] if isinstance(e, tuple) else "data")
            for e in events] == [
        "frame", "BlobVectorStart", "BlobStart", "data", "BlobEnd", "BlobStart", "BlobEnd", "BlobStart", "data",
        "BlobEnd", "BlobVectorEnd", "frame", "BlobVectorStart", "BlobStart", "data", "BlobEnd", "BlobVectorEnd"]
    start = events[1]
    assert isinstance(start, BlobVectorStart)
    assert (start.device, start.name, start.attrs["state"], start.attrs["timeout"]) == ("CCD Simulator", "CCD1",
                                                                                      "Ok", "60")
    blob = events[2]
    assert isinstance(blob, BlobStart)
    assert (blob.name, blob.format, blob.size) == ("CCD1", ".fits", len(IMAGE))
    assert events[3] == IMAGE
    assert events[4] == BlobEnd("CCD1", len(IMAGE))
    assert events[6] == BlobEnd("empty", 0)
    assert events[8] == b"ab"
    assert events[10] == BlobVectorEnd("CCD Simulator", "CCD1")
    assert events[11][1] == "defTextVector"
    assert events[14] == b"guide image"


def test_small_stream_split_at_every_byte_position():
    whole = normalise(BlobStream().feed(SMALL))
    for cut in range(len(SMALL) + 1):
        stream = BlobStream()
        events = stream.feed(SMALL[:cut]) + stream.feed(SMALL[cut:])
        assert normalise(events) == whole, f"split at {cut}: {SMALL[max(0, cut - 20):cut + 20]!r}"
        assert stream.idle
        stream.close()


def test_small_stream_split_at_every_pair_of_positions_and_byte_by_byte():
    whole = normalise(BlobStream().feed(SMALL))
    stream = BlobStream()
    assert normalise(feed_all(stream, SMALL, [1] * len(SMALL))) == whole
    rng = random.Random(1)
    for _ in range(300):
        a, b = sorted(rng.randrange(len(SMALL) + 1) for _ in range(2))
        stream = BlobStream()
        events = stream.feed(SMALL[:a]) + stream.feed(SMALL[a:b]) + stream.feed(SMALL[b:])
        assert normalise(events) == whole, (a, b)


def test_multi_megabyte_blob_in_random_chunks_decodes_identically():
    rng = random.Random(42)
    image = rng.randbytes(5 * 1024 * 1024 + 7)
    data = (b'<defBLOBVector device="CCD Simulator" name="CCD1" state="Idle" perm="ro">'
            b'<defBLOB name="CCD1"/></defBLOBVector>\n'
            + blob_vector([("CCD1", image, ".fits")]) + b'<message message="after"/>\n')
    for chunking in ("random", "small"):
        stream = BlobStream()
        sizes = (rng.randint(1, 200_000) for _ in iter(int, 1)) if chunking == "random" else \
            (rng.randint(1, 700) for _ in iter(int, 1))
        digest = hashlib.sha256()
        decoded = 0
        largest = 0
        frames = []
        for event in feed_all(stream, data, sizes):
            if isinstance(event, BlobData):
                digest.update(event.data)
                decoded += len(event.data)
                largest = max(largest, len(event.data))
            elif isinstance(event, Frame):
                frames.append(event.tag)
            elif isinstance(event, BlobEnd):
                assert event.length == len(image)
        assert decoded == len(image) and digest.digest() == hashlib.sha256(image).digest(), chunking
        assert frames == ["defBLOBVector", "message"]
        assert largest < 200_000, "decoded output comes chunk by chunk, never the whole BLOB at once"
        assert stream.framer.buffered < 1024
        stream.close()


def test_whitespace_anywhere_and_quanta_split_across_feeds():
    image = bytes(range(200))
    encoded = base64.b64encode(image)
    messy = b"".join(bytes([c]) + (b" \r\n\t"[i % 4:i % 4 + 1] if i % 3 == 0 else b"") for i, c in enumerate(encoded))
    data = (b'<setBLOBVector device="D" name="B">\n<oneBLOB name="b" size="200" format=".bin">\r\n  '
            + messy + b'  \n</oneBLOB  >\n</setBLOBVector\n>')
    whole = normalise(BlobStream().feed(data))
    assert whole[2] == image
    for cut in range(len(data) + 1):
        stream = BlobStream()
        assert normalise(stream.feed(data[:cut]) + stream.feed(data[cut:])) == whole


def test_decoder_alone():
    image = b"The quick brown fox jumps over the lazy dog!"
    encoded = base64.b64encode(image) + b"\n"
    for cut in range(len(encoded)):
        decoder = Base64Decoder()
        out = decoder.feed(encoded[:cut]) + decoder.feed(encoded[cut:])
        decoder.finish()
        assert out == image and decoder.length == len(image)


def test_a_vector_not_chosen_for_streaming_comes_out_whole():
    wanted = []

    def choose(attrs):
        wanted.append(attrs["name"])
        return attrs["name"] != "CCD2"

    for cut in (0, 1, 10, 60, 200, len(SMALL) - 5):
        stream = BlobStream(stream=choose)
        events = stream.feed(SMALL[:cut]) + stream.feed(SMALL[cut:])
        frames = [e for e in events if isinstance(e, Frame)]
        assert [f.tag for f in frames] == ["message", "defTextVector", "setBLOBVector"]
        element = parse(frames[-1])
        assert isinstance(element, SetVector) and element.name == "CCD2"
        assert isinstance(element.members[0], BLOBMember) and element.members[0].value == b"guide image"
        assert sum(isinstance(e, BlobVectorStart) for e in events) == 1
    assert set(wanted) == {"CCD1", "CCD2"}


def test_empty_vector_comments_and_lookalikes_pass_through():
    data = (b'<setBLOBVector device="D" name="B" state="Ok"/>\n'
            b'<!-- <setBLOBVector device="D" name="X"> -->\n'
            b'<setBLOBVectors device="D" name="B"></setBLOBVectors>\n'
            b'<setBLOBVector device="D" name="B" message="a &gt; b > c">\n<oneBLOB name="b" size="1" format="">'
            b'QQ==</oneBLOB></setBLOBVector>')
    for cut in range(len(data) + 1):
        stream = BlobStream()
        events = normalise(stream.feed(data[:cut]) + stream.feed(data[cut:]))
        assert [e[1] if isinstance(e, tuple) else type(e).__name__ for e in events] == [
            "setBLOBVector", "setBLOBVectors", "BlobVectorStart", "BlobStart", "bytes", "BlobEnd", "BlobVectorEnd"]
        assert events[2].attrs["message"] == "a > b > c"
        assert events[4] == b"A"


HEAD = b'<setBLOBVector device="D" name="B">\n<oneBLOB name="b" size="3" format=".x">'


@pytest.mark.parametrize("data, close, error", [
    (HEAD + b"QU!D</oneBLOB></setBLOBVector>", False, "bad base64"),
    (HEAD + b"QQ==QUJD</oneBLOB></setBLOBVector>", False, "padding"),
    (HEAD + b"QQ==\nQUJD</oneBLOB></setBLOBVector>", False, "padding"),
    (HEAD + b"QUJDQ</oneBLOB></setBLOBVector>", False, "incomplete quantum (1 of 4"),
    (HEAD + b"QUJD</setBLOBVector>", False, "missing </oneBLOB>"),
    (HEAD + b"QUJD</oneBLOB x></setBLOBVector>", False, "malformed end tag </oneBLOB"),
    (HEAD + b"QUJD</oneBLOB><oneText name='t'>x</oneText></setBLOBVector>", False,
     "expected <oneBLOB> or </setBLOBVector>"),
    (HEAD + b"QUJD</oneBLOB>junk</setBLOBVector>", False, "expected <oneBLOB> or </setBLOBVector>"),
    (HEAD + b"QUJD", True, "missing </oneBLOB>"),
    (HEAD + b"QUJD</oneBLOB>\n", True, "missing </setBLOBVector>"),
    (b'<setBLOBVector device="D" name="B"><oneBLOB name="b" size="3" format=".x" x=">', True, "start tag"),
    (b'<setBLOBVector device="D" name="B" oops>', False, "malformed start tag"),
])
def test_malformed_input_gives_a_clear_error(data, close, error):
    before = b'<message message="first"/>\n'
    for cut in sorted({1, len(before) + 5, len(before) + len(data) - 3, len(before) + len(data)}):
        stream = BlobStream()
        whole = before + data
        events = []
        with pytest.raises(BlobStreamError) as info:
            events += stream.feed(whole[:cut])
            events += stream.feed(whole[cut:])
            if close:
                stream.close()
        assert error in str(info.value), str(info.value)
        assert isinstance(info.value, FramingError)
        got = events + info.value.events
        assert any(isinstance(e, Frame) and e.tag == "message" for e in got), "events before the error are kept"
        with pytest.raises(BlobStreamError):
            stream.feed(b"<message/>")   # failed until reset
        stream.reset()
        assert [f.tag for f in stream.feed(b'<message message="again"/>')] == ["message"]


def test_oversized_start_tag_is_refused():
    stream = BlobStream(max_tag=1000)
    with pytest.raises(BlobStreamError, match="longer than 1000"):
        stream.feed(b'<setBLOBVector device="' + b"x" * 2000)


def test_cost_is_linear_in_the_bytes_however_split():
    """Four times the data in the same small chunks costs about four times as long (not sixteen)."""
    def seconds(size: int) -> float:
        data = blob_vector([("b", random.Random(size).randbytes(size), ".bin")])
        best = float("inf")
        for _ in range(3):
            stream = BlobStream()
            start = time.perf_counter()
            for pos in range(0, len(data), 64):
                stream.feed(data[pos:pos + 64])
            best = min(best, time.perf_counter() - start)
        return best

    small, large = seconds(64 * 1024), seconds(256 * 1024)
    assert large < small * 10, f"64 KiB: {small:.3f} s, 256 KiB: {large:.3f} s"
