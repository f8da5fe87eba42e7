"""Device configuration as libindi keeps it: $HOME/.indi/<Device>_config.xml, an <INDIDriver>
element holding one newXXXVector per saved property; CONFIG_PROCESS saves, loads, restores the
defaults and purges; the configuration is loaded on CONNECT; $INDICONFIG names another file; and
a file written by a C++ libindi driver is read by ours.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from framework_helpers import (
    BASIC,
    BASIC_DEVICE,
    SERVER_KINDS,
    client,
    driver_env,
    messages,
    new_number,
    new_switch,
    new_text,
    set_connected,
    start_server,
    values,
    wait_defs,
    wait_message,
    wait_vector,
)

from helpers import our_simulator
from indi.driver.config import ConfigError, config_path, read_config, write_config
from indi.protocol import NewVector, NumberMember, PropertyType, SwitchMember, TextMember

SAVED = {"DEBUG", "POLLING_PERIOD", "LEVEL", "NOTE", "GAIN"}  # save=True in drivers/basic.py (GAIN: connected)
FOCUSER = "Focuser Simulator"


def config_file(env: dict[str, str], device: str = BASIC_DEVICE) -> Path:
    return Path(env["HOME"]) / ".indi" / f"{device}_config.xml"


@pytest.fixture(params=SERVER_KINDS)
def basic(request, servers, home_env):
    env = driver_env(home_env)
    server = start_server(servers, request.param, BASIC, env=env)
    peer = client(server)
    wait_defs(peer, BASIC_DEVICE, "SAY")
    peer.env = env
    return peer


def config_process(peer, action: str, device: str = BASIC_DEVICE):
    """Press a CONFIG_PROCESS switch; returns the CONFIG_PROCESS update that answers it."""
    peer.send(new_switch(device, "CONFIG_PROCESS", **{action: "On"}))
    return wait_vector(peer, device, "CONFIG_PROCESS")


def change(peer, xml: str, name: str, device: str = BASIC_DEVICE):
    peer.send(xml)
    answer = wait_vector(peer, device, name)
    assert answer.state == "Ok", answer
    return answer


def change_level_and_note(peer, level: float, note: str) -> None:
    change(peer, new_number(BASIC_DEVICE, "LEVEL", VALUE=str(level), ANGLE="-10:30:00"), "LEVEL")
    change(peer, new_text(BASIC_DEVICE, "NOTE", TEXT=note), "NOTE")


def test_config_save_writes_libindi_format_with_only_saved_properties(basic):
    change_level_and_note(basic, 12.5, "saved note")
    change(basic, new_switch(BASIC_DEVICE, "CHOICE", C="On"), "CHOICE")  # not saved
    answer = config_process(basic, "CONFIG_SAVE")
    assert answer.state == "Ok" and set(values(answer).values()) == {"Off"}, answer

    path = config_file(basic.env)
    root = ET.parse(path).getroot()
    assert root.tag == "INDIDriver"
    assert {child.tag for child in root} <= {"newSwitchVector", "newNumberVector", "newTextVector"}
    assert {child.get("device") for child in root} == {BASIC_DEVICE}
    assert sorted(child.get("name") for child in root) == sorted(SAVED)  # once each, nothing else
    saved = {vector.name: vector for vector in read_config(path)}
    assert values(saved["LEVEL"]) == {"VALUE": 12.5, "ANGLE": -10.5}
    assert values(saved["NOTE"]) == {"TEXT": "saved note"}
    assert values(saved["DEBUG"]) == {"ENABLE": "Off", "DISABLE": "On"}  # every switch, as libindi saves them
    assert values(saved["GAIN"]) == {"GAIN_VALUE": 10}
    assert saved["LEVEL"].type is PropertyType.NUMBER and saved["DEBUG"].type is PropertyType.SWITCH


def test_config_load_restores_the_saved_values(basic):
    change_level_and_note(basic, 12.5, "saved note")
    assert config_process(basic, "CONFIG_SAVE").state == "Ok"
    change_level_and_note(basic, 77, "changed")

    basic.send(new_switch(BASIC_DEVICE, "CONFIG_PROCESS", CONFIG_LOAD="On"))
    level = wait_vector(basic, BASIC_DEVICE, "LEVEL")
    note = wait_vector(basic, BASIC_DEVICE, "NOTE")
    assert values(level) == {"VALUE": 12.5, "ANGLE": -10.5} and values(note) == {"TEXT": "saved note"}
    answer = wait_vector(basic, BASIC_DEVICE, "CONFIG_PROCESS")
    assert answer.state == "Ok" and set(values(answer).values()) == {"Off"}, answer


def test_config_default_restores_the_values_the_device_started_with(basic):
    change_level_and_note(basic, 77, "changed")
    change(basic, new_number(BASIC_DEVICE, "POLLING_PERIOD", PERIOD_MS="500"), "POLLING_PERIOD")
    assert config_process(basic, "CONFIG_SAVE").state == "Ok"  # the saved file is not the defaults

    basic.send(new_switch(BASIC_DEVICE, "CONFIG_PROCESS", CONFIG_DEFAULT="On"))
    assert values(wait_vector(basic, BASIC_DEVICE, "POLLING_PERIOD")) == {"PERIOD_MS": 1000}
    assert values(wait_vector(basic, BASIC_DEVICE, "LEVEL")) == {"VALUE": 50, "ANGLE": 0}
    assert values(wait_vector(basic, BASIC_DEVICE, "NOTE")) == {"TEXT": "hello"}
    assert wait_vector(basic, BASIC_DEVICE, "CONFIG_PROCESS").state == "Ok"


def test_config_purge_deletes_the_file(basic):
    assert config_process(basic, "CONFIG_SAVE").state == "Ok"
    path = config_file(basic.env)
    assert path.exists()
    answer = config_process(basic, "CONFIG_PURGE")
    assert answer.state == "Ok" and set(values(answer).values()) == {"Off"}, answer
    assert not path.exists()
    # Nothing to load any more: an error, as libindi says when loadConfig fails.
    basic.send(new_switch(BASIC_DEVICE, "CONFIG_PROCESS", CONFIG_LOAD="On"))
    message, frames = wait_message(basic, BASIC_DEVICE, r"^\[ERROR\] ")
    assert str(path) in message.message, messages(frames)
    assert wait_vector(basic, BASIC_DEVICE, "CONFIG_PROCESS").state == "Alert"


# As libindi writes it (IUUserIONewNumber and friends): single quotes, values on lines of their own.
LIBINDI_STYLE_CONFIG = """<INDIDriver>
<newNumberVector device='{device}' name='GAIN'>
  <oneNumber name='GAIN_VALUE'>
      321
  </oneNumber>
</newNumberVector>
<newNumberVector device='{device}' name='LEVEL'>
  <oneNumber name='VALUE'>
      33
  </oneNumber>
  <oneNumber name='ANGLE'>
      -45:30
  </oneNumber>
</newNumberVector>
<newTextVector device='{device}' name='NOTE'>
  <oneText name='TEXT'>
      from the file
  </oneText>
</newTextVector>
<newNumberVector device='Another Device' name='LEVEL'>
  <oneNumber name='VALUE'>
      99
  </oneNumber>
</newNumberVector>
<newNumberVector device='{device}' name='NOT_A_PROPERTY'>
  <oneNumber name='X'>
      1
  </oneNumber>
</newNumberVector>
</INDIDriver>
"""


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_the_configuration_is_loaded_on_connect(servers, home_env, kind):
    env = driver_env(home_env)
    path = config_file(env)
    path.parent.mkdir(parents=True)
    path.write_text(LIBINDI_STYLE_CONFIG.format(device=BASIC_DEVICE))
    peer = client(start_server(servers, kind, BASIC, env=env))
    wait_defs(peer, BASIC_DEVICE, "SAY")
    set_connected(peer, BASIC_DEVICE)
    assert values(wait_vector(peer, BASIC_DEVICE, "GAIN", "", where=lambda e: values(e)["GAIN_VALUE"] != 10)) \
        == {"GAIN_VALUE": 321}  # a property defined by the connection, then loaded
    assert values(wait_vector(peer, BASIC_DEVICE, "LEVEL")) == {"VALUE": 33, "ANGLE": -45.5}
    assert values(wait_vector(peer, BASIC_DEVICE, "NOTE")) == {"TEXT": "from the file"}


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_a_saved_entry_of_another_type_is_skipped_and_the_rest_applied(servers, home_env, kind):
    """A configuration may name a property with another type (written by another version of the
    driver, or by a C++ driver sharing the device name). libindi's IUReadConfig hands each entry
    to dispatch(), so a newSwitchVector named LEVEL goes to ISNewSwitch, which has no switch
    LEVEL and ignores it; the other entries are applied and the connection is unaffected."""
    env = driver_env(home_env)
    path = config_file(env)
    path.parent.mkdir(parents=True)
    path.write_text(LIBINDI_STYLE_CONFIG.format(device=BASIC_DEVICE).replace(
        "<INDIDriver>\n", f"<INDIDriver>\n<newSwitchVector device='{BASIC_DEVICE}' name='LEVEL'>\n"
                          f"  <oneSwitch name='VALUE'>\n      On\n  </oneSwitch>\n</newSwitchVector>\n"))
    peer = client(start_server(servers, kind, BASIC, env=env))
    wait_defs(peer, BASIC_DEVICE, "SAY")
    peer.send(new_switch(BASIC_DEVICE, "CONNECTION", CONNECT="On"))
    gain = wait_vector(peer, BASIC_DEVICE, "GAIN", where=lambda e: values(e)["GAIN_VALUE"] != 10, timeout=8)
    assert values(gain) == {"GAIN_VALUE": 321}
    assert values(wait_vector(peer, BASIC_DEVICE, "LEVEL")) == {"VALUE": 33, "ANGLE": -45.5}
    peer.send(f"<getProperties version='1.7' device='{BASIC_DEVICE}' name='CONNECTION'/>\n")
    connection = wait_vector(peer, BASIC_DEVICE, "CONNECTION", "def")
    assert connection.state == "Ok" and values(connection)["CONNECT"] == "On", connection


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_indiconfig_names_another_file(servers, home_env, kind, tmp_path):
    elsewhere = tmp_path / "elsewhere" / "custom.xml"
    env = driver_env(home_env, INDICONFIG=str(elsewhere))
    peer = client(start_server(servers, kind, BASIC, env=env))
    wait_defs(peer, BASIC_DEVICE, "SAY")
    change_level_and_note(peer, 12.5, "in custom.xml")
    assert config_process(peer, "CONFIG_SAVE").state == "Ok"
    assert {v.name for v in read_config(elsewhere)} == SAVED
    assert not config_file(env).exists()

    change_level_and_note(peer, 60, "changed")
    set_connected(peer, BASIC_DEVICE)  # loads custom.xml
    assert values(wait_vector(peer, BASIC_DEVICE, "LEVEL")) == {"VALUE": 12.5, "ANGLE": -10.5}
    assert values(wait_vector(peer, BASIC_DEVICE, "NOTE")) == {"TEXT": "in custom.xml"}


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_a_renamed_device_saves_under_its_name(servers, home_env, kind):
    renamed = "Renamed Test Device"
    env = driver_env(home_env, INDIDEV=renamed)
    peer = client(start_server(servers, kind, BASIC, env=env))
    wait_defs(peer, renamed, "SAY")
    assert config_process(peer, "CONFIG_SAVE", renamed).state == "Ok"
    assert {v.device for v in read_config(config_file(env, renamed))} == {renamed}
    assert not config_file(env).exists()


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_a_config_saved_by_the_cpp_focuser_is_read_by_ours(servers, home_env, kind, reference_required):
    """Debian's indi_simulator_focus saves its configuration (CONFIG_SAVE); our focuser simulator,
    started with the same HOME, applies on CONNECT the values the two share."""
    env = driver_env(home_env)
    reference = servers.reference("/usr/bin/indi_simulator_focus", env=env)
    cpp = client(reference)
    wait_vector(cpp, FOCUSER, "CONNECTION", "def")
    set_connected(cpp, FOCUSER)
    change(cpp, new_number(FOCUSER, "FOCUS_MAX", FOCUS_MAX_VALUE="80000"), "FOCUS_MAX", FOCUSER)
    change(cpp, new_number(FOCUSER, "Presets", PRESET_1="1234", PRESET_2="2345", PRESET_3="3456"), "Presets", FOCUSER)
    change(cpp, new_number(FOCUSER, "POLLING_PERIOD", PERIOD_MS="750"), "POLLING_PERIOD", FOCUSER)
    assert config_process(cpp, "CONFIG_SAVE", FOCUSER).state == "Ok"
    reference.stop()
    saved = {vector.name for vector in read_config(config_file(env, FOCUSER))}
    assert {"FOCUS_MAX", "Presets", "POLLING_PERIOD", "DEBUG_LEVEL"} <= saved, saved  # written by libindi

    ours = client(start_server(servers, kind, our_simulator("focus"), env=env))
    wait_defs(ours, FOCUSER, "Mode")
    set_connected(ours, FOCUSER)
    assert values(wait_vector(ours, FOCUSER, "POLLING_PERIOD")) == {"PERIOD_MS": 750}
    assert values(wait_vector(ours, FOCUSER, "FOCUS_MAX")) == {"FOCUS_MAX_VALUE": 80000}
    assert values(wait_vector(ours, FOCUSER, "Presets", where=lambda e: values(e)["PRESET_1"] != 0)) == \
        {"PRESET_1": 1234, "PRESET_2": 2345, "PRESET_3": 3456}


# ========================================================================== config.py directly
def test_config_path(monkeypatch, tmp_path):
    monkeypatch.delenv("INDICONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config_path("My Device") == tmp_path / ".indi" / "My Device_config.xml"
    monkeypatch.setenv("INDICONFIG", str(tmp_path / "other.xml"))
    assert config_path("My Device") == tmp_path / "other.xml"


def test_write_then_read(tmp_path):
    path = tmp_path / "deep" / "er" / "Dev_config.xml"
    vectors = [NewVector(PropertyType.NUMBER, "Dev", "N", [NumberMember("A", 1.5), NumberMember("B", -2)]),
               NewVector(PropertyType.SWITCH, "Dev", "S", [SwitchMember("ON", "On"), SwitchMember("OFF", "Off")]),
               NewVector(PropertyType.TEXT, "Dev", "T", [TextMember("X", "a <b> & 'c'")])]
    write_config(path, vectors)
    assert os.listdir(path.parent) == ["Dev_config.xml"]  # written whole, no temporary left behind
    assert path.read_bytes().startswith(b"<INDIDriver>")
    again = read_config(path)
    assert [(v.type, v.device, v.name) for v in again] == [(v.type, v.device, v.name) for v in vectors]
    assert values(again[0]) == {"A": 1.5, "B": -2} and values(again[1]) == {"ON": "On", "OFF": "Off"}
    assert values(again[2]) == {"X": "a <b> & 'c'"}


def test_read_a_file_libindi_wrote():
    path = Path(__file__).parent / "data" / "libindi_focuser_config.xml"
    vectors = {v.name: v for v in read_config(path)}
    assert values(vectors["POLLING_PERIOD"]) == {"PERIOD_MS": 750}
    assert values(vectors["Presets"]) == {"PRESET_1": 1234, "PRESET_2": 2345, "PRESET_3": 3456}
    assert values(vectors["DEVICE_PORT"]) == {"PORT": "/dev/ttyUSB0"}
    assert values(vectors["DEBUG"]) == {"ENABLE": "Off", "DISABLE": "On"}
    assert {v.device for v in vectors.values()} == {FOCUSER}


def test_read_errors(tmp_path):
    assert read_config(tmp_path / "missing.xml") == []
    broken = tmp_path / "broken.xml"
    broken.write_text("<INDIDriver><newNumberVector device='D' name='N'>")
    with pytest.raises(ConfigError, match="not valid XML"):
        read_config(broken)
    with pytest.raises(ConfigError, match="cannot read"):
        read_config(tmp_path)  # a directory


def test_write_errors(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot write"):
        write_config(blocker / "sub" / "x.xml", [])
