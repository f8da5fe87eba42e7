"""Incremental framing of the root-less INDI XML stream: bytes in, complete top-level elements out.

Goal: the worst case is O(n) in the bytes received however they are split, so that a peer sending
a many-megabyte BLOB a few bytes at a time, or a hostile one, cannot make framing quadratic. Every
scan resumes where the previous one stopped, the body of an element is searched only for its end
tag (by ``bytes.find``, in C), and a start tag is matched by one regular expression once complete.

Like libindi's lilxml, text between top-level elements is skipped (some drivers print stray text
on stdout); it is counted so that the I/O layer can log it. Processing instructions, comments and
DOCTYPEs between elements are skipped too. Anything else that is not an element is an error.
"""

from __future__ import annotations

import re

__all__ = ["Frame", "Framer", "FramingError", "parse_attributes", "DEFAULT_MAX_ELEMENT", "unescape"]

DEFAULT_MAX_ELEMENT = 512 * 1024 * 1024

_NAME = rb"[A-Za-z_:][-\w.:]*"
_VALUE = rb"(?:\"[^\"<]*\"|'[^'<]*')"
# A complete start tag: name, attributes, optional '/', '>'.
_START_TAG = re.compile(rb"<(" + _NAME + rb")((?:\s+" + _NAME + rb"\s*=\s*" + _VALUE + rb")*)\s*(/?)>")
_ATTRIBUTE = re.compile(rb"(" + _NAME + rb")\s*=\s*(" + _VALUE + rb")")
# Inside a start tag, the next character that matters: a quote opens a value, '>' ends the tag.
_TAG_SPECIAL = re.compile(rb"[\"'>]")
_SPACE = re.compile(rb"[ \t\r\n]*")
_ENTITY = re.compile(r"&(?:#(\d+)|#x([0-9A-Fa-f]+)|(lt|gt|amp|quot|apos));")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}

# Scanner states
_TOP, _START, _BODY, _SKIP = range(4)


class FramingError(ValueError):
    """The stream is not a sequence of XML elements; the framer stays failed until reset().

    ``frames`` holds the elements completed by the same feed before the error, which are valid
    and should still be handled.
    """

    def __init__(self, message: str, frames: list[Frame] | None = None) -> None:
        super().__init__(message)
        self.frames: list[Frame] = frames or []


def _entity(m: re.Match[str]) -> str:
    if m.group(3):
        return _NAMED[m.group(3)]
    code = int(m.group(1)) if m.group(1) else int(m.group(2), 16)
    try:
        return chr(code)
    except (ValueError, OverflowError):
        return "\ufffd"


def unescape(text: str) -> str:
    """Decode XML's predefined and numeric character references."""
    return _ENTITY.sub(_entity, text) if "&" in text else text


def parse_attributes(start_tag: bytes | bytearray | memoryview, pos: int = 0, endpos: int | None = None
                     ) -> dict[str, str]:
    """The attributes of a start tag (entities decoded, UTF-8 with replacement)."""
    if endpos is None:
        endpos = len(start_tag)
    return {name.decode(): unescape(value[1:-1].decode("utf-8", "replace"))
            for name, value in _ATTRIBUTE.findall(start_tag, pos, endpos)}


class Frame:
    """One complete top-level element, with the bytes exactly as received.

    ``raw`` is the element followed by one newline: the newline that followed it in the stream, or
    one added, so that what is forwarded is always line-terminated as the reference server's output
    is (line-reading drivers depend on it). ``attrs`` are the root element's attributes;
    ``body_start`` is where its content starts in ``raw`` (the end of the element for an empty
    one such as ``<getProperties .../>``).
    """

    __slots__ = ("raw", "tag", "attrs", "body_start")

    def __init__(self, raw: bytes, tag: str, attrs: dict[str, str], body_start: int) -> None:
        self.raw = raw
        self.tag = tag
        self.attrs = attrs
        self.body_start = body_start

    @property
    def device(self) -> str:
        return self.attrs.get("device", "")

    @property
    def name(self) -> str:
        return self.attrs.get("name", "")

    @property
    def text(self) -> str:
        """The character content of a simple element such as ``enableBLOB``, stripped and decoded."""
        if self.raw[self.body_start - 2:self.body_start] == b"/>":
            return ""
        end = self.raw.rfind(b"</")
        return unescape(self.raw[self.body_start:end].decode("utf-8", "replace")).strip()

    def child_start_tags(self, tag: bytes) -> list[dict[str, str]]:
        """Attributes of each child element named ``tag`` (e.g. b"oneBLOB"), skipping their content."""
        result = []
        raw = self.raw
        opener = b"<" + tag
        closer = b"</" + tag
        pos = self.body_start
        while True:
            pos = raw.find(opener, pos)
            if pos < 0:
                return result
            m = _START_TAG.match(raw, pos)
            if not m or m.group(1) != tag:
                pos += len(opener)
                continue
            result.append(parse_attributes(raw, m.start(2), m.end(2)))
            pos = m.end()
            if not m.group(3):
                end = raw.find(closer, pos)
                pos = len(raw) if end < 0 else end + len(closer)

    def __repr__(self) -> str:
        head = self.raw[:self.body_start] if self.body_start else self.raw
        return f"Frame({bytes(head[:120])!r}{'...' if len(self.raw) > 120 else ''}, {len(self.raw)} bytes)"


class Framer:
    """Splits a stream into Frames: ``feed(data)`` returns the elements that data completed.

    A framing error raises FramingError (carrying the frames completed before it) and leaves the
    framer failed (every later feed raises the same error) until ``reset()``. ``junk_skipped``
    counts bytes of stray top-level text, and ``junk_sample`` keeps the start of the latest, so
    that the caller can log them.
    """

    def __init__(self, max_element: int = DEFAULT_MAX_ELEMENT) -> None:
        self.max_element = max_element
        self.reset()

    def reset(self) -> None:
        self._buf = bytearray()
        self._state = _TOP
        self._elem = 0          # offset of the current element's '<' in _buf
        self._scan = 0          # where the next scan resumes
        self._quote = 0         # inside a start tag: the open quote character, or 0
        self._close = b""       # in a body: b"</tag"
        self._close_at = -1     # in a body: offset of a found b"</tag" awaiting its '>'
        self._skip_end = b""    # skipping a PI, comment or DOCTYPE: its terminator
        self._tag = ""
        self._attrs: dict[str, str] = {}
        self._body = 0
        self._failed: FramingError | None = None
        self._junk = False      # inside stray text between elements
        self.junk_skipped = 0
        self.junk_sample = b""

    @property
    def buffered(self) -> int:
        """Bytes held for an element not yet complete."""
        return len(self._buf)

    @property
    def idle(self) -> bool:
        """True when no element is partly received."""
        return self._state == _TOP and not self._buf.strip()

    def _fail(self, message: str) -> FramingError:
        self._failed = FramingError(message)
        self._buf = bytearray()
        return self._failed

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        if self._failed is not None:
            raise FramingError(str(self._failed))
        frames: list[Frame] = []
        try:
            self._feed(data, frames)
        except FramingError as exc:
            exc.frames = frames
            raise
        return frames

    def _feed(self, data: bytes | bytearray | memoryview, frames: list[Frame]) -> None:
        buf = self._buf
        buf += data
        end = len(buf)
        state = self._state
        pos = self._scan
        while True:
            if state == _TOP:
                if self._junk:  # stray text, skipped as lilxml does, counted up to the next '<'
                    lt = buf.find(b"<", pos)
                    stop = end if lt < 0 else lt
                    self.junk_skipped += stop - pos
                    if len(self.junk_sample) < 200:
                        self.junk_sample += bytes(buf[pos:min(stop, pos + 200 - len(self.junk_sample))])
                    pos = stop
                    if lt < 0:
                        break
                    self._junk = False
                pos = _SPACE.match(buf, pos).end()
                if pos >= end:
                    break
                if buf[pos] != 0x3C:  # not '<'
                    self._junk = True
                    self.junk_sample = b""
                    continue
                self._elem = pos
                m = _START_TAG.match(buf, pos)
                if m is not None:  # fast path: the whole start tag is here
                    pos, state = self._start_tag(m)
                    if state == _TOP:
                        frames.append(self._emit(pos))
                        pos = self._elem
                    continue
                if end - pos < 4:
                    break
                second = buf[pos + 1]
                if second == 0x3F:  # '<?'
                    state, self._skip_end, pos = _SKIP, b"?>", pos + 2
                elif buf.startswith(b"<!--", pos):
                    state, self._skip_end, pos = _SKIP, b"-->", pos + 4
                elif second == 0x21 and buf[pos + 2:pos + 3].isalpha():  # '<!DOCTYPE'
                    state, self._skip_end, pos = _SKIP, b">", pos + 2
                elif buf[pos + 1:pos + 2].isalpha() or second in b"_:":
                    state, self._quote, pos = _START, 0, pos + 1
                else:
                    raise self._fail(f"unexpected {bytes(buf[pos:pos + 20])!r} between elements")
                continue

            if state == _START:
                # Resumable scan for the '>' that ends the start tag, stepping over quoted values.
                quote = self._quote
                closed = False
                while True:
                    if quote:
                        q = buf.find(b"'" if quote == 0x27 else b'"', pos)
                        if q < 0:
                            pos = end
                            break
                        quote, pos = 0, q + 1
                        continue
                    m = _TAG_SPECIAL.search(buf, pos)
                    if m is None:
                        pos = end
                        break
                    pos = m.end()
                    if buf[m.start()] == 0x3E:  # '>'
                        closed = True
                        break
                    quote = buf[m.start()]
                self._quote = quote
                if not closed:
                    if end - self._elem > self.max_element:
                        raise self._fail(f"start tag longer than {self.max_element} bytes")
                    break
                m = _START_TAG.match(buf, self._elem)
                if m is None or m.end() != pos:
                    raise self._fail(f"malformed start tag {bytes(buf[self._elem:min(pos, self._elem + 120)])!r}")
                pos, state = self._start_tag(m)
                if state == _TOP:
                    frames.append(self._emit(pos))
                    pos = self._elem
                continue

            if state == _BODY:
                close = self._close
                closed = False
                while True:
                    if self._close_at < 0:
                        j = buf.find(close, pos)
                        if j < 0:
                            pos = max(pos, end - len(close) + 1)
                            break
                        self._close_at = j
                        pos = j + len(close)
                    pos = _SPACE.match(buf, pos).end()
                    if pos >= end:
                        break  # need to see what follows b"</tag"
                    if buf[pos] == 0x3E:
                        pos += 1
                        closed = True
                        break
                    self._close_at = -1  # b"</tag" began a longer name: keep looking
                if not closed:
                    if end - self._elem > self.max_element:
                        raise self._fail(f"element <{self._tag}> larger than {self.max_element} bytes")
                    break
                self._close_at = -1
                frames.append(self._emit(pos))
                pos = self._elem
                state = _TOP
                continue

            # _SKIP: a processing instruction, comment or DOCTYPE between elements
            j = buf.find(self._skip_end, pos)
            if j < 0:
                pos = max(pos, end - len(self._skip_end) + 1)
                break
            pos = j + len(self._skip_end)
            state = _TOP

        # Keep only the incomplete element; offsets become relative to what is kept.
        self._state = state
        keep_from = self._elem if state in (_START, _BODY) else pos
        if keep_from:
            del buf[:keep_from]
            pos -= keep_from
            self._body -= keep_from
            if self._close_at >= 0:
                self._close_at -= keep_from
        self._elem = 0
        self._scan = pos

    def _start_tag(self, m: re.Match[bytes]) -> tuple[int, int]:
        """Record a complete start tag; returns where scanning resumes and the next state."""
        self._tag = m.group(1).decode()
        self._attrs = parse_attributes(self._buf, m.start(2), m.end(2))
        self._body = m.end()
        if m.group(3):
            return m.end(), _TOP
        self._close = b"</" + m.group(1)
        self._close_at = -1
        return m.end(), _BODY

    def _emit(self, end: int) -> Frame:
        """The element from _elem to end as a Frame; _elem moves past it (and its newline)."""
        start = self._elem
        buf = self._buf
        if end - start > self.max_element:
            raise self._fail(f"element <{self._tag}> larger than {self.max_element} bytes")
        with memoryview(buf) as view:  # one copy, straight from the buffer
            if end < len(buf) and buf[end] == 0x0A:
                raw = bytes(view[start:end + 1])
                self._elem = end + 1
            else:
                raw = b"".join((view[start:end], b"\n"))
                self._elem = end
        return Frame(raw, self._tag, self._attrs, self._body - start)
