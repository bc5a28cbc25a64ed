"""The runner's tunnel (ssh ControlMaster + relay) for real, against a private sshd on
127.0.0.1 (tests/runner/private_sshd.py), without Slurm: readiness, what listens, who may
use it, the clients the job really uses, restarts with backoff on the same port, and a
stop that never waits for the watchdog.
"""
from __future__ import annotations

import functools
import http.server
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from ot_hpc.runner import egress, sshmux

from ..conftest import REPO, wait_for
from . import tcpserver
from .private_sshd import PrivateSshd

BODY = b"through the tunnel"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = PrivateSshd(str(tmp_path_factory.mktemp("sshd"))).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """A static file on an address outside NO_PROXY (127.0.0.9), so clients use the proxy."""
    root = tmp_path_factory.mktemp("web")
    (root / "index.html").write_bytes(BODY)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.9", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.9:{server.server_address[1]}/"
    server.shutdown()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.2", 0))
        return sock.getsockname()[1]


def make_tunnel(sshd, halt=None):
    control = egress.private_control_path()
    port = _free_port()
    lines = []
    tun = egress.Tunnel(egress.ssh_argv(sshd.host, control, sshd.port, None, sshd.key, sshd.known_hosts),
                        egress.relay_argv(sys.executable, "127.0.0.2", port, control), control,
                        "127.0.0.2", port, egress.new_credentials(), lines.append,
                        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": REPO}, check_interval=0.2,
                        halt=halt)
    tun.lines = lines
    return tun


@pytest.fixture
def tunnel(sshd):
    tun = make_tunnel(sshd)
    yield tun
    tun.stop()


def _get(tunnel, url, credentials=None):
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with egress.socks5_connect(tunnel.bind_address, tunnel.port, parts.hostname, parts.port, 5,
                               credentials or tunnel.credentials) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk


def listening_tcp_inodes(pid):
    """Inodes of the TCP sockets in LISTEN state that process ``pid`` holds."""
    held = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            held.add(target[8:-1])
    listening = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":
                    listening.add(fields[9])
    return held & listening


def test_ready_by_handshake_and_nothing_of_ssh_listens(tunnel, web):
    seconds = tunnel.start()
    assert seconds < 30
    assert sshmux.master_pid(tunnel.control_path) == tunnel.pid
    assert _get(tunnel, web).endswith(BODY)
    assert listening_tcp_inodes(tunnel.pid) == set()  # no -D, no forwarding: ssh listens nowhere
    assert listening_tcp_inodes(tunnel.relay_pid)  # the relay is the one listener
    directory = os.path.dirname(tunnel.control_path)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    for pid in (tunnel.pid, tunnel.relay_pid):  # argv is world-readable: never the password
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            assert tunnel.credentials.password.encode() not in handle.read()
    tunnel.stop()
    assert not os.path.exists(directory)


@pytest.fixture(scope="module")
def counter():
    """A TCP server on 127.0.0.9 that reads to EOF, then answers with the byte count and a
    digest: the client's half-close must reach it, and its answer come back after that."""
    import hashlib

    def count(conn):
        digest, total = hashlib.sha256(), 0
        while True:
            chunk = conn.recv(1 << 16)
            if not chunk:
                break
            digest.update(chunk)
            total += len(chunk)
        conn.sendall(f"{total} {digest.hexdigest()}".encode() + b"z" * (8 << 20))

    server = tcpserver.start("127.0.0.9", count)
    yield server.getsockname()[1]
    server.close()


def test_both_directions_and_both_half_closes_through_the_real_master(tunnel, counter):
    import hashlib

    tunnel.start()
    payload = os.urandom(3 << 20)
    with egress.socks5_connect(tunnel.bind_address, tunnel.port, "127.0.0.9", counter, 10,
                               tunnel.credentials) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)  # our EOF reaches the server through ssh ...
        answer = b""
        while True:  # ... and the server's EOF reaches us: this read ends
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            answer += chunk
    head = f"{len(payload)} {hashlib.sha256(payload).hexdigest()}".encode()
    assert answer == head + b"z" * (8 << 20)


def test_only_the_password_gets_in(tunnel, web):
    tunnel.start()
    assert not egress.socks5_handshake(tunnel.bind_address, tunnel.port, 2)
    wrong = egress.Credentials(egress.PROXY_USER, "f" * 32)
    assert not egress.socks5_handshake(tunnel.bind_address, tunnel.port, 2, wrong)
    with pytest.raises(ConnectionError):
        _get(tunnel, web, wrong)
    assert egress.socks5_handshake(tunnel.bind_address, tunnel.port, 2, tunnel.credentials)
    wait_for(lambda: any("wrong username or password" in line for line in tunnel.lines), 5, "the refusal line")
    assert not any(tunnel.credentials.password in line for line in tunnel.lines)


def test_another_user_cannot_open_the_control_socket(tunnel):
    tunnel.start()
    probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
             "try:\n    s.connect(sys.argv[1])\nexcept OSError as e:\n    print(type(e).__name__)\n"
             "else:\n    print('CONNECTED')\n")
    done = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", probe, tunnel.control_path],
                          capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == "PermissionError", done.stdout + done.stderr


def test_clients_the_job_uses_accept_the_credentials_url(tunnel, web, monkeypatch):
    """curl and huggingface_hub's HTTP client (httpx2 + socksio) take socks5h://user:pw@."""
    tunnel.start()
    env = egress.proxy_environment(tunnel.bind_address, tunnel.port, ["n1"], [], tunnel.credentials)
    done = subprocess.run(["curl", "-sS", "--max-time", "10", web], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=30)
    assert done.stdout == BODY.decode(), done.stderr
    bad = egress.proxy_url(tunnel.bind_address, tunnel.port, egress.Credentials(egress.PROXY_USER, "0" * 32))
    done = subprocess.run(["curl", "-sS", "--max-time", "10", "-x", bad, web], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode != 0 and "rejected" in done.stderr
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from huggingface_hub.utils import close_session, get_session

    close_session()  # a client made now takes the proxy variables
    try:
        assert get_session().get(web).content == BODY
    finally:
        close_session()


def test_a_killed_ssh_or_relay_is_restarted_on_the_same_port(tunnel, web):
    tunnel.start()
    tunnel.start_watchdog()
    old_ssh, old_relay = tunnel.pid, tunnel.relay_pid
    os.kill(old_ssh, signal.SIGKILL)
    wait_for(lambda: tunnel.restarts == 1, 20, "the ssh restart")
    assert tunnel.pid != old_ssh and _get(tunnel, web).endswith(BODY)
    os.kill(old_relay, signal.SIGKILL)
    wait_for(lambda: tunnel.relay_restarts == 1, 20, "the relay restart")
    assert tunnel.relay_pid != old_relay and _get(tunnel, web).endswith(BODY)
    text = "\n".join(tunnel.lines)
    assert "tunnel down (ssh is not running" in text and "tunnel restarted (#1, ssh pid" in text
    assert "relay down (relay is not running" in text and "relay restarted (#1, pid" in text


def test_stop_never_waits_for_a_restart(tunnel):
    tunnel.start()
    tunnel.start_watchdog()
    halt_ssh = tunnel.pid
    os.kill(halt_ssh, signal.SIGKILL)  # the watchdog now waits 1 s, then restarts
    time.sleep(1.1)
    started = time.monotonic()
    tunnel.stop()
    assert time.monotonic() - started < 3.0
    assert not tunnel.ssh.alive() and not tunnel.relay.alive()


def test_no_restart_once_the_job_is_stopping(sshd):
    halt = threading.Event()
    tun = make_tunnel(sshd, halt)
    try:
        tun.start()
        tun.start_watchdog()
        halt.set()  # scancel: the runner's stop event
        os.kill(tun.pid, signal.SIGKILL)
        time.sleep(2.0)
        assert tun.restarts == 0 and not any("restarted" in line for line in tun.lines)
    finally:
        tun.stop()
