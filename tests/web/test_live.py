"""The live WebSocket /ws: status, the INDI control panel bridged to the running server, images.

Each test runs a real indi-web process running a real indiserver with our Python simulators, and
talks to /ws as the page does (the websockets library's client). Every wait has a deadline.
"""

from __future__ import annotations

import io
import json
import os
import signal
import time
from typing import Any

import numpy as np
import pytest
from PIL import Image
from websockets.sync.client import connect

from helpers import free_port
from indi.web.live import Subscriber, def_message, set_message

TIMEOUT = 20.0
IMAGE_TIMEOUT = 60.0


class LiveSocket:
    """A browser's WebSocket to indi-web: messages are read as they are awaited; ``props`` keeps the
    latest def (updated by sets) of each property seen, ``messages`` every message text seen."""

    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        self.ws = connect(f"ws://127.0.0.1:{port}/ws", open_timeout=TIMEOUT, max_size=None,
                          additional_headers=headers).__enter__()
        self.props: dict[tuple[str, str], dict[str, Any]] = {}
        self.messages: list[str] = []
        self.kinds: list[str] = []

    def __enter__(self) -> LiveSocket:
        return self

    def __exit__(self, *exc) -> None:
        self.ws.close()

    def send(self, **message: Any) -> None:
        self.ws.send(json.dumps(message))

    def next(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        message = json.loads(self.ws.recv(timeout=timeout))
        self._track(message)
        return message

    def _track(self, m: dict[str, Any]) -> None:
        self.kinds.append(m["type"])
        if m["type"] == "def":
            self.props[(m["device"], m["name"])] = m
        elif m["type"] == "set" and (m["device"], m["name"]) in self.props:
            prop = self.props[(m["device"], m["name"])]
            prop["state"] = m["state"]
            for member in prop["members"]:
                if member["name"] in m["members"]:
                    member["value"] = m["members"][member["name"]]
                    member["display"] = m["display"][member["name"]]
        elif m["type"] == "del":
            for key in [k for k in self.props if k[0] == m["device"] and m["name"] in (None, k[1])]:
                del self.props[key]
        elif m["type"] == "message":
            self.messages.append(m["message"])

    def expect(self, condition, timeout: float = TIMEOUT, what: str = "message") -> dict[str, Any]:
        """Read until a message satisfies condition; that message."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout} s; last types: {self.kinds[-20:]}")
            try:
                message = self.next(remaining)
            except TimeoutError:
                continue
            if condition(message):
                return message

    def expect_all(self, conditions: dict[str, Any], timeout: float = TIMEOUT) -> dict[str, dict[str, Any]]:
        """Read until each condition (by name) has been satisfied by some message, in any order."""
        found: dict[str, dict[str, Any]] = {}

        def check(message: dict[str, Any]) -> bool:
            for what, condition in conditions.items():
                if what not in found and condition(message):
                    found[what] = message
            return len(found) == len(conditions)

        self.expect(check, timeout, " and ".join(conditions))
        return found

    def defined(self, device: str, name: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The def of a property (seen already, or awaited)."""
        if (device, name) not in self.props:
            self.expect(lambda m: m["type"] == "def" and m["device"] == device and m["name"] == name, timeout,
                        f"def of {device}.{name}")
        return self.props[(device, name)]

    def set_of(self, device: str, name: str, condition=lambda m: True, timeout: float = TIMEOUT,
               what: str = "") -> dict[str, Any]:
        return self.expect(lambda m: m["type"] == "set" and m["device"] == device and m["name"] == name
                           and condition(m), timeout, what or f"set of {device}.{name}")

    def error(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        return self.expect(lambda m: m["type"] == "error", timeout, "error")


def start_profile(manager, name: str, labels: list[str]) -> int:
    port = free_port()
    manager.ok("POST", f"/api/profiles/{name}")
    manager.ok("PUT", f"/api/profiles/{name}", json={"port": port})
    manager.ok("POST", f"/api/profiles/{name}/drivers", json=[{"label": label} for label in labels])
    manager.ok("POST", f"/api/server/start/{name}")
    return port


def members(prop: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in prop["members"]}


def connect_device(live: LiveSocket, device: str) -> None:
    live.defined(device, "CONNECTION")
    live.send(type="new", device=device, name="CONNECTION", members={"CONNECT": "On"})
    answer = live.set_of(device, "CONNECTION", lambda m: m["state"] in ("Ok", "Alert"), what="CONNECTION answered")
    assert answer["state"] == "Ok" and answer["members"]["CONNECT"] == "On", answer


def test_status_then_defs_and_a_switch_and_numbers_set_from_the_socket(web):
    manager = web()
    start_profile(manager, "Scope", ["Telescope Simulator"])
    with LiveSocket(manager.port) as live:
        first = live.next()
        assert first["type"] == "status"
        assert first["status"]["running"] is True and first["status"]["profile"] == "Scope"
        assert [d["label"] for d in first["status"]["drivers"]] == ["Telescope Simulator"]

        connection = live.defined("Telescope Simulator", "CONNECTION")
        assert connection["kind"] == "switch" and connection["rule"] == "OneOfMany" and connection["perm"] == "rw"
        assert connection["state"] in ("Idle", "Ok") and connection["group"] == "Main Control"
        assert [(m["name"], m["value"]) for m in connection["members"]] == [("CONNECT", "Off"), ("DISCONNECT", "On")]
        assert all(set(m) >= {"name", "label", "value", "display"} for m in connection["members"])
        info = live.defined("Telescope Simulator", "DRIVER_INFO")
        assert info["kind"] == "text" and info["perm"] == "ro" and info["rule"] is None

        connect_device(live, "Telescope Simulator")
        if not any("online" in text for text in live.messages):
            live.expect(lambda m: m["type"] == "message" and m["device"] == "Telescope Simulator"
                        and "online" in m["message"], what="the online message")

        coords = members(live.defined("Telescope Simulator", "EQUATORIAL_EOD_COORD"))
        assert coords["RA"]["format"] == "%010.6m" and coords["RA"]["min"] == 0 and coords["RA"]["max"] == 24
        assert set(coords["RA"]) == {"name", "label", "value", "display", "format", "min", "max", "step"}
        assert ":" in coords["RA"]["display"] and isinstance(coords["RA"]["value"], float)

        # Numbers as sexagesimal strings, through the client's conversion; displayed with the %m format.
        live.defined("Telescope Simulator", "GEOGRAPHIC_COORD")
        live.send(type="new", device="Telescope Simulator", name="GEOGRAPHIC_COORD",
                  members={"LAT": "51:28:38", "LONG": "10 30 00", "ELEV": 46})
        update = live.set_of("Telescope Simulator", "GEOGRAPHIC_COORD",
                             lambda m: "LAT" in m["members"] and abs(m["members"]["LAT"] - 51.4772) < 1e-3,
                             what="the new latitude")
        assert update["state"] == "Ok" and abs(update["members"]["LONG"] - 10.5) < 1e-6
        assert update["display"]["LAT"].strip().startswith("51:28:38")
        assert update["members"]["ELEV"] == 46 and update["display"]["ELEV"] == "46"

        # Refused by the device (the property goes Alert): an error with the device's reason.
        live.send(type="new", device="Telescope Simulator", name="EQUATORIAL_EOD_COORD",
                  members={"RA": "0:00:00", "DEC": "-89:00:00"}, id="slew")
        error = live.error()
        assert error["id"] == "slew" and "below the horizon" in error["message"], error
        assert live.props[("Telescope Simulator", "EQUATORIAL_EOD_COORD")]["state"] == "Alert"

        live.send(type="ping", id=3)
        assert live.expect(lambda m: m["type"] == "pong", what="pong") == {"type": "pong", "id": 3}

        # A second browser gets the status, the properties as they are now, and the messages so far.
        with LiveSocket(manager.port) as second:
            assert second.next()["type"] == "status"
            where = members(second.defined("Telescope Simulator", "GEOGRAPHIC_COORD"))
            assert abs(where["LAT"]["value"] - 51.4772) < 1e-3
            assert members(second.defined("Telescope Simulator", "CONNECTION"))["CONNECT"]["value"] == "On"
            second.expect(lambda m: m["type"] == "message" and "online" in m["message"], what="message history")

            # Both see what happens next.
            live.send(type="new", device="Telescope Simulator", name="CONNECTION", members={"DISCONNECT": "On"})
            for socket in (live, second):
                socket.set_of("Telescope Simulator", "CONNECTION", lambda m: m["members"].get("DISCONNECT") == "On",
                              what="disconnected")


def test_ccd_exposure_gives_an_image_and_its_png_preview_and_refusals_are_errors(web):
    manager = web()
    start_profile(manager, "Camera", ["CCD Simulator"])
    preview = "/api/preview/CCD%20Simulator/CCD1/CCD1.png"
    with LiveSocket(manager.port) as live:
        assert live.next()["type"] == "status"
        assert manager.get(preview).status_code == 404

        # Refused before anything is sent: each answered with an error naming the reason.
        live.send(type="new", device="CCD Simulator", name="NO_SUCH_PROPERTY", members={"X": 1}, id="a")
        error = live.error()
        assert error["id"] == "a" and "NO_SUCH_PROPERTY" in error["message"]
        live.send(type="new", device="CCD Simulator", name="DRIVER_INFO", members={"DRIVER_NAME": "x"})
        assert "read-only" in live.error()["message"]
        live.send(type="new", device="CCD Simulator", name="CONNECTION", members={"CONNECT": "On", "DISCONNECT": "On"})
        assert "OneOfMany" in live.error()["message"]
        live.ws.send("this is not JSON")
        assert "JSON" in live.error()["message"]
        live.send(type="frobnicate")
        assert "unknown message type" in live.error()["message"]

        connect_device(live, "CCD Simulator")
        exposure = members(live.defined("CCD Simulator", "CCD_EXPOSURE"))["CCD_EXPOSURE_VALUE"]
        live.send(type="new", device="CCD Simulator", name="CCD_EXPOSURE",
                  members={"CCD_EXPOSURE_VALUE": exposure["max"] * 10}, id=7)
        error = live.error()
        assert error["id"] == 7 and error["device"] == "CCD Simulator" and error["name"] == "CCD_EXPOSURE"
        assert "outside" in error["message"]
        live.send(type="new", device="CCD Simulator", name="CCD_EXPOSURE", members={"CCD_EXPOSURE_VALUE": "soon"})
        assert "not a number" in live.error()["message"]
        live.send(type="new", device="CCD Simulator", name="CCD1", members={"CCD1": "/etc/passwd"})
        assert "BLOB" in live.error()["message"]

        frame = members(live.defined("CCD Simulator", "CCD_FRAME"))
        width, height = frame["WIDTH"]["value"], frame["HEIGHT"]["value"]
        live.send(type="new", device="CCD Simulator", name="CCD_EXPOSURE", members={"CCD_EXPOSURE_VALUE": 1})
        image = live.expect(lambda m: m["type"] == "image", IMAGE_TIMEOUT, "image")
        assert image["device"] == "CCD Simulator" and image["name"] == "CCD1" and image["member"] == "CCD1"
        assert image["format"] == ".fits" and image["size"] > width * height
        assert image["url"].startswith(preview + "?n=")

        response = manager.get(image["url"])
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        picture = Image.open(io.BytesIO(response.content))
        picture.load()
        assert picture.format == "PNG" and picture.mode == "L" and picture.width <= 1024
        assert abs(picture.width / picture.height - width / height) < 0.01
        assert len(np.unique(np.asarray(picture))) > 16   # stretched, not a blank frame

        # The next image replaces it: a new counter in its URL.
        live.send(type="new", device="CCD Simulator", name="CCD_EXPOSURE", members={"CCD_EXPOSURE_VALUE": 0.5})
        second = live.expect(lambda m: m["type"] == "image", IMAGE_TIMEOUT, "second image")
        assert second["url"] != image["url"]
        assert manager.get(second["url"]).headers["x-image-counter"] == second["url"].rsplit("=", 1)[1]

    # A browser that opens later sees the latest image at once, after the definitions.
    with LiveSocket(manager.port) as again:
        replay = again.expect(lambda m: m["type"] == "image", TIMEOUT, "the latest image")
        assert replay["url"] == second["url"] and ("CCD Simulator", "CCD1") in again.props


def test_socket_follows_server_stop_start_and_driver_crash(web):
    manager = web()
    start_profile(manager, "Focus", ["Focuser Simulator"])
    with LiveSocket(manager.port) as live:
        assert live.next()["status"]["running"] is True
        live.defined("Focuser Simulator", "CONNECTION")

        manager.ok("POST", "/api/server/stop")
        live.expect_all({
            "device deleted": lambda m: m == {"type": "del", "device": "Focuser Simulator", "name": None},
            "stopped status": lambda m: m["type"] == "status" and m["status"]["running"] is False})
        assert live.props == {}

        # Started again (a new server process): the bridge connects to it.
        manager.ok("POST", "/api/server/start/Focus")
        status = live.expect(lambda m: m["type"] == "status" and m["status"]["running"] and m["status"]["drivers"]
                             and m["status"]["drivers"][0]["devices"], what="running status")["status"]
        live.defined("Focuser Simulator", "CONNECTION")

        # A driver that dies: its device goes, the status shows the restart, the device comes back.
        os.kill(status["drivers"][0]["pid"], signal.SIGKILL)
        live.expect_all({
            "device deleted": lambda m: m["type"] == "del" and m["device"] == "Focuser Simulator",
            "crash in the status": lambda m: m["type"] == "status" and m["status"]["drivers"]
            and m["status"]["drivers"][0]["restarts"] == 1 and m["status"]["drivers"][0]["crashed"],
            "device defined again": lambda m: m["type"] == "def" and m["device"] == "Focuser Simulator"
            and m["name"] == "CONNECTION"})


def test_a_new_socket_without_a_server_gets_the_status_and_errors(web):
    manager = web("--no-autostart")
    with LiveSocket(manager.port) as live:
        first = live.next()
        assert first["type"] == "status" and first["status"]["running"] is False
        live.send(type="new", device="CCD Simulator", name="CONNECTION", members={"CONNECT": "On"})
        assert "not running" in live.error()["message"]
        live.send(type="new", device="CCD Simulator", name="CONNECTION", members=[])
        assert "members" in live.error()["message"]


# ------------------------------------------------------------------------------ without processes
def test_a_browser_too_far_behind_is_closed_and_the_others_go_on(app_client):
    client = app_client()
    bridge = client.app.state.web.live
    with client.websocket_connect("/ws") as slow:
        assert slow.receive_json()["type"] == "status"
        [behind] = list(bridge.subscribers)
        with client.websocket_connect("/ws") as fast:
            assert fast.receive_json()["type"] == "status"

            def flood() -> None:  # in the application's event loop: the slow socket's sender cannot run meanwhile
                behind.max_messages = 3
                for n in range(4):
                    behind.push(json.dumps({"type": "message", "device": None, "timestamp": None, "message": n}))
                bridge.message(None, None, "still here")

            client.portal.call(flood)
            closed = slow.receive()
            assert closed["type"] == "websocket.close" and closed["code"] == 1013, closed
            assert fast.receive_json() == {"type": "message", "device": None, "timestamp": None,
                                           "message": "still here"}
            assert len(bridge.subscribers) == 1
            fast.send_json({"type": "ping"})
            assert fast.receive_json() == {"type": "pong"}


def test_a_subscriber_that_falls_behind_is_dropped_alone():
    slow, fast = Subscriber(max_messages=3), Subscriber(max_messages=3)
    for n in range(3):
        slow.push(f"m{n}")
        fast.push(f"m{n}")
        fast.queue.popleft()  # this one reads
    assert not slow.dropped.is_set()
    slow.push("m3")
    fast.push("m3")
    assert slow.dropped.is_set() and not slow.queue and slow.size == 0
    assert not fast.dropped.is_set() and list(fast.queue) == ["m3"]
    slow.push("later")
    assert not slow.queue  # a dropped subscriber takes nothing more

    big = Subscriber(max_messages=100, max_bytes=10)
    big.push("x" * 11)
    assert big.dropped.is_set()


@pytest.mark.parametrize("value, shown", [(float("nan"), None), (float("inf"), None), (1.5, 1.5)])
def test_messages_are_valid_json_whatever_the_numbers(value, shown):
    from indi.client.model import Property
    from indi.protocol import DefVector, NumberMember, PropertyType, SetVector

    definition = DefVector(PropertyType.NUMBER, "Dev", "N", [NumberMember("A", value, "Alpha", "%.2f", 0, 10, 1)])
    p = Property(definition)
    message = def_message(p)
    json.dumps(message, allow_nan=False)
    [member] = message["members"]
    assert member["value"] == shown and member["format"] == "%.2f" and member["label"] == "Alpha"
    p.update(SetVector(PropertyType.NUMBER, "Dev", "N", [NumberMember("A", 2.0)]))
    update = set_message(p, ["A", "unknown"])
    assert update["members"] == {"A": 2.0} and update["display"] == {"A": "2.00"}
