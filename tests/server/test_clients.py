"""Clients of a real server: misbehaving, slow and byte-by-byte clients, BLOB modes and the log.

A puppet driver (relay_driver.py) lets each test speak as the driver; clients are raw sockets.
Synchronisation is by pingRequest/pingReply: a client's ping() returns everything the server sent
it before the reply, which is how a test shows that something was NOT delivered.
"""

from __future__ import annotations

import base64
import re
import socket

import pytest

from helpers import Peer

LONG = 60.0  # for tests that move tens of megabytes on a shared 2-core machine


def start_with_puppet(servers, relay, *extra):
    """Our server with one puppet driver that owns devices 'cam' and 'focuser'."""
    server = servers.ours("--max-restarts", "0", *extra, relay.driver, env=relay.env)
    driver = relay.accept()
    assert driver.next().tag == "getProperties"
    define(driver, "cam", "focuser")
    driver.ping()
    return server, driver


def define(driver, *devices: str) -> None:
    for device in devices:
        driver.send(f"<defNumberVector device='{device}' name='prop' state='Idle' perm='rw'>"
                    f"<defNumber name='x' format='%g' min='0' max='100' step='1'>1</defNumber></defNumberVector>\n")
    driver.send("<defBLOBVector device='cam' name='img' state='Idle' perm='ro'><defBLOB name='content'/>"
                "</defBLOBVector>\n")


def set_number(device: str, value: int = 1, name: str = "prop") -> str:
    return (f"<setNumberVector device='{device}' name='{name}' state='Ok'>"
            f"<oneNumber name='x'>{value}</oneNumber></setNumberVector>\n")


def blob(device: str = "cam", name: str = "img", data: str = "QUJD", size: int = 3, fmt: str = ".fits") -> str:
    return (f"<setBLOBVector device='{device}' name='{name}' state='Ok'>\n"
            f"<oneBLOB name='content' size='{size}' format='{fmt}' enclen='{len(data)}'>\n{data}\n</oneBLOB>\n"
            f"</setBLOBVector>\n")


def client_of(server, *hello: str, rcvbuf: int | None = None) -> Peer:
    """A client that has sent hello (getProperties by default) and whose requests were all handled."""
    if rcvbuf is None:
        client = server.connect()
    else:
        # A small, fixed receive buffer: the kernel then hides little of a backlog from the server.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(LONG)
        sock.connect(("127.0.0.1", server.port))
        client = Peer(sock, f"client:{server.port}")
    for xml in hello or ("<getProperties version='1.7'/>\n",):
        client.send(xml)
    client.ping()
    return client


def summary(frames) -> list[tuple[str, str, str]]:
    return [(f.tag, f.attrs.get("device", ""), f.attrs.get("name", "")) for f in frames]


def collect_until(peer: Peer, tag: str, timeout: float = LONG, **attrs: str) -> list:
    """Every element received before the first <tag attrs>, which is consumed."""
    before = []
    while True:
        frame = peer.next(timeout)
        if frame.tag == tag and all(frame.attrs.get(k) == v for k, v in attrs.items()):
            return before
        before.append(frame)


# --------------------------------------------------------------------------- misbehaving clients
BAD_INPUTS = [
    pytest.param("<newNumberVector device='cam' name='prop'><oneNumber name='x'></newNumberVector>\n",
                 "malformed XML", id="unclosed-child"),
    pytest.param("<<<\n", "malformed XML", id="lt-lt-lt"),
    pytest.param("<newNumberVector device=cam name='prop'><oneNumber name='x'>3</oneNumber></newNumberVector>\n",
                 "malformed XML", id="unquoted-attribute"),
    pytest.param("<newNumberVector device='cam' device='cam' name='prop'><oneNumber name='x'>3</oneNumber>"
                 "</newNumberVector>\n", "malformed XML", id="duplicate-attribute"),
    pytest.param("<newNumberVector device='c<m' name='prop'><oneNumber name='x'>3</oneNumber></newNumberVector>\n",
                 "malformed XML", id="lt-in-attribute"),
    pytest.param("<newTextVector device='cam' name='prop'><oneText name='x'>salt & pepper</oneText>"
                 "</newTextVector>\n", "malformed XML", id="bare-ampersand"),
    pytest.param("<newBLOBVector device='cam' name='img'><oneBLOB name='content' size='big' format='.fits'>QUJD"
                 "</oneBLOB></newBLOBVector>\n", "numeric size", id="blob-size-not-a-number"),
    pytest.param("<newBLOBVector device='cam' name='img'><oneBLOB name='content' size='\u00b2\u0661' format='.fits'>"
                 "QUJD</oneBLOB></newBLOBVector>\n", "numeric size", id="blob-size-in-other-digits"),
]


@pytest.mark.parametrize("bad, why", BAD_INPUTS)
def test_misbehaving_client_is_dropped_with_a_reason_and_others_are_unaffected(servers, relay, bad, why):
    server, driver = start_with_puppet(servers, relay)
    good = client_of(server)                       # Client 1
    bad_client = client_of(server)                 # Client 2
    driver.ping()                                  # their getProperties
    bad_client.send(bad)
    bad_client.wait_closed()
    server.wait_log(rf"Client 2: .*{why}")
    # Nothing of what it sent reached the driver.
    driver.send(set_number("cam", 5))
    assert [f.tag for f in driver.ping()] == []
    # The other client still gets the driver's messages and its pings answered.
    got = good.ping()
    assert summary(got) == [("setNumberVector", "cam", "prop")]
    assert b">5</oneNumber>" in got[0].raw
    driver.send(set_number("focuser", 6))
    driver.ping()
    assert summary(good.ping()) == [("setNumberVector", "focuser", "prop")]
    assert server.proc.poll() is None


def test_malformed_xml_after_good_messages_in_the_same_packet(servers, relay):
    """What came before the bad element is served; nothing after it is."""
    server, driver = start_with_puppet(servers, relay)
    client = client_of(server)
    driver.ping()  # its getProperties
    client.send(set_number("cam", 7).replace("set", "new") + "<oops<\n" + set_number("cam", 8).replace("set", "new"))
    client.wait_closed()
    server.wait_log(r"Client 1: .*malformed XML")
    got = driver.ping()
    assert [f.tag for f in got] == ["newNumberVector"], "the good element before the bad one was lost"
    assert b">7</oneNumber>" in got[0].raw


def test_driver_messages_before_a_malformed_element_still_reach_clients(servers, relay):
    """The driver is dropped for the bad element, but what it sent before it was good and is delivered."""
    server, driver = start_with_puppet(servers, relay)
    client = client_of(server)
    driver.send(set_number("cam", 12) + "<message device='cam' message='last words'/>\n<oops<\n"
                + set_number("cam", 13))
    got = client.expect("setNumberVector", device="cam")
    assert b">12</oneNumber>" in got.raw
    assert client.expect("message", device="cam").attrs["message"] == "last words"
    server.wait_log(r"Driver .*malformed XML")


def test_client_sending_one_byte_at_a_time_is_served(servers, relay):
    server, driver = start_with_puppet(servers, relay)
    client = server.connect()
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def trickle(xml: str) -> None:
        for byte in xml.encode():
            client.send(bytes([byte]))

    trickle("<getProperties version='1.7'/>\n")
    assert driver.expect("getProperties").attrs == {"version": "1.7"}
    driver.send(set_number("cam", 11))
    assert b">11</oneNumber>" in client.expect("setNumberVector", device="cam").raw
    new = ("<newBLOBVector device='cam' name='upload'>\n  <oneBLOB name='f' size='6' format='.txt' enclen='8'>"
           "\naGVsbG8K\n</oneBLOB>\n</newBLOBVector>\n<newNumberVector device='cam' name='prop'>"
           "<oneNumber name='x'>42</oneNumber></newNumberVector>\n")
    trickle(new)
    first = driver.expect("newBLOBVector", device="cam", name="upload")
    second = driver.expect("newNumberVector", device="cam", name="prop")
    assert first.raw + second.raw == new.encode()
    trickle("<pingRequest uid='slowly'/>")
    assert client.expect("pingReply").attrs == {"uid": "slowly"}


# ------------------------------------------------------------------------------ slow clients
def test_client_that_never_reads_is_dropped_and_a_reading_client_gets_everything(servers, relay):
    # -m also limits the drivers' resident memory (restarts above it): leave room for the Python relay.
    server, driver = start_with_puppet(servers, relay, "-m", "24")
    reader = client_of(server)                       # Client 1
    sleeper = client_of(server, rcvbuf=65536)        # Client 2: never reads from now on
    text = "x" * (256 * 1024)
    sent = 0
    for chunk in range(12):
        batch = "".join(f"<setTextVector device='cam' name='log'><oneText name='t'>{sent + i} {text}</oneText>"
                        f"</setTextVector>\n" for i in range(20))
        sent += 20
        driver.send(batch + f"<message device='cam' message='chunk {chunk}'/>\n")
        got = collect_until(reader, "message", message=f"chunk {chunk}")
        assert [f.tag for f in got] == ["setTextVector"] * 20
        assert got[0].raw.startswith(f"<setTextVector device='cam' name='log'><oneText name='t'>{sent - 20} ".encode())
    line = server.wait_log(r"Client 2: .*behind").string
    assert re.search(r"\d+ bytes behind", line), line
    # The sleeper was cut off part of the way: it gets what was already sent it, then EOF.
    received = 0
    while True:
        try:
            frame = sleeper.next(LONG)
        except AssertionError:
            assert sleeper.eof
            break
        received += frame.tag == "setTextVector"
    assert 0 < received < sent
    # The reader is still served.
    driver.send(set_number("cam", 3))
    driver.ping()
    assert summary(reader.ping()) == [("setNumberVector", "cam", "prop")]
    assert not [entry for entry in server.lines if "behind" in entry and "Client 1:" in entry]


def test_stream_frames_are_dropped_for_a_client_behind_but_nothing_else(servers, relay):
    server, driver = start_with_puppet(servers, relay, "--stream-drop", "1")
    client = client_of(server, "<getProperties version='1.7'/>\n", "<enableBLOB device='cam'>Also</enableBLOB>\n",
                       rcvbuf=65536)
    frame_data = base64.b64encode(bytes(range(256)) * 1536).decode()  # 512 KB of base64 per frame
    frames = 40
    for i in range(frames):
        driver.send(blob(name="video", data=frame_data, size=256 * 1536, fmt=".stream")
                    + blob(name="img", data="QUJD", size=3, fmt=".fits")
                    + set_number("cam", i))
    driver.ping(LONG)  # the server has routed all of it while the client was not reading
    got = client.ping(LONG)
    streams = [f for f in got if f.attrs.get("name") == "video"]
    fits = [f for f in got if f.attrs.get("name") == "img"]
    numbers = [f for f in got if f.tag == "setNumberVector"]
    assert len(numbers) == frames and len(fits) == frames
    assert [int(f.raw.split(b"<oneNumber name='x'>")[1].split(b"<")[0]) for f in numbers] == list(range(frames))
    assert 0 < len(streams) < frames // 2, f"{len(streams)} of {frames} stream frames delivered"
    # Caught up again: stream frames flow.
    driver.send(blob(name="video", data=frame_data, size=256 * 1536, fmt=".stream"))
    driver.ping()
    assert summary(client.ping()) == [("setBLOBVector", "cam", "video")]
    assert server.proc.poll() is None


# ----------------------------------------------------------------------------- client requests
@pytest.mark.parametrize("request_xml, expected", [
    ("<getProperties/>", {"version": "1.7"}),
    ("<getProperties device='cam'/>", {"version": "1.7", "device": "cam"}),
    ("<getProperties device='cam' name='prop'/>", {"version": "1.7", "device": "cam", "name": "prop"}),
    ("<getProperties version='2.0' device='cam'/>", {"version": "1.7", "device": "cam"}),
])
def test_get_properties_reaches_the_driver_with_version_1_7(servers, relay, request_xml, expected):
    server, driver = start_with_puppet(servers, relay)
    client = server.connect()
    client.send(request_xml + "\n")
    assert driver.expect("getProperties").attrs == expected


def test_enable_blob_only_gives_blobs_and_nothing_else_for_that_device(servers, relay):
    server, driver = start_with_puppet(servers, relay)
    client = client_of(server, "<getProperties version='1.7'/>\n", "<enableBLOB device='cam'>Only</enableBLOB>\n")
    driver.send(set_number("cam", 1) + "<message device='cam' message='exposing'/>\n" + blob()
                + set_number("focuser", 2) + blob(device="focuser"))
    driver.ping()
    assert summary(client.ping()) == [("setBLOBVector", "cam", "img"), ("setNumberVector", "focuser", "prop")]


def test_enable_blob_per_property(servers, relay):
    server, driver = start_with_puppet(servers, relay)
    client = client_of(server, "<getProperties version='1.7'/>\n",
                       "<enableBLOB device='cam' name='img'>Also</enableBLOB>\n")
    driver.send(blob(name="img") + blob(name="guide") + set_number("cam", 4))
    driver.ping()
    assert summary(client.ping()) == [("setBLOBVector", "cam", "img"), ("setNumberVector", "cam", "prop")]


def test_blob_reaches_only_the_client_that_enabled_it(servers, relay):
    server, driver = start_with_puppet(servers, relay)
    wants = client_of(server, "<getProperties version='1.7'/>\n", "<enableBLOB device='cam'>Also</enableBLOB>\n")
    default = client_of(server)
    driver.send(blob(data="SGVsbG8sIHdvcmxkIQ==", size=13))
    driver.ping()
    got = wants.ping()
    assert summary(got) == [("setBLOBVector", "cam", "img")]
    assert b"\nSGVsbG8sIHdvcmxkIQ==\n" in got[0].raw
    assert default.ping() == []


def test_new_vector_is_echoed_to_other_interested_clients_but_not_the_sender(servers, relay):
    server, driver = start_with_puppet(servers, relay)
    sender = client_of(server)
    watcher = client_of(server, "<getProperties version='1.7' device='cam'/>\n")
    bystander = client_of(server, "<getProperties version='1.7' device='focuser'/>\n")
    new = "<newNumberVector device='cam' name='prop'><oneNumber name='x'>9</oneNumber></newNumberVector>\n"
    sender.send(new)
    assert driver.expect("newNumberVector", device="cam").raw == new.encode()
    sender.ping()
    assert watcher.expect("newNumberVector", device="cam").raw == new.encode()
    assert sender.ping() == []
    assert bystander.ping() == []


def test_message_for_a_device_nobody_owns_is_dropped_and_logged(servers, relay):
    server, driver = start_with_puppet(servers, relay)
    client = client_of(server)
    driver.ping()  # its getProperties
    client.send("<newSwitchVector device='Ghost Scope' name='CONNECTION'><oneSwitch name='CONNECT'>On</oneSwitch>"
                "</newSwitchVector>\n")
    client.ping()
    assert driver.ping() == []
    server.wait_log(r"Client 1: .*'Ghost Scope'.*dropped")


# -------------------------------------------------------------------------------------- logging
def settle_log(server, client) -> str:
    """The whole log once everything before this call is in it: waits for a sentinel request's line."""
    client.send("<getProperties version='1.7' device='log sentinel'/>\n")
    client.ping()
    server.wait_log(r"Client \d+: read <getProperties .*log sentinel")
    return server.log_text()


def log_entries(server) -> list[str]:
    """The log as entries: a line with a timestamp and the lines that continue it (multi-line XML)."""
    return re.split(r"\n(?=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d: )", server.log_text())


# The harness always passes -v: one more -v makes -vv, and -vv makes -vvv (they add up, as in the reference).
def test_vv_logs_one_read_line_per_message(servers, relay):
    server, driver = start_with_puppet(servers, relay, "-v")
    client = server.connect()
    client.send("<getProperties version='1.7'/>\n"
                "<newNumberVector device='cam' name='prop'><oneNumber name='x'>2</oneNumber></newNumberVector>\n"
                "<enableBLOB device='cam' name='img'>Also</enableBLOB>\n")
    client.ping()
    driver.send(set_number("focuser", 3))
    driver.ping()
    text = settle_log(server, client)
    for pattern in (r"Client 1: read <getProperties device='' name=''>$",
                    r"Client 1: read <newNumberVector device='cam' name='prop'>$",
                    r"Client 1: read <enableBLOB device='cam' name='img'>$",
                    r"Driver .*: read <setNumberVector device='focuser' name='prop'>$"):
        assert len(re.findall(pattern, text, re.MULTILINE)) == 1, (pattern, text)
    assert "<oneNumber" not in text  # -vv: one line per message, no XML


def test_vvv_logs_xml_but_never_a_blob_body(servers, relay):
    server, driver = start_with_puppet(servers, relay, "-vv")
    client = client_of(server, "<getProperties version='1.7'/>\n", "<enableBLOB device='cam'>Also</enableBLOB>\n")
    raw = b"A recognisable image payload that must never appear in the server log. " * 20
    body = base64.b64encode(raw).decode()
    lines = "\n".join(body[i:i + 72] for i in range(0, len(body), 72))  # as libindi writes it
    driver.send(f"<setBLOBVector device='cam' name='img' state='Ok'>\n  <oneBLOB name='content' size='{len(raw)}' "
                f"format='.fits' enclen='{len(body)}'>\n{lines}\n  </oneBLOB>\n</setBLOBVector>\n")
    driver.send(set_number("cam", 77))
    got = client.expect("setBLOBVector", device="cam")
    assert body[:72].encode() in got.raw
    client.send(f"<newBLOBVector device='cam' name='upload'><oneBLOB name='f' size='{len(raw)}' format='.fits'>"
                f"{body}</oneBLOB></newBLOBVector>\n")
    driver.expect("newBLOBVector")
    driver.ping()
    text = settle_log(server, client)
    blob_entries = [entry for entry in log_entries(server) if re.search(r"read <(set|new)BLOBVector", entry)]
    assert len(blob_entries) == 2, text
    for entry in blob_entries:
        assert f"size='{len(raw)}'" in entry, entry
    # The XML of ordinary messages is there...
    assert re.search(r"read <setNumberVector device='cam' name='prop' state='Ok'><oneNumber name='x'>77</oneNumber>",
                     text), text
    # ...but not one line of the BLOB's base64.
    for i in range(0, len(body) - 40, 72):
        assert body[i:i + 40] not in text, "BLOB body in the log"
    assert "recognisable" not in text
