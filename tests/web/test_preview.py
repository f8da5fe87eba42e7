"""Image previews: FITS rendered as stretched PNGs, other images passed through, only the latest kept.

The rendering is tested on FITS files written as our CCD simulator writes them (cfitsio through
fitsio, plain and Rice-compressed); the route on an in-process indi-web whose preview store is fed
directly (the live tests feed it from a real CCD exposure).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from indi.simulators.ccdfiles import encode
from indi.web.preview import MAX_WIDTH, PreviewError, PreviewStore, preview_url, render_png


def fits(frame: np.ndarray, compress: bool = False) -> tuple[bytes, str]:
    data, fmt, _ = encode(frame, [], "fits", compress)
    return data, fmt


def sky(height: int, width: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = rng.normal(1000, 20, (height, width)).clip(0, 65535).astype(np.uint16)
    frame[height // 3, width // 4] = 60000     # a star (a hot pixel)
    return frame


def png(content: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(content))
    picture.load()
    assert picture.format == "PNG"
    return picture


@pytest.mark.parametrize("compress", [False, True])
def test_fits_is_stretched_to_an_8_bit_grey_png(compress):
    data, fmt = fits(sky(300, 400), compress)
    assert fmt == (".fits.fz" if compress else ".fits")
    content, media_type = render_png(data, fmt)
    assert media_type == "image/png"
    picture = png(content)
    assert picture.mode == "L" and picture.size == (400, 300)
    pixels = np.asarray(picture)
    # The background lands at about a quarter of full scale, its noise spread out, the star white.
    assert 40 <= np.median(pixels) <= 90 and pixels.std() > 5 and pixels.max() == 255


def test_wide_images_are_binned_down_keeping_their_aspect_ratio():
    picture = png(render_png(*fits(sky(1024, 3000)))[0])
    assert picture.width <= MAX_WIDTH and picture.size == (1000, 341)
    picture = png(render_png(*fits(sky(1024, 1280)))[0])
    assert picture.size == (640, 512)
    picture = png(render_png(*fits(sky(100, 1024)))[0])
    assert picture.size == (1024, 100)


def test_three_planes_are_rgb_and_odd_pixels_are_not_fatal():
    rgb = np.stack([sky(60, 80, seed) for seed in (1, 2, 3)]).astype(np.float32)
    rgb[0, 5, 5] = np.nan
    rgb[1, 6, 6] = np.inf
    picture = png(render_png(*fits(rgb))[0])
    assert picture.mode == "RGB" and picture.size == (80, 60)
    flat = png(render_png(*fits(np.full((20, 30), 7, dtype=np.int16)))[0])
    assert flat.size == (30, 20) and np.asarray(flat).max() == 0
    floats = png(render_png(*fits(np.linspace(-1, 1, 50 * 40, dtype=np.float64).reshape(40, 50)))[0])
    assert floats.size == (50, 40) and np.asarray(floats).max() == 255


def test_other_images_pass_through_and_the_rest_is_refused():
    buffer = io.BytesIO()
    Image.new("RGB", (8, 4), (200, 10, 10)).save(buffer, format="JPEG")
    jpeg = buffer.getvalue()
    assert render_png(jpeg, ".jpg") == (jpeg, "image/jpeg")
    assert render_png(jpeg, ".JPEG") == (jpeg, "image/jpeg")
    assert render_png(b"\x89PNG...", ".png") == (b"\x89PNG...", "image/png")
    for data, fmt in ((b"\0" * 100, ".bin"), (b"frame", ".stream"), (b"x", "")):
        with pytest.raises(PreviewError, match="cannot be previewed"):
            render_png(data, fmt)
    with pytest.raises(PreviewError, match="FITS"):
        render_png(b"SIMPLE  = this is no FITS file" * 100, ".fits")


def test_the_store_keeps_only_the_latest_image_per_member():
    store = PreviewStore()
    first = store.put("CCD", "CCD1", "CCD1", ".fits", b"one")
    second = store.put("CCD", "CCD1", "CCD1", ".fits", b"two")
    store.put("CCD", "CCD2", "CCD2", ".fits", b"guide")
    assert second > first and len(store) == 2 and store.get("CCD", "CCD1", "CCD1").data == b"two"
    store.forget("CCD", "CCD2")
    assert len(store) == 1
    store.forget("CCD")
    assert len(store) == 0
    assert preview_url("CCD Simulator", "CCD1", "A/B", 3) == "/api/preview/CCD%20Simulator/CCD1/A%2FB.png?n=3"


def test_preview_route(app_client):
    client = app_client()
    store = client.app.state.web.live.previews
    url = "/api/preview/CCD%20Simulator/CCD1/CCD1.png"
    answer = client.get(url)
    assert answer.status_code == 404 and "no image" in answer.json()["detail"]
    assert client.get("/api/preview/CCD1.png").status_code == 404

    counter = store.put("CCD Simulator", "CCD1", "CCD1", ".fits", fits(sky(200, 300))[0])
    answer = client.get(f"{url}?n={counter}")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert answer.headers["x-image-counter"] == str(counter)
    assert png(answer.content).size == (300, 200)
    assert client.get(url).content == answer.content    # rendered once, kept with the image

    # A device name with a slash, and a JPEG passed through.
    buffer = io.BytesIO()
    Image.new("L", (4, 4)).save(buffer, format="JPEG")
    store.put("Cam/1", "IMAGE", "FRAME", ".jpg", buffer.getvalue())
    answer = client.get("/api/preview/Cam%2F1/IMAGE/FRAME.png")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    assert answer.content == buffer.getvalue()

    store.put("CCD Simulator", "CCD1", "CCD1", ".bin", b"\0" * 64)
    answer = client.get(url)
    assert answer.status_code == 415 and "cannot be previewed" in answer.json()["detail"]
