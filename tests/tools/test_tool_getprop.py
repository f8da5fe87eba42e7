"""Our indi_getprop against Debian's: the same lines, messages and exit status for the same arguments.

Against the reference indiserver running the C++ simulators, against scripted servers on a
socketpair (-d), and against our server. See tool_support for how runs are made and compared.
"""

from __future__ import annotations

import base64
import os
import select
import socket
import subprocess
import time
import zlib

import pytest
from tool_support import (
    CAMERA,
    OURS,
    REF,
    SCOPE,
    TELESCOPE_DRIVER,
    assert_same,
    both,
    check_installed,
    connect,
    normalise,
    run,
    start,
)

pytestmark = pytest.mark.peers

GETPROP = "indi_getprop"


@pytest.fixture(autouse=True)
def _installed():
    check_installed()


# ----------------------------------------------------------------------------- command line
@pytest.mark.parametrize("args", [
    ["-p"], ["-t"], ["-d"], ["-h"], ["-x"], ["-p7624", "a.b.c"], ["-1", "--", "a.b.c"],
    ["-d", "3", "-h", "host"], ["-d", "3", "-p", "7624"],
    ["-p", "1", "foo"], ["-p", "1", "a.b"], ["-p", "1", "a..c"], ["-p", "1", ".b.c"], ["-p", "1", "a.b.c", "x"],
    ["-p", "1", "a.b.c"],                      # connect: Connection refused
    ["-h", "nosuchhost.invalid", "a.b.c"],     # gethostbyname: Unknown host
    ["-d", "99", "a.b.c"],                     # Direct fd 99: Bad file descriptor
], ids=lambda args: " ".join(args))
def test_command_line_errors(reference_required, args):
    ref, ours = both(GETPROP, *args)
    assert ref.returncode in (1, 2), ref
    assert_same(ref, ours, f"indi_getprop {' '.join(args)}")


# ------------------------------------------------------------------------ reference server
# Each set of arguments is run by both tools, one after the other, against a reference server with
# the telescope, CCD and focuser simulators (not connected: nothing changes by itself).
LISTINGS = {
    "everything": ([], False),
    "all wildcards": (["*.*.*"], False),
    "device wildcard": ([f"{SCOPE}.*.*"], True),
    "element wildcard": (["-t", "1", "*.CONNECTION.*"], False),
    "attribute keywords": ([f"{SCOPE}.*._STATE", f"{SCOPE}.*._LABEL", f"{SCOPE}.*._PERM", f"{SCOPE}.*._GROUP",
                            f"{SCOPE}.*._TO"], True),
    "timestamps": ([f"{CAMERA}.*._TS"], True),
    "write-only too": (["-w", f"{CAMERA}.*.*"], True),
    "-1 with a wildcard": (["-1", "-t", "1", "*.DRIVER_INFO.DRIVER_EXEC"], False),
}


@pytest.mark.parametrize("name", LISTINGS)
def test_listing_matches_reference(servers, home_env, name):
    args, ordered = LISTINGS[name]
    server = start(servers, home_env)
    ref, ours = both(GETPROP, "-p", str(server.port), *args)
    assert ref.returncode == 0 and len(ref.lines) >= 3, ref
    ref.stdout, ours.stdout = normalise(ref.stdout), normalise(ours.stdout)
    assert_same(ref, ours, name, ordered=ordered)


def test_exact_queries_and_missing_ones(servers, home_env):
    server = start(servers, home_env)
    port = str(server.port)
    cases = [
        ["-1", f"{SCOPE}.TELESCOPE_INFO.TELESCOPE_APERTURE"],       # just the value, at once
        ["-1", f"{CAMERA}.CONNECTION._STATE"],
        [f"{SCOPE}.TELESCOPE_INFO.TELESCOPE_APERTURE"],             # name=value
        [f"{SCOPE}.CONNECTION.CONNECT", f"{CAMERA}.CONNECTION.DISCONNECT", f"{SCOPE}.CONNECTION._LABEL"],
        ["-t", "1", f"{SCOPE}.NO_SUCH_PROPERTY.X"],                 # No ... from localhost:port, 1
        ["-t", "1", f"{SCOPE}.CONNECTION.CONNECT", "Nobody.P.E", f"{SCOPE}.CONNECTION.NOPE"],
        ["-1", "-t", "1", f"{SCOPE}.CONNECTION.NOPE"],
    ]
    for args in cases:
        started = time.monotonic()
        ref, ours = both(GETPROP, "-p", port, *args)
        # Two devices' answers arrive in the order their drivers send them: compare each device's lines.
        assert_same(ref, ours, " ".join(args), ordered=False)
        assert time.monotonic() - started < 8
    # What the missing ones say, for the record.
    ref, _ = both(GETPROP, "-p", port, "-t", "1", f"{SCOPE}.NO_SUCH_PROPERTY.X")
    assert (ref.returncode, ref.stdout, ref.stderr) == (
        1, "", f"No {SCOPE}.NO_SUCH_PROPERTY.X from localhost:{port}\n")
    ref, _ = both(GETPROP, "-p", port, "-1", f"{SCOPE}.TELESCOPE_INFO.TELESCOPE_APERTURE")
    assert ref.stdout == "120\n"


def test_connected_telescope_with_time_varying_values(servers, home_env):
    """Connected, the telescope's clock and right ascension change between the two runs: those
    values (TIME_VARYING) and timestamps are normalised, everything else must be equal."""
    server = start(servers, home_env, TELESCOPE_DRIVER)
    connect(server.port, SCOPE)
    port = str(server.port)
    for args in ([f"{SCOPE}.*.*"], ["-w", f"{SCOPE}.*._PERM"]):
        ref, ours = both(GETPROP, "-p", port, *args)
        assert ref.returncode == 0 and len(ref.lines) > 20, ref
        ref.stdout, ours.stdout = normalise(ref.stdout), normalise(ours.stdout)
        assert_same(ref, ours, " ".join(args))
    assert f"{SCOPE}.MOUNT_TYPE._PERM=wo" in ours.lines  # write-only: listed with -w only
    ref, ours = both(GETPROP, "-p", port, "-1", f"{SCOPE}.CONNECTION.CONNECT")
    assert ref.stdout == ours.stdout == "On\n"


def test_blob_saved_like_reference(servers, home_env, tmp_path):
    """A CCD image: each tool in turn waits for CCD1 (-v says when it has enabled BLOBs), an
    exposure is started, and the image is saved as "CCD Simulator.CCD1.CCD1.fits"."""
    server = start(servers, home_env, TELESCOPE_DRIVER, "/usr/bin/indi_simulator_ccd")
    connect(server.port, CAMERA)
    results = {}
    for which, path in (("reference", REF[GETPROP]), ("ours", OURS[GETPROP])):
        directory = tmp_path / which
        directory.mkdir()
        proc = subprocess.Popen([path, "-v", "-p", str(server.port), "-t", "15", f"{CAMERA}.CCD1.CCD1"],
                                cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines = []
        deadline = time.monotonic() + 15
        while not any(line.startswith(b"sending enableBLOB") for line in lines):
            assert time.monotonic() < deadline, lines
            lines.append(proc.stderr.readline())
        exposure = run(REF["indi_setprop"], "-p", str(server.port), "-n",
                       f"{CAMERA}.CCD_EXPOSURE.CCD_EXPOSURE_VALUE=0.1")
        assert exposure.returncode == 0
        out, err = proc.communicate(timeout=30)
        stderr = b"".join(lines) + err
        files = sorted(os.listdir(directory))
        results[which] = (proc.returncode, out, [line for line in stderr.decode().splitlines()
                                                 if not line.startswith(("sending enableBLOB", "Connected"))], files,
                          [os.path.getsize(directory / f) for f in files])
        data = (directory / f"{CAMERA}.CCD1.CCD1.fits").read_bytes()
        assert data.startswith(b"SIMPLE  ="), data[:80]
    assert results["ours"] == results["reference"]
    assert results["ours"][0] == 0 and results["ours"][3] == [f"{CAMERA}.CCD1.CCD1.fits"]


# ------------------------------------------------------------------ scripted server (-d fd)
def scripted(path: str, args: list[str], stream: bytes, cwd=None, after_request: bytes = b"",
             wait_exit: float = 20) -> tuple[int, bytes, bytes, bytes, bytes]:
    """Run the tool on one end of a socketpair (-d); the other end sends ``stream`` at once and
    ``after_request`` once the tool has written something. Returns exit status, stdout, stderr,
    what the tool sent, and what it left unread."""
    ours_end, server_end = socket.socketpair()
    with ours_end, server_end:
        proc = subprocess.Popen([path, "-d", str(ours_end.fileno()), *args], pass_fds=[ours_end.fileno()],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
        server_end.sendall(stream)
        sent = b""
        if after_request:
            server_end.settimeout(10)
            sent = server_end.recv(65536)
            server_end.sendall(after_request)
        out, err = proc.communicate(timeout=wait_exit)
        server_end.setblocking(False)
        try:
            while chunk := server_end.recv(65536):
                sent += chunk
        except BlockingIOError:
            pass
        ours_end.setblocking(False)
        try:
            unread = ours_end.recv(1 << 20)
        except BlockingIOError:
            unread = b""
    return proc.returncode, out, err, sent, unread


STREAM = (
    b"<defTextVector device='D' name='T' label='A &amp; B' group='G' state='Idle' perm='rw' timeout='0' "
    b"timestamp='2024-01-02T03:04:05'>\n"
    b"  <defText name='plain' label='P'>  a &lt;b&gt; &amp; c &#65;  </defText>\n"
    b"  <defText name='empty' label='E'></defText>\n"
    b"  <defText name='lines'>x\ny</defText>\n</defTextVector>\n"
    b"<defNumberVector device='D' name='N' state='Ok' perm='wo' timeout='60'>\n"
    b"  <defNumber name='n' format='%g' min='0' max='10' step='1'>  3.50  </defNumber>\n</defNumberVector>\n"
    b"<defSwitchVector device='D' name='S' state='Busy' perm='ro' rule='OneOfMany'>"
    b"<defSwitch name='on'>On</defSwitch><defSwitch name='off'>Off</defSwitch></defSwitchVector>\n"
    b"<defLightVector device='D' name='L' state='Alert'><defLight name='l'>Ok</defLight></defLightVector>\n"
    b"<message device='D' message='hello'/>\n"
    b"<setNumberVector device='D' name='N' state='Busy'><oneNumber name='n'>4</oneNumber></setNumberVector>\n"
    b"<setSwitchVector device='D' name='S' state='Ok'><oneSwitch name='on'>Off</oneSwitch></setSwitchVector>\n"
    b"<defTextVector device='E' name='T' perm='rw'><defText name='plain'>other</defText></defTextVector>\n"
)


@pytest.mark.parametrize("args", [
    ["-t", "1"], ["-t", "1", "-w", "D.*.*"], ["-t", "1", "-m", "D.*.*"], ["-t", "1", "-m", "-w", "*.*.*"],
    ["-t", "1", "-vv", "D.*.*"], ["-t", "1", "-v", "D.N.*"],
    ["-t", "1", "D.*._LABEL", "D.*._GROUP", "D.*._STATE", "D.*._PERM", "D.*._TO", "D.*._TS"],
    ["-t", "1", "-m", "D.S._STATE"], ["-1", "D.T.lines"], ["-1", "D.T.plain"], ["-1", "-t", "1", "D.N.n"],
    ["-1", "-w", "D.N.n"], ["D.T.plain", "E.T.plain"], ["-t", "1", "D.T.*", "D.T.plain"],
    ["-t", "1", "*.T.plain"], ["-1", "D.S._STATE"],
], ids=lambda args: " ".join(args))
def test_scripted_stream(reference_required, tmp_path, args):
    """Entities, whitespace, write-only properties, -m updates, attribute keywords, -vv echoes."""
    ref = scripted(REF[GETPROP], args, STREAM)
    ours = scripted(OURS[GETPROP], args, STREAM)
    assert ours[:3] == ref[:3]
    assert ours[3] == ref[3]      # what was sent: getProperties (for one device when it can)
    assert ours[4] == ref[4]      # what was left unread


def test_direct_fd_leaves_what_follows_unread(reference_required):
    """With -d the reference reads unbuffered and exits after the element it needed: the rest is
    for the next program using the descriptor. Ours too."""
    stream = (b"<defTextVector device='D' name='P' perm='rw'><defText name='e'>v1</defText></defTextVector>\n"
              b"<defTextVector device='D' name='Q' perm='rw'><defText name='e'>v2</defText></defTextVector>\n")
    ref = scripted(REF[GETPROP], ["-1", "D.P.e"], stream)
    ours = scripted(OURS[GETPROP], ["-1", "D.P.e"], stream)
    assert ref == ours
    assert ours[:4] == (0, b"v1\n", b"", b"<getProperties version='1.7' device='D'/>\n")
    assert ours[4] == stream[stream.index(b"\n"):]


def blob_stream(data: bytes, fmt: str, compress: bool) -> bytes:
    payload = zlib.compress(data) if compress else data
    enc = base64.b64encode(payload)
    return (b"<setBLOBVector device='D' name='B' state='Ok' timestamp='2024-01-01T00:00:00'>\n"
            b"<oneBLOB name='img' size='%d' format='%s' enclen='%d'>\n%s\n</oneBLOB>\n</setBLOBVector>\n"
            % (len(data), fmt.encode(), len(enc), enc))


BLOB_DEF = (b"<defBLOBVector device='D' name='B' label='Image' group='G' state='Idle' perm='ro'>"
            b"<defBLOB name='img'/></defBLOBVector>\n")


@pytest.mark.parametrize("fmt,compress", [(".fits", False), (".txt.z", True), (".raw.z", False)])
def test_blob_files_and_compression(reference_required, tmp_path, fmt, compress):
    """A defBLOBVector makes the tool send enableBLOB; the setBLOBVector is saved to
    device.property.element.format, decompressed (and the .z dropped) when the format ends in .z.
    Bad zlib data ends with the reference's "uncompress error" and status 2."""
    data = b"hello INDI " * 1000
    results = []
    for which, path in (("reference", REF[GETPROP]), ("ours", OURS[GETPROP])):
        directory = tmp_path / which
        directory.mkdir()
        result = scripted(path, ["-v", "-t", "1", "D.B.*", "D.B._STATE"], BLOB_DEF,
                          after_request=blob_stream(data, fmt, compress), cwd=directory)
        files = {name: (directory / name).read_bytes() for name in os.listdir(directory)}
        results.append((result, files))
    assert results[1] == results[0]
    (status, out, err, sent, _), files = results[1]
    if compress or not fmt.endswith(".z"):
        name = "D.B.img" + (fmt[:-2] if fmt.endswith(".z") else fmt)
        assert status == 0 and out == b"D.B._STATE=Ok\n" and files == {name: data}, (err, files.keys())
        # one enableBLOB per query matching the definition, as the reference sends them
        assert sent == b"<getProperties version='1.7' device='D'/>\n" + \
            b"<enableBLOB device='D' name='B'>Also</enableBLOB>\n" * 2
    else:
        assert status == 2 and b"D.B.img uncompress error -3" in err and not files


def test_progress_bar_only_on_a_terminal(tmp_path):
    """A BLOB that takes over a second: a progress line on stderr when it is a terminal (a pty
    here), erased at the end; nothing at all when stderr is not a terminal."""
    data = os.urandom(240_000)
    stream = blob_stream(data, ".bin", False)
    head, body_end = stream.index(b">\n") + 2, stream.index(b"\n</oneBLOB>")
    for tty in (True, False):
        directory = tmp_path / ("tty" if tty else "pipe")
        directory.mkdir()
        ours_end, server_end = socket.socketpair()
        master, slave = os.openpty() if tty else os.pipe()
        with ours_end, server_end:
            proc = subprocess.Popen([OURS[GETPROP], "-d", str(ours_end.fileno()), "-t", "10", "D.B.img"],
                                    pass_fds=[ours_end.fileno()], stdout=subprocess.PIPE, stderr=slave, cwd=directory)
            os.close(slave)
            server_end.sendall(BLOB_DEF)
            server_end.settimeout(10)
            request = b""
            while b"</enableBLOB>" not in request:
                chunk = server_end.recv(4096)
                assert chunk, request
                request += chunk
            # The BLOB in 20 pieces over about 1.6 s (paced by deadlines, not sleeps).
            server_end.sendall(stream[:head])
            pieces = [stream[i:i + 16000] for i in range(head, body_end, 16000)] + [stream[body_end:]]
            start = time.monotonic()
            for i, piece in enumerate(pieces):
                select.select([], [], [], max(0.0, start + i * 0.08 - time.monotonic()))
                server_end.sendall(piece)
            out = proc.stdout.read()
            assert proc.wait(timeout=20) == 0
        seen = b""
        while select.select([master], [], [], 0.5)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the pty's other end is closed
                break
            if not chunk:
                break
            seen += chunk
        os.close(master)
        assert out == b""
        assert (directory / "D.B.img.bin").read_bytes() == data
        if tty:
            assert b"\rD.B [" in seen and b"% " in seen and b"/320000 bytes" in seen, seen[:200]
            assert seen.endswith(b"\r"), seen[-100:]  # the line is blanked out at the end
        else:
            assert seen == b""


# ---------------------------------------------------------------------------------- our server
def test_against_our_server(servers, home_env):
    server = start(servers, home_env, TELESCOPE_DRIVER, which="ours")
    port = str(server.port)
    for args in ([f"{SCOPE}.*.*"], ["-1", f"{SCOPE}.CONNECTION.DISCONNECT"], ["-t", "1", f"{SCOPE}.NOPE.X"]):
        ref, ours = both(GETPROP, "-p", port, *args)
        ref.stdout, ours.stdout = normalise(ref.stdout), normalise(ours.stdout)
        assert_same(ref, ours, " ".join(args))
    assert ours.returncode == 1 and ours.stderr == f"No {SCOPE}.NOPE.X from localhost:{port}\n"
