"""Writing a queue of buffers to a non-blocking descriptor with writev, copying none of them.

Shared by the server's links and the driver runtime: what is queued is written as it is (a BLOB
shared by several clients stays one object), in as few system calls as the descriptor allows.
"""

from __future__ import annotations

import os
from collections import deque
from itertools import islice

__all__ = ["write_queue", "IOV_MAX"]

try:
    IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024)
except (ValueError, OSError, AttributeError):
    IOV_MAX = 16


def write_queue(fd: int, queue: deque[bytes | memoryview]) -> int:
    """Write as much of the queue as fd takes now and return the number of bytes written.

    Written buffers leave the queue; one written in part is replaced by the rest of it. A full
    descriptor simply stops the writing; any other OSError is raised.
    """
    total = 0
    while queue:
        batch = list(islice(queue, IOV_MAX))
        try:
            written = os.writev(fd, batch)
        except (BlockingIOError, InterruptedError):
            break
        total += written
        done = 0
        while written:
            head = queue[0]
            if len(head) <= written:
                written -= len(head)
                queue.popleft()
                done += 1
            else:
                queue[0] = memoryview(head)[written:]
                written = 0
        if done < len(batch):
            break  # the descriptor is full
    return total
