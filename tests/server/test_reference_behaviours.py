"""The reference indiserver's own integration tests (libindi integs/), run against our server.

A puppet driver (relay_driver.py) lets each test speak as the driver, byte for byte, as the
reference's fakedriver does. Synchronisation is by pingRequest/pingReply, never by sleeping.
"""

from __future__ import annotations

import os
import socket

from helpers import open_fds, wait_until


def start_with_puppet(servers, relay, *extra):
    server = servers.ours("--max-restarts", "0", *extra, relay.driver, env=relay.env)
    driver = relay.accept()
    first = driver.next()
    assert first.tag == "getProperties" and first.attrs == {"version": "1.7"}
    driver.define_blob("fakedev1")
    driver.ping()  # the server has routed the definition before any client connects
    return server, driver


def connect_client(server, driver):
    client = server.connect()
    client.send("<getProperties version='1.7'/>\n")
    forwarded = driver.expect("getProperties")
    assert forwarded.attrs == {"version": "1.7"}
    driver.define_blob("fakedev1")
    got = client.expect("defBLOBVector", device="fakedev1", name="testblob")
    assert got.attrs["label"] == "test label"
    return client


def test_missing_driver_exits_1_with_one_line(servers):
    server = servers.ours("fakedriver-not-existing", wait=False)
    assert server.wait_exit() == 1
    text = server.log_text()
    assert "driver fakedriver-not-existing not found in" in text
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1


def test_reply_to_ping_from_driver_and_client(servers, relay):
    server, driver = start_with_puppet(servers, relay)
    client = server.connect()
    driver.send("<pingRequest uid='1'/>\n")
    assert driver.expect("pingReply").attrs == {"uid": "1"}
    client.send("<pingRequest uid='2'/>\n")
    assert client.expect("pingReply").attrs == {"uid": "2"}
    driver.send("<pingRequest uid='3'/>\n")
    assert driver.expect("pingReply").attrs == {"uid": "3"}
    client.send("<pingRequest uid='4'/>\n")
    assert client.expect("pingReply").attrs == {"uid": "4"}
    # The last driver gone with no FIFO: the server exits 1, as the reference does.
    driver.close()
    assert server.wait_exit() == 1


def test_dont_leak_fds(servers, relay):
    server, driver = start_with_puppet(servers, relay)
    driver.ping()
    idle = open_fds(server.proc.pid)
    for _ in range(3):
        client = server.connect()
        client.ping()
        assert open_fds(server.proc.pid) == idle + 1
        client.close()
        # The close is noticed when the socket is next written to; the server probes it.
        wait_until(lambda: open_fds(server.proc.pid) == idle, what="client descriptor released")


def test_dont_forward_unasked_blob_to_client(servers, relay):
    server, driver = start_with_puppet(servers, relay)
    client = connect_client(server, driver)
    driver.send_blob("fakedev1")
    driver.ping()
    assert [f.tag for f in client.ping()] == []


def test_dont_forward_other_blob_to_client(servers, relay):
    server, driver = start_with_puppet(servers, relay)
    client = connect_client(server, driver)
    client.send("<enableBLOB device='fakedev1' name='testblob2'>Also</enableBLOB>\n")
    client.ping()
    driver.send_blob("fakedev1", "testblob")
    driver.ping()
    assert [f.tag for f in client.ping()] == []


def test_drop_misbehaving_driver(servers, relay):
    server, driver = start_with_puppet(servers, relay)
    client = connect_client(server, driver)
    client.send("<enableBLOB device='fakedev1' name='testblob'>Also</enableBLOB>\n")
    client.ping()
    # A BLOB "attached" to a pipe, which cannot carry one.
    driver.send("<setBLOBVector device='fakedev1' name='testblob' timestamp='2018-01-01T00:01:00'>\n"
                "<oneBLOB name='content' size='21' format='.fits' attached='true'/>\n</setBLOBVector>\n")
    assert server.wait_exit() == 1
    assert "attached buffer" in server.log_text()


def test_forward_base64_blob_to_ip_client(servers, relay):
    server, driver = start_with_puppet(servers, relay)
    client = connect_client(server, driver)
    client.send("<enableBLOB device='fakedev1' name='testblob'>Also</enableBLOB>\n")
    client.ping()
    driver.send_blob("fakedev1", size=20)
    driver.ping()
    blob = client.expect("setBLOBVector", device="fakedev1", name="testblob")
    assert b"<oneBLOB name='content' size='20' format='.fits' enclen='28'>" in blob.raw
    assert b"\nMDEyMzQ1Njc4OTAxMjM0NTY3ODkK\n" in blob.raw


def test_snoop_driver_property_second_driver_from_fifo(servers, relay, tmp_path):
    fifo = tmp_path / "indififo"
    os.mkfifo(fifo)
    server, driver = start_with_puppet(servers, relay, "--fifo", str(fifo))
    driver.send("<defNumberVector device='fakedev1' name='prop1' state='Idle' perm='rw'>"
                "<defNumber name='num1' format='%f' min='0' max='10' step='1'>5</defNumber></defNumberVector>\n")
    driver.ping()
    with open(fifo, "w") as f:
        f.write(f"start {relay.driver}\n")
    snooper = relay.accept()
    snooper.expect("getProperties")
    snooper.send("<getProperties version='1.7' device='fakedev1' name='prop1'/>\n")
    asked = driver.expect("getProperties", device="fakedev1", name="prop1")
    assert asked.attrs["version"] == "1.7"
    driver.send("<defNumberVector device='fakedev1' name='prop1' state='Idle' perm='rw'>"
                "<defNumber name='num1' format='%f' min='0' max='10' step='1'>6</defNumber></defNumberVector>\n")
    got = snooper.expect("defNumberVector", device="fakedev1", name="prop1")
    assert b">6</defNumber>" in got.raw
    # Other properties of the device are not snooped.
    driver.send("<setNumberVector device='fakedev1' name='prop2'><oneNumber name='x'>1</oneNumber>"
                "</setNumberVector>\n")
    driver.ping()
    assert [f.tag for f in snooper.ping()] == []


def test_server_forwards_new_to_driver(servers, relay):
    server, driver = start_with_puppet(servers, relay)
    client = connect_client(server, driver)
    client.send("<newNumberVector device='fakedev1' name='prop1'><oneNumber name='num1'>7</oneNumber>"
                "</newNumberVector>\n")
    got = driver.expect("newNumberVector", device="fakedev1", name="prop1")
    assert b"<oneNumber name='num1'>7</oneNumber>" in got.raw


def test_server_forwards_request_of_half_dead_client(servers, relay):
    server, driver = start_with_puppet(servers, relay)
    client = connect_client(server, driver)
    client.send("<newNumberVector device='fakedev1' name='prop1'><oneNumber name='num1'>8</oneNumber>"
                "</newNumberVector>\n")
    client.sock.shutdown(socket.SHUT_WR)
    got = driver.expect("newNumberVector", device="fakedev1", name="prop1")
    assert b">8</oneNumber>" in got.raw
    # Half-closed, the client still receives what it asked for.
    driver.send("<setBLOBVector device='fakedev1' name='other'/>\n<message device='fakedev1' message='hi'/>\n")
    assert client.expect("message", device="fakedev1").attrs["message"] == "hi"

