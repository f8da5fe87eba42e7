"""What changed in a client's model: the events that ``Client.add_listener`` callbacks receive.

A listener is called in the event loop's thread right after the model changed, so it sees the
model as the event describes it. It must not block; work that takes time belongs in a task.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import IndiMessage, Property

__all__ = ["Event", "Defined", "Updated", "Deleted", "MessageReceived", "BlobReceived", "Disconnected"]


@dataclass(frozen=True, slots=True)
class Defined:
    """A property was defined (or defined again): ``prop`` is the model's object."""
    prop: Property


@dataclass(frozen=True, slots=True)
class Updated:
    """A property changed: ``members`` names the members the update carried (a BLOB vector's: those
    received); ``message`` is the update's own message, if it carried one."""
    prop: Property
    members: tuple[str, ...]
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Deleted:
    """A property (``name``) or a whole device (``name`` None) is gone from the model."""
    device: str
    name: str | None


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A message from a device, or from the server (``message.device`` None)."""
    message: IndiMessage


@dataclass(frozen=True, slots=True)
class BlobReceived:
    """A BLOB arrived for ``prop``'s ``member``: its bytes when the client kept them in memory
    (``data``), the file a receiver wrote it to (``path``), or neither."""
    prop: Property
    member: str
    format: str
    size: int
    data: bytes | None
    path: str | None


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection was lost: every device in ``devices`` left the model (they return, defined
    again, when the client reconnects)."""
    devices: tuple[str, ...]


Event = Defined | Updated | Deleted | MessageReceived | BlobReceived | Disconnected
