"""Large BLOBs through a real server: written from a worker thread, joined from the pieces they came in.

A BLOB of megabytes is framed from many reads and, being large, written to each client by a
worker thread while the server goes on reading. Whatever the clients do meanwhile (read fast,
read nothing, go away in the middle of a BLOB), each gets the driver's bytes unchanged and in
order, and a client leaving during a write does not disturb the others or the next connections.
"""

from __future__ import annotations

import base64
import random

from helpers import Peer

LONG = 60.0


def blob_xml(i: int, size: int) -> bytes:
    data = base64.b64encode(random.Random(i).randbytes(size))
    lines = b"\n".join(data[j:j + 72] for j in range(0, len(data), 72))
    return (f"<setBLOBVector device='cam' name='img' state='Ok'>\n"
            f"  <oneBLOB name='content' size='{size}' format='.fits' enclen='{len(data)}'>\n").encode() \
        + lines + b"\n  </oneBLOB>\n</setBLOBVector>\n"


def number_xml(i: int) -> bytes:
    return (f"<setNumberVector device='cam' name='prop' state='Ok'><oneNumber name='x'>{i}</oneNumber>"
            f"</setNumberVector>\n").encode()


def start(servers, relay):
    server = servers.ours("--max-restarts", "0", relay.driver, env=relay.env)
    driver = relay.accept()
    assert driver.next().tag == "getProperties"
    driver.send("<defNumberVector device='cam' name='prop' state='Idle' perm='rw'>"
                "<defNumber name='x' format='%g' min='0' max='100' step='1'>1</defNumber></defNumberVector>\n"
                "<defBLOBVector device='cam' name='img' state='Idle' perm='ro'><defBLOB name='content'/>"
                "</defBLOBVector>\n")
    driver.ping()
    return server, driver


def blob_client(server) -> Peer:
    client = server.connect()
    client.send("<getProperties version='1.7'/>\n<enableBLOB device='cam'>Also</enableBLOB>\n")
    client.ping()
    return client


def test_large_blobs_reach_every_client_whole_and_in_order_whatever_the_others_do(servers, relay):
    server, driver = start(servers, relay)
    fast = blob_client(server)
    leaver = blob_client(server)
    sleeper = blob_client(server)        # never reads again
    expected = []
    for i in range(8):
        message = blob_xml(i, 1_500_000 + 1000 * i) + number_xml(i)
        expected.append(message)
        driver.send(message)
        if i == 2:
            leaver.close()               # gone in the middle of the stream
    driver.ping(LONG)
    got = fast.ping(LONG)
    assert b"".join(frame.raw for frame in got) == b"".join(expected)
    # The server still serves, new clients included (no descriptor was closed under a writer).
    later = blob_client(server)
    driver.send(number_xml(99))
    driver.ping()
    assert [frame.raw for frame in later.ping()] == [number_xml(99)]
    assert [frame.raw for frame in fast.ping()] == [number_xml(99)]
    assert server.proc.poll() is None
    sleeper.close()
