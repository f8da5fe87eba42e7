"""The README's "write your own driver" example is the file in examples/, and it works as shown."""

from __future__ import annotations

import os
import re
from pathlib import Path

from helpers import OUR_BIN

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "dew_heater.py"


def test_readme_shows_the_example_file_verbatim_in_under_40_lines():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Write your own driver", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    assert code == EXAMPLE.read_text()
    assert len(code.splitlines()) < 40


def test_example_driver_runs_checks_values_and_polls(servers, home_env):
    env = dict(home_env, PATH=OUR_BIN + os.pathsep + home_env["PATH"])
    server = servers.ours(str(EXAMPLE), env=env)
    client = server.connect()
    client.send('<getProperties version="1.7"/>\n')
    # Connected automatically by our server (no -n): the connected-only properties appear.
    client.expect("defNumberVector", device="Dew Heater", name="HEATER_POWER")
    client.send('<newNumberVector device="Dew Heater" name="HEATER_POWER">'
                '<oneNumber name="PERCENT">60</oneNumber></newNumberVector>\n')
    accepted = client.expect("setNumberVector", device="Dew Heater", name="HEATER_POWER")
    assert accepted.attrs["state"] == "Ok" and b">60</oneNumber>" in accepted.raw
    # The next poll reports the warmer temperature: 5 + 60/20 = 8 C, give or take the noise.
    reading = client.expect("setNumberVector", device="Dew Heater", name="TEMPERATURE", timeout=5)
    celsius = float(re.search(rb">([-0-9.e]+)</oneNumber>", reading.raw).group(1))
    assert 7.8 < celsius < 8.2
    client.send('<newNumberVector device="Dew Heater" name="HEATER_POWER">'
                '<oneNumber name="PERCENT">160</oneNumber></newNumberVector>\n')
    refused = client.expect("setNumberVector", device="Dew Heater", name="HEATER_POWER")
    assert refused.attrs["state"] == "Alert" and "range" in refused.attrs["message"]
    assert b">60</oneNumber>" in refused.raw
