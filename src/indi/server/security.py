"""Who may connect and how: listening addresses, allowed networks and TLS, beyond the reference.

The reference indiserver listens on every interface and serves anyone in clear text. Three
options narrow that down; none changes anything unless it is given:

``--listen ADDR`` (repeatable)
    Listen on these local addresses only (``127.0.0.1``, ``::1``, ``192.168.1.10``, a host name)
    instead of every interface. It applies to the plain port (-p) and to the TLS port.

``--allow CIDR`` (repeatable)
    Serve only peers whose address is in one of these networks (``192.168.1.0/24``, ``10.0.0.5``,
    ``fd00::/8``); a connection from anywhere else is closed as soon as it is accepted, before a
    byte is read, with one log line naming the address (repeats from one address are counted, not
    logged one by one). IPv4 peers reaching a dual-stack socket are matched as IPv4. Local socket
    clients (-u) are always served: they are on this machine.

``--tls-cert FILE`` [``--tls-key FILE``] [``--tls-port PORT``]
    Also serve TLS, on a port of its own (default 7625): a TLS client starts with a handshake and
    an INDI client with XML, so the two cannot share a port without guessing. Plain TCP stays on
    -p, as KStars/Ekos and every libindi client need it; restrict it with ``--listen 127.0.0.1``
    only when every remote client speaks TLS. The key may be in the certificate file. Clients are
    not asked for certificates: TLS here gives privacy and proves the server's identity to clients
    that check it (``indi.client.Client(host, port, ssl=context)``); keep --allow to choose who
    may connect.

A TLS connection is terminated inside the server: after the handshake (asyncio's SSL transport,
at most HANDSHAKE_TIMEOUT seconds) the clear stream is relayed through a socketpair to an ordinary
client link, so routing, the -m limit and the log are exactly those of a plain client. The relay
stops reading the socketpair while the TLS transport's buffer is full, so a slow TLS client backs
up into its link's queue, where -m applies. The cost is one extra copy through the kernel and two
descriptors per TLS client.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable

__all__ = ["DEFAULT_TLS_PORT", "HANDSHAKE_TIMEOUT", "AccessList", "parse_network", "tls_context", "bind_all",
           "RateLimitedLog", "TlsRelay"]

DEFAULT_TLS_PORT = 7625
HANDSHAKE_TIMEOUT = 15.0    # seconds a TLS client has to complete its handshake
REPEAT_WINDOW = 60.0        # seconds during which repeated refusals from one address are only counted

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(text: str) -> Network:
    """One --allow value: a network in CIDR notation, or a single address. ValueError says why not."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"--allow {text}: not a network: give an address or CIDR network such as "
                         f"192.168.1.0/24, 10.0.0.5 or fd00::/8") from None


def peer_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address of a peer as accepted (IPv4-mapped IPv6 and scope ids undone), or None."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class AccessList:
    """The --allow networks: ``allows(host)`` for each accepted peer."""

    def __init__(self, networks: list[Network]) -> None:
        self.networks = list(networks)

    def allows(self, host: str) -> bool:
        if not self.networks:
            return True
        address = peer_address(host)
        return address is not None and any(address in network for network in self.networks
                                           if network.version == address.version)

    def __str__(self) -> str:
        return ", ".join(str(n) for n in self.networks)


class RateLimitedLog:
    """Logs a line per address at most once per REPEAT_WINDOW, with the count of those not logged."""

    def __init__(self, log: Callable[[str], None], window: float = REPEAT_WINDOW, size: int = 1024) -> None:
        self.log = log
        self.window = window
        self.size = size
        self._seen: dict[str, list[float | int]] = {}

    def __call__(self, key: str, message: str) -> None:
        now = time.monotonic()
        entry = self._seen.get(key)
        if entry is not None and now - entry[0] < self.window:
            entry[1] += 1
            return
        if len(self._seen) >= self.size:
            self._seen.clear()
        more = int(entry[1]) if entry is not None else 0
        self._seen[key] = [now, 0]
        self.log(message + (f" ({more} more since the last report)" if more else ""))


def tls_context(cert: str, key: str | None) -> ssl.SSLContext:
    """A server context for TLS 1.2 and later; ValueError with a one-line reason if it cannot be made."""
    cert_text = _read_pem(cert, "certificate")
    key_text = _read_pem(key, "key") if key else cert_text
    if "-----BEGIN CERTIFICATE-----" not in cert_text:
        raise ValueError(f"TLS certificate {cert} is not a PEM certificate (no -----BEGIN CERTIFICATE-----)")
    if "PRIVATE KEY-----" not in key_text:
        raise ValueError(f"TLS key {key} is not a PEM private key" if key else
                         f"no private key in {cert}: give it with --tls-key FILE")
    if "ENCRYPTED" in key_text:
        raise ValueError(f"TLS key {key or cert} is encrypted: give an unencrypted key "
                         f"(openssl pkey -in KEY -out KEY.plain)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key, password=lambda: b"")
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ValueError(f"TLS key {key or cert} does not belong to certificate {cert}") from None
        raise ValueError(f"cannot use TLS certificate {cert}" + (f" with key {key}" if key else "")
                         + f": {exc.reason or exc}") from None
    return context


def _read_pem(path: str, what: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20).decode("ascii", "replace")
    except IsADirectoryError:
        raise ValueError(f"TLS {what} {path} is a directory: give the PEM file") from None
    except OSError as exc:
        raise ValueError(f"cannot read TLS {what} {path}: {exc.strerror}") from None


def bind_all(addresses: list[str], port: int, what: str) -> list[socket.socket]:
    """Listening sockets on these addresses (each resolved; all on one port, the first one's when
    port is 0). No address: every interface, IPv6 and IPv4 on one socket where possible.
    OSError carries a message naming the address and port."""
    if not addresses:
        try:
            if socket.has_dualstack_ipv6():
                return [socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=256)]
            return [socket.create_server(("", port), backlog=256)]
        except OSError as exc:
            raise ListenError(what, "", port, exc) from None
    sockets: list[socket.socket] = []
    seen: set[tuple] = set()
    try:
        for address in addresses:
            host = address.strip().strip("[]")
            try:
                infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            except socket.gaierror as exc:
                raise ListenError(what, address, port, exc, resolve=True) from None
            for family, kind, proto, _, sockaddr in infos:
                key = (family, sockaddr[0])
                if key in seen:
                    continue
                seen.add(key)
                if port == 0 and sockets:
                    sockaddr = (sockaddr[0], sockets[0].getsockname()[1], *sockaddr[2:])
                sock = socket.socket(family, kind, proto)
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if family == socket.AF_INET6:
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    sock.bind(sockaddr)
                    sock.listen(256)
                except OSError as exc:
                    sock.close()
                    raise ListenError(what, address, sockaddr[1], exc) from None
                sockets.append(sock)
    except Exception:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class ListenError(OSError):
    """A listening socket that cannot be made; ``str()`` is the line for the user."""

    def __init__(self, what: str, address: str, port: int, exc: OSError, resolve: bool = False) -> None:
        super().__init__(exc.errno, exc.strerror)
        self.port = port
        where = f"port {port}" if not address else f"{address} port {port}"
        if resolve:
            self.message = f"cannot listen on {address}: {exc.strerror or exc}: give an address of this machine"
        elif exc.errno == errno.EADDRINUSE:
            self.message = (f"cannot listen on {where}{what}: Address already in use. Another indiserver may be "
                            f"running: stop it, or choose another port with {'--tls-port' if what else '-p'} PORT")
        elif exc.errno == errno.EACCES:
            self.message = (f"cannot listen on {where}{what}: Permission denied. Ports below 1024 need root: "
                            f"choose a port above 1023 with {'--tls-port' if what else '-p'} PORT")
        elif exc.errno == errno.EADDRNOTAVAIL:
            self.message = (f"cannot listen on {where}{what}: {exc.strerror}: {address} is not an address of "
                            f"this machine (see --listen)")
        else:
            self.message = f"cannot listen on {where}{what}: {exc.strerror or exc}"

    def __str__(self) -> str:
        return self.message


class _Side(asyncio.Protocol):
    """One end of a relay: what it reads is written to the other end, with flow control both ways."""

    def __init__(self, relay: TlsRelay) -> None:
        self.relay = relay
        self.transport: asyncio.Transport | None = None
        self.other: _Side | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        other = self.other
        if other is not None and other.transport is not None and not other.transport.is_closing():
            other.transport.write(data)

    def eof_received(self) -> bool:
        self.relay.close()
        return False

    def pause_writing(self) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.other is not None and self.other.transport is not None and not self.other.transport.is_closing():
            self.other.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.close()


class TlsRelay:
    """One TLS client: its TLS transport, and the socketpair end that stands for it in the server.

    ``await relay.start(conn)`` does the handshake and returns the descriptor to serve as a plain
    client (the server owns it from then on); it raises OSError or ssl.SSLError if the handshake
    fails or times out, having closed everything.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, context: ssl.SSLContext,
                 on_closed: Callable[[TlsRelay], None]) -> None:
        self.loop = loop
        self.context = context
        self.on_closed = on_closed
        self.tls = _Side(self)
        self.pair = _Side(self)
        self.tls.other, self.pair.other = self.pair, self.tls
        self.closed = False
        self.version = ""

    async def start(self, conn: socket.socket) -> int:
        inner, outer = socket.socketpair()
        try:
            await self.loop.connect_accepted_socket(lambda: self.pair, outer)
            await self.loop.connect_accepted_socket(lambda: self.tls, conn, ssl=self.context,
                                                    ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
        except BaseException:
            inner.close()
            self.close()
            _close_unowned(outer)
            _close_unowned(conn)
            raise
        ssl_object = self.tls.transport.get_extra_info("ssl_object") if self.tls.transport else None
        self.version = ssl_object.version() if ssl_object is not None else "TLS"
        if self.closed:  # the client left during the handshake's last step
            inner.close()
            raise ConnectionResetError(errno.ECONNRESET, "closed by the client")
        return inner.detach()

    def close(self) -> None:
        """Either side is gone: let the other flush what it holds, then go."""
        if self.closed:
            return
        self.closed = True
        for side in (self.tls, self.pair):
            if side.transport is not None and not side.transport.is_closing():
                side.transport.close()
        self.on_closed(self)

    def abort(self) -> None:
        self.closed = True
        for side in (self.tls, self.pair):
            if side.transport is not None:
                side.transport.abort()
        self.on_closed(self)


def _close_unowned(sock: socket.socket) -> None:
    """Close a socket that a transport may have taken over (and closed) already."""
    try:
        if sock.fileno() >= 0:
            sock.close()
    except OSError:
        pass
