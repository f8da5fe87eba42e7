"""Faults, each contained: drivers that cannot start, crash in a loop, stop reading, flood, write bad
XML or an element that never ends; clients that arrive and vanish by the hundred or never finish an
element; a remote server that hangs; signals with drivers in every state.

Each test runs a fake driver (a small script written to tmp_path) next to an "other" driver that
must be unaffected: Debian's C++ focuser simulator when installed, else ours. A watcher client
proves the other driver is still served by a round trip through it (getProperties answered with
its definitions) and the server by pingRequest/pingReply. Nothing sleeps; every wait has a deadline.
Everything is on loopback.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import socket
import stat
import struct
import sys
import textwrap
import threading

import pytest

from helpers import DriverPuppet, Peer, children_of, free_port, our_simulator, pid_alive, wait_until

WAIT = 30.0
CPP_FOCUS = "/usr/bin/indi_simulator_focus"
FOCUSER = "Focuser Simulator"


# ------------------------------------------------------------------------------------- helpers
def write_script(directory, name: str, body: str, interpreter: str = sys.executable) -> str:
    path = directory / name
    path.write_text(f"#!{interpreter}\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def other_driver() -> str:
    """A real, well-behaved driver that defines FOCUSER."""
    return CPP_FOCUS if os.access(CPP_FOCUS, os.X_OK) else our_simulator("focus")


def label(name: str) -> str:
    return re.escape(f"Driver {name}")


def def_number(device: str, value: int = 1) -> str:
    return (f"<defNumberVector device='{device}' name='prop' state='Idle' perm='rw'>"
            f"<defNumber name='x' format='%g' min='0' max='100' step='1'>{value}</defNumber></defNumberVector>\n")


def new_number(device: str, value: int = 1) -> str:
    return (f"<newNumberVector device='{device}' name='prop'><oneNumber name='x'>{value}</oneNumber>"
            f"</newNumberVector>\n")


def watcher_of(server) -> Peer:
    """A client interested only in the other driver's device, which it has seen defined."""
    client = server.connect()
    client.sock.settimeout(WAIT)
    client.send(f"<getProperties version='1.7' device='{FOCUSER}'/>\n")
    client.expect("defNumberVector", WAIT, device=FOCUSER)
    client.ping(WAIT)
    return client


def other_still_served(watcher: Peer) -> None:
    """The other driver answers a new request through the server, and the server answers a ping."""
    watcher.send(f"<getProperties version='1.7' device='{FOCUSER}' name='FOCUS_MAX'/>\n")
    got = watcher.expect("defNumberVector", WAIT, device=FOCUSER, name="FOCUS_MAX")
    assert got.attrs["name"] == "FOCUS_MAX"
    watcher.ping(WAIT)


def fd_kinds(pid: int) -> collections.Counter:
    """The server's open descriptors by kind ('pipe', 'socket', 'anon_inode:[pidfd]', ...)."""
    kinds: collections.Counter = collections.Counter()
    for target in descriptors(pid).values():
        kind = target.split(":", 1)[0] if target.startswith(("pipe:", "socket:")) else target
        kinds["file" if kind.startswith("/") else kind] += 1
    return kinds


def descriptors(pid: int) -> dict[int, str]:
    found = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
    return found


def driver_fds(server, name: str) -> set[int]:
    """Every descriptor number the server logged (with -v) for a run of driver ``name``."""
    found = set()
    for m in re.finditer(rf"{label(name)}: pid=\d+ rfd=(\d+) wfd=(\d+) efd=(\d+)", server.log_text()):
        found.update(int(n) for n in m.groups())
    return found


def assert_driver_released(server, gone: str, running: list[str]) -> None:
    """No pipe of driver ``gone`` is open any more, and one pidfd is left per running driver."""
    pid = server.proc.pid
    pipes = {fd for fd, target in descriptors(pid).items() if target.startswith("pipe:")}
    kept = set().union(*(driver_fds(server, name) for name in running))
    assert not (driver_fds(server, gone) - kept) & pipes, (driver_fds(server, gone), descriptors(pid))
    pidfds = [t for t in descriptors(pid).values() if "pidfd" in t]
    assert len(pidfds) == len(running), descriptors(pid)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def logged(server, pattern: str) -> bool:
    regex = re.compile(pattern)
    return any(regex.search(line) for line in list(server.lines))


# ============================================================================== drivers
def test_driver_that_cannot_be_executed_is_retried_with_backoff_then_given_up(servers, tmp_path):
    broken = write_script(tmp_path, "broken.py", "print('never')\n", interpreter="/nonexistent/python3")
    server = servers.ours("--max-restarts", "3", other_driver(), broken)
    watcher = watcher_of(server)
    server.wait_log(rf"{label(broken)}: restart #1\b", WAIT)
    pipes = fd_kinds(server.proc.pid)["pipe"]
    server.wait_log(rf"{label(broken)}: Terminated after #3 restarts\.", WAIT)
    text = server.log_text()
    assert len(re.findall(rf"{label(broken)}: cannot start .*No such file", text)) == 4, text
    assert re.search(rf"{label(broken)}: restart #2 in 0\.5 s", text), text
    assert re.search(rf"{label(broken)}: restart #3 in 1 s", text), text
    other_still_served(watcher)
    assert server.proc.poll() is None
    assert fd_kinds(server.proc.pid)["pipe"] == pipes
    assert_driver_released(server, broken, [other_driver()])
    assert "Traceback" not in server.log_text()


def test_driver_crashing_in_a_loop_is_restarted_with_backoff_and_others_are_unaffected(servers, tmp_path):
    crasher = write_script(tmp_path, "crasher.py", f"""\
        import os, sys
        os.write(1, {def_number("crashdev").encode()!r})
        os.write(2, b"about to crash\\n")
        os.kill(os.getpid(), 11)
    """)
    server = servers.ours("--max-restarts", "4", other_driver(), crasher)
    watcher = watcher_of(server)
    everything = server.connect()
    everything.send("<getProperties version='1.7'/>\n")
    server.wait_log(rf"{label(crasher)}: Terminated after #4 restarts\.", WAIT)
    text = server.log_text()
    assert len(re.findall(rf"{label(crasher)}: process \d+ killed by signal 11\b", text)) == 5, text
    assert len(re.findall(rf"{label(crasher)}: about to crash$", text, re.MULTILINE)) == 5, text
    assert [int(n) for n in re.findall(rf"{label(crasher)}: restart #(\d+)", text)] == [1, 2, 3, 4]
    other_still_served(watcher)
    # The client that asked for everything saw the crashing device come and go; the focuser stayed.
    seen = [(f.tag, f.attrs.get("device")) for f in everything.ping(WAIT)]
    assert ("delProperty", FOCUSER) not in seen
    assert ("defNumberVector", FOCUSER) in seen
    assert_driver_released(server, crasher, [other_driver()])


def test_driver_that_never_reads_does_not_block_the_server_and_its_queue_is_bounded(servers, tmp_path):
    # The first run defines its device once the client has asked (the server's getProperties, then
    # the client's); a restarted one at once. Then neither reads anything more.
    marker = tmp_path / "deaf.ran"
    deaf = write_script(tmp_path, "deaf.py", f"""\
        import os, time
        if not os.path.exists({str(marker)!r}):
            open({str(marker)!r}, "a").close()
            seen = b""
            while seen.count(b"<getProperties") < 2:
                seen += os.read(0, 65536)
        os.write(1, {def_number("deafdev").encode()!r})
        os.write(2, b"not reading\\n")
        while True:
            time.sleep(3600)
    """)
    # -m bounds what is queued for a driver (and its memory: leave room for the real drivers).
    server = servers.ours("-m", "48", other_driver(), deaf)
    watcher = watcher_of(server)
    pid = int(server.wait_log(rf"{label(deaf)}: pid=(\d+)").group(1))
    sender = server.connect()
    sender.send("<getProperties version='1.7'/>\n")
    sender.expect("defNumberVector", WAIT, device="deafdev")
    chunk = "".join(new_number("deafdev", i % 100) for i in range(2000)).encode()
    sent = rounds = 0
    while not logged(server, rf"{label(deaf)}: .*stopped reading"):
        assert sent < 256 << 20, "256 MB queued for a driver that reads nothing and it was not stopped"
        sender.send(chunk)
        sent += len(chunk)
        rounds += 1
        if rounds % 64 == 0:
            other_still_served(watcher)  # the server is not blocked on the full pipe
    server.wait_log(rf"{label(deaf)}: process {pid} killed by signal 9\b", WAIT)
    server.wait_log(rf"{label(deaf)}: restart #1\b", WAIT)
    sender.expect("delProperty", WAIT, device="deafdev")
    sender.expect("defNumberVector", WAIT, device="deafdev")   # the restarted driver, unasked
    other_still_served(watcher)
    assert sent < 48 * 3 << 20, f"stopped only after {sent >> 20} MB with -m 48"
    assert rss_mb(server.proc.pid) < 48 * 4, f"server holds {rss_mb(server.proc.pid):.0f} MB"
    assert not logged(server, rf"{label(other_driver())}: (process|restart)")


def test_driver_flooding_its_output_does_not_starve_the_others(servers, tmp_path):
    flood = write_script(tmp_path, "flood.py", """\
        import os
        os.write(1, b"<defTextVector device='flooddev' name='t' state='Idle' perm='ro'><defText name='a'>x"
                    b"</defText></defTextVector>\\n")
        burst = b"".join(b"<setTextVector device='flooddev' name='t' state='Ok'><oneText name='a'>%d %s"
                         b"</oneText></setTextVector>\\n" % (i, b"y" * 200) for i in range(500))
        while True:
            os.write(1, burst)
    """)
    server = servers.ours("-m", "48", other_driver(), flood)
    firehose = server.connect()                     # subscribed to the flood, reads nothing
    firehose.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    firehose.send("<getProperties version='1.7' device='flooddev'/>\n")
    watcher = watcher_of(server)
    for _ in range(5):
        other_still_served(watcher)
    server.wait_log(r"Client 1: .*bytes behind", WAIT)
    for _ in range(5):
        other_still_served(watcher)
    assert server.proc.poll() is None
    assert rss_mb(server.proc.pid) < 48 * 4, f"server holds {rss_mb(server.proc.pid):.0f} MB"
    assert not logged(server, r"Client 2: .*(behind|closing|malformed)")
    assert not logged(server, rf"{label(other_driver())}: (process|restart)")


BAD_XML = [
    pytest.param(b"<setNumberVector device='baddev' name='prop' state='Ok'><oneNumber name='x'>1</oneText>"
                 b"</setNumberVector>\n", id="mismatched-end-tag"),
    pytest.param(b"<setNumberVector device='baddev' name='prop' state='Ok'><oneNumber name='x'>1"
                 b"</setNumberVector>\n", id="unclosed-child"),
    pytest.param(b"<message device='baddev' message='salt & pepper'/>\n", id="bare-ampersand-in-attribute"),
    pytest.param(b"<setTextVector device='baddev' name='prop'><oneText name='x'>a < b</oneText></setTextVector>\n",
                 id="lt-in-text"),
    pytest.param(b"<setNumberVector device='baddev' name='prop' name='prop'><oneNumber name='x'>1</oneNumber>"
                 b"</setNumberVector>\n", id="duplicate-attribute"),
    pytest.param(b"\x00\x01garbage <<<>>> &&&\n", id="garbage"),
]


@pytest.mark.parametrize("bad", BAD_XML)
def test_driver_writing_invalid_xml_is_dropped_and_restarted_and_clients_never_see_it(servers, tmp_path, bad):
    marker = tmp_path / "bad.ran"
    # The first run answers the client's getProperties (after the server's) with the bad element; a
    # restarted one answers every getProperties well (the client is interested in everything by then).
    baddie = write_script(tmp_path, "baddie.py", f"""\
        import os
        if not os.path.exists({str(marker)!r}):
            open({str(marker)!r}, "a").close()
            seen = b""
            while seen.count(b"<getProperties") < 2:
                seen += os.read(0, 65536)
            os.write(1, {def_number("baddev").encode()!r} + {bad!r}
                     + b"<message device='baddev' message='after the bad one'/>\\n")
        while True:
            chunk = os.read(0, 65536)
            if not chunk:
                break
            for _ in range(chunk.count(b"<getProperties")):
                os.write(1, {def_number("baddev").encode()!r}
                         + b"<message device='baddev' message='second run'/>\\n")
    """)
    server = servers.ours(other_driver(), baddie)
    everything = server.connect()
    everything.send("<getProperties version='1.7'/>\n")
    server.wait_log(rf"{label(baddie)}: .*(XML|xml)", WAIT)
    server.wait_log(rf"{label(baddie)}: restart #1\b", WAIT)
    watcher = watcher_of(server)
    other_still_served(watcher)
    got = []
    while True:
        frame = everything.next(WAIT)
        got.append(frame)
        if frame.tag == "message" and frame.attrs.get("message") == "second run":
            break
    assert all(b"oneText name='x'>a <" not in f.raw and b"</oneText></setNumberVector" not in f.raw for f in got)
    assert not [f for f in got if f.attrs.get("message") in ("after the bad one", "salt & pepper")]
    assert "Traceback" not in server.log_text()


@pytest.mark.parametrize("unending", [
    pytest.param("<defTextVector device='longdev' name='t' state='Idle' perm='ro'><defText name='a'>", id="body"),
    pytest.param("<defTextVector device='longdev' name='t' state='Idle' perm='ro' label='", id="start-tag"),
])
def test_driver_element_that_never_ends_is_bounded_by_max_element(servers, tmp_path, unending):
    endless = write_script(tmp_path, "endless.py", f"""\
        import os
        os.write(1, {unending.encode()!r})
        chunk = b"z" * 65536
        try:
            while True:
                os.write(1, chunk)
        except BrokenPipeError:
            pass
    """)
    server = servers.ours("--max-element", "2", "--max-restarts", "1", other_driver(), endless)
    watcher = watcher_of(server)
    server.wait_log(rf"{label(endless)}: .*(larger|longer) than 2097152 bytes", WAIT)
    server.wait_log(rf"{label(endless)}: restart #1\b", WAIT)
    server.wait_log(rf"{label(endless)}: Terminated after #1 restarts\.", WAIT)
    other_still_served(watcher)
    assert rss_mb(server.proc.pid) < 100, f"server holds {rss_mb(server.proc.pid):.0f} MB"
    assert_driver_released(server, endless, [other_driver()])


# ============================================================================== clients
def test_clients_arriving_and_vanishing_by_the_hundred_leave_no_descriptor_behind(servers):
    server = servers.ours(other_driver())
    watcher = watcher_of(server)
    baseline = fd_kinds(server.proc.pid)

    def vanish(i: int) -> None:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
        how = i % 6
        if how == 1:
            sock.sendall(b"<getProperties version='1.7'/>\n")
        elif how == 2:      # half a message, then gone
            sock.sendall(b"<newNumberVector device='Focuser Simulator' name='FOCUS_TIMER'><oneNum")
        elif how == 3:      # reset: SO_LINGER 0 makes close() send RST
            sock.sendall(b"<getProperties version='1.7'/>\n")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif how == 4:      # half-close, then wait for the server's answer to its ping, then go
            sock.sendall(b"<pingRequest uid='x'/>\n")
            sock.shutdown(socket.SHUT_WR)
            sock.recv(100)
        elif how == 5:      # malformed
            sock.sendall(b"<<<\n")
        sock.close()

    for start in range(0, 300, 50):
        threads = [threading.Thread(target=vanish, args=(i,)) for i in range(start, start + 50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        other_still_served(watcher)
    wait_until(lambda: fd_kinds(server.proc.pid) == baseline, timeout=WAIT,
               what=f"descriptors back to {dict(baseline)}")
    other_still_served(watcher)
    assert server.proc.poll() is None
    assert "Traceback" not in server.log_text()


def test_client_element_that_never_ends_is_closed_at_max_element(servers):
    server = servers.ours("--max-element", "1", other_driver())
    watcher = watcher_of(server)
    endless = server.connect()
    endless.send("<newTextVector device='Focuser Simulator' name='x'><oneText name='y'>")
    chunk = b"z" * 65536
    sent = 0
    with pytest.raises(OSError):
        while sent < 64 << 20:
            endless.send(chunk)
            sent += len(chunk)
    server.wait_log(r"Client 2: .*larger than 1048576 bytes", WAIT)
    other_still_served(watcher)
    assert rss_mb(server.proc.pid) < 100


# ============================================================================== remote servers
def test_remote_server_that_hangs_is_dropped_when_too_far_behind_and_comes_back(servers, relay):
    port = free_port()
    remote = servers.ours("-p", str(port), relay.driver, env=relay.env)
    puppet = relay.accept(timeout=WAIT)
    responder = threading.Thread(target=_answer_get_properties, args=(puppet, "hungdev"), daemon=True)
    responder.start()
    main = servers.ours("-m", "48", "-r", f"127.0.0.1:{port}", other_driver())
    main.wait_log(rf"connected to 127\.0\.0\.1:{port}\b", WAIT)
    client = main.connect()
    client.send("<getProperties version='1.7'/>\n")
    client.expect("defNumberVector", WAIT, device="hungdev")
    watcher = watcher_of(main)

    remote.proc.send_signal(signal.SIGSTOP)        # hangs: reads nothing, answers nothing
    try:
        chunk = "".join(new_number("hungdev", i % 100) for i in range(2000)).encode()
        sent = 0
        while not logged(main, rf"connection to 127\.0\.0\.1:{port} lost"):
            assert sent < 256 << 20, "256 MB queued for a remote server that reads nothing"
            client.send(chunk)
            sent += len(chunk)
        client.expect("delProperty", WAIT, device="hungdev")
        other_still_served(watcher)
        assert rss_mb(main.proc.pid) < 48 * 4
    finally:
        remote.proc.send_signal(signal.SIGCONT)
    # Back: the same client gets the definitions again without asking.
    client.expect("defNumberVector", WAIT, device="hungdev")
    assert main.proc.poll() is None


def _answer_get_properties(puppet: DriverPuppet, device: str) -> None:
    try:
        while not puppet.eof:
            try:
                frame = puppet.next(timeout=0.5)
            except AssertionError:
                continue
            if frame.tag == "getProperties" and frame.attrs.get("device", "") in ("", device):
                puppet.send(def_number(device))
    except OSError:
        pass


# ============================================================================== signals
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_signal_with_drivers_in_every_state_exits_cleanly_leaving_nothing_behind(servers, tmp_path, sig):
    """Beyond test_signals.py: a driver waiting to be restarted, one whose helper process would
    outlive it, one that never reads, and a client that never reads with a backlog."""
    parent = write_script(tmp_path, "parent.py", f"""\
        import os, subprocess, sys
        helper = subprocess.Popen(["sleep", "300"])
        os.write(2, b"helper %d\\n" % helper.pid)
        os.write(1, {def_number("parentdev").encode()!r})
        while os.read(0, 65536):
            pass
    """)
    crasher = write_script(tmp_path, "crasher.py", "import sys, time\nsys.exit(4)\n")
    deaf = write_script(tmp_path, "deaf.py", "import os, time\nos.write(2, b'deaf\\n')\ntime.sleep(3600)\n")
    server = servers.ours("--max-restarts", "20", other_driver(), parent, crasher, deaf)
    helper = int(server.wait_log(rf"{label(parent)}: helper (\d+)", WAIT).group(1))
    server.wait_log(rf"{label(deaf)}: deaf", WAIT)
    server.wait_log(rf"{label(crasher)}: restart #5 in \d+", WAIT)   # 4 s: waiting to restart
    pids = {name: [int(p) for p in re.findall(rf"{label(name)}: pid=(\d+)", server.log_text())][-1]
            for name in (other_driver(), parent, deaf)}
    sleeper = server.connect()
    sleeper.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sleeper.send("<getProperties version='1.7'/>\n")
    watcher = watcher_of(server)
    before = children_of(server.proc.pid)
    assert helper in before and set(pids.values()) <= set(before)

    server.proc.send_signal(sig)
    assert server.wait_exit(WAIT) == 0
    text = server.log_text()
    after = text[text.index(f"{sig.name}: shutting down"):]
    for name, pid in pids.items():
        assert len(re.findall(rf"{label(name)}: process {pid} (exited|killed)", after)) == 1, text
    # The one waiting to be restarted is not, and says so (or, if it was running just then, exits).
    assert re.search(rf"{label(crasher)}: (stopped|process \d+ exited)", after), text
    wait_until(lambda: not [p for p in before if pid_alive(p)], timeout=WAIT, what="every process gone")
    assert "Traceback" not in text
    watcher.wait_closed(WAIT)
