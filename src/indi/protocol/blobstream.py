"""Incremental reception of BLOBs whose content must never be held whole: bytes in, events out.

A ``setBLOBVector`` carrying a 50 MB image is 67 MB of base64 text. A plain Framer buffers the
whole element before it can be parsed; a client that only wants the image on disk should need a
few hundred kilobytes instead. ``BlobStream`` sits in front of a Framer: it watches the stream for
a ``<setBLOBVector`` at the top level and, for the vectors its caller chooses to stream, turns the
element into events as the bytes arrive:

    BlobVectorStart(attrs)      the vector's attributes (device, name, state, timestamp, message...)
    BlobStart(attrs)            one ``oneBLOB``'s attributes (name, size, format, enclen)
    BlobData(data)              decoded content, as much as the bytes fed so far complete
    BlobEnd(name, length)       the end of that ``oneBLOB`` (length: decoded bytes)
    BlobVectorEnd(device, name) the end of the vector

Everything else (and every vector the caller chooses not to stream) goes through the Framer and
comes out as ordinary ``Frame`` objects, in stream order with the events. The choice is made per
vector by ``stream(attrs)``, called with the vector's start tag attributes before any content is
read; within a streamed vector the caller decides per ``oneBLOB`` where the ``BlobData`` goes (a
file, a bytearray, nowhere).

Base64 is decoded incrementally: whitespace and line breaks may appear anywhere, a four-character
quantum may be split across feeds, and strict checks report bad characters, misplaced padding and
truncated content. Every byte is looked at a bounded number of times, so the cost is linear in
the bytes received however they are split. The module does no I/O and never imports asyncio.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass

from .framing import Frame, Framer, FramingError, parse_attributes

__all__ = [
    "BlobStream", "BlobStreamError", "Base64Decoder", "BlobVectorStart", "BlobStart", "BlobData", "BlobEnd",
    "BlobVectorEnd", "BlobEvent", "DEFAULT_MAX_TAG",
]

DEFAULT_MAX_TAG = 64 * 1024

_NAME = rb"[A-Za-z_:][-\w.:]*"
_VALUE = rb"(?:\"[^\"<]*\"|'[^'<]*')"
_START_TAG = re.compile(rb"<(" + _NAME + rb")((?:\s+" + _NAME + rb"\s*=\s*" + _VALUE + rb")*)\s*(/?)>\Z")
_TAG_SPECIAL = re.compile(rb"[\"'>]")
_CHILD = re.compile(rb"<(" + _NAME + rb")[\s/>]")
_XML_SPACE = b" \t\r\n"

_VECTOR_OPEN = b"<setBLOBVector"
_VECTOR_CLOSE = b"</setBLOBVector"
_BLOB_OPEN = b"<oneBLOB"
_BLOB_CLOSE = b"</oneBLOB"

# States
_PASS, _VECTOR_TAG, _VECTOR_BODY, _BLOB_TAG, _DATA, _BLOB_END, _BLOB_END_GT, _VECTOR_END = range(8)


class BlobStreamError(FramingError):
    """The stream is not a well-formed sequence of elements, or a streamed BLOB is malformed.

    A subclass of FramingError: ``frames`` holds the ``Frame`` objects completed before the error
    and ``events`` every event (frames included) produced by the same feed before it. The stream
    stays failed until ``reset()``.
    """

    def __init__(self, message: str, events: list | None = None) -> None:
        super().__init__(message)
        self.events: list[BlobEvent] = events or []


@dataclass(slots=True, frozen=True)
class BlobVectorStart:
    """A streamed ``setBLOBVector`` begins; ``attrs`` are its attributes as sent."""
    attrs: dict[str, str]

    @property
    def device(self) -> str:
        """The device attribute ("" if missing)."""
        return self.attrs.get("device", "")

    @property
    def name(self) -> str:
        """The property's name ("" if missing)."""
        return self.attrs.get("name", "")


@dataclass(slots=True, frozen=True)
class BlobStart:
    """A ``oneBLOB`` begins; ``attrs`` are its attributes (name, size, format, enclen...)."""
    attrs: dict[str, str]

    @property
    def name(self) -> str:
        """The member's name ("" if missing)."""
        return self.attrs.get("name", "")

    @property
    def format(self) -> str:
        """The format attribute (".fits", ".fits.z"...; "" if missing)."""
        return self.attrs.get("format", "")

    @property
    def size(self) -> int | None:
        """The ``size`` attribute as an integer (None when missing or not a number)."""
        try:
            return int(self.attrs["size"])
        except (KeyError, ValueError):
            return None


@dataclass(slots=True, frozen=True)
class BlobData:
    """Decoded content of the current ``oneBLOB`` (never empty)."""
    data: bytes


@dataclass(slots=True, frozen=True)
class BlobEnd:
    """The current ``oneBLOB`` ended; ``length`` is the number of bytes decoded from it."""
    name: str
    length: int


@dataclass(slots=True, frozen=True)
class BlobVectorEnd:
    """The streamed ``setBLOBVector`` ended."""
    device: str
    name: str


BlobEvent = Frame | BlobVectorStart | BlobStart | BlobData | BlobEnd | BlobVectorEnd


class Base64Decoder:
    """Incremental, strict base64 decoding: ``feed(text)`` returns the bytes decoded so far.

    XML whitespace (space, tab, CR, LF) is ignored wherever it is; up to three characters of an
    incomplete quantum are carried to the next feed. ``finish()`` checks that nothing is left
    over. Errors raise BlobStreamError naming ``what``.
    """

    __slots__ = ("what", "length", "_carry", "_padded")

    def __init__(self, what: str = "BLOB") -> None:
        self.what = what
        self.length = 0         # decoded bytes so far
        self._carry = b""       # characters of an incomplete quantum
        self._padded = False    # a quantum with '=' padding was seen: it must be the last

    def feed(self, text: bytes | bytearray | memoryview) -> bytes:
        """Decode the next piece of base64 text; returns the bytes it completes (maybe none)."""
        chunk = bytes(text).translate(None, _XML_SPACE)
        if not chunk:
            return b""
        if self._padded:
            raise BlobStreamError(f"{self.what}: base64 data after the final '=' padding")
        if self._carry:
            chunk = self._carry + chunk
        usable = len(chunk) - len(chunk) % 4
        self._carry = chunk[usable:]
        if not usable:
            return b""
        with memoryview(chunk) as view:
            body = view[:usable]
            try:
                out = binascii.a2b_base64(body, strict_mode=True)
            except binascii.Error as exc:
                raise BlobStreamError(f"{self.what}: bad base64 ({exc}) near "
                                      f"{bytes(body[:40])!r}") from None
        if chunk[usable - 1] == 0x3D:  # '='
            self._padded = True
        self.length += len(out)
        return out

    def finish(self) -> None:
        """The content ended: raise BlobStreamError if a quantum is incomplete."""
        if self._carry:
            raise BlobStreamError(f"{self.what}: base64 content ends with an incomplete quantum "
                                  f"({len(self._carry)} of 4 characters: {self._carry!r})")


def _held_prefix(buf: bytes, marker: bytes, pos: int) -> int:
    """The length of the longest suffix of buf[pos:] that is a proper prefix of marker (0 if none)."""
    start = buf.rfind(b"<", max(pos, len(buf) - len(marker) + 1))
    if start < 0:
        return 0
    tail = buf[start:]
    return len(tail) if marker.startswith(tail) else 0


class BlobStream:
    """Splits a stream into Frames and, for streamed ``setBLOBVector`` elements, BLOB events.

    ``feed(data)`` returns the events that data completed, in stream order: ``Frame`` objects for
    ordinary elements (from ``framer``, a new Framer by default) and the Blob* events for streamed
    vectors. ``stream(attrs)`` decides for each ``setBLOBVector`` (given its start tag's
    attributes) whether to stream it (True) or to let the Framer collect it whole (False); by
    default every one is streamed. Start tags are limited to ``max_tag`` bytes.

    Errors raise BlobStreamError (a FramingError) carrying the events completed before them, and
    leave the stream failed until ``reset()``. ``close()`` checks that the stream did not end in
    the middle of an element.
    """

    def __init__(self, framer: Framer | None = None, stream: Callable[[dict[str, str]], bool] | None = None,
                 max_tag: int = DEFAULT_MAX_TAG) -> None:
        self.framer = framer if framer is not None else Framer()
        self.stream = stream
        self.max_tag = max_tag
        self.reset()

    def reset(self) -> None:
        """Forget everything partly received (and any error), including the Framer's state."""
        self.framer.reset()
        self._state = _PASS
        self._held = b""            # _PASS: a possible start of b"<setBLOBVector"; else: lookahead
        self._tag = bytearray()     # a start tag being collected
        self._scan = 0              # where the scan for the start tag's '>' resumes
        self._quote = 0             # inside the start tag: the open quote, or 0
        self._vector: dict[str, str] = {}
        self._blob = ""
        self._decoder: Base64Decoder | None = None
        self._failed: BlobStreamError | None = None

    @property
    def idle(self) -> bool:
        """True when no element is partly received."""
        return self._state == _PASS and not self._held.strip() and self.framer.idle

    @property
    def streaming(self) -> bool:
        """True inside a streamed ``setBLOBVector``."""
        return self._state not in (_PASS, _VECTOR_TAG)

    def feed(self, data: bytes | bytearray | memoryview) -> list[BlobEvent]:
        """Process the next bytes of the stream; returns the events they complete."""
        if self._failed is not None:
            raise BlobStreamError(str(self._failed))
        events: list[BlobEvent] = []
        try:
            self._feed(bytes(data), events)
        except BlobStreamError as exc:
            self._fail(exc, events)
            raise
        except FramingError as exc:
            events += exc.frames
            error = BlobStreamError(str(exc))
            self._fail(error, events)
            raise error from None
        return events

    def close(self) -> None:
        """The stream ended: raise BlobStreamError if an element was left incomplete."""
        if self._failed is not None:
            raise BlobStreamError(str(self._failed))
        if self._state == _PASS and not self._held.strip() and self.framer.idle:
            return
        where = {_PASS: "an element", _VECTOR_TAG: "a <setBLOBVector> start tag",
                 _VECTOR_BODY: f"<setBLOBVector> {self._vector_label()} (missing </setBLOBVector>)",
                 _BLOB_TAG: "a <oneBLOB> start tag", _DATA: f"<oneBLOB name={self._blob!r}> (missing </oneBLOB>)",
                 _BLOB_END: "a </oneBLOB> end tag", _BLOB_END_GT: "a </oneBLOB> end tag",
                 _VECTOR_END: "a </setBLOBVector> end tag"}[self._state]
        error = BlobStreamError(f"the stream ended inside {where}")
        self._fail(error, [])
        raise error

    # ------------------------------------------------------------------------------ internals
    def _fail(self, error: BlobStreamError, events: list[BlobEvent]) -> None:
        error.events = events
        error.frames = [e for e in events if isinstance(e, Frame)]
        self._failed = error
        self._tag = bytearray()
        self._held = b""

    def _vector_label(self) -> str:
        return f"{self._vector.get('device', '')}.{self._vector.get('name', '')}"

    def _feed(self, data: bytes, events: list[BlobEvent]) -> None:
        while True:
            state = self._state
            if state == _PASS:
                data = self._pass(data, events)
            elif state in (_VECTOR_TAG, _BLOB_TAG):
                data = self._start_tag(data, events)
            elif state == _DATA:
                data = self._data(data, events)
            else:
                data = self._lookahead(data, events)
            if data is None:
                return

    def _pass(self, data: bytes, events: list[BlobEvent]) -> bytes | None:
        """Outside streamed vectors: hand bytes to the Framer up to a top-level <setBLOBVector."""
        buf = self._held + data if self._held else data
        self._held = b""
        framer = self.framer
        pos = 0
        while True:
            found = buf.find(_VECTOR_OPEN, pos)
            if found < 0:
                keep = _held_prefix(buf, _VECTOR_OPEN, pos)
                if len(buf) - keep > pos:
                    events += framer.feed(buf[pos:len(buf) - keep])
                self._held = buf[len(buf) - keep:] if keep else b""
                return None
            if found > pos:
                events += framer.feed(buf[pos:found])
            if not framer.idle:  # inside another element (or a comment): not ours
                events += framer.feed(buf[found:found + len(_VECTOR_OPEN)])
                pos = found + len(_VECTOR_OPEN)
                continue
            self._state = _VECTOR_TAG
            self._tag = bytearray()
            self._scan = 0
            self._quote = 0
            return buf[found:]

    def _start_tag(self, data: bytes, events: list[BlobEvent]) -> bytes | None:
        """Collect a start tag (resumable scan for the '>' outside quoted values)."""
        tag = self._tag
        base = len(tag)
        tag += data
        pos, quote, end = self._scan, self._quote, len(tag)
        closed = False
        while pos < end:
            if quote:
                q = tag.find(b"'" if quote == 0x27 else b'"', pos)
                if q < 0:
                    pos = end
                    break
                quote, pos = 0, q + 1
                continue
            m = _TAG_SPECIAL.search(tag, pos)
            if m is None:
                pos = end
                break
            pos = m.end()
            if tag[m.start()] == 0x3E:  # '>'
                closed = True
                break
            quote = tag[m.start()]
        self._scan, self._quote = pos, quote
        if not closed:
            if end > self.max_tag:
                what = "<setBLOBVector>" if self._state == _VECTOR_TAG else "<oneBLOB>"
                raise BlobStreamError(f"{what} start tag longer than {self.max_tag} bytes")
            return None
        rest = data[pos - base:]
        del tag[pos:]
        m = _START_TAG.match(tag)
        if m is None:
            raise BlobStreamError(f"malformed start tag {bytes(tag[:120])!r}")
        name = m.group(1)
        attrs = parse_attributes(tag, m.start(2), m.end(2))
        empty = bool(m.group(3))
        if self._state == _VECTOR_TAG:
            if name != _VECTOR_OPEN[1:] or empty or (self.stream is not None and not self.stream(attrs)):
                # Another tag, an empty vector, or one the caller wants whole: the Framer's.
                events += self.framer.feed(bytes(tag))
                self._tag = bytearray()
                self._state = _PASS
                return rest
            self._vector = attrs
            events.append(BlobVectorStart(attrs))
            self._state = _VECTOR_BODY
        else:
            if name != _BLOB_OPEN[1:]:
                raise BlobStreamError(f"<setBLOBVector> {self._vector_label()} cannot contain <{name.decode()}>")
            self._blob = attrs.get("name", "")
            events.append(BlobStart(attrs))
            if empty:
                events.append(BlobEnd(self._blob, 0))
                self._state = _VECTOR_BODY
            else:
                self._decoder = Base64Decoder(f"<oneBLOB name={self._blob!r}> of {self._vector_label()}")
                self._state = _DATA
        self._tag = bytearray()
        return rest

    def _data(self, data: bytes, events: list[BlobEvent]) -> bytes | None:
        """Base64 content up to the next '<', decoded as it comes."""
        decoder = self._decoder
        assert decoder is not None
        lt = data.find(b"<")
        out = decoder.feed(data if lt < 0 else data[:lt])
        if out:
            events.append(BlobData(out))
        if lt < 0:
            return None
        self._state = _BLOB_END
        self._held = b""
        return data[lt:]

    def _lookahead(self, data: bytes, events: list[BlobEvent]) -> bytes | None:
        """Between a vector's children, and in end tags: a few bytes decide what comes next."""
        buf = self._held + data if self._held else data
        self._held = b""
        state = self._state
        if state == _VECTOR_BODY:
            buf = buf.lstrip(_XML_SPACE)
            if not buf:
                return None
            for marker, follows in ((_BLOB_OPEN, b" \t\r\n/>"), (_VECTOR_CLOSE, b" \t\r\n>")):
                if len(buf) <= len(marker):
                    if marker.startswith(buf):
                        self._held = buf
                        return None
                elif buf.startswith(marker) and buf[len(marker)] in follows:
                    if marker is _BLOB_OPEN:
                        self._state, self._scan, self._quote = _BLOB_TAG, 0, 0
                        self._tag = bytearray()
                        return buf
                    self._state = _VECTOR_END
                    return buf[len(marker):]
            child = _CHILD.match(buf)
            what = f"cannot contain <{child.group(1).decode()}>" if child else f"got {buf[:40]!r}"
            raise BlobStreamError(f"<setBLOBVector> {self._vector_label()} {what}: expected <oneBLOB> or "
                                  f"</setBLOBVector>")
        if state == _BLOB_END:
            if not buf.startswith(_BLOB_CLOSE):
                if len(buf) < len(_BLOB_CLOSE) and _BLOB_CLOSE.startswith(buf):
                    self._held = buf
                    return None
                raise BlobStreamError(f"<oneBLOB name={self._blob!r}> of {self._vector_label()}: unexpected "
                                      f"{buf[:40]!r} in the content (missing </oneBLOB>?)")
            self._state = state = _BLOB_END_GT
            buf = buf[len(_BLOB_CLOSE):]
        # The rest of an end tag: whitespace, then '>'.
        rest = buf.lstrip(_XML_SPACE)
        if not rest:
            return None
        if rest[0] != 0x3E:  # '>'
            what = "</oneBLOB" if state == _BLOB_END_GT else "</setBLOBVector"
            raise BlobStreamError(f"malformed end tag {what}{rest[:20].decode('latin-1')}")
        rest = rest[1:]
        if state == _BLOB_END_GT:
            decoder = self._decoder
            assert decoder is not None
            decoder.finish()
            events.append(BlobEnd(self._blob, decoder.length))
            self._decoder = None
            self._state = _VECTOR_BODY
        else:
            events.append(BlobVectorEnd(self._vector.get("device", ""), self._vector.get("name", "")))
            self._state = _PASS
        return rest
