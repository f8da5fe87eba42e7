"""indi.iobuffers.write_queue: a queue of buffers written with writev, whole or in part.

Whatever the descriptor takes and however the queue is cut (IOV_MAX buffers per call, a byte
limit per call), the bytes come out in order, exactly once, and the queue keeps exactly the rest.
"""

from __future__ import annotations

import os
import random
import socket
from collections import deque

import pytest

from indi import iobuffers
from indi.iobuffers import write_queue


def drain(sock: socket.socket) -> bytes:
    data = bytearray()
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            return bytes(data)
        if not chunk:
            return bytes(data)
        data += chunk


def pieces(seed: int, count: int, largest: int) -> list[bytes]:
    rng = random.Random(seed)
    sizes = [size for size in (0, 1, 7, 100, 5000, 70_000) if size <= largest]
    return [bytes([65 + i % 26]) * rng.choice(sizes) for i in range(count)]


@pytest.mark.parametrize(("limit", "largest"), [(0, 70_000), (1, 100), (999, 5000), (65536, 70_000),
                                                (1 << 20, 70_000)])
@pytest.mark.parametrize("seed", range(4))
def test_everything_comes_out_in_order_exactly_once(limit, largest, seed):
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        items = pieces(seed, 300, largest)
        queue = deque(items)
        expected = b"".join(items)
        received = bytearray()
        while queue:
            before = sum(map(len, queue))
            written = write_queue(a.fileno(), queue, limit)
            assert sum(map(len, queue)) == before - written
            if limit:
                assert written <= limit
            received += drain(b)
        received += drain(b)
        assert bytes(received) == expected
    finally:
        a.close()
        b.close()


def test_a_full_descriptor_stops_the_writing_and_keeps_the_rest(monkeypatch):
    monkeypatch.setattr(iobuffers, "IOV_MAX", 3)
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        queue = deque([b"a" * 40_000, b"b" * 40_000, memoryview(b"c" * 40_000), b"", b"d" * 300_000])
        total = 0
        while True:
            written = write_queue(w, queue)
            total += written
            if not written:
                break
        assert total + sum(map(len, queue)) == 420_000
        assert queue  # the pipe is full before the end
        got = bytearray()
        while len(got) < total:
            got += os.read(r, 1 << 20)
        assert bytes(got) == (b"a" * 40_000 + b"b" * 40_000 + b"c" * 40_000 + b"d" * 300_000)[:total]
    finally:
        os.close(r)
        os.close(w)


def test_a_limit_cuts_a_large_buffer_and_the_rest_stays_first():
    a, b = socket.socketpair()
    a.setblocking(False)
    try:
        big = bytes(range(256)) * 4096
        queue = deque([b"head", big, b"tail"])
        assert write_queue(a.fileno(), queue, 1000) == 1000
        assert len(queue) == 2 and bytes(queue[0]) == big[996:] and queue[1] == b"tail"
        assert b.recv(2000) == b"head" + big[:996]
    finally:
        a.close()
        b.close()
