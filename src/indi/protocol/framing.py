"""Incremental framing of the root-less INDI XML stream: bytes in, complete top-level elements out.

Goal: the worst case is O(n) in the bytes received however they are split, so that a peer sending
a many-megabyte BLOB a few bytes at a time, or a hostile one, cannot make framing quadratic. Every
scan resumes where the previous one stopped, the body of an element is searched only for its end
tag, and a start tag is matched by one regular expression once complete.

Speed matters as much (the server frames every message a driver sends): no Python runs per byte.
The end tag is looked for with ``bytes.find`` over a short window, then by jumping from ``<`` to
``<`` with ``memchr`` (a base64 BLOB body has none, and memchr is some twenty times faster than a
multi-byte ``find``). A start tag already seen (drivers repeat theirs: same device, name, state and
timestamp for a whole second) is recognised by a dictionary lookup of its bytes, not parsed again.
Small elements are sliced out of the immutable bytes that were read, one copy each. An element
that grows past 64 KB (a BLOB) is kept as the pieces it arrives in and joined once when its end
tag has come: one copy in all, where growing a buffer would copy it again at every reallocation.

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

_LT, _GT, _NL = 0x3C, 0x3E, 0x0A
_FIND_WINDOW = 4096       # bytes searched with bytes.find before jumping from '<' to '<'
_FIND_JUMPS = 64          # '<' that are not the needle before falling back to bytes.find
_JOIN_LIMIT = 1 << 16     # a partial element longer than this is kept in pieces, joined when complete
_SMALL_PIECE = 1 << 12    # pieces of a large element smaller than this are gathered first

# Start tags already parsed: their exact bytes -> (tag, attributes, end-tag prefix or None for an
# empty element). Identical bytes are an identical, valid start tag; each Frame gets its own copy of
# the attributes. Bounded: cleared when full.
_TAG_CACHE: dict[bytes, tuple[str, dict[str, str], bytes | None]] = {}
_TAG_CACHE_SIZE = 2048
_TAG_CACHE_LONGEST = 1024


def find_markup(buf: bytes | bytearray, needle: bytes, pos: int, end: int) -> int:
    """``buf.find(needle, pos, end)`` for a needle that starts with ``<``, fast over long text.

    ``bytes.find`` of a multi-byte needle runs at a few GB/s; memchr of one byte is far faster. A
    short window is searched with find (small elements end there), the rest by jumping from ``<`` to
    ``<``, falling back to find if the text has many ``<`` that are not the needle.
    """
    stop = pos + _FIND_WINDOW
    if stop >= end:
        return buf.find(needle, pos, end)
    j = buf.find(needle, pos, stop + len(needle) - 1)
    if j >= 0:
        return j
    find = buf.find
    startswith = buf.startswith
    p = stop
    for _ in range(_FIND_JUMPS):
        p = find(b"<", p, end)
        if p < 0 or startswith(needle, p, end):
            return p
        p += 1
    return find(needle, p, end)


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
        end = len(raw)
        opener = b"<" + tag
        closer = b"</" + tag
        pos = self.body_start
        while True:
            pos = find_markup(raw, opener, pos, end)
            if pos < 0:
                return result
            m = _START_TAG.match(raw, pos)
            if not m or m.group(1) != tag:
                pos += len(opener)
                continue
            result.append(parse_attributes(raw, m.start(2), m.end(2)))
            pos = m.end()
            if not m.group(3):
                close = find_markup(raw, closer, pos, end)
                pos = end if close < 0 else close + len(closer)

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
        # A large element in the making (a BLOB) is kept as the pieces it arrived in, joined once
        # when complete: one copy, where growing a bytearray would copy it again and again.
        self._pieces: list[bytes | memoryview] | None = None
        self._small = bytearray()   # small pieces of it, gathered before they join _pieces
        self._size = 0              # bytes of it so far
        self._pending = b""         # its last bytes not yet searched for the end tag
        self._await_gt = False      # its end tag's name has been seen, the '>' not yet
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
        return len(self._buf) + self._size

    @property
    def idle(self) -> bool:
        """True when no element is partly received."""
        return self._state == _TOP and self._pieces is None and not self._buf.strip()

    def _fail(self, message: str) -> FramingError:
        self._failed = FramingError(message)
        self._buf = bytearray()
        self._pieces = None
        self._small = bytearray()
        self._size = 0
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
        if type(data) is not bytes:
            data = bytes(data)
        if self._pieces is not None:
            resume = self._feed_large(data, frames)
            if resume < 0:
                return
            self._scan = resume  # frame the rest of data where the large element ended
        held = self._buf
        if len(held) > _JOIN_LIMIT or len(held) > len(data):
            # Small pieces (or a long start tag): grow in place, as joining would copy what is
            # held again for every piece.
            held += data
            buf = held
            end = len(buf)
            with memoryview(buf) as view:
                state, pos = self._scan_buffer(buf, view, end, frames, False)
        else:
            # Immutable bytes, from which each element is one slice (no memoryview per element).
            buf = b"".join((held, data)) if held else data
            end = len(buf)
            state, pos = self._scan_buffer(buf, buf, end, frames, True)
        # Keep only the incomplete element; offsets become relative to what is kept.
        self._state = state
        keep_from = self._elem if state in (_START, _BODY) else pos
        if state == _BODY and end - keep_from > _JOIN_LIMIT:
            self._start_large(buf, keep_from, end, pos)
            return
        if buf is not held:
            self._buf = bytearray(memoryview(buf)[keep_from:]) if keep_from < end else bytearray()
        elif keep_from:
            del buf[:keep_from]
        if keep_from:
            pos -= keep_from
            self._body -= keep_from
            if self._close_at >= 0:
                self._close_at -= keep_from
        self._elem = 0
        self._scan = pos

    # ------------------------------------------------------------------ large elements (BLOBs)
    def _start_large(self, buf: bytes | bytearray, start: int, end: int, pos: int) -> None:
        """Keep buf[start:end], the beginning of a large element whose body is being scanned
        (``pos`` and ``_close_at`` as _scan_buffer left them), as the first of its pieces."""
        self._pieces = [memoryview(buf)[start:end]]  # buf is never changed again: no copy
        self._small = bytearray()
        self._size = end - start
        self._await_gt = self._close_at >= 0
        self._pending = b"" if self._await_gt else bytes(buf[pos:end])
        self._close_at = -1
        self._body -= start
        self._elem = 0
        self._scan = 0
        self._buf = bytearray()

    def _feed_large(self, data: bytes, frames: list[Frame]) -> int:
        """The next piece of a large element: where in data the element ended (after its newline,
        if one follows), or -1 if it goes on."""
        close = self._close
        edge = len(close) - 1
        n = len(data)
        i = 0
        carry = b""
        while True:
            if self._await_gt:
                i = _SPACE.match(data, i).end()
                if i >= n:
                    break
                if data[i] == _GT:
                    return self._finish_large(data, i + 1, frames)
                self._await_gt = False  # b"</tag" began a longer name: keep looking
            if self._pending:
                carry, self._pending = self._pending, b""
                j = (carry + data[:edge]).find(close)  # an end tag across the two pieces
                if j >= 0:
                    i = j + len(close) - len(carry)
                    self._await_gt = True
                    continue
            j = find_markup(data, close, i, n)
            if j < 0:
                rest = data[max(i, n - edge):]
                self._pending = (carry + rest)[-edge:] if i == 0 and len(rest) < edge else rest
                break
            i = j + len(close)
            self._await_gt = True
        self._size += n
        if self._size > self.max_element:
            raise self._fail(f"element <{self._tag}> larger than {self.max_element} bytes")
        self._add_piece(data)
        return -1

    def _add_piece(self, data: bytes | memoryview) -> None:
        if len(data) < _SMALL_PIECE:
            small = self._small
            small += data
            if len(small) >= _JOIN_LIMIT:
                self._pieces.append(bytes(small))
                small.clear()
            return
        if self._small:
            self._pieces.append(bytes(self._small))
            self._small.clear()
        self._pieces.append(data)

    def _finish_large(self, data: bytes, stop: int, frames: list[Frame]) -> int:
        """The large element ends at data[stop]: join its pieces into its Frame."""
        if self._size + stop > self.max_element:
            raise self._fail(f"element <{self._tag}> larger than {self.max_element} bytes")
        newline = stop < len(data) and data[stop] == _NL
        cut = stop + 1 if newline else stop
        self._add_piece(memoryview(data)[:cut])
        pieces = self._pieces
        if self._small:
            pieces.append(self._small)
        if not newline:
            pieces.append(b"\n")
        frames.append(Frame(b"".join(pieces), self._tag, self._attrs, self._body))
        self._pieces = None
        self._small = bytearray()
        self._size = 0
        self._pending = b""
        self._await_gt = False
        self._state = _TOP
        self._elem = 0
        return cut

    def _scan_buffer(self, buf: bytes | bytearray, view: bytes | memoryview, end: int, frames: list[Frame],
                     frozen: bool) -> tuple[int, int]:
        """Frame what buf[:end] completes; returns the state and position to resume from. ``view``
        slices buf without copying it; when buf is immutable (``frozen``) it is buf itself."""
        state = self._state
        pos = self._scan
        cache = _TAG_CACHE
        max_element = self.max_element
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
                if pos >= end:
                    break
                if buf[pos] != _LT:
                    pos = _SPACE.match(buf, pos).end()
                    if pos >= end:
                        break
                    if buf[pos] != _LT:
                        self._junk = True
                        self.junk_sample = b""
                        continue
                self._elem = pos
                gt = buf.find(b">", pos, end)
                if gt >= 0:  # fast path: the whole start tag is probably here
                    key = view[pos:gt + 1] if frozen else bytes(view[pos:gt + 1])
                    known = cache.get(key)
                    if known is not None:
                        body = gt + 1
                    else:
                        m = _START_TAG.match(buf, pos)
                        if m is not None:
                            body = m.end()
                            known = self._parse_start_tag(m)
                            if body == gt + 1 and len(key) <= _TAG_CACHE_LONGEST:
                                if len(cache) >= _TAG_CACHE_SIZE:
                                    cache.clear()
                                cache[key] = known
                    if known is not None:
                        tag, attrs, close = known
                        # The common case, with no state kept: the end tag follows shortly.
                        if close is None:
                            stop = body
                        else:
                            stop = buf.find(close, body, body + _FIND_WINDOW)
                            if stop >= 0:
                                stop += len(close)
                                stop = stop + 1 if stop < end and buf[stop] == _GT else -1
                        if stop >= 0 and stop - pos <= max_element:
                            if stop < end and buf[stop] == _NL:
                                raw = view[pos:stop + 1] if frozen else bytes(view[pos:stop + 1])
                                frames.append(Frame(raw, tag, dict(attrs), body - pos))
                                pos = stop + 1
                            else:
                                frames.append(Frame(b"".join((view[pos:stop], b"\n")), tag, dict(attrs), body - pos))
                                pos = stop
                            continue
                        self._tag = tag
                        self._attrs = dict(attrs)
                        self._body = body
                        if close is None:  # an empty element: complete
                            frames.append(self._emit(view, body))
                            pos = self._elem
                            continue
                        self._close = close
                        self._close_at = -1
                        pos = body
                        state = _BODY
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

            if state == _BODY:
                close = self._close
                closed = False
                while True:
                    if self._close_at < 0:
                        j = find_markup(buf, close, pos, end)
                        if j < 0:
                            pos = max(pos, end - len(close) + 1)
                            break
                        self._close_at = j
                        pos = j + len(close)
                    if pos < end and buf[pos] == _GT:
                        pos += 1
                        closed = True
                        break
                    pos = _SPACE.match(buf, pos).end()
                    if pos >= end:
                        break  # need to see what follows b"</tag"
                    if buf[pos] == _GT:
                        pos += 1
                        closed = True
                        break
                    self._close_at = -1  # b"</tag" began a longer name: keep looking
                if not closed:
                    if end - self._elem > self.max_element:
                        raise self._fail(f"element <{self._tag}> larger than {self.max_element} bytes")
                    break
                self._close_at = -1
                frames.append(self._emit(view, pos))
                pos = self._elem
                state = _TOP
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
                    if buf[m.start()] == _GT:
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
                self._tag, self._attrs, close = self._parse_start_tag(m)
                self._body = pos
                if close is None:
                    frames.append(self._emit(view, pos))
                    pos = self._elem
                    state = _TOP
                else:
                    self._close = close
                    self._close_at = -1
                    state = _BODY
                continue

            # _SKIP: a processing instruction, comment or DOCTYPE between elements
            j = buf.find(self._skip_end, pos)
            if j < 0:
                pos = max(pos, end - len(self._skip_end) + 1)
                break
            pos = j + len(self._skip_end)
            state = _TOP
        return state, pos

    @staticmethod
    def _parse_start_tag(m: re.Match[bytes]) -> tuple[str, dict[str, str], bytes | None]:
        """(tag, attributes, b"</tag" or None for an empty element) of a matched start tag."""
        name = m.group(1)
        attrs = parse_attributes(m.string, m.start(2), m.end(2))
        return name.decode(), attrs, None if m.group(3) else b"</" + name

    def _emit(self, view: memoryview, end: int) -> Frame:
        """The element from _elem to end as a Frame; _elem moves past it (and its newline)."""
        start = self._elem
        if end - start > self.max_element:
            raise self._fail(f"element <{self._tag}> larger than {self.max_element} bytes")
        if end < len(view) and view[end] == _NL:  # one copy, straight from the buffer
            raw = bytes(view[start:end + 1])
            self._elem = end + 1
        else:
            raw = b"".join((view[start:end], b"\n"))
            self._elem = end
        return Frame(raw, self._tag, self._attrs, self._body - start)
