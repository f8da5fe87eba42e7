"""Pieces of indi-web on their own: FIFO lines as our server reads them, script rules and arguments."""

from __future__ import annotations

import json

import pytest

from indi.server.fifo import parse_fifo_command
from indi.web.catalogue import DeviceDriver, remote_driver
from indi.web.manager import ServerError, fifo_start_line, fifo_stop_line, matches
from indi.web.scripts import parse_rules, rule_delay, script_argv


def driver(label: str, binary: str, **kw) -> DeviceDriver:
    return DeviceDriver(label, label, "1.0", binary, "CCDs", **kw)


def test_fifo_lines_are_indiwebmanagers_and_read_back_exactly():
    scope = driver("Telescope Simulator", "indi_simulator_telescope")
    assert fifo_start_line(scope) == 'start indi_simulator_telescope -n "Telescope Simulator"'
    assert fifo_stop_line(scope) == 'stop indi_simulator_telescope -n "Telescope Simulator"'
    ccd = driver("CCD Simulator", "indi_simulator_ccd", mdpd=True, skeleton="/usr/share/indi/ccd_sk.xml")
    assert fifo_start_line(ccd) == 'start indi_simulator_ccd -s "/usr/share/indi/ccd_sk.xml"'  # no -n: mdpd
    odd = driver('My "Odd" Cam\\', "/opt/my drivers/cam")
    command = parse_fifo_command(fifo_start_line(odd))
    assert (command.action, command.driver, command.name) == ("start", "/opt/my drivers/cam", 'My "Odd" Cam\\')
    for spec, served in [("CCD Simulator@host:7625", "CCD Simulator@host:7625"), ("@host:7625", "@host:7625"),
                         ('"Dev Name"@host', "Dev Name@host")]:
        remote = remote_driver(spec)
        assert parse_fifo_command(fifo_start_line(remote)).driver == served
        assert parse_fifo_command(fifo_stop_line(remote)).driver == served
        assert matches({"kind": "remote", "name": served}, remote)


def test_a_name_with_a_newline_cannot_add_a_fifo_command():
    for injected in [driver("Cam\nstart /tmp/evil", "indi_simulator_ccd"), driver("Cam", "cam\rstop x"),
                     remote_driver("Dev\nstart /tmp/evil@host:7625")]:
        for line in (fifo_start_line, fifo_stop_line):
            with pytest.raises(ServerError, match="control character") as refused:
                line(injected)
            assert refused.value.status == 422


def test_status_entries_match_their_driver():
    scope = driver("Telescope Simulator", "indi_simulator_telescope")
    entry = {"kind": "local", "name": "indi_simulator_telescope", "device_name": "Telescope Simulator"}
    assert matches(entry, scope)
    assert not matches({**entry, "device_name": "Other Scope"}, scope)
    assert matches({**entry, "device_name": None}, driver("X", "indi_simulator_telescope", mdpd=True))
    assert not matches({"kind": "remote", "name": "indi_simulator_telescope"}, scope)


def test_script_rules_from_every_shape():
    rules = [{"Driver": "CCD Simulator", "PreDelay": "2.5"}, {"PreDelay": 1}, "junk"]
    assert parse_rules(json.dumps(rules)) == [rules[0]]
    assert parse_rules(rules) == [rules[0]]
    assert parse_rules(rules[0]) == [rules[0]]
    assert parse_rules("not json") == [] and parse_rules(None) == [] and parse_rules("") == []
    assert rule_delay(rules[0], "PreDelay") == 2.5
    assert rule_delay(rules[0], "PostDelay") == 0 and rule_delay(None, "PreDelay") == 0
    assert rule_delay({"PreDelay": "soon"}, "PreDelay") == 0 and rule_delay({"PreDelay": -3}, "PreDelay") == 0
    assert rule_delay({"PreDelay": 1e9}, "PreDelay") == 600


def test_script_arguments_never_go_through_a_shell(tmp_path):
    spaced = tmp_path / "my scripts" / "power on.sh"
    spaced.parent.mkdir()
    spaced.write_text("#!/bin/sh\n")
    spaced.chmod(0o755)
    assert script_argv(str(spaced)) == [str(spaced)]  # a path with spaces is one program
    assert script_argv([str(spaced), "a; b", "$HOME"]) == [str(spaced), "a; b", "$HOME"]
    assert script_argv("true --flag 'two words'")[1:] == ["--flag", "two words"]
    plain = tmp_path / "plain.sh"
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o644)
    for bad, why in [(str(plain), "not executable"), (str(tmp_path / "none.sh"), "not a file"),
                     ("no_such_program_anywhere", "not found on PATH"), ("", "empty"), (42, "path or a list")]:
        with pytest.raises(ValueError, match=why):
            script_argv(bad)
