"""python -m indi.server: the same as the indiserver command."""

from .cli import entry_point

entry_point()
