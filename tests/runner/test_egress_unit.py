"""Proxy environment, ssh command, and the SOCKS5 client against a tiny local server."""
import socket
import struct
import threading

from ot_hpc.runner.egress import (
    no_proxy_list, parse_host_port, probe_tcp, proxy_environment, socks5_connect, socks5_handshake,
    ssh_argv,
)


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


def test_ssh_argv():
    argv = ssh_argv("jrlogin05i", "10.0.0.1", 24803, 22, "alice", "/home/a/.ssh/k", "/tmp/kh")
    text = " ".join(argv)
    assert argv[:5] == ["ssh", "-N", "-n", "-D", "10.0.0.1:24803"]
    for option in ("BatchMode=yes", "ExitOnForwardFailure=yes", "ServerAliveInterval=15",
                   "UserKnownHostsFile=/tmp/kh", "StrictHostKeyChecking=yes"):
        assert option in text
    assert "-i /home/a/.ssh/k" in text
    assert argv[-1] == "alice@jrlogin05i"
    assert "StrictHostKeyChecking=accept-new" in " ".join(ssh_argv("login", "1.2.3.4", 1))


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
