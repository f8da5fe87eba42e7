"""indi_eval: evaluate an expression of INDI operands, as Debian's indi-bin 1.9.9 does.

The expression (see indi.tools.expr) names operands "device.property.element"; indi_eval asks each
device named for its properties, waits until every operand has a value (number values, switches as
0/1, lights and the pseudo-elements _STATE as 0-3, _TS as UNIX seconds), evaluates, and with -w
evaluates again at each update until the expression is true. Exit status: 0 if the value is not 0,
1 if it is 0, 2 on trouble (including no value or no update within -t seconds).
"""

from __future__ import annotations

import re
import sys
import time

from .common import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    INDIV,
    Alarm,
    Connection,
    Tool,
    ToolExit,
    XMLElement,
    atof,
    decode,
    err,
    format_g,
    scan_flags,
    tool_main,
)
from .expr import CompileError, EvalError, Expression

_TIMESTAMP = re.compile(r"[ \t\n\r\v\f]*([-+]?\d+)-[ \t\n\r\v\f]*([-+]?\d+)-[ \t\n\r\v\f]*([-+]?\d+)"
                        r"T[ \t\n\r\v\f]*([-+]?\d+):[ \t\n\r\v\f]*([-+]?\d+):[ \t\n\r\v\f]*([-+]?\d+)")


def usage_text(me: str) -> str:
    # The text of the installed 1.9.9 binary, spelling included.
    lines = [
        f"Usage: {me} [options] [exp]",
        "Purpose: evaluate an expression of INDI operands",
        "Version: $Revision: 1.5 $",
        "Options:",
        "   -b   : beep when expression evaluates as true",
        "   -d f : use file descriptor f already open to server",
        "   -e   : print each updated expression value",
        "   -f   : print final expression value",
        f"   -h h : alternate host, default is {DEFAULT_HOST}",
        "   -i   : read expression from stdin",
        "   -o   : print operands as they change",
        f"   -p p : alternate port, default is {DEFAULT_PORT}",
        f"   -t t : max secs to wait, 0 is forever, default is {DEFAULT_TIMEOUT}",
        "   -v   : verbose (cummulative)",
        "   -w   : wait for expression to evaluate as true",
        "[exp] is an arith expression built from the following operators and functons:",
        "     ! + - * / && || > >= == != < <=",
        "     pi sin(rad) cos(rad) tan(rad) asin(x) acos(x) atan(x) atan2(y,x) abs(x)",
        "     degrad(deg) raddeg(rad) floor(x) log(x) log10(x) exp(x) sqrt(x) pow(x,exp)",
        '   operands are of the form "device.name.element" (including quotes), where',
        "   element may be:",
        "     _STATE evaluated to 0,1,2,3 from Idle,Ok,Busy,Alert.",
        "     _TS evaluated to UNIX seconds from epoch.",
        "   Switch vectors are evaluated to 0,1 from Off,On.",
        "   Light vectors are evaluated to 0-3 as per _STATE.",
        "Examples:",
        "   To print 0/1 whether Security.Doors.Front or .Rear are in Alert:",
        "     evalINDI -f '\"Security.Doors.Front\"==3 || \"Security.Doors.Rear\"==3'",
        "   To exit 0 if the Security property as a whole is in a state of Ok:",
        "     evalINDI '\"Security.Security._STATE\"==1'",
        "   To wait for RA and Dec to be near zero and watch their values as they change:",
        "     evalINDI -t 0 -wo 'abs(\"Mount.EqJ2K.RA\")<.01 && abs(\"Mount.EqJ2K.Dec\")<.01'",
        "Exit 0 if expression evaluates to non-0, 1 if 0, else 2",
    ]
    return "\n".join(lines) + "\n"


def pstate(state: str) -> int:
    """0, 1, 2, 3 for Idle, Ok, Busy and anything else."""
    if state == "Idle":
        return 0
    if state.startswith("Ok"):
        return 1
    if state == "Busy":
        return 2
    return 3


def timestamp_seconds(ts: str) -> float:
    """An ISO 8601 timestamp as seconds from the epoch, read as local time (mktime), or -1."""
    m = _TIMESTAMP.match(ts)
    if not m:
        return -1.0
    year, month, day, hour, minute, second = (int(g) for g in m.groups())
    try:
        return float(int(time.mktime((year, month, day, hour, minute, second, 0, 0, 0))))
    except (OverflowError, ValueError):
        return -1.0


class Eval(Tool):
    USAGE_EXIT = 1

    def __init__(self, me: str) -> None:
        super().__init__(me)
        self.bflag = self.eflag = self.fflag = self.iflag = self.oflag = self.wflag = 0
        self.expr: Expression | None = None

    def usage_text(self) -> str:
        return usage_text(self.me)

    def flag(self, ch: str, take) -> bool:
        flags = {"b": "bflag", "e": "eflag", "f": "fflag", "i": "iflag", "o": "oflag", "w": "wflag"}
        if ch in flags:
            setattr(self, flags[ch], getattr(self, flags[ch]) + 1)
        elif not self.common_flag(ch, take):
            self.unknown_flag(ch)
        return False

    def run(self, argv: list[str]) -> int:
        args = scan_flags(argv, self.flag)
        if len(args) > 1:
            self.usage()
        # With no argument the expression is read from stdin (whether or not -i is given).
        text = args[0] if args else decode(sys.stdin.buffer.read())
        if self.verbose:
            err(f"Compiling: {text}\n")
        try:
            self.expr = Expression(text)
        except CompileError as exc:
            err(f"Compile err: {exc}\n")
            raise ToolExit(2) from None

        if self.directfd >= 0:
            self.conn = Connection.open_direct(self.directfd, self.host, self.port, self.verbose)
            if self.verbose:
                err(f"Using direct fd {self.directfd}\n")
        else:
            self.conn = Connection.open_tcp(self.host, self.port, self.verbose, herror=False)
            if self.verbose:
                err(f"Connected to {self.host} on port {self.port}\n")

        self.get_props()
        self.init_props()
        return self.run_eval()

    def get_props(self) -> None:
        """getProperties for each device named, once each, in order of appearance."""
        seen = []
        for name in self.expr.names:
            device = name.split(".", 1)[0]
            if device in seen:
                continue
            seen.append(device)
            if self.verbose:
                err(f"sending getProperties for {device}\n")
            try:
                self.conn.send(f"<getProperties version='{INDIV}' device='{device}'/>\n")
            except OSError:
                pass  # reported by the read that follows

    def next_element(self) -> XMLElement:
        try:
            return self.conn.next_element()
        except Alarm:
            self.on_alarm()
            raise  # not reached

    def on_alarm(self) -> None:
        unset = self.expr.unset()
        if unset:
            err("No values seen for" + "".join(f" {name}" for name in reversed(unset)) + "\n")
        else:
            err("Timed out waiting for new values\n")
        raise ToolExit(2)

    def init_props(self) -> None:
        """Wait for a value of each operand; exit 2 if -t seconds pass with none new."""
        self.conn.alarm(self.timeout)
        while not self.expr.all_set():
            if self.set_op(self.next_element()):
                self.conn.alarm(self.timeout)
        self.conn.alarm(0)

    def set_operand(self, name: str, value: float) -> bool:
        if not self.expr.set_operand(name, value):
            return False
        if self.oflag:
            err(f"{name}={format_g(value)}\n")
        return True

    def set_op(self, root: XMLElement) -> bool:
        """Take the operands' values from a definition or update; True if any was one of ours."""
        tag = root.tag
        d, n = root.attr("device"), root.attr("name")
        nset = 0
        if tag in ("defNumberVector", "setNumberVector"):
            for ep in root.children:
                if ep.tag in ("defNumber", "oneNumber"):
                    nset += self.set_operand(f"{d}.{n}.{ep.attr('name')}", atof(ep.pcdata))
        elif tag in ("defSwitchVector", "setSwitchVector"):
            for ep in root.children:
                if ep.tag in ("defSwitch", "oneSwitch"):
                    nset += self.set_operand(f"{d}.{n}.{ep.attr('name')}",
                                             1.0 if ep.pcdata.startswith("On") else 0.0)
        elif tag in ("defLightVector", "setLightVector"):
            for ep in root.children:
                if ep.tag in ("defLight", "oneLight"):
                    nset += self.set_operand(f"{d}.{n}.{ep.attr('name')}", float(pstate(ep.pcdata)))
        state = root.attr("state")
        if state:
            nset += self.set_operand(f"{d}.{n}._STATE", float(pstate(state)))
        ts = root.attr("timestamp")
        if ts:
            nset += self.set_operand(f"{d}.{n}._TS", timestamp_seconds(ts))
        return nset > 0

    def run_eval(self) -> int:
        self.conn.alarm(self.timeout)
        while True:
            try:
                v = self.expr.evaluate()
            except EvalError as exc:
                err(f"Eval: {exc}\n")
                raise ToolExit(2) from None
            if self.bflag and v != 0:
                err("\a")
            if self.eflag:
                err(f"{format_g(v)}\n")
            if not self.wflag or v != 0:
                break
            while not self.set_op(self.next_element()):
                continue
            self.conn.alarm(self.timeout)
        self.conn.alarm(0)
        if not self.eflag and self.fflag:
            err(f"{format_g(v)}\n")
        return 1 if v == 0 else 0


def main(argv: list[str] | None = None) -> int:
    return tool_main(Eval, argv)


if __name__ == "__main__":
    sys.exit(main())
