"""An indiwebmanager profiles.db opens in indi-web as it is: the migration path for its users."""

from __future__ import annotations

import json
import sqlite3

INDIWEBMANAGER_SCHEMA = [
    "CREATE TABLE Version (version TEXT)",
    "INSERT INTO Version (version) VALUES ('0.1.8')",
    "CREATE TABLE driver (id INTEGER PRIMARY KEY AUTOINCREMENT,label TEXT, profile INTEGER)",
    "CREATE TABLE custom (id INTEGER PRIMARY KEY AUTOINCREMENT,label TEXT UNIQUE, name TEXT, family TEXT, "
    "exec TEXT, version TEXT)",
    "CREATE TABLE remote (id INTEGER PRIMARY KEY AUTOINCREMENT,drivers TEXT, profile INTEGER)",
    "CREATE TABLE profile (id INTEGER PRIMARY KEY AUTOINCREMENT,name TEXT UNIQUE, port INTEGER DEFAULT 7624, "
    "autostart INTEGER DEFAULT 0, autoconnect INTEGER DEFAULT 0, scripts TEXT DEFAULT NULL)",
]
RULES = [{"Driver": "CCD Simulator", "PreDelay": 1, "PreScript": "/home/pi/ccd_on.sh"}]


def write_indiwebmanager_db(path, schema=INDIWEBMANAGER_SCHEMA, scripts=True) -> None:
    conn = sqlite3.connect(path)
    for statement in schema:
        conn.execute(statement)
    conn.execute("INSERT INTO profile (name) VALUES ('Simulators')")
    for label in ("Telescope Simulator", "CCD Simulator", "Focuser Simulator"):
        conn.execute("INSERT INTO driver (profile, label) VALUES (1, ?)", (label,))
    columns = "name, port, autostart" + (", autoconnect, scripts" if scripts else "")
    values = ["Observatory", 7625, 1] + ([1, json.dumps(RULES)] if scripts else [])
    conn.execute(f"INSERT INTO profile ({columns}) VALUES ({', '.join('?' * len(values))})", values)
    for label in ("EQMod Mount", "CCD Simulator", "My Roof"):
        conn.execute("INSERT INTO driver (profile, label) VALUES (2, ?)", (label,))
    conn.execute("INSERT INTO remote (profile, drivers) VALUES (2, 'SQM@sky.local:7624,Weather@sky.local')")
    conn.execute("INSERT INTO custom (label, name, family, exec, version) VALUES "
                 "('My Roof', 'My Roof', 'Domes', 'indi_simulator_dome', '0.9')")
    conn.commit()
    conn.close()


def test_an_indiwebmanager_database_is_listed_as_it_is(app_client, tmp_path):
    conf = tmp_path / "indi"
    conf.mkdir()
    write_indiwebmanager_db(conf / "profiles.db")
    client = app_client(conf_dir=str(conf))

    assert client.get("/api/profiles").json() == [
        {"id": 1, "name": "Simulators", "port": 7624, "autostart": 0, "autoconnect": 0, "scripts": None},
        {"id": 2, "name": "Observatory", "port": 7625, "autostart": 1, "autoconnect": 1,
         "scripts": json.dumps(RULES)}]
    assert client.get("/api/profiles/Observatory/labels").json() == [
        {"label": "EQMod Mount"}, {"label": "CCD Simulator"}, {"label": "My Roof"}]
    assert client.get("/api/profiles/Observatory/remote").json() == {"drivers": "SQM@sky.local:7624,Weather@sky.local"}
    roof = [d for d in client.get("/api/drivers").json() if d["label"] == "My Roof"]
    assert roof == [{"name": "My Roof", "label": "My Roof", "skeleton": None, "version": "0.9",
                     "binary": "indi_simulator_dome", "family": "Domes", "mdpd": False, "custom": True,
                     "rule": None, "role": ""}]

    # The profile's drivers as they would start: remote ones first, then the labels the catalogue knows.
    state = client.app.state.web
    drivers, missing = state.profile_drivers("Observatory")
    assert [d.binary for d in drivers] == ["SQM@sky.local:7624", "Weather@sky.local", "indi_simulator_ccd",
                                           "indi_simulator_dome"]
    assert missing == ["EQMod Mount"]  # not installed here: skipped with a warning, as indiwebmanager does

    # Changes land in the same tables, readable by indiwebmanager.
    client.put("/api/profiles/Simulators", json={"autostart": 1})
    client.post("/api/profiles/Observatory/drivers", json=[{"label": "CCD Simulator"}, {"remote": "SQM@sky.local"}])
    conn = sqlite3.connect(conf / "profiles.db")
    assert conn.execute("SELECT name, autostart FROM profile ORDER BY id").fetchall() == [
        ("Simulators", 1), ("Observatory", 0)]
    assert conn.execute("SELECT label FROM driver WHERE profile=2").fetchall() == [("CCD Simulator",)]
    assert conn.execute("SELECT drivers FROM remote WHERE profile=2").fetchall() == [("SQM@sky.local",)]
    assert conn.execute("SELECT version FROM Version").fetchall() == [("0.1.8",)]
    conn.close()


def test_an_old_database_gets_the_missing_columns(app_client, tmp_path):
    old_schema = [s.replace(", autoconnect INTEGER DEFAULT 0, scripts TEXT DEFAULT NULL", "")
                  for s in INDIWEBMANAGER_SCHEMA]
    conf = tmp_path / "indi"
    conf.mkdir()
    write_indiwebmanager_db(conf / "profiles.db", old_schema, scripts=False)
    client = app_client(conf_dir=str(conf))
    observatory = client.get("/api/profiles/Observatory").json()
    assert observatory == {"id": 2, "name": "Observatory", "port": 7625, "autostart": 1, "autoconnect": 0,
                           "scripts": None}
    assert client.put("/api/profiles/Observatory", json={"autoconnect": 1, "scripts": RULES}).status_code == 200
    assert json.loads(client.get("/api/profiles/Observatory").json()["scripts"]) == RULES


def test_a_database_we_create_has_indiwebmanagers_schema(app_client, tmp_path):
    client = app_client()
    assert client.get("/api/profiles").status_code == 200
    conn = sqlite3.connect(tmp_path / "conf" / "profiles.db")
    columns = {table: [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
               for table in ("profile", "driver", "remote", "custom", "Version")}
    conn.close()
    assert columns == {"profile": ["id", "name", "port", "autostart", "autoconnect", "scripts"],
                       "driver": ["id", "label", "profile"], "remote": ["id", "drivers", "profile"],
                       "custom": ["id", "label", "name", "family", "exec", "version"], "Version": ["version"]}
