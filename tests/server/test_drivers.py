"""Driver lifecycle under our indiserver: crashes, restarts with backoff, stderr, limits, misbehaviour.

Drivers are puppets (relay_driver.py, spoken by the test), tiny scripts written to tmp_path, or
Debian's C++ simulators when installed. Everything waits for events: a log line, an element, a
pingReply.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import sys
import textwrap
import time

import pytest

from helpers import pid_alive

SIM_FOCUS = "/usr/bin/indi_simulator_focus"
LONG_WAIT = 20.0


def write_script(directory, name: str, body: str, interpreter: str = sys.executable) -> str:
    """An executable driver script in directory; returns its path."""
    path = directory / name
    path.write_text(f"#!{interpreter}\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def label(name: str) -> str:
    """The log prefix of a driver started as ``name``, as a regex."""
    return re.escape(f"Driver {name}")


def def_number(device: str, name: str = "prop1", value: str = "5") -> str:
    return (f"<defNumberVector device='{device}' name='{name}' state='Idle' perm='rw'>"
            f"<defNumber name='num1' format='%f' min='0' max='100' step='1'>{value}</defNumber>"
            f"</defNumberVector>\n")


def new_number(device: str, value: int, name: str = "prop1") -> str:
    return (f"<newNumberVector device='{device}' name='{name}'><oneNumber name='num1'>{value}</oneNumber>"
            f"</newNumberVector>\n")


def all_properties_client(server):
    client = server.connect()
    client.send("<getProperties version='1.7'/>\n")
    return client


def expect_devices(peer, tag: str, devices: set[str], timeout: float = LONG_WAIT) -> None:
    """Wait until peer has received ``tag`` for every device, in any order."""
    missing = set(devices)
    deadline = time.monotonic() + timeout
    while missing:
        frame = peer.next(max(0.01, deadline - time.monotonic()))
        if frame.tag == tag:
            missing.discard(frame.attrs.get("device"))


def logged(server, pattern: str) -> bool:
    """Whether a log line matching pattern has arrived yet (no waiting)."""
    regex = re.compile(pattern)
    return any(regex.search(line) for line in list(server.lines))


# A driver that behaves badly on its first run only (a marker file tells a later run apart), and
# behaves well after being restarted: defines its device, then reads its input until EOF.
ONCE_BAD = """\
    import os, time
    MARK = {mark!r}
    first = not os.path.exists(MARK)
    open(MARK, "a").close()
    os.write(1, {definition!r})
    if first:
        {misbehave}
    else:
        os.write(2, b"second run: reading my input\\n")
        while os.read(0, 1 << 16):
            pass
"""


def once_bad_driver(tmp_path, name: str, device: str, misbehave: str) -> str:
    body = ONCE_BAD.format(mark=str(tmp_path / f"{name}.ran"), definition=def_number(device).encode(),
                           misbehave=misbehave)
    return write_script(tmp_path, name, body)


# ---------------------------------------------------------------------------- crash and restart

def test_kill_9_of_puppet_driver_deletes_then_redefines_for_connected_client(servers, relay):
    server = servers.ours(relay.driver, env=relay.env)
    driver = relay.accept()
    driver.expect("getProperties")
    client = all_properties_client(server)
    driver.expect("getProperties")
    driver.send(def_number("crashdev"))
    client.expect("defNumberVector", device="crashdev", name="prop1")

    os.kill(driver.pid, signal.SIGKILL)

    gone = client.expect("delProperty", device="crashdev")
    assert gone.attrs == {"device": "crashdev"}
    server.wait_log(rf"{label(relay.driver)}: process {driver.pid} killed by signal 9\b")
    server.wait_log(rf"{label(relay.driver)}: restart #1\b")
    again = relay.accept()
    assert again.pid != driver.pid
    # The server itself asks the new process for its definitions...
    assert again.expect("getProperties").attrs == {"version": "1.7"}
    again.send(def_number("crashdev", value="6"))
    # ...and the client, which has sent nothing since, receives them.
    redefined = client.expect("defNumberVector", device="crashdev", name="prop1")
    assert b">6</defNumber>" in redefined.raw


@pytest.mark.skipif(not os.access(SIM_FOCUS, os.X_OK), reason="Debian's indi-bin simulators are not installed")
def test_kill_9_of_real_simulator_is_restarted_and_redefined(servers):
    server = servers.ours(SIM_FOCUS)
    pid = int(server.wait_log(rf"{label(SIM_FOCUS)}: pid=(\d+)").group(1))
    client = all_properties_client(server)
    client.expect("defSwitchVector", LONG_WAIT, device="Focuser Simulator", name="CONNECTION")

    os.kill(pid, signal.SIGKILL)

    gone = client.expect("delProperty", LONG_WAIT, device="Focuser Simulator")
    assert gone.attrs == {"device": "Focuser Simulator"}
    server.wait_log(rf"{label(SIM_FOCUS)}: process {pid} killed by signal 9\b")
    server.wait_log(rf"{label(SIM_FOCUS)}: restart #1\b")
    new_pid = _last_pid(server, SIM_FOCUS, pid)
    assert new_pid != pid and pid_alive(new_pid)
    # Without asking again, the client gets the restarted driver's definitions.
    client.expect("defSwitchVector", LONG_WAIT, device="Focuser Simulator", name="CONNECTION")


def _last_pid(server, name: str, old_pid: int) -> int:
    """The pid of the driver's process after old_pid (waits for its pid= log line)."""
    pattern = rf"{label(name)}: pid=(?!{old_pid}\b)(\d+)"
    return int(server.wait_log(pattern, LONG_WAIT).group(1))


def test_driver_exiting_at_start_is_given_up_after_max_restarts_and_server_exits_1(servers, tmp_path):
    driver = write_script(tmp_path, "exit3.sh", "exit 3\n", interpreter="/bin/sh")
    server = servers.ours("--max-restarts", "2", driver)
    assert server.wait_exit(LONG_WAIT) == 1
    text = server.log_text()
    assert len(re.findall(rf"{label(driver)}: process \d+ exited with status 3\b", text)) == 3, text
    assert re.search(rf"{label(driver)}: restart #1\b", text), text
    assert re.search(rf"{label(driver)}: restart #2\b", text), text
    assert not re.search(r"restart #3\b", text), text
    assert len(re.findall(rf"{label(driver)}: Terminated after #2 restarts\.", text)) == 1, text
    assert "Traceback" not in text


def test_restart_delays_grow(servers, tmp_path):
    # Each run reports when it started (CLOCK_MONOTONIC is system-wide), then exits at once.
    driver = write_script(tmp_path, "flaky.py", """\
        import os, sys, time
        os.write(2, b"started at %.6f\\n" % time.monotonic())
        sys.exit(3)
    """)
    server = servers.ours("--max-restarts", "3", driver)
    assert server.wait_exit(LONG_WAIT) == 1
    text = server.log_text()
    assert re.search(rf"{label(driver)}: Terminated after #3 restarts\.", text), text
    delays = {int(n): float(d or 0) for n, d in re.findall(rf"{label(driver)}: restart #(\d+)(?: in ([\d.]+) s)?$",
                                                           text, re.MULTILINE)}
    assert sorted(delays) == [1, 2, 3], text
    assert 0 < delays[2] < delays[3], f"restart delays do not grow: {delays}\n{text}"
    starts = [float(t) for t in re.findall(rf"{label(driver)}: started at ([\d.]+)$", text, re.MULTILINE)]
    assert len(starts) == 4, text
    for restart in (2, 3):
        gap = starts[restart] - starts[restart - 1]
        assert gap >= delays[restart] - 0.05, f"restart #{restart} came {gap:.3f} s after the previous run, " \
                                              f"not after the announced {delays[restart]} s"


# ------------------------------------------------------------------------------------- stderr

def test_each_stderr_line_is_logged_in_full_with_driver_prefix(servers, tmp_path):
    long_line = "".join(f"{i:04d}," for i in range(1000))
    assert len(long_line) == 5000
    driver = write_script(tmp_path, "talker.py", f"""\
        import os
        os.write(2, b"first line\\n")
        os.write(2, {long_line.encode()!r} + b"\\n")
        os.write(2, b"tab\\tand  spaces kept  \\n")
        os.write(2, b"last words without newline")
        os._exit(0)
    """)
    server = servers.ours("--max-restarts", "0", driver)
    assert server.wait_exit(LONG_WAIT) == 1
    lines = server.log_text().splitlines()
    stamp = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}: "
    prefix = f"Driver {driver}: "
    said = [re.sub(stamp, "", line)[len(prefix):] for line in lines if re.sub(stamp, "", line).startswith(prefix)]
    assert "first line" in said, lines
    assert long_line in said, f"the 5000-character line is not logged in full: {[len(s) for s in said]}"
    assert "tab\tand  spaces kept  " in said, said
    assert "last words without newline" in said, said
    assert said.index("first line") < said.index(long_line) < said.index("last words without newline")


# --------------------------------------------------------------------------- last words on stdout

def test_messages_written_just_before_exit_reach_the_client(servers, tmp_path):
    # Waits for the client's getProperties (the second one; the first is the server's), then
    # writes a burst of messages and exits at once.
    driver = write_script(tmp_path, "lastwords.py", """\
        import os, sys
        seen = b""
        while seen.count(b"<getProperties") < 2:
            chunk = os.read(0, 65536)
            if not chunk:
                sys.exit(0)
            seen += chunk
        out = [b"<defTextVector device='lastdev' name='INFO' state='Idle' perm='ro'>"
               b"<defText name='T'>x</defText></defTextVector>\\n"]
        out += [b"<message device='lastdev' message='note %d'/>\\n" % i for i in range(500)]
        out.append(b"<message device='lastdev' message='last words'/>\\n")
        data = b"".join(out)
        while data:
            data = data[os.write(1, data):]
        os._exit(0)
    """)
    server = servers.ours(driver)
    client = all_properties_client(server)
    client.expect("defTextVector", device="lastdev", name="INFO")
    notes = []
    while True:
        frame = client.next()
        if frame.tag == "message":
            notes.append(frame.attrs["message"])
            if notes[-1] == "last words":
                break
    assert notes == [f"note {i}" for i in range(500)] + ["last words"]
    client.expect("delProperty", device="lastdev")
    server.wait_log(rf"{label(driver)}: process \d+ exited with status 0\b")


# ----------------------------------------------------------------------------------- limits

def test_driver_that_stops_reading_is_killed_when_its_queue_passes_m_and_restarted(servers, tmp_path):
    driver = once_bad_driver(tmp_path, "deaf.py", "deafdev", "while True: time.sleep(3600)")
    server = servers.ours("-m", "1", driver)
    client = all_properties_client(server)
    client.expect("defNumberVector", device="deafdev")
    pid = int(server.wait_log(rf"{label(driver)}: pid=(\d+)").group(1))

    chunk = "".join(new_number("deafdev", i % 100) for i in range(1000)).encode()
    sent = 0
    while not logged(server, "stopped reading"):
        assert sent < 64 << 20, "64 MB sent to a driver that reads nothing and it was not killed (-m 1)"
        client.send(chunk)
        sent += len(chunk)

    line = server.wait_log(rf"{label(driver)}: .*stopped reading").string
    assert "Traceback" not in server.log_text()
    server.wait_log(rf"{label(driver)}: process {pid} killed by signal 9\b")
    server.wait_log(rf"{label(driver)}: restart #1\b")
    client.expect("delProperty", LONG_WAIT, device="deafdev")
    client.expect("defNumberVector", LONG_WAIT, device="deafdev")
    server.wait_log(rf"{label(driver)}: second run: reading my input")
    assert sent < 16 << 20, f"killed only after {sent} bytes with -m 1: {line}"


def test_driver_over_memory_limit_is_killed_and_restarted(servers, tmp_path):
    driver = once_bad_driver(tmp_path, "hog.py", "hogdev", """ballast = bytearray(80 << 20)
        os.write(2, b"holding 80 MB\\n")
        while True: time.sleep(3600)""")
    server = servers.ours("-m", "40", driver)
    client = all_properties_client(server)
    client.expect("defNumberVector", device="hogdev")
    pid = int(server.wait_log(rf"{label(driver)}: pid=(\d+)").group(1))
    server.wait_log(rf"{label(driver)}: holding 80 MB")

    over = server.wait_log(rf"{label(driver)}: .*\b40 MB\b", LONG_WAIT)
    assert "memory" in over.string, over.string
    server.wait_log(rf"{label(driver)}: process {pid} killed by signal 9\b")
    server.wait_log(rf"{label(driver)}: restart #1\b")
    client.expect("delProperty", LONG_WAIT, device="hogdev")
    client.expect("defNumberVector", LONG_WAIT, device="hogdev")
    server.wait_log(rf"{label(driver)}: second run: reading my input")
    assert not pid_alive(pid)


# ------------------------------------------------------------------------------ misbehaviour

def test_driver_writing_garbage_is_dropped_and_restarted_while_another_keeps_serving(servers, relay, tmp_path):
    path_a, path_b = tmp_path / "puppet_a.py", tmp_path / "puppet_b.py"
    path_a.symlink_to(relay.driver)
    path_b.symlink_to(relay.driver)
    a_name, b_name = str(path_a), str(path_b)
    server = servers.ours(a_name, b_name, env=relay.env)
    pid_a = int(server.wait_log(rf"{label(a_name)}: pid=(\d+)").group(1))
    first, second = relay.accept(), relay.accept()
    puppet_a, puppet_b = (first, second) if first.pid == pid_a else (second, first)
    assert puppet_a.pid == pid_a
    puppet_a.expect("getProperties")
    puppet_b.expect("getProperties")

    watcher = all_properties_client(server)
    puppet_a.expect("getProperties")
    puppet_b.expect("getProperties")
    puppet_a.send(def_number("devA"))
    puppet_b.send(def_number("devB"))
    expect_devices(watcher, "defNumberVector", {"devA", "devB"})

    user = server.connect()
    user.send("<getProperties version='1.7' device='devB'/>\n")
    assert puppet_b.expect("getProperties").attrs.get("device") == "devB"
    puppet_b.send(def_number("devB"))
    assert user.next().tag == "defNumberVector"

    def round_trip(value: int) -> None:
        """The user sets devB; driver B answers; the user gets exactly that answer, nothing else."""
        user.send(new_number("devB", value))
        got = puppet_b.expect("newNumberVector", device="devB")
        assert f">{value}</oneNumber>".encode() in got.raw
        puppet_b.send(f"<setNumberVector device='devB' name='prop1' state='Ok'><oneNumber name='num1'>{value}"
                      f"</oneNumber></setNumberVector>\n")
        answer = user.next()
        assert (answer.tag, answer.attrs.get("device")) == ("setNumberVector", "devB"), answer
        assert f">{value}</oneNumber>".encode() in answer.raw

    round_trip(1)
    puppet_a.send("<setNumberVector device='devA' name='prop1' state='Ok'><oneNumber name='num1'>7</oneNumber>"
                  "</setNumberVector>\n")
    puppet_a.ping()
    assert watcher.expect("setNumberVector", device="devA").attrs["state"] == "Ok"
    puppet_a.send(b"\x00\x01garbage <<<>>> &&& this is not XML\n<setNumberVector device='devA'/>\n")
    assert watcher.expect("delProperty", device="devA").attrs == {"device": "devA"}
    round_trip(2)
    server.wait_log(rf"{label(a_name)}: .*(XML|xml)")
    server.wait_log(rf"{label(a_name)}: process {pid_a} killed by signal 9\b")
    server.wait_log(rf"{label(a_name)}: restart #1\b")
    round_trip(3)

    restarted = relay.accept()
    assert restarted.pid == _last_pid(server, a_name, pid_a)
    restarted.expect("getProperties")
    restarted.send(def_number("devA"))
    watcher.expect("defNumberVector", device="devA")
    round_trip(4)

    assert user.ping() == []
    assert not user.eof
    assert pid_alive(puppet_b.pid)
    text = server.log_text()
    assert not re.search(rf"{label(b_name)}: (process|restart)", text), text
    assert "delProperty" not in " ".join(f.tag for f in watcher.ping() if f.attrs.get("device") == "devB")


def test_valid_elements_written_together_with_garbage_are_still_delivered(servers, relay):
    server = servers.ours("--max-restarts", "0", relay.driver, env=relay.env)
    driver = relay.accept()
    driver.expect("getProperties")
    client = all_properties_client(server)
    driver.expect("getProperties")
    driver.send(def_number("devG"))
    client.expect("defNumberVector", device="devG")
    # One write: two valid elements, then bytes that are not XML. The driver is dropped for the
    # garbage, but what it said correctly before it must reach the client, in order.
    driver.send(b"<setNumberVector device='devG' name='prop1' state='Ok'><oneNumber name='num1'>7</oneNumber>"
                b"</setNumberVector>\n<message device='devG' message='about to go wrong'/>\n"
                b"\x00\x01garbage <<<>>> &&& this is not XML\n")
    server.wait_log(rf"{label(relay.driver)}: .*(XML|xml)")
    got = []
    while not got or got[-1][0] != "delProperty":
        frame = client.next()
        got.append((frame.tag, frame.attrs.get("message", frame.attrs.get("state"))))
    assert got == [("setNumberVector", "Ok"), ("message", "about to go wrong"), ("delProperty", None)], got
