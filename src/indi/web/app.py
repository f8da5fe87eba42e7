"""The FastAPI application: the REST API, error shapes, and indi-web's life cycle.

Extension points for the live parts (WebSocket, INDI control panel, page):

* ``app.state.web`` is the :class:`~indi.web.state.WebState`: profiles (``.db``), the catalogue,
  the server (``.manager``: ``running``, ``full_status()``, ``snapshot()``) and ``.events``, an
  :class:`~indi.web.events.EventHub` publishing server and driver events to subscribers.
* :mod:`indi.web.indi_client` is the one INDI client module (a control panel wants a long-lived
  ``IndiClient`` to the running server's port, ``web.manager.run.port``).
* ``create_app(..., routers=[...])`` mounts more routers; the page (:mod:`indi.web.page`) is ``GET /``
  and ``/static``.
* The live parts: the WebSocket ``/ws`` (:mod:`indi.web.live`, fed by ``app.state.web.live``), image
  previews ``/api/preview/...`` (:mod:`indi.web.preview`) and, with ``--password``, the login and the
  checks of :mod:`indi.web.auth` (a middleware in front of everything).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from .. import __version__
from .api import router as api_router
from .auth import AuthMiddleware
from .auth import router as auth_router
from .config import WebConfig
from .live import router as live_router
from .manager import ServerError
from .page import mount_static
from .page import router as page_router
from .preview import router as preview_router
from .state import WebState

__all__ = ["create_app"]

log = logging.getLogger("indi.web")

DESCRIPTION = """\
Manage INDI servers from a browser or from KStars/Ekos: profiles of drivers, starting and stopping
the server and its drivers, and what really runs. The REST API is indiwebmanager's (1.1.x), so Ekos
drives it unchanged; `/api/server/status/full` and `/api/info/config` are ours.
"""


def create_app(config: WebConfig | None = None, state: WebState | None = None,
               routers: Sequence[APIRouter] = ()) -> FastAPI:
    """The application for a configuration (or an existing WebState), with extra routers mounted."""
    if state is None:
        state = WebState(config or WebConfig())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.startup()
        try:
            yield
        finally:
            await state.shutdown()

    app = FastAPI(title="INDI Web Manager", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.web = state

    @app.exception_handler(ServerError)
    async def server_error(request: Request, exc: ServerError) -> JSONResponse:
        log.log(logging.ERROR if exc.status >= 500 else logging.INFO, "%s %s: %s", request.method,
                request.url.path, exc)
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error: {exc}"}, status_code=500)

    app.include_router(api_router)
    app.include_router(auth_router)
    app.include_router(preview_router)
    app.include_router(live_router)
    for router in routers:
        app.include_router(router)
    app.include_router(page_router)
    mount_static(app)
    app.add_middleware(AuthMiddleware, auth=state.auth)
    return app
