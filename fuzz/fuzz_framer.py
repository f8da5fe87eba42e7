#!/usr/bin/env python3
"""Coverage-guided fuzz target (atheris/libFuzzer) for the INDI stream parser.

Each input is a byte stream as a peer could send it. It is fed to indi.protocol's Framer whole and
cut into chunks (the cut points come from the input's first bytes), and to BlobStream the same
two ways; every frame is parsed with parse(). The target fails (a crash libFuzzer saves) when:

- anything raises other than FramingError/BlobStreamError (framing) or ProtocolError (parse);
- the chunked feed gives other frames, or another outcome, than the whole feed;
- a framer holds more than max_element bytes after a feed that did not fail;
- a frame is not a piece of the input, or a failed framer accepts more input before reset().

libFuzzer's -timeout catches hangs, -rss_limit_mb unbounded growth. See fuzz/README.md:

    .venv/bin/python fuzz/fuzz_framer.py -max_total_time=600 fuzz/corpus fuzz/seeds
    .venv/bin/python fuzz/fuzz_framer.py fuzz/crashes/crash-<sha1>      # reproduce one input
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

try:
    import atheris
except ImportError:  # the checks still run without it (tests/protocol/test_fuzz_regressions.py)
    atheris = None

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

with atheris.instrument_imports() if atheris is not None else nullcontext():
    from indi.protocol import (
        BlobData,
        BlobStream,
        BlobStreamError,
        Frame,
        Framer,
        FramingError,
        ProtocolError,
        parse,
    )

MAX_ELEMENT = 4096


def frame_key(frame: Frame) -> tuple:
    return (frame.raw, frame.tag, tuple(sorted(frame.attrs.items())), frame.body_start)


def run_framer(chunks: list[bytes], max_element: int | None = None) -> tuple[list[tuple], bool, int]:
    """Feed the chunks to one Framer: (frames, failed, junk_skipped). Checks its invariants on the way:
    it holds at most max_element bytes after a feed that did not fail, stays failed (even for no
    input) until reset(), and frames again after it. tests/protocol/test_fuzz_framer.py uses it too."""
    framer = Framer() if max_element is None else Framer(max_element)
    limit = (1 << 62) if max_element is None else max_element
    frames: list[Frame] = []
    failed = False
    for chunk in chunks:
        if failed:
            try:
                framer.feed(chunk)
            except FramingError:
                continue
            raise AssertionError("a failed framer accepted more input before reset()")
        try:
            frames += framer.feed(chunk)
        except FramingError as exc:
            frames += exc.frames
            failed = True
            continue
        if framer.buffered > limit + 4:
            raise AssertionError(f"framer holds {framer.buffered} bytes, max_element is {max_element}")
    if failed:
        try:
            framer.feed(b"")
        except FramingError:
            pass
        else:
            raise AssertionError("a failed framer accepted more input before reset()")
        framer.reset()
        if limit >= 32 and framer.feed(b"<getProperties version='1.7'/>\n")[0].tag != "getProperties":
            raise AssertionError("the framer does not frame after reset()")
    return [frame_key(f) for f in frames], failed, framer.junk_skipped


def run_blobstream(chunks: list[bytes]) -> tuple[list[tuple], bool]:
    bs = BlobStream(Framer(MAX_ELEMENT), max_tag=MAX_ELEMENT)
    out: list[tuple] = []
    data = bytearray()

    def add(events: list) -> None:
        for e in events:
            if isinstance(e, BlobData):
                data.extend(e.data)
            elif isinstance(e, Frame):
                out.append(("frame", *frame_key(e)))
            else:
                out.append((type(e).__name__, repr(e)))

    for chunk in chunks:
        try:
            add(bs.feed(chunk))
        except BlobStreamError as exc:
            add(exc.events)
            return out, True
    try:
        bs.close()
    except BlobStreamError:
        return out, True
    out.append(("data", bytes(data)))
    return out, False


def split(data: bytes) -> tuple[bytes, list[bytes]]:
    """The first byte says how many cut points follow (two bytes each); the rest is the stream."""
    if not data:
        return b"", []
    n = min(data[0] % 9, (len(data) - 1) // 2)
    header, stream = data[1:1 + 2 * n], data[1 + 2 * n:]
    cuts = sorted({int.from_bytes(header[i:i + 2], "little") % (len(stream) + 1) for i in range(0, 2 * n, 2)})
    edges = [0, *cuts, len(stream)]
    return stream, [stream[a:b] for a, b in zip(edges, edges[1:], strict=False)]


def test_one_input(data: bytes) -> None:
    stream, chunks = split(data)
    whole = run_framer([stream], MAX_ELEMENT)
    cut = run_framer(chunks, MAX_ELEMENT)
    if cut != whole:
        raise AssertionError(f"chunking changed the result: whole {whole!r}\n cut {chunks!r}\n gave {cut!r}")
    pos = 0
    for raw, tag, *_ in whole[0]:
        found = stream.find(raw[:-1], pos)
        if found < 0 or not raw.startswith(b"<" + tag.encode()):
            raise AssertionError(f"frame {raw[:80]!r} is not a piece of the input")
        pos = found + len(raw) - 1
        try:
            parse(raw)
        except ProtocolError:
            pass
    b_whole = run_blobstream([stream])
    b_cut = run_blobstream(chunks)
    if b_whole != b_cut:
        raise AssertionError(f"BlobStream: chunking changed the result: {b_whole!r}\n cut {chunks!r}\n gave {b_cut!r}")


def main() -> None:
    if atheris is None:
        sys.exit("fuzz_framer: atheris is not installed (.venv/bin/pip install atheris)")
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
