"""The FIFO through which indiwebmanager and KStars start and stop drivers while the server runs.

First the command lines on their own (parse_fifo_command), then a real server started with a FIFO
and no drivers: puppet drivers (relay_driver.py) and a tiny driver of our own that reports the
environment it was started with.
"""

from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from helpers import Peer
from indi.server.fifo import FifoCommand, parse_fifo_command


# ------------------------------------------------------------------------------- command lines
@pytest.mark.parametrize("line, expected", [
    ('start indi_simulator_ccd -n "CCD Simulator" -c "/path/config.xml" -s "/path/skel.xml" -p "/opt/prefix"',
     FifoCommand("start", "indi_simulator_ccd", "CCD Simulator", "/path/config.xml", "/path/skel.xml", "/opt/prefix")),
    ('stop  indi_simulator_ccd -n "CCD Simulator"', FifoCommand("stop", "indi_simulator_ccd", "CCD Simulator")),
    ('start "Dev Name"@host:7625', FifoCommand("start", "Dev Name@host:7625")),
    ("start indi_simulator_telescope\n", FifoCommand("start", "indi_simulator_telescope")),
    ("  stop indi_simulator_telescope  \r\n", FifoCommand("stop", "indi_simulator_telescope")),
    ('start indi_x -c "/home/me/my configs/x.xml" -n "Scope"',
     FifoCommand("start", "indi_x", "Scope", "/home/me/my configs/x.xml")),
    ("start @otherhost:7624", FifoCommand("start", "@otherhost:7624")),
    ('stop "Telescope Simulator"@localhost:7624', FifoCommand("stop", "Telescope Simulator@localhost:7624")),
])
def test_parse_fifo_command(line, expected):
    assert parse_fifo_command(line) == expected


def test_remote_and_local_commands_are_told_apart():
    assert parse_fifo_command('start "Dev Name"@host:port').remote
    assert not parse_fifo_command('start indi_simulator_ccd -n "CCD Simulator"').remote


@pytest.mark.parametrize("line, expected", [
    # An '@' inside a quoted option value does not make a local driver a remote one (home directories
    # such as /home/jdoe@example.com are common with SSSD; a device may be named "Cam@Observatory").
    ('start indi_x -n "Cam@Observatory"', FifoCommand("start", "indi_x", "Cam@Observatory")),
    ('start indi_x -c "/home/me@work/x.xml"', FifoCommand("start", "indi_x", config="/home/me@work/x.xml")),
])
def test_at_sign_in_an_option_value(line, expected):
    assert parse_fifo_command(line) == expected


@pytest.mark.parametrize("line", [
    "",
    "start",
    "stop",
    "restart indi_simulator_ccd",
    "indi_simulator_ccd",
    'start indi_x -n "unterminated',
    "start indi_x -x value",
    "start indi_x -n",
    'start indi_x "CCD"',
    "launch Dev@host:7624",
])
def test_bad_fifo_lines_raise_value_error(line):
    with pytest.raises(ValueError):
        parse_fifo_command(line)


# --------------------------------------------------------------------------- a server with a FIFO
ENV_DRIVER = '''#!{python}
"""Defines one text vector with the INDI* environment it was started with, on every getProperties."""
import os
import sys
from xml.sax.saxutils import quoteattr, escape

device = os.environ.get("INDIDEV") or "Env Driver"
names = ("INDIDEV", "INDICONFIG", "INDISKEL", "INDIPREFIX")
members = "".join("<defText name=%s>%s</defText>" % (quoteattr(n), escape(os.environ.get(n, "(unset)")))
                  for n in names)
while True:
    line = sys.stdin.buffer.readline()
    if not line:
        break
    if b"getProperties" in line:
        sys.stdout.write("<defTextVector device=%s name='ENV' state='Idle' perm='ro'>%s</defTextVector>\\n"
                         % (quoteattr(device), members))
        sys.stdout.flush()
'''


def write_env_driver(directory: Path, name: str = "env_driver") -> str:
    path = directory / name
    path.write_text(ENV_DRIVER.replace("{python}", sys.executable))
    path.chmod(0o755)
    return str(path)


def environment_of(frame) -> dict[str, str]:
    return {el.get("name"): (el.text or "") for el in ET.fromstring(frame.raw)}


def make_fifo(tmp_path: Path) -> str:
    path = str(tmp_path / "indiFIFO")
    os.mkfifo(path)
    return path


def fifo_server(servers, relay, *options: str, env=None):
    """Our server with the given options (a FIFO among them) and no drivers."""
    server = servers.ours(*options, env=relay.env if env is None else env)
    server.wait_log(r"listening to FIFO")
    return server


def command(fifo: str, *lines: str) -> None:
    """Write lines as a shell script or indiwebmanager does: open, write, close."""
    with open(fifo, "w") as f:
        f.write("".join(line + "\n" for line in lines))


def watcher(server) -> Peer:
    client = server.connect()
    client.send("<getProperties version='1.7'/>\n")
    client.ping()
    return client


def define(puppet, device: str) -> None:
    puppet.send(f"<defNumberVector device='{device}' name='prop' state='Idle' perm='rw'>"
                f"<defNumber name='x' format='%g' min='0' max='9' step='1'>0</defNumber></defNumberVector>\n")


def test_start_from_fifo(servers, relay, tmp_path):
    fifo = make_fifo(tmp_path)
    server = fifo_server(servers, relay, "--fifo", fifo)
    client = watcher(server)
    command(fifo, f"start {relay.driver}")
    puppet = relay.accept()
    assert puppet.next().attrs == {"version": "1.7"}
    define(puppet, "Puppet")
    assert client.expect("defNumberVector").attrs["device"] == "Puppet"


def test_two_commands_in_one_write(servers, relay, tmp_path):
    fifo = make_fifo(tmp_path)
    server = fifo_server(servers, relay, "--fifo", fifo)
    command(fifo, f"start {relay.driver}", f"start {relay.driver}")
    first, second = relay.accept(), relay.accept()
    assert first.next().tag == "getProperties" and second.next().tag == "getProperties"
    assert first.pid != second.pid
    assert server.proc.poll() is None


def test_fifo_start_options_set_the_driver_environment(servers, relay, tmp_path):
    fifo = make_fifo(tmp_path)
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    write_env_driver(prefix / "bin", "prefixed_driver")
    driver = write_env_driver(tmp_path)
    # The server's own INDIDEV/INDICONFIG/INDISKEL must not leak into drivers started from the FIFO.
    env = dict(relay.env, INDIDEV="Leaked Device", INDICONFIG="/leaked/config.xml", INDISKEL="/leaked/skel.xml")
    server = fifo_server(servers, relay, "--fifo", fifo, env=env)
    client = watcher(server)

    command(fifo, f'start {driver} -n "Dev X" -c "/tmp/my config.xml" -s "/tmp/skel.xml"')
    got = client.expect("defTextVector", name="ENV")
    assert got.attrs["device"] == "Dev X"
    assert environment_of(got) | {"INDIPREFIX": ""} == {
        "INDIDEV": "Dev X", "INDICONFIG": "/tmp/my config.xml", "INDISKEL": "/tmp/skel.xml", "INDIPREFIX": ""}

    command(fifo, f"start {driver}")
    got = client.expect("defTextVector", name="ENV")
    assert got.attrs["device"] == "Env Driver"
    env_seen = environment_of(got)
    assert (env_seen["INDIDEV"], env_seen["INDICONFIG"], env_seen["INDISKEL"]) == ("(unset)",) * 3

    command(fifo, f'start prefixed_driver -n "Dev P" -p "{prefix}"')
    got = client.expect("defTextVector", name="ENV", device="Dev P")
    assert environment_of(got)["INDIPREFIX"] == str(prefix)


def test_fifo_stop_with_name_stops_only_that_driver(servers, relay, tmp_path):
    fifo = make_fifo(tmp_path)
    server = fifo_server(servers, relay, "--fifo", fifo)
    client = watcher(server)
    # Dev Y first, so that "the first driver with that name" would be the wrong one.
    command(fifo, f'start {relay.driver} -n "Dev Y"')
    dev_y = relay.accept()
    define(dev_y, "Dev Y")
    command(fifo, f'start {relay.driver} -n "Dev X"')
    dev_x = relay.accept()
    define(dev_x, "Dev X")
    client.expect("defNumberVector", device="Dev Y")
    client.expect("defNumberVector", device="Dev X")

    command(fifo, f'stop {relay.driver} -n "Dev X"')
    assert client.expect("delProperty").attrs == {"device": "Dev X"}
    dev_x.wait_closed()
    server.wait_log(r"process \d+ (exited|killed)")
    # The other one runs on, and the server keeps serving.
    dev_y.send("<setNumberVector device='Dev Y' name='prop'><oneNumber name='x'>4</oneNumber></setNumberVector>\n")
    dev_y.ping()
    got = client.ping()
    assert [(f.tag, f.attrs.get("device")) for f in got] == [("setNumberVector", "Dev Y")]
    # A driver stopped on purpose is not restarted (a later log line shows the log is complete).
    command(fifo, "stop indi_log_sentinel")
    server.wait_log(r"indi_log_sentinel.*nothing to stop")
    assert "restart" not in server.log_text()


def test_fifo_stop_with_name_finds_the_driver_that_announced_that_device(servers, relay, tmp_path):
    """indiwebmanager starts drivers without -n and stops them with -n "<driver label>"."""
    fifo = make_fifo(tmp_path)
    server = fifo_server(servers, relay, "--fifo", fifo)
    client = watcher(server)
    command(fifo, f"start {relay.driver}")
    first = relay.accept()
    define(first, "Mount A")
    command(fifo, f"start {relay.driver}")
    second = relay.accept()
    define(second, "Mount B")
    client.expect("defNumberVector", device="Mount A")
    client.expect("defNumberVector", device="Mount B")
    command(fifo, f'stop {relay.driver} -n "Mount B"')
    assert client.expect("delProperty").attrs == {"device": "Mount B"}
    second.wait_closed()
    first.send("<message device='Mount A' message='still here'/>\n")
    first.ping()
    assert [(f.tag, f.attrs.get("device")) for f in client.ping()] == [("message", "Mount A")]


def test_fifo_driver_found_on_path(servers, relay, tmp_path):
    """indiwebmanager and KStars name drivers as installed: "start indi_simulator_ccd"."""
    fifo = make_fifo(tmp_path)
    name = os.path.basename(relay.driver)
    env = dict(relay.env, PATH=os.path.dirname(relay.driver) + os.pathsep + os.environ.get("PATH", ""))
    server = fifo_server(servers, relay, "--fifo", fifo, env=env)
    client = watcher(server)
    command(fifo, f"start {name}")
    puppet = relay.accept()
    define(puppet, "On Path")
    client.expect("defNumberVector", device="On Path")
    command(fifo, f"stop {name}")
    assert client.expect("delProperty").attrs == {"device": "On Path"}
    puppet.wait_closed()


def test_fifo_stop_last_driver_leaves_the_server_running(servers, relay, tmp_path):
    fifo = make_fifo(tmp_path)
    server = fifo_server(servers, relay, "--fifo", fifo)
    client = watcher(server)
    command(fifo, f"start {relay.driver}")
    puppet = relay.accept()
    define(puppet, "Lonely")
    client.expect("defNumberVector", device="Lonely")
    command(fifo, f"stop {relay.driver}")
    assert client.expect("delProperty").attrs == {"device": "Lonely"}
    puppet.wait_closed()
    server.wait_log(r"process \d+ (exited|killed)")
    # With a FIFO open, no drivers is no reason to exit: more may be started.
    assert client.ping() == []
    command(fifo, f"start {relay.driver}")
    relay.accept().next()
    assert server.proc.poll() is None


@pytest.mark.parametrize("bad", [
    "fly me to the moon",
    'start indi_x -n "unterminated',
    "start /nonexistent/indi_nothing",
    "stop indi_not_running",
    "start @",
    'start "Dev"@host:notaport',
])
def test_bad_fifo_line_is_logged_and_the_server_keeps_running(servers, relay, tmp_path, bad):
    fifo = make_fifo(tmp_path)
    server = fifo_server(servers, relay, "--fifo", fifo)
    mark = len(server.lines)
    command(fifo, bad)
    server.wait_log(r"not a FIFO command|cannot read FIFO command|not found|nothing to stop|bad remote server",
                    start=mark)
    command(fifo, f"start {relay.driver}")
    relay.accept().next()
    assert server.connect().ping() == []
    assert server.proc.poll() is None


def test_log_file_option_naming_a_fifo_uses_it_as_the_fifo(servers, relay, tmp_path):
    """indiwebmanager: mkfifo /tmp/indiFIFO; indiserver -p PORT -m 1000 -v -f /tmp/indiFIFO."""
    fifo = make_fifo(tmp_path)
    server = fifo_server(servers, relay, "-m", "1000", "-f", fifo)
    client = watcher(server)
    command(fifo, f'start {relay.driver} -n "Web Dev"')
    puppet = relay.accept()
    define(puppet, "Web Dev")
    assert client.expect("defNumberVector").attrs["device"] == "Web Dev"
    command(fifo, f'stop {relay.driver} -n "Web Dev"')
    assert client.expect("delProperty").attrs == {"device": "Web Dev"}
