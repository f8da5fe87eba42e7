"""indi_setprop: set writable INDI properties, as Debian's indi-bin 1.9.9 does.

Untyped specs are checked against the definitions first: indi_setprop asks for all properties,
sends each new*Vector as soon as it has seen a definition holding every element named, and exits
when all have been sent (1 and a "No d.p.e" line per element never seen after -t seconds without a
definition, 1 at once if a property is read-only). When every spec is typed (-x text, -n number,
-s switch) they are sent blind, without reading anything.
"""

from __future__ import annotations

import re
import sys

from .common import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    GIT_TAG,
    INDIV,
    Alarm,
    Connection,
    Tool,
    ToolExit,
    XMLElement,
    err,
    scan_flags,
    tool_main,
)

# Settable kinds: (definition, its member, new vector, its member). -x/-n/-s index this table.
DEFS = [("defTextVector", "defText", "newTextVector", "oneText"),
        ("defNumberVector", "defNumber", "newNumberVector", "oneNumber"),
        ("defSwitchVector", "defSwitch", "newSwitchVector", "oneSwitch")]
TYPE_FLAGS = {"x": DEFS[0], "n": DEFS[1], "s": DEFS[2]}

_SPEC = re.compile(r"([^.]+)\.([^.]+)\.([^\n]+)")


def usage_text(me: str) -> str:
    lines = [
        "Purpose: set one or more writable INDI properties",
        GIT_TAG,
        f"Usage: {me} [options] {{[type] spec}} ...",
        "Options:",
        "  -d f  : use file descriptor f already open to server",
        f"  -h h  : alternate host, default is {DEFAULT_HOST}",
        f"  -p p  : alternate port, default is {DEFAULT_PORT}",
        f"  -t t  : max time to wait, default is {DEFAULT_TIMEOUT} secs",
        "  -v    : verbose (more are cumulative)",
        "Each spec optionally preceded by its type is sent without first confirming",
        "its structure. This is much more efficient but there is no error checking.",
        "Types are indicated with the following flags:",
        "  -x    : Text",
        "  -n    : Number",
        "  -s    : Switch",
        "Spec may be either:",
        "    device.property.e1[;e2...]=v1[;v2...]",
        "  or",
        "    device.property.e1=v1[;e2=v2...]",
        "Exit status:",
        "  0: all settings successful",
        "  1: at least one setting was invalid",
        "  2: real trouble, try repeating with -v",
    ]
    return "\n".join(lines) + "\n"


class Assignment:
    __slots__ = ("e", "v", "ok")

    def __init__(self, e: str, v: str) -> None:
        self.e, self.v, self.ok = e, v, False


class SetSpec:
    __slots__ = ("d", "p", "ev", "dp")

    def __init__(self, d: str, p: str, dp: tuple[str, str, str, str] | None) -> None:
        self.d, self.p, self.dp = d, p, dp
        self.ev: list[Assignment] = []


def _strtok(text: str, sep: str = ";"):
    """strtok_r over text: the non-empty pieces between separators."""
    return iter([piece for piece in text.split(sep) if piece])


class SetProp(Tool):
    def __init__(self, me: str) -> None:
        super().__init__(me)
        self.sets: list[SetSpec] = []

    def usage_text(self) -> str:
        return usage_text(self.me)

    def flag(self, ch: str, take) -> bool:
        if ch in TYPE_FLAGS:
            return True  # a type: the specs start here
        if not self.common_flag(ch, take):
            self.unknown_flag(ch)
        return False

    # -- specs
    def crack_spec(self, args: list[str]) -> tuple[list[str], bool]:
        """Take one [type] spec off args; returns the rest and whether it had a type."""
        spec = args[0]
        dp = None
        if spec.startswith("-"):
            dp = TYPE_FLAGS.get(spec[1:2])
            if dp is None:
                err(f"Bad property type: {spec}\n")
                self.usage()
            args = args[1:]
            if not args:
                err("Missing spec\n")
                self.usage()
            spec = args[0]
        m = _SPEC.match(spec)
        if m is None:
            err(f"Malformed property spec: {spec}\n")
            self.usage()
        setspec = SetSpec(m.group(1), m.group(2), dp)
        self.sets.append(setspec)
        self.scan_ev(setspec, m.group(3))
        return args[1:], dp is not None

    def scan_ev(self, sp: SetSpec, ev: str) -> None:
        if self.verbose > 1:
            err(f"Scanning assignments {ev}\n")
        eq = ev.find("=")
        semi = ev.find(";")
        if eq < 0:
            err(f"Malformed assignment: {ev}\n")
            self.usage()
        if semi < eq:  # no ';' at all, or names first: e1;e2=v1;v2 (including a single e=v)
            self.scan_eevv(sp, ev[:eq], ev[eq + 1:])
        else:
            self.scan_evev(sp, ev)

    def add(self, sp: SetSpec, e: str, v: str) -> None:
        sp.ev.append(Assignment(e, v))
        if self.verbose > 1:
            err(f"Found assignment {e}={v}\n")

    def scan_eevv(self, sp: SetSpec, names: str, values: str) -> None:
        name_iter, value_iter = _strtok(names), _strtok(values)
        while True:
            e0 = next(name_iter, None)
            v0 = next(value_iter, None)
            if e0 is None and v0 is None:
                return
            if e0 is None:
                err(f"More values than elements for {sp.d}.{sp.p}\n")
                raise ToolExit(2)
            if v0 is None:
                err(f"More elements than values for {sp.d}.{sp.p}\n")
                raise ToolExit(2)
            self.add(sp, e0, v0)

    def scan_evev(self, sp: SetSpec, ev: str) -> None:
        while True:
            semi = ev.find(";")
            last = semi < 0
            piece, ev = (ev, "") if last else (ev[:semi], ev[semi + 1:])
            eq = piece.find("=")
            if eq < 0:
                err(f"Malformed assignment: {piece}\n")
                self.usage()
            self.add(sp, piece[:eq], piece[eq + 1:])
            if last:
                return

    # -- running
    def run(self, argv: list[str]) -> int:
        args = scan_flags(argv, self.flag)
        if not args:
            self.usage()
        allspeced = True
        while args:
            args, typed = self.crack_spec(args)
            if not typed:
                allspeced = False

        if self.directfd >= 0:
            self.conn = Connection.open_direct(self.directfd, self.host, self.port, self.verbose)
            if self.verbose:
                err(f"Using direct fd {self.directfd}\n")
        else:
            self.conn = Connection.open_tcp(self.host, self.port, self.verbose, herror=False)
            if self.verbose:
                err(f"Connected to {self.host} on port {self.port}\n")
        self.conn.eof_message = "INDI server {host}:{port} disconnected\n"

        if allspeced:
            for sp in self.sets:
                self.send_new(sp.dp, sp)
            return 0
        if self.verbose:
            err("Querying for properties\n")
        self.send(f"<getProperties version='{INDIV}'/>\n")
        return self.listen()

    def send(self, text: str) -> None:
        try:
            self.conn.send(text)
        except OSError:
            err("Send error\n")
            raise ToolExit(2) from None

    def send_new(self, dp: tuple[str, str, str, str], sp: SetSpec) -> None:
        _, _, new_type, one_type = dp
        lines = [f"<{new_type} device='{sp.d}' name='{sp.p}'>\n"]
        for a in sp.ev:
            if self.verbose:
                err(f"  {sp.d}.{sp.p}.{a.e} <- {a.v}\n")
            lines.append(f"  <{one_type} name='{a.e}'>{a.v}</{one_type}>\n")
        lines.append(f"</{new_type}>\n")
        self.send("".join(lines))

    def listen(self) -> int:
        conn = self.conn
        conn.alarm(self.timeout)
        while True:
            try:
                root = conn.next_element()
            except Alarm:
                return self.on_alarm()
            self.find_set(root)
            if all(a.ok for sp in self.sets for a in sp.ev):
                conn.shutdown_write()
                return 0

    def on_alarm(self) -> int:
        for sp in self.sets:
            for a in sp.ev:
                if not a.ok:
                    err(f"No {sp.d}.{sp.p}.{a.e} from {self.host}:{self.port}\n")
        return 1

    def find_set(self, root: XMLElement) -> None:
        for dp in DEFS:
            if root.tag == dp[0]:
                break
        else:
            return
        self.conn.alarm(self.timeout)
        rdev, rprop = root.attr("device"), root.attr("name")
        if self.verbose > 1:
            err(f"Read definition for {rdev}.{rprop}\n")
        for sp in self.sets:
            if rdev != sp.d or rprop != sp.p:
                continue
            if "w" not in root.attr("perm"):
                if self.verbose:
                    err(f"{rdev}.{rprop} is read-only\n")
                raise ToolExit(1)
            for a in sp.ev:
                if any(ep.attr("name") == a.e and ep.tag == dp[1] for ep in root.children):
                    a.ok = True
                else:
                    return  # not in this definition, maybe a later one
            self.send_new(dp, sp)


def main(argv: list[str] | None = None) -> int:
    return tool_main(SetProp, argv)


if __name__ == "__main__":
    sys.exit(main())
