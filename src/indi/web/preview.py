"""Image previews: the latest BLOB of each member, as a PNG a browser can show.

The live bridge (:mod:`indi.web.live`) hands every BLOB it receives to a :class:`PreviewStore`,
which keeps only the latest one per (device, property, member), with a counter that grows with each
image. ``GET /api/preview/{device}/{property}/{member}.png`` answers with that image:

* FITS (``.fits``, ``.fit``, ``.fts``, and Rice-compressed ``.fits.fz``; ``.z`` BLOBs arrive inflated)
  is read with fitsio, binned down to at most 1024 pixels wide, auto-stretched (a midtone transfer
  function set from the median and MAD of the image, as PixInsight's screen stretch does) and
  encoded as an 8-bit PNG: grey, or RGB for a 3-plane image. Rows are shown in file order.
* JPEG, PNG, GIF and WebP BLOBs are passed through as they are, with their own content type.
* 404 when that member has no image yet; 415 for a format that cannot be shown (raw ``.bin``
  frames, video ``.stream`` chunks, XISF...).

The PNG of an image is rendered once (in a worker thread, one render at a time) and kept with it.
The ``?n=`` query parameter of the URLs the bridge announces only defeats browser caches: the
answer is always the latest image.
"""

from __future__ import annotations

import asyncio
import io
import math
import os
import tempfile
import urllib.parse
from dataclasses import dataclass, field

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

__all__ = ["PreviewStore", "PreviewError", "preview_url", "render_png", "router", "MAX_WIDTH"]

MAX_WIDTH = 1024                    # pixels: wider images are binned down
STATS_PIXELS = 250_000              # pixels sampled for the stretch statistics
TARGET_BACKGROUND = 0.25            # where the median lands after the stretch
SHADOWS_CLIP = -2.8                 # in normalised MADs from the median
FITS_FORMATS = (".fits", ".fit", ".fts", ".fits.fz", ".fit.fz", ".fts.fz")
PASS_THROUGH = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
                ".webp": "image/webp"}


class PreviewError(Exception):
    """An image that cannot be shown (its format, or unreadable content)."""


def preview_url(device: str, prop: str, member: str, counter: int) -> str:
    """The URL of a member's preview, with ``n`` (the image's counter) to defeat caches."""
    def quote(text: str) -> str:
        return urllib.parse.quote(text, safe="")
    return f"/api/preview/{quote(device)}/{quote(prop)}/{quote(member)}.png?n={counter}"


def _mtf(midtone: float, x: np.ndarray | float) -> np.ndarray | float:
    """The midtone transfer function: 0 -> 0, midtone -> 0.5, 1 -> 1."""
    return ((midtone - 1) * x) / ((2 * midtone - 1) * x - midtone)


def _bin(plane: np.ndarray, factor: int) -> np.ndarray:
    """Mean of factor x factor blocks (the image cropped to whole blocks)."""
    if factor <= 1:
        return plane.astype(np.float32, copy=False)
    height, width = (plane.shape[0] // factor) * factor, (plane.shape[1] // factor) * factor
    if height == 0 or width == 0:
        return plane.astype(np.float32, copy=False)
    cropped = plane[:height, :width].astype(np.float32, copy=False)
    return cropped.reshape(height // factor, factor, width // factor, factor).mean(axis=(1, 3), dtype=np.float32)


def stretch(plane: np.ndarray) -> np.ndarray:
    """An auto-stretched 8-bit plane: black below the background's noise floor, the median at a
    quarter of full scale, highlights compressed (midtone transfer from the median and MAD)."""
    data = np.nan_to_num(plane.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    step = max(1, int(math.sqrt(data.size / STATS_PIXELS)))
    sample = data[::step, ::step]
    low, high = float(sample.min()), float(sample.max())
    if data.size > sample.size:
        low, high = min(low, float(data.min())), max(high, float(data.max()))
    if not high > low:
        return np.zeros(data.shape, dtype=np.uint8)
    scale = 1.0 / (high - low)
    normal = (sample - low) * scale
    median = float(np.median(normal))
    madn = 1.4826 * float(np.median(np.abs(normal - median)))
    shadows = min(max(median + SHADOWS_CLIP * madn, 0.0), 1.0) if madn > 0 else 0.0
    if shadows >= 1.0:
        shadows = 0.0
    background = (median - shadows) / (1.0 - shadows)
    midtone = float(_mtf(TARGET_BACKGROUND, background)) if 0 < background < 1 else 0.5
    if not 0 < midtone < 1:
        midtone = 0.5
    x = np.clip(((data - low) * scale - shadows) / (1.0 - shadows), 0.0, 1.0)
    y = _mtf(midtone, x)
    return (np.clip(y, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def read_fits(data: bytes) -> np.ndarray:
    """The first image of a FITS file (plain or tile-compressed) as an array."""
    import fitsio

    descriptor, path = tempfile.mkstemp(prefix="indi-web-preview-", suffix=".fits")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        with fitsio.FITS(path) as fits:
            for hdu in fits:
                if hdu.get_exttype() in ("IMAGE_HDU",) and hdu.has_data():
                    return np.asarray(hdu.read())
    except OSError as exc:
        raise PreviewError(f"not a readable FITS file: {exc}") from None
    finally:
        os.unlink(path)
    raise PreviewError("the FITS file holds no image")


def render_fits(data: bytes, max_width: int = MAX_WIDTH) -> bytes:
    """A FITS image as a stretched PNG: grey, or RGB for three planes; at most max_width wide."""
    from PIL import Image

    image = read_fits(data)
    if image.ndim == 3 and image.shape[0] == 3:
        planes = [image[i] for i in range(3)]
    elif image.ndim >= 3:
        planes = [image.reshape((-1,) + image.shape[-2:])[0]]
    elif image.ndim == 2:
        planes = [image]
    elif image.ndim == 1:
        planes = [image.reshape(1, -1)]
    else:
        raise PreviewError("the FITS image has no pixels")
    width = planes[0].shape[1]
    factor = max(1, math.ceil(width / max_width))
    shown = [stretch(_bin(plane, factor)) for plane in planes]
    del planes, image
    if len(shown) == 3:
        picture = Image.fromarray(np.ascontiguousarray(np.stack(shown, axis=-1)))
    else:
        picture = Image.fromarray(np.ascontiguousarray(shown[0]))
    out = io.BytesIO()
    picture.save(out, format="PNG", compress_level=3)
    return out.getvalue()


def _format(fmt: str) -> str:
    return fmt.strip().lower()


def render_png(data: bytes, fmt: str) -> tuple[bytes, str]:
    """(content, content type) of an image BLOB for the browser; PreviewError if it cannot be shown."""
    fmt = _format(fmt)
    if fmt in PASS_THROUGH:
        return data, PASS_THROUGH[fmt]
    if fmt in FITS_FORMATS:
        try:
            return render_fits(data), "image/png"
        except PreviewError:
            raise
        except Exception as exc:  # noqa: BLE001 - a strange file must give a clear answer, not a 500
            raise PreviewError(f"cannot render this FITS image: {exc}") from None
    raise PreviewError(f"{fmt or 'this format'} images cannot be previewed")


@dataclass
class Image:
    device: str
    property: str
    member: str
    format: str
    data: bytes
    counter: int
    rendered: tuple[bytes, str] | None = None
    error: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class PreviewStore:
    """The latest image of each BLOB member, and its rendering for the browser."""

    def __init__(self) -> None:
        self._images: dict[tuple[str, str, str], Image] = {}
        self._counter = 0
        self._render = asyncio.Semaphore(1)   # one render at a time: the machine may be small

    def put(self, device: str, prop: str, member: str, fmt: str, data: bytes) -> int:
        """Keep this image as the member's latest (the previous one is let go); its counter."""
        self._counter += 1
        self._images[(device, prop, member)] = Image(device, prop, member, fmt, data, self._counter)
        return self._counter

    def get(self, device: str, prop: str, member: str) -> Image | None:
        return self._images.get((device, prop, member))

    def forget(self, device: str, prop: str | None = None) -> None:
        """Drop the images of a deleted property (or of every property of a deleted device)."""
        for key in [k for k in self._images if k[0] == device and (prop is None or k[1] == prop)]:
            del self._images[key]

    def clear(self) -> None:
        self._images.clear()

    def latest(self) -> list[Image]:
        """The latest image of each member, oldest first."""
        return sorted(self._images.values(), key=lambda image: image.counter)

    def __len__(self) -> int:
        return len(self._images)

    async def rendered(self, device: str, prop: str, member: str) -> tuple[bytes, str, int]:
        """(content, content type, counter) of the member's latest image. KeyError if there is none,
        PreviewError if it cannot be shown."""
        image = self._images.get((device, prop, member))
        if image is None:
            raise KeyError((device, prop, member))
        async with image.lock:
            if image.rendered is None and image.error is None:
                async with self._render:
                    try:
                        image.rendered = await asyncio.to_thread(render_png, image.data, image.format)
                    except PreviewError as exc:
                        image.error = str(exc)
        if image.error is not None:
            raise PreviewError(image.error)
        assert image.rendered is not None
        return image.rendered[0], image.rendered[1], image.counter


router = APIRouter()


@router.get("/api/preview/{path:path}", tags=["Devices"])
async def get_preview(path: str, request: Request) -> Response:
    """The latest BLOB of ``{device}/{property}/{member}.png`` as an image: FITS auto-stretched to an
    8-bit PNG at most 1024 pixels wide, JPEG/PNG as they came. 404 if none arrived yet, 415 for a
    format that cannot be shown."""
    device, _, rest = path.rpartition("/")
    device, _, prop = device.rpartition("/")
    if not device or not prop or not rest.endswith(".png") or len(rest) <= 4:
        raise HTTPException(404, "give /api/preview/DEVICE/PROPERTY/MEMBER.png")
    member = rest[:-4]
    store: PreviewStore = request.app.state.web.live.previews
    try:
        content, media_type, counter = await store.rendered(device, prop, member)
    except KeyError:
        raise HTTPException(404, f"no image of {device}.{prop}.{member} yet") from None
    except PreviewError as exc:
        raise HTTPException(415, f"{device}.{prop}.{member}: {exc}") from None
    return Response(content, media_type=media_type,
                    headers={"Cache-Control": "no-cache", "X-Image-Counter": str(counter)})
