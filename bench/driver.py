"""The benchmark driver in Python: the fallback for bench/driver.c when no C compiler is found.

Same protocol as driver.c (device "Bench"; newNumberVector burst/blob/echo); see that file. Output
is prebuilt bytes written with os.write in large pieces, so the driver is rarely the bottleneck.
"""

from __future__ import annotations

import base64
import os
import re
import sys

STAMP = "2024-01-01T00:00:00"
CHUNK = 1 << 20


def _vector(name: str, members: list[tuple[str, str]], perm: str) -> str:
    body = "".join(f'    <defNumber name="{m}" label="{label}" format="%.0f" min="0" max="1e9" step="1">\n0\n'
                   f"    </defNumber>\n" for m, label in members)
    return (f'<defNumberVector device="Bench" name="{name}" label="{name}" group="Bench" state="Idle" '
            f'perm="{perm}" timeout="60" timestamp="{STAMP}">\n{body}</defNumberVector>\n')


DEFS = (_vector("seq", [("seq", "Sequence"), ("value", "Value")], "ro")
        + _vector("echo", [("value", "Value")], "rw")
        + _vector("burst", [("count", "Count")], "rw")
        + _vector("blob", [("count", "Count"), ("size", "Size"), ("enclen", "With enclen")], "rw")
        + f'<defBLOBVector device="Bench" name="image" label="Image" group="Bench" state="Idle" perm="ro" '
          f'timeout="60" timestamp="{STAMP}">\n    <defBLOB name="image" label="Image"/>\n</defBLOBVector>\n'
        ).encode()

SEQ = ('<setNumberVector device="Bench" name="seq" state="Ok" timeout="60" timestamp="' + STAMP + '">\n'
       '    <oneNumber name="seq">\n%d\n    </oneNumber>\n'
       '    <oneNumber name="value">\n%d.5\n    </oneNumber>\n'
       '</setNumberVector>\n').encode()
ECHO = ('<setNumberVector device="Bench" name="echo" state="Ok" timeout="60" timestamp="' + STAMP + '">\n'
        '    <oneNumber name="value">\n%s\n    </oneNumber>\n</setNumberVector>\n').encode()

_ELEMENT = re.compile(rb"<getProperties[^>]*>|<newNumberVector\b(.*?)</newNumberVector>", re.S)
_NAME = re.compile(rb"""\sname\s*=\s*["']([^"']*)["']""")
_MEMBER = re.compile(rb"""<oneNumber[^>]*\sname\s*=\s*["']([^"']*)["'][^>]*>\s*([^<]*?)\s*</oneNumber""")

_blob_cache: dict[int, bytes] = {}


def write_all(data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(1, view)
        except InterruptedError:
            continue
        except OSError:
            sys.exit(0)  # the server went away
        view = view[n:]


def blob_body(size: int) -> tuple[bytes, int]:
    body = _blob_cache.get(size)
    if body is None:
        x = 12345
        raw = bytearray(size)
        for i in range(min(size, 4096)):  # a pseudo-random block repeated: content does not matter
            x = (x * 1103515245 + 12345) & 0xFFFFFFFF
            raw[i] = (x >> 16) & 0xFF
        for start in range(4096, size, 4096):
            raw[start:start + 4096] = raw[:min(4096, size - start)]
        encoded = base64.b64encode(bytes(raw))
        lines = [encoded[i:i + 72] for i in range(0, len(encoded), 72)]
        body = b"\n".join(lines) + b"\n"
        _blob_cache[size] = body
    return body, 4 * ((size + 2) // 3)


def burst(count: int) -> None:
    step = 2000
    for start in range(0, count, step):
        write_all(b"".join([SEQ % (i, i * 3) for i in range(start, min(count, start + step))]))


def blobs(count: int, size: int, with_enclen: bool = True) -> None:
    body, enclen = blob_body(max(size, 1))
    enclen_attr = f' enclen="{enclen}"' if with_enclen else ""
    head = (f'<setBLOBVector device="Bench" name="image" state="Ok" timeout="60" timestamp="{STAMP}">\n'
            f'    <oneBLOB name="image" size="{max(size, 1)}" format=".fits"{enclen_attr}>\n').encode()
    tail = b"    </oneBLOB>\n</setBLOBVector>\n"
    for _ in range(count):
        write_all(head)
        write_all(body)
        write_all(tail)


def handle(element: re.Match[bytes]) -> None:
    if element.group(1) is None:
        write_all(DEFS)
        return
    text = element.group(1)
    start_end = text.find(b">")
    m = _NAME.search(text, 0, start_end if start_end >= 0 else len(text))
    name = m.group(1) if m else b""
    members = dict(_MEMBER.findall(text))

    def number(key: bytes, default: bytes = b"0") -> int:
        try:
            return int(float(members.get(key, default)))
        except ValueError:
            return 0

    if name == b"burst":
        burst(number(b"count"))
    elif name == b"blob":
        blobs(number(b"count"), number(b"size"), number(b"enclen", b"1") != 0)
    elif name == b"echo":
        write_all(ECHO % members.get(b"value", b"0")[:64])


def main() -> None:
    pending = b""
    while True:
        try:
            data = os.read(0, CHUNK)
        except InterruptedError:
            continue
        if not data:
            return
        pending += data
        pos = 0
        while True:
            element = _ELEMENT.search(pending, pos)
            if element is None or 0 <= pending.find(b"<newNumberVector", pos, element.start()):
                break  # nothing complete, or an incomplete vector comes first: wait for the rest
            handle(element)
            pos = element.end()
        pending = pending[pos:]
        if len(pending) > 1 << 20 and b"<" not in pending[-64:]:
            pending = pending[-64:]


if __name__ == "__main__":
    main()
