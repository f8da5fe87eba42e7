"""Writing a queue of buffers to a non-blocking descriptor with writev, copying none of them.

Shared by the server's links and the driver runtime: what is queued is written as it is (a BLOB
shared by several clients stays one object), in as few system calls as the descriptor allows.
No Python runs per queued buffer beyond what C does for it: the buffers written whole leave the
queue at once, and the split point of a partial write is found by bisection of the running sizes.
"""

from __future__ import annotations

import os
from bisect import bisect_left, bisect_right
from collections import deque
from itertools import accumulate, islice, repeat

__all__ = ["write_queue", "take_batch", "consume", "IOV_MAX"]

try:
    IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024)
except (ValueError, OSError, AttributeError):
    IOV_MAX = 16


def take_batch(queue: deque[bytes | memoryview], limit: int = 0
               ) -> tuple[list[bytes | memoryview], list[int], bool]:
    """The buffers one writev sends from the head of the queue (at most ``limit`` bytes, if given):
    (buffers, running sizes, whether the last one is only the beginning of a queued buffer)."""
    batch = list(queue) if len(queue) <= IOV_MAX else list(islice(queue, IOV_MAX))
    ends = list(accumulate(map(len, batch)))
    cut = False
    if limit and ends[-1] > limit:  # send the first `limit` bytes only
        last = bisect_left(ends, limit)
        del batch[last + 1:], ends[last + 1:]
        if ends[last] > limit:
            batch[last] = memoryview(batch[last])[:len(batch[last]) - (ends[last] - limit)]
            ends[last] = limit
            cut = True
    return batch, ends, cut


def consume(queue: deque[bytes | memoryview], ends: list[int], cut: bool, written: int) -> bool:
    """Remove from the queue what a writev of take_batch's buffers wrote; True if it wrote them all."""
    done = bisect_right(ends, written)  # buffers of the batch written whole
    if cut and done == len(ends):
        done -= 1  # ...but the last one was only the beginning of a queued buffer
    if done == len(queue):
        queue.clear()
    else:
        for _ in repeat(None, done):
            queue.popleft()
    rest = written - (ends[done - 1] if done else 0)
    if rest:
        queue[0] = memoryview(queue[0])[rest:]
    return written >= ends[-1]


def write_queue(fd: int, queue: deque[bytes | memoryview], limit: int = 0) -> int:
    """Write as much of the queue as fd takes now (at most ``limit`` bytes, if given) and return
    the number of bytes written.

    Written buffers leave the queue; one written in part is replaced by the rest of it. A full
    descriptor simply stops the writing; any other OSError is raised.
    """
    total = 0
    writev = os.writev
    while queue:
        budget = limit - total if limit else 0
        if limit and budget <= 0:
            break
        batch, ends, cut = take_batch(queue, budget)
        try:
            written = writev(fd, batch)
        except (BlockingIOError, InterruptedError):
            break
        total += written
        if not consume(queue, ends, cut, written):
            break  # the descriptor is full
    return total
