"""The ``indi-web`` command: indiwebmanager's options (and short letters), plus ours.

A mistake (the web port taken, a configuration directory that cannot be used, a missing indiserver)
ends in one line on stderr that says what to do, and a non-zero exit status: 2 for usage errors,
1 for the rest. SIGTERM, SIGINT and SIGHUP stop the INDI server and its drivers, then indi-web
exits with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import shlex
import signal
import socket
import stat
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, NoReturn

from .. import __version__
from .config import INDI_PORT, WEB_PORT, WebConfig, default_conf_dir, default_server, default_xml_dir, our_bin_dir
from .database import DatabaseError

if TYPE_CHECKING:
    from .state import WebState

__all__ = ["main", "parser", "build_config"]

log = logging.getLogger("indi.web")

DESCRIPTION = "INDI Web Manager: profiles of INDI drivers, and the INDI server that runs them, over HTTP."
EPILOG = f"""\
The REST API is indiwebmanager's: KStars/Ekos (Profile Editor, "Web Manager") drive it unchanged.
API documentation: http://HOST:PORT/docs. Profiles are kept in CONF/profiles.db, which an existing
indiwebmanager database can be.

The INDI server run is this package's indiserver; it looks for drivers in {our_bin_dir()} first, so
this package's Python simulators win over system drivers of the same names (see --system-drivers).
"""


class UserError(Exception):
    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see indi-web --help)", status=2)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value < 65536:
        raise argparse.ArgumentTypeError(f"port {value} is out of range 0-65535")
    return value


def _indi_port(text: str) -> int:
    value = _port(text)
    if value == 0:
        raise argparse.ArgumentTypeError("a profile needs a fixed port: give one from 1 to 65535")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: give a number of seconds above 0")
    return value


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="indi-web", description=DESCRIPTION, epilog=EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", "-P", type=_port, default=WEB_PORT,
                   help=f"web server port (default {WEB_PORT}; 0 picks a free one and logs it)")
    p.add_argument("--host", "-H", default="0.0.0.0", help="address to listen on (default 0.0.0.0: all)")
    p.add_argument("--conf", "-c", metavar="DIR", default=None,
                   help=f"configuration directory holding profiles.db (default {default_conf_dir()})")
    p.add_argument("--xmldir", "-x", metavar="DIR", default=None,
                   help=f"driver catalogue directory (default $INDI_DATA_DIR, else /usr/share/indi; "
                        f"now {default_xml_dir()})")
    p.add_argument("--indi-port", "-p", type=_indi_port, default=INDI_PORT,
                   help=f"INDI server port given to new profiles (default {INDI_PORT})")
    p.add_argument("--fifo", "-f", metavar="PATH",
                   help="the INDI server's FIFO (default: one in a private runtime directory)")
    p.add_argument("--logfile", "-l", metavar="FILE", help="write the log to FILE instead of standard error")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="log more: the INDI server's own log and every HTTP request")
    p.add_argument("--server", metavar="PATH", default=None,
                   help=f"the indiserver to run: this package's (default {default_server()}) or one with "
                        f"its --fifo and --status options")
    p.add_argument("--driver-dir", metavar="DIR", action="append", default=None,
                   help="directory the INDI server searches for drivers before PATH (repeatable; "
                        "default: this package's bin directory, so its Python simulators are used)")
    p.add_argument("--system-drivers", action="store_true",
                   help="do not search this package's bin directory first: drivers come from PATH "
                        "(e.g. Debian's C++ simulators)")
    p.add_argument("--server-options", metavar="OPTIONS", default="",
                   help="more options for the INDI server, in one quoted string after '=' (it starts with "
                        "'-'): --server-options=\"--allow 192.168.1.0/24 --max-restarts 3\" (see indiserver "
                        "--help); its port, FIFO, log and drivers come from indi-web and the profile; with --allow or "
                        "--listen, 127.0.0.1 is added, for indi-web's own connections")
    p.add_argument("--no-autostart", action="store_true",
                   help="do not start the profile marked autostart when indi-web starts")
    p.add_argument("--start", metavar="PROFILE",
                   help="start this profile's INDI server when indi-web starts (instead of the autostart one)")
    p.add_argument("--script-timeout", type=_seconds, default=30.0, metavar="SECONDS",
                   help="seconds a profile's pre/post driver script may run before it is killed (default 30)")
    p.add_argument("--allow-reboot", action="store_true",
                   help="allow POST /api/system/reboot and /poweroff (refused with 403 otherwise)")
    p.add_argument("--reboot-command", metavar="CMD", default="systemctl reboot",
                   help="command run by /api/system/reboot (default 'systemctl reboot'; e.g. 'sudo reboot')")
    p.add_argument("--poweroff-command", metavar="CMD", default="systemctl poweroff",
                   help="command run by /api/system/poweroff (default 'systemctl poweroff')")
    auth = p.add_argument_group("password protection (off by default: KStars/Ekos send no credentials)")
    auth.add_argument("--password", action="store_true",
                      help="require the password stored with --set-password: the page asks for it, scripts send "
                           "Authorization: Bearer TOKEN (see --show-token)")
    auth.add_argument("--set-password", action="store_true",
                      help="store a password (asked twice on a terminal, else read from standard input) in "
                           "CONF/indi-web-auth.json, and exit")
    auth.add_argument("--show-token", action="store_true",
                      help="print the API token for Authorization: Bearer (made on first use), and exit")
    p.add_argument("--version", action="version", version=f"indi-web {__version__}")
    return p


def _command(text: str, option: str) -> list[str]:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise UserError(f"{option} {text!r}: {exc}", 2) from None
    if not words:
        raise UserError(f"{option}: give a command", 2)
    return words


# indiserver options that indi-web sets itself (argparse destination: the option), and options
# that would make the server print something and exit.
_SERVER_OWNED = {"port": "-p", "fifo": "--fifo", "status": "--status", "logfile": "-f", "config": "-c"}
_SERVER_EXITS = {"-h", "--help", "--version"}
LOOPBACK = "127.0.0.1"


def _server_options(text: str) -> list[str]:
    """--server-options as indiserver arguments, checked with indiserver's own parser."""
    from ..server.cli import build_config as build_server_config
    from ..server.cli import parser as server_parser
    from ..server.server import UserError as ServerUsage

    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise UserError(f"--server-options {text!r}: {exc}", 2) from None
    if exits := _SERVER_EXITS.intersection(words):
        raise UserError(f"--server-options: {sorted(exits)[0]} is not a server option to run with", 2)
    p = server_parser()
    try:
        given, unset = p.parse_args(words), p.parse_args([])
        if given.drivers:
            raise UserError(f"--server-options: {given.drivers[0]!r} is not an option: drivers belong in profiles", 2)
        for dest, option in _SERVER_OWNED.items():
            if getattr(given, dest) != getattr(unset, dest):
                raise UserError(f"--server-options: indi-web sets {option} itself: leave it out", 2)
        build_server_config([*words, "-r", "127.0.0.1:7624"])  # every value checked as the server will
    except ServerUsage as exc:
        raise UserError(f"--server-options: {exc}", exc.status) from None
    # indi-web is a client of the server it runs (device lists, the page's live view), on 127.0.0.1.
    if given.allow and LOOPBACK not in given.allow:
        words += ["--allow", LOOPBACK]
    if given.listen and LOOPBACK not in given.listen:
        words += ["--listen", LOOPBACK]
    return words


def _conf_dir(args: argparse.Namespace) -> str:
    return os.path.abspath(os.path.expanduser(args.conf)) if args.conf else default_conf_dir()


def auth_command(args: argparse.Namespace) -> int:
    """--set-password or --show-token: do it and return the exit status."""
    from .auth import AuthError, read_new_password, set_password, show_token

    if args.set_password and args.show_token:
        raise UserError("give --set-password or --show-token, not both", 2)
    try:
        if args.show_token:
            print(show_token(_conf_dir(args)))
            return 0
        try:
            password = read_new_password()
        except (EOFError, KeyboardInterrupt):
            raise UserError("no password given: nothing was changed") from None
        path = set_password(_conf_dir(args), password)
    except AuthError as exc:
        raise UserError(str(exc)) from None
    print(f"Password stored in {path}: start indi-web with --password to require it.")
    return 0


def build_config(argv: list[str]) -> WebConfig:
    """Parse the command line into a WebConfig, checking what can be checked before starting."""
    return config_from_args(parser().parse_args(argv))


def config_from_args(args: argparse.Namespace) -> WebConfig:
    config = WebConfig(host=args.host, port=args.port, indi_port=args.indi_port,
                       allow_reboot=args.allow_reboot, verbose=args.verbose, autostart=not args.no_autostart,
                       start_profile=args.start,
                       script_timeout=args.script_timeout,
                       reboot_command=_command(args.reboot_command, "--reboot-command"),
                       poweroff_command=_command(args.poweroff_command, "--poweroff-command"))
    if args.conf:
        config.conf_dir = _conf_dir(args)
    if args.xmldir:
        xml_dir = os.path.abspath(os.path.expanduser(args.xmldir))
        if not os.path.isdir(xml_dir):
            raise UserError(f"driver catalogue directory {xml_dir} (--xmldir) does not exist: give the directory "
                            f"of the INDI XML files (usually /usr/share/indi)")
        config.xml_dir = xml_dir
    if args.server and args.server != "standalone":  # indiwebmanager's --server standalone meant the HTTP server
        config.server = os.path.abspath(os.path.expanduser(args.server))
    if not (os.path.isfile(config.server) and os.access(config.server, os.X_OK)):
        raise UserError(f"indiserver {config.server} is not an executable file: give ours with --server PATH")
    if args.driver_dir:
        config.driver_dirs = [os.path.abspath(os.path.expanduser(d)) for d in args.driver_dir]
    elif args.system_drivers:
        config.driver_dirs = []
    for directory in config.driver_dirs:
        if not os.path.isdir(directory):
            raise UserError(f"driver directory {directory} (--driver-dir) does not exist: give an existing directory")
    if args.fifo:
        config.fifo = os.path.abspath(os.path.expanduser(args.fifo))
        if not os.path.isdir(os.path.dirname(config.fifo)):
            raise UserError(f"the directory of FIFO {config.fifo} (--fifo) does not exist")
        if os.path.lexists(config.fifo) and not stat.S_ISFIFO(os.stat(config.fifo).st_mode):
            raise UserError(f"{config.fifo} (--fifo) exists and is not a FIFO: remove it or choose another path")
    config.server_options = _server_options(args.server_options)
    config.logfile = args.logfile
    if args.password:
        from .auth import Auth, AuthError

        try:
            Auth(config.conf_dir, required=True)
        except AuthError as exc:
            raise UserError(str(exc)) from None
        config.password = True
    return config


def setup_logging(config: WebConfig, logfile: str | None) -> None:
    if logfile:
        try:
            handler: logging.Handler = logging.FileHandler(logfile, encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot open log file {logfile}: {exc.strerror}: choose a writable path with "
                            f"--logfile FILE") from None
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("indi.web").setLevel(logging.DEBUG if config.verbose else logging.INFO)
    logging.getLogger("uvicorn").setLevel(logging.INFO if config.verbose else logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.INFO if config.verbose else logging.WARNING)


def listen(host: str, port: int) -> socket.socket:
    """The web server's socket, bound here so that a taken port is one clear line, not a traceback."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UserError(f"cannot listen on {host}: {exc.strerror}: give an address of this machine with --host") \
            from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"cannot listen on port {port}: Address already in use. Another indi-web (or "
                            f"indiwebmanager) may be running: stop it, or choose another port with --port PORT") \
                from None
        if exc.errno == errno.EACCES:
            raise UserError(f"cannot listen on port {port}: Permission denied. Ports below 1024 need root: "
                            f"choose a port above 1023 with --port PORT") from None
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(False)
    return sock


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, exiting with status 0 on SIGTERM/SIGINT/SIGHUP (uvicorn re-raises the
        signal after its graceful shutdown, which would end the process with it)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            def handle(sig: int, frame: object) -> None:
                if self.should_exit and sig == signal.SIGINT:
                    self.force_exit = True  # a second Ctrl-C: stop waiting for connections
                self.should_exit = True

            previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server


async def serve(config: WebConfig, state: WebState, sock: socket.socket) -> None:
    """Serve the API on ``sock`` until a signal; the INDI server is stopped whatever happens."""
    import uvicorn

    from .app import create_app

    app = create_app(config, state)
    server = _server_class()(uvicorn.Config(app, log_config=None, access_log=config.verbose, lifespan="on",
                                    timeout_graceful_shutdown=3))
    host, port = sock.getsockname()[:2]
    log.info("INDI Web Manager %s listening on http://%s:%d (profiles in %s)", __version__,
             f"[{host}]" if ":" in host else host, port, config.db_path)
    try:
        await server.serve(sockets=[sock])
    finally:
        await state.shutdown()  # also when uvicorn was forced out before its lifespan shutdown


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    state: WebState | None = None
    try:
        args = parser().parse_args(argv)
        if args.set_password or args.show_token:
            return auth_command(args)
        config = config_from_args(args)
        setup_logging(config, config.logfile)
        sock = listen(config.host, config.port)
        from .auth import AuthError
        from .state import WebState  # FastAPI and the rest: only once the command line is good

        try:
            state = WebState(config)
        except (DatabaseError, AuthError) as exc:
            sock.close()
            raise UserError(str(exc)) from None
        if config.password:
            log.info("password protection is on (--password): the page asks for it, scripts send the token")
        if config.driver_dirs:
            log.info("drivers are looked for in %s before PATH (--driver-dir, --system-drivers)",
                     ", ".join(config.driver_dirs))
        asyncio.run(serve(config, state, sock))
        return 0
    except UserError as exc:
        print(f"indi-web: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 0
    finally:
        if state is not None:
            state.close()

