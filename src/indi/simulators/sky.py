"""A synthetic sky and the camera that images it, for the CCD and Guide simulators.

The star catalogue is a pure function of sky position: the sphere is cut into cells (bands of
declination, each cut into equal-area pieces of right ascension) and each cell's stars are drawn
from a random generator seeded with the cell's indices. So the same stars are always at the same
J2000 coordinates, a slew moves the field by exactly the angle slewed, and no catalogue is needed.
Bright stars are rare and faint ones common (log N(<m) grows by 0.35 per magnitude, about the
galactic average), so each range of magnitudes has cells of its own size: about thirty stars per
cell whatever the range, and a wide field can leave out its faintest ranges to stay fast.

``render(shot)`` makes one frame: stars through a Gaussian seeing disc (trailed along the path
of the sky when the mount does not track), sky glow and flat illumination with vignetting, dark
current and hot pixels, shot and read noise, then gain, offset and clipping to 16-bit ADU. The
work array is one float32 image, noise is added a block of rows at a time, and the 16-bit result
is written over the float32 image, so a full frame needs 5 MB and takes well under a second.

Photometry: a star at the limiting magnitude (SIM_LIMITINGMAG) gives 20 electrons/s in all, each
magnitude brighter 2.512 times more; the sky glow (SIM_SKYGLOW, magnitudes per square arcsecond)
is scaled the same way, and the filter's transmission dims both. So with the defaults a 1 s frame
shows stars to about magnitude 15 and the brightest ones saturate.

Image orientation: north up (row 0 is the top, FITS ROWORDER TOP-DOWN) and east to the left, as
the sky looks through a camera with no mirror; SIM_ROTATION turns the field clockwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["Shot", "render", "stars_in_field", "plate_scale", "fwhm_at_focus", "to_8bit"]

ARCSEC_PER_RADIAN = 206264.806
SEED = 0x5EED1D1                # changing it gives another (equally deterministic) sky
DENSITY_17 = 2000.0             # stars per square degree brighter than magnitude 17
SLOPE = 0.35                    # d log10 N / d magnitude
# (brightest, faintest magnitude, cell size in degrees): ~30 stars per cell in each range
TIERS = ((-1.5, 8.0, 6.0), (8.0, 11.0, 1.6), (11.0, 13.0, 0.7), (13.0, 15.0, 0.32), (15.0, 17.0, 0.14),
         (17.0, 19.0, 0.06), (19.0, 21.0, 0.028))
MAX_STARS = 20000               # a wide field leaves out its faintest magnitude ranges beyond this

LIMIT_RATE = 20.0               # electrons/s from a star at the limiting magnitude (all its light)
FLAT_RATE = 5000.0              # electrons/s per unbinned pixel from a flat panel
VIGNETTING = 0.3                # fraction of the light lost in the corners of the chip
HOT_FRACTION = 2e-4             # fraction of hot pixels, whose dark current is 5..500 e-/s
ROWS_PER_BLOCK = 64             # rows converted at a time (keeps the noise temporaries small)


def plate_scale(pixel_um: float, focal_mm: float) -> float:
    """Arcseconds per pixel."""
    return ARCSEC_PER_RADIAN * pixel_um / 1000.0 / focal_mm


def fwhm_at_focus(position: float, best: float, maximum: float, seeing: float) -> float:
    """Star size (arcsec) at a focuser position when only the position is known: the seeing at
    best focus, growing quadratically away from it (as libindi's simulator models it)."""
    ticks = 20.0 * (position - best) / max(maximum, 1.0)
    return seeing + 0.5625 * ticks * ticks


# ------------------------------------------------------------------------------------ catalogue

def _brighter(magnitude: float) -> float:
    return DENSITY_17 * 10.0 ** (SLOPE * (magnitude - 17.0))


@lru_cache(maxsize=8192)
def _cell(tier: int, band: int, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stars of one cell: (ra, dec, magnitude) in degrees, from the cell's own seed."""
    bright, faint, size = TIERS[tier]
    dec_low = -90.0 + band * size
    dec_high = min(90.0, dec_low + size)
    count = _ra_cells(tier, band)
    width = 360.0 / count
    sin_low, sin_high = math.sin(math.radians(dec_low)), math.sin(math.radians(dec_high))
    area = width * (sin_high - sin_low) * 180.0 / math.pi        # square degrees
    rng = np.random.default_rng((SEED, tier, band, index))
    n = int(rng.poisson((_brighter(faint) - _brighter(bright)) * area))
    u = rng.random((3, n))
    ra = (index + u[0]) * width
    dec = np.degrees(np.arcsin(sin_low + u[1] * (sin_high - sin_low)))    # uniform on the sphere
    # magnitudes with N(<m) proportional to 10^(SLOPE m) between bright and faint
    span = 10.0 ** (SLOPE * (faint - bright)) - 1.0
    mag = bright + np.log10(1.0 + u[2] * span) / SLOPE
    for array in (ra, dec, mag):
        array.flags.writeable = False   # cached: shared by every frame
    return ra, dec, mag


@lru_cache(maxsize=4096)
def _ra_cells(tier: int, band: int) -> int:
    size = TIERS[tier][2]
    middle = -90.0 + (band + 0.5) * size
    return max(1, round(360.0 * math.cos(math.radians(min(middle, 90.0))) / size))


def _cells(tier: int, ra0: float, dec0: float, radius: float):
    """(band, index) of every cell of a tier that may hold stars within radius degrees."""
    size = TIERS[tier][2]
    bands = math.ceil(180.0 / size)
    first = max(0, math.floor((dec0 - radius + 90.0) / size))
    last = min(bands - 1, math.floor((dec0 + radius + 90.0) / size))
    for band in range(first, last + 1):
        count = _ra_cells(tier, band)
        dec_low = -90.0 + band * size
        nearest_pole = min(90.0, max(abs(dec_low), abs(dec_low + size)))
        widest = max(math.cos(math.radians(nearest_pole)), 1e-9)
        half = radius / widest
        if half >= 180.0 or abs(dec0) + radius >= 89.999:
            yield from ((band, i) for i in range(count))
            continue
        width = 360.0 / count
        start, stop = math.floor((ra0 - half) / width), math.floor((ra0 + half) / width)
        seen = {i % count for i in range(start, stop + 1)}
        yield from ((band, i) for i in sorted(seen))


def stars_in_field(ra0: float, dec0: float, radius: float, faintest: float):
    """Every star brighter than ``faintest`` within about ``radius`` degrees of (ra0, dec0):
    arrays (ra, dec, magnitude) in J2000 degrees. The same call always gives the same stars."""
    field_area = math.pi * radius * radius
    parts = []
    expected = 0.0
    for tier, (bright, faint, _size) in enumerate(TIERS):
        if bright >= faintest:
            break
        expected += field_area * (_brighter(min(faint, faintest)) - _brighter(bright))
        if expected > MAX_STARS and parts:
            break  # a wide field: the fainter stars would cost more than they show
        parts += [_cell(tier, band, index) for band, index in _cells(tier, ra0, dec0, radius)]
    if not parts:
        empty = np.zeros(0)
        return empty, empty, empty
    ra, dec, mag = (np.concatenate([part[k] for part in parts]) for k in range(3))
    keep = mag < faintest
    return ra[keep], dec[keep], mag[keep]


def _standard(ra0: float, dec0: float, ra: np.ndarray, dec: np.ndarray):
    """Gnomonic projection about (ra0, dec0): standard coordinates (xi east, eta north) in radians,
    and which stars are on the near side of the sky."""
    a0, d0 = math.radians(ra0), math.radians(dec0)
    a, d = np.radians(ra), np.radians(dec)
    cos_d, sin_d, cos_da = np.cos(d), np.sin(d), np.cos(a - a0)
    denominator = math.sin(d0) * sin_d + math.cos(d0) * cos_d * cos_da
    front = denominator > 0.2
    denominator = np.where(front, denominator, 1.0)
    xi = cos_d * np.sin(a - a0) / denominator
    eta = (math.cos(d0) * sin_d - math.sin(d0) * cos_d * cos_da) / denominator
    return xi, eta, front


# --------------------------------------------------------------------------------------- camera

@dataclass
class Shot:
    """Everything one frame depends on, gathered by the device before rendering in a thread."""
    chip_width: int                 # whole chip, unbinned pixels
    chip_height: int
    x: int                          # subframe, unbinned pixels
    y: int
    width: int
    height: int
    bin_x: int = 1
    bin_y: int = 1
    pixel_um_x: float = 5.2
    pixel_um_y: float = 5.2
    focal_mm: float = 900.0
    seconds: float = 1.0
    kind: str = "light"             # light, bias, dark or flat
    ra: float = 0.0                 # J2000 degrees at the centre of the chip, at the start
    dec: float = 90.0
    drift_ra: float = 0.0           # how far the sky moves during the exposure (degrees of RA, DEC)
    drift_dec: float = 0.0
    rotation: float = 0.0           # field rotation, degrees clockwise
    fwhm: float = 3.5               # seeing disc, arcseconds
    limit_mag: float = 17.0
    sky_mag: float = 19.5           # sky glow, magnitudes per square arcsecond
    transmission: float = 1.0       # of the filter
    dark_rate: float = 1.0          # electrons/s per unbinned pixel at the sensor temperature
    adu_per_electron: float = 1.0
    pedestal: float = 100.0         # ADU of a zero signal (bias level)
    read_noise: float = 10.0        # ADU
    max_adu: float = 65535.0
    bayer: bool = False             # RGGB colour mosaic
    chip_seed: int = 0              # where the hot pixels are

    @property
    def shape(self) -> tuple[int, int]:
        return max(1, self.height // self.bin_y), max(1, self.width // self.bin_x)


def render(shot: Shot, rng: np.random.Generator | None = None) -> np.ndarray:
    """One frame as a (rows, columns) uint16 array."""
    rng = rng or np.random.default_rng()
    image = np.zeros(shot.shape, dtype=np.float32)          # electrons
    seconds = 0.0 if shot.kind == "bias" else max(shot.seconds, 0.0)
    if shot.kind == "light":
        _draw_stars(image, shot, seconds)
        scale_x = plate_scale(shot.pixel_um_x, shot.focal_mm) * shot.bin_x
        scale_y = plate_scale(shot.pixel_um_y, shot.focal_mm) * shot.bin_y
        sky = LIMIT_RATE * 10.0 ** (-0.4 * (shot.sky_mag - shot.limit_mag)) * scale_x * scale_y
        _add_vignetted(image, shot, sky * shot.transmission * seconds)
    elif shot.kind == "flat":
        _add_vignetted(image, shot, FLAT_RATE * shot.bin_x * shot.bin_y * shot.transmission * seconds)
    if shot.bayer and shot.kind in ("light", "flat"):
        for (row, column), response in {(0, 0): 0.55, (1, 1): 0.45}.items():   # R and B; G is 1
            image[row::2, column::2] *= response
    if seconds > 0:
        image += shot.dark_rate * shot.bin_x * shot.bin_y * seconds
        _add_hot_pixels(image, shot, seconds)
    return _to_adu(image, shot, rng)


def _add_vignetted(image: np.ndarray, shot: Shot, level: float) -> None:
    """Add a uniform level dimmed towards the corners: level * (1 - V r^2 / r_corner^2), built in
    place from two 1-D arrays (no full-frame temporary)."""
    if level <= 0:
        return
    rows, columns = image.shape
    dx = shot.x + (np.arange(columns, dtype=np.float32) + 0.5) * shot.bin_x - shot.chip_width / 2.0
    dy = shot.y + (np.arange(rows, dtype=np.float32) + 0.5) * shot.bin_y - shot.chip_height / 2.0
    falloff = np.float32(level * VIGNETTING / ((shot.chip_width / 2.0) ** 2 + (shot.chip_height / 2.0) ** 2))
    image += np.float32(level)
    image -= (falloff * dx * dx)[None, :]
    image -= (falloff * dy * dy)[:, None]


def _vignetting(shot: Shot, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The same falloff at chip positions (unbinned pixels)."""
    corner = (shot.chip_width / 2.0) ** 2 + (shot.chip_height / 2.0) ** 2
    r2 = (x - shot.chip_width / 2.0) ** 2 + (y - shot.chip_height / 2.0) ** 2
    return 1.0 - VIGNETTING * np.minimum(r2 / corner, 1.0)


@lru_cache(maxsize=8)
def _hot_pixels(width: int, height: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where a chip's hot pixels are and how much dark current each has (the same every frame)."""
    rng = np.random.default_rng((SEED, seed, width, height))
    count = max(1, int(width * height * HOT_FRACTION))
    return (rng.integers(0, width, count), rng.integers(0, height, count),
            (5.0 * 100.0 ** rng.random(count)).astype(np.float32))


def _add_hot_pixels(image: np.ndarray, shot: Shot, seconds: float) -> None:
    xs, ys, rates = _hot_pixels(shot.chip_width, shot.chip_height, shot.chip_seed)
    rows, columns = image.shape
    column = (xs - shot.x) // shot.bin_x
    row = (ys - shot.y) // shot.bin_y
    inside = (xs >= shot.x) & (ys >= shot.y) & (column < columns) & (row < rows)
    np.add.at(image, (row[inside], column[inside]), rates[inside] * np.float32(seconds))


def _to_adu(image: np.ndarray, shot: Shot, rng: np.random.Generator) -> np.ndarray:
    """Shot noise, gain, offset, read noise and clipping, a block of rows at a time. The 16-bit
    result is written over the float32 image it comes from (row r of the output lies in rows
    <= r/2 of the input, already converted), so a frame never needs a second buffer."""
    rows, columns = image.shape
    out = image.reshape(-1).view(np.uint16)[:rows * columns].reshape(rows, columns)
    gain = np.float32(shot.adu_per_electron)
    top = np.float32(min(shot.max_adu, 65535.0))
    for start in range(0, image.shape[0], ROWS_PER_BLOCK):
        block = image[start:start + ROWS_PER_BLOCK]
        np.maximum(block, 0.0, out=block)
        noise = rng.standard_normal(block.shape, dtype=np.float32)
        noise *= np.sqrt(block)                      # Poisson noise, as a Gaussian of the same variance
        block += noise
        block *= gain
        block += np.float32(shot.pedestal)
        if shot.read_noise > 0:
            rng.standard_normal(block.shape, dtype=np.float32, out=noise)
            noise *= np.float32(shot.read_noise)
            block += noise
        np.clip(block, 0.0, top, out=block)
        np.rint(block, out=block)
        out[start:start + ROWS_PER_BLOCK] = block   # numpy copies first where the two overlap
    return out


# ------------------------------------------------------------------------------------------ stars

def _draw_stars(image: np.ndarray, shot: Shot, seconds: float) -> None:
    if seconds <= 0:
        return
    rows, columns = image.shape
    scale_x = plate_scale(shot.pixel_um_x, shot.focal_mm) / ARCSEC_PER_RADIAN     # radians per pixel
    scale_y = plate_scale(shot.pixel_um_y, shot.focal_mm) / ARCSEC_PER_RADIAN
    half_diagonal = math.hypot(shot.chip_width * scale_x, shot.chip_height * scale_y) / 2.0
    drift = math.hypot(shot.drift_ra * math.cos(math.radians(shot.dec)), shot.drift_dec)
    radius = math.degrees(half_diagonal) + drift + 0.05
    ra, dec, mag = stars_in_field(shot.ra, shot.dec, radius, shot.limit_mag)
    if ra.size == 0:
        return
    start = _to_chip(shot, *_standard(shot.ra, shot.dec, ra, dec), scale_x, scale_y)
    end = _to_chip(shot, *_standard(shot.ra + shot.drift_ra, shot.dec + shot.drift_dec, ra, dec), scale_x, scale_y)
    flux = (LIMIT_RATE * shot.transmission * seconds) * 10.0 ** (-0.4 * (mag - shot.limit_mag))
    # binned pixel coordinates of the subframe, pixel centres at integers
    x0 = (start[0] - shot.x) / shot.bin_x - 0.5
    y0 = (start[1] - shot.y) / shot.bin_y - 0.5
    x1 = (end[0] - shot.x) / shot.bin_x - 0.5
    y1 = (end[1] - shot.y) / shot.bin_y - 0.5
    flux = flux * _vignetting(shot, (start[0] + end[0]) / 2.0, (start[1] + end[1]) / 2.0)
    sigma = shot.fwhm / 2.3548 / ARCSEC_PER_RADIAN
    sigma_x = max(sigma / (scale_x * shot.bin_x), 0.3)    # in binned pixels
    sigma_y = max(sigma / (scale_y * shot.bin_y), 0.3)
    margin = 12.0 * max(sigma_x, sigma_y)
    visible = (start[2] & end[2] & (np.maximum(x0, x1) > -margin) & (np.minimum(x0, x1) < columns + margin)
               & (np.maximum(y0, y1) > -margin) & (np.minimum(y0, y1) < rows + margin))
    x0, y0, x1, y1, flux = x0[visible], y0[visible], x1[visible], y1[visible], flux[visible]
    if flux.size == 0:
        return
    # box half-size in sigmas: far enough out that the cut-off wing is below ~0.2 electrons
    peak = flux / (2.0 * math.pi * sigma_x * sigma_y)
    reach = np.clip(np.ceil(np.sqrt(2.0 * np.log(np.maximum(peak / 0.2, 1.0)))), 3, 12)
    for k in np.unique(reach):
        group = reach == k
        _splat(image, x0[group], y0[group], x1[group], y1[group], flux[group], sigma_x, sigma_y, float(k))


def _to_chip(shot: Shot, xi: np.ndarray, eta: np.ndarray, front: np.ndarray, scale_x: float, scale_y: float):
    """Standard coordinates to unbinned chip pixels (continuous, chip centre at width/2)."""
    u, v = -xi, -eta                      # east to the left, north up
    theta = math.radians(shot.rotation)
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    x = (u * cos_t - v * sin_t) / scale_x + shot.chip_width / 2.0
    y = (u * sin_t + v * cos_t) / scale_y + shot.chip_height / 2.0
    return x, y, front


def _splat(image: np.ndarray, x0, y0, x1, y1, flux, sigma_x: float, sigma_y: float, reach: float) -> None:
    """Add stars whose light is a Gaussian spread along the segment (x0, y0)-(x1, y1): its integral
    along the segment is analytic (differences of the normal CDF), so a long trail costs no more
    than its box. Each star's box is normalised to its flux, so the light is conserved."""
    rows, columns = image.shape
    rx, ry = math.ceil(reach * sigma_x), math.ceil(reach * sigma_y)
    left = np.floor(np.minimum(x0, x1)).astype(np.int64) - rx
    top = np.floor(np.minimum(y0, y1)).astype(np.int64) - ry
    box_w = int(np.ceil(np.abs(x1 - x0)).max()) + 2 * rx + 2
    box_h = int(np.ceil(np.abs(y1 - y0)).max()) + 2 * ry + 2
    per_chunk = max(1, 65_536 // (box_w * box_h))
    ox = np.arange(box_w, dtype=np.float32)
    oy = np.arange(box_h, dtype=np.float32)
    for s in range(0, flux.size, per_chunk):
        sl = slice(s, s + per_chunk)
        # offsets from the trail's start, in sigmas
        u = ((left[sl] - x0[sl]).astype(np.float32)[:, None, None] + ox[None, None, :]) / np.float32(sigma_x)
        v = ((top[sl] - y0[sl]).astype(np.float32)[:, None, None] + oy[None, :, None]) / np.float32(sigma_y)
        tu = ((x1[sl] - x0[sl]) / sigma_x).astype(np.float32)[:, None, None]
        tv = ((y1[sl] - y0[sl]) / sigma_y).astype(np.float32)[:, None, None]
        length = np.sqrt(tu * tu + tv * tv)
        if float(length.max()) < 1e-3:
            weight = np.exp(np.float32(-0.5) * (u * u + v * v))
        else:
            safe = np.maximum(length, np.float32(1e-3))
            ex, ey = tu / safe, tv / safe
            along = u * ex + v * ey
            across = v * ex - u * ey
            weight = (_erf((along) * np.float32(0.70710678)) - _erf((along - safe) * np.float32(0.70710678)))
            weight *= np.exp(np.float32(-0.5) * across * across)
        del u, v
        totals = weight.sum(axis=(1, 2), keepdims=True)
        weight *= (flux[sl].astype(np.float32)[:, None, None] / np.maximum(totals, np.float32(1e-30)))
        columns_ = left[sl][:, None, None] + np.arange(box_w)[None, None, :]
        rows_ = top[sl][:, None, None] + np.arange(box_h)[None, :, None]
        inside = (columns_ >= 0) & (columns_ < columns) & (rows_ >= 0) & (rows_ < rows)
        rows_b, columns_b = np.broadcast_arrays(rows_, columns_)
        np.add.at(image, (rows_b[inside], columns_b[inside]), weight[inside])


def _erf(x: np.ndarray) -> np.ndarray:
    """The error function (Abramowitz and Stegun 7.1.26, error < 1.5e-7), vectorised in float32."""
    sign = np.sign(x)
    a = np.abs(x)
    t = np.float32(1.0) / (np.float32(1.0) + np.float32(0.3275911) * a)
    poly = t * (np.float32(0.254829592) + t * (np.float32(-0.284496736) + t * (np.float32(1.421413741)
                + t * (np.float32(-1.453152027) + t * np.float32(1.061405429)))))
    return sign * (np.float32(1.0) - poly * np.exp(-a * a))


def to_8bit(frame: np.ndarray) -> np.ndarray:
    """A 16-bit frame stretched to 8 bits for video: black at the sky level, white a little below
    the brightest stars (a 64 kB lookup table, no float copy of the frame)."""
    sample = frame[::7, ::5]
    low = float(np.percentile(sample, 5))
    high = max(float(np.percentile(sample, 99.9)), low + 16.0)
    table = np.clip((np.arange(65536, dtype=np.float32) - low) * (255.0 / (high - low)), 0, 255).astype(np.uint8)
    return table[frame]
