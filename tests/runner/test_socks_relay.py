"""The relay's SOCKS5 server (RFC 1928 + RFC 1929) against a fake ssh ControlMaster.

Each test speaks raw bytes to a real Relay on 127.0.0.1 (a thread of the test process);
the fake master (tests/runner/fake_mux.py) turns each forwarding into a TCP connection
to a tiny echo server, so "CONNECT works" means bytes really went through and back.
"""
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from ot_hpc.runner import socks5, socks_relay
from ot_hpc.runner.socks5 import Credentials

from ..conftest import REPO
from . import tcpserver
from .fake_mux import FakeMaster

CREDENTIALS = Credentials("ot-hpc", "0123456789abcdef0123456789abcdef")


def read_all(sock) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


@pytest.fixture
def echo():
    """A TCP server that answers each connection with 'echo:' + everything it got, at EOF."""
    server = tcpserver.start("127.0.0.1", lambda conn: conn.sendall(b"echo:" + read_all(conn)))
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def relay(tmp_path):
    master = FakeMaster(str(tmp_path / "mux"))
    lines = []
    server = socks_relay.Relay(("127.0.0.1", 0), master.path, CREDENTIALS, lines.append,
                               handshake_timeout=0.5)
    listener = server.bind()
    running = threading.Event()
    running.set()
    thread = threading.Thread(target=server.serve, args=(running.is_set,), daemon=True)
    thread.start()
    server.port = listener.getsockname()[1]
    server.lines = lines
    server.master = master
    yield server
    running.clear()
    thread.join(5)
    listener.close()
    master.close()


def _connect(relay):
    sock = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
    sock.settimeout(5)
    return sock


def _closed_within(sock, seconds):
    """True when the peer closes the connection within ``seconds`` (what it sent is read)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(1024):
            pass
        return True
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


def _auth(user: bytes, password: bytes) -> bytes:
    return bytes([1, len(user)]) + user + bytes([len(password)]) + password


def _connect_request(host: str, port: int) -> bytes:
    name = host.encode()
    return b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack(">H", port)


def test_greeting_without_the_password_method_is_refused(relay):
    with _connect(relay) as sock:
        sock.sendall(b"\x05\x01\x00")  # no authentication only
        assert sock.recv(2) == b"\x05\xff"
        assert _closed_within(sock, 2)
    assert any("offered no username/password method" in line for line in relay.lines)


def test_wrong_password_is_refused(relay, echo):
    with _connect(relay) as sock:
        sock.sendall(b"\x05\x02\x00\x02")
        assert sock.recv(2) == b"\x05\x02"
        sock.sendall(_auth(b"ot-hpc", b"0" * 32))
        assert sock.recv(2) == b"\x01\x01"
        sock.sendall(_connect_request("127.0.0.1", echo))  # ignored: the relay hung up
        assert _closed_within(sock, 2)
    assert relay.master.requests == []
    assert any("wrong username or password" in line for line in relay.lines)
    assert not any(CREDENTIALS.password in line for line in relay.lines)


def test_wrong_username_is_refused(relay):
    assert not socks5.handshake("127.0.0.1", relay.port, 2, Credentials("nobody", CREDENTIALS.password))
    assert socks5.handshake("127.0.0.1", relay.port, 2, CREDENTIALS)
    assert not socks5.handshake("127.0.0.1", relay.port, 2)  # no-auth


def test_right_password_connect_goes_through_and_back(relay, echo):
    with socks5.connect("127.0.0.1", relay.port, "localhost", echo, 5, CREDENTIALS) as sock:
        sock.sendall(b"hello " * 10000)
        sock.shutdown(socket.SHUT_WR)  # half-close: the reply must still come back
        data = read_all(sock)
    assert data == b"echo:" + b"hello " * 10000
    assert relay.master.requests == [("localhost", echo)]  # the name goes to the master (socks5h)


def test_ipv4_address_requests_work_too(relay, echo):
    with socks5.connect("127.0.0.1", relay.port, "127.0.0.1", echo, 5, CREDENTIALS) as sock:
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(100) == b"echo:"
    assert relay.master.requests == [("127.0.0.1", echo)]


def test_a_refused_destination_gets_connection_refused(relay):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(socks5.SocksError, match=r"code 5\)"):
        socks5.connect("127.0.0.1", relay.port, "127.0.0.1", port, 5, CREDENTIALS)


@pytest.mark.parametrize("garbage", [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                                     b"\x04\x01\x00\x50\x7f\x00\x00\x01root\x00",  # SOCKS4
                                     b"\x05\x00"])  # SOCKS5 offering no method at all
def test_malformed_input_is_closed_quickly(relay, garbage):
    started = time.monotonic()
    with _connect(relay) as sock:
        sock.sendall(garbage)
        assert _closed_within(sock, 2)
    assert time.monotonic() - started < 1.0
    assert relay.master.requests == []


def test_a_silent_client_is_dropped_after_the_handshake_timeout(relay):
    with _connect(relay) as sock:
        assert _closed_within(sock, 3)  # handshake_timeout is 0.5 s here


def test_only_connect_is_served(relay, echo):
    with _connect(relay) as sock:
        sock.sendall(b"\x05\x01\x02")
        assert sock.recv(2) == b"\x05\x02"
        sock.sendall(_auth(CREDENTIALS.username.encode(), CREDENTIALS.password.encode()))
        assert sock.recv(2) == b"\x01\x00"
        sock.sendall(b"\x05\x02\x00\x01\x7f\x00\x00\x01" + struct.pack(">H", echo))  # BIND
        assert sock.recv(10)[:2] == b"\x05\x07"
        assert _closed_within(sock, 2)
    assert relay.master.requests == []


def test_no_master_is_a_general_failure_not_a_hang(tmp_path):
    lines = []
    server = socks_relay.Relay(("127.0.0.1", 0), str(tmp_path / "nothing-here"), CREDENTIALS, lines.append)
    listener = server.bind()
    threading.Thread(target=server.serve, daemon=True).start()
    with pytest.raises(socks5.SocksError, match=r"code 1\)"):
        socks5.connect("127.0.0.1", listener.getsockname()[1], "example.org", 443, 5, CREDENTIALS)
    listener.close()


def test_credentials_never_show_the_password():
    assert CREDENTIALS.password not in repr(CREDENTIALS) and CREDENTIALS.password not in str(CREDENTIALS)
    assert CREDENTIALS.matches(b"ot-hpc", CREDENTIALS.password.encode())
    assert not CREDENTIALS.matches(b"ot-hpc", CREDENTIALS.password.encode()[:-1])


def test_refusals_are_rate_limited():
    lines = []
    notes = socks_relay.Notes(lines.append, burst=3, window=60)
    for number in range(50):
        notes(f"refused {number}")
    assert lines == ["refused 0", "refused 1", "refused 2"]


def test_copy_stream_without_splice(monkeypatch):
    monkeypatch.delattr(os, "splice", raising=False)
    read_end, write_end = os.pipe()
    left, right = socket.socketpair()

    def feed():
        os.write(write_end, b"x" * 300000)
        os.close(write_end)

    threading.Thread(target=feed, daemon=True).start()
    received = []
    thread = threading.Thread(target=lambda: received.append(right.recv(1 << 20, socket.MSG_WAITALL)))
    thread.start()
    socks_relay.copy_stream(read_end, left.fileno(), 65536)
    left.close()
    thread.join(5)
    assert len(received[0]) == 300000
    os.close(read_end)
    right.close()


def test_the_relay_will_not_run_without_a_password(tmp_path):
    done = subprocess.run([sys.executable, "-m", "ot_hpc.runner.socks_relay", "--listen", "127.0.0.1:0",
                           "--control", str(tmp_path / "mux")], input="", capture_output=True, text=True,
                          env={"PYTHONPATH": REPO, "PATH": os.environ.get("PATH", "")}, timeout=30)
    assert done.returncode == socks_relay.EXIT_USAGE
    assert "no password on stdin" in done.stderr


def test_parse_listen():
    assert socks_relay.parse_listen("10.1.2.3:24803") == ("10.1.2.3", 24803)
    assert socks_relay.parse_listen("[fd00::2]:24803") == ("fd00::2", 24803)
    with pytest.raises(ValueError):
        socks_relay.parse_listen("10.1.2.3")
