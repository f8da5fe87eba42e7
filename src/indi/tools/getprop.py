"""indi_getprop: print the values (or attributes) of INDI properties, as Debian's indi-bin 1.9.9 does.

Every element matching a query is printed each time a definition of its property arrives (and, with
-m, each time it is set), in the order the server sends them; BLOBs are saved to files named
device.property.element.format. The program exits as soon as every query without a wildcard has
been answered, or ``-t`` seconds after the last matching definition.
"""

from __future__ import annotations

import binascii
import re
import sys
import time
import zlib

from .common import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    GIT_TAG,
    INDIV,
    Alarm,
    Connection,
    Tool,
    ToolExit,
    XMLElement,
    atoi,
    encode,
    err,
    flush_out,
    out,
    scan_flags,
    tool_main,
)

WILDCARD = "*"

# Elements looked at: definitions, setBLOBVector (a BLOB's value), and with -m every set*Vector.
DEFS = [("defTextVector", "defText"), ("defNumberVector", "defNumber"), ("defSwitchVector", "defSwitch"),
        ("defLightVector", "defLight"), ("defBLOBVector", "defBLOB"), ("setBLOBVector", "oneBLOB"),
        ("setTextVector", "oneText"), ("setNumberVector", "oneNumber"), ("setSwitchVector", "oneSwitch"),
        ("setLightVector", "oneLight")]

# Query keywords that report an attribute of the property instead of element values.
KEYWORDS = [("_LABEL", "label"), ("_GROUP", "group"), ("_STATE", "state"), ("_PERM", "perm"),
            ("_TO", "timeout"), ("_TS", "timestamp")]

_SPEC = re.compile(r"([^.]+)\.([^.]+)\.([^.]+)", re.DOTALL)
_ZLIB_CODE = re.compile(r"Error (-?\d+)")
_ONE_BLOB = re.compile(rb"<oneBLOB\b(?:[^>]*?\senclen\s*=\s*[\"'](\d+)[\"'])?[^>]*>")


def usage_text(me: str) -> str:
    lines = [
        "Purpose: retrieve readable properties from an INDI server",
        GIT_TAG,
        f"Usage: {me} [options] [device.property.element ...]",
        '  Any component may be "*" to match all (beware shell metacharacters).',
        "  Reports all properties if none specified.",
        "  BLOBs are saved in file named device.property.element.format",
        "  In perl try: %props = split (/[=\\n]/, `getINDI`);",
        "  Set element to one of following to return property attribute:",
        *(f"    {keyword:>10} to report {attr}" for keyword, attr in KEYWORDS),
        "Output format: output is fully qualified name=value one per line",
        "  or just value if -1 and exactly one query without wildcards.",
        "Options:",
        "  -1    : print just value if expecting exactly one response",
        "  -d f  : use file descriptor f already open to server",
        f"  -h h  : alternate host, default is {DEFAULT_HOST}",
        "  -m    : keep monitoring for more updates",
        f"  -p p  : alternate port, default is {DEFAULT_PORT}",
        f"  -t t  : max time to wait, default is {DEFAULT_TIMEOUT} secs",
        "  -v    : verbose (cumulative)",
        "  -w    : show write-only properties too",
        "Exit status:",
        "  0: found at least one match for each query",
        "  1: at least one query returned nothing",
        "  2: real trouble, try repeating with -v",
    ]
    return "\n".join(lines) + "\n"


class Search:
    __slots__ = ("d", "p", "e", "wc", "ok")

    def __init__(self, d: str, p: str, e: str) -> None:
        self.d, self.p, self.e = d, p, e
        self.wc = WILDCARD in (d[0], p[0], e[0])
        self.ok = False


class ProgressBar:
    """A one-line progress report on stderr (a terminal) for a BLOB that takes over a second."""

    DELAY = 1.0
    INTERVAL = 0.1

    def __init__(self) -> None:
        self.shown = 0
        self.last = 0.0

    def update(self, head: bytes, received: int, started: float) -> None:
        now = time.monotonic()
        if now - started < self.DELAY or now - self.last < self.INTERVAL:
            return
        if not head.lstrip().startswith(b"<setBLOBVector"):
            return
        self.last = now
        device = re.search(rb"\sdevice\s*=\s*[\"']([^\"']*)", head)
        name = re.search(rb"\sname\s*=\s*[\"']([^\"']*)", head)
        blobs = list(_ONE_BLOB.finditer(head))
        what = b"%s.%s" % (device.group(1) if device else b"?", name.group(1) if name else b"?")
        if len(blobs) == 1 and blobs[0].group(1) and int(blobs[0].group(1)) > 0:
            total = int(blobs[0].group(1))
            received = max(received - blobs[0].end(), 0)  # count the data only
            fraction = min(received / total, 1.0)
            width = 30
            filled = int(fraction * width)
            text = b"%s [%s%s] %3d%% %d/%d bytes" % (what, b"#" * filled, b"." * (width - filled),
                                                      int(fraction * 100), min(received, total), total)
        else:
            text = b"%s: %d bytes" % (what, received)
        line = b"\r" + text + b" " * max(0, self.shown - len(text))
        self.shown = len(text)
        sys.stderr.buffer.write(line)
        sys.stderr.buffer.flush()

    def clear(self) -> None:
        if self.shown:
            sys.stderr.buffer.write(b"\r" + b" " * self.shown + b"\r")
            sys.stderr.buffer.flush()
            self.shown = 0
            self.last = 0.0


class GetProp(Tool):
    def __init__(self, me: str) -> None:
        super().__init__(me)
        self.justvalue = 0
        self.monitor = 0
        self.wflag = 0
        self.ndefs = 6
        self.searches: list[Search] = []
        self.onematch = False

    def usage_text(self) -> str:
        return usage_text(self.me)

    def flag(self, ch: str, take) -> bool:
        if self.common_flag(ch, take):
            pass
        elif ch == "1":
            self.justvalue += 1
        elif ch == "m":
            self.monitor += 1
            self.ndefs = 10
        elif ch == "w":
            self.wflag += 1
        else:
            self.unknown_flag(ch)
        return False

    def run(self, argv: list[str]) -> int:
        specs = scan_flags(argv, self.flag) or ["*.*.*"]
        for spec in specs:
            if self.verbose:
                err(f"looking for {spec}\n")
            m = _SPEC.match(spec)
            if m is None:
                err(f"Unknown format for property spec: {spec}\n")
                self.usage()
            self.searches.append(Search(*m.groups()))
        self.onematch = len(self.searches) == 1 and not self.searches[0].wc

        if self.directfd >= 0:
            self.conn = Connection.open_direct(self.directfd, self.host, self.port, self.verbose)
            if self.verbose:
                err(f"Using direct fd {self.directfd}\n")
        else:
            self.conn = Connection.open_tcp(self.host, self.port, self.verbose, herror=True)
            if self.verbose:
                err(f"Connected to {self.host} on port {self.port}\n")
        if sys.stderr.isatty():
            bar = ProgressBar()
            self.conn.progress = bar.update
            self.conn.element_done = bar.clear

        self.get_properties()
        return self.listen()

    def send(self, text: str) -> None:
        try:
            self.conn.send(text)
        except OSError:
            pass  # as fflush() on a dead socket: the read that follows reports it

    def get_properties(self) -> None:
        onedev = None
        for search in self.searches:
            if search.d[0] == WILDCARD or (onedev is not None and search.d != onedev):
                onedev = None
                break
            onedev = search.d
        if onedev is not None:
            self.send(f"<getProperties version='{INDIV}' device='{onedev}'/>\n")
        else:
            self.send(f"<getProperties version='{INDIV}'/>\n")
        if self.verbose:
            err(f"Queried properties from {onedev if onedev is not None else '*'}\n")

    def listen(self) -> int:
        conn = self.conn
        conn.alarm(self.timeout)
        while True:
            try:
                root = conn.next_element()
            except Alarm:
                return self.on_alarm()
            self.find_dpe(root)
            if self.monitor:
                flush_out()
            elif all(s.ok and not s.wc for s in self.searches):
                return 0

    def on_alarm(self) -> int:
        trouble = False
        for s in self.searches:
            if not s.ok:
                trouble = True
                err(f"No {s.d}.{s.p}.{s.e} from {self.host}:{self.port}\n")
        return 1 if trouble else 0

    def find_dpe(self, root: XMLElement) -> None:
        for search in self.searches:
            for vec, one in DEFS[:self.ndefs]:
                if root.tag != vec:
                    continue
                dev = root.attr("device")
                if search.d[0] != WILDCARD and dev != search.d:
                    continue
                nam = root.attr("name")
                if search.p[0] != WILDCARD and nam != search.p:
                    continue
                perm = root.attr("perm")
                if not self.wflag and perm and "r" not in perm:
                    if self.verbose:
                        err(f"{dev}.{nam} is write-only\n")
                    continue
                if vec == "defBLOBVector":
                    self.enable_blobs(dev, nam)
                else:
                    self.find_ele(root, dev, nam, one, search)
                if self.onematch:
                    return
                if vec.startswith("def"):
                    self.conn.alarm(self.timeout)

    def find_ele(self, root: XMLElement, dev: str, nam: str, defone: str, search: Search) -> None:
        iele = search.e
        for keyword, attr in KEYWORDS:
            if iele == keyword:
                value = root.attr(attr)
                search.ok = True
                if self.onematch and self.justvalue:
                    out(f"{value}\n")
                else:
                    out(f"{dev}.{nam}.{keyword}={value}\n")
                return
        for ep in root.children:
            if ep.tag != defone:
                continue
            enam = ep.attr("name")
            if iele[0] != WILDCARD and enam != iele:
                continue
            search.ok = True
            if defone == "oneBLOB":
                self.one_blob(ep, dev, nam, enam)
            elif self.onematch and self.justvalue:
                out(f"{ep.pcdata}\n")
            else:
                out(f"{dev}.{nam}.{enam}={ep.pcdata}\n")
            if self.onematch:
                return

    def enable_blobs(self, dev: str, nam: str) -> None:
        if self.verbose:
            err(f"sending enableBLOB {dev}.{nam}\n")
        self.send(f"<enableBLOB device='{dev}' name='{nam}'>Also</enableBLOB>\n")

    def one_blob(self, ep: XMLElement, dev: str, nam: str, enam: str) -> None:
        ucs = atoi(ep.attr("size"))
        if self.verbose:
            err(f"{dev}.{nam}.{enam} reports uncompressed size as {ucs}\n")
        fmt = ep.attr("format")
        isz = len(fmt) >= 2 and fmt.endswith(".z")
        try:
            blob = binascii.a2b_base64(ep.pcdata.encode("ascii", "replace"))
        except binascii.Error:
            err(f"{dev}.{nam}.{enam} bad base64\n")
            raise ToolExit(2) from None
        if isz:
            blob = self.uncompress(blob, ucs, f"{dev}.{nam}.{enam}")
        filename = f"{dev}.{nam}.{enam}{fmt}"
        if isz:
            filename = filename[:-2]
        try:
            with open(encode(filename), "wb") as f:
                if self.verbose:
                    err(f"Wrote {filename}\n")
                f.write(blob)
        except OSError as exc:
            err(f"{filename}: {exc.strerror}\n")

    @staticmethod
    def uncompress(data: bytes, size: int, what: str) -> bytes:
        """zlib's uncompress() into a buffer of the announced size; its error code on failure."""
        code = 0
        d = zlib.decompressobj()
        try:
            result = d.decompress(data, max(size, 0)) if size > 0 else b""
            if size <= 0 and data:
                code = -5  # Z_BUF_ERROR: no room
            elif not d.eof:
                code = -5 if d.unconsumed_tail else -3  # Z_BUF_ERROR: too small; Z_DATA_ERROR: truncated
        except zlib.error as exc:
            m = _ZLIB_CODE.search(str(exc))
            code = int(m.group(1)) if m else -3
        if code:
            err(f"{what} uncompress error {code}\n")
            raise ToolExit(2)
        return result


def main(argv: list[str] | None = None) -> int:
    return tool_main(GetProp, argv)


if __name__ == "__main__":
    sys.exit(main())
