"""INDI number formats: printf formats plus libindi's ``%<w>.<f>m`` sexagesimal, and parsing.

Formatting follows libindi's ``numberFormat``/``fs_sexa`` digit for digit (the tests compare against
libindi itself); parsing follows the protocol's rules for sexagesimal input.
"""

from __future__ import annotations

import math
import re

__all__ = ["format_number", "parse_number", "format_sexagesimal", "NumberFormatError"]


class NumberFormatError(ValueError):
    """A number format or a number text that cannot be used."""


# libindi reads a sexagesimal format with sscanf("%%%d.%d%c"): a width and a precision are required.
_SEXA_FORMAT = re.compile(r"%([-+]?\d+)\.([-+]?\d+)m\Z", re.ASCII)

# The precision part of a %m format selects the layout (libindi's numberFormat):
# 9 -> :mm:ss.ss, 8 -> :mm:ss.s, 6 -> :mm:ss, 5 -> :mm.m, anything else -> :mm
_FRACBASE = {9: 360000, 8: 36000, 6: 3600, 5: 600}

# One printf conversion with optional flags, width, precision and length modifiers.
_PRINTF = re.compile(r"(?P<pre>[^%]*(?:%%[^%]*)*)%(?P<spec>[-+ #0]*\d*(?:\.\d*)?)(?:hh|h|ll|l|L|q|j|z|t)?"
                     r"(?P<conv>[diouxXeEfFgGaAcs])(?P<post>(?:[^%]|%%)*)\Z", re.DOTALL | re.ASCII)
# libindi formats into a 64-byte buffer; a larger width or precision (from a peer's format attribute)
# would only make us build a huge string ("%2147483648.3f" is 2 GB), so it is refused.
_MAX_WIDTH = 1024
_DIGITS = re.compile(r"\d+", re.ASCII)


def format_sexagesimal(value: float, width: int, fracbase: int) -> str:
    """libindi's fs_sexa: the whole part ``width`` wide, then minutes (and seconds) in units of 1/fracbase.

    Rounding is done once in units of the last field, so it carries (0.99989 -> 1:00:00).
    """
    if fracbase not in (60, 600, 3600, 36000, 360000):
        raise NumberFormatError(f"unknown sexagesimal fraction base {fracbase}")
    if not math.isfinite(value):
        return _c_width("nan" if math.isnan(value) else ("-inf" if value < 0 else "inf"), width)
    negative = value < 0
    if negative:
        value = -value
    n = int(value * fracbase + 0.5)
    degrees, fraction = divmod(n, fracbase)
    if negative and degrees == 0:
        # printf("%*s-0", w - 2, ""): a negative width pads on the right, which for "" is the same
        whole = " " * abs(width - 2) + "-0"
    else:
        whole = _c_width(str(-degrees if negative else degrees), width)
    if fracbase == 60:
        return f"{whole}:{fraction:02d}"
    if fracbase == 600:
        return f"{whole}:{fraction // 10:02d}.{fraction % 10:d}"
    minutes, seconds = divmod(fraction, fracbase // 60)
    if fracbase == 3600:
        return f"{whole}:{minutes:02d}:{seconds:02d}"
    if fracbase == 36000:
        return f"{whole}:{minutes:02d}:{seconds // 10:02d}.{seconds % 10:d}"
    return f"{whole}:{minutes:02d}:{seconds // 100:02d}.{seconds % 100:02d}"


def _c_width(text: str, width: int) -> str:
    """printf's %*s: right-justify in ``width``; a negative width left-justifies."""
    return text.rjust(width) if width >= 0 else text.ljust(-width)


def format_number(fmt: str, value: float) -> str:
    """Format ``value`` with an INDI number format, as libindi's numberFormat does.

    ``%<w>.<f>m`` is sexagesimal; anything else is a printf format with one conversion.
    """
    m = _SEXA_FORMAT.match(fmt)
    if m:
        width, precision = int(m.group(1)), int(m.group(2))
        if max(abs(width), abs(precision)) > _MAX_WIDTH:
            raise NumberFormatError(f"width or precision over {_MAX_WIDTH} in {fmt!r}")
        return format_sexagesimal(value, width - precision, _FRACBASE.get(precision, 60))
    p = _PRINTF.match(fmt)
    if not p:
        raise NumberFormatError(f"not a number format: {fmt!r}")
    conv = p.group("conv")
    if conv in "cs":
        raise NumberFormatError(f"not a number format: {fmt!r}")
    if any(int(d) > _MAX_WIDTH for d in _DIGITS.findall(p.group("spec"))):
        raise NumberFormatError(f"width or precision over {_MAX_WIDTH} in {fmt!r}")
    arg: float | int = value
    if conv in "diouxX":
        # C would reinterpret the double's bits; libindi drivers mean the integer part.
        if not math.isfinite(value):
            raise NumberFormatError(f"{value} cannot be formatted with {fmt!r}")
        arg = int(value)
        if conv == "u":
            conv = "d"
        if arg < 0 and conv in "oxX":
            arg &= 0xFFFFFFFF
    elif conv in "aA":
        text = float(value).hex()
        return p.group("pre").replace("%%", "%") + (text.upper() if conv == "A" else text) + \
            p.group("post").replace("%%", "%")
    return p.group("pre").replace("%%", "%") + ("%" + p.group("spec") + conv) % arg + \
        p.group("post").replace("%%", "%")


# strtod's accepted forms: decimal with optional exponent, hexadecimal, inf and nan.
_STRTOD = re.compile(
    rb"[ \t\n\v\f\r]*(?P<num>[-+]?(?:0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][-+]?\d+)?"
    rb"|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|inf(?:inity)?|nan(?:\([0-9A-Za-z_]*\))?))",
    re.IGNORECASE,
)
_NON_DIGITS = re.compile(rb"[^0-9]+")


def _strtod(data: bytes, pos: int) -> tuple[float, int] | None:
    m = _STRTOD.match(data, pos)
    if not m:
        return None
    text = m.group("num").decode()
    body = text.lstrip("+-")
    if body[:2].lower() == "0x":
        if "p" not in body.lower():
            body += "p0"
        try:
            value = float.fromhex(body)
        except OverflowError:  # strtod's HUGE_VAL
            value = math.inf
        if text.startswith("-"):
            value = -value
    elif body[:3].lower() == "nan":
        value = math.nan
    else:
        value = float(text)
    return value, m.end()


def parse_number(text: str | bytes) -> float:
    """Parse an INDI number: integer, real, or sexagesimal ``d:m:s`` (separators ``:``, ``;`` or space).

    A leading ``-`` negates the whole value (so ``-0:30`` is -0.5), missing parts are 0 and parts
    after the third are ignored: ``-10:30:18``, ``-10 30.3`` and ``-10.505`` are equal.
    Raises NumberFormatError when no number can be read.
    """
    data = (text.encode() if isinstance(text, str) else bytes(text)).strip()
    negative = data.startswith(b"-")
    if negative:
        data = data[1:]
    parts: list[float] = []
    pos = 0
    while len(parts) < 3:
        got = _strtod(data, pos)
        if got is None:
            break
        value, pos = got
        parts.append(value)
        gap = _NON_DIGITS.match(data, pos)
        if not gap:
            break
        pos = gap.end()
    if not parts:
        raise NumberFormatError(f"not a number: {text!r}")
    parts += [0.0] * (3 - len(parts))
    result = parts[0] + parts[1] / 60 + parts[2] / 3600
    return -result if negative else result
