"""Events for live views: what indi-web did and saw, published to whoever subscribed.

The REST API does not need them; they are the hook for the live WebSocket (and anything else that
wants to follow the server without polling): ``hub.subscribe()`` gives a queue of event dicts such as
``{"event": "server_started", "profile": "Simulators", "port": 7624}``. A subscriber that stops
reading loses events rather than holding indi-web back.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

__all__ = ["EventHub"]


class EventHub:
    def __init__(self, queue_size: int = 256) -> None:
        self.queue_size = queue_size
        self._queues: set[asyncio.Queue[dict[str, Any]]] = set()

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self.queue_size)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._queues.discard(queue)

    def publish(self, event: str, **data: Any) -> None:
        message = {"event": event, "time": time.time(), **data}
        for queue in list(self._queues):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                pass  # a slow subscriber misses events; it can re-read the full status
