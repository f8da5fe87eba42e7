"""Command line of the benchmark: which scenarios, which servers, how the results are printed."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import sys
import tempfile
import time
from pathlib import Path

from . import scenarios as sc
from . import servers as srv
from .drivers import build_driver
from .results import Figure, fmt, markdown_table, text_table


def machine() -> dict[str, object]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return {"cpu": model or platform.processor(), "cores": os.cpu_count(),
            "python": platform.python_version(), "kernel": platform.release(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "loadavg_at_start": [round(x, 2) for x in load]}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description=(
        "Benchmark our indiserver against the reference C++ indiserver and indipyserver on the same driver "
        "and clients. Prints one row per figure with each server's median and the ratio ours/reference."))
    p.add_argument("--quick", action="store_true", help="a smoke run of every scenario in seconds (small N, K=1)")
    p.add_argument("--only", metavar="LIST", help=f"scenarios to run, comma-separated (of {','.join(sc.SCENARIOS)})")
    p.add_argument("--servers", metavar="LIST", default=",".join(srv.SERVERS),
                   help="servers to measure, comma-separated (default: all three; those not installed are skipped)")
    p.add_argument("--reps", type=int, metavar="R", help="repetitions of each measurement (default 5, quick 1)")
    p.add_argument("--json", metavar="FILE", help="write every sample and detail as JSON to FILE")
    p.add_argument("--markdown", action="store_true", help="print the results as a markdown table")
    p.add_argument("--python-driver", action="store_true", help="use bench/driver.py even if a C compiler exists")
    p.add_argument("--round-timeout", type=float, metavar="S",
                   help="cut a round short after S seconds and report it as partial (default 120, quick 30)")
    p.add_argument("--burst-n", metavar="LIST", help="burst sizes, comma-separated (default 5000,20000,200000)")
    p.add_argument("--burst-k", metavar="LIST", help="burst client counts, comma-separated (default 1,4,16)")
    p.add_argument("--no-ceiling", action="store_true", help="skip measuring the driver's own ceiling")
    p.add_argument("--ours", metavar="PATH", help="the indiserver executable measured as ours (default: the one "
                   "beside this Python; also INDI_BENCH_OURS), e.g. a build of the previous commit")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.ours:
        srv.OUR_SERVER = os.path.abspath(args.ours)
    only = [s.strip() for s in args.only.split(",")] if args.only else list(sc.SCENARIOS)
    unknown = [s for s in only if s not in sc.SCENARIOS]
    if unknown:
        print(f"bench: unknown scenario {', '.join(unknown)} (choose from {', '.join(sc.SCENARIOS)})", file=sys.stderr)
        return 2
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    chosen, skipped = [], {}
    for name in wanted:
        why = srv.available(name)
        if why:
            skipped[name] = why
        else:
            chosen.append(name)
    if "ours" not in chosen and "ours" in wanted:
        print(f"bench: {skipped['ours']}", file=sys.stderr)
        return 1
    for name, why in skipped.items():
        print(f"bench: skipping {name}: {why}", file=sys.stderr)
    if not chosen:
        print("bench: no server to measure", file=sys.stderr)
        return 1

    # 1,000 idle clients need descriptors in this process and in the servers (which inherit the limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))

    def log(msg: str) -> None:  # progress goes to stderr, the results to stdout
        print(msg, file=sys.stderr, flush=True)

    info = machine()
    info["command"] = " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/run.py", *(argv or sys.argv[1:])])
    with tempfile.TemporaryDirectory(prefix="indi-bench-") as tmp:
        work = Path(tmp)
        home = work / "home"
        home.mkdir()
        driver, driver_kind = build_driver(work, "python" if args.python_driver else "c")
        env = dict(os.environ, HOME=str(home))
        kw = {"servers": chosen, "driver": driver, "env": env, "workdir": work, "progress": log}
        cfg = sc.Config.quick_config(**kw) if args.quick else sc.Config(**kw)
        if args.reps:
            cfg.reps = cfg.startup_reps = args.reps
        if args.burst_n:
            cfg.burst_n = [int(x) for x in args.burst_n.split(",")]
        if args.burst_k:
            cfg.burst_k = [int(x) for x in args.burst_k.split(",")]
        if args.round_timeout:
            cfg.round_timeout = args.round_timeout
        info["driver"] = driver_kind
        info["servers"] = {name: srv.version(name) for name in chosen}
        info["skipped_servers"] = skipped
        info["reps"] = cfg.reps
        if not args.no_ceiling:
            log("driver ceiling (driver -> reader over a socketpair, no server)")
            try:
                info["driver_ceiling"] = sc.ceiling(cfg)
            except Exception as exc:  # noqa: BLE001
                info["driver_ceiling"] = {"error": str(exc)}
        figures: list[Figure] = []
        ran: dict[str, bool] = {}
        for name in only:
            try:
                figures += sc.SCENARIOS[name](cfg)
                ran[name] = True
            except Exception as exc:  # noqa: BLE001 - report and go on with the next scenario
                print(f"bench: scenario {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                ran[name] = False

    print(header(info, markdown=args.markdown))
    print(markdown_table(figures) if args.markdown else text_table(figures))
    print(footer(markdown=args.markdown))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "scenarios_ran": ran,
                                               "figures": [f.to_json() for f in figures]}, indent=1))
    return 0 if all(ran.values()) else 1


def header(info: dict[str, object], markdown: bool) -> str:
    ceiling = info.get("driver_ceiling") or {}
    parts = []
    if isinstance(ceiling, dict) and "burst_msgs_per_s" in ceiling:
        parts.append(f"{fmt(ceiling['burst_msgs_per_s'], 'msg/s')} (N={ceiling.get('burst_n'):,})")
    if isinstance(ceiling, dict) and "blob_mb_per_s" in ceiling:
        parts.append(f"{fmt(ceiling['blob_mb_per_s'], 'MB/s')} of BLOBs")
    servers = ", ".join(f"{k}: {v}" for k, v in info.get("servers", {}).items())  # type: ignore[union-attr]
    lines = [
        f"Command: {info['command']}",
        f"Machine: {info['cpu']}, {info['cores']} cores, Linux {info['kernel']}, Python {info['python']}; "
        f"load average at start {info['loadavg_at_start']}",
        f"Date: {info['date']}; medians of {info['reps']} repetitions",
        f"Servers: {servers}",
        f"Driver: {info['driver']}; its ceiling straight to one reader (no server): "
        + (", ".join(parts) if parts else "not measured"),
    ]
    if markdown:
        return "\n".join(f"- {line}" for line in lines) + "\n"
    return "\n".join(lines) + "\n"


def footer(markdown: bool) -> str:
    text = ("↑ higher is better, ↓ lower is better; ours/ref is the ratio of the medians. "
            "'(lost)': not every message arrived, in order; '(cut)': a round reached the time limit "
            "(--round-timeout), so the figure is a bound (all it had to deliver over the time limit); "
            "'±N%': half the spread of the repetitions, shown when it is 20% or more.")
    return ("\n" + text) if markdown else ("\n" + text)
