"""INDI timestamps: timestamp(), parse_timestamp() and is_timestamp().

Covered:
- timestamp() has libindi's form YYYY-MM-DDTHH:MM:SS in UTC, and gives the same text as libindi 1.9.9's own
  timestamp() (libindiclient.so.1 through ctypes; skipped when missing) for the current second;
- timestamp(when) against datetime's UTC calendar; timestamp(when, decimals) stays within one unit of the
  last digit of the true time, never a second off (the fraction may round up to a whole second);
- parse_timestamp() with and without a fraction and 'Z' (the protocol text: YYYY-MM-DDTHH:MM:SS[.s]);
- is_timestamp() rejects anything else, in particular path-like text (the server builds a log file name from
  a driver's timestamp) and digits other than ASCII ones.
"""

from __future__ import annotations

import ctypes
import random
import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from indi.protocol import is_timestamp, parse_timestamp, timestamp

LIBINDI_FORM = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", re.ASCII)


def utc(when: float) -> datetime:
    return datetime.fromtimestamp(when, UTC)


@pytest.mark.peers
def test_timestamp_is_what_libindi_writes_now():
    try:
        lib = ctypes.CDLL("libindiclient.so.1")
    except OSError:
        pytest.skip("libindiclient.so.1 is not installed (Debian: libindiclient1 / indi-bin)")
    lib.timestamp.restype = ctypes.c_char_p
    before = time.time()
    theirs = lib.timestamp().decode()
    after = time.time()
    assert LIBINDI_FORM.fullmatch(theirs)
    # The two clocks are read a moment apart: libindi's text is the second of one of them.
    assert theirs in {timestamp(before), timestamp(after)}


def test_timestamp_now_has_libindi_form_and_is_utc():
    before = int(time.time())
    text = timestamp()
    after = int(time.time())
    assert LIBINDI_FORM.fullmatch(text)
    assert text in {utc(before).strftime("%Y-%m-%dT%H:%M:%S"), utc(after).strftime("%Y-%m-%dT%H:%M:%S")}


@pytest.mark.parametrize(("when", "text"), [
    (0, "1970-01-01T00:00:00"),
    (951782400, "2000-02-29T00:00:00"),
    (1714564800.75, "2024-05-01T12:00:00"),  # libindi writes whole seconds: truncated, not rounded
    (4102444799.999, "2099-12-31T23:59:59"),
])
def test_timestamp_of_a_given_time(when, text):
    assert timestamp(when) == text
    assert timestamp(when) == utc(int(when)).strftime("%Y-%m-%dT%H:%M:%S")


def test_timestamp_with_decimals_is_within_one_unit_of_the_time():
    rng = random.Random(42)
    moments = [1714564800 + rng.random() for _ in range(2000)] + [1.9996, 59.99951, 1714564799.9999]
    wrong = []
    for when in moments:
        for decimals in (1, 2, 3, 6):
            text = timestamp(when, decimals)
            assert LIBINDI_FORM.fullmatch(text[:-decimals - 1]) and re.fullmatch(r"\.\d+", text[-decimals - 1:]), text
            error = (parse_timestamp(text) - utc(when)).total_seconds()
            if abs(error) > 10 ** -decimals + 1e-6:
                wrong.append((when, decimals, text, error))
    assert wrong == []


def test_timestamps_with_decimals_never_go_backwards():
    texts = [timestamp(1714564800 + i / 10000, 3) for i in range(9990, 10010)]
    assert texts == sorted(texts)


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-05-01T12:34:56", datetime(2024, 5, 1, 12, 34, 56, tzinfo=UTC)),
    ("2024-05-01T12:34:56Z", datetime(2024, 5, 1, 12, 34, 56, tzinfo=UTC)),
    ("2024-05-01T12:34:56.5", datetime(2024, 5, 1, 12, 34, 56, 500000, tzinfo=UTC)),
    ("2024-05-01T12:34:56.123456Z", datetime(2024, 5, 1, 12, 34, 56, 123456, tzinfo=UTC)),
    ("2024-05-01T12:34:56.9999999", datetime(2024, 5, 1, 12, 34, 56, 999999, tzinfo=UTC)),
    (" 2024-05-01T12:34:56\n", datetime(2024, 5, 1, 12, 34, 56, tzinfo=UTC)),
])
def test_parse_timestamp(text, expected):
    got = parse_timestamp(text)
    assert got == expected
    assert got.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["", "2024-05-01", "2024-05-01 12:34:56", "2024-05-01T12:34", "24-05-01T12:34:56",
                                  "2024-05-01T12:34:56.", "2024-13-01T00:00:00", "2024-02-30T00:00:00",
                                  "2024-05-01T25:00:00", "yesterday"])
def test_parse_timestamp_rejects_what_is_not_a_timestamp(text):
    with pytest.raises(ValueError):
        parse_timestamp(text)


@pytest.mark.parametrize("text", ["2024-05-01T12:34:56", "2024-05-01T12:34:56Z", "2024-05-01T12:34:56.25",
                                  timestamp(), timestamp(1e9, 3)])
def test_is_timestamp_accepts_timestamps(text):
    assert is_timestamp(text)


@pytest.mark.parametrize("text", [
    "../../etc",
    "../../etc/passwd",
    "2024-05-01T12:34:56/../../x",
    "/tmp/2024-05-01T12:34:56",
    "2024-05-01T12:34:56\n",
    "2024-05-01T12:34:56\x00",
    "2024-05-01",
    "2024-05-01 12:34:56",
    "",
    "\u0662\u0660\u0662\u0664-05-01T12:34:56",  # Arabic-Indic digits
    "\uff12\uff10\uff12\uff14-\uff10\uff15-\uff10\uff11T12:34:56",  # full-width digits
])
def test_is_timestamp_rejects_anything_else(text):
    assert not is_timestamp(text)
