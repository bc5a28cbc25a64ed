"""A client of OpenSSH's connection multiplexing (``ssh -M -S <path>``, PROTOCOL.mux).

The job's ssh to the login node runs as a ControlMaster whose control socket lives in a
directory only we can enter (mode 0700; the master also checks the peer's uid). Through
it :func:`open_stdio` asks the master for a *stdio forwarding* to host:port -- what
``ssh -W host:port`` does -- and hands it two file descriptors: the client's socket, which
the master reads directly, and a pipe into which it writes what the remote end sends (a
pipe, not the socket: ssh closes, never shuts down, a stdio forwarding's output, so only
we can send the client a FIN at the remote end's EOF). The master answers only once the
login node has opened (or refused) the connection, so a refusal is known before any byte
flows. One control connection carries one forwarding; closing it ends the forwarding. :func:`master_pid` is the health check (``ssh -O check``).
"""
from __future__ import annotations

import os
import socket
import struct
from typing import Optional, Tuple

from .socks5 import recv_exact

MUX_VERSION = 4
MSG_HELLO = 0x00000001
C_ALIVE_CHECK = 0x10000004
C_NEW_STDIO_FWD = 0x10000008
S_PERMISSION_DENIED = 0x80000002
S_FAILURE = 0x80000003
S_ALIVE = 0x80000005
S_SESSION_OPENED = 0x80000006
MAX_PACKET = 256 * 1024


class MuxError(OSError):
    """The control socket is unusable: no master, or it does not speak the protocol."""


class MuxRefused(Exception):
    """The master (or the login node) refused the forwarding; ``denied`` for a policy refusal."""

    def __init__(self, reason: str, denied: bool = False) -> None:
        super().__init__(reason)
        self.denied = denied


def _u32(value: int) -> bytes:
    return struct.pack(">I", value)


def _string(data: bytes) -> bytes:
    return _u32(len(data)) + data


class MuxConnection:
    """One control connection, hello exchanged."""

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(path)
            self.send(_u32(MSG_HELLO) + _u32(MUX_VERSION))
            kind, body = self.receive()
            if kind != MSG_HELLO or body[:4] != _u32(MUX_VERSION):
                raise MuxError(f"unexpected mux hello (type 0x{kind:08x})")
        except BaseException:
            self.sock.close()
            raise

    def send(self, payload: bytes) -> None:
        self.sock.sendall(_u32(len(payload)) + payload)

    def receive(self) -> Tuple[int, bytes]:
        length = struct.unpack(">I", recv_exact(self.sock, 4))[0]
        if not 4 <= length <= MAX_PACKET:
            raise MuxError(f"bad mux packet length {length}")
        payload = recv_exact(self.sock, length)
        return struct.unpack(">I", payload[:4])[0], payload[4:]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "MuxConnection":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def _reason(body: bytes) -> str:
    if len(body) < 8:
        return "no reason given"
    length = struct.unpack(">I", body[4:8])[0]
    return body[8:8 + length].decode("utf-8", "replace") or "no reason given"


def master_pid(path: str, timeout: float = 2.0) -> Optional[int]:
    """The master's pid when its control socket answers an alive check, else None."""
    try:
        with MuxConnection(path, timeout) as mux:
            mux.send(_u32(C_ALIVE_CHECK) + _u32(1))
            kind, body = mux.receive()
    except OSError:
        return None
    if kind != S_ALIVE or len(body) < 8:
        return None
    return struct.unpack(">I", body[4:8])[0]


def open_stdio(path: str, host: str, port: int, source: int, timeout: float = 60.0) -> Tuple[MuxConnection, int]:
    """A forwarding to host:port that reads from fd ``source`` (the client's own socket:
    what the client sends goes to ssh without passing through us) and writes what the
    remote end sends into a pipe. Returns (control connection, the pipe's read end).

    The master shares ``source`` from then on, and sets it non-blocking. The caller owns
    both results: the pipe reads EOF once the remote end has sent everything; closing the
    control connection ends the forwarding, and the master closes it when the forwarding
    has ended both ways. Raises :class:`MuxRefused`, or :class:`MuxError`/``OSError``."""
    mux = MuxConnection(path, timeout=min(timeout, 5.0))
    ours, theirs = os.pipe()  # the master writes theirs
    try:
        mux.send(_u32(C_NEW_STDIO_FWD) + _u32(1) + _string(b"") + _string(host.encode())
                 + _u32(port))
        for fd in (source, theirs):  # one fd per message, as ssh's mm_receive_fd wants
            socket.send_fds(mux.sock, [b"\0"], [fd])
        os.close(theirs)
        theirs = -1
        mux.sock.settimeout(timeout)
        kind, body = mux.receive()
        if kind == S_SESSION_OPENED:
            return mux, ours
        if kind in (S_FAILURE, S_PERMISSION_DENIED):
            raise MuxRefused(_reason(body), denied=kind == S_PERMISSION_DENIED)
        raise MuxError(f"unexpected mux reply 0x{kind:08x}")
    except BaseException:
        for fd in (ours, theirs):
            if fd >= 0:
                os.close(fd)
        mux.close()
        raise
