"""The little astronomy the simulators need: sidereal time, horizontal coordinates, precession.

Accurate to a few arcseconds over decades around J2000, which is what a simulated mount needs:
angles in degrees unless named ``*_hours``; times as UNIX seconds (UTC).
"""

from __future__ import annotations

import math

__all__ = ["julian_date", "gmst_hours", "lst_hours", "equatorial_to_horizontal", "horizontal_to_equatorial",
           "precess", "j2000_to_jnow", "jnow_to_j2000", "hour_angle_hours", "wrap_hours", "wrap_degrees",
           "SIDEREAL_RATE", "SOLAR_RATE", "LUNAR_RATE"]

SIDEREAL_RATE = 15.041067   # arcseconds per second: how fast the sky turns
SOLAR_RATE = 15.0           # the sun's apparent rate
LUNAR_RATE = 14.685         # the moon's apparent rate

_J2000 = 2451545.0
_UNIX_EPOCH_JD = 2440587.5


def julian_date(unix_seconds: float) -> float:
    return _UNIX_EPOCH_JD + unix_seconds / 86400.0


def wrap_hours(hours: float) -> float:
    return hours % 24.0


def wrap_degrees(degrees: float) -> float:
    """Into [-180, 180)."""
    return (degrees + 180.0) % 360.0 - 180.0


def gmst_hours(unix_seconds: float) -> float:
    """Greenwich mean sidereal time (IAU 1982), in hours."""
    jd = julian_date(unix_seconds)
    t = (jd - _J2000) / 36525.0
    degrees = (280.46061837 + 360.98564736629 * (jd - _J2000) + 0.000387933 * t * t - t ** 3 / 38710000.0)
    return wrap_hours(degrees / 15.0)


def lst_hours(unix_seconds: float, longitude: float) -> float:
    """Local sidereal time at a longitude (degrees east), in hours."""
    return wrap_hours(gmst_hours(unix_seconds) + longitude / 15.0)


def hour_angle_hours(lst: float, ra_hours: float) -> float:
    """Hour angle in [-12, 12) hours: negative east of the meridian."""
    return (lst - ra_hours + 12.0) % 24.0 - 12.0


def equatorial_to_horizontal(ra_hours: float, dec: float, latitude: float, lst: float) -> tuple[float, float]:
    """(altitude, azimuth) in degrees; azimuth from north through east."""
    ha = math.radians(hour_angle_hours(lst, ra_hours) * 15.0)
    d, phi = math.radians(dec), math.radians(latitude)
    sin_alt = math.sin(d) * math.sin(phi) + math.cos(d) * math.cos(phi) * math.cos(ha)
    alt = math.asin(max(-1.0, min(1.0, sin_alt)))
    az = math.atan2(-math.sin(ha) * math.cos(d),
                    math.sin(d) * math.cos(phi) - math.cos(d) * math.sin(phi) * math.cos(ha))
    return math.degrees(alt), math.degrees(az) % 360.0


def horizontal_to_equatorial(alt: float, az: float, latitude: float, lst: float) -> tuple[float, float]:
    """(ra_hours, dec) for an altitude and azimuth (degrees, azimuth from north through east)."""
    a, z, phi = math.radians(alt), math.radians(az), math.radians(latitude)
    sin_dec = math.sin(a) * math.sin(phi) + math.cos(a) * math.cos(phi) * math.cos(z)
    dec = math.asin(max(-1.0, min(1.0, sin_dec)))
    ha = math.atan2(-math.sin(z) * math.cos(a),
                    math.sin(a) * math.cos(phi) - math.cos(a) * math.sin(phi) * math.cos(z))
    return wrap_hours(lst - math.degrees(ha) / 15.0), math.degrees(dec)


def precess(ra_hours: float, dec: float, from_jd: float, to_jd: float) -> tuple[float, float]:
    """Precess equatorial coordinates between epochs (IAU 1976, rigorous rotation)."""
    t0 = (from_jd - _J2000) / 36525.0
    t = (to_jd - from_jd) / 36525.0
    arcsec = math.pi / (180.0 * 3600.0)
    zeta = ((2306.2181 + 1.39656 * t0 - 0.000139 * t0 ** 2) * t + (0.30188 - 0.000344 * t0) * t ** 2
            + 0.017998 * t ** 3) * arcsec
    z = ((2306.2181 + 1.39656 * t0 - 0.000139 * t0 ** 2) * t + (1.09468 + 0.000066 * t0) * t ** 2
         + 0.018203 * t ** 3) * arcsec
    theta = ((2004.3109 - 0.85330 * t0 - 0.000217 * t0 ** 2) * t - (0.42665 + 0.000217 * t0) * t ** 2
             - 0.041833 * t ** 3) * arcsec
    ra, d = math.radians(ra_hours * 15.0), math.radians(dec)
    a = math.cos(d) * math.sin(ra + zeta)
    b = math.cos(theta) * math.cos(d) * math.cos(ra + zeta) - math.sin(theta) * math.sin(d)
    c = math.sin(theta) * math.cos(d) * math.cos(ra + zeta) + math.cos(theta) * math.sin(d)
    new_ra = math.atan2(a, b) + z
    new_dec = math.asin(max(-1.0, min(1.0, c)))
    return wrap_hours(math.degrees(new_ra) / 15.0), math.degrees(new_dec)


def j2000_to_jnow(ra_hours: float, dec: float, unix_seconds: float) -> tuple[float, float]:
    return precess(ra_hours, dec, _J2000, julian_date(unix_seconds))


def jnow_to_j2000(ra_hours: float, dec: float, unix_seconds: float) -> tuple[float, float]:
    return precess(ra_hours, dec, julian_date(unix_seconds), _J2000)
