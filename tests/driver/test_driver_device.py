"""A device written with indi.driver, run as a real driver under our indiserver and Debian's.

drivers/basic.py declares its properties in a class of fewer than 40 lines; these tests check
what the framework adds to it as libindi's DefaultDevice does: the standard properties,
connected-only properties defined on CONNECT and deleted on DISCONNECT, messages, DEBUG,
SIMULATION, surviving a handler that raises, INDIDEV, and leaving on end-of-file.
"""

from __future__ import annotations

import ast
import os
import subprocess

import pytest
from framework_helpers import (
    BASIC,
    BASIC_DEVICE,
    SERVER_KINDS,
    TIMESTAMP,
    WAIT,
    client,
    driver_env,
    is_vector,
    messages,
    new_switch,
    round_trip,
    set_connected,
    start_server,
    values,
    wait_defs,
    wait_message,
    wait_names,
    wait_vector,
)

from helpers import children_of, pid_alive, wait_until
from indi.protocol import Framer, parse

pytestmark = pytest.mark.peers

STANDARD = {"CONNECTION", "DRIVER_INFO", "DEBUG", "POLLING_PERIOD", "CONFIG_PROCESS"}
OWN_BEFORE = {"CHOICE", "MAYBE", "FLAGS", "LEVEL", "STATUS", "NOTE", "UPLOAD", "SAY"}
OWN_CONNECTED = {"GAIN", "BOOM"}
EXIT_WAIT = 8.0  # a driver leaves within a second of end-of-file; this is its deadline


def test_the_test_device_is_a_class_of_fewer_than_40_lines():
    tree = ast.parse(open(BASIC).read())
    [device] = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    assert device.end_lineno - device.lineno + 1 < 40


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_connected_properties_come_with_connect_and_go_with_disconnect(servers, home_env, kind):
    server = start_server(servers, kind, BASIC, env=driver_env(home_env))
    peer = client(server)
    before = wait_defs(peer, BASIC_DEVICE, "SAY")
    assert set(before) == STANDARD | OWN_BEFORE, sorted(before)
    assert values(before["CONNECTION"]) == {"CONNECT": "Off", "DISCONNECT": "On"}
    assert before["CONNECTION"].rule == "OneOfMany" and before["CONFIG_PROCESS"].rule == "AtMostOne"

    peer.send(new_switch(BASIC_DEVICE, "CONNECTION", CONNECT="On"))
    seen = wait_names(peer, BASIC_DEVICE, OWN_CONNECTED)
    connection = [parse(f) for f in seen if is_vector(f, BASIC_DEVICE, "CONNECTION")]
    assert connection and connection[-1].state == "Ok" and values(connection[-1])["CONNECT"] == "On", connection
    assert [m for m in messages(seen) if m.startswith("[INFO] ")], messages(seen)

    peer.send(new_switch(BASIC_DEVICE, "CONNECTION", DISCONNECT="On"))
    seen = wait_names(peer, BASIC_DEVICE, OWN_CONNECTED, "delProperty")
    deleted = {f.attrs.get("name") for f in seen if f.tag == "delProperty"}
    assert deleted == OWN_CONNECTED, deleted
    # Deleted, not just hidden: asking again defines only the disconnected set.
    peer.send(f"<getProperties version='1.7' device='{BASIC_DEVICE}'/>\n")
    again = wait_defs(peer, BASIC_DEVICE, "SAY")
    assert set(again) == STANDARD | OWN_BEFORE
    assert values(again["CONNECTION"]) == {"CONNECT": "Off", "DISCONNECT": "On"}


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_driver_info_names_the_executable_and_the_interfaces(servers, home_env, kind):
    server = start_server(servers, kind, BASIC, env=driver_env(home_env))
    info = wait_vector(client(server), BASIC_DEVICE, "DRIVER_INFO", "def")
    assert info.perm == "ro"
    assert values(info) == {"DRIVER_NAME": BASIC_DEVICE, "DRIVER_EXEC": "basic.py", "DRIVER_VERSION": "2.5",
                            "DRIVER_INTERFACE": "24"}  # FOCUSER 8 | FILTER 16


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_messages_have_libindi_form_and_debug_gates_debug_messages(servers, home_env, kind):
    server = start_server(servers, kind, BASIC, env=driver_env(home_env))
    peer = client(server)
    wait_defs(peer, BASIC_DEVICE, "SAY")

    peer.send(new_switch(BASIC_DEVICE, "SAY", NOW="On"))
    message, frames = wait_message(peer, BASIC_DEVICE, r"info message 1")
    assert message.message == "[INFO] info message 1"
    assert message.device == BASIC_DEVICE and TIMESTAMP.match(message.timestamp or ""), message
    assert not [m for m in messages(frames) if "debug message" in m], messages(frames)  # DEBUG is off

    peer.send(new_switch(BASIC_DEVICE, "DEBUG", ENABLE="On"))
    debug = wait_vector(peer, BASIC_DEVICE, "DEBUG")
    assert values(debug) == {"ENABLE": "On", "DISABLE": "Off"} and debug.state == "Ok", debug
    peer.send(new_switch(BASIC_DEVICE, "SAY", NOW="On"))
    message, frames = wait_message(peer, BASIC_DEVICE, r"info message 2")
    assert "[DEBUG] debug message 2" in messages(frames), messages(frames)
    [debug_frame] = [f for f in frames if f.tag == "message" and "debug message" in f.attrs["message"]]
    assert debug_frame.attrs["device"] == BASIC_DEVICE and TIMESTAMP.match(debug_frame.attrs["timestamp"])

    peer.send(new_switch(BASIC_DEVICE, "DEBUG", DISABLE="On"))
    wait_vector(peer, BASIC_DEVICE, "DEBUG", where=lambda e: values(e)["DISABLE"] == "On")
    peer.send(new_switch(BASIC_DEVICE, "SAY", NOW="On"))
    _, frames = wait_message(peer, BASIC_DEVICE, r"info message 3")
    assert not [m for m in messages(frames) if "debug message" in m], messages(frames)


@pytest.mark.parametrize("offered", [False, True], ids=["without", "with"])
@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_simulation_is_offered_only_when_the_device_has_it(servers, home_env, kind, offered):
    extra = {"TEST_HAS_SIMULATION": "1"} if offered else {}
    server = start_server(servers, kind, BASIC, env=driver_env(home_env, **extra))
    defs = wait_defs(client(server), BASIC_DEVICE, "SAY")
    assert ("SIMULATION" in defs) is offered, sorted(defs)
    if offered:
        assert values(defs["SIMULATION"]) == {"ENABLE": "Off", "DISABLE": "On"}
        assert defs["SIMULATION"].rule == "OneOfMany"


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_a_handler_that_raises_does_not_take_the_driver_down(servers, home_env, kind):
    server = start_server(servers, kind, BASIC, env=driver_env(home_env))
    peer = client(server)
    wait_defs(peer, BASIC_DEVICE, "SAY")
    set_connected(peer, BASIC_DEVICE)
    wait_vector(peer, BASIC_DEVICE, "BOOM", "def")

    for _ in range(2):  # twice: the first failure left the driver able to fail again
        peer.send(new_switch(BASIC_DEVICE, "BOOM", FIRE="On"))
        boom = wait_vector(peer, BASIC_DEVICE, "BOOM")
        assert boom.state == "Alert" and "the handler exploded" in (boom.message or ""), boom
    # Still the same process, still connected, still serving.
    peer.send(new_switch(BASIC_DEVICE, "SAY", NOW="On"))
    wait_message(peer, BASIC_DEVICE, r"^\[INFO\] info message 1$")
    peer.send(f"<getProperties version='1.7' device='{BASIC_DEVICE}' name='CONNECTION'/>\n")
    assert values(wait_vector(peer, BASIC_DEVICE, "CONNECTION", "def"))["CONNECT"] == "On"
    server.wait_log(r"RuntimeError: the handler exploded", timeout=WAIT)  # the traceback, on the driver's stderr


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_indidev_renames_the_device(servers, home_env, kind):
    renamed = "Renamed Test Device"
    server = start_server(servers, kind, BASIC, env=driver_env(home_env, INDIDEV=renamed))
    peer = client(server)
    defs = wait_defs(peer, renamed, "SAY")
    assert values(defs["DRIVER_INFO"])["DRIVER_NAME"] == BASIC_DEVICE  # libindi: getDriverName(), the default name
    set_connected(peer, renamed)
    wait_vector(peer, renamed, "GAIN", "def")
    frames = round_trip(peer, renamed)
    assert not [f for f in frames if f.attrs.get("device") == BASIC_DEVICE], frames


def test_the_driver_exits_with_status_0_when_stdin_closes(home_env):
    proc = subprocess.Popen([BASIC], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=driver_env(home_env))
    try:
        proc.stdin.write(b"<getProperties version='1.7'/>\n")
        proc.stdin.flush()
        framer, frames = Framer(), []
        while not any(f.tag == "defSwitchVector" and f.attrs.get("name") == "SAY" for f in frames):
            data = proc.stdout.read1(65536)
            assert data, f"the driver closed its output: {proc.stderr.read().decode()}"
            frames += framer.feed(data)
        proc.stdin.close()
        assert proc.wait(WAIT) == 0, proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_the_driver_exits_when_stdin_and_stderr_close_together(home_env):
    """What a driver sees when its server exits or dies: end-of-file on stdin and, at the same
    moment, nobody left reading its stderr. libindi drivers print "<name>: EOF" and exit(0) (a
    failed write to stderr cannot stop them). The framework's driver must not depend on stderr
    to leave: writing "basic.py: EOF" raises BrokenPipeError there."""
    proc = subprocess.Popen([BASIC], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=driver_env(home_env))
    try:
        proc.stdin.write(b"<getProperties version='1.7'/>\n")
        proc.stdin.flush()
        framer, frames = Framer(), []
        while not any(f.tag == "defSwitchVector" and f.attrs.get("name") == "SAY" for f in frames):
            data = proc.stdout.read1(65536)
            assert data, "the driver closed its output"
            frames += framer.feed(data)
        proc.stderr.close()
        proc.stdin.close()
        try:
            assert proc.wait(EXIT_WAIT) == 0
        except subprocess.TimeoutExpired:
            used = cpu_seconds(proc.pid)
            pytest.fail(f"the driver is still running {EXIT_WAIT:g} s after end-of-file, having used {used:.1f} s "
                        f"of CPU: it spins on the end-of-file it never acts on")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_a_driver_leaves_when_its_server_goes_away(servers, home_env, kind):
    """The server is stopped (SIGTERM, as systemd or Ctrl-C would): its drivers must not outlive
    it. Debian's indiserver simply exits, closing the drivers' socket and their stderr pipe;
    ours gives them end-of-file first."""
    server = start_server(servers, kind, BASIC, env=driver_env(home_env))
    wait_defs(client(server), BASIC_DEVICE, "SAY")
    drivers = [pid for pid in children_of(server.proc.pid) if "basic.py" in open(f"/proc/{pid}/cmdline").read()]
    assert len(drivers) == 1, drivers
    server.stop()
    try:
        wait_until(lambda: not pid_alive(drivers[0]), timeout=EXIT_WAIT, what="the driver's exit")
    except AssertionError:
        pytest.fail(f"the driver outlived its {kind} server by {EXIT_WAIT:g} s and has used "
                    f"{cpu_seconds(drivers[0]):.1f} s of CPU (it spins)")
