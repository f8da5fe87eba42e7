"""The client for plain scripts: the asyncio Client running in a background thread, with the same
methods blocking until they are done.

    from indi.client import BlockingClient
    with BlockingClient("localhost", 7624) as indi:
        indi.set("Telescope Simulator", "EQUATORIAL_EOD_COORD", RA="5:35:17", DEC="-5:23:28", wait=True)
        image = indi.receive_blob("CCD Simulator", "CCD1", to_file="m42.fits")
        indi.set("CCD Simulator", "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=2)
        print("saved", image.wait(timeout=60).path)

Exceptions raised in the background thread (IndiTimeout, ValueRefused...) are raised in the
caller's. The model (``devices``, ``messages``, ``indi["Dev"]["PROP"]``) is the asyncio client's,
updated by the background thread: read it freely, but copy what you iterate over.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from indi.protocol import PropertyState

from .blobs import Blob, BlobReceiver
from .client import DEFAULT_PORT, Client
from .errors import NotConnected
from .events import Event
from .model import Device, IndiMessage, Property

__all__ = ["BlockingClient", "BlockingBlobReceiver"]

_T = TypeVar("_T")


class BlockingBlobReceiver:
    """A BlobReceiver for blocking code: ``wait(timeout)`` blocks and returns the Blob.

    As a context manager it is cancelled only if the block raises, so that the request that
    triggers the BLOB can be sent inside the block and ``wait()`` called after it.
    """

    def __init__(self, owner: BlockingClient, receiver: BlobReceiver) -> None:
        self._owner = owner
        self.receiver = receiver

    @property
    def done(self) -> bool:
        """True once the BLOB was received (or the receiver was cancelled or failed)."""
        return self.receiver.done

    def wait(self, timeout: float | None = 30.0) -> Blob:
        """Block until the BLOB has arrived (IndiTimeout after ``timeout`` seconds); returns it."""
        return self._owner._run(self.receiver.wait(timeout))

    def cancel(self) -> None:
        """Stop waiting for the BLOB."""
        self._owner._call(self.receiver.cancel)

    def __enter__(self) -> BlockingBlobReceiver:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.cancel()

    def __repr__(self) -> str:
        return repr(self.receiver).replace("<BlobReceiver", "<BlockingBlobReceiver")


class BlockingClient:
    """A blocking INDI client: ``BlockingClient(host="localhost", port=7624, **options)`` takes the
    options of Client (unix, ssl, reconnect, define_timeout, keep_blobs, inflate).

    ``with BlockingClient(...) as indi:`` starts an event loop in a daemon thread and connects
    (NotConnected if the server cannot be reached); leaving the block disconnects and stops the
    thread. Every method of Client is here, blocking until done, with the same arguments,
    results and exceptions.
    """

    def __init__(self, host: str = "localhost", port: int = DEFAULT_PORT, **options: Any) -> None:
        self._args = (host, port)
        self._options = options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.client: Client | None = None

    # ---------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> BlockingClient:
        self.connect()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def connect(self) -> None:
        """Start the background thread and connect."""
        if self._loop is not None:
            return
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="indi-client", daemon=True)
        self._thread.start()
        ready.wait()
        self._loop = loop

        async def start() -> Client:
            client = Client(*self._args, **self._options)
            await client.connect()
            return client

        try:
            self.client = self._run(start())
        except BaseException:
            self._stop()
            raise

    def close(self) -> None:
        """Disconnect and stop the background thread."""
        if self._loop is None:
            return
        try:
            if self.client is not None:
                self._run(self.client.close())
        finally:
            self._stop()

    def _stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(10)

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run a coroutine in the client's loop and wait for it; Ctrl-C cancels it."""
        loop = self._loop
        if loop is None:
            coro.close()
            raise NotConnected("the BlockingClient is not started (use it in a with block)")
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def _call(self, function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Call a plain function in the client's thread and return its result."""
        async def call() -> _T:
            return function(*args, **kwargs)
        return self._run(call())

    @property
    def _client(self) -> Client:
        if self.client is None:
            raise NotConnected("the BlockingClient is not started (use it in a with block)")
        return self.client

    # --------------------------------------------------------------------------------- model
    @property
    def devices(self) -> dict[str, Device]:
        """Device name -> Device (live: updated by the background thread)."""
        return self._client.devices

    @property
    def messages(self) -> deque[IndiMessage]:
        """The latest messages (device, timestamp, text), oldest first."""
        return self._client.messages

    @property
    def connected(self) -> bool:
        """True while connected to the server."""
        return self.client is not None and self.client.connected

    def __getitem__(self, device: str) -> Device:
        return self._client[device]

    def __contains__(self, device: object) -> bool:
        return device in self._client

    def add_listener(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Client.add_listener(): ``listener(event)`` after every change of the model. It is called
        in the client's background thread, so it must be quick and thread-safe (a queue.Queue's put
        is)."""
        return self._client.add_listener(listener)

    # ------------------------------------------------------------------------------- methods
    def set(self, device: str, prop: str, values: dict[str, Any] | None = None, /, *, wait: bool = False,
            timeout: float | None = 30.0, **members: Any) -> Property:
        """Client.set(), blocking: send new values (and with ``wait``, wait for the answer)."""
        return self._run(self._client.set(device, prop, values, wait=wait, timeout=timeout, **members))

    def select(self, device: str, prop: str, member: str, *, wait: bool = False,
               timeout: float | None = 30.0) -> Property:
        """Client.select(), blocking: turn one switch On following the rule."""
        return self._run(self._client.select(device, prop, member, wait=wait, timeout=timeout))

    def connect_device(self, device: str, timeout: float | None = 30.0) -> Device:
        """Client.connect_device(), blocking."""
        return self._run(self._client.connect_device(device, timeout))

    def disconnect_device(self, device: str, timeout: float | None = 30.0) -> Device:
        """Client.disconnect_device(), blocking."""
        return self._run(self._client.disconnect_device(device, timeout))

    def enable_blob(self, device: str, prop: str | None = None, mode: str = "Also") -> None:
        """Client.enable_blob(), blocking."""
        return self._run(self._client.enable_blob(device, prop, mode))

    def receive_blob(self, device: str, prop: str, to_file: str | os.PathLike[str] | None = None, *,
                     member: str | None = None, enable: bool = True) -> BlockingBlobReceiver:
        """Client.receive_blob(): armed on return; its ``wait(timeout)`` blocks for the Blob."""
        receiver = self._call(self._client.receive_blob, device, prop, to_file, member=member, enable=enable)
        return BlockingBlobReceiver(self, receiver)

    def wait_for(self, predicate: Callable[[], _T], timeout: float | None = 30.0, *, what: str | None = None) -> _T:
        """Client.wait_for(), blocking; the predicate runs in the client's thread."""
        return self._run(self._client.wait_for(predicate, timeout, what=what))

    def wait_device(self, device: str, timeout: float | None = 30.0) -> Device:
        """Client.wait_device(), blocking."""
        return self._run(self._client.wait_device(device, timeout))

    def wait_property(self, device: str, prop: str, timeout: float | None = 30.0) -> Property:
        """Client.wait_property(), blocking."""
        return self._run(self._client.wait_property(device, prop, timeout))

    def wait_state(self, device: str, prop: str, state: str | PropertyState,
                   timeout: float | None = 30.0) -> Property:
        """Client.wait_state(), blocking."""
        return self._run(self._client.wait_state(device, prop, state, timeout))

    def ping(self, timeout: float | None = 10.0) -> None:
        """Client.ping(), blocking."""
        return self._run(self._client.ping(timeout))

    def __repr__(self) -> str:
        return f"<BlockingClient {self.client!r}>"

