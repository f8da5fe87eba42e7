"""The page: static files served by indi-web itself (no build step on the user's machine)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC", "router", "mount_static"]

STATIC = Path(__file__).with_name("static")

router = APIRouter()


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


class _RevalidatedFiles(StaticFiles):
    """Static files the browser revalidates (ETag, 304) on every load: a new version's page is never
    mixed with an old version's cached modules."""

    def file_response(self, *args, **kwargs):
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def mount_static(app) -> None:
    app.mount("/static", _RevalidatedFiles(directory=STATIC), name="static")
