"""Our indi_eval against Debian's: the same exit status (0 true, 1 false, 2 trouble) and the same
output (everything indi_eval prints goes to stderr) for the same expressions and flags.

Expressions without operands are run against a port that accepts connections and says nothing;
those with operands against the reference server running the telescope simulator, against a
scripted stream on a socketpair (-d), and against our server.
"""

from __future__ import annotations

import socket
import subprocess
import time

import pytest
from tool_support import (
    CCD_DRIVER,
    OURS,
    REF,
    SCOPE,
    TELESCOPE_DRIVER,
    SilentListener,
    assert_same,
    both,
    check_installed,
    run,
    start,
    wait_eval,
    without_repeats,
)

pytestmark = pytest.mark.peers

EVAL = "indi_eval"
APERTURE = f'"{SCOPE}.TELESCOPE_INFO.TELESCOPE_APERTURE"'
FOCAL = f'"{SCOPE}.TELESCOPE_INFO.TELESCOPE_FOCAL_LENGTH"'


@pytest.fixture(autouse=True)
def _installed():
    check_installed()


@pytest.fixture
def silent():
    listener = SilentListener()
    yield listener
    listener.close()


# ----------------------------------------------------------------------------- command line
@pytest.mark.parametrize("args", [
    ["-x"], ["-p"], ["-t"], ["-d"], ["-h"], ["-d", "3", "-h", "x"], ["-d", "3", "-p", "1"], ["1", "2"],
    ["1+"], ['"a.b"'], ["foo(1)"], ["-p", "1", "1"], ["-h", "nosuchhost.invalid", "1"],
], ids=lambda args: " ".join(args))
def test_command_line_errors(reference_required, args):
    ref, ours = both(EVAL, *args)
    assert ref.returncode in (1, 2), ref
    assert_same(ref, ours, f"indi_eval {' '.join(args)}")


def test_bad_descriptor():
    """-d with a descriptor that is not open: Debian's indi_eval and indi_setprop crash (SIGSEGV,
    setbuf on the NULL fdopen gave); ours say what indi_getprop says, and exit 1 as it does."""
    for tool in (EVAL, "indi_setprop"):
        result = run(OURS[tool], "-d", "99", *(["1"] if tool == EVAL else ["-n", "a.b.c=1"]))
        assert (result.returncode, result.stdout, result.stderr) == (1, "", "Direct fd 99: Bad file descriptor\n")


# ---------------------------------------------------------------- expressions without operands
EXPRESSIONS = [
    "1", "0", "1+2", "2 - 1 - 1", "8/2/2", "1+2*3", "(1+2)*3", "!1+1", " - 2 - - 3", "1*-2", "!-1", "1--3",
    "3 > 2 > 1", "1 || 0 && 0", "2 > 1 && 3 >= 3 || 0", "!0 + !5 + (1 != 2) + (1==1) + (2<1) + (2<=2)",
    "123456789", "0.1", "0.000012345", "1234567", "100000", "1e5+0.5", "0-1e-5", "1e400", "1e-400", ".5", ".",
    "1.2.3", "1e", "1e+", "1e5e5", "1,2", "pi", "(((((((((((((((((((((((((((((((((1)))))))))))))))))))))))))))))))))",
    "sqrt(16)+abs(0-2)+sin(1)+cos(1)+tan(1)", "asin(0.5)+acos(0.5)+atan(2)", "atan2(1,2)+pow(2,0.5)+floor(0-2.5)",
    "log(10)+log10(1000)+exp(2)", "degrad(180)+raddeg(1)",
    # IEEE arithmetic and the C library's NaNs, signs included
    "1/0", "0/0", "1/(0-0)", "1/(0*(0-1))", "1e300*1e300", "sqrt(0-1)", "log(0-1)", "log(0)", "log10(0-1)",
    "asin(2)", "acos(2)", "pow(0-1,0.5)", "exp(1000)", "pow(0,0-1)", "atan2(0,0)", "sin(1/0)", "1/0-1/0",
    "0*(1/0)", "abs(0/0)", "floor(0/0)", "!(0/0)", "(0/0) && 1", "(0/0)==(0/0)",
    # compile errors, with the reference's messages
    "1+", "*", "1*", "(1", "((1)", "1)", "()", "sin(", "abs(1", "pow(1,", "sin(1,2)", "pow(1)", "pow 1",
    "atan2(1,2,3)", "abs 1", "sin 3", "sin()", "pie", "SIN(1)", "1E5", "0x10", "2exp(1)", "1 & 2", "1 = 2",
    "1 <> 2", "1 >< 2", "1 || ", "$", "1 +  2 ; 3", "+", "!", "!=!=1", ",", ")", "1 +)", "pi(", "1+,",
    '"a.b.c', '"a.b"', '" a . b . c "x', '"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghi.b.c"',
    "1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1", "1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1",
    "sqrt(16)+abs(-2)+sin(0)+cos(0)+pi+pow(2,10)+atan2(1,1)+floor(2.5)+log(1)+log10(100)+exp(0)+degrad(180)",
    # programs short of values: run-time errors (but not "(!=1) 2", whose reference writes past
    # the end of its stack into other variables and then behaves at random)
    "1 2", "1 ! 2", "1 ( 2 )", "2 sin(1)", "!=1", "!=1+2", "1+(!=2)",
]


def test_expressions_without_operands(reference_required, silent):
    for expression in EXPRESSIONS:
        ref, ours = both(EVAL, "-p", str(silent.port), "-f", expression)
        assert_same(ref, ours, f"-f {expression!r}")


def test_output_flags(reference_required, silent):
    """-e prints each value, -f the final one (not again after -e), -b a BEL when true."""
    for flags in ("", "-e", "-b", "-ef", "-bf", "-be", "-ff"):
        for expression in ("1", "0", "0/0", "1/0", "2.5e-7", "1 2", "1+"):
            ref, ours = both(EVAL, "-p", str(silent.port), *([flags] if flags else []), expression)
            assert_same(ref, ours, f"{flags} {expression!r}")


def test_expression_from_stdin(reference_required, silent):
    for text in ("1+2\n", "2 >\n 1", "", "1/"):
        ref, ours = both(EVAL, "-p", str(silent.port), "-f", stdin=text)
        assert_same(ref, ours, f"stdin {text!r}")
    assert ours.stderr.startswith("Compile err: Term or factor expected")


def test_waiting_without_operands_times_out(reference_required, silent):
    started = time.monotonic()
    ref, ours = both(EVAL, "-p", str(silent.port), "-t", "1", "-w", "-e", "0")
    assert_same(ref, ours, "-w 0")
    assert (ours.returncode, ours.stderr) == (2, "0\nTimed out waiting for new values\n")
    assert time.monotonic() - started < 6


# --------------------------------------------------------------------------- reference server
def test_operands_from_the_reference_server(servers, home_env):
    server = start(servers, home_env, TELESCOPE_DRIVER)
    port = str(server.port)
    cases = [
        ["-o", "-f", f'"{SCOPE}.CONNECTION.DISCONNECT"==1'],                        # true: 0
        ["-o", "-f", f'"{SCOPE}.CONNECTION.CONNECT"'],                              # false: 1
        ["-o", "-e", f'"{SCOPE}.CONNECTION._STATE" + "{SCOPE}.TELESCOPE_INFO._STATE"*10'],
        ["-f", f'"{SCOPE}.CONNECTION._TS" > 1.6e9 && "{SCOPE}.TELESCOPE_INFO._TS" > 1.6e9'],
        ["-o", "-f", f"abs({APERTURE} - 200) + sqrt({FOCAL})*2 - pow(2,3) + floor({FOCAL}/7)"],
        ["-b", f"{APERTURE} == 120 && {FOCAL} > 800 || 0"],
        ["-ob", f'{APERTURE} > 1000 || "{SCOPE}.CONNECTION.CONNECT"'],
        ["-t", "1", f'"{SCOPE}.NO_SUCH.ELEMENT" + {APERTURE} + "Nobody.P.E"'],    # No values seen for ...
        ["-t", "1", "-w", "-e", f'"{SCOPE}.CONNECTION.CONNECT"'],                 # Timed out ..., 2
        ["-v", "-f", f"{APERTURE}/{FOCAL}"],
    ]
    for args in cases:
        ref, ours = both(EVAL, "-p", port, *args)
        # (-o prints an operand for each definition seen: how many copies come depends on what
        # the previous run left in flight; see tool_support.settle)
        ref.stderr, ours.stderr = without_repeats(ref.stderr), without_repeats(ours.stderr)
        assert_same(ref, ours, " ".join(args))
    ref, ours = both(EVAL, "-p", port, "-o", "-f", f"{APERTURE}+{FOCAL}")
    assert (ours.returncode, ours.stderr.splitlines()[-1]) == (0, "1020")


def wait_then_set(path: str, port: int, value: int, setter: str, *typed: str) -> tuple[int, str]:
    """Start ``path -w -o -e`` waiting for the aperture to be ``value``; once it has printed the
    operand's current value, set the aperture with ``setter`` (indi_setprop, typed or not); return
    its exit status and everything it printed.

    (Untyped, indi_setprop asks for every property first, and the reference server sends the
    driver's answer to every client interested in the device: indi_eval too, which then prints the
    definitions again, as many times as its timing lets it see them.)"""
    proc = subprocess.Popen([path, "-p", str(port), "-t", "10", "-w", "-o", "-e", f"{APERTURE}=={value}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stderr.readline()
    assert first.startswith(f"{SCOPE}.TELESCOPE_INFO.TELESCOPE_APERTURE="), first
    result = run(setter, "-p", str(port), *typed, f"{SCOPE}.TELESCOPE_INFO.TELESCOPE_APERTURE={value}")
    assert result.returncode == 0, result
    rest = proc.stderr.read()
    return proc.wait(timeout=20), first + rest


def test_waits_until_true_after_setprop(servers, home_env):
    server = start(servers, home_env, TELESCOPE_DRIVER, CCD_DRIVER)
    results = []
    for path in (REF[EVAL], OURS[EVAL]):
        wait_eval(server.port, f"{APERTURE}==120")
        results.append(wait_then_set(path, server.port, 150, REF["indi_setprop"], "-n"))
        assert run(REF["indi_setprop"], "-p", str(server.port), "-n",
                   f"{SCOPE}.TELESCOPE_INFO.TELESCOPE_APERTURE=120").returncode == 0
    # How many times the definition (and so the value 120, and the evaluation 0) is seen first
    # depends on what else asked the driver for its properties just before: the reference server
    # gives its answers to every client interested in the device. Repeats are counted once.
    assert [collapse(printed) for _, printed in results] == [
        f"{SCOPE}.TELESCOPE_INFO.TELESCOPE_APERTURE=120\n0\n{SCOPE}.TELESCOPE_INFO.TELESCOPE_APERTURE=150\n1\n"] * 2
    assert [status for status, _ in results] == [0, 0]


def collapse(printed: str) -> str:
    """indi_eval -o -e output with repeats of an (operand, value) pair of lines counted once."""
    lines = printed.splitlines(keepends=True)
    pairs = [lines[i] + lines[i + 1] for i in range(0, len(lines) - 1, 2)]
    return "".join(pair for i, pair in enumerate(pairs) if i == 0 or pair != pairs[i - 1]) + \
        ("".join(lines[-1:]) if len(lines) % 2 else "")


def test_against_our_server(servers, home_env):
    server = start(servers, home_env, TELESCOPE_DRIVER, which="ours")
    status, printed = wait_then_set(OURS[EVAL], server.port, 175, OURS["indi_setprop"])
    assert status == 0 and printed.endswith(f"{SCOPE}.TELESCOPE_INFO.TELESCOPE_APERTURE=175\n1\n"), printed
    for args in (["-f", f"{APERTURE}*2"], ["-t", "1", f'"{SCOPE}.NOPE.X"'], ["-o", f'"{SCOPE}.CONNECTION.CONNECT"']):
        ref, ours = both(EVAL, "-p", str(server.port), *args)
        ref.stderr, ours.stderr = without_repeats(ref.stderr), without_repeats(ours.stderr)
        assert_same(ref, ours, " ".join(args))
    assert ours.returncode == 1


# ------------------------------------------------------------------------ scripted stream (-d)
STREAM = (
    b"<defNumberVector device='D' name='N' state='Ok' perm='rw' timestamp='2024-05-06T07:08:09'>"
    b"<defNumber name='a' format='%g' min='0' max='0' step='0'> 2.5 </defNumber>"
    b"<defNumber name='s' format='%10.6m' min='0' max='0' step='0'>10:30:00</defNumber></defNumberVector>\n"
    b"<defSwitchVector device='D' name='S' state='Busy' perm='rw' rule='AnyOfMany'>"
    b"<defSwitch name='on'>On</defSwitch><defSwitch name='off'>Off</defSwitch></defSwitchVector>\n"
    b"<defLightVector device='E' name='L' state='Alert'><defLight name='i'>Idle</defLight>"
    b"<defLight name='o'>Ok</defLight><defLight name='b'>Busy</defLight><defLight name='x'>Alert</defLight>"
    b"</defLightVector>\n"
    b"<defTextVector device='E' name='T' state='Okay' perm='ro'><defText name='t'>text</defText></defTextVector>\n"
    b"<setNumberVector device='D' name='N' state='Alert'><oneNumber name='a'>7</oneNumber></setNumberVector>\n"
)


def scripted(path: str, args: list[str], stream: bytes) -> tuple[int, bytes, bytes, bytes]:
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
    return proc.returncode, out, err, sent


@pytest.mark.parametrize("args", [
    ["-o", "-f", '"D.N.a" + "D.N.s"*100 + "D.S.on"*1000 + "D.S.off"*10000'],
    ["-o", "-f", '"E.L.i" + "E.L.o"*10 + "E.L.b"*100 + "E.L.x"*1000'],
    ["-o", "-f", '"D.N._STATE" + "D.S._STATE"*10 + "E.L._STATE"*100 + "E.T._STATE"*1000'],
    ["-o", "-f", '"D.N._TS" - 1714979289'],
    ["-o", "-e", "-w", '"D.N.a" == 7'],
    ["-vv", "-w", '"D.N.a" > 5 && "E.L.x" == 3'],
    ["-vvv", '"D.S.on"'],
    ["-t", "1", '"D.N.a" + "D.N.a"'],       # a name used twice: only the first gets values
    ["-t", "1", '"D.N.nope" + "X.Y.z"'],
], ids=lambda args: " ".join(args))
def test_scripted_stream(reference_required, args):
    """Values of each kind of element, _STATE and _TS, the getProperties sent (one per device),
    -v echoes, and operands that never get a value."""
    ref = scripted(REF[EVAL], args, STREAM)
    ours = scripted(OURS[EVAL], args, STREAM)
    assert ours == ref
