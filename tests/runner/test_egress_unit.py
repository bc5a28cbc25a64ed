"""Proxy environment (credentials, redaction), ssh and relay commands, and the SOCKS5
client against a tiny local server."""
import os
import socket
import stat
import struct
import threading
from urllib.parse import unquote, urlsplit

from ot_hpc.demo_trainer import without_credentials
from ot_hpc.runner import egress
from ot_hpc.runner.egress import (
    Credentials, no_proxy_list, parse_host_port, probe_tcp, proxy_environment, proxy_url, relay_argv,
    socks5_connect, socks5_handshake, ssh_argv,
)
from ot_hpc.runner.joblog import Redactor
from ot_hpc.upload import explain


def test_proxy_environment():
    env = proxy_environment("10.1.2.3", 24803, ["jrc0001", "jrc0002.jureca"], ["10.1.2.3", "jrc0001i"])
    assert env["ALL_PROXY"] == env["all_proxy"] == "socks5h://10.1.2.3:24803"
    assert env["HTTPS_PROXY"] == env["HTTP_PROXY"] == "socks5h://10.1.2.3:24803"
    no_proxy = env["NO_PROXY"].split(",")
    for item in ("localhost", "127.0.0.1", "::1", "jrc0001", "jrc0002.jureca", "jrc0002", "10.1.2.3", "jrc0001i"):
        assert item in no_proxy
    assert env["grpc_proxy"] == ""  # Ray's gRPC never uses the tunnel


def test_no_proxy_has_no_duplicates():
    assert no_proxy_list(["a", "a"]) == "localhost,127.0.0.1,::1,a"


def test_proxy_environment_carries_the_credentials_only_in_the_urls():
    credentials = egress.new_credentials()
    env = proxy_environment("10.1.2.3", 24803, ["jrc0001"], [], credentials)
    for key in ("ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        parts = urlsplit(env[key])
        assert parts.scheme == "socks5h" and (parts.hostname, parts.port) == ("10.1.2.3", 24803)
        assert (unquote(parts.username), unquote(parts.password)) == (egress.PROXY_USER, credentials.password)
    assert credentials.password not in env["NO_PROXY"] + env["grpc_proxy"]
    assert proxy_url("fd00::2", 1080, Credentials("u", "p@ss:w/rd")) == "socks5h://u:p%40ss%3Aw%2Frd@[fd00::2]:1080"


def test_fresh_credentials_every_run():
    first, second = egress.new_credentials(), egress.new_credentials()
    assert first.password != second.password and len(first.password) == 32
    assert first.password not in repr(first)


def test_printed_urls_are_redacted_and_never_carry_the_password():
    credentials = egress.new_credentials()
    url = proxy_url("127.0.0.2", 20003, credentials)
    redactor = Redactor()
    redactor.add(egress.PASSWORD_LABEL, credentials.password)
    assert credentials.password not in redactor(f"ALL_PROXY={url}")
    assert f"[redacted {egress.PASSWORD_LABEL}]" in redactor(f"ALL_PROXY={url}")
    assert without_credentials(url) == "socks5h://127.0.0.2:20003"  # the demo trainer's messages
    line = explain(ConnectionError("boom"), "org/x", {"HTTPS_PROXY": url})  # the upload's one line
    assert credentials.password not in line and "socks5h://127.0.0.2:20003" in line


def test_ssh_argv_is_a_master_that_forwards_nothing():
    argv = ssh_argv("jrlogin05i", "/tmp/ot-hpc-ssh-x/mux", 22, "alice", "/home/a/.ssh/k", "/tmp/kh")
    text = " ".join(argv)
    assert argv[:6] == ["ssh", "-N", "-n", "-M", "-S", "/tmp/ot-hpc-ssh-x/mux"]
    assert "-D" not in argv and "-L" not in argv and "-R" not in argv  # nothing listens
    for option in ("ControlPersist=no", "ClearAllForwardings=yes", "BatchMode=yes",
                   "ServerAliveInterval=15", "UserKnownHostsFile=/tmp/kh", "StrictHostKeyChecking=yes"):
        assert option in text
    assert "-i /home/a/.ssh/k" in text
    assert argv[-1] == "alice@jrlogin05i"
    assert "StrictHostKeyChecking=accept-new" in " ".join(ssh_argv("login", "/tmp/c"))


def test_relay_argv_has_no_password():
    credentials = egress.new_credentials()
    argv = relay_argv("/usr/bin/python3", "10.0.0.1", 24803, "/tmp/ot-hpc-ssh-x/mux")
    assert argv[1:3] == ["-m", "ot_hpc.runner.socks_relay"]
    assert "10.0.0.1:24803" in argv and "/tmp/ot-hpc-ssh-x/mux" in argv
    assert relay_argv("p", "fd00::2", 1, "/c")[4] == "[fd00::2]:1"
    assert credentials.password not in " ".join(argv)


def test_private_control_path(tmp_path):
    path = egress.private_control_path(str(tmp_path))
    directory = os.path.dirname(path)
    assert os.path.basename(path) == "mux" and directory.startswith(str(tmp_path))
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    long_base = tmp_path / ("x" * 120)
    long_base.mkdir()
    fallback = egress.private_control_path(str(long_base))
    os.rmdir(os.path.dirname(fallback))
    assert fallback.startswith("/tmp/ot-hpc-ssh-")  # a socket path must fit sun_path


def test_parse_host_port():
    assert parse_host_port("huggingface.co:443") == ("huggingface.co", 443)
    assert parse_host_port("example.org") == ("example.org", 443)
    assert parse_host_port("[::1]:8080") == ("::1", 8080)


def test_probe_tcp():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert probe_tcp("127.0.0.1", port) is None
    assert "127.0.0.1:%d" % port in probe_tcp("127.0.0.1", port, timeout=1)


def _mini_socks_server():
    """A one-connection SOCKS5 server that answers CONNECT with 'hello <host>:<port>'."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve():
        for _ in range(2):
            conn, _ = server.accept()
            with conn:
                assert conn.recv(3) == b"\x05\x01\x00"
                conn.sendall(b"\x05\x00")
                head = conn.recv(4)
                if not head:
                    continue
                length = conn.recv(1)[0]
                host = conn.recv(length).decode()
                port = struct.unpack(">H", conn.recv(2))[0]
                conn.sendall(b"\x05\x00\x00\x01" + b"\x00" * 6)
                conn.sendall(f"hello {host}:{port}".encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server


def test_socks5_handshake_and_connect():
    server = _mini_socks_server()
    try:
        port = server.getsockname()[1]
        assert socks5_handshake("127.0.0.1", port)
        with socks5_connect("127.0.0.1", port, "huggingface.co", 443) as sock:
            assert sock.recv(100) == b"hello huggingface.co:443"
    finally:
        server.close()
