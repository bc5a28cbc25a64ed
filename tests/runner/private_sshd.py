"""A throwaway sshd on 127.0.0.1 for tests and benchmarks of the tunnel without Slurm.

Its own host key, client key, authorized_keys and config in a directory of ours, on a free
loopback port, ``sshd -D`` as a child of ours: :meth:`PrivateSshd.stop` ends exactly that
pid. Independent of the local cluster's own login sshd (tools/local-login-sshd.sh) and of
the cluster's network mode, which other test runs share.
"""
from __future__ import annotations

import os
import socket
import subprocess
import time

SSHD = "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateSshd:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.port = _free_port()
        self.key = os.path.join(directory, "id_ed25519")
        self.known_hosts = os.path.join(directory, "known_hosts")
        self.host = "127.0.0.1"
        self.process = None

    def _write(self) -> str:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        host_key = os.path.join(self.directory, "host_ed25519")
        for path in (host_key, self.key):
            if not os.path.exists(path):
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)
        authorized = os.path.join(self.directory, "authorized_keys")
        with open(self.key + ".pub") as src, open(authorized, "w") as dst:
            dst.write(src.read())
        with open(host_key + ".pub") as pub, open(self.known_hosts, "w") as dst:
            dst.write(f"[{self.host}]:{self.port} {' '.join(pub.read().split()[:2])}\n")
        config = os.path.join(self.directory, "sshd_config")
        with open(config, "w") as handle:
            handle.write(f"Port {self.port}\nListenAddress {self.host}\nHostKey {host_key}\nPidFile none\n"
                         f"AuthorizedKeysFile {authorized}\nPermitRootLogin prohibit-password\n"
                         "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                         "StrictModes no\nAllowTcpForwarding yes\nGatewayPorts no\nX11Forwarding no\n"
                         "PrintMotd no\nMaxStartups 100:30:200\nLogLevel ERROR\n")
        return config

    def start(self) -> "PrivateSshd":
        config = self._write()
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
        self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", config], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(4) == b"SSH-":
                        return self
            except OSError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the private sshd did not start on {self.host}:{self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
