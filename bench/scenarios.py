"""The scenarios. Each one runs every selected server on the same driver and the same clients and
returns Figures (one per table row).

Throughput scenarios keep one server of each kind running and take turns between them, one round
each per repetition (the order rotates), so that a noisy neighbour slows every server alike.
Scenarios that read the server's peak memory (VmHWM, a high-water mark) start a fresh server for
every measurement.
"""

from __future__ import annotations

import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import servers as srv
from .clients import Readers, Round, blob_request, blob_wire_size, burst_request, open_idle, open_stalled, round_trips
from .results import Figure

MB = 1e6
BLOB_SIZE = 4 * 1024 * 1024            # a 4 MB image: 5.6 MB of base64
SIMULATORS = ["/usr/bin/indi_simulator_telescope", "/usr/bin/indi_simulator_ccd"]
SIMULATOR_DEVICES = ("Telescope Simulator", "CCD Simulator")


@dataclass
class Config:
    servers: list[str]
    driver: str
    env: dict[str, str]
    workdir: Path
    quick: bool = False
    reps: int = 5
    round_timeout: float = 120.0     # a round that takes longer is cut short and reported as partial
    slow_round: float = 20.0         # a server whose round took longer is not measured again
    burst_n: list[int] = field(default_factory=lambda: [5_000, 20_000, 200_000])
    burst_k: list[int] = field(default_factory=lambda: [1, 4, 16])
    blob_k: list[int] = field(default_factory=lambda: [1, 4])
    blob_count: int = 50
    rtt_count: int = 3000
    rtt_warmup: int = 300
    stall_n: int = 50_000
    stall_blobs: int = 40
    idle_clients: int = 1000
    idle_n: int = 20_000
    startup_reps: int = 5
    progress: Callable[[str], None] = print

    @classmethod
    def quick_config(cls, **kw) -> Config:
        return cls(quick=True, reps=1, round_timeout=30.0, burst_n=[2_000], burst_k=[1], blob_k=[1], blob_count=1,
                   rtt_count=200, rtt_warmup=20, stall_n=2_000, stall_blobs=2, idle_clients=20, idle_n=2_000,
                   startup_reps=1, **kw)


def _rotated(items: list[str], by: int) -> list[str]:
    if not items:
        return items
    by %= len(items)
    return items[by:] + items[:by]


def _supported(cfg: Config, fig: Figure, clients: int) -> list[str]:
    """The selected servers that can take this many clients; the others get a note."""
    usable = []
    for name in cfg.servers:
        limit = srv.MAX_CLIENTS.get(name)
        if limit is not None and clients > limit:
            fig.value(name).note = f"n/a (max {limit} clients)"
        else:
            usable.append(name)
    return usable


@contextmanager
def _server(cfg: Config, name: str, drivers: list[str] | None = None) -> Iterator[srv.Server]:
    server = srv.start(name, drivers or [cfg.driver], cfg.env)
    try:
        yield server
    finally:
        server.stop()


def _fail(fig: Figure, name: str, exc: BaseException) -> None:
    message = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    fig.value(name).note = "error"
    fig.value(name).details.append({"error": message})
    print(f"  {name}: {message}")


# --------------------------------------------------------------------------------- throughput
def msgs_per_s(r: Round) -> float:
    """Messages delivered per second (to all readers together). A round cut at the time limit
    gives an upper bound: everything expected, over the time limit."""
    if r.timed_out:
        return r.expected * len(r.readers) / r.elapsed
    return r.delivered / r.elapsed


def blob_mb_per_s(r: Round) -> float:
    """MB (10^6 bytes, as received: base64 and XML) per second to all readers together; an upper
    bound when the round was cut."""
    if r.timed_out:
        return blob_wire_size(BLOB_SIZE) * r.expected * len(r.readers) / r.elapsed / MB
    return r.bytes / r.elapsed / MB


def _throughput(cfg: Config, fig: Figure, kind: str, k: int, expected: int, trigger: bytes, warmup: bytes,
                warmup_count: int, sample: Callable[[object], float]) -> None:
    """Rounds of ``trigger`` to k readers on each server in turn; one sample per round."""
    names = _supported(cfg, fig, k)
    with ExitStack() as stack:
        readers: dict[str, Readers] = {}
        servers: dict[str, srv.Server] = {}
        for name in names:
            try:
                servers[name] = stack.enter_context(_server(cfg, name))
                readers[name] = stack.enter_context(Readers(k, servers[name].port, blob=(kind == "blob")))
                r = readers[name].round(kind, warmup_count, warmup, cfg.round_timeout)
                if not r.complete:
                    raise RuntimeError(f"warm-up incomplete: {r.summary()}")
            except Exception as exc:  # noqa: BLE001 - one server failing must not stop the others
                _fail(fig, name, exc)
                readers.pop(name, None)
        active = [n for n in names if n in readers]
        for rep in range(cfg.reps):
            for name in _rotated(list(active), rep):
                if name not in readers:
                    continue
                server = servers[name]
                cpu = server.cpu_seconds()
                r = readers[name].round(kind, expected, trigger, cfg.round_timeout)
                cpu_used = (server.cpu_seconds() or 0) - (cpu or 0)
                if not r.elapsed:
                    fig.value(name).note = "error"
                    fig.value(name).details.append(r.summary())
                    readers.pop(name)
                    continue
                fig.value(name).add(sample(r), r.complete, r.timed_out, server_cpu_s=round(cpu_used, 3),
                                    **r.summary())
                cfg.progress(f"  {name:12s} {fig.params:18s} {fig.metric}: {sample(r):,.1f} "
                             f"({r.elapsed:.3f} s{'' if r.complete else ', NOT COMPLETE'}"
                             f"{', cut at the time limit' if r.timed_out else ''})")
                if not r.complete or r.elapsed > cfg.slow_round or not server.alive():
                    readers.pop(name)  # late messages would spoil its next round: measured once


def burst(cfg: Config) -> list[Figure]:
    figures = []
    for n in cfg.burst_n:
        for k in cfg.burst_k:
            fig = Figure("burst", f"N={n:,} K={k}", "delivered msg/s", "msg/s", "higher")
            figures.append(fig)
            cfg.progress(f"burst N={n} K={k}")
            _throughput(cfg, fig, "burst", k, n, burst_request(n), burst_request(min(n, 1000)), min(n, 1000),
                        msgs_per_s)
            figures.append(_cpu_per_message(fig))
    return figures


def _cpu_per_message(fig: Figure) -> Figure:
    """The server's own CPU time per delivered message: less sensitive to a busy machine than msg/s."""
    cpu = Figure(fig.scenario, fig.params, "server CPU per delivered msg", "us", "lower")
    for name, value in fig.values.items():
        if not value.samples:
            cpu.value(name).note = value.note
        for d in value.details:
            delivered = int(d.get("delivered") or 0)
            if d.get("timed_out"):  # a lower bound: the CPU of the time allowed over every expected message
                delivered = int(d.get("expected_per_client") or 0) * len(d.get("readers") or [])
            if delivered and d.get("server_cpu_s") is not None:
                cpu.value(name).add(float(d["server_cpu_s"]) / delivered * 1e6, value.complete, value.cut)
    return cpu


def blob(cfg: Config) -> list[Figure]:
    """BLOBs as libindi's drivers write them (with ``enclen``, with which the reference server takes
    the base64 in bulk) and without ``enclen``, as drivers outside libindi write them (indipydriver,
    for one), which the reference parses character by character."""
    figures = []
    for enclen in (True, False):
        form = "libindi form (enclen)" if enclen else "no enclen"
        for k in cfg.blob_k:
            fig = Figure("blob", f"{cfg.blob_count}×4 MB K={k}, {form}", "delivered MB/s", "MB/s", "higher")
            figures.append(fig)
            cfg.progress(f"blob K={k}, {form}")
            _throughput(cfg, fig, "blob", k, cfg.blob_count, blob_request(cfg.blob_count, BLOB_SIZE, enclen),
                        blob_request(1, BLOB_SIZE, enclen), 1, blob_mb_per_s)
            for v in fig.values.values():
                for d in v.details:
                    # every BLOB arrived whole: the bytes add up to what the driver wrote (±1% for
                    # servers that re-serialise the XML)
                    want = blob_wire_size(BLOB_SIZE, enclen) * cfg.blob_count
                    for reader in d.get("readers", []):
                        if isinstance(reader, dict) and abs(int(reader.get("bytes", 0)) - want) > want * 0.01:
                            v.complete = False
            figures.append(_cpu_per_megabyte(fig))
    return figures


def _cpu_per_megabyte(fig: Figure) -> Figure:
    """The server's own CPU time (all its threads) per MB delivered: how much of the machine it
    takes, whatever else limited the rate (the driver and the readers share the same cores)."""
    cpu = Figure(fig.scenario, fig.params, "server CPU per delivered MB", "ms", "lower")
    for name, value in fig.values.items():
        if not value.samples:
            cpu.value(name).note = value.note
        for d in value.details:
            megabytes = int(d.get("bytes") or 0) / MB
            if megabytes and d.get("server_cpu_s") is not None and not d.get("timed_out"):
                cpu.value(name).add(float(d["server_cpu_s"]) / megabytes * 1e3, value.complete)
    return cpu


# --------------------------------------------------------------------------------- round trip
def rtt(cfg: Config) -> list[Figure]:
    p50 = Figure("round trip", f"{cfg.rtt_count:,} × newNumberVector→driver→set", "p50", "us", "lower")
    p99 = Figure("round trip", f"{cfg.rtt_count:,} × newNumberVector→driver→set", "p99", "us", "lower")
    cfg.progress("round trip")
    with ExitStack() as stack:
        servers = {}
        for name in cfg.servers:
            try:
                servers[name] = stack.enter_context(_server(cfg, name))
            except Exception as exc:  # noqa: BLE001
                _fail(p50, name, exc)
        for rep in range(cfg.reps):
            for name in _rotated(list(servers), rep):
                try:
                    samples = sorted(round_trips(servers[name].port, cfg.rtt_count, cfg.rtt_warmup))
                except Exception as exc:  # noqa: BLE001
                    _fail(p50, name, exc)
                    servers.pop(name)
                    continue
                a = samples[len(samples) // 2] * 1e6
                b = samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1e6
                p50.value(name).add(a)
                p99.value(name).add(b)
                cfg.progress(f"  {name:12s} p50 {a:.0f} us  p99 {b:.0f} us")
    return [p50, p99]


# ------------------------------------------------------------------------------ stalled client
def _one_memory_run(cfg: Config, name: str, kind: str, expected: int, trigger: bytes, idle: int = 0,
                    stalled: bool = False) -> tuple[object, int | None, str]:
    """A fresh server, one reader (plus idle or stalled clients), one round: (Round, VmHWM, log)."""
    with ExitStack() as stack:
        server = stack.enter_context(_server(cfg, name))
        others: list[socket.socket] = []
        stack.callback(lambda: [s.close() for s in others])
        if idle:
            others += open_idle(server.port, idle)
        readers = stack.enter_context(Readers(1, server.port, blob=(kind == "blob")))
        if stalled:
            others.append(open_stalled(server.port, blob=(kind == "blob")))
        r = readers.round(kind, expected, trigger, cfg.round_timeout)
        time.sleep(0.05)
        peak = server.peak_memory()
        return r, peak, server.log_text()


_DROPPED = re.compile(r"bytes behind|shutting down|too far behind", re.I)


def _paired(cfg: Config, title: str, params: str, kind: str, expected: int, trigger: bytes, unit: str,
            metric: str, variant: dict[str, object], label: str, max_clients: int) -> list[Figure]:
    """Runs with and without a disturbance (a stalled client, idle clients), on fresh servers."""
    rate = Figure(title, params, f"reader {metric} {label}", unit, "higher")
    change = Figure(title, params, f"change vs without ({metric})", "%", "", ratio_wanted=False)
    peak = Figure(title, params, f"server peak memory {label}", "MB", "lower")
    base_peak = Figure(title, params, "server peak memory without", "MB", "lower")
    figures = [rate, change, peak, base_peak]
    names = _supported(cfg, rate, max_clients)
    for fig in figures[1:]:
        for name in cfg.servers:
            if name not in names:
                fig.value(name).note = rate.values[name].note

    figure_of = msgs_per_s if unit == "msg/s" else blob_mb_per_s

    failed: set[str] = set()
    for rep in range(cfg.reps):
        for name in _rotated(list(names), rep):
            if name in failed:
                continue
            try:
                order = [False, True] if rep % 2 == 0 else [True, False]
                runs = {}
                for disturbed in order:
                    runs[disturbed] = _one_memory_run(cfg, name, kind, expected, trigger,
                                                      **(variant if disturbed else {}))
                (r0, hwm0, _), (r1, hwm1, log1) = runs[False], runs[True]
                if not r0.elapsed or not r1.elapsed:
                    raise RuntimeError(f"no data: {r0.summary() if not r0.elapsed else r1.summary()}")
                a, b = figure_of(r0), figure_of(r1)
                dropped = bool(_DROPPED.search(log1))
                rate.value(name).add(b, r1.complete, r1.timed_out, disturbing_client_dropped=dropped,
                                     **r1.summary())
                change.value(name).add((b / a - 1) * 100, r0.complete and r1.complete, r0.timed_out or r1.timed_out)
                if hwm1:
                    peak.value(name).add(hwm1 / MB)
                if hwm0:
                    base_peak.value(name).add(hwm0 / MB)
                cfg.progress(f"  {name:12s} without {fmt_num(a)}  {label} {fmt_num(b)}  "
                             f"VmHWM {(hwm0 or 0) / MB:.0f} -> {(hwm1 or 0) / MB:.0f} MB"
                             f"{'  (disturbing client dropped by server)' if dropped else ''}"
                             f"{'' if r0.complete and r1.complete else '  NOT COMPLETE'}")
                if max(r0.elapsed, r1.elapsed) > cfg.slow_round:
                    failed.add(name)  # slow: one repetition is enough
            except Exception as exc:  # noqa: BLE001
                _fail(rate, name, exc)
                failed.add(name)
    return figures


def fmt_num(x: float) -> str:
    return f"{x:,.1f}"


def stall(cfg: Config) -> list[Figure]:
    cfg.progress(f"stalled client, burst N={cfg.stall_n}")
    figures = _paired(cfg, "stalled client", f"burst N={cfg.stall_n:,}", "burst", cfg.stall_n,
                      burst_request(cfg.stall_n), "msg/s", "msg/s", {"stalled": True}, "with stalled client", 2)
    cfg.progress(f"stalled client, {cfg.stall_blobs} BLOBs")
    figures += _paired(cfg, "stalled client", f"{cfg.stall_blobs}×4 MB BLOBs", "blob", cfg.stall_blobs,
                       blob_request(cfg.stall_blobs, BLOB_SIZE), "MB/s", "MB/s", {"stalled": True},
                       "with stalled client", 2)
    return figures


def idle(cfg: Config) -> list[Figure]:
    cfg.progress(f"{cfg.idle_clients} idle clients, burst N={cfg.idle_n}")
    return _paired(cfg, "idle clients", f"{cfg.idle_clients:,} idle + 1, N={cfg.idle_n:,}", "burst", cfg.idle_n,
                   burst_request(cfg.idle_n), "msg/s", "msg/s", {"idle": cfg.idle_clients},
                   f"with {cfg.idle_clients} idle", cfg.idle_clients + 1)


# ------------------------------------------------------------------------------------ startup
_DEF_SWITCH = re.compile(rb"<defSwitchVector\b[^>]*>")
_ATTR = re.compile(rb"""(\w+)\s*=\s*["']([^"']*)["']""")


def _time_to_properties(cfg: Config, name: str) -> float:
    """Seconds from starting the server to both simulators' CONNECTION definitions at a client."""
    with tempfile.TemporaryDirectory(dir=cfg.workdir) as home:
        env = dict(cfg.env, HOME=home)
        port = srv.free_port()
        t0 = time.monotonic()
        server = srv.Server(name, SIMULATORS, env, port=port)
        try:
            deadline = t0 + 30
            while True:
                try:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                    break
                except OSError:
                    if time.monotonic() > deadline or not server.alive():
                        raise RuntimeError(f"{name} did not listen on {port}: {server.log_text()[-500:]}") from None
                    time.sleep(0.001)
            with sock:
                sock.sendall(b'<getProperties version="1.7"/>\n')
                wanted = set(SIMULATOR_DEVICES)
                data = b""
                scanned = 0
                while wanted:
                    sock.settimeout(max(0.01, deadline - time.monotonic()))
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        raise RuntimeError(f"{name} closed the connection; missing {wanted}")
                    data += chunk
                    for m in _DEF_SWITCH.finditer(data, max(0, scanned - 4096)):
                        attrs = dict(_ATTR.findall(m.group(0)))
                        if attrs.get(b"name") == b"CONNECTION":
                            wanted.discard(attrs.get(b"device", b"").decode())
                    scanned = len(data)
                return time.monotonic() - t0
        finally:
            server.stop()


def startup(cfg: Config) -> list[Figure]:
    fig = Figure("startup", "telescope + CCD simulators", "to both CONNECTION defs", "ms", "lower")
    cfg.progress("startup")
    missing = [p for p in SIMULATORS if not Path(p).exists()]
    names = list(cfg.servers)
    if missing:
        for name in names:
            fig.value(name).note = "n/a (no Debian simulators)"
        return [fig]
    failed: set[str] = set()
    for rep in range(cfg.startup_reps):
        for name in _rotated(names, rep):
            if name in failed:
                continue
            try:
                seconds = _time_to_properties(cfg, name)
                fig.value(name).add(seconds * 1e3)
                cfg.progress(f"  {name:12s} {seconds * 1e3:.0f} ms")
            except Exception as exc:  # noqa: BLE001
                _fail(fig, name, exc)
                failed.add(name)
    return [fig]


# ---------------------------------------------------------------------------- driver ceiling
def ceiling(cfg: Config) -> dict[str, float]:
    """What the driver and one reader do with no server between them (a socketpair)."""
    out: dict[str, float] = {}
    n = max(cfg.burst_n)
    a, b = socket.socketpair()
    proc = subprocess.Popen([cfg.driver], stdin=a.fileno(), stdout=a.fileno(), env=cfg.env)
    a.close()
    try:
        with Readers(1, socks=[b], blob=True) as readers:
            readers.round("burst", 1000, burst_request(1000), 30)
            readers.round("blob", 1, blob_request(1, BLOB_SIZE), 30)  # the driver builds its BLOB once
            rates, mbs = [], []
            for _ in range(max(1, cfg.reps)):
                r = readers.round("burst", n, burst_request(n), cfg.round_timeout)
                if r.elapsed and r.complete:
                    rates.append(r.delivered / r.elapsed)
                r = readers.round("blob", cfg.blob_count, blob_request(cfg.blob_count, BLOB_SIZE), cfg.round_timeout)
                if r.elapsed and r.complete:
                    mbs.append(r.bytes / r.elapsed / MB)
            if rates:
                out["burst_msgs_per_s"] = sorted(rates)[len(rates) // 2]
                out["burst_n"] = n
            if mbs:
                out["blob_mb_per_s"] = sorted(mbs)[len(mbs) // 2]
    finally:
        b.close()
        proc.terminate()
        proc.wait(5)
    return out


SCENARIOS: dict[str, Callable[[Config], list[Figure]]] = {
    "burst": burst,
    "blob": blob,
    "rtt": rtt,
    "stall": stall,
    "idle": idle,
    "startup": startup,
}
