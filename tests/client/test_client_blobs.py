"""BLOBs end to end: a 50 MB BLOB streamed to a file by a client whose memory barely grows (ours
and the reference server), and the example script taking an image with our simulators.

The big BLOB comes from drivers/big_blob.py; the client runs in a process of its own so that its
peak resident memory (VmHWM in /proc/self/status) can be measured before and after.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from client_support import CAMERA, DRIVERS, SCOPE, WAIT, run, sim, start

from indi.client import Client
from indi.simulators import astro

BIG = 50 * 1024 * 1024
SEED = 11
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "expose.py"

CLIENT_SCRIPT = '''
import asyncio, json, sys
from indi.client import Client

PORT, PATH, MODE = int(sys.argv[1]), sys.argv[2], sys.argv[3]


def hwm_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


async def main():
    async with Client("127.0.0.1", PORT) as client:
        await client.wait_property("Big Blob", "IMAGE", 30)
        await client.wait_property("Big Blob", "SEND", 30)
        before = hwm_kb()
        with client.receive_blob("Big Blob", "IMAGE", to_file=PATH if MODE == "file" else None) as image:
            await client.select("Big Blob", "SEND", "GO")
        blob = await image.wait(120)
        after = hwm_kb()
        print(json.dumps({"before_kb": before, "after_kb": after, "size": blob.size, "format": blob.format,
                          "path": str(blob.path), "in_memory": blob.data is not None}))


asyncio.run(main())
'''


def receive_big_blob(tmp_path: Path, port: int, mode: str) -> dict:
    script = tmp_path / "receive.py"
    script.write_text(CLIENT_SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(port), str(tmp_path / "big.bin"), mode],
                            capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.parametrize("which", ["ours", "reference"])
def test_a_50_mb_blob_streams_to_a_file_in_little_memory(servers, home_env, tmp_path, which):
    env = dict(home_env, BIG_BLOB_BYTES=str(BIG), BIG_BLOB_SEED=str(SEED))
    server = start(servers, which, str(DRIVERS / "big_blob.py"), env=env)
    started = time.monotonic()
    result = receive_big_blob(tmp_path, server.port, "file")
    elapsed = time.monotonic() - started
    grown_mb = (result["after_kb"] - result["before_kb"]) / 1024
    print(f"{which}: 50 MB BLOB to a file in {elapsed:.1f} s; client VmHWM {result['before_kb'] / 1024:.1f} MB "
          f"before, {result['after_kb'] / 1024:.1f} MB after: grew {grown_mb:.1f} MB")
    assert (result["size"], result["format"], result["in_memory"]) == (BIG, ".bin", False), result
    saved = Path(result["path"])
    assert saved == tmp_path / "big.bin" and saved.stat().st_size == BIG
    assert sha256_file(saved) == hashlib.sha256(random.Random(SEED).randbytes(BIG)).hexdigest()
    assert grown_mb < 15, f"the client's peak memory grew by {grown_mb:.1f} MB receiving a 50 MB BLOB"


def test_the_memory_measure_sees_a_blob_kept_in_memory(servers, home_env, tmp_path):
    """The same BLOB received into memory: the peak grows by at least its size (so the measure above
    would see a client that held the BLOB)."""
    env = dict(home_env, BIG_BLOB_BYTES=str(BIG), BIG_BLOB_SEED=str(SEED))
    server = servers.ours(str(DRIVERS / "big_blob.py"), env=env)
    result = receive_big_blob(tmp_path, server.port, "memory")
    assert result["in_memory"] and result["size"] == BIG
    assert (result["after_kb"] - result["before_kb"]) / 1024 > 45, result


def test_the_example_script_saves_a_fits_image(servers, home_env, tmp_path):
    pytest.importorskip("astropy")
    from astropy.io import fits

    server = servers.ours(sim("telescope"), sim("ccd"), env=home_env)   # no -n: devices connect by themselves

    async def prepare():
        """Put M42 half an hour west of the meridian of the simulator's site and the mount 2 degrees
        from it on the same side of the pier, so that the script's slew is short (no meridian flip)
        and high in the sky, whatever the time."""
        async with Client("127.0.0.1", server.port) as client:
            for device in (SCOPE, CAMERA):
                await client.wait_for(lambda d=device: client[d].connected, WAIT, what=f"{device} connected")
            m42_ra = 5 + 35 / 60 + 17 / 3600
            longitude = ((m42_ra + 0.5 - astro.gmst_hours(time.time())) * 15) % 360
            await client.set(SCOPE, "GEOGRAPHIC_COORD", LAT=0, LONG=longitude, wait=True)
            await client.select(SCOPE, "ON_COORD_SET", "SYNC", wait=True)
            await client.set(SCOPE, "EQUATORIAL_EOD_COORD", RA=m42_ra, DEC=-3.5, wait=True)
            await client.select(SCOPE, "ON_COORD_SET", "TRACK", wait=True)
            await client.wait_property(CAMERA, "CCD_EXPOSURE", WAIT)

    run(prepare())
    result = subprocess.run([sys.executable, str(EXAMPLE), str(server.port)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "saved m42.fits", result.stdout
    with fits.open(tmp_path / "m42.fits") as hdus:
        header, data = hdus[0].header, hdus[0].data
        assert data.ndim == 2 and data.size > 100_000, data.shape
        assert header["EXPTIME"] == pytest.approx(2)
        assert abs(float(header["DEC"]) + 5.39) < 1.0, repr(header)
    assert not list(tmp_path.glob("*.part"))
