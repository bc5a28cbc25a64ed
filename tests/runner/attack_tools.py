"""An attacker's tools, standard library only (they run as another uid, with any Python 3).

``python3 attack_tools.py probe HOST PORT [TOKEN_FILE]`` prints one JSON line saying what
the port answers without (or with) the token:

- ``{"http": 401}``: an HTTP/1 server and its status for ``GET /``;
- ``{"grpc": {"/ray.rpc.X/Y": [status, bytes]}}``: a gRPC server (HTTP/2), each method's
  ``grpc-status`` (16 UNAUTHENTICATED, 12 UNIMPLEMENTED: not this server's method; None:
  no status) and the bytes of its reply; the same calls made with the token tell which
  methods this server has;
- ``{"closed": "ConnectionRefusedError"}``: nothing listens.

``python3 attack_tools.py squat NAMES PORTS DIRS`` binds the abstract Unix socket names,
listens on 0.0.0.0:PORT, makes each directory (mode 0777), prints ``READY`` and holds on
until its stdin closes. The gRPC client is the smallest that works: HTTP/2 frames by hand,
HPACK literals without Huffman coding; of the reply it reads the DATA bytes and the
``grpc-status`` literal, which gRPC servers send without Huffman coding.
"""
from __future__ import annotations

import json
import os
import re
import socket
import struct
import sys
import time

METHODS = (
    "/ray.rpc.NodeInfoGcsService/GetAllNodeInfo",  # GCS
    "/ray.rpc.NodeManagerService/GetSystemConfig",  # raylet
    "/ray.rpc.ObjectManagerService/Pull",  # object manager (an empty request: nothing to pull)
    "/ray.rpc.CoreWorkerService/NumPendingTasks",  # every worker and the driver
    "/ray.rpc.ReporterService/HealthCheck",  # dashboard agent (gRPC)
    "/ray.rpc.RayletDriver/ClusterInfo",  # Ray Client server
)
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0, 1, 3, 4, 6, 7
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
STATUS = re.compile(rb"grpc-status[\x00-\x7f](\d+)")


def _hpack_int(value: int, bits: int, first: int) -> bytes:
    limit = (1 << bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    return bytes(out + [value])


def _string(text: str) -> bytes:
    data = text.encode()
    return _hpack_int(len(data), 7, 0) + data


def _literal(name, value: str) -> bytes:
    """A header field without indexing: ``name`` a static-table index or a new name."""
    if isinstance(name, int):
        return _hpack_int(name, 4, 0) + _string(value)
    return b"\x00" + _string(name) + _string(value)


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _read_exact(reader, count: int) -> bytes:
    data = reader.read(count)  # a buffered socket file: all ``count`` bytes, or fewer at EOF
    if data is None or len(data) < count:
        raise EOFError("closed")
    return data


def grpc_call(host: str, port: int, path: str, token=None, timeout: float = 3.0) -> list:
    """[grpc-status, bytes of DATA] the server sends back for one unary call with an
    empty message (status None when none was seen)."""
    headers = b"\x83\x86" + _literal(4, path) + _literal(1, f"{host}:{port}")
    headers += _literal(31, "application/grpc") + _literal("te", "trailers")
    if token:
        headers += _literal(23, f"Bearer {token}")
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(PREFACE + _frame(SETTINGS, 0, 0) + _frame(HEADERS, END_HEADERS, 1, headers)
                     + _frame(DATA, END_STREAM, 1, b"\x00\x00\x00\x00\x00"))
        received, status = 0, None
        reader = sock.makefile("rb")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                head = _read_exact(reader, 9)
                payload = _read_exact(reader, struct.unpack(">I", b"\x00" + head[:3])[0])
            except (EOFError, OSError):
                break
            kind, flags, stream = head[3], head[4], struct.unpack(">I", head[5:9])[0] & 0x7FFFFFFF
            if kind == SETTINGS and not flags & ACK:
                sock.sendall(_frame(SETTINGS, ACK, 0))
            elif kind == PING and not flags & ACK:
                sock.sendall(_frame(PING, ACK, 0, payload))
            elif kind == DATA and stream == 1:
                received += len(payload)
            elif kind == HEADERS and stream == 1 and STATUS.search(payload):
                status = int(STATUS.search(payload).group(1))
            if kind == GOAWAY or (stream == 1 and (kind == RST_STREAM or flags & END_STREAM)):
                break
        return [status, received]


def http_status(host: str, port: int, token=None, timeout: float = 3.0):
    """The HTTP/1 status of ``GET /``, or None when the server does not speak HTTP/1."""
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n".encode())
        try:
            first = sock.recv(64)
        except OSError:
            return None
    if first.startswith(b"HTTP/1."):
        return int(first.split()[1])
    return None


def probe(host: str, port: int, token=None) -> dict:
    try:
        status = http_status(host, port, token)
    except OSError as exc:
        return {"closed": type(exc).__name__}
    if status is not None:
        return {"http": status}
    answers = {}
    for method in METHODS:
        try:
            answers[method] = grpc_call(host, port, method, token)
        except OSError as exc:
            answers[method] = type(exc).__name__
    return {"grpc": answers}


def squat(names: str, ports: str, dirs: str) -> int:
    held = []
    for name in [n for n in names.split(",") if n]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind("\0" + name)
        held.append(sock)
    for port in [int(p) for p in ports.split(",") if p]:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        sock.listen()
        held.append(sock)
    for path in [d for d in dirs.split(",") if d]:
        os.mkdir(path)
        os.chmod(path, 0o777)
    print("READY", flush=True)
    sys.stdin.read()
    return 0


def main(argv) -> int:
    if argv[:1] == ["probe"]:
        token = open(argv[3]).read().strip() if len(argv) > 3 else None
        print(json.dumps(probe(argv[1], int(argv[2]), token)))
        return 0
    if argv[:1] == ["squat"]:
        return squat(*argv[1:4])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
