"""Our indi_setprop against Debian's: for the same arguments, the same messages and exit status, the
same bytes to the server, and the same effect on the device (seen with Debian's indi_getprop).

Each case is run by the reference first and then by ours, the device being put back in the same
state before each run (with Debian's indi_setprop, typed, and indi_eval -w).
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass

import pytest
from tool_support import (
    OURS,
    REF,
    SCOPE,
    TELESCOPE_DRIVER,
    SilentListener,
    assert_same,
    both,
    check_installed,
    connect,
    normalise,
    run,
    settle,
    start,
    wait_eval,
)

pytestmark = pytest.mark.peers

SETPROP = "indi_setprop"


@pytest.fixture(autouse=True)
def _installed():
    check_installed()


# ----------------------------------------------------------------------------- command line
@pytest.mark.parametrize("args", [
    [], ["-p"], ["-t"], ["-d"], ["-h"], ["-q"], ["-x"], ["-d", "3", "-h", "x"], ["-d", "3", "-p", "1"],
    ["foo"], ["a.b"], ["a.b.c"], ["-vn", "a.b.c=1"], ["-n", "a.b.c=1", "-v"], ["-n", "a.b.c=1", "-s"],
    ["-n", "a.b.c1;c2=1"], ["-n", "a.b.c1;c2=1;2;3"], ["-n", "a.b.c1=1;c2"], ["-n", "a.b.=1"], ["-n", "a.b.q="],
    ["-n", "a.b.c=1;"], ["-tn", "5", "a.b.c=1"], ["-n", "-v", "a.b.c=1"],
    ["-p", "1", "a.b.c=1"],                    # connect: Connection refused
    ["-h", "nosuchhost.invalid", "a.b.c=1"],   # gethostbyname: Success (sic)
], ids=lambda args: " ".join(args) or "no arguments")
def test_command_line_errors(reference_required, args):
    ref, ours = both(SETPROP, *args)
    assert ref.returncode == 2, ref
    assert_same(ref, ours, f"indi_setprop {' '.join(args)}")


# ------------------------------------------------------------------- the bytes sent (-d fd)
def scripted(path: str, args: list[str], stream: bytes) -> tuple[int, bytes, bytes, bytes]:
    """The tool on one end of a socketpair whose other end has sent ``stream``; returns its exit
    status, stdout, stderr and everything it sent."""
    ours_end, server_end = socket.socketpair()
    with ours_end, server_end:
        proc = subprocess.Popen([path, "-d", str(ours_end.fileno()), *args], pass_fds=[ours_end.fileno()],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        server_end.sendall(stream)
        out, err = proc.communicate(timeout=20)
        ours_end.shutdown(socket.SHUT_WR)
        sent = b""
        server_end.settimeout(5)
        while chunk := server_end.recv(65536):
            sent += chunk
    return proc.returncode, out, err.replace(path.encode(), b"indi_setprop"), sent


STREAM = (
    b"<defNumberVector device='D' name='N' perm='rw' state='Idle'>"
    b"<defNumber name='a' format='%g' min='0' max='0' step='0'>1</defNumber></defNumberVector>\n"
    # The same property again, now with both elements: a spec naming both is sent after this one.
    b"<defNumberVector device='D' name='N' perm='rw' state='Idle'>"
    b"<defNumber name='a' format='%g' min='0' max='0' step='0'>1</defNumber>"
    b"<defNumber name='b' format='%g' min='0' max='0' step='0'>2</defNumber></defNumberVector>\n"
    b"<defSwitchVector device='D' name='S' perm='rw' rule='OneOfMany' state='Idle'>"
    b"<defSwitch name='on'>Off</defSwitch><defSwitch name='off'>On</defSwitch></defSwitchVector>\n"
    b"<defTextVector device='D' name='T' perm='wo' state='Idle'><defText name='t'>x</defText></defTextVector>\n"
    b"<defTextVector device='D' name='R' perm='ro' state='Idle'><defText name='t'>x</defText></defTextVector>\n"
    b"<defBLOBVector device='D' name='B' perm='rw' state='Idle'><defBLOB name='b'/></defBLOBVector>\n"
)


@pytest.mark.parametrize("args", [
    ["D.N.a=5"], ["D.N.a;b=5;6"], ["D.N.b=7;a=8"], ["-v", "D.S.on=On", "D.T.t=hello <b>"], ["-vv", "D.N.a=1:30:00"],
    ["-t", "1", "D.N.c=1"], ["-t", "1", "D.N.a;c=1;2"], ["-v", "D.R.t=y"], ["-t", "1", "D.B.b=x"],
    ["-n", "D.N.a=5", "-s", "D.S.on=On", "-x", "D.T.t=a b"], ["-x", "D.T.t=a;b"],
    ["-nv", "X.Y.z=1", "-s", "X.Y.on;off=On;Off"],
    ["-n", "D.N.a=5", "D.S.on=On"], ["-vvv", "D.S.off=On"],
], ids=lambda args: " ".join(args))
def test_scripted_definitions(reference_required, args):
    """What is sent for each definition seen, typed specs sent blind, read-only and unknown ones."""
    ref = scripted(REF[SETPROP], args, STREAM)
    ours = scripted(OURS[SETPROP], args, STREAM)
    assert ours == ref


# ------------------------------------------------------------------ effect on the simulator
@dataclass
class Case:
    args: list[str]           # the arguments given to both tools (after -p port)
    reset: list[str]          # typed specs putting the device back as it was, for Debian's indi_setprop
    before: str               # indi_eval expression true once it is back
    after: str                # indi_eval expression true once the setting took effect ("" if none does)
    check: list[str]          # elements whose values (indi_getprop -1) must be the same after either tool


def P(rest: str) -> str:
    return f"{SCOPE}.{rest}"


def E(rest: str) -> str:
    return f'"{SCOPE}.{rest}"'


CASES = {
    "number": Case([P("TELESCOPE_INFO.TELESCOPE_APERTURE=150")],
                   ["-n", P("TELESCOPE_INFO.TELESCOPE_APERTURE=120")],
                   E("TELESCOPE_INFO.TELESCOPE_APERTURE") + "==120", E("TELESCOPE_INFO.TELESCOPE_APERTURE") + "==150",
                   [P("TELESCOPE_INFO.TELESCOPE_APERTURE"), P("TELESCOPE_INFO.TELESCOPE_FOCAL_LENGTH")]),
    "sexagesimal, names then values": Case(
        [P("GEOGRAPHIC_COORD.LAT;LONG;ELEV=10:30:00;20:15;100")],
        ["-n", P("GEOGRAPHIC_COORD.LAT;LONG;ELEV=1;1;1")],  # (the mount ignores 0, 0)
        f'{E("GEOGRAPHIC_COORD.LAT")}==1 && {E("GEOGRAPHIC_COORD.ELEV")}==1',
        f'{E("GEOGRAPHIC_COORD.LAT")}==10.5 && {E("GEOGRAPHIC_COORD.LONG")}==20.25 && '
        f'{E("GEOGRAPHIC_COORD.ELEV")}==100',
        [P("GEOGRAPHIC_COORD.LAT"), P("GEOGRAPHIC_COORD.LONG"), P("GEOGRAPHIC_COORD.ELEV")]),
    "sexagesimal, name=value pairs": Case(
        [P("GEOGRAPHIC_COORD.LAT=-5:30;LONG=30:00:36;ELEV=5")],
        ["-n", P("GEOGRAPHIC_COORD.LAT;LONG;ELEV=1;1;1")],  # (the mount ignores 0, 0)
        f'{E("GEOGRAPHIC_COORD.LAT")}==1 && {E("GEOGRAPHIC_COORD.ELEV")}==1',
        f'{E("GEOGRAPHIC_COORD.LAT")}==-5.5 && abs({E("GEOGRAPHIC_COORD.LONG")}-30.01)<1e-9',
        [P("GEOGRAPHIC_COORD.LAT"), P("GEOGRAPHIC_COORD.LONG"), P("GEOGRAPHIC_COORD.ELEV")]),
    "switch": Case([P("TELESCOPE_SLEW_RATE.1x=On")], ["-s", P("TELESCOPE_SLEW_RATE.3x=On")],
                   E("TELESCOPE_SLEW_RATE.3x") + "==1", E("TELESCOPE_SLEW_RATE.1x") + "==1",
                   [P("TELESCOPE_SLEW_RATE.1x"), P("TELESCOPE_SLEW_RATE.3x")]),
    "typed -x -s -n": Case(
        ["-x", P("ACTIVE_DEVICES.ACTIVE_DOME=My dome"), "-s", P("DEBUG.ENABLE=On"),
         "-n", P("TELESCOPE_INFO.TELESCOPE_FOCAL_LENGTH=1000")],
        ["-x", P("ACTIVE_DEVICES.ACTIVE_DOME=Dome Simulator"), "-s", P("DEBUG.DISABLE=On"),
         "-n", P("TELESCOPE_INFO.TELESCOPE_FOCAL_LENGTH=900")],
        f'{E("DEBUG.DISABLE")}==1 && {E("TELESCOPE_INFO.TELESCOPE_FOCAL_LENGTH")}==900',
        f'{E("DEBUG.ENABLE")}==1 && {E("TELESCOPE_INFO.TELESCOPE_FOCAL_LENGTH")}==1000',
        [P("ACTIVE_DEVICES.ACTIVE_DOME"), P("DEBUG.ENABLE"), P("TELESCOPE_INFO.TELESCOPE_FOCAL_LENGTH")]),
    "several specs, verbose": Case(
        ["-v", P("TELESCOPE_INFO.TELESCOPE_APERTURE;GUIDER_APERTURE=130;60"), P("TELESCOPE_SLEW_RATE.2x=On")],
        ["-n", P("TELESCOPE_INFO.TELESCOPE_APERTURE;GUIDER_APERTURE=120;120"), "-s", P("TELESCOPE_SLEW_RATE.3x=On")],
        f'{E("TELESCOPE_INFO.GUIDER_APERTURE")}==120 && {E("TELESCOPE_SLEW_RATE.3x")}==1',
        f'{E("TELESCOPE_INFO.GUIDER_APERTURE")}==60 && {E("TELESCOPE_SLEW_RATE.2x")}==1',
        [P("TELESCOPE_INFO.TELESCOPE_APERTURE"), P("TELESCOPE_INFO.GUIDER_APERTURE"), P("TELESCOPE_SLEW_RATE.2x")]),
    "unknown property": Case(["-t", "1", P("NO_SUCH_PROPERTY.X=1")], [], "", "", []),
    "unknown element": Case(["-t", "1", P("TELESCOPE_INFO.TELESCOPE_APERTURE;NOPE=1;2")], [], "", "",
                            [P("TELESCOPE_INFO.TELESCOPE_APERTURE")]),
    "read-only": Case(["-v", P("DRIVER_INFO.DRIVER_NAME=x")], [], "", "", [P("DRIVER_INFO.DRIVER_NAME")]),
}

GROUPS = {
    "numbers": ["number", "sexagesimal, names then values", "sexagesimal, name=value pairs"],
    "switches and typed": ["switch", "typed -x -s -n", "several specs, verbose"],
    "refused": ["unknown property", "unknown element", "read-only"],
}


def run_case(port: int, case: Case) -> tuple[tuple, tuple]:
    results = []
    for path in (REF[SETPROP], OURS[SETPROP]):
        if case.reset:
            assert run(REF[SETPROP], "-p", str(port), *case.reset).returncode == 0
        if case.before:
            wait_eval(port, case.before)
        result = run(path, "-p", str(port), *case.args)
        if case.after:
            wait_eval(port, case.after, what=f"{path} {case.args}: {result}")
        seen = [run(REF["indi_getprop"], "-p", str(port), "-1", query).stdout for query in case.check]
        results.append((result, seen))
    return results[0], results[1]


@pytest.mark.parametrize("group", GROUPS)
def test_same_effect_as_reference(servers, home_env, group):
    server = start(servers, home_env, TELESCOPE_DRIVER)
    connect(server.port, SCOPE)
    for name in GROUPS[group]:
        case = CASES[name]
        (ref, ref_seen), (ours, ours_seen) = run_case(server.port, case)
        assert_same(ref, ours, name)
        assert ours_seen == ref_seen, name
        if name.startswith(("unknown", "read-only")):
            assert ours.returncode == 1, name
        else:
            assert ours.returncode == 0 and ours.stdout == "", (name, ours)
    if group == "refused":
        assert ours.stderr == f"Connected to localhost on port {server.port}\nQuerying for properties\n" \
                              f"{SCOPE}.DRIVER_INFO is read-only\n"
        (ref, _), (ours, _) = run_case(server.port, CASES["unknown property"])
        assert ours.stderr == f"No {SCOPE}.NO_SUCH_PROPERTY.X from localhost:{server.port}\n"


def test_connect_a_device(servers, home_env):
    """Untyped CONNECTION.CONNECT=On: read the definitions, send, and the device connects."""
    server = start(servers, home_env, TELESCOPE_DRIVER)
    port = str(server.port)
    seen = []
    for path in (REF[SETPROP], OURS[SETPROP]):
        result = run(path, "-p", port, f"{SCOPE}.CONNECTION.CONNECT=On")
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
        wait_eval(server.port, f'{E("CONNECTION.CONNECT")}==1 && {E("CONNECTION._STATE")}==1')
        seen.append(run(REF["indi_getprop"], "-p", port, "-t", "1", P("CONNECTION.*")).stdout)
        assert run(REF[SETPROP], "-p", port, "-s", P("CONNECTION.DISCONNECT=On")).returncode == 0
        wait_eval(server.port, f'{E("CONNECTION.CONNECT")}==0')
    assert seen[0] == seen[1] == f"{SCOPE}.CONNECTION.CONNECT=On\n{SCOPE}.CONNECTION.DISCONNECT=Off\n"


def test_typed_specs_need_no_server_answer(reference_required):
    """All specs typed: sent at once, exit 0, whatever the server is (here one that never speaks)."""
    listener = SilentListener()
    try:
        ref, ours = both(SETPROP, "-p", str(listener.port), "-v", "-n", "a.b.c=1", "-s", "d.e.f;g=On;Off")
        assert_same(ref, ours, "typed")
        assert ours.returncode == 0 and "  d.e.g <- Off\n" in ours.stderr
    finally:
        listener.close()


def test_against_our_server(servers, home_env):
    server = start(servers, home_env, TELESCOPE_DRIVER, which="ours")
    port = str(server.port)
    result = run(OURS[SETPROP], "-p", port, f"{SCOPE}.CONNECTION.CONNECT=On")
    assert (result.returncode, result.stderr) == (0, "")
    wait_eval(server.port, f'{E("CONNECTION.CONNECT")}==1 && {E("CONNECTION._STATE")}==1')
    result = run(OURS[SETPROP], "-p", port, P("TELESCOPE_INFO.TELESCOPE_APERTURE;GUIDER_APERTURE=99;33"))
    assert (result.returncode, result.stderr) == (0, "")
    wait_eval(server.port, f'{E("TELESCOPE_INFO.TELESCOPE_APERTURE")}==99 && {E("TELESCOPE_INFO.GUIDER_APERTURE")}==33')
    ref, ours = both(SETPROP, "-p", port, "-t", "1", P("NOPE.X=1"))
    assert_same(ref, ours, "unknown property on our server")
    settle(server.port)
    ref, ours = both("indi_getprop", "-p", port, P("TELESCOPE_INFO.*"))
    ref.stdout, ours.stdout = normalise(ref.stdout), normalise(ours.stdout)
    assert_same(ref, ours, "listing")
