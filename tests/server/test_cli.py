"""The indiserver command line, as a user types it: the spec's options, -c files, and every mistake.

A mistake must end in exactly one line on stderr that says what to do, with exit status 2 for a
usage error and 1 for anything else, and never a traceback.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import textwrap

import pytest

from helpers import OUR_SERVER, Peer, RelayListener, ServerProcess, free_port, wait_until
from indi.protocol import SwitchState, parse
from indi.server.cli import build_config

TIMEOUT = 30.0
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}: ")


def run_server(args: list[str], env: dict[str, str] | None = None, timeout: float = TIMEOUT):
    """Run indiserver to completion: (exit status, stdout, stderr). Fails if it keeps running."""
    proc = subprocess.Popen([OUR_SERVER, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"indiserver {' '.join(args)} was still running after {timeout} s") from None
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def assert_one_line_error(result, status: int, *needles: str) -> str:
    code, out, err = result
    assert "Traceback" not in err + out, err
    lines = err.splitlines()
    assert len(lines) == 1, f"stderr should be one line, got {len(lines)}:\n{err}"
    assert code == status, f"exit status {code}, expected {status}: {err}"
    for needle in needles:
        assert needle in lines[0], f"{needle!r} missing from: {lines[0]}"
    return lines[0]


def write_script(path, body: str, mode: int = 0o755) -> str:
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(mode)
    return str(path)


@pytest.fixture
def sink(tmp_path) -> str:
    """A driver that reads its input until EOF and says nothing."""
    return write_script(tmp_path / "sink_driver", "exec cat >/dev/null\n")


def switch_vector(device: str, name: str, members: list[tuple[str, str]], rule: str = "OneOfMany") -> str:
    switches = "".join(f"<defSwitch name='{m}' label='{m}'>{v}</defSwitch>" for m, v in members)
    return (f"<defSwitchVector device='{device}' name='{name}' label='{name}' group='Main' state='Idle' "
            f"perm='rw' rule='{rule}' timeout='60'>{switches}</defSwitchVector>\n")


def connection(device: str, connected: bool = False) -> str:
    on, off = ("On", "Off") if connected else ("Off", "On")
    return switch_vector(device, "CONNECTION", [("CONNECT", on), ("DISCONNECT", off)])


def enable_disable(device: str, name: str) -> str:
    return switch_vector(device, name, [("ENABLE", "Off"), ("DISABLE", "On")])


def switched_on(frame, device: str, name: str, member: str) -> None:
    """Assert frame is newSwitchVector device/name turning exactly ``member`` On."""
    assert frame.tag == "newSwitchVector", frame
    assert (frame.attrs.get("device"), frame.attrs.get("name")) == (device, name), frame
    members = {m.name: m.value for m in parse(frame).members}
    assert members.get(member) == SwitchState.ON, members
    assert all(v != SwitchState.ON for k, v in members.items() if k != member), members


def puppet_started(servers, relay, *args):
    server = servers.ours(*args, relay.driver, env=relay.env)
    driver = relay.accept()
    assert driver.expect("getProperties").attrs == {"version": "1.7"}
    return server, driver


# ------------------------------------------------------------------------------------ mistakes

def test_port_in_use_exits_1_naming_the_port(sink):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_server(["-p", str(port), sink])
    line = assert_one_line_error(result, 1, str(port))
    assert "-p" in line, f"does not say to choose another port with -p: {line}"


def test_driver_not_found_exits_1_naming_the_directories_searched(tmp_path):
    first, second, extra = tmp_path / "first", tmp_path / "second", tmp_path / "extra"
    for d in (first, second, extra):
        d.mkdir()
    env = dict(os.environ, PATH=f"{first}{os.pathsep}{second}")
    line = assert_one_line_error(run_server(["-l", str(extra), "indi_no_such_driver"], env=env), 1,
                                 "indi_no_such_driver")
    for directory in (extra, first, second):
        assert str(directory) in line, f"{directory} not named in: {line}"


@pytest.mark.parametrize("how", ["path", "bare name with -l"])
def test_driver_not_executable_exits_1_suggesting_chmod(tmp_path, how):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = write_script(bindir / "indi_lazy_driver", "exec cat >/dev/null\n", mode=0o644)
    args = [script] if how == "path" else ["-l", str(bindir), "indi_lazy_driver"]
    line = assert_one_line_error(run_server(args), 1, "chmod")
    assert "indi_lazy_driver" in line


def test_bad_line_in_config_file_exits_2_naming_file_and_line(tmp_path, sink):
    config = tmp_path / "indi.conf"
    config.write_text(f"# INDI Server Configuration\n-v\n-x\n{sink}\n")
    line = assert_one_line_error(run_server(["-c", str(config)]), 2, f"{config}:3")
    assert "-x" in line


def test_unknown_option_exits_2(sink):
    line = assert_one_line_error(run_server(["--no-such-option", sink]), 2, "--no-such-option")
    assert "--help" in line or "usage" in line.lower(), line


def test_no_drivers_exits_2():
    line = assert_one_line_error(run_server([]), 2)
    assert "driver" in line, line


@pytest.mark.parametrize("args, needle", [(["-m", "0"], "-m"), (["-m", "-5"], "-m"), (["-m", "lots"], "lots"),
                                          (["-p", "notaport"], "notaport"), (["-p", "70000"], "70000")])
def test_bad_option_values_exit_2(sink, args, needle):
    line = assert_one_line_error(run_server([*args, sink]), 2, needle)
    assert "-m" in line or "-p" in line or "port" in line, line


def test_dash_r_counts_restarts_only_in_ascii_digits():
    """-r N is the reference's restart count (KStars passes "-r 0"); "-r \u00b2" used to raise
    ValueError (str.isdigit() is true for it, int() refuses it): it is a host name, like any other."""
    config, _ = build_config(["-r", "3", "-r", "\u00b2", "cam@example.org:7624"])
    assert config.max_restarts == 3
    assert config.remotes == ["@\u00b2", "cam@example.org:7624"]


# ------------------------------------------------------------------------------- config file

def _config_server(tmp_path, relay, port: int, logfile, extra: list[str] = ()):
    config = tmp_path / "indi.conf"
    config.write_text(textwrap.dedent(f"""\
        # INDI Server Configuration
        -p {port}
        -v
          # an indented comment, and a blank line next

        -f {logfile}
        {relay.driver}
        {relay.driver}   # trailing comment
    """))
    return ServerProcess([OUR_SERVER, "-c", str(config), *extra], env=relay.env, port=port)


def test_config_file_sets_port_verbosity_logfile_and_drivers(tmp_path, relay):
    port, logfile = free_port(), tmp_path / "indi.log"
    server = _config_server(tmp_path, relay, port, logfile)
    try:
        # Both driver lines are started (the server listens before it starts drivers).
        first, second = relay.accept(), relay.accept()
        assert first.pid != second.pid
        first.expect("getProperties")
        second.expect("getProperties")
        client = Peer.connect(port)
        client.send("<getProperties version='1.7'/>\n")
        first.expect("getProperties")
        second.expect("getProperties")
        first.send("<message device='one' message='from the first'/>\n")
        second.send("<message device='two' message='from the second'/>\n")
        got = {client.expect("message").attrs["device"] for _ in range(2)}
        assert got == {"one", "two"}
        text = wait_until(lambda: (t := logfile.read_text()) and "new arrival" in t and t,
                          what="-v client arrival in the log file")
        assert re.search(rf"listening to port {port}\b", text), text
    finally:
        assert server.stop() == 0
    lines = logfile.read_text().splitlines()
    assert lines and all(STAMP.match(line) for line in lines), lines
    assert server.lines == [], "the server wrote to the terminal despite -f:\n" + "\n".join(server.lines)


def test_without_f_the_log_goes_to_stdout(tmp_path):
    # Spec: "-f path: Log to a file instead of stdout" -- so without -f, the log is on stdout,
    # where `indiserver -v drv > server.log` captures it.
    quitter = write_script(tmp_path / "quitter", "exit 3\n")
    code, out, err = run_server(["-v", "-p", "0", "--max-restarts", "0", quitter])
    assert code == 1
    assert "Traceback" not in out + err
    assert "Terminated after #0 restarts." in out, f"log not on stdout; stdout={out!r} stderr={err!r}"
    assert all(STAMP.match(line) for line in out.splitlines()), out


def test_command_line_options_override_the_config_file(tmp_path, relay):
    file_port, port, logfile = free_port(), free_port(), tmp_path / "indi.log"
    server = _config_server(tmp_path, relay, file_port, logfile, ["-p", str(port)])
    try:
        relay.accept()
        relay.accept()
        client = Peer.connect(port)
        assert client.ping() == []
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", file_port), timeout=5).close()
    finally:
        server.stop()


# --------------------------------------------------------------------------------- options

def test_l_finds_a_driver_by_bare_name_in_the_directory(servers, relay, tmp_path):
    bindir = tmp_path / "drivers"
    bindir.mkdir()
    shutil.copy(relay.driver, bindir / "indi_puppet_driver")
    (bindir / "indi_puppet_driver").chmod(0o755)
    server = servers.ours("-l", str(bindir), "indi_puppet_driver", env=relay.env)
    driver = relay.accept()
    assert driver.expect("getProperties").attrs == {"version": "1.7"}
    server.wait_log(rf"Driver indi_puppet_driver: pid={driver.pid}\b")


def test_r_0_as_kstars_passes_it_means_no_restarts(servers, relay):
    server, driver = puppet_started(servers, relay, "-r", "0")
    os.kill(driver.pid, signal.SIGKILL)
    assert server.wait_exit(TIMEOUT) == 1
    text = server.log_text()
    assert "Terminated after #0 restarts." in text, text
    assert "restart #1" not in text and "connect" not in text.lower(), text


def test_kstars_command_line_runs_with_fifo_and_no_restarts(servers, relay, tmp_path):
    # KStars: indiserver -v -p 7624 -m 1024 -r 0 -f /tmp/indififoXXXX (after mkfifo).
    fifo = tmp_path / "indififo1234"
    os.mkfifo(fifo)
    server = servers.ours("-m", "1024", "-r", "0", "-f", str(fifo), env=relay.env)
    client = server.connect()
    assert client.ping() == []  # running with no drivers: the FIFO will bring them
    with open(fifo, "w") as f:
        f.write(f"start {relay.driver}\n")
    driver = relay.accept()
    driver.expect("getProperties")
    os.kill(driver.pid, signal.SIGKILL)
    server.wait_log(r"Terminated after #0 restarts\.")
    # The FIFO is still open: the server keeps serving, and starts the next driver it is given.
    assert client.ping() == []
    assert server.proc.poll() is None
    with open(fifo, "w") as f:
        f.write(f"start {relay.driver}\n")
    relay.accept().expect("getProperties")


def test_version():
    code, out, err = run_server(["--version"])
    assert code == 0 and err == ""
    assert re.fullmatch(r"indiserver \S*\d\S*.*\n", out), out


def test_two_servers_on_different_ports_run_side_by_side(relay, tmp_path):
    other = RelayListener(tmp_path)
    ports = [free_port(), free_port()]
    started = []
    try:
        started.append(ServerProcess([OUR_SERVER, "-p", str(ports[0]), relay.driver], env=relay.env,
                                     port=ports[0]))
        one = relay.accept()
        started.append(ServerProcess([OUR_SERVER, "-p", str(ports[1]), relay.driver],
                                     env=dict(os.environ, INDI_TEST_RELAY=other.path), port=ports[1]))
        two = other.accept()
        for server, driver, device in zip(started, (one, two), ("first", "second"), strict=True):
            driver.expect("getProperties")
            client = server.connect()
            client.send("<getProperties version='1.7'/>\n")
            driver.expect("getProperties")
            driver.send(f"<defTextVector device='{device}' name='INFO' state='Idle' perm='ro'>"
                        f"<defText name='T'>{device}</defText></defTextVector>\n")
            driver.ping()
            seen = [f.attrs.get("device") for f in client.ping() if f.tag == "defTextVector"]
            assert seen == [device]
        assert all(s.proc.poll() is None for s in started)
        assert all(s.lines == [] for s in started), [s.lines for s in started]
    finally:
        for server in started:
            server.stop()
        other.close()


# ------------------------------------------------------------------------------- -d -s -n

def test_d_and_s_enable_debug_and_simulation(servers, relay):
    server, driver = puppet_started(servers, relay, "-d", "-s")
    driver.send(enable_disable("dev1", "DEBUG") + enable_disable("dev1", "SIMULATION"))
    first, second = driver.next(), driver.next()
    got = sorted([first, second], key=lambda f: f.attrs.get("name"))
    switched_on(got[0], "dev1", "DEBUG", "ENABLE")
    switched_on(got[1], "dev1", "SIMULATION", "ENABLE")


def test_by_default_devices_are_connected_and_nothing_else_is_switched(servers, relay):
    server, driver = puppet_started(servers, relay)
    driver.send(connection("dev1") + enable_disable("dev1", "DEBUG") + enable_disable("dev1", "SIMULATION"))
    switched_on(driver.next(), "dev1", "CONNECTION", "CONNECT")
    assert driver.ping() == []


def test_s_sets_simulation_before_connecting(servers, relay):
    server, driver = puppet_started(servers, relay, "-s")
    # libindi defines CONNECTION first, then SIMULATION.
    driver.send(connection("dev1") + enable_disable("dev1", "SIMULATION"))
    switched_on(driver.next(), "dev1", "SIMULATION", "ENABLE")
    switched_on(driver.next(), "dev1", "CONNECTION", "CONNECT")
    assert driver.ping() == []


def test_n_never_connects(servers, relay):
    quiet, quiet_driver = puppet_started(servers, relay, "-n")
    quiet_driver.send(connection("quietdev"))
    quiet_driver.ping()  # the definition has been read
    # A server without -n, given the same definition afterwards, is the clock: once it has
    # connected its device, the -n server would have done so too.
    control, control_driver = puppet_started(servers, relay)
    control_driver.send(connection("controldev"))
    switched_on(control_driver.next(), "controldev", "CONNECTION", "CONNECT")
    assert quiet_driver.ping() == []
    assert quiet_driver.ping() == []


def test_device_already_connected_is_sent_nothing(servers, relay):
    server, driver = puppet_started(servers, relay)
    driver.send(connection("already", connected=True))
    driver.send(connection("notyet"))
    # The first switch the driver receives is for the device that was not connected.
    switched_on(driver.next(), "notyet", "CONNECTION", "CONNECT")
    assert driver.ping() == []

