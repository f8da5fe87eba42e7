"""The INDI server: routing between clients and drivers, the links to each, and the command line."""

from .server import Server, ServerConfig, UserError

__all__ = ["Server", "ServerConfig", "UserError"]
