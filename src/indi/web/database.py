"""Profiles in SQLite, in indiwebmanager's schema, so that an existing ~/.indi/profiles.db just works.

The tables are indiwebmanager's, column for column: ``profile`` (name, port, autostart, autoconnect,
scripts), ``driver`` (a profile's driver labels), ``remote`` (a profile's remote drivers,
``device@host:port``, several per row separated by commas as older versions stored them) and
``custom`` (drivers the user described by hand). Older databases without ``autoconnect`` or
``scripts`` get the missing column, as indiwebmanager's own upgrade does; nothing else is changed.

One connection is shared by every request, behind a lock: each operation is a few microseconds,
and SQLite connections must not be used by two threads at once.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from typing import Any

__all__ = ["Database", "DatabaseError", "UNCHANGED", "DEFAULT_PROFILE", "DEFAULT_DRIVERS", "scripts_text"]

log = logging.getLogger("indi.web")

DEFAULT_PROFILE = "Simulators"
DEFAULT_DRIVERS = ("Telescope Simulator", "CCD Simulator", "Focuser Simulator")
# What a database we create says in its Version table: indiwebmanager drops its `custom` table when
# it finds no Version table, so we write one, with the indiwebmanager release whose schema this is.
SCHEMA_VERSION = "1.1.0"
PROFILE_COLUMNS = ("id", "name", "port", "autostart", "autoconnect", "scripts")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS profile (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, "
    "port INTEGER DEFAULT 7624, autostart INTEGER DEFAULT 0, autoconnect INTEGER DEFAULT 0, "
    "scripts TEXT DEFAULT NULL)",
    "CREATE TABLE IF NOT EXISTS driver (id INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT, profile INTEGER)",
    "CREATE TABLE IF NOT EXISTS remote (id INTEGER PRIMARY KEY AUTOINCREMENT, drivers TEXT, profile INTEGER)",
    "CREATE TABLE IF NOT EXISTS custom (id INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT UNIQUE, name TEXT, "
    "family TEXT, exec TEXT, version TEXT)",
)


class DatabaseError(Exception):
    """The profile database cannot be opened or used; the message says which file and why."""


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()


def scripts_text(scripts: Any) -> str | None:
    """The ``scripts`` column for what a client sent: text as it is, anything else as JSON.

    indiwebmanager stores the value unconverted, so a JSON array (what KStars sends) fails there;
    here every shape is kept, as JSON text, and read back the same way.
    """
    if scripts is None or isinstance(scripts, str):
        return scripts
    return json.dumps(scripts)


class Database:
    def __init__(self, path: str, default_port: int = 7624) -> None:
        self.path = path
        self.default_port = default_port
        self._lock = threading.RLock()
        directory = os.path.dirname(path) or "."
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"cannot create configuration directory {directory}: {exc.strerror}") from None
        if not os.access(directory, os.R_OK | os.W_OK | os.X_OK):
            raise DatabaseError(f"configuration directory {directory} is not readable and writable")
        try:
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            self._prepare()
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(f"cannot use profile database {path}: {exc}") from None

    # ------------------------------------------------------------------------------ schema
    def _prepare(self) -> None:
        with self._lock, self._conn:
            c = self._conn
            c.execute("BEGIN")
            for statement in _SCHEMA:
                c.execute(statement)
            columns = {row["name"] for row in c.execute("PRAGMA table_info(profile)")}
            if "autoconnect" not in columns:
                c.execute("ALTER TABLE profile ADD COLUMN autoconnect INTEGER DEFAULT 0")
            if "scripts" not in columns:
                c.execute("ALTER TABLE profile ADD COLUMN scripts TEXT DEFAULT NULL")
            if not c.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='Version'").fetchone():
                c.execute("CREATE TABLE Version (version TEXT)")
                c.execute("INSERT INTO Version (version) VALUES (?)", (SCHEMA_VERSION,))
            if c.execute("SELECT id FROM profile LIMIT 1").fetchone() is None:
                cur = c.execute("INSERT INTO profile (name, port) VALUES (?, ?)", (DEFAULT_PROFILE, self.default_port))
                for label in DEFAULT_DRIVERS:
                    c.execute("INSERT INTO driver (label, profile) VALUES (?, ?)", (label, cur.lastrowid))
                log.info("created profile %r in %s", DEFAULT_PROFILE, self.path)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ---------------------------------------------------------------------------- profiles
    def _profile_id(self, name: str) -> int | None:
        row = self._conn.execute("SELECT id FROM profile WHERE name=?", (name,)).fetchone()
        return None if row is None else row["id"]

    def profiles(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {', '.join(PROFILE_COLUMNS)} FROM profile ORDER BY id").fetchall()
        return [dict(row) for row in rows]

    def profile(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {', '.join(PROFILE_COLUMNS)} FROM profile WHERE name=?",
                                     (name,)).fetchone()
        return None if row is None else dict(row)

    def add_profile(self, name: str) -> bool:
        """Create the profile; False if it already exists (which is not an error: KStars always asks)."""
        with self._lock:
            if self._profile_id(name) is not None:
                return False
            self._conn.execute("INSERT INTO profile (name, port) VALUES (?, ?)", (name, self.default_port))
            return True

    def delete_profile(self, name: str) -> bool:
        """Delete the profile with its drivers and remote entries; False if there was none."""
        with self._lock, self._conn:
            self._conn.execute("BEGIN")
            pid = self._profile_id(name)
            if pid is None:
                return False
            self._conn.execute("DELETE FROM driver WHERE profile=?", (pid,))
            self._conn.execute("DELETE FROM remote WHERE profile=?", (pid,))
            self._conn.execute("DELETE FROM profile WHERE id=?", (pid,))
            return True

    def update_profile(self, name: str, port: Any = UNCHANGED, autostart: Any = UNCHANGED,
                       autoconnect: Any = UNCHANGED, scripts: Any = UNCHANGED) -> bool:
        """Change the given fields only (indiwebmanager resets the ones a client leaves out).

        Setting autostart clears it on every other profile: one profile starts with indi-web.
        Returns False if there is no such profile.
        """
        changes: list[tuple[str, Any]] = []
        if port is not UNCHANGED:
            changes.append(("port", int(port)))
        if autostart is not UNCHANGED:
            changes.append(("autostart", 1 if autostart else 0))
        if autoconnect is not UNCHANGED:
            changes.append(("autoconnect", 1 if autoconnect else 0))
        if scripts is not UNCHANGED:
            changes.append(("scripts", scripts_text(scripts)))
        with self._lock, self._conn:
            self._conn.execute("BEGIN")
            pid = self._profile_id(name)
            if pid is None:
                return False
            if autostart is not UNCHANGED and autostart:
                self._conn.execute("UPDATE profile SET autostart=0 WHERE id<>?", (pid,))
            if changes:
                assignments = ", ".join(f"{column}=?" for column, _ in changes)
                self._conn.execute(f"UPDATE profile SET {assignments} WHERE id=?",
                                   [value for _, value in changes] + [pid])
            return True

    def autostart_profile(self) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT name FROM profile WHERE autostart<>0 ORDER BY id LIMIT 1").fetchone()
        return None if row is None else row["name"]

    # ----------------------------------------------------------------------------- drivers
    def profile_labels(self, name: str) -> list[dict[str, str]] | None:
        """``[{"label": ...}]`` in the order saved; None if there is no such profile."""
        with self._lock:
            pid = self._profile_id(name)
            if pid is None:
                return None
            rows = self._conn.execute("SELECT label FROM driver WHERE profile=? ORDER BY id", (pid,)).fetchall()
        return [{"label": row["label"]} for row in rows]

    def remote_drivers(self, name: str) -> list[str] | None:
        """The profile's remote drivers, one ``device@host:port`` each; None if there is no such profile."""
        with self._lock:
            pid = self._profile_id(name)
            if pid is None:
                return None
            rows = self._conn.execute("SELECT drivers FROM remote WHERE profile=? ORDER BY id", (pid,)).fetchall()
        return [part.strip() for row in rows for part in (row["drivers"] or "").split(",") if part.strip()]

    def save_profile_drivers(self, name: str, entries: list[dict[str, Any]]) -> None:
        """Replace the profile's drivers with ``[{"label": ...}, {"remote": ...}]``; create it if missing."""
        with self._lock, self._conn:
            self._conn.execute("BEGIN")
            pid = self._profile_id(name)
            if pid is None:
                pid = self._conn.execute("INSERT INTO profile (name, port) VALUES (?, ?)",
                                         (name, self.default_port)).lastrowid
            self._conn.execute("DELETE FROM driver WHERE profile=?", (pid,))
            self._conn.execute("DELETE FROM remote WHERE profile=?", (pid,))
            for entry in entries:
                if entry.get("label"):
                    self._conn.execute("INSERT INTO driver (label, profile) VALUES (?, ?)", (entry["label"], pid))
                elif entry.get("remote"):
                    self._conn.execute("INSERT INTO remote (drivers, profile) VALUES (?, ?)", (entry["remote"], pid))

    # ------------------------------------------------------------------------------ custom
    def custom_drivers(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute("SELECT id, label, name, family, exec, version FROM custom ORDER BY id")
            rows = rows.fetchall()
        return [dict(row) for row in rows]

    def save_custom_driver(self, label: str, name: str, family: str, executable: str, version: str) -> None:
        """Add a custom driver, or update the one with this label (KStars sends it on every connection)."""
        with self._lock, self._conn:
            self._conn.execute("BEGIN")
            updated = self._conn.execute("UPDATE custom SET name=?, family=?, exec=?, version=? WHERE label=?",
                                         (name, family, executable, version, label)).rowcount
            if not updated:
                self._conn.execute("INSERT INTO custom (label, name, family, exec, version) VALUES (?, ?, ?, ?, ?)",
                                   (label, name, family, executable, version))
