#!/usr/bin/env python3
"""Soak test: our indiserver with the telescope, CCD and focuser simulators under simulated observing.

    .venv/bin/python scripts/soak.py                       # one hour
    .venv/bin/python scripts/soak.py --minutes 5 --json /tmp/soak.json

For the whole run:

- an observer (our asyncio client) slews the telescope to random targets and waits for each slew
  to finish, takes CCD exposures in a loop (alternating 1x1 and 2x2 binning), receives each image
  as a BLOB and checks it is a complete FITS file of the expected size, and moves the focuser;
- every few seconds a short-lived client comes and goes: our client library (waiting for every
  device's definitions), Debian's /usr/bin/indi_getprop (checking it printed every device), or a
  client that enables BLOBs and leaves in the middle of whatever it is receiving;
- every 10 s the server's resident memory and open file descriptors are sampled, with the total
  resident memory of its drivers (and their process ids, to notice restarts).

At the end a summary is printed (exposures requested and images received, slews, focuser moves,
clients, messages, errors; memory at start, 30 min and end, and its slope) and written as JSON.
"Nothing lost" means every exposure requested arrived as an image of the right size, and every
short-lived client got the definitions of every device. The exit status is 0 only then (and when
the server did not lose a driver and shut down cleanly).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from indi.client import Client  # noqa: E402
from indi.simulators import astro  # noqa: E402

TELESCOPE, CCD, FOCUSER = "Telescope Simulator", "CCD Simulator", "Focuser Simulator"
DEVICES = (TELESCOPE, CCD, FOCUSER)
DRIVERS = ("indi_simulator_telescope", "indi_simulator_ccd", "indi_simulator_focus")
# Properties each device must have defined for a client to count as having "got its defs".
KEY_PROPERTIES = {
    TELESCOPE: ("CONNECTION", "EQUATORIAL_EOD_COORD", "ON_COORD_SET"),
    CCD: ("CONNECTION", "CCD_EXPOSURE", "CCD1", "CCD_FRAME", "CCD_BINNING"),
    FOCUSER: ("CONNECTION", "ABS_FOCUS_POSITION"),
}
FITS_BLOCK = 2880


# ------------------------------------------------------------------------------------ process stats

def _status(pid: int) -> dict[str, str]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def rss_kb(pid: int) -> int:
    return int(_status(pid).get("VmRSS", "0 kB").split()[0])


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def children(pid: int) -> list[int]:
    """Direct children of pid (the drivers of an indiserver)."""
    result = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name is in parentheses and may contain spaces
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) == pid:
            result.append(int(entry))
    return result


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------- the soak

class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.port = args.port or free_port()
        self.duration = args.minutes * 60.0
        self.counts: Counter[str] = Counter()
        self.errors: list[str] = []
        self.error_kinds: Counter[str] = Counter()
        self.samples: list[dict] = []
        self.start = 0.0
        self.stop = asyncio.Event()
        self.ready = asyncio.Event()     # the observer has every device's definitions
        self.server: asyncio.subprocess.Process | None = None
        self.rng = random.Random(args.seed)
        self.driver_pids: dict[str, int] = {}
        self.tasks: set[asyncio.Task] = set()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def error(self, kind: str, text: str) -> None:
        self.error_kinds[kind] += 1
        if len(self.errors) < 200:
            self.errors.append(f"{self.elapsed():8.1f} s {kind}: {text}")
        print(f"[{self.elapsed():7.1f} s] ERROR {kind}: {text}", flush=True)

    # ---------------------------------------------------------------------------- server
    async def start_server(self) -> None:
        indiserver = self.args.indiserver or str(ROOT / ".venv" / "bin" / "indiserver")
        bindir = str(Path(indiserver).resolve().parent)
        self.log = open(self.args.log, "wb")  # noqa: SIM115 - open for the whole run
        command = [indiserver, "-v", "-p", str(self.port), "-l", bindir, *DRIVERS]
        print(f"soak: {' '.join(command)} (log {self.args.log})", flush=True)
        self.server = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=self.log, stderr=asyncio.subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                if self.server.returncode is not None:
                    raise SystemExit(f"soak: indiserver exited with status {self.server.returncode}") from None
                await asyncio.sleep(0.2)
        raise SystemExit("soak: indiserver did not start listening within 30 s")

    async def stop_server(self) -> dict:
        assert self.server is not None
        drivers = children(self.server.pid)
        t0 = time.monotonic()
        self.server.send_signal(signal.SIGTERM)
        try:
            status = await asyncio.wait_for(self.server.wait(), 15)
        except TimeoutError:
            self.server.kill()
            status = await self.server.wait()
            self.error("shutdown", "indiserver did not exit within 15 s of SIGTERM")
        took = time.monotonic() - t0
        await asyncio.sleep(0.5)
        left = [pid for pid in drivers if os.path.exists(f"/proc/{pid}") and _alive(pid)]
        if left:
            self.error("shutdown", f"driver processes left behind: {left}")
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        self.log.close()
        return {"exit_status": status, "seconds": round(took, 2), "drivers_left": len(left)}

    # ---------------------------------------------------------------------------- sampling
    def sample(self) -> dict:
        assert self.server is not None
        pid = self.server.pid
        kids = children(pid)
        driver_rss = 0
        pids = {}
        for kid in kids:
            try:
                driver_rss += rss_kb(kid)
                pids[_driver_name(cmdline(kid))] = kid
            except OSError:
                pass
        for name, kid in pids.items():
            old = self.driver_pids.get(name)
            if old is not None and old != kid:
                self.error("driver-restart", f"{name}: process {old} replaced by {kid}")
            self.driver_pids[name] = kid
        s = {"t": round(self.elapsed(), 1), "server_rss_kb": rss_kb(pid), "server_fds": fd_count(pid),
             "drivers": len(kids), "drivers_rss_kb": driver_rss, "exposures": self.counts["images_ok"],
             "clients": self.counts["clients_started"]}
        self.samples.append(s)
        return s

    async def sampler(self) -> None:
        next_report = 60.0
        while not self.stop.is_set():
            try:
                s = self.sample()
            except OSError as exc:
                self.error("sample", str(exc))
                return
            if s["drivers"] != len(DRIVERS):
                self.error("drivers", f"{s['drivers']} driver processes, expected {len(DRIVERS)}")
            if self.elapsed() >= next_report:
                next_report += 60.0
                c = self.counts
                print(f"[{self.elapsed():7.1f} s] server {s['server_rss_kb'] / 1024:.1f} MB, {s['server_fds']} fds; "
                      f"drivers {s['drivers_rss_kb'] / 1024:.1f} MB; exposures {c['exposures_requested']} / "
                      f"images {c['images_ok']}; slews {c['slews_ok']}; focus {c['focus_moves_ok']}; "
                      f"clients {c['clients_started']} (defs ok {c['clients_defs_ok']}); "
                      f"errors {sum(self.error_kinds.values())}", flush=True)
            try:
                await asyncio.wait_for(self.stop.wait(), self.args.sample_interval)
            except TimeoutError:
                pass

    # ---------------------------------------------------------------------------- the observer
    async def observer(self) -> None:
        client = Client("127.0.0.1", self.port, reconnect=False, keep_blobs=False)
        self.observer_client = client
        await client.connect()
        for device in DEVICES:
            await client.wait_device(device, 30)
            for prop in KEY_PROPERTIES[device]:
                await client.wait_property(device, prop, 30)
            await client.wait_for(lambda d=device: client[d].connected, 60, what=f"{device} connected")
        if client[TELESCOPE].get("TELESCOPE_PARK") is not None and "PARK" in client[TELESCOPE]["TELESCOPE_PARK"].on:
            await client.select(TELESCOPE, "TELESCOPE_PARK", "UNPARK", wait=True, timeout=60)
        await client.enable_blob(CCD, "CCD1", "Also")
        self.ready.set()
        jobs = [asyncio.create_task(self.camera(client)), asyncio.create_task(self.mount(client)),
                asyncio.create_task(self.focuser(client))]
        await self.stop.wait()
        # let the exposure in progress finish
        done, pending = await asyncio.wait(jobs, timeout=self.args.exposure + 90)
        for job in pending:
            job.cancel()
            self.error("observer", f"{job.get_coro().__qualname__} did not finish after the run")
        for job in done:
            if job.exception() is not None:
                self.error("observer", f"{job.get_coro().__qualname__} failed: {job.exception()!r}")
        self.counts["observer_messages"] = getattr(client, "_message_count", len(client.messages))
        await client.close()

    async def camera(self, client: Client) -> None:
        binning = 1
        while not self.stop.is_set():
            binning = 2 if binning == 1 else 1
            try:
                await client.set(CCD, "CCD_BINNING", HOR_BIN=binning, VER_BIN=binning, wait=True, timeout=30)
            except Exception as exc:  # noqa: BLE001 - every failure is counted
                self.error("binning", repr(exc))
                await asyncio.sleep(1)
                continue
            frame = client[CCD]["CCD_FRAME"].values
            width, height = int(frame["WIDTH"]) // binning, int(frame["HEIGHT"]) // binning
            expected = width * height * 2
            receiver = client.receive_blob(CCD, "CCD1")
            self.counts["exposures_requested"] += 1
            t0 = time.monotonic()
            try:
                await client.set(CCD, "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=self.args.exposure)
                blob = await receiver.wait(self.args.exposure + 60)
            except Exception as exc:  # noqa: BLE001
                receiver.cancel()
                self.error("exposure", f"exposure {self.counts['exposures_requested']}: {exc!r}")
                continue
            self.counts["image_bytes"] += blob.size
            problem = check_fits(blob.data or b"", width, height)
            if problem is None and blob.size != len(blob.data or b""):
                problem = f"size attribute {blob.size} but {len(blob.data or b'')} bytes"
            if problem:
                self.error("image", f"exposure {self.counts['exposures_requested']} ({width}x{height}, "
                                    f"at least {expected} bytes of pixels): {problem}")
            else:
                self.counts["images_ok"] += 1
                self.counts["image_seconds_total_ms"] += int((time.monotonic() - t0) * 1000)
            await asyncio.sleep(self.args.exposure_gap)

    async def mount(self, client: Client) -> None:
        while not self.stop.is_set():
            ra, dec = self.target(client)
            self.counts["slews_requested"] += 1
            try:
                await client.select(TELESCOPE, "ON_COORD_SET", "TRACK", wait=True, timeout=30)
                await client.set(TELESCOPE, "EQUATORIAL_EOD_COORD", RA=ra, DEC=dec, wait=True, timeout=180)
                p = client[TELESCOPE]["EQUATORIAL_EOD_COORD"]
                dra = abs((p["RA"].value - ra + 12) % 24 - 12) * 15
                ddec = abs(p["DEC"].value - dec)
                if dra > 0.1 or ddec > 0.1:
                    self.error("slew", f"ended {dra:.3f} deg (RA) / {ddec:.3f} deg (DEC) away from the target")
                else:
                    self.counts["slews_ok"] += 1
            except Exception as exc:  # noqa: BLE001
                if "below the horizon" in str(exc):
                    self.counts["slews_refused_horizon"] += 1  # the target set while we computed it
                else:
                    self.error("slew", repr(exc))
            await self._pause(self.rng.uniform(5, 20))

    def target(self, client: Client) -> tuple[float, float]:
        """A random target between 25 and 80 degrees of altitude at the telescope's site, now."""
        site = client[TELESCOPE]["GEOGRAPHIC_COORD"].values
        lst = astro.lst_hours(time.time(), site["LONG"])
        alt, az = self.rng.uniform(25, 80), self.rng.uniform(0, 360)
        return astro.horizontal_to_equatorial(alt, az, site["LAT"], lst)

    async def focuser(self, client: Client) -> None:
        while not self.stop.is_set():
            target = self.rng.randrange(30000, 70000)
            self.counts["focus_moves_requested"] += 1
            try:
                await client.set(FOCUSER, "ABS_FOCUS_POSITION", FOCUS_ABSOLUTE_POSITION=target, wait=True, timeout=120)
                got = client[FOCUSER]["ABS_FOCUS_POSITION"]["FOCUS_ABSOLUTE_POSITION"].value
                if abs(got - target) > 1:
                    self.error("focus", f"asked {target}, at {got}")
                else:
                    self.counts["focus_moves_ok"] += 1
            except Exception as exc:  # noqa: BLE001
                self.error("focus", repr(exc))
            await self._pause(self.rng.uniform(3, 10))

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
        except TimeoutError:
            pass

    # ---------------------------------------------------------------------------- passing clients
    async def churn(self) -> None:
        getprop = shutil.which("indi_getprop", path="/usr/bin") if not self.args.no_getprop else None
        kinds = ["library", "blob-leaver"] + (["getprop"] if getprop else [])
        await self.ready.wait()  # clients that come before the drivers defined anything get nothing
        while not self.stop.is_set():
            kind = self.rng.choice(kinds)
            self.counts["clients_started"] += 1
            self.counts[f"clients_{kind}"] += 1
            job = {"library": self.library_client, "getprop": self.getprop_client,
                   "blob-leaver": self.blob_leaver}[kind]
            task = asyncio.create_task(self._guard(kind, job(getprop) if kind == "getprop" else job()))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            await self._pause(self.rng.uniform(self.args.churn_min, self.args.churn_max))
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=60)

    async def _guard(self, kind: str, coro) -> None:
        try:
            await asyncio.wait_for(coro, 60)
        except Exception as exc:  # noqa: BLE001
            self.error(f"client-{kind}", repr(exc))

    async def library_client(self) -> None:
        async with Client("127.0.0.1", self.port, reconnect=False) as c:
            for device in DEVICES:
                for prop in KEY_PROPERTIES[device]:
                    await c.wait_property(device, prop, 20)
            await c.ping(10)
            self.counts["clients_defs_ok"] += 1
            self.counts["client_messages"] += len(c.messages)
            await asyncio.sleep(self.rng.uniform(0, 4))

    async def blob_leaver(self) -> None:
        c = Client("127.0.0.1", self.port, reconnect=False)
        await c.connect()
        try:
            for device in DEVICES:
                for prop in KEY_PROPERTIES[device]:
                    await c.wait_property(device, prop, 20)
            self.counts["clients_defs_ok"] += 1
            await c.enable_blob(CCD, None, self.rng.choice(["Also", "Only"]))
            await asyncio.sleep(self.rng.uniform(0.5, 6))
        finally:
            # an abrupt close, maybe in the middle of a BLOB
            await c.close()

    async def getprop_client(self, getprop: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            # Exact names: with a wildcard indi_getprop waits until no definition came for -t
            # seconds, which never happens while other clients come and go (each one's
            # getProperties makes the drivers define everything again, to every client).
            getprop, "-h", "127.0.0.1", "-p", str(self.port), "-t", "10", *(f"{d}.CONNECTION.CONNECT" for d in DEVICES),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        text = out.decode(errors="replace")
        missing = [d for d in DEVICES if f"{d}.CONNECTION.CONNECT=" not in text]
        if missing:
            raise RuntimeError(f"indi_getprop (status {proc.returncode}) did not show {missing}: "
                               f"{err.decode(errors='replace').strip()[:200]}")
        self.counts["clients_defs_ok"] += 1

    # ---------------------------------------------------------------------------- run
    async def run(self) -> dict:
        self.start = time.monotonic()
        await self.start_server()
        try:
            return await self._run()
        except BaseException:
            if self.server is not None and self.server.returncode is None:
                self.server.kill()  # its drivers die with it
            raise

    async def _run(self) -> dict:
        started_at = time.time()
        self.sample()
        sampler = asyncio.create_task(self.sampler())
        observer = asyncio.create_task(self.observer())
        churn = asyncio.create_task(self.churn())
        observer.add_done_callback(lambda _: self.stop.set())  # it ends early only if it failed
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):  # stop early, still summing up
            loop.add_signal_handler(signum, self.stop.set)
        try:
            await asyncio.wait_for(self.stop.wait(), self.duration)
        except TimeoutError:
            pass
        self.stop.set()
        self.ready.set()
        for name, task in (("observer", observer), ("churn", churn)):
            try:
                await asyncio.wait_for(task, self.args.exposure + 150)
            except Exception as exc:  # noqa: BLE001
                self.error(name, f"failed: {exc!r}")
        await sampler
        final = self.sample()
        shutdown = await self.stop_server()
        return self.summary(started_at, final, shutdown)

    def summary(self, started_at: float, final: dict, shutdown: dict) -> dict:
        c = self.counts
        log_text = Path(self.args.log).read_text(errors="replace")
        log_problems = {
            "driver_restarts": log_text.count(": restart #"),
            "clients_dropped_behind": log_text.count("behind (limit"),
            "malformed_xml": log_text.count("malformed XML"),
            "tracebacks": log_text.count("Traceback"),
        }
        series = [s for s in self.samples]

        def at(seconds: float) -> dict | None:
            if not series or series[-1]["t"] < seconds * 0.9:
                return None
            return min(series, key=lambda s: abs(s["t"] - seconds))

        def slope(key: str, after: float) -> float | None:
            pts = [(s["t"] / 3600.0, s[key] / 1024.0) for s in series if s["t"] >= after]
            if len(pts) < 3:
                return None
            n = len(pts)
            mx = sum(p[0] for p in pts) / n
            my = sum(p[1] for p in pts) / n
            den = sum((p[0] - mx) ** 2 for p in pts)
            return round(sum((p[0] - mx) * (p[1] - my) for p in pts) / den, 2) if den else None

        warmup = min(300.0, self.duration / 5)
        memory = {}
        for label, point in (("start", series[0] if series else None), ("30min", at(1800)),
                             ("mid", at(self.elapsed() / 2)), ("end", final)):
            if point is not None:
                memory[label] = {"t": point["t"], "server_rss_mb": round(point["server_rss_kb"] / 1024, 1),
                                 "server_fds": point["server_fds"],
                                 "drivers_rss_mb": round(point["drivers_rss_kb"] / 1024, 1)}
        memory["server_rss_max_mb"] = round(max(s["server_rss_kb"] for s in series) / 1024, 1)
        memory["server_fds_max"] = max(s["server_fds"] for s in series)
        memory["server_rss_slope_mb_per_h"] = slope("server_rss_kb", warmup)
        memory["drivers_rss_slope_mb_per_h"] = slope("drivers_rss_kb", warmup)
        memory["slope_from_s"] = warmup
        lost_images = c["exposures_requested"] - c["images_ok"]
        lost_defs = c["clients_started"] - c["clients_defs_ok"]
        nothing_lost = (lost_images == 0 and lost_defs == 0 and c["exposures_requested"] > 0)
        clean = (nothing_lost and not self.error_kinds and shutdown["exit_status"] == 0
                 and shutdown["drivers_left"] == 0 and log_problems["driver_restarts"] == 0)
        result = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started_at)),
            "minutes_planned": self.args.minutes,
            "seconds_run": round(self.elapsed(), 1),
            "port": self.port,
            "drivers": list(DRIVERS),
            "exposure_seconds": self.args.exposure,
            "exposures_requested": c["exposures_requested"],
            "images_received_ok": c["images_ok"],
            "images_lost_or_bad": lost_images,
            "image_megabytes": round(c["image_bytes"] / 1e6, 1),
            "mean_exposure_cycle_s": round(c["image_seconds_total_ms"] / 1000 / c["images_ok"], 2)
            if c["images_ok"] else None,
            "slews_requested": c["slews_requested"],
            "slews_ok": c["slews_ok"],
            "slews_refused_below_horizon": c["slews_refused_horizon"],
            "focus_moves_requested": c["focus_moves_requested"],
            "focus_moves_ok": c["focus_moves_ok"],
            "clients_started": c["clients_started"],
            "clients_by_kind": {k: c[f"clients_{k}"] for k in ("library", "getprop", "blob-leaver")},
            "clients_with_all_defs": c["clients_defs_ok"],
            "clients_without_defs": lost_defs,
            "messages_to_observer": c["observer_messages"],
            "errors": sum(self.error_kinds.values()),
            "errors_by_kind": dict(self.error_kinds),
            "error_samples": self.errors[:50],
            "server_log": {"path": str(self.args.log), **log_problems},
            "shutdown": shutdown,
            "memory": memory,
            "nothing_lost": nothing_lost,
            "passed": clean,
            "samples": series,
        }
        return result


def _alive(pid: int) -> bool:
    try:
        return _status(pid).get("State", "").split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _driver_name(command: str) -> str:
    for name in DRIVERS:
        if name in command:
            return name
    return command


def check_fits(data: bytes, width: int, height: int) -> str | None:
    """None if data is one complete FITS image of width x height 16-bit pixels, else what is wrong."""
    if not data.startswith(b"SIMPLE  ="):
        return f"not FITS: starts {data[:20]!r}"
    cards: dict[str, str] = {}
    pos = 0
    while True:
        if pos + 80 > len(data):
            return "no END card"
        card = data[pos:pos + 80].decode("ascii", "replace")
        pos += 80
        key = card[:8].strip()
        if key == "END":
            break
        if card[8:10] == "= ":
            cards[key] = card[10:].split("/")[0].strip()
    header = -(-pos // FITS_BLOCK) * FITS_BLOCK
    try:
        bitpix, naxis1, naxis2 = int(cards["BITPIX"]), int(cards["NAXIS1"]), int(cards["NAXIS2"])
    except (KeyError, ValueError) as exc:
        return f"bad header: {exc!r}"
    if (naxis1, naxis2) != (width, height):
        return f"image is {naxis1}x{naxis2}, expected {width}x{height}"
    pixels = naxis1 * naxis2 * abs(bitpix) // 8
    size = header + -(-pixels // FITS_BLOCK) * FITS_BLOCK
    if len(data) != size:
        return f"{len(data)} bytes, a {naxis1}x{naxis2}x{bitpix} FITS file is {size}"
    return None


def print_summary(r: dict) -> None:
    m = r["memory"]
    print()
    print(f"soak: {r['seconds_run'] / 60:.1f} min with {', '.join(r['drivers'])}")
    print(f"  exposures requested {r['exposures_requested']}, images received and checked "
          f"{r['images_received_ok']} ({r['image_megabytes']} MB), lost or bad {r['images_lost_or_bad']}")
    print(f"  slews {r['slews_ok']}/{r['slews_requested']}, focuser moves {r['focus_moves_ok']}/"
          f"{r['focus_moves_requested']}, messages to the observer {r['messages_to_observer']}")
    print(f"  passing clients {r['clients_started']} {r['clients_by_kind']}, with all definitions "
          f"{r['clients_with_all_defs']}")
    print(f"  errors {r['errors']} {r['errors_by_kind'] or ''}; server log: {r['server_log']}")
    for label in ("start", "30min", "mid", "end"):
        if label in m:
            p = m[label]
            print(f"  memory {label:>5} (t={p['t']:.0f} s): server {p['server_rss_mb']} MB RSS, "
                  f"{p['server_fds']} fds; drivers {p['drivers_rss_mb']} MB RSS")
    print(f"  server RSS max {m['server_rss_max_mb']} MB, fds max {m['server_fds_max']}; slope after "
          f"{m['slope_from_s']:.0f} s: server {m['server_rss_slope_mb_per_h']} MB/h, drivers "
          f"{m['drivers_rss_slope_mb_per_h']} MB/h")
    print(f"  shutdown: {r['shutdown']}")
    print(f"  nothing lost: {r['nothing_lost']}; passed: {r['passed']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0, help="how long to run (default 60)")
    parser.add_argument("--json", default="soak.json", help="where to write the results (default soak.json)")
    parser.add_argument("--log", default=None, help="the server's log (default: the JSON path with .server.log)")
    parser.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    parser.add_argument("--indiserver", default=None, help="the indiserver to run (default .venv/bin/indiserver)")
    parser.add_argument("--exposure", type=float, default=1.0, help="CCD exposure in seconds (default 1)")
    parser.add_argument("--exposure-gap", type=float, default=0.5, help="pause between exposures (default 0.5)")
    parser.add_argument("--churn-min", type=float, default=2.0, help="least seconds between passing clients")
    parser.add_argument("--churn-max", type=float, default=5.0, help="most seconds between passing clients")
    parser.add_argument("--sample-interval", type=float, default=10.0, help="seconds between samples (default 10)")
    parser.add_argument("--no-getprop", action="store_true", help="do not use /usr/bin/indi_getprop")
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    args = parser.parse_args(argv)
    if args.log is None:
        args.log = str(Path(args.json).with_suffix("")) + ".server.log"
    result = asyncio.run(Soak(args).run())
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print_summary(result)
    print(f"  results: {args.json}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
