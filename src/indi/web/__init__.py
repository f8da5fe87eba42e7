"""INDI Web Manager: profiles of drivers and the indiserver that runs them, over indiwebmanager's REST API.

``indi-web`` (``indi.web.cli``) serves the API with FastAPI/uvicorn. The pieces: ``database``
(profiles in indiwebmanager's SQLite schema), ``catalogue`` (INDI's XML driver lists, our Python
drivers, custom drivers), ``manager`` (our indiserver as a child process, driven through its FIFO and
watched through its status socket), ``scripts`` (a profile's pre/post driver scripts), ``indi_client``
(the INDI client used for device lists), ``state`` and ``app`` (what the routes of ``api`` use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .config import WebConfig

__all__ = ["create_app", "WebConfig"]


def __getattr__(name: str) -> Any:
    # Loaded on first use, so that `indi-web --help` and its usage errors do not wait for FastAPI.
    if name == "create_app":
        from .app import create_app
        return create_app
    if name == "WebConfig":
        from .config import WebConfig
        return WebConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
