"""INDI clients for Python: an asyncio ``Client`` with a live model of the server's devices, and
``BlockingClient``, the same API for plain scripts.

    from indi.client import BlockingClient
    with BlockingClient("localhost", 7624) as indi:
        indi.set("Telescope Simulator", "EQUATORIAL_EOD_COORD", RA="5:35:17", DEC="-5:23:28", wait=True)
        image = indi.receive_blob("CCD Simulator", "CCD1", to_file="m42.fits")
        indi.set("CCD Simulator", "CCD_EXPOSURE", CCD_EXPOSURE_VALUE=2)
        print("saved", image.wait(timeout=60).path)

The asyncio form: ``async with Client("localhost", 7624) as c: await c.set(...)``. Every method
is documented on Client; errors are the typed exceptions of ``indi.client.errors``.
"""

from indi.protocol import BLOBMode, Permission, PropertyState, PropertyType, SwitchRule

from .blobs import Blob, BlobReceiver
from .blocking import BlockingBlobReceiver, BlockingClient
from .client import DEFAULT_PORT, Client
from .errors import (
    IndiError,
    IndiTimeout,
    NotConnected,
    ReadOnly,
    UnknownDevice,
    UnknownMember,
    UnknownProperty,
    ValueRefused,
)
from .events import (
    BlobReceived,
    Defined,
    Deleted,
    Disconnected,
    Event,
    MessageReceived,
    Updated,
)
from .model import BLOB, Device, IndiMessage, Light, Member, Number, Property, Switch, Text

__all__ = [
    "Client", "BlockingClient", "DEFAULT_PORT",
    "Device", "Property", "Member", "Text", "Number", "Switch", "Light", "BLOB", "IndiMessage",
    "Blob", "BlobReceiver", "BlockingBlobReceiver",
    "IndiError", "IndiTimeout", "UnknownDevice", "UnknownProperty", "UnknownMember", "ValueRefused", "ReadOnly",
    "NotConnected",
    "Event", "Defined", "Updated", "Deleted", "MessageReceived", "BlobReceived", "Disconnected",
    "PropertyState", "PropertyType", "Permission", "SwitchRule", "BLOBMode",
]
