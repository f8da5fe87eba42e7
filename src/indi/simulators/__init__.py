"""Simulators: devices that behave like the hardware, for trying clients and tests without any.

Each is a short module built on ``indi.driver`` and an executable of the reference simulator's
name, with the reference's device name and standard properties.
"""
