"""Image files for the CCD simulators: FITS built with cfitsio (through fitsio, as libindi does),
header cards written as libindi writes them, and local uploads named as libindi names them."""

from __future__ import annotations

import math
import os
import re
import tempfile
import zlib
from pathlib import Path

import fitsio
import numpy as np

__all__ = ["card", "encode", "upload_name", "clean_prefix"]



def card(key: str, value: object, comment: str = "", decimals: int | None = None) -> str:
    """One 80-character header card as cfitsio's fits_update_key_* writes it: strings quoted and
    padded to 8 characters, integers right-aligned, doubles in %.<decimals>E (libindi's choice)."""
    if isinstance(value, str):
        text = value.replace("'", "''")[:68]
        field = f"'{text:<8}'".ljust(20)
    elif isinstance(value, bool):
        field = ("T" if value else "F").rjust(20)
    elif isinstance(value, int):
        field = str(value).rjust(20)
    else:
        number = float(value)  # type: ignore[arg-type]
        field = (f"{number:.{decimals}E}" if decimals is not None and math.isfinite(number) else repr(number)).rjust(20)
    line = f"{key:<8}= {field}"
    if comment:
        line += f" / {comment}"
    return line[:80]


def encode(frame: np.ndarray, cards: list[str], form: str, compress: bool) -> tuple[bytes, str, int]:
    """The frame as file bytes: (data, format, uncompressed size). ``form`` is "fits" or "native"
    (the raw pixels, ".bin"); compression gives ".fits.fz" (Rice tiles, as fpack) or ".bin.z"
    (zlib), and the size is then the uncompressed one, as libindi reports it. Pass the frame as
    the only reference to it (``encode(render(...), ...)``): it is let go as soon as it is written."""
    if form == "native":
        raw = frame.astype("<u2", copy=False).tobytes()
        if compress:
            return zlib.compress(raw, 6), ".bin.z", len(raw)
        return raw, ".bin", len(raw)
    # the size of the same image uncompressed: header (mandatory cards, ours, END) and data, in blocks
    plain = math.ceil((len(cards) + 13) * 80 / 2880) * 2880 + math.ceil(frame.nbytes / 2880) * 2880
    descriptor, path = tempfile.mkstemp(prefix="indi-ccd-", suffix=".fits")
    os.close(descriptor)
    try:
        with fitsio.FITS(path, "rw", clobber=True) as fits:
            fits.write(frame, compress="RICE" if compress else None)
            hdu = fits[-1]
            for line in cards:
                # write_record keeps the card exactly as formatted (write_key would reformat doubles)
                hdu._FITS.write_record(hdu._ext + 1, line)
        del frame   # the caller passes its only reference: the pixels go before the file is read
        data = Path(path).read_bytes()
    finally:
        os.unlink(path)
    if compress:
        return data, ".fits.fz", plain
    return data, ".fits", len(data)


def clean_prefix(prefix: str) -> str:
    """A file name prefix that cannot leave the upload directory: no path separators, no NUL,
    not "." or ".." (libindi writes whatever it is given, ../ included)."""
    cleaned = re.sub(r"[/\\\x00]", "", prefix).strip()
    return cleaned if cleaned.strip(".") else "IMAGE_XXX"


def upload_name(directory: str, prefix: str, extension: str, now: str) -> Path:
    """Where libindi would save the next image: XXX becomes one more than the highest index of the
    files whose names contain the prefix (the digits between the last "_" and the last "."), and
    ISO8601 becomes the time. The directory is created if needed."""
    folder = Path(directory).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    prefix = clean_prefix(prefix)
    stem = prefix.replace("_ISO8601", "").replace("_XXX", "")
    highest = 0
    for entry in os.listdir(folder):
        if stem and stem not in entry:
            continue
        underscore, dot = entry.rfind("_"), entry.rfind(".")
        if underscore != -1 and dot > underscore:
            digits = re.match(r"\s*[+-]?\d+", entry[underscore + 1:dot])
            highest = max(highest, int(digits.group()) if digits else 0)
    name = prefix.replace("ISO8601", now).replace("XXX", f"{highest + 1:03d}")
    return folder / f"{name}{extension}"
