"""What one indi-web holds: configuration, profiles, the driver catalogue, the server it runs.

``WebState`` is the single object every route (and the live WebSocket) reaches through
``request.app.state.web``. It knows how a profile becomes a list of drivers and how indi-web starts
and stops; the routes only translate HTTP to these calls. ``.live`` is the live bridge (the one INDI
client feeding the WebSockets, and the image previews), ``.auth`` the password protection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from .auth import Auth
from .catalogue import Catalogue, DeviceDriver, remote_driver
from .config import WebConfig
from .database import Database
from .events import EventHub
from .live import LiveBridge
from .manager import ServerError, ServerManager
from .scripts import parse_rules

__all__ = ["WebState", "LogBuffer", "ProfileNotFound"]

log = logging.getLogger("indi.web")


class ProfileNotFound(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"Profile {name} not found")
        self.name = name


class LogBuffer(logging.Handler):
    """The latest lines of indi-web's own log, for the status page."""

    def __init__(self, size: int = 500) -> None:
        super().__init__(logging.DEBUG)
        self.lines: deque[str] = deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            self.lines.append(f"{stamp}: {record.levelname}: {record.getMessage()}")
        except Exception:  # noqa: BLE001 - a log record that cannot be formatted must not break anything
            pass


class WebState:
    def __init__(self, config: WebConfig, db: Database | None = None, catalogue: Catalogue | None = None) -> None:
        self.config = config
        self.auth = Auth(config.conf_dir, config.password)  # AuthError if a password is required but none is set
        self.log_buffer = LogBuffer()
        logging.getLogger("indi.web").addHandler(self.log_buffer)
        self.db = db or Database(config.db_path, config.indi_port)
        self.catalogue = catalogue or Catalogue(config.xml_dir, self.db.custom_drivers())
        self.events = EventHub()
        self.manager = ServerManager(config, self.catalogue, self.events)
        self.live = LiveBridge(self)                          # the WebSocket's INDI client and image previews
        self._autostart: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------------------------ profiles
    def profile_drivers(self, name: str) -> tuple[list[DeviceDriver], list[str]]:
        """The drivers of a profile in the order they start (remote ones first, as indiwebmanager),
        and the labels that match no driver of the catalogue."""
        labels = self.db.profile_labels(name)
        remotes = self.db.remote_drivers(name)
        if labels is None or remotes is None:
            raise ProfileNotFound(name)
        drivers = [remote_driver(spec) for spec in remotes]
        missing = []
        for entry in labels:
            driver = self.catalogue.by_label(entry["label"])
            if driver is None:
                missing.append(entry["label"])
                log.warning("profile %s: driver %r is not in the catalogue (is it installed?): skipped",
                            name, entry["label"])
            else:
                drivers.append(driver)
        return drivers, missing

    async def start_profile(self, name: str) -> list[str]:
        """(Re)start the INDI server with the profile's drivers; the problems met, if any."""
        info = self.db.profile(name)
        if info is None:
            raise ProfileNotFound(name)
        drivers, missing = self.profile_drivers(name)
        problems = [f"{label}: not in the driver catalogue (is it installed?)" for label in missing]
        problems += await self.manager.start(name, int(info["port"]), bool(info["autoconnect"]), drivers,
                                             parse_rules(info["scripts"]))
        return problems

    def reload_custom(self) -> None:
        self.catalogue.set_custom(self.db.custom_drivers())

    # --------------------------------------------------------------------------- life cycle
    async def startup(self) -> None:
        """Start the live bridge, and the autostart profile in the background: the API answers meanwhile."""
        self.live.start()
        name = self.config.start_profile or (self.db.autostart_profile() if self.config.autostart else None)
        if name:
            self._autostart = asyncio.get_running_loop().create_task(self._start_autostart(name))

    async def _start_autostart(self, name: str) -> None:
        log.info("starting autostart profile %s", name)
        try:
            for problem in await self.start_profile(name):
                log.error("autostart profile %s: %s", name, problem)
        except (ServerError, ProfileNotFound) as exc:
            log.error("autostart profile %s: %s", name, exc)

    async def shutdown(self) -> None:
        """Stop everything indi-web started. Safe to call more than once."""
        if self._autostart is not None and not self._autostart.done():
            self._autostart.cancel()
            await asyncio.wait({self._autostart}, timeout=5)
        await self.live.stop()
        await self.manager.shutdown()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            logging.getLogger("indi.web").removeHandler(self.log_buffer)
            self.db.close()

    async def full_status(self) -> dict[str, Any]:
        """GET /api/server/status/full (and the WebSocket's status): the server's true state with
        indi-web's own log tail and the catalogue files that could not be read."""
        status = await self.manager.full_status()
        status["web_log"] = list(self.log_buffer.lines)[-200:]
        status["catalogue_errors"] = list(self.catalogue.errors)
        return status

    def info(self) -> dict[str, Any]:
        """How this indi-web is set up (for the status page)."""
        return {"conf_dir": self.config.conf_dir, "xml_dir": self.config.xml_dir,
                "server": self.config.server, "driver_dirs": list(self.config.driver_dirs),
                "catalogue_errors": list(self.catalogue.errors), "allow_reboot": self.config.allow_reboot}
