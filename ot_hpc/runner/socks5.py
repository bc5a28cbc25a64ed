"""SOCKS5 (RFC 1928) with username/password authentication (RFC 1929), both ends.

- Client side, for the runner's readiness checks and the demo trainer's fetch:
  :func:`connect` (a socket connected to host:port through the proxy, the name resolved
  by the proxy) and :func:`handshake` (does the proxy accept us?).
- Server side, for the job's relay (:mod:`.socks_relay`): :func:`negotiate` (greeting and
  credentials) and :func:`read_request` (the CONNECT request), which answer a refusal
  themselves and raise :class:`Refused`; :func:`reply` for the answer to a CONNECT.

Only CONNECT is served; no SOCKS4 (it has no passwords), no BIND, no UDP ASSOCIATE.
"""
from __future__ import annotations

import hmac
import socket
import struct
from typing import Optional, Tuple

VERSION = 5
AUTH_VERSION = 1  # RFC 1929's sub-negotiation version
NO_AUTH = 0x00
USERPASS = 0x02
NO_ACCEPTABLE = 0xFF
CONNECT = 0x01
ATYP_IPV4, ATYP_DOMAIN, ATYP_IPV6 = 0x01, 0x03, 0x04
# Reply codes (RFC 1928 section 6).
SUCCEEDED, GENERAL_FAILURE, NOT_ALLOWED = 0x00, 0x01, 0x02
HOST_UNREACHABLE, CONNECTION_REFUSED, COMMAND_NOT_SUPPORTED, ADDRESS_NOT_SUPPORTED = 0x04, 0x05, 0x07, 0x08


class Credentials:
    """A username and password; the password never shows in ``repr`` or ``str``."""

    __slots__ = ("username", "password")

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<hidden>)"

    __str__ = __repr__

    def matches(self, username: bytes, password: bytes) -> bool:
        """Both equal, compared in constant time (both are always compared)."""
        user_ok = hmac.compare_digest(username, self.username.encode())
        password_ok = hmac.compare_digest(password, self.password.encode())
        return user_ok and password_ok


class SocksError(ConnectionError):
    """The proxy refused us, or did not speak SOCKS5."""


class Refused(Exception):
    """Server side: the client was refused (already answered); ``str()`` says why."""


def recv_exact(sock: socket.socket, count: int) -> bytes:
    """Exactly ``count`` bytes (ConnectionError when the peer closes first)."""
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("the peer closed the connection")
        data += chunk
    return data


# ---- client ---------------------------------------------------------------------------
def _authenticate(sock: socket.socket, credentials: Optional[Credentials]) -> None:
    method = USERPASS if credentials is not None else NO_AUTH
    sock.sendall(bytes([VERSION, 1, method]))
    answer = recv_exact(sock, 2)
    if answer[0] != VERSION or answer[1] != method:
        name = "username/password" if credentials is not None else "no-auth"
        raise SocksError(f"SOCKS server refused the {name} method")
    if credentials is None:
        return
    user, password = credentials.username.encode(), credentials.password.encode()
    sock.sendall(bytes([AUTH_VERSION, len(user)]) + user + bytes([len(password)]) + password)
    if recv_exact(sock, 2) != bytes([AUTH_VERSION, 0]):
        raise SocksError("SOCKS server refused the username/password")


def _address(host: str) -> bytes:
    for family, kind in ((socket.AF_INET, ATYP_IPV4), (socket.AF_INET6, ATYP_IPV6)):
        try:
            return bytes([kind]) + socket.inet_pton(family, host)
        except OSError:
            continue
    name = host.encode("idna")
    return bytes([ATYP_DOMAIN, len(name)]) + name


def connect(proxy_host: str, proxy_port: int, dest_host: str, dest_port: int, timeout: float = 10.0,
            credentials: Optional[Credentials] = None) -> socket.socket:
    """A socket connected to dest through the SOCKS5 proxy (a name is resolved by the proxy)."""
    sock = socket.create_connection((proxy_host, proxy_port), timeout=timeout)
    try:
        sock.settimeout(timeout)
        _authenticate(sock, credentials)
        sock.sendall(bytes([VERSION, CONNECT, 0]) + _address(dest_host) + struct.pack(">H", dest_port))
        answer = recv_exact(sock, 4)
        if answer[1] != SUCCEEDED:
            raise SocksError(f"SOCKS CONNECT to {dest_host}:{dest_port} failed (code {answer[1]})")
        skip = {ATYP_IPV4: 4, ATYP_IPV6: 16}.get(answer[3])
        if skip is None:
            skip = recv_exact(sock, 1)[0]
        recv_exact(sock, skip + 2)
        return sock
    except BaseException:
        sock.close()
        raise


def handshake(host: str, port: int, timeout: float = 2.0, credentials: Optional[Credentials] = None) -> bool:
    """True when a SOCKS5 server at host:port accepts us: with ``credentials`` the
    username/password method and those credentials, without them the no-auth method."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            _authenticate(sock, credentials)
            return True
    except (OSError, ValueError):
        return False


# ---- server ---------------------------------------------------------------------------
def negotiate(sock: socket.socket, credentials: Credentials) -> None:
    """The greeting and RFC 1929 sub-negotiation; raises :class:`Refused` (answered)."""
    head = recv_exact(sock, 2)
    if head[0] != VERSION:
        raise Refused(f"not SOCKS5 (first byte 0x{head[0]:02x})")
    methods = recv_exact(sock, head[1]) if head[1] else b""
    if USERPASS not in methods:
        sock.sendall(bytes([VERSION, NO_ACCEPTABLE]))
        raise Refused("offered no username/password method")
    sock.sendall(bytes([VERSION, USERPASS]))
    version, length = recv_exact(sock, 2)
    if version != AUTH_VERSION:
        sock.sendall(bytes([AUTH_VERSION, 0xFF]))
        raise Refused(f"bad username/password version {version}")
    user = recv_exact(sock, length) if length else b""
    password = recv_exact(sock, recv_exact(sock, 1)[0])
    if not credentials.matches(user, password):
        sock.sendall(bytes([AUTH_VERSION, 0x01]))
        raise Refused("wrong username or password")
    sock.sendall(bytes([AUTH_VERSION, 0x00]))


def read_request(sock: socket.socket) -> Tuple[str, int]:
    """(host, port) of a CONNECT request; anything else is answered and :class:`Refused`."""
    version, command, _reserved, kind = recv_exact(sock, 4)
    if version != VERSION:
        raise Refused(f"bad request version {version}")
    if kind == ATYP_IPV4:
        host = socket.inet_ntop(socket.AF_INET, recv_exact(sock, 4))
    elif kind == ATYP_IPV6:
        host = socket.inet_ntop(socket.AF_INET6, recv_exact(sock, 16))
    elif kind == ATYP_DOMAIN:
        host = recv_exact(sock, recv_exact(sock, 1)[0]).decode("ascii", "replace")
    else:
        sock.sendall(reply(ADDRESS_NOT_SUPPORTED))
        raise Refused(f"address type {kind} not supported")
    port = struct.unpack(">H", recv_exact(sock, 2))[0]
    if command != CONNECT:
        sock.sendall(reply(COMMAND_NOT_SUPPORTED))
        raise Refused(f"command {command} not supported (CONNECT only)")
    return host, port


def reply(code: int) -> bytes:
    """The answer to a request (bound address 0.0.0.0:0: the relay does not know it)."""
    return bytes([VERSION, code, 0, ATYP_IPV4]) + b"\x00" * 6
