"""INDI in Python: a server, drivers, simulators, clients and a web manager for the INDI protocol."""

__version__ = "0.1.0"
