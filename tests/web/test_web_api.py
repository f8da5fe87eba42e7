"""indi-web's REST API without an INDI server: profiles, the driver catalogue, info and system routes.

Shapes and status codes are indiwebmanager's (1.1.x) where KStars/Ekos and its users rely on them,
and its known defects are not reproduced: a ``scripts`` array is accepted, and a PUT leaves the
fields it does not name as they were.
"""

from __future__ import annotations

import json
import platform
import socket

import pytest

from indi.web.catalogue import PYTHON_DRIVERS

DRIVER_KEYS = ["name", "label", "skeleton", "version", "binary", "family", "mdpd", "custom", "rule", "role"]
PROFILE_KEYS = ["id", "name", "port", "autostart", "autoconnect", "scripts"]


def test_a_new_database_has_the_simulators_profile(app_client):
    client = app_client()
    assert client.get("/api/profiles").json() == [
        {"id": 1, "name": "Simulators", "port": 7624, "autostart": 0, "autoconnect": 0, "scripts": None}]
    assert client.get("/api/profiles/Simulators/labels").json() == [
        {"label": "Telescope Simulator"}, {"label": "CCD Simulator"}, {"label": "Focuser Simulator"}]
    assert client.get("/api/profiles/Simulators/remote").json() == {}


def test_profile_create_get_update_delete(app_client):
    client = app_client(indi_port=7700)
    assert client.post("/api/profiles/Backyard").json() == {"message": "Profile Backyard added"}
    # KStars posts the profile every time it connects: an existing one is not an error.
    response = client.post("/api/profiles/Backyard")
    assert response.status_code == 200 and "message" in response.json()
    profile = client.get("/api/profiles/Backyard").json()
    assert list(profile) == PROFILE_KEYS
    assert profile["port"] == 7700 and profile["autostart"] == 0 and profile["scripts"] is None

    assert client.put("/api/profiles/Backyard", json={"port": 7625, "autoconnect": 1}).json() == {
        "message": "Profile Backyard updated"}
    profile = client.get("/api/profiles/Backyard").json()
    assert profile["port"] == 7625 and profile["autoconnect"] == 1

    assert client.delete("/api/profiles/Backyard").json() == {"message": "Profile Backyard deleted"}
    assert client.get("/api/profiles/Backyard").status_code == 404
    assert [p["name"] for p in client.get("/api/profiles").json()] == ["Simulators"]


def test_missing_profiles_are_404_with_detail(app_client):
    client = app_client()
    for method, path in [("GET", "/api/profiles/Nope"), ("DELETE", "/api/profiles/Nope"),
                         ("PUT", "/api/profiles/Nope"), ("GET", "/api/profiles/Nope/labels"),
                         ("GET", "/api/profiles/Nope/remote"), ("POST", "/api/server/start/Nope")]:
        response = client.request(method, path, json={"port": 7624} if method == "PUT" else None)
        assert response.status_code == 404, (method, path, response.text)
        assert "Nope" in response.json()["detail"]


def test_put_keeps_the_fields_it_does_not_name(app_client):
    client = app_client()
    client.post("/api/profiles/Observatory")
    client.put("/api/profiles/Observatory", json={"port": 7630, "autostart": 1, "autoconnect": 1,
                                                  "scripts": [{"Driver": "CCD Simulator", "PreDelay": 1}]})
    # What KStars sends: no autostart (indiwebmanager would clear it), a driver_source we ignore.
    response = client.put("/api/profiles/Observatory", json={"port": 7631, "driver_source": 0, "autoconnect": 0})
    assert response.status_code == 200
    profile = client.get("/api/profiles/Observatory").json()
    assert profile["port"] == 7631 and profile["autostart"] == 1 and profile["autoconnect"] == 0
    assert json.loads(profile["scripts"]) == [{"Driver": "CCD Simulator", "PreDelay": 1}]
    # An empty body changes nothing; an explicit null clears the scripts.
    assert client.put("/api/profiles/Observatory", json={}).status_code == 200
    assert client.get("/api/profiles/Observatory").json() == profile
    client.put("/api/profiles/Observatory", json={"scripts": None})
    assert client.get("/api/profiles/Observatory").json()["scripts"] is None


def test_scripts_are_stored_as_json_whatever_their_shape(app_client):
    client = app_client()
    rules = [{"Driver": "CCD Simulator", "PreDelay": 2, "PreScript": "/usr/local/bin/power_on",
              "PostDelay": 0, "PostScript": "", "StoppingScript": "", "StoppingDelay": 0,
              "StoppedDelay": 1, "StoppedScript": "/usr/local/bin/power_off"}]
    for sent in (rules, json.dumps(rules), rules[0]):  # an array (KStars: a 500 in indiwebmanager), text, object
        response = client.put("/api/profiles/Simulators", json={"scripts": sent})
        assert response.status_code == 200, response.text
        stored = client.get("/api/profiles/Simulators").json()["scripts"]
        assert isinstance(stored, str) and json.loads(stored) == (sent if not isinstance(sent, str) else rules)


def test_autostart_is_one_profile_at_most(app_client):
    client = app_client(autostart=False)
    for name in ("A", "B"):
        client.post(f"/api/profiles/{name}")
    client.put("/api/profiles/A", json={"autostart": 1})
    client.put("/api/profiles/B", json={"autostart": 2})  # any true value, as indiwebmanager's bool()
    flags = {p["name"]: p["autostart"] for p in client.get("/api/profiles").json()}
    assert flags == {"Simulators": 0, "A": 0, "B": 1}
    client.put("/api/profiles/B", json={"autostart": 0})
    assert all(p["autostart"] == 0 for p in client.get("/api/profiles").json())


def test_bad_bodies_are_422(app_client):
    client = app_client()
    assert client.put("/api/profiles/Simulators", json={"port": 70000}).status_code == 422
    assert client.put("/api/profiles/Simulators", json={"port": "many"}).status_code == 422
    assert client.post("/api/profiles/Simulators/drivers", json={"label": "x"}).status_code == 422
    assert client.post("/api/profiles/custom/add", json={"Label": "No exec"}).status_code == 422
    assert client.get("/api/profiles/Simulators").json()["port"] == 7624


def test_profile_drivers_are_replaced_and_the_profile_created(app_client):
    client = app_client()
    body = [{"label": "CCD Simulator"}, {"label": "Telescope Simulator"},
            {"remote": "Dome Simulator@observatory:7625"}, {"remote": "Focuser@other"}]
    assert client.post("/api/profiles/New/drivers", json=body).json() == {"message": "Drivers saved for profile New"}
    assert client.get("/api/profiles/New").status_code == 200
    assert client.get("/api/profiles/New/labels").json() == [{"label": "CCD Simulator"},
                                                             {"label": "Telescope Simulator"}]
    assert client.get("/api/profiles/New/remote").json() == {"drivers": "Dome Simulator@observatory:7625,Focuser@other"}
    client.post("/api/profiles/New/drivers", json=[{"label": "GPS Simulator"}])
    assert client.get("/api/profiles/New/labels").json() == [{"label": "GPS Simulator"}]
    assert client.get("/api/profiles/New/remote").json() == {}


def test_catalogue_offers_our_simulators_without_any_xml(app_client):
    client = app_client()  # an xml dir that does not exist: a machine without INDI packages
    drivers = client.get("/api/drivers").json()
    assert all(list(d) == DRIVER_KEYS for d in drivers)
    by_label = {d["label"]: d for d in drivers}
    for label, family, binary, mdpd in PYTHON_DRIVERS:
        assert by_label[label]["family"] == family and by_label[label]["binary"] == binary
        assert by_label[label]["mdpd"] is mdpd and by_label[label]["custom"] is False
    assert client.get("/api/drivers/groups").json() == sorted(
        ["Auxiliary", "CCDs", "Domes", "Filter Wheels", "Focusers", "Telescopes", "Weather"])


@pytest.mark.skipif(not __import__("os").path.isfile("/usr/share/indi/drivers.xml"), reason="no INDI catalogue")
def test_catalogue_merges_indi_xml_with_our_drivers(app_client):
    client = app_client(xml_dir="/usr/share/indi")
    drivers = client.get("/api/drivers").json()
    labels = [d["label"] for d in drivers]
    assert len(labels) == len(set(labels)) and labels == sorted(labels)
    ccd = next(d for d in drivers if d["label"] == "CCD Simulator")
    assert ccd == {"name": "CCD Simulator", "label": "CCD Simulator", "skeleton": None, "version": "1.0",
                   "binary": "indi_simulator_ccd", "family": "CCDs", "mdpd": True, "custom": False,
                   "rule": None, "role": ""}
    groups = client.get("/api/drivers/groups").json()
    assert groups == sorted(groups) and {"CCDs", "Telescopes", "Focusers"} <= set(groups)


def test_malformed_catalogue_file_is_skipped_with_a_logged_error(app_client, tmp_path, caplog):
    xml = tmp_path / "xml"
    xml.mkdir()
    (xml / "good.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<driversList><devGroup group="Focusers">'
        '<device label="My Focuser" manufacturer="Me" skel="my_focuser_sk.xml">'
        '<driver name="My Focuser">indi_my_focuser</driver><version>2.1</version></device>'
        '<device label="No Driver"></device>'
        '</devGroup></driversList>\n')
    (xml / "broken.xml").write_text('<driversList><devGroup group="CCDs"><device label="Half"')
    (xml / "my_focuser_sk.xml").write_text("<not a catalogue")  # skeletons are not catalogues
    (xml / "notes.txt").write_text("<ignored")
    with caplog.at_level("ERROR", logger="indi.web"):
        client = app_client(xml_dir=str(xml))
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("broken.xml" in e and "not valid XML" in e for e in errors), errors
    assert any("No Driver" in e for e in errors), errors
    assert not any("_sk" in e or "notes" in e for e in errors), errors
    drivers = {d["label"]: d for d in client.get("/api/drivers").json()}
    assert drivers["My Focuser"] == {"name": "My Focuser", "label": "My Focuser",
                                     "skeleton": str(xml / "my_focuser_sk.xml"), "version": "2.1",
                                     "binary": "indi_my_focuser", "family": "Focusers", "mdpd": False,
                                     "custom": False, "rule": None, "role": ""}
    assert "CCD Simulator" in drivers  # ours are still there
    assert any("broken.xml" in e for e in client.get("/api/info/config").json()["catalogue_errors"])


def test_custom_drivers_join_the_catalogue(app_client):
    client = app_client()
    custom = {"Label": "My Dome", "Name": "My Dome", "Family": "Domes", "Exec": "indi_simulator_dome",
              "Version": "1.2"}
    assert client.post("/api/profiles/custom/add", json=custom).json() == {
        "message": "Custom driver saved and collection updated"}
    # Sent again on every connection by KStars, possibly changed: updated, not duplicated.
    client.post("/api/profiles/custom/add", json={**custom, "Version": "1.3"})
    mine = [d for d in client.get("/api/drivers").json() if d["label"] == "My Dome"]
    assert mine == [{"name": "My Dome", "label": "My Dome", "skeleton": None, "version": "1.3",
                     "binary": "indi_simulator_dome", "family": "Domes", "mdpd": False, "custom": True,
                     "rule": None, "role": ""}]
    # Older KStars: POST /api/profiles/custom with the driver as body.
    client.post("/api/profiles/custom", json={**custom, "Label": "Old Dome"})
    assert any(d["label"] == "Old Dome" for d in client.get("/api/drivers").json())


def test_driver_routes_look_labels_up_exactly_then_by_prefix(app_client):
    client = app_client()
    # No server running: the driver is found (by prefix: a device name, as KStars sends), then 409.
    response = client.post("/api/drivers/restart/CCD Simulator ASI120MM")
    assert response.status_code == 409 and "not running" in response.json()["detail"]
    for action in ("start", "stop", "restart"):
        response = client.post(f"/api/drivers/{action}/Nonexistent Driver")
        assert response.status_code == 404 and "not found" in response.json()["detail"].lower()
    response = client.post("/api/drivers/start_remote/no-at-sign")
    assert response.status_code == 400
    state = client.app.state.web
    assert state.catalogue.by_label("CCD Simulator").label == "CCD Simulator"
    assert state.catalogue.by_label("Telescope Simulator 2").label == "Telescope Simulator"
    assert state.catalogue.by_label("Simulator") is None


def test_server_routes_when_nothing_runs(app_client):
    client = app_client()
    assert client.get("/api/server/status").json() == [{"status": "False", "active_profile": ""}]
    assert client.get("/api/server/drivers").json() == []
    assert client.get("/api/devices").json() == []
    assert client.post("/api/server/stop").json() == {"message": "INDI server stopped"}
    full = client.get("/api/server/status/full").json()
    assert full["running"] is False and full["drivers"] == [] and full["clients"] == []


def test_info_routes(app_client):
    client = app_client()
    version = client.get("/api/info/version").json()
    assert list(version) == ["version"] and "." in version["version"]
    assert client.get("/api/info/hostname").json() == {"hostname": socket.gethostname()}
    arch = client.get("/api/info/arch").json()
    assert isinstance(arch, str)
    assert arch == {"aarch64": "arm64", "armv7l": "armhf"}.get(platform.machine(), platform.machine())


def test_openapi_and_docs_are_served(app_client):
    client = app_client()
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/profiles", "/api/profiles/{name}", "/api/profiles/{name}/drivers", "/api/profiles/custom/add",
                 "/api/server/status", "/api/server/status/full", "/api/server/drivers",
                 "/api/server/start/{profile}", "/api/server/stop", "/api/drivers", "/api/drivers/groups",
                 "/api/drivers/start/{label}", "/api/drivers/restart/{label}", "/api/drivers/start_remote/{label}",
                 "/api/devices", "/api/info/version", "/api/info/arch", "/api/info/hostname",
                 "/api/system/reboot", "/api/system/poweroff"):
        assert path in paths, path
    assert "swagger" in client.get("/docs").text.lower()


def test_reboot_and_poweroff_are_refused_without_the_flag(app_client):
    client = app_client()
    for route in ("/api/system/reboot", "/api/system/poweroff"):
        response = client.post(route)
        assert response.status_code == 403 and "--allow-reboot" in response.json()["detail"]


def test_reboot_runs_its_command_when_allowed(app_client, tmp_path):
    marker = tmp_path / "rebooted"
    client = app_client(allow_reboot=True, reboot_command=["touch", str(marker)], poweroff_command=["false"])
    assert client.post("/api/system/reboot").json() == {"message": "System is rebooting"}
    assert marker.exists()
    response = client.post("/api/system/poweroff")
    assert response.status_code == 500 and "false failed" in response.json()["detail"]
