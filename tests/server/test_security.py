"""Security beyond the reference server: --listen, --allow, TLS, and data that must never become shell.

Everything runs on loopback: 127.0.0.2 and 127.0.0.3 are addresses of this machine too (Linux routes
all of 127/8 to lo), so a client "from elsewhere" is a socket bound to 127.0.0.2 before it connects.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import ssl
import subprocess

import pytest

from helpers import OUR_SERVER, Peer, our_simulator, wait_until
from indi.client import Client

WAIT = 30.0
CPP_FOCUS = "/usr/bin/indi_simulator_focus"
FOCUSER = "Focuser Simulator"


def focuser() -> str:
    return CPP_FOCUS if os.access(CPP_FOCUS, os.X_OK) else our_simulator("focus")


def connect_from(source: str, port: int, host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(WAIT)
    sock.connect((host, port))
    return sock


def sees_focuser(peer: Peer) -> None:
    peer.send("<getProperties version='1.7'/>\n")
    peer.expect("defNumberVector", WAIT, device=FOCUSER)
    peer.ping(WAIT)


def closed_at_once(sock: socket.socket) -> bool:
    """True if the server closes the connection without a byte (EOF or reset), whatever we send."""
    try:
        sock.sendall(b"<getProperties version='1.7'/>\n")
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except BrokenPipeError:
        return True


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def run_server(*args: str, timeout: float = WAIT) -> subprocess.CompletedProcess:
    return subprocess.run([OUR_SERVER, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


# ------------------------------------------------------------------------------------------ --allow
def test_allow_refuses_a_client_from_outside_at_once_and_serves_one_inside(servers):
    server = servers.ours("--allow", "127.0.0.1/32", focuser())
    inside = server.connect()
    sees_focuser(inside)
    baseline = open_fds(server.proc.pid)

    outside = connect_from("127.0.0.2", server.port)
    local_port = outside.getsockname()[1]
    assert closed_at_once(outside)
    line = server.wait_log(rf"refused connection from 127\.0\.0\.2:{local_port}\b", WAIT).string
    assert "--allow 127.0.0.1/32" in line
    # Many more from there: each is closed, the log does not fill up, nothing leaks.
    for _ in range(50):
        assert closed_at_once(connect_from("127.0.0.2", server.port))
    wait_until(lambda: open_fds(server.proc.pid) == baseline, timeout=WAIT, what="descriptors back to baseline")
    assert len(re.findall(r"refused connection from 127\.0\.0\.2", server.log_text())) == 1
    assert not re.search(r"Client \d+: new arrival from 127\.0\.0\.2", server.log_text())

    # The one inside is still served, and so is a new one from 127.0.0.1.
    inside.ping(WAIT)
    again = Peer(connect_from("127.0.0.1", server.port))
    sees_focuser(again)


def test_allow_takes_several_networks_and_single_addresses(servers):
    server = servers.ours("--allow", "10.0.0.0/8", "--allow", "127.0.0.3", focuser())
    sees_focuser(Peer(connect_from("127.0.0.3", server.port)))
    assert closed_at_once(connect_from("127.0.0.1", server.port))
    server.wait_log(r"refused connection from 127\.0\.0\.1:\d+", WAIT)


@pytest.mark.parametrize("value", ["10.0.0.0/33", "banana", "300.1.2.3", ""])
def test_bad_allow_value_is_one_line_and_exit_2(value):
    done = run_server("--allow", value, focuser())
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--allow" in lines[0] and "192.168.1.0/24" in lines[0], done.stderr


# ----------------------------------------------------------------------------------------- --listen
def test_listen_accepts_on_that_address_only(servers):
    server = servers.ours("--listen", "127.0.0.1", focuser())
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", server.port), timeout=WAIT)
    sees_focuser(server.connect())


def test_listen_twice_listens_on_both_addresses_on_one_port(servers):
    server = servers.ours("--listen", "127.0.0.1", "--listen", "127.0.0.3", focuser())
    sees_focuser(Peer.connect(server.port, "127.0.0.3"))
    sees_focuser(Peer.connect(server.port, "127.0.0.1"))
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", server.port), timeout=WAIT)


def test_listen_on_an_address_that_is_not_ours_is_one_line_and_exit_1():
    done = run_server("--listen", "192.0.2.1", "-p", "0", focuser())
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "indiserver: cannot listen on 192.0.2.1 port 0: Cannot assign requested address: 192.0.2.1 is not an "
        "address of this machine (see --listen)"]


# ---------------------------------------------------------------------------------------------- TLS
@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """(certificate, key) for localhost and 127.0.0.1, made by openssl."""
    directory = tmp_path_factory.mktemp("tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    try:
        made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                               "-out", str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext",
                               "subjectAltName=DNS:localhost,IP:127.0.0.1"], capture_output=True, timeout=60)
    except FileNotFoundError:
        pytest.skip("openssl is not installed")
    if made.returncode != 0:
        pytest.skip(f"openssl cannot make a certificate: {made.stderr.decode()[-300:]}")
    return str(cert), str(key)


def tls_server(servers, certificate, *args, env=None):
    cert, key = certificate
    server = servers.ours("--tls-cert", cert, "--tls-key", key, "--tls-port", "0", *args, env=env)
    server.tls_port = int(server.wait_log(r"listening to TLS port (\d+)").group(1))
    return server


def tls_peer(certificate, port: int, source: str = "127.0.0.1") -> Peer:
    context = ssl.create_default_context(cafile=certificate[0])
    sock = context.wrap_socket(connect_from(source, port), server_hostname="localhost")
    return Peer(sock, f"tls:{port}")


def test_tls_client_gets_definitions_while_plain_clients_still_work(servers, certificate):
    server = tls_server(servers, certificate, focuser())
    secure = tls_peer(certificate, server.tls_port)
    sees_focuser(secure)
    assert secure.sock.version() in ("TLSv1.2", "TLSv1.3")
    server.wait_log(r"Client 1: new arrival from 127\.0\.0\.1:\d+ over TLSv1\.[23] - welcome!", WAIT)
    plain = server.connect()
    sees_focuser(plain)
    # What the TLS client sends is routed as any client's: echoed to the other interested client.
    secure.send(f"<newNumberVector device='{FOCUSER}' name='FOCUS_MAX'><oneNumber name='FOCUS_MAX_VALUE'>90000"
                f"</oneNumber></newNumberVector>\n")
    got = plain.expect("newNumberVector", WAIT, device=FOCUSER, name="FOCUS_MAX")
    assert b"90000" in got.raw
    secure.ping(WAIT)


def test_our_client_library_connects_over_tls(servers, certificate):
    server = tls_server(servers, certificate, focuser())
    trusted = ssl.create_default_context(cafile=certificate[0])

    async def body():
        async with Client("localhost", server.tls_port, ssl=trusted) as client:
            await client.wait_device(FOCUSER, WAIT)
            await client.ping()

    asyncio.run(asyncio.wait_for(body(), WAIT * 2))


def test_plain_client_on_the_tls_port_is_closed_with_a_log_line_and_nothing_leaks(servers, certificate):
    server = tls_server(servers, certificate, focuser())
    plain = server.connect()
    sees_focuser(plain)
    sees_focuser(tls_peer(certificate, server.tls_port))   # (uvloop keeps one spare descriptor from then on)
    wait_until(lambda: "Client 2: shut down complete" in server.log_text(), timeout=WAIT, what="TLS client gone")
    baseline = open_fds(server.proc.pid)
    wrong = Peer.connect(server.tls_port)
    wrong.send("<getProperties version='1.7'/>\n")
    wrong.wait_closed(WAIT)
    server.wait_log(r"TLS client 127\.0\.0\.1:\d+: handshake failed: .*: closing", WAIT)
    for _ in range(3):        # and TLS clients that come and go
        sees_focuser(tls_peer(certificate, server.tls_port))
    wait_until(lambda: open_fds(server.proc.pid) == baseline, timeout=WAIT, what="descriptors back to baseline")
    plain.ping(WAIT)


def test_allow_applies_to_the_tls_port_before_any_handshake(servers, certificate):
    server = tls_server(servers, certificate, "--allow", "127.0.0.1/32", focuser())
    outside = connect_from("127.0.0.2", server.tls_port)
    assert closed_at_once(outside)
    server.wait_log(r"refused connection from 127\.0\.0\.2:\d+", WAIT)
    assert "handshake" not in server.log_text()
    sees_focuser(tls_peer(certificate, server.tls_port))


def test_big_blob_through_tls_and_a_tls_client_that_never_reads_is_dropped(servers, certificate, relay):
    # -m limits the drivers' memory too: leave room for the Python relay driver.
    server = tls_server(servers, certificate, "-m", "24", "--max-restarts", "0", relay.driver, env=relay.env)
    driver = relay.accept()
    driver.expect("getProperties")
    driver.define_blob("cam")
    reader = tls_peer(certificate, server.tls_port)
    reader.send("<getProperties version='1.7'/>\n<enableBLOB device='cam'>Also</enableBLOB>\n")
    driver.expect("getProperties")
    driver.define_blob("cam")
    reader.expect("defBLOBVector", WAIT, device="cam")
    sleeper = tls_peer(certificate, server.tls_port)
    sleeper.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sleeper.send("<getProperties version='1.7'/>\n<enableBLOB device='cam'>Also</enableBLOB>\n")
    sleeper.ping(WAIT)
    payload = "QUJD" * (2 << 20)    # 8 MB of base64
    for _ in range(6):
        driver.send_blob("cam", data=payload, size=6 << 20)
        blob = reader.expect("setBLOBVector", WAIT, device="cam")
        assert len(blob.raw) > 8 << 20
    server.wait_log(r"Client 2: \d+ bytes behind .*: shutting down", WAIT)
    reader.ping(WAIT)
    assert server.proc.poll() is None

    # A clean exit with TLS clients connected.
    server.proc.send_signal(signal.SIGTERM)
    assert server.wait_exit(WAIT) == 0
    assert "Traceback" not in server.log_text()


@pytest.mark.parametrize("args, status, needle", [
    (["--tls-cert", "/nonexistent/cert.pem"], 1, "cannot read TLS certificate /nonexistent/cert.pem: No such file"),
    (["--tls-key", "/nonexistent/key.pem"], 2, "--tls-key needs --tls-cert FILE"),
    (["--tls-port", "7700"], 2, "--tls-port needs --tls-cert FILE"),
    (["--tls-cert", "{cert}"], 1, "no private key in {cert}: give it with --tls-key FILE"),
    (["--tls-cert", "{key}", "--tls-key", "{key}"], 1, "is not a PEM certificate"),
    (["--tls-cert", "{cert}", "--tls-key", "{cert}"], 1, "is not a PEM private key"),
])
def test_tls_mistakes_are_one_line_and_a_non_zero_exit(certificate, args, status, needle):
    cert, key = certificate
    args = [a.format(cert=cert, key=key) for a in args]
    done = run_server(*args, focuser())
    assert done.returncode == status, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle.format(cert=cert, key=key) in lines[0], done.stderr


# ------------------------------------------------------------------------- data, never shell
def test_fifo_lines_with_shell_syntax_are_data(servers, relay, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    marker = tmp_path / "PWNED"
    server = servers.ours("--fifo", str(fifo), env=relay.env)
    lines = [f'start "x; touch {marker}"', f"start $(touch {marker})", f"start `touch {marker}`",
             f"start x|touch {marker}", f"start indi_x -n \"$(touch {marker})\"", f"start {marker}*",
             f"start indi_x -c \"{marker}\x00\"", f"stop \"a; touch {marker}\""]
    with open(fifo, "w") as f:
        for line in lines:
            f.write(line + "\n")
        # Data in the environment of a driver that does start: a device name full of shell syntax.
        f.write(f'start {relay.driver} -n "Dev $(touch {marker}); `touch {marker}` | touch {marker}"\n')
        f.write("start fifo-sentinel-driver\n")
    server.wait_log(r"FIFO: driver fifo-sentinel-driver not found", WAIT)
    puppet = relay.accept(WAIT)
    environ = open(f"/proc/{puppet.pid}/environ", "rb").read().split(b"\0")
    assert f"INDIDEV=Dev $(touch {marker}); `touch {marker}` | touch {marker}".encode() in environ
    text = server.log_text()
    assert "NUL character" in text
    assert not marker.exists(), "a FIFO line ran a shell command"
    assert server.proc.poll() is None and "Traceback" not in text


def test_config_file_lines_with_shell_syntax_are_data(tmp_path):
    marker = tmp_path / "PWNED"
    config = tmp_path / "indi.conf"
    config.write_text(f"-v\n{focuser()}; touch {marker}\n")
    done = run_server("-c", str(config))
    assert done.returncode == 1
    assert f"driver {focuser()}; not found" in done.stderr, done.stderr
    assert not marker.exists()


# ------------------------------------------------------------------------- CCD upload directory
@pytest.fixture
def upload_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("INDI_UPLOAD_DIRS", raising=False)
    return home


def test_upload_directory_rule(upload_home, tmp_path, monkeypatch):
    from indi.simulators.ccdfiles import check_upload_dir, upload_name

    inside = upload_home / "images"
    assert check_upload_dir(str(inside)) == inside
    assert check_upload_dir("~/images") == inside
    assert check_upload_dir("images/M42") == upload_home / "images" / "M42"   # relative: from home
    assert check_upload_dir(str(upload_home)) == upload_home
    for bad, why in [("/etc/cron.d", "outside"), (str(tmp_path / "elsewhere"), "outside"), ("/", "outside"),
                     ("~/../elsewhere", "'..'"), (f"{upload_home}/images/../../x", "'..'"), ("", "empty"),
                     (str(upload_home) + "-twin", "outside")]:
        with pytest.raises(ValueError, match=re.escape(why)):
            check_upload_dir(bad)
    # A link inside home that points out is outside.
    (upload_home / "out").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="outside"):
        check_upload_dir(str(upload_home / "out" / "x"))
    with pytest.raises(ValueError, match="outside"):
        upload_name(str(upload_home / "out"), "IMAGE_XXX", ".fits", "now")
    assert not list(tmp_path.glob("IMAGE*"))
    # Whoever starts the server may allow more.
    monkeypatch.setenv("INDI_UPLOAD_DIRS", f"/nonexistent:{tmp_path / 'data'}")
    assert check_upload_dir(str(tmp_path / "data" / "night1")) == tmp_path / "data" / "night1"
    with pytest.raises(ValueError, match="INDI_UPLOAD_DIRS"):
        check_upload_dir("/etc")


def test_ccd_simulator_refuses_an_upload_directory_outside_home_and_tells_the_client(servers, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home))
    env.pop("INDI_UPLOAD_DIRS", None)
    server = servers.ours(our_simulator("ccd"), env=env)
    client = server.connect()
    client.send("<getProperties version='1.7' device='CCD Simulator'/>\n")
    defined = client.expect("defTextVector", WAIT, device="CCD Simulator", name="UPLOAD_SETTINGS")
    assert str(home).encode() in defined.raw

    def set_dir(directory: str):
        client.send(f"<newTextVector device='CCD Simulator' name='UPLOAD_SETTINGS'><oneText name='UPLOAD_DIR'>"
                    f"{directory}</oneText><oneText name='UPLOAD_PREFIX'>IMG_XXX</oneText></newTextVector>\n")
        seen = []
        while True:
            frame = client.next(WAIT)
            if frame.tag == "message":
                seen.append(frame.attrs["message"])
            if frame.tag == "setTextVector" and frame.attrs.get("name") == "UPLOAD_SETTINGS":
                return frame, seen

    outside = tmp_path / "outside"
    for bad in (str(outside), "/etc", f"{home}/../outside"):
        answer, messages = set_dir(bad)
        assert answer.attrs["state"] == "Alert"
        assert str(home).encode() in answer.raw and bad.encode() not in answer.raw    # unchanged
        assert any("Upload directory refused" in m for m in messages), messages
    answer, _ = set_dir(f"{home}/images")
    assert answer.attrs["state"] == "Ok" and f"{home}/images".encode() in answer.raw
    assert not outside.exists()


def test_our_sources_never_start_a_shell():
    """Every process the project starts is started from an argument list (the audit, kept true)."""
    root = os.path.join(os.path.dirname(__file__), "..", "..", "src", "indi")
    offenders = []
    pattern = re.compile(r"shell\s*=\s*True|os\.system\(|os\.popen\(|create_subprocess_shell|"
                         r"""["'](?:/bin/)?(?:ba)?sh["']\s*,\s*["']-c["']""")
    for directory, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                with open(path, encoding="utf-8") as f:
                    for number, line in enumerate(f, 1):
                        if pattern.search(line):
                            offenders.append(f"{os.path.relpath(path, root)}:{number}: {line.strip()}")
    assert offenders == []



def test_a_fifo_anyone_may_write_is_warned_about_and_the_status_socket_is_private(servers, relay, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    os.chmod(fifo, 0o666)
    status = tmp_path / "status.sock"
    server = servers.ours("--fifo", str(fifo), "--status", str(status), env=relay.env)
    server.wait_log(rf"warning: FIFO {re.escape(str(fifo))} is writable by every user .*chmod o-w", WAIT)
    wait_until(status.exists, timeout=WAIT, what="status socket")
    assert os.stat(status).st_mode & 0o777 == 0o600
