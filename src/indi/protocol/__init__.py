"""The INDI protocol with no I/O in it: framing, typed elements, number formats and timestamps.

Bytes go in and elements come out; elements go in and bytes come out; BLOBs too big to hold
can be streamed (blobstream). The server, the driver
framework and the client library all build on this package; it never imports asyncio.
"""

from .blobstream import (
    Base64Decoder,
    BlobData,
    BlobEnd,
    BlobEvent,
    BlobStart,
    BlobStream,
    BlobStreamError,
    BlobVectorEnd,
    BlobVectorStart,
)
from .elements import (
    PROTOCOL_VERSION,
    BLOBMember,
    BLOBMode,
    DefVector,
    DelProperty,
    Element,
    EnableBLOB,
    GetProperties,
    LightMember,
    Member,
    Message,
    NewVector,
    NumberMember,
    Permission,
    PingReply,
    PingRequest,
    PropertyState,
    PropertyType,
    ProtocolError,
    SetVector,
    SwitchMember,
    SwitchRule,
    SwitchState,
    TextMember,
    format_value,
    parse,
    serialize,
    xml_attributes,
)
from .framing import DEFAULT_MAX_ELEMENT, Frame, Framer, FramingError, parse_attributes, unescape
from .numbers import NumberFormatError, format_number, format_sexagesimal, parse_number
from .timestamps import is_timestamp, parse_timestamp, timestamp

__all__ = [
    "PROTOCOL_VERSION", "BLOBMember", "BLOBMode", "DefVector", "DelProperty", "Element", "EnableBLOB",
    "GetProperties", "LightMember", "Member", "Message", "NewVector", "NumberMember", "Permission",
    "PingReply", "PingRequest", "PropertyState", "PropertyType", "ProtocolError", "SetVector",
    "SwitchMember", "SwitchRule", "SwitchState", "TextMember", "format_value", "parse", "serialize",
    "xml_attributes",
    "DEFAULT_MAX_ELEMENT", "Frame", "Framer", "FramingError", "parse_attributes", "unescape",
    "NumberFormatError", "format_number", "format_sexagesimal", "parse_number",
    "is_timestamp", "parse_timestamp", "timestamp",
    "Base64Decoder", "BlobData", "BlobEnd", "BlobEvent", "BlobStart", "BlobStream", "BlobStreamError",
    "BlobVectorEnd", "BlobVectorStart",
]
