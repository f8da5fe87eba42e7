#!/usr/bin/env python3
"""Record the properties of Debian's C++ simulators (indi-bin 1.9.9), before and after connecting.

Run by hand when the reference changes: python tests/simulators/capture_reference.py
It writes tests/simulators/reference/<driver>.json, which the simulator tests compare against:
for each property its type, label, group, permission, rule and members (names, labels, number
formats and ranges, initial values), as the reference defines them to a client.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from helpers import start_reference  # noqa: E402

SIMULATORS = {
    "indi_simulator_telescope": "Telescope Simulator",
    "indi_simulator_ccd": "CCD Simulator",
    "indi_simulator_guide": "Guide Simulator",
    "indi_simulator_focus": "Focuser Simulator",
    "indi_simulator_wheel": "Filter Simulator",
    "indi_simulator_dome": "Dome Simulator",
    "indi_simulator_gps": "GPS Simulator",
    "indi_simulator_weather": "Weather Simulator",
}
OUT = Path(__file__).resolve().parent / "reference"


def describe(frame) -> dict:
    root = ET.fromstring(frame.raw)
    kind = frame.tag[3:-6]
    prop = {"name": root.get("name"), "type": kind, "label": root.get("label"), "group": root.get("group"),
            "perm": root.get("perm"), "rule": root.get("rule"), "timeout": root.get("timeout"),
            "state": root.get("state"), "members": []}
    for child in root:
        member = {"name": child.get("name"), "label": child.get("label"), "value": (child.text or "").strip()}
        if kind == "Number":
            member.update(format=child.get("format"), min=child.get("min"), max=child.get("max"),
                          step=child.get("step"))
        prop["members"].append(member)
    return prop


def definitions(client, device: str) -> list[dict]:
    """Everything the device defines in answer to getProperties (collected until it falls quiet:
    this is a recording tool, and a driver's answer has no end marker)."""
    client.send(f'<getProperties version="1.7" device="{device}"/>\n')
    frames = []
    while True:
        try:
            frames.append(client.next(timeout=2.0))
        except AssertionError:
            break
    seen, out = set(), []
    for frame in frames:
        if frame.tag.startswith("def") and frame.attrs.get("device") == device:
            name = frame.attrs["name"]
            if name not in seen:
                seen.add(name)
                out.append(describe(frame))
    return out


def capture(driver: str, device: str) -> dict:
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, HOME=home)
        server = start_reference(f"/usr/bin/{driver}", env=env)
        try:
            client = server.connect()
            server.wait_log(r"listening")
            client.send(f'<getProperties version="1.7" device="{device}"/>\n')
            client.expect("defSwitchVector", device=device, name="CONNECTION", timeout=15)
            before = definitions(client, device)
            client.send(f'<newSwitchVector device="{device}" name="CONNECTION">'
                        f'<oneSwitch name="CONNECT">On</oneSwitch></newSwitchVector>\n')
            client.expect("setSwitchVector", device=device, name="CONNECTION", state="Ok", timeout=15)
            while True:  # let the connection settle
                try:
                    client.next(timeout=2.0)
                except AssertionError:
                    break
            after = definitions(client, device)
        finally:
            server.stop()
    return {"driver": driver, "device": device, "source": "Debian indi-bin 1.9.9",
            "before_connect": before, "after_connect": after}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for driver, device in SIMULATORS.items():
        data = capture(driver, device)
        (OUT / f"{driver}.json").write_text(json.dumps(data, indent=1) + "\n")
        print(driver, len(data["before_connect"]), len(data["after_connect"]))


if __name__ == "__main__":
    main()
