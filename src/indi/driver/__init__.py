"""A framework for INDI drivers: devices declare their properties, the framework does the rest.

    from indi.driver import Device, NumberVector, Number, handles, run

A device subclass declares properties in ``init_properties``, handles new values in methods
marked ``@handles("PROPERTY")``, and ``run(MyDevice)`` serves it on stdin/stdout under any
indiserver. See ``indi.simulators`` for complete drivers.
"""

from .device import Device, Interface, handles
from .properties import (
                         ALERT,
                         BLOB,
                         BUSY,
                         IDLE,
                         OFF,
                         OK,
                         ON,
                         BLOBVector,
                         Light,
                         LightVector,
                         Number,
                         NumberVector,
                         Rejected,
                         Switch,
                         SwitchVector,
                         Text,
                         TextVector,
                         Vector,
)
from .runtime import Driver, run

__all__ = ["Device", "Interface", "handles", "Driver", "run", "Vector", "TextVector", "NumberVector",
           "SwitchVector", "LightVector", "BLOBVector", "Text", "Number", "Switch", "Light", "BLOB", "Rejected",
           "IDLE", "OK", "BUSY", "ALERT", "ON", "OFF"]
