"""The client against a fake server the test speaks for: exactly what it sends, what it refuses
to send, how it reads every element into the model, and how it answers pings.

Each test accepts the client's connection, plays the server's part, and uses the client's ping
(answered by the test) as a barrier: whatever the client sent before it has been read.
"""

from __future__ import annotations

import asyncio
import base64
import zlib

import pytest
from client_support import FakeServer, barrier, run

from indi.client import (
    BlobReceived,
    Client,
    Defined,
    Deleted,
    Disconnected,
    IndiError,
    IndiMessage,
    IndiTimeout,
    MessageReceived,
    NotConnected,
    PropertyState,
    ReadOnly,
    UnknownDevice,
    UnknownMember,
    UnknownProperty,
    Updated,
    ValueRefused,
)
from indi.protocol import NewVector, parse

DEV = "Fake Device"

DEFINITIONS = f"""
<defNumberVector device="{DEV}" name="FOCUS" label="Focus" group="Main" state="Idle" perm="rw" timeout="60"
    timestamp="2026-01-01T00:00:00">
  <defNumber name="POSITION" label="Position" format="%6.0f" min="0" max="10000" step="10">
    1234
  </defNumber>
  <defNumber name="ANGLE" label="Angle" format="%010.6m" min="-90" max="90" step="0">-5.391111111</defNumber>
  <defNumber name="FREE" label="Free" format="%g" min="0" max="0" step="0">0.100000000000000005551</defNumber>
</defNumberVector>
<defTextVector device="{DEV}" name="INFO" label="Info" group="Main" state="Ok" perm="ro">
  <defText name="VERSION" label="Version">1.2 &amp; more</defText>
</defTextVector>
<defTextVector device="{DEV}" name="NAME" label="Name" group="Main" state="Idle" perm="rw">
  <defText name="OBSERVER">nobody</defText>
</defTextVector>
<defSwitchVector device="{DEV}" name="MODE" label="Mode" group="Main" state="Ok" perm="rw" rule="OneOfMany">
  <defSwitch name="FAST">On</defSwitch><defSwitch name="SLOW">Off</defSwitch><defSwitch name="STOP">Off</defSwitch>
</defSwitchVector>
<defSwitchVector device="{DEV}" name="OPTIONS" label="Options" group="Main" state="Ok" perm="rw" rule="AtMostOne">
  <defSwitch name="A">On</defSwitch><defSwitch name="B">Off</defSwitch>
</defSwitchVector>
<defSwitchVector device="{DEV}" name="FLAGS" label="Flags" group="Main" state="Ok" perm="rw" rule="AnyOfMany">
  <defSwitch name="X">On</defSwitch><defSwitch name="Y">Off</defSwitch>
</defSwitchVector>
<defLightVector device="{DEV}" name="STATUS" label="Status" group="Main" state="Idle">
  <defLight name="POWER" label="Power">Ok</defLight>
</defLightVector>
<defBLOBVector device="{DEV}" name="UPLOAD" label="Upload" group="Main" state="Idle" perm="rw">
  <defBLOB name="FILE" label="File"/>
</defBLOBVector>
<defBLOBVector device="{DEV}" name="IMAGE" label="Image" group="Main" state="Idle" perm="ro">
  <defBLOB name="DATA" label="Data"/><defBLOB name="THUMB" label="Thumbnail"/>
</defBLOBVector>
"""


async def connected(server: FakeServer, **options) -> tuple[Client, object]:
    """A client connected to the fake server, with the device defined."""
    client = Client("127.0.0.1", server.port, **options)
    await client.connect()
    link = await server.accept()
    await link.send(DEFINITIONS)
    await client.wait_property(DEV, "IMAGE", 10)
    return client, link


def test_model_from_definitions_and_updates():
    async def body():
        async with FakeServer() as server:
            client, link = await connected(server)
            async with client:
                focus = client[DEV]["FOCUS"]
                assert (focus.type, focus.label, focus.group, focus.perm, focus.state, focus.timeout,
                        focus.timestamp) == ("Number", "Focus", "Main", "rw", "Idle", 60.0, "2026-01-01T00:00:00")
                position = focus["POSITION"]
                assert (position.value, position.raw, position.text, position.min, position.max, position.step,
                        position.format, position.label) == (1234.0, "1234", "  1234", 0, 10000, 10, "%6.0f",
                                                             "Position")
                assert focus["ANGLE"].text == "  -5:23:28" and focus["ANGLE"].raw == "-5.391111111"
                assert focus["FREE"].raw == "0.100000000000000005551" and focus["FREE"].value == 0.1
                assert client[DEV]["INFO"]["VERSION"].value == "1.2 & more"
                mode = client[DEV]["MODE"]
                assert mode.rule == "OneOfMany" and mode.on == ["FAST"] and mode["FAST"].value is True
                assert mode["SLOW"].text == "Off" and mode["SLOW"].raw == "Off"
                status = client[DEV]["STATUS"]
                assert status.perm == "ro" and status["POWER"].value == PropertyState.OK
                assert list(client[DEV]) == ["FOCUS", "INFO", "NAME", "MODE", "OPTIONS", "FLAGS", "STATUS", "UPLOAD",
                                             "IMAGE"]

                # Updates: state, message, members (raw text kept), a universal message.
                await link.send(f'<setNumberVector device="{DEV}" name="FOCUS" state="Busy" timeout="5" '
                                f'timestamp="2026-01-01T00:00:01" message="moving">'
                                f'<oneNumber name="POSITION">2000.50</oneNumber></setNumberVector>\n'
                                f'<message message="server says hello" timestamp="2026-01-01T00:00:02"/>\n')
                await client.wait_state(DEV, "FOCUS", "Busy", 10)
                assert focus is client[DEV]["FOCUS"], "the Property object is updated in place"
                assert (focus.state, focus.timeout, focus.message, focus.timestamp) == ("Busy", 5.0, "moving",
                                                                                        "2026-01-01T00:00:01")
                assert (position.value, position.raw, position.text) == (2000.5, "2000.50", "  2000")
                await client.wait_for(lambda: any(m.text == "server says hello" for m in client.messages), 10)
                assert (DEV, "2026-01-01T00:00:01", "moving") in client.messages
                assert (None, "2026-01-01T00:00:02", "server says hello") in client.messages

                # delProperty of one property, then of the whole device.
                await link.send(f'<delProperty device="{DEV}" name="NAME"/>\n')
                await client.wait_for(lambda: "NAME" not in client[DEV], 10)
                device = client[DEV]
                await link.send(f'<delProperty device="{DEV}" message="bye"/>\n')
                await client.wait_for(lambda: DEV not in client.devices, 10)
                assert device.gone and focus.deleted
                with pytest.raises(UnknownDevice):
                    client[DEV]
                assert client.messages[-1] == (DEV, None, "bye")

    run(body())


def test_refusals_send_nothing():
    async def body():
        async with FakeServer() as server:
            client, link = await connected(server, define_timeout=0.2)
            async with client:
                cases = [
                    (UnknownDevice, "No Such Device", "FOCUS", {"POSITION": 1}),
                    (UnknownProperty, DEV, "NO_SUCH_PROPERTY", {"POSITION": 1}),
                    (UnknownMember, DEV, "FOCUS", {"NO_SUCH_MEMBER": 1}),
                    (ValueRefused, DEV, "FOCUS", {"POSITION": 10001}),
                    (ValueRefused, DEV, "FOCUS", {"POSITION": -0.5}),
                    (ValueRefused, DEV, "FOCUS", {"ANGLE": "-90:00:01"}),
                    (ValueRefused, DEV, "FOCUS", {"POSITION": "a lot"}),
                    (ValueRefused, DEV, "FOCUS", {"POSITION": True}),
                    (ReadOnly, DEV, "INFO", {"VERSION": "2"}),
                    (ReadOnly, DEV, "STATUS", {"POWER": "Ok"}),
                    (ValueRefused, DEV, "MODE", {"FAST": True, "SLOW": True}),
                    (ValueRefused, DEV, "MODE", {"FAST": "maybe"}),
                    (ValueRefused, DEV, "UPLOAD", {"FILE": 12}),
                    (ValueRefused, DEV, "UPLOAD", {"FILE": "/no/such/file.fits"}),
                ]
                for error, device, prop, values in cases:
                    with pytest.raises(error) as info:
                        await client.set(device, prop, values, wait=True)
                    assert isinstance(info.value, IndiError)
                    print(f"{error.__name__}: {info.value}")
                with pytest.raises(UnknownMember, match="NOPE"):
                    await client.select(DEV, "MODE", "NOPE")
                with pytest.raises(ValueRefused, match="not a switch"):
                    await client.select(DEV, "FOCUS", "POSITION")
                with pytest.raises(ValueRefused, match="outside 0..10000"):
                    await client.set(DEV, "FOCUS", POSITION=20000)
                sent = await barrier(client, link)
                assert [f.tag for f in sent] == [], f"refused requests were sent: {sent}"

    run(body())


def test_values_are_converted_and_switch_rules_followed(tmp_path):
    upload = tmp_path / "flat.fits"
    upload.write_bytes(b"SIMPLE  = T" + bytes(range(256)))

    async def body():
        async with FakeServer() as server:
            client, link = await connected(server)
            async with client:
                await client.set(DEV, "FOCUS", POSITION=100, ANGLE="-5:23:28")
                await client.set(DEV, "FOCUS", {"ANGLE": "10 30", "FREE": 1e-3})
                await client.set(DEV, "NAME", OBSERVER="Ada <Lovelace> & co")
                await client.set(DEV, "MODE", SLOW=True)
                await client.select(DEV, "MODE", "STOP")
                await client.select(DEV, "OPTIONS", "B")
                await client.select(DEV, "FLAGS", "Y")
                await client.set(DEV, "FLAGS", X="Off", Y="On")
                await client.set(DEV, "UPLOAD", FILE=b"\x00\x01raw")
                await client.set(DEV, "UPLOAD", FILE=str(upload))
                await client.set(DEV, "UPLOAD", FILE=(b"xyz", ".dat"))
                sent = [parse(f) for f in await barrier(client, link)]
                assert all(isinstance(e, NewVector) and e.device == DEV for e in sent), sent
                got = [(e.name, [(m.name, m.value) for m in e.members]) for e in sent]
                assert got[:8] == [
                    ("FOCUS", [("POSITION", 100.0), ("ANGLE", pytest.approx(-(5 + 23 / 60 + 28 / 3600)))]),
                    ("FOCUS", [("ANGLE", 10.5), ("FREE", 0.001)]),
                    ("NAME", [("OBSERVER", "Ada <Lovelace> & co")]),
                    ("MODE", [("SLOW", "On")]),
                    ("MODE", [("STOP", "On")]),                    # OneOfMany: just the member
                    ("OPTIONS", [("B", "On"), ("A", "Off")]),      # AtMostOne: and the one that was On, Off
                    ("FLAGS", [("Y", "On")]),                      # AnyOfMany: the others unchanged
                    ("FLAGS", [("X", "Off"), ("Y", "On")]),
                ]
                blobs = [(e.members[0].value, e.members[0].format, e.members[0].size) for e in sent[8:]]
                assert blobs == [(b"\x00\x01raw", "", 5), (upload.read_bytes(), ".fits", upload.stat().st_size),
                                 (b"xyz", ".dat", 3)]

    run(body())


def test_wait_true_follows_busy_to_ok_and_alert_raises_value_refused():
    async def body():
        async with FakeServer() as server:
            client, link = await connected(server)
            async with client:
                # Busy, then Ok: set() returns when the property leaves Busy.
                task = asyncio.create_task(client.set(DEV, "FOCUS", POSITION=500, wait=True, timeout=20))
                await link.expect("newNumberVector")
                # An update sent before the device read the request (other values, Ok) is not the answer.
                await link.send(f'<setNumberVector device="{DEV}" name="FOCUS" state="Ok">'
                                f'<oneNumber name="POSITION">1234</oneNumber></setNumberVector>\n')
                await link.send(f'<setNumberVector device="{DEV}" name="FOCUS" state="Busy">'
                                f'<oneNumber name="POSITION">1300</oneNumber></setNumberVector>\n')
                await client.wait_state(DEV, "FOCUS", "Busy", 10)
                assert not task.done()
                await link.send(f'<setNumberVector device="{DEV}" name="FOCUS" state="Busy">'
                                f'<oneNumber name="POSITION">400</oneNumber></setNumberVector>\n')
                await barrier(client, link)
                assert not task.done()
                await link.send(f'<setNumberVector device="{DEV}" name="FOCUS" state="Ok">'
                                f'<oneNumber name="POSITION">500</oneNumber></setNumberVector>\n')
                prop = await asyncio.wait_for(task, 10)
                assert prop.state == "Ok" and prop["POSITION"].value == 500

                # An answer with the values asked for, and no Busy, is an answer too.
                task = asyncio.create_task(client.set(DEV, "NAME", OBSERVER="Ada", wait=True, timeout=20))
                await link.expect("newTextVector")
                await link.send(f'<setTextVector device="{DEV}" name="NAME" state="Ok">'
                                f'<oneText name="OBSERVER">Ada</oneText></setTextVector>\n')
                assert (await asyncio.wait_for(task, 10))["OBSERVER"].value == "Ada"

                # Alert with a message on the vector.
                task = asyncio.create_task(client.set(DEV, "FOCUS", POSITION=9000, wait=True, timeout=20))
                await link.expect("newNumberVector")
                await link.send(f'<setNumberVector device="{DEV}" name="FOCUS" state="Alert" '
                                f'message="[ERROR] Position 9000 is beyond the travel limit"/>\n')
                with pytest.raises(ValueRefused, match="beyond the travel limit") as info:
                    await asyncio.wait_for(task, 10)
                assert (info.value.device, info.value.property) == (DEV, "FOCUS")

                # Alert after Busy, the reason in a separate message element (as libindi drivers do).
                task = asyncio.create_task(client.select(DEV, "MODE", "SLOW", wait=True, timeout=20))
                await link.expect("newSwitchVector")
                await link.send(f'<setSwitchVector device="{DEV}" name="MODE" state="Busy"/>\n'
                                f'<message device="{DEV}" message="[ERROR] Motor stalled"/>\n'
                                f'<setSwitchVector device="{DEV}" name="MODE" state="Alert"/>\n')
                with pytest.raises(ValueRefused, match="Motor stalled"):
                    await asyncio.wait_for(task, 10)

                # No answer at all: IndiTimeout naming the property.
                with pytest.raises(IndiTimeout, match=f"{DEV}.NAME") as timeout:
                    await client.set(DEV, "NAME", OBSERVER="Bob", wait=True, timeout=0.3)
                assert isinstance(timeout.value, TimeoutError)

    run(body())


def test_waits_time_out_naming_what_was_awaited():
    async def body():
        async with FakeServer() as server:
            client, link = await connected(server)
            async with client:
                for waiting, words in [
                    (client.wait_device("Other Device", 0.2), "device 'Other Device'"),
                    (client.wait_property(DEV, "NOPE", 0.2), f"property {DEV}.NOPE"),
                    (client.wait_state(DEV, "FOCUS", "Alert", 0.2), f"{DEV}.FOCUS to be Alert"),
                    (client.wait_for(lambda: client[DEV]["NOPE"], 0.2, what="NOPE"), "NOPE"),
                ]:
                    with pytest.raises(IndiTimeout, match="0.2 s") as info:
                        await waiting
                    assert words in str(info.value)
                # A predicate that looks up what is not defined yet is simply false until it is.
                waiter = asyncio.create_task(client.wait_for(lambda: client["Later"]["P"].state == "Ok", 10))
                await link.send('<defTextVector device="Later" name="P" state="Idle" perm="ro">'
                                '<defText name="T">x</defText></defTextVector>\n')
                await client.wait_device("Later", 10)
                assert not waiter.done()
                await link.send('<setTextVector device="Later" name="P" state="Ok"/>\n')
                assert await asyncio.wait_for(waiter, 10) is True

    run(body())


def test_ping_request_from_the_server_is_answered():
    async def body():
        async with FakeServer() as server:
            client, link = await connected(server)
            async with client:
                for uid in ("1", "server-ping-2"):
                    await link.send(f'<pingRequest uid="{uid}"/>\n')
                    reply = await link.expect("pingReply", 10)
                    assert reply.attrs == {"uid": uid}

    run(body())


def test_blobs_in_memory_inflated_and_kept_in_the_model(tmp_path):
    image, thumb = bytes(range(256)) * 40, b"small"
    packed = zlib.compress(image)

    async def body():
        async with FakeServer() as server:
            client, link = await connected(server)
            async with client:
                first = client.receive_blob(DEV, "IMAGE")
                thumbs = client.receive_blob(DEV, "IMAGE", member="THUMB", to_file=tmp_path / "thumb.bin")
                enabled = await link.expect("enableBLOB")
                assert (enabled.attrs, enabled.text) == ({"device": DEV, "name": "IMAGE"}, "Also")
                await link.send(
                    f'<setBLOBVector device="{DEV}" name="IMAGE" state="Ok" timestamp="2026-01-01T00:00:09">\n'
                    f'<oneBLOB name="DATA" size="{len(image)}" format=".fits.z">\n'
                    f'{base64.encodebytes(packed).decode()}</oneBLOB>\n'
                    f'<oneBLOB name="THUMB" size="5" format=".bin">{base64.b64encode(thumb).decode()}</oneBLOB>\n'
                    f'</setBLOBVector>\n')
                blob = await first.wait(10)
                assert (blob.device, blob.property, blob.name, blob.format, blob.size, blob.data, blob.path,
                        blob.timestamp) == (DEV, "IMAGE", "DATA", ".fits", len(image), image, None,
                                            "2026-01-01T00:00:09")
                saved = await thumbs.wait(10)
                assert saved.path == tmp_path / "thumb.bin" and saved.data is None
                assert saved.path.read_bytes() == thumb and not (tmp_path / "thumb.bin.part").exists()
                await client.wait_state(DEV, "IMAGE", "Ok", 10)
                data = client[DEV]["IMAGE"]["DATA"]
                assert (data.value, data.format, data.size) == (image, ".fits", len(image))
                assert client[DEV]["IMAGE"]["THUMB"].path == str(tmp_path / "thumb.bin")
                # Done receivers take nothing more; a new one gets the next BLOB.
                second = client.receive_blob(DEV, "IMAGE")
                await link.send(f'<setBLOBVector device="{DEV}" name="IMAGE"><oneBLOB name="DATA" size="2" '
                                f'format=".raw">aGk=</oneBLOB></setBLOBVector>\n')
                assert (await second.wait(10)).data == b"hi" and first.done
                # A size that is not in ASCII digits (int() refuses "\u00b2") is no size: the data's length.
                third = client.receive_blob(DEV, "IMAGE")
                await link.send(f'<setBLOBVector device="{DEV}" name="IMAGE"><oneBLOB name="DATA" size="\u00b2" '
                                f'format=".raw">aGVsbG8=</oneBLOB></setBLOBVector>\n')
                assert (await third.wait(10)).data == b"hello"
                assert client[DEV]["IMAGE"]["DATA"].size == 5
                with pytest.raises(IndiTimeout, match=f"no BLOB {DEV}.IMAGE"):
                    await client.receive_blob(DEV, "IMAGE").wait(0.2)
                # BLOB settings: device-wide, per property, in the order last given.
                await client.enable_blob(DEV, mode="only")
                enabled = await link.expect("enableBLOB")
                assert (enabled.attrs, enabled.text) == ({"device": DEV}, "Only")
                with pytest.raises(ValueRefused):
                    await client.enable_blob(DEV, mode="Sometimes")

    run(body())


def test_listeners_see_every_change_in_order_and_a_failing_one_harms_nothing():
    async def body():
        async with FakeServer() as server:
            client = Client("127.0.0.1", server.port)
            events: list = []
            client.add_listener(lambda event: 1 / 0)       # logged, never raised into the client
            remove = client.add_listener(events.append)
            await client.connect()
            link = await server.accept()
            await link.send(DEFINITIONS)
            await client.wait_property(DEV, "IMAGE", 10)
            async with client:
                defined = [e.prop.name for e in events if isinstance(e, Defined)]
                assert defined == ["FOCUS", "INFO", "NAME", "MODE", "OPTIONS", "FLAGS", "STATUS", "UPLOAD", "IMAGE"]
                assert all(e.prop is client[DEV][e.prop.name] for e in events)
                events.clear()
                await client.enable_blob(DEV)
                await link.expect("enableBLOB")
                await link.send(f'<setNumberVector device="{DEV}" name="FOCUS" state="Busy" message="moving">'
                                f'<oneNumber name="POSITION">2000</oneNumber></setNumberVector>\n'
                                f'<setBLOBVector device="{DEV}" name="IMAGE" state="Ok"><oneBLOB name="DATA" '
                                f'size="2" format=".raw">aGk=</oneBLOB></setBLOBVector>\n'
                                f'<delProperty device="{DEV}" name="NAME"/>\n')
                await client.wait_for(lambda: "NAME" not in client[DEV], 10)
                focus, image = client[DEV]["FOCUS"], client[DEV]["IMAGE"]
                assert events == [Updated(focus, ("POSITION",), "moving"),
                                  MessageReceived(IndiMessage(DEV, None, "moving")),
                                  BlobReceived(image, "DATA", ".raw", 2, b"hi", None),
                                  Updated(image, ("DATA",), None),
                                  Deleted(DEV, "NAME")]
                events.clear()
                link.close()
                await client.wait_for(lambda: events, 10)
                assert events == [Disconnected((DEV,))]
                remove()
                link = await server.accept()
                await link.send(DEFINITIONS)
                await client.wait_property(DEV, "IMAGE", 10)
                assert events == [Disconnected((DEV,))], "a removed listener hears nothing more"

    run(body())


def test_a_malformed_blob_drops_the_connection_and_the_client_reconnects():
    async def body():
        async with FakeServer() as server:
            client, link = await connected(server)
            async with client:
                receiver = client.receive_blob(DEV, "IMAGE")
                await link.send(f'<setBLOBVector device="{DEV}" name="IMAGE"><oneBLOB name="DATA" size="2" '
                                f'format=".raw">a!Gk=</oneBLOB></setBLOBVector>\n')
                second = await server.accept()      # reconnected, asked for properties again
                enabled = await second.expect("enableBLOB")   # and re-sent the BLOB setting
                assert enabled.attrs == {"device": DEV, "name": "IMAGE"} and enabled.text == "Also"
                await second.send(DEFINITIONS)
                await client.wait_property(DEV, "IMAGE", 10)
                assert not receiver.done, "a receiver keeps waiting across a reconnection"
                await second.send(f'<setBLOBVector device="{DEV}" name="IMAGE"><oneBLOB name="DATA" size="2" '
                                  f'format=".raw">aGk=</oneBLOB></setBLOBVector>\n')
                assert (await receiver.wait(10)).data == b"hi"
                assert client.connections == 2

    run(body())


def test_without_reconnect_pending_waits_fail_with_not_connected():
    async def body():
        async with FakeServer() as server:
            client, link = await connected(server, reconnect=False)
            async with client:
                waiter = asyncio.create_task(client.wait_state(DEV, "FOCUS", "Alert", 20))
                await barrier(client, link)
                link.close()
                with pytest.raises(NotConnected):
                    await asyncio.wait_for(waiter, 10)
                with pytest.raises(NotConnected):
                    await client.set(DEV, "FOCUS", POSITION=1)
            with pytest.raises(NotConnected):
                await client.wait_device(DEV, 1)

    run(body())


def test_cannot_connect_raises_not_connected():
    async def body():
        async with FakeServer() as server:
            port = server.port
        with pytest.raises(NotConnected, match=f"127.0.0.1:{port}"):
            async with Client("127.0.0.1", port):
                pass

    run(body())


def test_reconnection_backs_off_from_half_a_second_doubling_to_ten(monkeypatch):
    delays: list[float] = []

    async def sleep(seconds):
        delays.append(seconds)

    async def body():
        client = Client("127.0.0.1", 1)
        failures = 7

        async def open_():
            nonlocal failures
            if failures:
                failures -= 1
                raise ConnectionRefusedError("refused")

        monkeypatch.setattr("indi.client.client._sleep", sleep)
        monkeypatch.setattr(client, "_open", open_)
        await client._reconnect()
        assert delays == [0.5, 1, 2, 4, 8, 10, 10, 10]

    run(body())
