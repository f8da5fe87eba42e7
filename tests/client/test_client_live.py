"""The client against real servers: ours and Debian's reference indiserver (parametrized), with
our Python simulators and Debian's C++ ones.

Each test starts its own server(s) with a HOME of its own; everything waits on the client's model
(or on a server's log) with deadlines, never for a fixed time. The telescope simulator sits at
latitude 0, longitude 0 in a fresh HOME, so where a target is in its sky follows from the local
sidereal time there.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import subprocess
import sys
import uuid

import pytest
from client_support import CAMERA, FOCUSER, SCOPE, WAIT, lst_hours, run, sexagesimal, sim, start

from helpers import free_port, have_reference, reference_simulator
from indi.client import (
    Client,
    IndiTimeout,
    NotConnected,
    ReadOnly,
    UnknownDevice,
    UnknownMember,
    UnknownProperty,
    ValueRefused,
)

BOTH = pytest.mark.parametrize("which", ["ours", "reference"])
GETPROP = "/usr/bin/indi_getprop"


def snapshot(client: Client) -> dict[str, str]:
    """Every member's text as received, keyed device.property.member as indi_getprop prints them (it
    leaves out BLOBs and write-only properties, which have no value to show)."""
    return {f"{d.name}.{p.name}.{m.name}": m.raw for d in client.devices.values() for p in d.properties.values()
            if p.type != "BLOB" and p.perm != "wo" for m in p}


async def getprop(port: int, seconds: float = 2) -> dict[str, str]:
    proc = await asyncio.create_subprocess_exec(GETPROP, "-p", str(port), "-t", f"{seconds:g}", "*.*.*",
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await proc.communicate()
    lines = out.decode().splitlines()
    assert lines, f"indi_getprop printed nothing: {err.decode()}"
    return dict(line.split("=", 1) for line in lines)


async def connect_all(client: Client, *devices: str) -> None:
    for device in devices:
        await client.wait_property(device, "CONNECTION", WAIT)
        await client.connect_device(device, WAIT)


@BOTH
def test_model_matches_what_indi_getprop_lists(servers, home_env, which):
    if which == "ours":
        drivers, devices = (sim("telescope"), sim("ccd"), sim("focus")), (SCOPE, CAMERA, FOCUSER)
    else:
        drivers, devices = (reference_simulator("telescope"), reference_simulator("focus")), (SCOPE, FOCUSER)
    server = start(servers, which, *drivers, env=home_env)

    async def body():
        async with Client("127.0.0.1", server.port) as client:
            await connect_all(client, *devices)
            for _ in range(3):   # values that change while indi_getprop runs are compared once they rest
                before = snapshot(client)
                listed = await getprop(server.port)
                await client.ping() if which == "ours" else None
                after = snapshot(client)
                assert set(after) == set(listed), (f"model only: {sorted(set(after) - set(listed))[:10]}, "
                                                   f"getprop only: {sorted(set(listed) - set(after))[:10]}")
                steady = [key for key in after if before.get(key) == after[key]]
                wrong = {key: (listed[key], after[key]) for key in steady if listed[key] != after[key]}
                if not wrong:
                    break
            assert not wrong, f"getprop vs model (raw text): {wrong}"
            assert len(steady) > 60 and len(steady) > 0.8 * len(after), (len(steady), len(after))
            # .text is the value as the device formats it; the raw text is what was sent.
            dec = client[SCOPE]["EQUATORIAL_EOD_COORD"]["DEC"]
            assert re.fullmatch(r" *-?\d+:\d\d:\d\d", dec.text), dec.text
            assert client[SCOPE].connected

    run(body())


@BOTH
def test_set_with_sexagesimal_strings_slews_and_waits_for_ok(servers, home_env, which):
    server = start(servers, which, sim("telescope"), env=home_env)

    async def body():
        async with Client("127.0.0.1", server.port) as client:
            await connect_all(client, SCOPE)
            # Target: an hour west of the meridian, 20 degrees south. The mount is first synced
            # 2 degrees from it, on the same side of the meridian (no flip), so that the slew is short.
            ra = (lst_hours() - 1) % 24
            await client.select(SCOPE, "ON_COORD_SET", "SYNC", wait=True)
            await client.set(SCOPE, "EQUATORIAL_EOD_COORD", RA=(ra - 0.1) % 24, DEC=-18, wait=True)
            await client.select(SCOPE, "ON_COORD_SET", "TRACK", wait=True)
            coords = await client.set(SCOPE, "EQUATORIAL_EOD_COORD", RA=sexagesimal(ra), DEC="-20:00:00",
                                      wait=True, timeout=WAIT)
            assert coords.state == "Ok"
            assert abs(coords["DEC"].value + 20) < 0.01, coords
            assert abs((coords["RA"].value - ra + 12) % 24 - 12) < 0.01, coords
            assert any("slew is complete" in m.text for m in client.messages), list(client.messages)[-5:]

    run(body())


@BOTH
def test_a_refused_slew_raises_value_refused_with_the_devices_message(servers, home_env, which):
    server = start(servers, which, sim("telescope"), env=home_env)

    async def body():
        async with Client("127.0.0.1", server.port) as client:
            await connect_all(client, SCOPE)
            below = sexagesimal((lst_hours() + 12) % 24)   # the antimeridian: 45 degrees below the horizon
            with pytest.raises(ValueRefused, match="below the horizon") as info:
                await client.set(SCOPE, "EQUATORIAL_EOD_COORD", RA=below, DEC="-45", wait=True, timeout=WAIT)
            assert (info.value.device, info.value.property) == (SCOPE, "EQUATORIAL_EOD_COORD")
            assert client[SCOPE]["EQUATORIAL_EOD_COORD"].state == "Alert"

    run(body())


@BOTH
def test_typed_exceptions_and_timeouts_on_a_real_server(servers, home_env, which):
    server = start(servers, which, sim("focus"), env=home_env)

    async def body():
        async with Client("127.0.0.1", server.port, define_timeout=0.5) as client:
            await connect_all(client, FOCUSER)
            await client.wait_property(FOCUSER, "ABS_FOCUS_POSITION", WAIT)
            position = client[FOCUSER]["ABS_FOCUS_POSITION"]["FOCUS_ABSOLUTE_POSITION"]
            with pytest.raises(UnknownDevice):
                await client.set("Nobody", "ABS_FOCUS_POSITION", FOCUS_ABSOLUTE_POSITION=1)
            with pytest.raises(UnknownProperty):
                await client.set(FOCUSER, "NO_SUCH_THING", FOCUS_ABSOLUTE_POSITION=1)
            with pytest.raises(UnknownMember):
                await client.set(FOCUSER, "ABS_FOCUS_POSITION", NOPE=1)
            with pytest.raises(ValueRefused, match="outside"):
                await client.set(FOCUSER, "ABS_FOCUS_POSITION", FOCUS_ABSOLUTE_POSITION=position.max + 1)
            with pytest.raises(ReadOnly):
                await client.set(FOCUSER, "DRIVER_INFO", DRIVER_NAME="x")
            with pytest.raises(IndiTimeout, match="FOCUS_MOTION to be Alert"):
                await client.wait_state(FOCUSER, "FOCUS_MOTION", "Alert", 0.5)
            with pytest.raises(IndiTimeout, match="device 'Nobody'"):
                await client.wait_device("Nobody", 0.5)
            assert position.value != position.max + 1
            # And a value in range goes through, with the answer awaited.
            target = min(position.max, position.value + 100)
            moved = await client.set(FOCUSER, "ABS_FOCUS_POSITION", FOCUS_ABSOLUTE_POSITION=target, wait=True,
                                     timeout=WAIT)
            assert moved.state == "Ok" and moved["FOCUS_ABSOLUTE_POSITION"].value == target

    run(body())


def test_reconnects_after_the_server_restarts_and_a_pending_wait_completes(servers, home_env):
    port = free_port()
    first = servers.ours("-p", str(port), sim("telescope"), env=home_env)

    async def body():
        async with Client("127.0.0.1", port) as client:
            await connect_all(client, SCOPE)
            scope = client[SCOPE]
            client.receive_blob(CAMERA, "CCD1")        # a BLOB setting, to be re-sent after reconnecting
            pending = asyncio.create_task(client.wait_device(FOCUSER, 60))
            coords = asyncio.create_task(client.wait_state(FOCUSER, "ABS_FOCUS_POSITION", "Ok", 60))
            await client.ping()
            await asyncio.get_running_loop().run_in_executor(None, first.stop)
            await client.wait_for(lambda: scope.gone and not client.connected, WAIT, what="the devices gone")
            assert client.devices == {} and not pending.done()
            second = servers.ours("-v", "-p", str(port), sim("telescope"), sim("focus"), env=home_env)
            device = await asyncio.wait_for(pending, WAIT)
            assert device.name == FOCUSER and await asyncio.wait_for(coords, WAIT)
            await client.wait_property(SCOPE, "EQUATORIAL_EOD_COORD", WAIT)
            assert client[SCOPE] is scope and not scope.gone, "the same Device object, rebuilt"
            assert client.connections == 2
            await client.ping()
            second.wait_log(r"read <enableBLOB device='CCD Simulator' name='CCD1'>", timeout=WAIT)

    run(body())


@BOTH
def test_connects_over_a_local_socket(servers, home_env, which):
    name = f"/tmp/indi-client-test-{uuid.uuid4().hex[:8]}"
    if which == "ours":
        server = servers.ours("-u", name, sim("focus"), env=home_env)
    else:
        server = servers.reference(sim("focus"), env=home_env)
        name = server.args[server.args.index("-u") + 1]
    server.wait_log(r"listening on local domain")   # after the TCP port is logged

    async def body():
        for path in (name, "@" + name.lstrip("@")):
            async with Client(unix=path) as client:
                await client.wait_device(FOCUSER, WAIT)
                assert "local socket" in client.address

    run(body())
    assert server.proc.poll() is None


def test_connects_with_tls(servers, home_env, tmp_path):
    """TLS to a terminating proxy in front of our server (indiserver itself speaks plain TCP)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                           str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext",
                           "subjectAltName=DNS:localhost"], capture_output=True, timeout=60)
    if made.returncode != 0:
        pytest.skip(f"openssl cannot make a certificate: {made.stderr.decode()[-300:]}")
    server = servers.ours(sim("focus"), env=home_env)

    async def body():
        async def relay(reader, writer):
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", server.port)

            async def pipe(src, dst):
                try:
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
                finally:
                    dst.close()
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)

        server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_side.load_cert_chain(cert, key)
        proxy = await asyncio.start_server(relay, "127.0.0.1", 0, ssl=server_side)
        port = proxy.sockets[0].getsockname()[1]
        trusted = ssl.create_default_context(cafile=str(cert))
        try:
            async with Client("localhost", port, ssl=trusted) as client:
                await client.wait_device(FOCUSER, WAIT)
                await client.ping()
            with pytest.raises(NotConnected, match="certificate"):
                async with Client("localhost", port, ssl=ssl.create_default_context()):
                    pass
        finally:
            proxy.close()

    run(body())


@pytest.mark.skipif(not have_reference(), reason="Debian's indi-bin is not installed")
def test_blocking_client_in_a_plain_script(servers, home_env, tmp_path):
    """The blocking API from a script: values set and read back, exceptions raised in the caller."""
    server = servers.reference(sim("focus"), env=home_env)
    script = tmp_path / "focus.py"
    script.write_text(f"""
import sys
from indi.client import BlockingClient, IndiTimeout, ValueRefused
with BlockingClient("127.0.0.1", {server.port}) as indi:
    indi.connect_device("{FOCUSER}", timeout=30)
    prop = indi.set("{FOCUSER}", "ABS_FOCUS_POSITION", FOCUS_ABSOLUTE_POSITION=1000, wait=True, timeout=30)
    print("position", prop["FOCUS_ABSOLUTE_POSITION"].value)
    try:
        indi.set("{FOCUSER}", "ABS_FOCUS_POSITION", FOCUS_ABSOLUTE_POSITION=-1)
    except ValueRefused as exc:
        print("refused", exc)
    try:
        indi.wait_state("{FOCUSER}", "ABS_FOCUS_POSITION", "Alert", timeout=0.2)
    except IndiTimeout as exc:
        print("timeout", exc)
    print("devices", sorted(indi.devices))
""")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "position 1000.0", lines
    assert lines[1].startswith("refused ") and "outside" in lines[1], lines
    assert lines[2].startswith("timeout ") and "Alert" in lines[2], lines
    assert lines[3] == f"devices ['{FOCUSER}']", lines
