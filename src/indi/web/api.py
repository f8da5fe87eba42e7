"""The REST API: indiwebmanager's routes with its JSON shapes, so KStars/Ekos drives us unchanged.

Errors are ``{"detail": "..."}`` with 404 (no such profile or driver), 409 (the server is not
running), 403 (reboot/poweroff not allowed), 422 (a malformed body) or 500 (the server could not
do it, with its reason). Where indiwebmanager is known to fail, this does not: ``scripts`` may be
any JSON, and a PUT changes only the fields it names.

Ours in addition: ``GET /api/server/status/full`` (what really runs, crashes included) and
``GET /api/info/config``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import platform
import socket
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import __version__
from .catalogue import remote_driver
from .database import UNCHANGED
from .state import ProfileNotFound, WebState

__all__ = ["router", "get_web"]

log = logging.getLogger("indi.web")

router = APIRouter()


def get_web(request: Request) -> WebState:
    return request.app.state.web


class ProfileUpdate(BaseModel):
    """PUT /api/profiles/{name}: any subset; a field left out keeps its value."""
    model_config = ConfigDict(extra="allow")  # KStars also sends driver_source
    port: int | None = Field(default=None, ge=1, le=65535)
    autostart: bool | int | None = None     # 0/1 as KStars sends, or true/false
    autoconnect: bool | int | None = None
    scripts: Any = Field(default=None, description="script rules: a JSON array (or its text)")


class DriverEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    label: str | None = None
    remote: str | None = None


class CustomDriver(BaseModel):
    """A driver described by hand, with the capitalised keys KStars sends."""
    Label: str = Field(min_length=1)
    Name: str | None = None
    Family: str | None = None
    Exec: str = Field(min_length=1)
    Version: str | None = None


def _message(text: str) -> dict[str, str]:
    return {"message": text}


def _profile_or_404(web: WebState, name: str) -> dict[str, Any]:
    info = web.db.profile(name)
    if info is None:
        raise HTTPException(404, f"Profile {name} not found")
    return info


def _save_custom(web: WebState, driver: CustomDriver) -> dict[str, str]:
    web.db.save_custom_driver(driver.Label, driver.Name or driver.Label, driver.Family or "Custom", driver.Exec,
                              driver.Version or "1.0")
    web.reload_custom()
    log.info("custom driver %s (%s) saved", driver.Label, driver.Exec)
    return _message("Custom driver saved and collection updated")


# ------------------------------------------------------------------------------------ profiles
@router.get("/api/profiles", tags=["Profiles"])
async def get_profiles(web: WebState = Depends(get_web)) -> list[dict[str, Any]]:
    """All profiles: ``[{"id", "name", "port", "autostart", "autoconnect", "scripts"}]``."""
    return web.db.profiles()


@router.post("/api/profiles/custom/add", tags=["Profiles"])
async def add_custom_driver(driver: CustomDriver, web: WebState = Depends(get_web)) -> dict[str, str]:
    """Add (or update) a custom driver: ``{"Label", "Name", "Family", "Exec", "Version"}``."""
    return _save_custom(web, driver)


@router.post("/api/profiles/custom", tags=["Profiles"], include_in_schema=False)
async def add_custom_driver_legacy(request: Request, web: WebState = Depends(get_web)) -> dict[str, str]:
    """Older KStars send custom drivers here; with no body this creates a profile named "custom"."""
    body = await request.body()
    if not body.strip():
        created = web.db.add_profile("custom")
        return _message("Profile custom added" if created else "Profile custom already exists")
    try:
        driver = CustomDriver.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        raise HTTPException(422, f"not a custom driver: {exc}") from None
    return _save_custom(web, driver)


@router.get("/api/profiles/{name}", tags=["Profiles"])
async def get_profile(name: str, web: WebState = Depends(get_web)) -> dict[str, Any]:
    return _profile_or_404(web, name)


@router.post("/api/profiles/{name}", tags=["Profiles"])
async def add_profile(name: str, web: WebState = Depends(get_web)) -> dict[str, str]:
    """Create a profile (no body). An existing one is left as it is: KStars creates it every time."""
    if web.db.add_profile(name):
        log.info("profile %s added", name)
        return _message(f"Profile {name} added")
    return _message(f"Profile {name} already exists")


@router.delete("/api/profiles/{name}", tags=["Profiles"])
async def delete_profile(name: str, web: WebState = Depends(get_web)) -> dict[str, str]:
    """Delete a profile with its drivers and remote entries."""
    if not web.db.delete_profile(name):
        raise HTTPException(404, f"Profile {name} not found")
    log.info("profile %s deleted", name)
    return _message(f"Profile {name} deleted")


@router.put("/api/profiles/{name}", tags=["Profiles"])
async def update_profile(name: str, update: ProfileUpdate | None = None,
                         web: WebState = Depends(get_web)) -> dict[str, str]:
    """Change ``port``, ``autostart``, ``autoconnect`` and ``scripts``; fields left out are kept.
    Setting autostart clears it on every other profile."""
    given = update.model_fields_set if update is not None else set()

    def field(key: str, allow_null: bool = False) -> Any:
        if update is None or key not in given:
            return UNCHANGED
        value = getattr(update, key)
        return UNCHANGED if value is None and not allow_null else value

    if not web.db.update_profile(name, port=field("port"), autostart=field("autostart"),
                                 autoconnect=field("autoconnect"), scripts=field("scripts", allow_null=True)):
        raise HTTPException(404, f"Profile {name} not found")
    return _message(f"Profile {name} updated")


@router.post("/api/profiles/{name}/drivers", tags=["Profiles"])
async def save_profile_drivers(name: str, drivers: list[DriverEntry],
                               web: WebState = Depends(get_web)) -> dict[str, str]:
    """Replace the profile's drivers: ``[{"label": "CCD Simulator"}, {"remote": "dev@host:port"}]``.
    The profile is created if missing."""
    web.db.save_profile_drivers(name, [entry.model_dump() for entry in drivers])
    return _message(f"Drivers saved for profile {name}")


@router.get("/api/profiles/{name}/labels", tags=["Profiles"])
async def get_profile_labels(name: str, web: WebState = Depends(get_web)) -> list[dict[str, str]]:
    labels = web.db.profile_labels(name)
    if labels is None:
        raise HTTPException(404, f"Profile {name} not found")
    return labels


@router.get("/api/profiles/{name}/remote", tags=["Profiles"])
async def get_profile_remote(name: str, web: WebState = Depends(get_web)) -> dict[str, str]:
    """``{"drivers": "dev1@host,dev2@host:port"}``, or ``{}`` when the profile has none."""
    remotes = web.db.remote_drivers(name)
    if remotes is None:
        raise HTTPException(404, f"Profile {name} not found")
    return {"drivers": ",".join(remotes)} if remotes else {}


# -------------------------------------------------------------------------------------- server
@router.get("/api/server/status", tags=["Server"])
async def get_server_status(web: WebState = Depends(get_web)) -> list[dict[str, str]]:
    """``[{"status": "True"|"False", "active_profile": name}]``: whether the server really runs."""
    running = web.manager.running
    return [{"status": str(running), "active_profile": web.manager.active_profile if running else ""}]


@router.get("/api/server/status/full", tags=["Server"])
async def get_server_status_full(web: WebState = Depends(get_web)) -> dict[str, Any]:
    """Ours: the server's true state from its status socket. Each driver with its state
    (running, restarting...), pid, restarts, last exit, devices and ``crashed``; drivers that stopped
    or gave up; clients with address, since, bytes in/out and queue; the server's log tail; and
    indi-web's own log tail."""
    return await web.full_status()


@router.get("/api/server/drivers", tags=["Server"])
async def get_server_drivers(web: WebState = Depends(get_web)) -> list[dict[str, Any]]:
    """Driver objects of the drivers the server really runs (from its status, not from memory)."""
    return await web.manager.running_drivers()


@router.post("/api/server/start/{profile}", tags=["Server"])
async def start_server(profile: str, web: WebState = Depends(get_web)) -> dict[str, Any]:
    """(Re)start the INDI server with the profile's drivers. A server that cannot start (its port
    is taken...) is a 500 with its reason; drivers that could not start are listed in ``problems``."""
    try:
        problems = await web.start_profile(profile)
    except ProfileNotFound:
        raise HTTPException(404, f"Profile {profile} not found") from None
    answer: dict[str, Any] = _message(f"INDI server started for profile {profile}")
    if problems:
        answer["problems"] = problems
    return answer


@router.post("/api/server/stop", tags=["Server"])
async def stop_server(web: WebState = Depends(get_web)) -> dict[str, str]:
    await web.manager.stop()
    return _message("INDI server stopped")


# ------------------------------------------------------------------------------------- drivers
@router.get("/api/drivers", tags=["Drivers"])
async def get_drivers(web: WebState = Depends(get_web)) -> list[dict[str, Any]]:
    """Every driver of the catalogue: ``{name, label, skeleton, version, binary, family, mdpd,
    custom, rule, role}``."""
    return [driver.to_json() for driver in web.catalogue.drivers]


@router.get("/api/drivers/groups", tags=["Drivers"])
async def get_driver_groups(web: WebState = Depends(get_web)) -> list[str]:
    return sorted(web.catalogue.families())


def _driver_or_404(web: WebState, label: str):
    driver = web.catalogue.by_label(label)
    if driver is None:
        raise HTTPException(404, f"Driver not found: {label}")
    return driver


def _remote_or_400(label: str):
    if "@" not in label:
        raise HTTPException(400, f"{label!r} is not a remote driver: give device@host:port")
    return remote_driver(label)


@router.post("/api/drivers/start/{label:path}", tags=["Drivers"])
async def start_driver(label: str, web: WebState = Depends(get_web)) -> dict[str, str]:
    """Start one driver, looked up by label (exact, else the first label the given name starts with)."""
    driver = _driver_or_404(web, label)
    if not await web.manager.start_driver(driver):
        return _message(f"Driver {label} is already running")
    return _message(f"Driver {label} started")


@router.post("/api/drivers/stop/{label:path}", tags=["Drivers"])
async def stop_driver(label: str, web: WebState = Depends(get_web)) -> dict[str, str]:
    driver = _driver_or_404(web, label)
    await web.manager.stop_driver(driver)
    return _message(f"Driver {label} stopped")


@router.post("/api/drivers/restart/{label:path}", tags=["Drivers"])
async def restart_driver(label: str, web: WebState = Depends(get_web)) -> dict[str, str]:
    """Stop (if it runs) and start a driver; KStars passes a device name, e.g. "CCD Simulator"."""
    driver = _driver_or_404(web, label)
    await web.manager.restart_driver(driver)
    return _message(f"Driver {label} restarted")


@router.post("/api/drivers/start_remote/{label:path}", tags=["Drivers"])
async def start_remote_driver(label: str, web: WebState = Depends(get_web)) -> dict[str, str]:
    """Serve the devices of another INDI server: ``device@host:port`` (``@host:port`` for all)."""
    if not await web.manager.start_driver(_remote_or_400(label)):
        return _message(f"Remote driver {label} is already running")
    return _message(f"Remote driver {label} started")


@router.post("/api/drivers/stop_remote/{label:path}", tags=["Drivers"])
async def stop_remote_driver(label: str, web: WebState = Depends(get_web)) -> dict[str, str]:
    await web.manager.stop_driver(_remote_or_400(label))
    return _message(f"Remote driver {label} stopped")


# ------------------------------------------------------------------------------------- devices
@router.get("/api/devices", tags=["Devices"])
async def get_devices(web: WebState = Depends(get_web)) -> list[dict[str, Any]]:
    """``[{"device": "CCD Simulator", "connected": true}]``: the running server's devices, as an
    INDI client sees them (empty when no server runs)."""
    return await web.manager.devices()


# ---------------------------------------------------------------------------------------- info
@router.get("/api/info/version", tags=["Info"])
async def get_version() -> dict[str, str]:
    return {"version": __version__}


@router.get("/api/info/arch", tags=["Info"])
async def get_arch() -> str:
    """The machine's architecture as indiwebmanager names it: "x86_64", "arm64", "armhf"..."""
    machine = platform.machine()
    return {"aarch64": "arm64", "armv7l": "armhf", "armv6l": "armhf", "amd64": "x86_64"}.get(machine.lower(), machine)


@router.get("/api/info/hostname", tags=["Info"])
async def get_hostname() -> dict[str, str]:
    return {"hostname": socket.gethostname()}


@router.get("/api/info/config", tags=["Info"])
async def get_config(web: WebState = Depends(get_web)) -> dict[str, Any]:
    """Ours: where profiles and catalogues are read from, which indiserver runs, where drivers are
    looked for first, and catalogue files that could not be read."""
    return web.info()


# -------------------------------------------------------------------------------------- system
async def _system(web: WebState, command: list[str], what: str) -> dict[str, str]:
    if not web.config.allow_reboot:
        raise HTTPException(403, f"{what} is not allowed: start indi-web with --allow-reboot to allow it")
    log.warning("%s requested: stopping the INDI server, then running %s", what, " ".join(command))
    await web.manager.stop()
    try:
        proc = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output, _ = await asyncio.wait_for(proc.communicate(), 30)
    except (OSError, TimeoutError) as exc:
        raise HTTPException(500, f"{what}: cannot run {command[0]}: {getattr(exc, 'strerror', None) or exc}") from None
    if proc.returncode != 0:
        words = output.decode("utf-8", "replace").strip().splitlines()
        raise HTTPException(500, f"{what}: {command[0]} failed" + (f": {words[-1]}" if words else ""))
    return _message("System is rebooting" if what == "reboot" else "System is powering off")


@router.post("/api/system/reboot", tags=["System"])
async def system_reboot(web: WebState = Depends(get_web)) -> dict[str, str]:
    """Reboot the machine (403 unless indi-web runs with --allow-reboot)."""
    return await _system(web, web.config.reboot_command, "reboot")


@router.post("/api/system/poweroff", tags=["System"])
async def system_poweroff(web: WebState = Depends(get_web)) -> dict[str, str]:
    """Power the machine off (403 unless indi-web runs with --allow-reboot)."""
    return await _system(web, web.config.poweroff_command, "poweroff")
