"""Phase 2: internet access from the compute nodes, for this job only.

- :func:`probe_tcp`: can this node open a TCP connection to host:port (not ping)?
- The tunnel (:class:`Tunnel`, :mod:`.tunnel`): an ssh ControlMaster to a login node that
  forwards no port (:func:`ssh_argv`: nothing of it listens), plus the job's SOCKS5 relay
  (:mod:`.socks_relay`, :func:`relay_argv`) on the batch node's interconnect address and
  the job's SOCKS port, so Ray workers on other nodes use it too. The relay accepts only
  RFC 1929 username/password with credentials made fresh for each run of the job
  (:func:`new_credentials`) and turns each CONNECT into a stdio forwarding of the ssh
  master, through a control socket in a directory only we can enter
  (:func:`private_control_path`). Ready when an authenticated SOCKS5 handshake through
  the relay succeeds; a watchdog restarts either process with backoff, on the same
  control path and port.
- :func:`proxy_environment`: ALL_PROXY/HTTPS_PROXY/HTTP_PROXY
  (``socks5h://<user>:<password>@<head>:<port>``) and NO_PROXY (loopback and every node
  of the allocation, so Ray's own gRPC never goes through it). The password reaches the
  job's processes through their environment (readable by us and root only) and the relay
  through its stdin, never argv; the job log redacts it (:data:`PASSWORD_LABEL`).
"""
from __future__ import annotations

import os
import secrets
import socket
import tempfile
import threading
from typing import Dict, List, Optional, Sequence, Tuple
from urllib.parse import quote

from . import socks5
from .private import make_private_dir
from .socks5 import Credentials
from .tunnel import Tunnel, TunnelError

__all__ = ["Credentials", "Tunnel", "TunnelError"]  # re-exported for the runner

PROXY_USER = "ot-hpc"
PASSWORD_LABEL = "SOCKS_PASSWORD"  # what the job log shows instead: [redacted SOCKS_PASSWORD]
MAX_SOCKET_PATH = 100  # sun_path is 108 bytes; ssh adds ".<16 random characters>" while binding


def parse_host_port(text: str, default_port: int = 443) -> Tuple[str, int]:
    """``host:port``, ``host``, ``[v6]:port`` -> (host, port)."""
    text = (text or "").strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":")
        return host, int(port) if port else default_port
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, default_port


def probe_tcp(host: str, port: int, timeout: float = 3.0) -> Optional[str]:
    """None when a TCP connection opens, else one line saying why not. The whole probe,
    name resolution included (which ignores socket timeouts), ends within ``timeout``."""
    result: List[Optional[str]] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(None)
        except socket.timeout:
            result.append(f"no answer from {host}:{port} within {timeout:g} s")
        except OSError as exc:
            result.append(f"{host}:{port}: {exc.strerror or exc}")

    thread = threading.Thread(target=attempt, name="egress-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    if not result:
        return f"no answer from {host}:{port} within {timeout:g} s (name resolution or connect)"
    return result[0]


SHARED_NODE_NOTE = (
    "The relay still demands this run's password and ssh's control socket stays private (0700), "
    "but other users there can see the job's processes and ports, may take a port first, and "
    "reach whatever of the job listens on 127.0.0.1 without authentication (README: shared nodes)")


def shared_node_warning(job_id: str) -> Optional[str]:
    """A WARNING line when other users' jobs may share the allocation's nodes, else None
    (:mod:`.sharing`: never fatal)."""
    from .sharing import shared_nodes

    why = shared_nodes(job_id)
    return f"WARNING: other users' jobs may share these nodes: {why}. {SHARED_NODE_NOTE}" if why else None


def new_credentials() -> Credentials:
    """Fresh credentials for one run of the job (128 random bits of password)."""
    return Credentials(PROXY_USER, secrets.token_hex(16))


def socks5_handshake(host: str, port: int, timeout: float = 2.0,
                     credentials: Optional[Credentials] = None) -> bool:
    """True when a SOCKS5 server at host:port accepts us (see :func:`.socks5.handshake`)."""
    return socks5.handshake(host, port, timeout, credentials)


def socks5_connect(proxy_host: str, proxy_port: int, dest_host: str, dest_port: int,
                   timeout: float = 10.0, credentials: Optional[Credentials] = None) -> socket.socket:
    """A socket connected to dest through the SOCKS5 proxy (name resolved by the proxy)."""
    return socks5.connect(proxy_host, proxy_port, dest_host, dest_port, timeout, credentials)


def proxy_url(address: str, port: int, credentials: Optional[Credentials] = None) -> str:
    """``socks5h://[user:password@]host:port``; only the environment gets the credentials."""
    host = f"[{address}]" if ":" in address else address
    auth = ""
    if credentials is not None:
        auth = f"{quote(credentials.username, safe='')}:{quote(credentials.password, safe='')}@"
    return f"socks5h://{auth}{host}:{port}"


def no_proxy_list(nodes: Sequence[str], extra: Sequence[str] = ()) -> str:
    items: List[str] = ["localhost", "127.0.0.1", "::1"]
    for name in list(nodes) + list(extra):
        for item in (name, name.split(".")[0]):
            if item and item not in items:
                items.append(item)
    return ",".join(items)


def proxy_environment(address: str, port: int, nodes: Sequence[str], extra: Sequence[str] = (),
                      credentials: Optional[Credentials] = None) -> Dict[str, str]:
    """The proxy variables for Ray and the trainer (upper and lower case)."""
    url = proxy_url(address, port, credentials)
    no_proxy = no_proxy_list(nodes, extra)
    env: Dict[str, str] = {}
    for key in ("ALL_PROXY", "HTTPS_PROXY", "HTTP_PROXY"):
        env[key] = url
        env[key.lower()] = url
    env["NO_PROXY"] = no_proxy
    env["no_proxy"] = no_proxy
    # gRPC (Ray's own traffic) reads grpc_proxy before https_proxy/http_proxy; empty
    # means "no proxy", so Ray never tries to send its RPCs through the SOCKS tunnel.
    env["grpc_proxy"] = ""
    return env


def private_control_path(base: Optional[str] = None) -> str:
    """``<new directory, mode 0700, random name, owner checked>/mux``: where ssh's control
    socket goes. In ``base`` (the run's private directory) unless that makes the path too
    long for a socket, then in /tmp."""
    base = base or tempfile.gettempdir()
    if len(os.path.join(base, "ot-hpc-ssh-xxxxxxxx", "mux")) > MAX_SOCKET_PATH:
        base = "/tmp"
    return os.path.join(make_private_dir(base, prefix="ot-hpc-ssh-"), "mux")


def ssh_argv(
    login_node: str,
    control_path: str,
    ssh_port: int = 22,
    user: Optional[str] = None,
    key: Optional[str] = None,
    known_hosts: Optional[str] = None,
    alive_interval: int = 15,
) -> List[str]:
    """The tunnel's ssh command (pure): a ControlMaster in the foreground that forwards
    nothing itself (``ClearAllForwardings`` also drops forwardings a user's
    ~/.ssh/config would add), reached only through its control socket."""
    argv = [
        "ssh", "-N", "-n", "-M", "-S", control_path,
        "-p", str(ssh_port),
        "-o", "ControlPersist=no",
        "-o", "ClearAllForwardings=yes",
        "-o", "BatchMode=yes",
        "-o", "ExitOnForwardFailure=yes",
        "-o", f"ServerAliveInterval={alive_interval}",
        "-o", "ServerAliveCountMax=3",
        "-o", "ConnectTimeout=15",
        "-o", "LogLevel=ERROR",
    ]
    if known_hosts:
        argv += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes"]
    else:
        argv += ["-o", "StrictHostKeyChecking=accept-new"]
    if key:
        argv += ["-i", key, "-o", "IdentitiesOnly=yes"]
    argv.append(f"{user}@{login_node}" if user else login_node)
    return argv


def relay_argv(python: str, bind_address: str, port: int, control_path: str,
               user: str = PROXY_USER) -> List[str]:
    """The relay's command (pure; the password goes to its stdin, never here)."""
    host = f"[{bind_address}]" if ":" in bind_address else bind_address
    return [python, "-m", "ot_hpc.runner.socks_relay", "--listen", f"{host}:{port}",
            "--control", control_path, "--user", user]
