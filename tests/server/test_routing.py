"""The routing rules (indi.server.routing.Router) with plain fake peers: who receives which message.

Every rule here is one a user sees: a client that gets too much or too little, a driver that is
never asked for its properties, a BLOB that floods a client that did not want it. The peers are
plain objects recording what they were given; frames come from the real Framer.
"""

from __future__ import annotations

import pytest

from indi.protocol import Frame, Framer
from indi.server.routing import ClientInterest, Misbehaving, Router, Snoops


def frame(xml: str) -> Frame:
    frames = Framer().feed(xml.encode())
    assert len(frames) == 1, xml
    return frames[0]


def parse_all(chunks: list[bytes]) -> list[Frame]:
    return Framer().feed(b"".join(chunks))


class FakeClient:
    def __init__(self, label: str = "Client 1") -> None:
        self.label = label
        self.closed = False
        self.interest = ClientInterest()
        self.received: list[bytes] = []
        self.stream_flags: list[bool] = []

    def send(self, data: bytes) -> None:
        self.received.append(bytes(data))

    def deliver(self, frame: Frame, stream: bool) -> None:
        self.received.append(frame.raw)
        self.stream_flags.append(stream)

    def take(self) -> list[Frame]:
        """Everything received since the last take(), as frames."""
        frames = parse_all(self.received)
        self.received.clear()
        return frames


class FakeDriver:
    def __init__(self, label: str = "Driver d", remote_uid: str | None = None) -> None:
        self.label = label
        self.closed = False
        self.devices: set[str] = set()
        self.snoops = Snoops()
        self.remote_uid = remote_uid
        self.received: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.received.append(bytes(data))

    take = FakeClient.take


def tags(frames: list[Frame]) -> list[tuple[str, str, str]]:
    return [(f.tag, f.attrs.get("device", ""), f.attrs.get("name", "")) for f in frames]


class World:
    """A Router with its log captured."""

    def __init__(self, verbose: int = 0) -> None:
        self.lines: list[str] = []
        self.router = Router(self.lines.append, verbose)

    def client(self, label: str = "Client 1", *hello: str) -> FakeClient:
        client = FakeClient(label)
        self.router.clients.append(client)
        for xml in hello:
            self.router.from_client(client, frame(xml))
        # Start the test from a clean slate: what the greeting caused is not under test.
        for peer in [*self.router.clients, *self.router.drivers]:
            peer.received.clear()
        return client

    def driver(self, label: str = "Driver d", *devices: str, remote_uid: str | None = None) -> FakeDriver:
        driver = FakeDriver(label, remote_uid)
        self.router.drivers.append(driver)
        for device in devices:
            # A driver owns a device once it has sent something for it.
            self.router.from_driver(driver, frame(f"<delProperty device='{device}' name='_'/>"))
        return driver

    def c2d(self, client: FakeClient, xml: str) -> None:
        self.router.from_client(client, frame(xml))

    def d2c(self, driver: FakeDriver, xml: str) -> None:
        self.router.from_driver(driver, frame(xml))


GET_ALL = "<getProperties version='1.7'/>"


def set_number(device: str, name: str = "prop", value: str = "1") -> str:
    return (f"<setNumberVector device='{device}' name='{name}' state='Ok'>"
            f"<oneNumber name='x'>{value}</oneNumber></setNumberVector>")


def def_number(device: str, name: str = "prop") -> str:
    return (f"<defNumberVector device='{device}' name='{name}' state='Idle' perm='rw'>"
            f"<defNumber name='x' format='%g' min='0' max='10' step='1'>1</defNumber></defNumberVector>")


def set_blob(device: str, name: str = "blob", fmt: str = ".fits", size: str = "3") -> str:
    return (f"<setBLOBVector device='{device}' name='{name}' state='Ok'>"
            f"<oneBLOB name='img' size='{size}' format='{fmt}' enclen='4'>QUJD</oneBLOB></setBLOBVector>")


# ------------------------------------------------------------------------------- client interest
def test_plain_get_properties_subscribes_to_every_device():
    w = World()
    cam, mount = w.driver("Driver cam", "Cam"), w.driver("Driver mount", "Mount")
    client = w.client("Client 1", GET_ALL)
    w.d2c(cam, def_number("Cam"))
    w.d2c(mount, set_number("Mount"))
    assert tags(client.take()) == [("defNumberVector", "Cam", "prop"), ("setNumberVector", "Mount", "prop")]


def test_client_that_sends_nothing_gets_no_device_traffic():
    w = World()
    cam = w.driver("Driver cam", "Cam")
    client = w.client("Client 1")
    w.d2c(cam, def_number("Cam"))
    assert client.take() == []


def test_client_naming_a_device_first_does_not_get_all_devices_from_a_later_plain_get_properties():
    w = World()
    cam, mount = w.driver("Driver cam", "Cam"), w.driver("Driver mount", "Mount")
    client = w.client("Client 1", "<getProperties version='1.7' device='Cam'/>", GET_ALL)
    w.d2c(mount, def_number("Mount"))
    w.d2c(cam, def_number("Cam"))
    assert tags(client.take()) == [("defNumberVector", "Cam", "prop")]


def test_client_naming_a_property_gets_only_that_property():
    w = World()
    cam = w.driver("Driver cam", "Cam")
    client = w.client("Client 1", "<getProperties version='1.7' device='Cam' name='EXPOSURE'/>")
    w.d2c(cam, set_number("Cam", "TEMPERATURE"))
    w.d2c(cam, set_number("Cam", "EXPOSURE"))
    assert tags(client.take()) == [("setNumberVector", "Cam", "EXPOSURE")]


def test_any_message_naming_a_device_and_property_registers_interest_in_that_property():
    w = World()
    cam, mount = w.driver("Driver cam", "Cam"), w.driver("Driver mount", "Mount")
    client = w.client("Client 1", "<newSwitchVector device='Mount' name='PARK'><oneSwitch name='P'>On</oneSwitch>"
                                  "</newSwitchVector>",
                      "<enableBLOB device='Cam'>Never</enableBLOB>")
    w.d2c(cam, set_number("Cam"))
    w.d2c(mount, set_number("Mount", "EQUATORIAL_EOD_COORD"))
    w.d2c(mount, "<setSwitchVector device='Mount' name='PARK' state='Busy'><oneSwitch name='P'>On</oneSwitch>"
                 "</setSwitchVector>")
    assert tags(client.take()) == [("setNumberVector", "Cam", "prop"), ("setSwitchVector", "Mount", "PARK")]


def test_star_device_marks_a_chained_server_that_gets_everything():
    w = World()
    cam, mount = w.driver("Driver cam", "Cam"), w.driver("Driver mount", "Mount")
    chained = w.client("Client 1", "<getProperties device='*' version='1.7'/>", GET_ALL)
    plain = w.client("Client 2", GET_ALL)
    w.d2c(cam, def_number("Cam"))
    w.d2c(mount, def_number("Mount"))
    assert tags(chained.take()) == [("defNumberVector", "Cam", "prop"), ("defNumberVector", "Mount", "prop")]
    assert len(plain.take()) == 2
    # The chained server also gets the snoop requests of our drivers (q2Servers); a plain client not.
    w.d2c(mount, "<getProperties version='1.7' device='Cam' name='CCD1'/>")
    assert tags(chained.take()) == [("getProperties", "Cam", "CCD1")]
    assert plain.take() == []


# --------------------------------------------------------------------------------- client -> drivers
def test_get_properties_for_a_device_goes_only_to_its_owner_with_version_added():
    w = World()
    cam, mount = w.driver("Driver cam", "Cam"), w.driver("Driver mount", "Mount")
    client = w.client()
    w.c2d(client, "<getProperties device='Cam' name='EXPOSURE'/>")
    got = cam.take()
    assert [f.attrs for f in got] == [{"version": "1.7", "device": "Cam", "name": "EXPOSURE"}]
    assert mount.take() == []


@pytest.mark.parametrize("version", ["2.0", "1.8"])
def test_get_properties_version_above_1_7_is_replaced_for_the_driver(version):
    w = World()
    cam = w.driver("Driver cam", "Cam")
    client = w.client()
    w.c2d(client, f"<getProperties version='{version}' device='Cam'/>")
    assert [f.attrs for f in cam.take()] == [{"version": "1.7", "device": "Cam"}]


def test_get_properties_with_version_1_7_passes_byte_for_byte():
    w = World()
    cam = w.driver("Driver cam", "Cam")
    client = w.client()
    xml = "<getProperties   device='Cam' version='1.7' />"
    w.c2d(client, xml)
    assert cam.received == [xml.encode() + b"\n"]


def test_plain_get_properties_goes_to_every_local_driver_and_once_per_remote_server():
    w = World()
    local1, local2 = w.driver("Driver a", "A"), w.driver("Driver b", "B")
    remote1 = w.driver("Driver C@hostx:7624", "C", remote_uid="hostx:7624")
    remote2 = w.driver("Driver D@hostx:7624", "D", remote_uid="hostx:7624")
    other = w.driver("Driver E@hosty:7624", "E", remote_uid="hosty:7624")
    client = w.client()
    w.c2d(client, "<getProperties/>")
    for driver in (local1, local2, other):
        assert [f.attrs for f in driver.take()] == [{"version": "1.7"}], driver.label
    # The request fans out on hostx: sending it twice would double every definition from there.
    assert len(remote1.take()) + len(remote2.take()) == 1


def test_empty_device_attribute_counts_as_no_device():
    w = World()
    local1, local2 = w.driver("Driver a", "A"), w.driver("Driver b", "B")
    client = w.client()
    w.c2d(client, "<getProperties version='1.7' device=''/>")
    assert len(local1.take()) == 1 and len(local2.take()) == 1
    # and the client now gets every device
    w.d2c(local2, set_number("B"))
    assert tags(client.take()) == [("setNumberVector", "B", "prop")]


def test_star_get_properties_reaches_chained_servers():
    w = World()
    remote = w.driver("Driver @hostx:7624", remote_uid="hostx:7624")
    client = w.client()
    w.c2d(client, "<getProperties device='*' version='1.7'/>")
    assert [f.attrs for f in remote.take()] == [{"device": "*", "version": "1.7"}]


def test_new_vector_goes_to_owner_and_is_echoed_to_other_interested_clients_only():
    w = World()
    cam, mount = w.driver("Driver cam", "Cam"), w.driver("Driver mount", "Mount")
    sender = w.client("Client 1", GET_ALL)
    watcher = w.client("Client 2", "<getProperties version='1.7' device='Cam'/>")
    other = w.client("Client 3", "<getProperties version='1.7' device='Mount'/>")
    idle = w.client("Client 4")
    new = ("<newNumberVector device='Cam' name='EXPOSURE'><oneNumber name='EXPOSURE_VALUE'>2.5</oneNumber>"
           "</newNumberVector>")
    w.c2d(sender, new)
    assert cam.received == [new.encode() + b"\n"]
    assert mount.take() == []
    assert watcher.received == [new.encode() + b"\n"]
    assert sender.take() == []
    assert other.take() == []
    assert idle.take() == []


def test_message_for_unannounced_device_is_dropped_and_logged_with_v():
    w = World(verbose=1)
    cam = w.driver("Driver cam", "Cam")
    client = w.client("Client 7", GET_ALL)
    w.c2d(client, "<newSwitchVector device='Ghost' name='CONNECTION'><oneSwitch name='CONNECT'>On</oneSwitch>"
                  "</newSwitchVector>")
    assert cam.take() == []
    assert any("Client 7" in line and "Ghost" in line for line in w.lines), w.lines


def test_enable_blob_from_client_is_not_sent_to_local_drivers_but_to_remote_owner():
    w = World()
    cam = w.driver("Driver cam", "Cam")
    remote = w.driver("Driver Far@hostx:7624", "Far", remote_uid="hostx:7624")
    client = w.client("Client 1", GET_ALL)
    w.c2d(client, "<enableBLOB device='Cam'>Also</enableBLOB>")
    w.c2d(client, "<enableBLOB device='Far'>Also</enableBLOB>")
    assert cam.take() == []
    assert tags(remote.take()) == [("enableBLOB", "Far", "")]


def test_bad_enable_blob_value_is_misbehaviour():
    w = World()
    client = w.client("Client 1", GET_ALL)
    with pytest.raises(Misbehaving):
        w.c2d(client, "<enableBLOB device='Cam'>Sometimes</enableBLOB>")


# --------------------------------------------------------------------------------- drivers -> clients
@pytest.mark.parametrize("xml", [
    def_number("Cam"),
    set_number("Cam"),
    "<delProperty device='Cam' name='prop'/>",
    "<message device='Cam' message='hello'/>",
])
def test_driver_messages_go_to_interested_clients_and_snooping_drivers(xml):
    w = World()
    cam = w.driver("Driver cam", "Cam")
    focuser = w.driver("Driver focuser", "Focuser")
    w.d2c(focuser, "<getProperties version='1.7' device='Cam'/>")
    cam.take()
    interested = w.client("Client 1", "<getProperties version='1.7' device='Cam'/>")
    elsewhere = w.client("Client 2", "<getProperties version='1.7' device='Focuser'/>")
    w.d2c(cam, xml)
    assert interested.received == [xml.encode() + b"\n"]
    assert elsewhere.take() == []
    assert focuser.received == [xml.encode() + b"\n"]
    assert cam.take() == []


def test_universal_message_reaches_every_client():
    w = World()
    cam = w.driver("Driver cam", "Cam")
    clients = [w.client("Client 1", GET_ALL), w.client("Client 2", "<getProperties version='1.7' device='X'/>"),
               w.client("Client 3")]
    w.d2c(cam, "<message message='the weather is turning'/>")
    for client in clients:
        assert tags(client.take()) == [("message", "", "")], client.label


def test_driver_owns_a_device_after_announcing_it():
    w = World()
    driver = w.driver("Driver new")
    client = w.client()
    w.c2d(client, "<getProperties version='1.7' device='Late'/>")
    assert driver.take() == []
    w.d2c(driver, def_number("Late"))
    w.c2d(client, "<getProperties version='1.7' device='Late'/>")
    assert tags(driver.take()) == [("getProperties", "Late", "")]


def test_ping_request_is_answered_to_the_sender_only():
    w = World()
    cam = w.driver("Driver cam", "Cam")
    sender = w.client("Client 1", GET_ALL)
    other = w.client("Client 2", GET_ALL)
    w.c2d(sender, "<pingRequest uid='abc&amp;1'/>")
    got = sender.take()
    assert [(f.tag, f.attrs) for f in got] == [("pingReply", {"uid": "abc&1"})]
    assert other.take() == [] and cam.take() == []
    w.d2c(cam, "<pingRequest uid='SetBLOB/3'/>")
    assert [(f.tag, f.attrs) for f in cam.take()] == [("pingReply", {"uid": "SetBLOB/3"})]
    assert sender.take() == [] and other.take() == []


# ---------------------------------------------------------------------------------------- BLOBs
def test_blobs_are_never_sent_to_a_client_by_default():
    w = World()
    cam = w.driver("Driver cam", "Cam")
    client = w.client("Client 1", GET_ALL)
    w.d2c(cam, set_blob("Cam"))
    w.d2c(cam, set_number("Cam"))
    assert tags(client.take()) == [("setNumberVector", "Cam", "prop")]


def test_enable_blob_also_per_device():
    w = World()
    cam, guider = w.driver("Driver cam", "Cam"), w.driver("Driver guider", "Guider")
    client = w.client("Client 1", GET_ALL, "<enableBLOB device='Cam'>Also</enableBLOB>")
    w.d2c(cam, set_blob("Cam"))
    w.d2c(cam, set_number("Cam"))
    w.d2c(guider, set_blob("Guider"))
    assert tags(client.take()) == [("setBLOBVector", "Cam", "blob"), ("setNumberVector", "Cam", "prop")]


def test_enable_blob_only_per_device_drops_everything_else_of_that_device():
    w = World()
    cam, guider = w.driver("Driver cam", "Cam"), w.driver("Driver guider", "Guider")
    client = w.client("Client 1", GET_ALL, "<enableBLOB device='Cam'>Only</enableBLOB>")
    w.d2c(cam, def_number("Cam"))
    w.d2c(cam, set_number("Cam"))
    w.d2c(cam, "<message device='Cam' message='exposure done'/>")
    w.d2c(cam, set_blob("Cam"))
    w.d2c(guider, set_number("Guider"))
    w.d2c(guider, set_blob("Guider"))
    assert tags(client.take()) == [("setBLOBVector", "Cam", "blob"), ("setNumberVector", "Guider", "prop")]


def test_enable_blob_per_property():
    w = World()
    cam = w.driver("Driver cam", "Cam")
    client = w.client("Client 1", GET_ALL, "<enableBLOB device='Cam' name='CCD1'>Also</enableBLOB>")
    w.d2c(cam, set_blob("Cam", "CCD2"))
    w.d2c(cam, set_blob("Cam", "CCD1"))
    assert tags(client.take()) == [("setBLOBVector", "Cam", "CCD1")]


def test_enable_blob_per_property_overrides_the_device_mode():
    w = World()
    cam = w.driver("Driver cam", "Cam")
    client = w.client("Client 1", GET_ALL, "<enableBLOB device='Cam'>Also</enableBLOB>",
                      "<enableBLOB device='Cam' name='CCD2'>Never</enableBLOB>")
    w.d2c(cam, set_blob("Cam", "CCD2"))
    w.d2c(cam, set_blob("Cam", "CCD1"))
    assert tags(client.take()) == [("setBLOBVector", "Cam", "CCD1")]


def test_enable_blob_never_switches_blobs_off_again():
    w = World()
    cam = w.driver("Driver cam", "Cam")
    client = w.client("Client 1", GET_ALL, "<enableBLOB device='Cam'>Only</enableBLOB>")
    w.d2c(cam, set_blob("Cam"))
    w.c2d(client, "<enableBLOB device='Cam'>Never</enableBLOB>")
    w.d2c(cam, set_blob("Cam"))
    w.d2c(cam, set_number("Cam"))
    assert tags(client.take()) == [("setBLOBVector", "Cam", "blob"), ("setNumberVector", "Cam", "prop")]


def test_stream_frames_are_marked_for_the_client_link():
    w = World()
    cam = w.driver("Driver cam", "Cam")
    client = w.client("Client 1", GET_ALL, "<enableBLOB device='Cam'>Also</enableBLOB>")
    for fmt in (".fits", ".stream", ".stream_jpg", ".stream.z"):
        w.d2c(cam, set_blob("Cam", fmt=fmt))
    w.d2c(cam, set_number("Cam"))
    assert client.stream_flags == [False, True, True, True, False]


def test_snooping_driver_gets_blobs_only_after_enable_blob():
    w = World()
    cam = w.driver("Driver cam", "Cam")
    guider = w.driver("Driver guider", "Guider")
    w.d2c(guider, "<getProperties version='1.7' device='Cam'/>")
    assert tags(cam.take()) == [("getProperties", "Cam", "")]
    w.d2c(cam, set_blob("Cam"))
    w.d2c(cam, set_number("Cam"))
    assert tags(guider.take()) == [("setNumberVector", "Cam", "prop")]
    w.d2c(guider, "<enableBLOB device='Cam'>Also</enableBLOB>")
    w.d2c(cam, set_blob("Cam"))
    w.d2c(cam, set_number("Cam"))
    assert tags(guider.take()) == [("setBLOBVector", "Cam", "blob"), ("setNumberVector", "Cam", "prop")]
    w.d2c(guider, "<enableBLOB device='Cam'>Only</enableBLOB>")
    w.d2c(cam, set_blob("Cam"))
    w.d2c(cam, set_number("Cam"))
    assert tags(guider.take()) == [("setBLOBVector", "Cam", "blob")]
    assert cam.take() == []  # the driver's enableBLOB is the server's business, not the camera's


def test_snooping_driver_enable_blob_per_property():
    w = World()
    cam = w.driver("Driver cam", "Cam")
    guider = w.driver("Driver guider", "Guider")
    w.d2c(guider, "<getProperties version='1.7' device='Cam' name='CCD1'/>")
    w.d2c(guider, "<getProperties version='1.7' device='Cam' name='CCD2'/>")
    w.d2c(guider, "<enableBLOB device='Cam' name='CCD2'>Also</enableBLOB>")
    guider.take()
    w.d2c(cam, set_blob("Cam", "CCD1"))
    w.d2c(cam, set_blob("Cam", "CCD2"))
    w.d2c(cam, set_blob("Cam", "CCD3"))
    w.d2c(cam, set_number("Cam", "CCD3"))
    assert tags(guider.take()) == [("setBLOBVector", "Cam", "CCD2")]


def test_snoop_on_one_property_does_not_deliver_the_others():
    w = World()
    cam = w.driver("Driver cam", "Cam")
    guider = w.driver("Driver guider", "Guider")
    w.d2c(guider, "<getProperties version='1.7' device='Cam' name='TEMP'/>")
    # the owner is asked to (re)define the property, with the version libindi drivers need
    assert [f.attrs for f in cam.take()] == [{"version": "1.7", "device": "Cam", "name": "TEMP"}]
    w.d2c(cam, set_number("Cam", "EXPOSURE"))
    w.d2c(cam, set_number("Cam", "TEMP"))
    assert tags(guider.take()) == [("setNumberVector", "Cam", "TEMP")]


@pytest.mark.parametrize("size", ["", "abc", "12kB", "1e3"])
def test_oneblob_without_numeric_size_is_misbehaviour(size):
    w = World()
    cam = w.driver("Driver cam", "Cam")
    client = w.client("Client 1", GET_ALL, "<enableBLOB device='Cam'>Also</enableBLOB>")
    with pytest.raises(Misbehaving):
        w.d2c(cam, set_blob("Cam", size=size))
    assert client.take() == []
    with pytest.raises(Misbehaving):
        w.c2d(client, f"<newBLOBVector device='Cam' name='UPLOAD'><oneBLOB name='f' size='{size}' format='.fits'>"
                      f"QUJD</oneBLOB></newBLOBVector>")
    assert cam.take() == []


def test_oneblob_with_no_size_attribute_is_misbehaviour():
    w = World()
    cam = w.driver("Driver cam", "Cam")
    with pytest.raises(Misbehaving):
        w.d2c(cam, "<setBLOBVector device='Cam' name='b'><oneBLOB name='img' format='.fits'>QUJD</oneBLOB>"
                   "</setBLOBVector>")


def test_attached_oneblob_is_misbehaviour():
    w = World()
    cam = w.driver("Driver cam", "Cam")
    client = w.client("Client 1", GET_ALL, "<enableBLOB device='Cam'>Also</enableBLOB>")
    with pytest.raises(Misbehaving):
        w.d2c(cam, "<setBLOBVector device='Cam' name='b'><oneBLOB name='img' size='10' format='.fits' "
                   "attached='true'/></setBLOBVector>")
    assert client.take() == []


# ------------------------------------------------------------------------------------- snoops
def test_snoop_request_goes_to_chained_servers_interested_in_the_snooper_and_to_the_owner():
    w = World()
    cam = w.driver("Driver cam", "Cam")
    guider = w.driver("Driver guider", "Guider")
    # An upstream server connected to us, chained to all our devices ("*")
    upstream = w.client("Client 1", "<getProperties device='*' version='1.7'/>")
    # An upstream server chained to the guider only (Guider@thishost)
    guider_only = w.client("Client 2", "<getProperties device='Guider' version='1.7'/>")
    # An upstream server chained to the camera only: not concerned by the guider's snoops
    cam_only = w.client("Client 3", "<getProperties device='Cam' version='1.7'/>")
    plain = w.client("Client 4", GET_ALL)
    w.d2c(guider, "<getProperties version='1.7' device='Telescope' name='EQUATORIAL_EOD_COORD'/>")
    assert tags(upstream.take()) == [("getProperties", "Telescope", "EQUATORIAL_EOD_COORD")]
    assert tags(guider_only.take()) == [("getProperties", "Telescope", "EQUATORIAL_EOD_COORD")]
    assert cam_only.take() == []
    assert plain.take() == []
    assert cam.take() == []  # Telescope is not the camera's


def test_set_from_a_chained_server_reaches_local_snoopers():
    w = World()
    guider = w.driver("Driver guider", "Guider")
    w.d2c(guider, "<getProperties version='1.7' device='Telescope'/>")
    guider.take()
    downstream = w.client("Client 1", "<getProperties device='*' version='1.7'/>")
    w.c2d(downstream, set_number("Telescope"))
    assert tags(guider.take()) == [("setNumberVector", "Telescope", "prop")]


def test_snoop_data_from_a_remote_server_is_not_echoed_to_a_driver_on_that_server():
    w = World()
    far_cam = w.driver("Driver Cam@hostx", "Cam", remote_uid="hostx:7624")
    far_guider = w.driver("Driver Guider@hostx", "Guider", remote_uid="hostx:7624")
    local = w.driver("Driver focuser", "Focuser")
    for driver in (far_guider, local):
        w.d2c(driver, "<getProperties version='1.7' device='Cam'/>")
        driver.take()
    w.d2c(far_cam, set_number("Cam"))
    assert far_guider.take() == []  # hostx routes its own snoops
    assert tags(local.take()) == [("setNumberVector", "Cam", "prop")]


# ---------------------------------------------------------------------------------- driver gone
def test_driver_gone_sends_del_property_per_device_to_interested_clients():
    w = World()
    multi = w.driver("Driver multi", "Cam", "Wheel")
    mount = w.driver("Driver mount", "Mount")
    everything = w.client("Client 1", GET_ALL)
    wheel_only = w.client("Client 2", "<getProperties version='1.7' device='Wheel'/>")
    mount_only = w.client("Client 3", "<getProperties version='1.7' device='Mount'/>")
    w.router.driver_gone(multi)
    got = everything.take()
    assert sorted(tags(got)) == [("delProperty", "Cam", ""), ("delProperty", "Wheel", "")]
    assert all(f.attrs == {"device": f.attrs["device"]} for f in got)
    assert tags(wheel_only.take()) == [("delProperty", "Wheel", "")]
    assert mount_only.take() == []
    # Its devices are forgotten: a request for them no longer reaches it.
    w.c2d(everything, "<getProperties version='1.7' device='Cam'/>")
    assert multi.take() == [] and mount.take() == []


def test_driver_gone_forgets_its_snoops():
    w = World()
    cam = w.driver("Driver cam", "Cam")
    guider = w.driver("Driver guider", "Guider")
    w.d2c(guider, "<getProperties version='1.7' device='Cam'/>")
    guider.take()
    w.router.driver_gone(guider)
    w.d2c(cam, set_number("Cam"))
    assert guider.take() == []


def test_closed_peers_receive_nothing():
    w = World()
    cam = w.driver("Driver cam", "Cam")
    client = w.client("Client 1", GET_ALL)
    client.closed = True
    w.d2c(cam, set_number("Cam"))
    assert client.take() == []
    cam.closed = True
    live = w.client("Client 2")
    w.c2d(live, "<getProperties version='1.7' device='Cam'/>")
    assert cam.take() == []
