"""What indi_getprop, indi_setprop and indi_eval share: C-style argument scanning, the connection to
the server (TCP or an inherited descriptor) with its ``alarm()``-like deadline, a small lilxml-like
view of each element the server sends, and the C library behaviours the tools' output depends on
(``atoi``, ``atof``, ``printf("%g")``).

The tools reproduce Debian's indi-bin 1.9.9 programs, whose output scripts parse: messages, exit
statuses and the bytes on stdout are the same. Text is handled as UTF-8 with surrogate escapes so
that any byte the server or the command line gives is written back unchanged.
"""

from __future__ import annotations

import errno
import fcntl
import math
import os
import re
import select
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable

from indi.protocol import Framer, FramingError

__all__ = [
    "INDIV", "GIT_TAG", "DEFAULT_HOST", "DEFAULT_PORT", "DEFAULT_TIMEOUT", "XMLElement", "parse_element",
    "format_element", "Connection", "scan_flags", "atoi", "atof", "format_g", "out", "err", "flush_out",
    "encode", "restore_default_signals", "Alarm", "ToolExit", "Tool", "tool_main",
]

INDIV = "1.7"               # printf("%g", INDIV) in the reference tools
GIT_TAG = "1.9.9-tgz"       # the version line of the reference tools' usage texts
DEFAULT_HOST = "localhost"
DEFAULT_PORT = 7624
DEFAULT_TIMEOUT = 2

_C_SPACE = " \t\n\r\v\f"


class ToolExit(SystemExit):
    """exit(code) from deep inside a tool; stdout is flushed on the way out."""


# ----------------------------------------------------------------------------------------- output

def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def out(text: str) -> None:
    """printf to stdout (buffered like C's stdout)."""
    sys.stdout.buffer.write(encode(text))


def flush_out() -> None:
    try:
        sys.stdout.buffer.flush()
    except (BrokenPipeError, ValueError):
        pass


def err(text: str) -> None:
    """fprintf to stderr (unbuffered like C's stderr)."""
    err_bytes(encode(text))


def err_bytes(data: bytes) -> None:
    stream = sys.stderr.buffer
    stream.write(data)
    stream.flush()


def restore_default_signals() -> None:
    """Die of SIGINT and SIGPIPE as the C tools do, instead of printing a Python traceback."""
    for name in ("SIGINT", "SIGPIPE"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)


# --------------------------------------------------------------------------------- C behaviours

_ATOI = re.compile(r"[ \t\n\r\v\f]*([-+]?\d+)")


def atoi(text: str) -> int:
    """C atoi: leading blanks, an optional sign and digits; anything else reads as 0."""
    m = _ATOI.match(text)
    if not m:
        return 0
    value = int(m.group(1))
    # atoi is (int)strtol: a value outside long saturates, then keeps its low 32 bits.
    value = max(min(value, 2**63 - 1), -2**63)
    value &= 0xFFFFFFFF
    return value - 2**32 if value >= 2**31 else value


_STRTOD = re.compile(
    r"[ \t\n\r\v\f]*([-+]?)(?:(0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][-+]?\d+)?)"
    r"|((?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|(inf(?:inity)?)|(nan(?:\([0-9A-Za-z_]*\))?))",
    re.IGNORECASE)


def atof(text: str) -> float:
    """C atof (strtod): the longest number at the start of text, else 0."""
    m = _STRTOD.match(text)
    if not m:
        return 0.0
    sign, hexa, dec, inf, nan = m.groups()
    if hexa:
        body = hexa if "p" in hexa.lower() else hexa + "p0"
        try:
            value = float.fromhex(body)
        except OverflowError:
            value = math.inf
    elif dec:
        value = float(dec)
    elif inf:
        value = math.inf
    else:
        value = math.nan
    return -value if sign == "-" else value


def format_g(value: float) -> str:
    """printf("%g") as glibc prints it (a NaN with its sign bit set is "-nan")."""
    if math.isnan(value):
        return "-nan" if math.copysign(1.0, value) < 0 else "nan"
    return f"{value:g}"


# ------------------------------------------------------------------------------ argument scanning

def scan_flags(argv: list[str], handle: Callable[[str, Callable[[], str]], bool]) -> list[str]:
    """Scan leading flags the way the reference tools' ``while (--ac && **++av == '-')`` loop does.

    ``handle(ch, take)`` is called for each flag character; ``take()`` returns the next argument
    (the flag's value), or None if there is none. handle returns True to stop scanning at this
    argument (indi_setprop's type flags), which is then left at the head of what is returned.
    Returns the remaining arguments.
    """
    av, ac = 0, len(argv)
    stop = False
    while not stop:
        ac -= 1
        if ac <= 0:
            return []
        av += 1
        if not argv[av].startswith("-"):
            break

        def take() -> str | None:
            nonlocal av, ac
            if ac < 2:
                return None
            av += 1
            ac -= 1
            return argv[av]

        for ch in argv[av][1:]:
            if handle(ch, take):
                stop = True
    return argv[av:av + ac]


class Tool:
    """The flags every reference tool takes (-d fd, -h host, -p port, -t timeout, -v) and its usage exit."""

    USAGE_EXIT = 2

    def __init__(self, me: str) -> None:
        self.me = me
        self.host = DEFAULT_HOST
        self.port = DEFAULT_PORT
        self.timeout = DEFAULT_TIMEOUT
        self.verbose = 0
        self.directfd = -1
        self.conn: Connection | None = None

    def usage_text(self) -> str:
        raise NotImplementedError

    def usage(self) -> None:
        err(self.usage_text())
        raise ToolExit(self.USAGE_EXIT)

    def _value(self, take: Callable[[], str | None], missing: str) -> str:
        value = take()
        if value is None:
            err(missing)
            self.usage()
        return value

    def _not_with_direct_fd(self, ch: str) -> None:
        if self.directfd >= 0:
            err(f"Can not combine -d and -{ch}\n")
            self.usage()

    def common_flag(self, ch: str, take: Callable[[], str | None]) -> bool:
        """Handle one of the shared flags; False if ``ch`` is not one of them."""
        if ch == "d":
            self.directfd = atoi(self._value(take, "-d requires open fileno\n"))
        elif ch == "h":
            self._not_with_direct_fd(ch)
            self.host = self._value(take, "-h requires host name\n")
        elif ch == "p":
            self._not_with_direct_fd(ch)
            self.port = atoi(self._value(take, "-p requires tcp port number\n"))
        elif ch == "t":
            self.timeout = atoi(self._value(take, "-t requires timeout\n"))
        elif ch == "v":
            self.verbose += 1
        else:
            return False
        return True

    def unknown_flag(self, ch: str) -> None:
        err(f"Unknown flag: {ch}\n")
        self.usage()

    def run(self, argv: list[str]) -> int:
        raise NotImplementedError


def tool_main(tool: type[Tool], argv: list[str] | None) -> int:
    """A tool's main(): C signal behaviour, its exit status, stdout flushed."""
    restore_default_signals()
    argv = list(sys.argv if argv is None else argv)
    try:
        code = tool(argv[0]).run(argv)
    except ToolExit as exc:
        code = exc.code
    flush_out()
    return code


# ---------------------------------------------------------------------- lilxml-like element view

_NAME = r"[A-Za-z_:][-\w.:]*"
_START = re.compile(r"<(" + _NAME + r")((?:\s+[^\s=/>]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*)\s*(/?)>")
_ATTR = re.compile(r"([^\s=/>]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_END = re.compile(r"</\s*(" + _NAME + r")\s*>")
_ENTITIES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&apos;": "'", "&quot;": '"'}
_ENTITY = re.compile(r"&(?:amp|lt|gt|apos|quot);")
_ENCODE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&apos;", '"': "&quot;"})


def _entities(text: str) -> str:
    """lilxml decodes the five predefined entities and leaves any other '&' as it is."""
    return _ENTITY.sub(lambda m: _ENTITIES[m.group(0)], text) if "&" in text else text


class XMLElement:
    """One element as lilxml holds it: tag, attributes in order, children, and pcdata with the
    predefined entities decoded and C whitespace trimmed at both ends."""

    __slots__ = ("tag", "attrs", "children", "pcdata", "hasent")

    def __init__(self, tag: str, attrs: list[tuple[str, str]]) -> None:
        self.tag = tag
        self.attrs = attrs
        self.children: list[XMLElement] = []
        self.pcdata = ""
        self.hasent = False

    def attr(self, name: str) -> str:
        """findXMLAttValu: the value, or "" when the attribute is missing."""
        for key, value in self.attrs:
            if key == name:
                return value
        return ""


class BadXML(ValueError):
    pass


def parse_element(raw: bytes) -> XMLElement:
    """The element in ``raw`` (one complete top-level element, as framed)."""
    text = decode(raw)
    element, _ = _parse_at(text, text.find("<"))
    return element


def _parse_at(text: str, pos: int) -> tuple[XMLElement, int]:
    m = _START.match(text, pos)
    if m is None:
        raise BadXML(f"bad start tag {text[pos:pos + 40]!r}")
    element = XMLElement(m.group(1), [(key, _entities(double or single))
                                      for key, double, single in _ATTR.findall(m.group(2))])
    pos = m.end()
    if m.group(3):
        return element, pos
    pieces: list[str] = []
    while True:
        lt = text.find("<", pos)
        if lt < 0:
            raise BadXML(f"no end tag for <{element.tag}>")
        pieces.append(text[pos:lt])
        if text.startswith("</", lt):
            end = _END.match(text, lt)
            if end is None or end.group(1) != element.tag:
                raise BadXML(f"closing tag does not match {element.tag}")
            pos = end.end()
            break
        if text.startswith("<!--", lt):
            close = text.find("-->", lt + 4)
            if close < 0:
                raise BadXML("unterminated comment")
            pos = close + 3
            continue
        if text.startswith("<![CDATA[", lt):
            close = text.find("]]>", lt)
            if close < 0:
                raise BadXML("unterminated CDATA")
            pos = close + 3
            continue
        child, pos = _parse_at(text, lt)
        element.children.append(child)
    raw_pcdata = "".join(pieces).strip(_C_SPACE)
    element.hasent = "&" in raw_pcdata
    element.pcdata = _entities(raw_pcdata)
    return element, pos


def format_element(element: XMLElement, level: int = 0) -> str:
    """prXMLEle: how the reference tools echo each element at -vv."""
    indent = " " * (4 * level)
    parts = [f"{indent}<{element.tag}"]
    parts += [f' {key}="{value.translate(_ENCODE)}"' for key, value in element.attrs]
    if element.children:
        parts.append(">\n")
        parts += [format_element(child, level + 1) for child in element.children]
    if element.pcdata:
        if not element.children:
            parts.append(">\n")
        parts.append(element.pcdata.translate(_ENCODE) if element.hasent else element.pcdata)
        if not element.pcdata.endswith("\n"):
            parts.append("\n")
    if element.children or element.pcdata:
        parts.append(f"{indent}</{element.tag}>\n")
    else:
        parts.append("/>\n")
    return "".join(parts)


# ------------------------------------------------------------------------------------ connection

class Alarm(Exception):
    """The deadline set with Connection.alarm() passed while waiting for the server."""


_HERRORS = {socket.EAI_NONAME: "Unknown host", socket.EAI_AGAIN: "Host name lookup failure"}


class Connection:
    """The tools' link to the server: a TCP socket of our own, or a descriptor inherited with -d.

    Reading is exact: the stream is fed to the framer up to each '>' and an element is handed out
    as soon as its last byte is read, so a tool that exits after some element leaves whatever
    follows it unread. With an inherited descriptor that matters (the next program reading it gets
    the rest, as with the reference tools, which read such a descriptor unbuffered); for a socket
    the data is peeked and only what was used is consumed.
    """

    def __init__(self, fd: int, sock: socket.socket | None, host: str, port: int, verbose: int,
                 direct: bool) -> None:
        self.fd = fd
        self.sock = sock
        self.host = host
        self.port = port
        self.verbose = verbose
        self.direct = direct
        self.framer = Framer()
        self.pending = b""          # received (or peeked) but not fed to the framer
        self.deadline: float | None = None
        self.eof_message = "INDI server {host}/{port} disconnected\n"
        self.progress: Callable[[bytes, int, float], None] | None = None
        self.element_done: Callable[[], None] | None = None
        self._head = bytearray()    # the first bytes of the element being received
        self._element_bytes = 0
        self._element_start = 0.0
        self._peek = False
        if direct:
            try:
                mode = os.fstat(fd).st_mode
            except OSError:
                mode = 0
            if stat.S_ISSOCK(mode):
                try:
                    self.sock = socket.socket(fileno=os.dup(fd))
                    self._peek = True
                except OSError:
                    self.sock = None

    # -- opening
    @classmethod
    def open_tcp(cls, host: str, port: int, verbose: int, herror: bool) -> Connection:
        """Connect as the reference tools do (gethostbyname, IPv4), or print their error and exit 2."""
        try:
            address = socket.gethostbyname(host)
        except (socket.gaierror, UnicodeError) as exc:
            if herror:  # indi_getprop uses herror()
                code = exc.errno if isinstance(exc, socket.gaierror) else socket.EAI_NONAME
                err(f"gethostbyname: {_HERRORS.get(code, 'Unknown server error')}\n")
            else:       # the others perror(), and gethostbyname leaves errno alone
                err("gethostbyname: Success\n")
            raise ToolExit(2) from None
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as exc:
            err(f"socket: {os.strerror(exc.errno or 0)}\n")
            raise ToolExit(2) from None
        try:
            sock.connect((address, port & 0xFFFF))
        except OSError as exc:
            err(f"connect: {os.strerror(exc.errno or 0)}\n")
            sock.close()
            raise ToolExit(2) from None
        return cls(sock.fileno(), sock, host, port, verbose, direct=False)

    @classmethod
    def open_direct(cls, fd: int, host: str, port: int, verbose: int) -> Connection:
        # fdopen(fd, "r") and fdopen(fd, "w") both: the descriptor must be open for both.
        try:
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            errno_ = 0 if flags & os.O_ACCMODE == os.O_RDWR else errno.EINVAL
        except OSError as exc:
            errno_ = exc.errno or errno.EBADF
        if errno_:
            err(f"Direct fd {fd}: {os.strerror(errno_)}\n")
            raise ToolExit(1)
        return cls(fd, None, host, port, verbose, direct=True)

    # -- writing
    def send(self, data: str) -> None:
        """Write to the server; raises OSError if it cannot be written."""
        payload = encode(data)
        if self.sock is not None and not self.direct:
            self.sock.sendall(payload)
            return
        view = memoryview(payload)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def shutdown_write(self) -> None:
        try:
            if self.sock is not None:
                self.sock.shutdown(socket.SHUT_WR)
            else:
                socket.socket(fileno=os.dup(self.fd)).shutdown(socket.SHUT_WR)
        except OSError:
            pass

    # -- the alarm
    def alarm(self, seconds: int) -> None:
        """alarm(seconds): 0 cancels, a negative value is so far away that it never comes."""
        self.deadline = time.monotonic() + seconds if seconds > 0 else None

    # -- reading
    def _wait_readable(self) -> None:
        while True:
            if self.deadline is None:
                timeout = None
            else:
                timeout = self.deadline - time.monotonic()
                if timeout <= 0:
                    raise Alarm()
            try:
                ready, _, _ = select.select([self.fd], [], [], timeout)
            except InterruptedError:
                continue
            if ready:
                return
            if self.deadline is not None and time.monotonic() >= self.deadline:
                raise Alarm()

    def _fill(self) -> None:
        """Get more bytes into self.pending (blocking until the deadline)."""
        self._wait_readable()
        try:
            if self._peek:
                data = self.sock.recv(1 << 20, socket.MSG_PEEK)
            elif self.sock is not None and not self.direct:
                data = self.sock.recv(1 << 20)
            else:
                data = os.read(self.fd, 1)   # unbuffered, as the reference reads an inherited fd
        except OSError as exc:
            err(f"read: {os.strerror(exc.errno or 0)}\n")
            raise ToolExit(2) from None
        if not data:
            err(self.eof_message.format(host=self.host, port=self.port))
            raise ToolExit(2)
        self.pending = data

    def _consume(self, n: int) -> bytes:
        chunk = self.pending[:n]
        self.pending = self.pending[n:]
        if self._peek:
            got = 0
            while got < n:
                got += len(self.sock.recv(n - got))
        if self.verbose > 2:
            err_bytes(b"".join(b"Read %c\n" % b for b in chunk))
        return chunk

    def next_element(self) -> XMLElement:
        """The next complete element from the server. Exits 2 on EOF or bad XML; raises Alarm."""
        while True:
            if not self.pending:
                self._fill()
            gt = self.pending.find(b">")
            chunk = self._consume(len(self.pending) if gt < 0 else gt + 1)
            was_idle = self.framer.idle
            try:
                frames = self.framer.feed(chunk)
            except FramingError as exc:
                err(f"Bad XML from {self.host}/{self.port}: {exc}\n")
                raise ToolExit(2) from None
            if frames:
                self._element_bytes = 0
                self._head.clear()
                if self.element_done is not None:
                    self.element_done()
                try:
                    element = parse_element(frames[0].raw)
                except BadXML as exc:
                    err(f"Bad XML from {self.host}/{self.port}: {exc}\n")
                    raise ToolExit(2) from None
                if self.verbose > 1:
                    err(format_element(element))
                return element
            if not self.framer.idle:
                if was_idle or not self._element_bytes:
                    self._element_start = time.monotonic()
                    self._head.clear()
                    self._element_bytes = 0
                self._element_bytes += len(chunk)
                if len(self._head) < 4096:
                    self._head += chunk[:4096 - len(self._head)]
                if self.progress is not None:
                    self.progress(bytes(self._head), self._element_bytes, self._element_start)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
