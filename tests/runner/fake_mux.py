"""A stand-in for ssh's ControlMaster, for the relay's unit tests (no sshd needed).

Speaks the mux protocol the relay uses (hello, alive check, stdio forwarding with the
client's socket and a pipe end passed over the socket) and connects each forwarding to
host:port itself. The
real ControlMaster is exercised by tests/runner/test_tunnel_local.py and the Slurm tests.
"""
from __future__ import annotations

import os
import socket
import struct
import threading

from ot_hpc.runner import sshmux


def _read(sock: socket.socket):
    head = sock.recv(4, socket.MSG_WAITALL)
    if len(head) < 4:
        return None
    body = sock.recv(struct.unpack(">I", head)[0], socket.MSG_WAITALL)
    return struct.unpack(">I", body[:4])[0], body[4:]


def _send(sock: socket.socket, *words: int, tail: bytes = b"") -> None:
    body = b"".join(struct.pack(">I", w) for w in words) + tail
    sock.sendall(struct.pack(">I", len(body)) + body)


def _copy(src, dst_write, done=None) -> None:
    try:
        while True:
            data = src()
            if not data:
                break
            dst_write(data)
    except OSError:
        pass
    finally:
        if done:
            done()


class FakeMaster:
    def __init__(self, path: str) -> None:
        self.path = path
        self.requests = []  # (host, port) of every forwarding asked for
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.server.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            _send(conn, sshmux.MSG_HELLO, 4)
            if _read(conn) is None:
                return
            message = _read(conn)
            if message is None:
                return
            kind, body = message
            if kind == sshmux.C_ALIVE_CHECK:
                _send(conn, sshmux.S_ALIVE, 1, os.getpid())
            elif kind == sshmux.C_NEW_STDIO_FWD:
                self._forward(conn, body)

    def _forward(self, conn: socket.socket, body: bytes) -> None:
        reserved = struct.unpack(">I", body[4:8])[0]
        offset = 8 + reserved
        length = struct.unpack(">I", body[offset:offset + 4])[0]
        host = body[offset + 4:offset + 4 + length].decode()
        port = struct.unpack(">I", body[offset + 4 + length:offset + 8 + length])[0]
        fds = [socket.recv_fds(conn, 1, 1)[1][0] for _ in range(2)]
        self.requests.append((host, port))
        try:
            remote = socket.create_connection((host, port), timeout=5)
        except OSError:
            _send(conn, sshmux.S_FAILURE, 1, len(b"connect failed"), tail=b"connect failed")
            for fd in fds:
                os.close(fd)
            return
        remote.settimeout(None)
        _send(conn, sshmux.S_SESSION_OPENED, 1, 7)
        client, writer = fds  # the client's socket (read here directly) and the relay's pipe
        up = threading.Thread(target=_copy, args=(lambda: os.read(client, 65536), remote.sendall,
                                                  lambda: remote.shutdown(socket.SHUT_WR)), daemon=True)
        up.start()
        _copy(lambda: remote.recv(65536), lambda data: os.write(writer, data))
        os.close(writer)
        up.join(10)
        os.close(client)
        remote.close()
