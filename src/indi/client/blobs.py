"""Receiving BLOBs: receivers armed before the request that triggers an image, and where the
decoded bytes go (a file, written as they arrive, or memory).

The client streams every ``setBLOBVector`` through ``indi.protocol.BlobStream``, so a BLOB's
base64 text is never held whole; for each ``oneBLOB`` it opens one sink per interested party: a
file for a receiver given ``to_file`` (written chunk by chunk under a temporary ``.part`` name and
renamed when complete), memory for a receiver without one (and for the model when nobody else
wants the BLOB and the client keeps BLOBs). A ``.z`` BLOB (zlib, as libindi drivers compress) is
inflated on the way unless the client was asked not to.
"""

from __future__ import annotations

import asyncio
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import IndiTimeout

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Blob", "BlobReceiver"]


@dataclass(slots=True)
class Blob:
    """One BLOB received: where it came from, its ``format`` (".fits"...; ".z" removed when
    inflated) and ``size`` (bytes of content), and either ``data`` (in memory) or ``path`` (the file
    it was written to; ``data`` is then None)."""
    device: str
    property: str
    name: str
    format: str
    size: int
    data: bytes | None = None
    path: Path | None = None
    timestamp: str | None = None

    def __repr__(self) -> str:
        where = f"path={str(self.path)!r}" if self.path is not None else f"{self.size} bytes in memory"
        return f"Blob({self.device}.{self.property}.{self.name}, {self.format!r}, {self.size} bytes, {where})"


class _Sink:
    """Where one oneBLOB's decoded bytes go: a file (path) or memory; inflates ``.z`` content."""

    __slots__ = ("path", "partial", "file", "buffer", "inflate", "size")

    def __init__(self, path: Path | None, inflate: bool) -> None:
        self.path = path
        self.inflate = zlib.decompressobj() if inflate else None
        self.size = 0
        self.buffer: bytearray | None = None
        self.file = None
        self.partial: Path | None = None
        if path is None:
            self.buffer = bytearray()
        else:
            self.partial = path.with_name(path.name + ".part")
            self.file = open(self.partial, "wb")  # noqa: SIM115 - closed by finish()/abort()

    def write(self, data: bytes) -> None:
        if self.inflate is not None:
            data = self.inflate.decompress(data)
        self.size += len(data)
        if self.file is not None:
            self.file.write(data)
        else:
            assert self.buffer is not None
            self.buffer += data

    def finish(self) -> bytes | None:
        """Complete the BLOB: the file is renamed into place (returns None), or the bytes are returned."""
        if self.inflate is not None:
            tail = self.inflate.flush()
            if not self.inflate.eof:
                raise zlib.error("compressed BLOB content is truncated")
            if tail:
                self.write_raw(tail)
        if self.file is not None:
            self.file.close()
            assert self.partial is not None and self.path is not None
            os.replace(self.partial, self.path)
            return None
        assert self.buffer is not None
        data = bytes(self.buffer)
        self.buffer = None
        return data

    def write_raw(self, data: bytes) -> None:
        self.size += len(data)
        if self.file is not None:
            self.file.write(data)
        else:
            assert self.buffer is not None
            self.buffer += data

    def abort(self) -> None:
        """Forget a BLOB that will not complete (connection lost, error): no partial file is left."""
        if self.file is not None:
            self.file.close()
            self.file = None
            try:
                os.unlink(self.partial)  # type: ignore[arg-type]
            except OSError:
                pass
        self.buffer = None


class BlobReceiver:
    """The next BLOB of one property, armed from the moment it is created (before the request
    that triggers the BLOB is sent, so that a quick answer cannot be missed).

    Create it with ``Client.receive_blob()``; ``await receiver.wait(timeout)`` returns the Blob.
    A receiver takes one BLOB (the member named ``member``, or the vector's first) and is then
    done. Used as a context manager it is cancelled only if the block raises, so the usual
    shape is::

        with client.receive_blob("CCD Simulator", "CCD1", to_file="m42.fits") as image:
            await client.set("CCD Simulator", "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=2)
        blob = await image.wait(60)
    """

    def __init__(self, client: Client, device: str, prop: str, member: str | None = None,
                 to_file: str | os.PathLike[str] | None = None) -> None:
        self.client = client
        self.device = device
        self.property = prop
        self.member = member
        self.path = Path(to_file) if to_file is not None else None
        self._future: asyncio.Future[Blob] = asyncio.get_running_loop().create_future()
        self._future.add_done_callback(_consume)

    @property
    def done(self) -> bool:
        """True once a BLOB was received (or the receiver was cancelled or failed)."""
        return self._future.done()

    def wants(self, device: str, prop: str, member: str) -> bool:
        """True if this receiver is still waiting for a BLOB of that device, property and member."""
        return (not self._future.done() and device == self.device and prop == self.property
                and (self.member is None or self.member == member))

    async def wait(self, timeout: float | None = 30.0) -> Blob:
        """The BLOB (waiting up to ``timeout`` seconds for it); IndiTimeout if none came in time,
        after which the receiver is still armed: wait again, or cancel() it."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._future), timeout)
        except TimeoutError:
            if self._future.done() and not self._future.cancelled():
                return self._future.result()
            raise IndiTimeout(f"no BLOB {self.device}.{self.property}"
                              f"{'.' + self.member if self.member else ''} within {timeout} s") from None

    def cancel(self) -> None:
        """Stop waiting: the receiver takes no BLOB, and ``wait()`` raises CancelledError."""
        self._future.cancel()
        self.client._forget_receiver(self)

    def _deliver(self, blob: Blob) -> None:
        if not self._future.done():
            self._future.set_result(blob)

    def _fail(self, exc: BaseException) -> None:
        if not self._future.done():
            self._future.set_exception(exc)

    def __enter__(self) -> BlobReceiver:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.cancel()

    async def __aenter__(self) -> BlobReceiver:
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        state = "done" if self.done else "armed"
        return f"<BlobReceiver {self.device}.{self.property} {state}{' to ' + str(self.path) if self.path else ''}>"


def _consume(future: asyncio.Future) -> None:
    """Mark a receiver's exception as retrieved: a receiver nobody waits on must not log errors."""
    if not future.cancelled():
        future.exception()
