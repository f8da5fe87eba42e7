"""The benchmark harness runs: every scenario in quick mode yields a figure for our server, and
every message it sent arrived. No timing is asserted (figures depend on the machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = {"burst", "blob", "rtt", "stall", "idle", "startup"}


def test_quick_run_measures_every_scenario_for_our_server(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--servers", "ours",
                           "--json", str(out)], capture_output=True, text=True, timeout=110, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())

    assert results["scenarios_ran"] == dict.fromkeys(SCENARIOS, True)
    figures = results["figures"]
    assert {f["scenario"] for f in figures} >= {"burst", "blob", "round trip", "stalled client", "idle clients"}
    if Path("/usr/bin/indi_simulator_ccd").exists():
        assert any(f["scenario"] == "startup" for f in figures)
    for figure in figures:
        ours = figure["values"]["ours"]
        what = f"{figure['scenario']} {figure['params']} {figure['metric']}"
        assert isinstance(ours["median"], (int, float)), f"{what}: no figure for our server ({ours['note']})"
        assert ours["complete"], f"{what}: not every message arrived: {ours['details']}"
    # The deliveries that were counted really are all the messages, in order.
    for figure in figures:
        for detail in figure["values"]["ours"]["details"]:
            for reader in detail.get("readers", []):
                assert reader["count"] == detail["expected_per_client"]
                if "seq_ok" in reader:
                    assert reader["seq_ok"], reader
    # BLOBs both as libindi writes them and without enclen; our server forwards either byte for byte.
    blob_bytes = {}
    for figure in figures:
        if figure["scenario"] == "blob" and figure["metric"] == "delivered MB/s":
            form = "no enclen" if "no enclen" in figure["params"] else "libindi"
            blob_bytes[form] = {r["bytes"] for d in figure["values"]["ours"]["details"] for r in d["readers"]}
    assert blob_bytes.keys() == {"libindi", "no enclen"}, blob_bytes
    (with_enclen,), (without,) = blob_bytes["libindi"], blob_bytes["no enclen"]
    image = 4 * 1024 * 1024
    assert with_enclen - without == len(f' enclen="{4 * ((image + 2) // 3)}"')
    assert "ours" in proc.stdout
