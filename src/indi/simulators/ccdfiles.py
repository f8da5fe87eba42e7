"""Image files for the CCD simulators: FITS built with cfitsio (through fitsio, as libindi does),
header cards written as libindi writes them, and local uploads named as libindi names them.

Where local uploads may go. A client chooses the directory (UPLOAD_SETTINGS.UPLOAD_DIR) and the
file name prefix (UPLOAD_PREFIX); libindi writes wherever it is told, so any client of the server
could make the driver create directories and fill files anywhere its user may write. Here:

- the prefix is a file name, never a path: separators and NUL are removed, "." and ".." refused;
- the directory must be absolute or start with "~" (a relative one is taken from the home
  directory), must not contain a ".." component, and once symbolic links are resolved must lie
  inside the home directory of the user the driver runs as, or inside one of the directories
  listed in the environment variable INDI_UPLOAD_DIRS (separated by ":"), which the person who
  starts the server sets (``INDI_UPLOAD_DIRS=/mnt/data:/media indiserver ...``).

A directory outside these is refused when it is set, with the property in Alert and a message
that says why, and checked again before each save (a link may have changed since).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import zlib
from pathlib import Path

import fitsio
import numpy as np

__all__ = ["card", "encode", "upload_name", "clean_prefix", "check_upload_dir", "upload_roots", "UPLOAD_DIRS_ENV"]

UPLOAD_DIRS_ENV = "INDI_UPLOAD_DIRS"



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


def upload_roots() -> list[Path]:
    """The directories uploads may go into: the home directory, then those of INDI_UPLOAD_DIRS."""
    roots = [os.path.expanduser("~")] + [d for d in os.environ.get(UPLOAD_DIRS_ENV, "").split(os.pathsep) if d]
    return list(dict.fromkeys(Path(os.path.realpath(os.path.expanduser(d))) for d in roots))


def check_upload_dir(directory: str) -> Path:
    """The directory a client asked for, or ValueError with the reason it may not be used."""
    text = directory.strip()
    if not text:
        raise ValueError("the upload directory is empty")
    if "\0" in text:
        raise ValueError("the upload directory contains a NUL character")
    path = Path(text).expanduser()
    if ".." in path.parts:
        raise ValueError(f"{text}: '..' is not allowed in an upload directory")
    if not path.is_absolute():
        path = Path(os.path.expanduser("~")) / path
    real = Path(os.path.realpath(path))
    roots = upload_roots()
    if not any(real == root or root in real.parents for root in roots):
        raise ValueError(f"{text} is outside the directories uploads may go to ({', '.join(map(str, roots))}); "
                         f"whoever starts the server can add others with {UPLOAD_DIRS_ENV}=DIR:DIR")
    return path


def upload_name(directory: str, prefix: str, extension: str, now: str) -> Path:
    """Where libindi would save the next image: XXX becomes one more than the highest index of the
    files whose names contain the prefix (the digits between the last "_" and the last "."), and
    ISO8601 becomes the time. The directory is created if needed; ValueError if it may not be
    used (see check_upload_dir)."""
    folder = check_upload_dir(directory)
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
