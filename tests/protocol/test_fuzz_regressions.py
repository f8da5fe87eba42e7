"""Inputs the coverage-guided fuzzer (fuzz/fuzz_framer.py) found or starts from, replayed through its checks.

Covered: every file in fuzz/regressions/ (inputs that once crashed the target; see fuzz/README.md)
and fuzz/seeds/ passes fuzz_framer.test_one_input: framing whole and cut gives the same frames, the
framer stays bounded, every frame parses or raises ProtocolError, BlobStream agrees with itself.
Runs without atheris (the target imports it only to fuzz). Plus the bugs found, as plain tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import load_fuzz_target
from indi.protocol import ProtocolError, parse

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
INPUTS = sorted(p for d in ("regressions", "seeds") if (FUZZ / d).is_dir() for p in (FUZZ / d).iterdir()
                if p.is_file() and not p.name.startswith("."))


@pytest.fixture(scope="module")
def target():
    return load_fuzz_target("fuzz_framer")


@pytest.mark.parametrize("path", INPUTS, ids=[f"{p.parent.name}/{p.name}" for p in INPUTS])
def test_fuzz_input(target, path):
    target.test_one_input(path.read_bytes())


def test_non_ascii_text_in_a_blob_is_a_protocol_error():
    """Found by fuzz_framer: binascii raised ValueError (not binascii.Error) for non-ASCII base64."""
    raw = "<setBLOBVector device='d' name='n'><oneBLOB name='b' size='1' format='.x'>QUJé</oneBLOB></setBLOBVector>"
    with pytest.raises(ProtocolError, match="bad base64"):
        parse(raw.encode())
    with pytest.raises(ProtocolError, match="bad base64"):
        parse(raw.replace("setBLOBVector", "newBLOBVector").encode())  # a client's, as a driver reads it
