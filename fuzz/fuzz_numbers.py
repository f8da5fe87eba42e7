#!/usr/bin/env python3
"""Coverage-guided fuzz target (atheris/libFuzzer) for INDI numbers: parse_number() and format_number().

A peer controls both the text of a number and the format of a number member. The target fails when:

- parse_number() raises anything but NumberFormatError, or returns something that is not a float;
- format_number() raises anything but NumberFormatError, or returns text longer than its bounds
  (a width or precision over 1024 is refused: libindi writes at most 63 characters);
- a sexagesimal format's text does not read back within the format's precision.

    .venv/bin/python fuzz/fuzz_numbers.py -max_total_time=300 fuzz/corpus-numbers
"""

from __future__ import annotations

import math
import re
import struct
import sys
from contextlib import nullcontext
from pathlib import Path

try:
    import atheris
except ImportError:
    atheris = None

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

with atheris.instrument_imports() if atheris is not None else nullcontext():
    from indi.protocol import NumberFormatError, format_number, parse_number

# %<w>.<f>m: the precision picks the layout and so the unit of the last field (else minutes).
SEXA_FORMAT = re.compile(r"%([-+]?\d+)\.([-+]?\d+)m\Z")
SEXA_UNITS = {5: 1 / 600, 6: 1 / 3600, 8: 1 / 36000, 9: 1 / 360000}


def test_one_input(data: bytes) -> None:
    if len(data) < 9:
        return
    value = struct.unpack("<d", data[:8])[0]
    rest = data[8:]
    cut = rest.find(b"\x00")
    fmt_bytes, text_bytes = (rest, rest) if cut < 0 else (rest[:cut], rest[cut + 1:])
    fmt = fmt_bytes.decode("utf-8", "replace")
    try:
        number = parse_number(text_bytes)
        if not isinstance(number, float):
            raise AssertionError(f"parse_number({text_bytes!r}) gave {number!r}")
    except NumberFormatError:
        pass
    try:
        text = format_number(fmt, value)
    except NumberFormatError:
        return
    if len(text) > len(fmt) + 2 * 1024 + 400:
        raise AssertionError(f"format_number({fmt!r}, {value!r}) gave {len(text)} characters")
    sexagesimal = SEXA_FORMAT.match(fmt)
    if sexagesimal and math.isfinite(value) and abs(value) < 1e9:
        unit = SEXA_UNITS.get(int(sexagesimal.group(2)), 1 / 60)
        back = parse_number(text)
        if abs(back - value) > unit / 2 + 1e-9 * max(1.0, abs(value)):
            raise AssertionError(f"{fmt!r}: {value!r} -> {text!r} -> {back!r}")


def main() -> None:
    if atheris is None:
        sys.exit("fuzz_numbers: atheris is not installed (.venv/bin/pip install atheris)")
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
