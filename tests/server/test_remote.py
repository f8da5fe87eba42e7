"""Remote servers (-r HOST:PORT, [device]@host:port): unreachable, late, lost and back again.

The remote is our own server on an explicit port, running a puppet driver; the puppets answer
every getProperties meant for them with their definitions, from a thread, as real drivers do.
A client of the local server connects once and asks once: everything after that must come to it
without it doing anything.
"""

from __future__ import annotations

import signal
import threading

from helpers import DriverPuppet, free_port

WAIT = 30.0
LOCAL = "Local Puppet"
REMOTE = "Remote Puppet"


def definition(device: str, value: int = 1) -> str:
    return (f"<defNumberVector device='{device}' name='prop1' label='Prop' group='Main' state='Idle' perm='rw' "
            f"timeout='0'><defNumber name='num1' format='%g' min='0' max='100' step='1'>{value}</defNumber>"
            f"</defNumberVector>\n")


class Responder:
    """A puppet driver that answers each getProperties for its device (or for all) with its definition."""

    def __init__(self, puppet: DriverPuppet, device: str) -> None:
        self.puppet = puppet
        self.device = device
        self.requests: list[dict[str, str]] = []
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            while not self.puppet.eof:
                try:
                    frame = self.puppet.next(timeout=0.5)
                except AssertionError:
                    continue
                if frame.tag == "getProperties":
                    self.requests.append(frame.attrs)
                    if frame.attrs.get("device", "") in ("", self.device):
                        self.puppet.send(definition(self.device))
        except OSError:
            pass
        finally:
            self.done.set()


def start_remote(servers, relay, port: int):
    """Our server on ``port`` with one puppet driver defining REMOTE."""
    remote = servers.ours("-p", str(port), "--max-restarts", "0", relay.driver, env=relay.env)
    assert remote.port == port
    return remote, Responder(relay.accept(timeout=WAIT), REMOTE)


def test_unreachable_remote_is_retried_and_its_devices_appear_later(servers, relay):
    port = free_port()  # nothing listens there yet
    main = servers.ours("-r", f"127.0.0.1:{port}", relay.driver, env=relay.env)
    local = Responder(relay.accept(timeout=WAIT), LOCAL)
    main.wait_log(rf"cannot connect to 127\.0\.0\.1:{port}\b.*retrying", timeout=WAIT)

    # Still serving its own driver.
    client = main.connect()
    client.send("<getProperties version='1.7'/>\n")
    client.expect("defNumberVector", timeout=WAIT, device=LOCAL, name="prop1")
    assert main.proc.poll() is None
    assert local.requests

    # The remote appears: its devices reach the client that is already there, unasked.
    start = len(main.lines)
    remote, _ = start_remote(servers, relay, port)
    main.wait_log(rf"connected to 127\.0\.0\.1:{port}\b", timeout=WAIT, start=start)
    got = client.expect("defNumberVector", timeout=WAIT, device=REMOTE, name="prop1")
    assert b">1</defNumber>" in got.raw
    # And they work both ways: a new request from the same client reaches the remote puppet.
    client.send(f"<getProperties version='1.7' device='{REMOTE}'/>\n")
    client.expect("defNumberVector", timeout=WAIT, device=REMOTE, name="prop1")
    assert main.proc.poll() is None and remote.proc.poll() is None


def test_lost_remote_deletes_its_devices_and_they_come_back(servers, relay):
    port = free_port()
    remote, _ = start_remote(servers, relay, port)
    main = servers.ours("-r", f"127.0.0.1:{port}", relay.driver, env=relay.env)
    Responder(relay.accept(timeout=WAIT), LOCAL)
    main.wait_log(rf"connected to 127\.0\.0\.1:{port}\b", timeout=WAIT)

    client = main.connect()
    client.send("<getProperties version='1.7'/>\n")
    client.expect("defNumberVector", timeout=WAIT, device=REMOTE, name="prop1")

    # The remote server dies without a word.
    start = len(main.lines)
    remote.stop(signal.SIGKILL)
    gone = client.expect("delProperty", timeout=WAIT, device=REMOTE)
    assert "name" not in gone.attrs, gone.attrs  # the whole device
    main.wait_log(rf"connection to 127\.0\.0\.1:{port} lost", timeout=WAIT, start=start)
    # The local device is untouched and the client is still served.
    client.send(f"<getProperties version='1.7' device='{LOCAL}'/>\n")
    before_ping = client.ping(timeout=WAIT)
    assert LOCAL not in [f.attrs.get("device") for f in before_ping if f.tag == "delProperty"]
    assert any(f.tag == "defNumberVector" and f.attrs.get("device") == LOCAL for f in before_ping)
    assert main.proc.poll() is None

    # Started again on the same port: the client gets the definitions again without asking.
    start = len(main.lines)
    again, _ = start_remote(servers, relay, port)
    main.wait_log(rf"connected to 127\.0\.0\.1:{port}\b", timeout=WAIT, start=start)
    client.expect("defNumberVector", timeout=WAIT, device=REMOTE, name="prop1")
    assert main.proc.poll() is None and again.proc.poll() is None


def test_lost_remote_of_one_device_form(servers, relay):
    """The device@host:port form: the same, for a remote that serves one named device."""
    port = free_port()
    remote, _ = start_remote(servers, relay, port)
    main = servers.ours(f"{REMOTE}@127.0.0.1:{port}", relay.driver, env=relay.env)
    Responder(relay.accept(timeout=WAIT), LOCAL)
    main.wait_log(rf"connected to 127\.0\.0\.1:{port}\b", timeout=WAIT)
    client = main.connect()
    client.send("<getProperties version='1.7'/>\n")
    client.expect("defNumberVector", timeout=WAIT, device=REMOTE, name="prop1")

    remote.stop(signal.SIGKILL)
    client.expect("delProperty", timeout=WAIT, device=REMOTE)
    start_remote(servers, relay, port)
    client.expect("defNumberVector", timeout=WAIT, device=REMOTE, name="prop1")
    assert main.proc.poll() is None
