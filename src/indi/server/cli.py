"""The ``indiserver`` command line: the spec's options, the reference's under long names, -c files.

Every mistake a user can make here ends in one line on stderr that says what to do, and a
non-zero exit status: 2 for usage errors, 1 for everything else.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from typing import NoReturn

from .. import __version__
from ..protocol import DEFAULT_MAX_ELEMENT
from .drivers import DriverSpec, parse_remote
from .fifo import is_fifo
from .links import tune_allocator
from .log import Log
from .paths import DriverNotFound, find_driver
from .security import DEFAULT_TLS_PORT, AccessList, parse_network, tls_context
from .server import DEFAULT_PORT, MB, Server, ServerConfig, UserError

__all__ = ["main", "run", "build_config", "parser"]

DESCRIPTION = "INDI server: runs INDI drivers and routes their messages to INDI clients over TCP."
EPILOG = """\
driver: an executable (looked for in -l directories, then PATH), a path, or [device]@host[:port]
for the devices of another INDI server.

Reference indiserver options that the spec gives other letters are available as long options:
--max-restarts (reference -r), --fifo (-f), --log-dir (-l), --stream-drop (-d), -u.

Security (none of it is in the reference server; nothing changes unless asked):
  --listen 127.0.0.1               accept clients on this machine only (repeat for more addresses)
  --allow 192.168.1.0/24           close at once, with a log line, connections from other networks
  --tls-cert cert.pem --tls-key key.pem
                                   also serve TLS on its own port, --tls-port (default 7625); plain
                                   TCP stays on -p for KStars/Ekos and other libindi clients
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see indiserver --help)", status=2)


def _positive_mb(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of megabytes") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} MB: give a number of megabytes above 0")
    return value


def _mb_or_zero(text: str) -> int:
    return 0 if text.strip() == "0" else _positive_mb(text)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    return max(0, value)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value < 65536:
        raise argparse.ArgumentTypeError(f"port {value} is out of range 0-65535")
    return value


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="indiserver", usage="indiserver [options] driver [driver ...]", description=DESCRIPTION,
                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-p", dest="port", type=_port, metavar="PORT",
                   help=f"TCP port to listen on (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("-r", dest="remotes", action="append", default=[], metavar="HOST:PORT",
                   help="serve the devices of the INDI server at HOST:PORT too (repeatable)")
    p.add_argument("-v", dest="verbose", action="count", default=0,
                   help="-v: key events; -vv: one line per message; -vvv: the XML too")
    p.add_argument("-m", dest="memory", type=_positive_mb, metavar="MB",
                   help="memory limit in MB: a driver with more resident memory is restarted, a client "
                        "that falls this far behind is disconnected (default: no driver limit, 128 MB behind)")
    p.add_argument("-f", dest="logfile", metavar="FILE",
                   help="write the log to FILE instead of standard output (a FIFO there is used as --fifo)")
    p.add_argument("-l", dest="driver_dirs", action="append", default=[], metavar="DIR",
                   help="look for drivers in DIR before PATH (repeatable)")
    p.add_argument("-d", dest="debug", action="store_true", help="turn DEBUG on in every driver")
    p.add_argument("-s", dest="simulation", action="store_true", help="turn SIMULATION on in every driver")
    p.add_argument("-n", dest="no_connect", action="store_true",
                   help="do not connect devices automatically when their driver starts")
    p.add_argument("-c", dest="config", metavar="FILE",
                   help="read options and drivers from FILE, one per line ('#' starts a comment)")
    p.add_argument("--max-restarts", type=_count, metavar="N",
                   help="restart a driver that dies at most N times (default 10; the count starts "
                        "again after a minute of running)")
    p.add_argument("--fifo", metavar="PATH", help="read 'start DRIVER'/'stop DRIVER' commands from this FIFO")
    p.add_argument("--log-dir", metavar="DIR", help="append drivers' messages to DIR/YYYY-MM-DD.islog")
    p.add_argument("-u", "--unix-socket", metavar="PATH", help="also listen on this local (abstract) socket")
    p.add_argument("--stream-drop", type=_mb_or_zero, metavar="MB",
                   help="drop video stream frames for a client this far behind (default 5, 0 disables)")
    p.add_argument("--max-element", type=_positive_mb, metavar="MB",
                   help=f"largest XML element accepted, BLOBs included (default {DEFAULT_MAX_ELEMENT // MB})")
    p.add_argument("--listen", action="append", default=[], metavar="ADDR",
                   help="listen on this local address only, for -p and --tls-port (repeatable; default: "
                        "every interface)")
    p.add_argument("--allow", action="append", default=[], metavar="CIDR",
                   help="serve only clients from this network, e.g. 192.168.1.0/24 or 127.0.0.1 (repeatable; "
                        "default: everyone); others are closed at once with a log line")
    p.add_argument("--tls-cert", metavar="FILE", help="PEM certificate (chain): also serve TLS on --tls-port")
    p.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert (if it is not in that file)")
    p.add_argument("--tls-port", type=_port, metavar="PORT",
                   help=f"TCP port for TLS clients (default {DEFAULT_TLS_PORT}; 0 picks a free one); plain "
                        f"clients keep -p")
    p.add_argument("--status", metavar="PATH",
                   help="answer on this local socket with the server's status as JSON (used by indi-web)")
    p.add_argument("--version", action="version", version=f"indiserver {__version__} (INDI protocol 1.7)")
    p.add_argument("drivers", nargs="*", metavar="driver", help=argparse.SUPPRESS)
    return p


def _config_tokens(path: str, p: argparse.ArgumentParser) -> list[str]:
    """The options and drivers of a -c file, each line checked on its own so errors name the line."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror}") from None
    tokens: list[str] = []
    for number, line in enumerate(lines, 1):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise UserError(f"{path}:{number}: cannot read {line.strip()!r}: {exc}", 2) from None
        if not words:
            continue
        try:
            parsed = p.parse_intermixed_args(words)
        except UserError as exc:
            raise UserError(f"{path}:{number}: bad line {line.strip()!r}: {exc}", 2) from None
        if parsed.config:
            raise UserError(f"{path}:{number}: -c cannot be used inside a config file", 2)
        tokens += words
    return tokens


def build_config(argv: list[str]) -> tuple[ServerConfig, Log]:
    """Parse the command line (and -c file) into a ServerConfig and the Log to use."""
    p = parser()
    args = p.parse_intermixed_args(argv)
    if args.config:
        args = p.parse_intermixed_args(_config_tokens(args.config, p) + argv)

    config = ServerConfig(verbosity=args.verbose, debug=args.debug, simulation=args.simulation,
                          autoconnect=not args.no_connect, driver_dirs=args.driver_dirs)
    if args.port is not None:
        config.port = args.port
    if args.memory:
        config.driver_memory = config.max_queue = args.memory * MB
    if args.stream_drop is not None:
        config.stream_drop = args.stream_drop * MB
    if args.max_element:
        config.max_element = args.max_element * MB
    if args.max_restarts is not None:
        config.max_restarts = args.max_restarts
    config.unix_socket = args.unix_socket
    config.status_socket = args.status
    _security(args, config)
    for directory in args.driver_dirs:
        if not os.path.isdir(directory):
            raise UserError(f"driver directory {directory} (-l) does not exist: give an existing directory")

    for remote in args.remotes:
        if remote.isascii() and remote.isdigit():
            # The reference's -r N (maximum restarts), as KStars passes it: "-r 0".
            config.max_restarts = int(remote)
            continue
        spec = remote if "@" in remote else "@" + remote
        try:
            parse_remote(spec)
        except ValueError as exc:
            raise UserError(f"-r {remote}: {exc}; give HOST:PORT", 2) from None
        config.remotes.append(spec)

    stream = None
    if args.fifo:
        config.fifo = args.fifo
    if args.logfile:
        if is_fifo(args.logfile):
            config.fifo = args.logfile  # indiwebmanager and KStars pass their FIFO with -f
        else:
            try:
                stream = open(args.logfile, "a", encoding="utf-8", buffering=1)
            except OSError as exc:
                raise UserError(f"cannot open log file {args.logfile}: {exc.strerror}: "
                                f"choose a writable path with -f FILE") from None
    if config.fifo and not is_fifo(config.fifo):
        raise UserError(f"{config.fifo} is not a FIFO: create it with mkfifo {config.fifo}")
    if args.log_dir:
        if not os.path.isdir(args.log_dir) or not os.access(args.log_dir, os.W_OK):
            raise UserError(f"--log-dir {args.log_dir} is not a writable directory: create it or choose another")
        config.log_dir = args.log_dir

    for name in args.drivers:
        if "@" in name:
            try:
                parse_remote(name)
            except ValueError as exc:
                raise UserError(f"remote driver {name}: {exc}; give [device]@host[:port]", 2) from None
            config.remotes.append(name)
            continue
        try:
            config.drivers.append(DriverSpec(name, find_driver(name, config.driver_dirs)))
        except DriverNotFound as exc:
            raise UserError(str(exc)) from None

    if not config.drivers and not config.remotes and not config.fifo:
        raise UserError("no drivers to run: name at least one driver, -r HOST:PORT or --fifo PATH "
                        "(see indiserver --help)", 2)
    return config, Log(args.verbose, stream)


def _security(args: argparse.Namespace, config: ServerConfig) -> None:
    """--listen, --allow and TLS: checked here, so that a mistake stops the server before it starts."""
    for address in args.listen:
        if not address.strip().strip("[]"):
            raise UserError("--listen needs an address, such as 127.0.0.1 or ::1", 2)
    config.listen = [a.strip() for a in args.listen]
    try:
        config.allow = AccessList([parse_network(text) for text in args.allow])
    except ValueError as exc:
        raise UserError(str(exc), 2) from None
    if args.tls_cert is None:
        if args.tls_key is not None or args.tls_port is not None:
            option = "--tls-key" if args.tls_key is not None else "--tls-port"
            raise UserError(f"{option} needs --tls-cert FILE (the server's certificate)", 2)
        return
    try:
        config.tls = tls_context(args.tls_cert, args.tls_key)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.tls_port is not None:
        config.tls_port = args.tls_port
    if config.tls_port == config.port and config.port != 0:
        raise UserError(f"--tls-port {config.tls_port} is the plain port (-p): give TLS a port of its own", 2)


def run(config: ServerConfig, log: Log) -> int:
    server = Server(config, log)
    tune_allocator()
    try:
        import uvloop  # type: ignore[import-not-found]
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    return runner(server.run())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        config, log = build_config(argv)
        if log.v:
            log("startup: " + " ".join(["indiserver"] + [shlex.quote(a) for a in argv]))
        return run(config, log)
    except UserError as exc:
        print(f"indiserver: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 0


def entry_point() -> None:
    sys.exit(main())
