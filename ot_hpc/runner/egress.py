"""Phase 2: internet access from the compute nodes.

- :func:`probe_tcp`: can this node open a TCP connection to host:port (not ping)?
- :class:`Tunnel`: ``ssh -N -D <addr>:<port>`` to a login node, on a per-job port bound
  on the batch node's interconnect address (so Ray workers on other nodes use it too),
  ready when a SOCKS5 handshake through it succeeds. A watchdog thread restarts a dead
  ssh with backoff on the same address and port, logging each restart. ssh's output
  goes to the job log, line by line, never into a variable that becomes a command.
- :func:`proxy_environment`: ALL_PROXY/HTTPS_PROXY/HTTP_PROXY (socks5h://) and NO_PROXY
  (loopback and every node of the allocation, so Ray's own gRPC never goes through it).
"""
from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

SOCKS_READY_TIMEOUT = 30.0
BACKOFF_SECONDS = (1, 2, 4, 8, 16, 30)


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


def socks5_handshake(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when a SOCKS5 server at host:port accepts the no-auth greeting."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"\x05\x01\x00")
            return _recv_exact(sock, 2) == b"\x05\x00"
    except OSError:
        return False


def _recv_exact(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("SOCKS server closed the connection")
        data += chunk
    return data


def socks5_connect(
    proxy_host: str, proxy_port: int, dest_host: str, dest_port: int, timeout: float = 10.0
) -> socket.socket:
    """A socket connected to dest through the SOCKS5 proxy (name resolved by the proxy)."""
    sock = socket.create_connection((proxy_host, proxy_port), timeout=timeout)
    try:
        sock.settimeout(timeout)
        sock.sendall(b"\x05\x01\x00")
        if _recv_exact(sock, 2) != b"\x05\x00":
            raise ConnectionError("SOCKS server refused the no-auth method")
        name = dest_host.encode("idna")
        sock.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack(">H", dest_port))
        reply = _recv_exact(sock, 4)
        if reply[1] != 0:
            raise ConnectionError(f"SOCKS CONNECT to {dest_host}:{dest_port} failed (code {reply[1]})")
        kind = reply[3]
        skip = {1: 4, 4: 16}.get(kind)
        if skip is None:
            skip = _recv_exact(sock, 1)[0]
        _recv_exact(sock, skip + 2)
        return sock
    except BaseException:
        sock.close()
        raise


def proxy_url(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"socks5h://{host}:{port}"


def no_proxy_list(nodes: Sequence[str], extra: Sequence[str] = ()) -> str:
    items: List[str] = ["localhost", "127.0.0.1", "::1"]
    for name in list(nodes) + list(extra):
        for item in (name, name.split(".")[0]):
            if item and item not in items:
                items.append(item)
    return ",".join(items)


def proxy_environment(address: str, port: int, nodes: Sequence[str], extra: Sequence[str] = ()) -> Dict[str, str]:
    """The proxy variables for Ray and the trainer (upper and lower case)."""
    url = proxy_url(address, port)
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


def ssh_argv(
    login_node: str,
    bind_address: str,
    port: int,
    ssh_port: int = 22,
    user: Optional[str] = None,
    key: Optional[str] = None,
    known_hosts: Optional[str] = None,
    alive_interval: int = 15,
) -> List[str]:
    """The tunnel's ssh command (pure)."""
    argv = [
        "ssh", "-N", "-n", "-D", f"{bind_address}:{port}",
        "-p", str(ssh_port),
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


class TunnelError(Exception):
    pass


class Tunnel:
    """An ssh SOCKS tunnel driven with ``sh``, kept alive by a watchdog thread."""

    def __init__(
        self,
        argv: List[str],
        bind_address: str,
        port: int,
        log: Callable[[str], None],
        env: Optional[Mapping[str, str]] = None,
        on_restart: Optional[Callable[[int, int], None]] = None,
        ready_timeout: float = SOCKS_READY_TIMEOUT,
        check_interval: float = 1.0,
    ) -> None:
        self.argv = list(argv)
        self.bind_address = bind_address
        self.port = port
        self.log = log
        self.env = dict(env) if env is not None else None
        self.on_restart = on_restart
        self.ready_timeout = ready_timeout
        self.check_interval = check_interval
        self.restarts = 0
        self.process = None  # sh.RunningCommand
        self._stop = threading.Event()
        self._watchdog: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return proxy_url(self.bind_address, self.port)

    @property
    def pid(self) -> Optional[int]:
        proc = self.process
        return proc.pid if proc is not None else None

    def alive(self) -> bool:
        proc = self.process
        return proc is not None and proc.is_alive()

    def _launch(self) -> None:
        import sh  # ~70 ms: only the code that drives processes imports it

        sink = self.log
        self.process = sh.Command(self.argv[0])(
            *self.argv[1:],
            _bg=True, _bg_exc=False, _new_session=True, _tty_out=False,
            _out=lambda line: sink(f"ssh: {line.rstrip()}") if line.strip() else None,
            _err=lambda line: sink(f"ssh: {line.rstrip()}") if line.strip() else None,
            _env=self.env, _ok_code=list(range(256)), _decode_errors="replace",
        )

    def _wait_ready(self, timeout: float) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if socks5_handshake(self.bind_address, self.port, timeout=1.0):
                return time.monotonic() - start
            if not self.alive():
                code = self._exit_code()
                raise TunnelError(f"ssh to {self.argv[-1]} exited with code {code} before the SOCKS port answered")
            time.sleep(0.05)
        raise TunnelError(f"SOCKS port {self.bind_address}:{self.port} did not answer within {timeout:g} s")

    def _exit_code(self) -> Optional[int]:
        proc = self.process
        if proc is None:
            return None
        try:
            return proc.exit_code
        except Exception:  # sh raises for signals
            return None

    def start(self) -> float:
        """Start ssh; return the seconds until SOCKS answered. Raises TunnelError."""
        with self._lock:
            self._launch()
            try:
                return self._wait_ready(self.ready_timeout)
            except TunnelError:
                self._kill()
                raise

    def start_watchdog(self) -> None:
        self._watchdog = threading.Thread(target=self._watch, name="tunnel-watchdog", daemon=True)
        self._watchdog.start()

    def _watch(self) -> None:
        failures = 0
        while not self._stop.wait(self.check_interval):
            if self.alive() and socks5_handshake(self.bind_address, self.port, timeout=2.0):
                failures = 0
                continue
            if self._stop.is_set():
                return
            why = "ssh is not running" if not self.alive() else "SOCKS handshake failed"
            delay = BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS) - 1)]
            failures += 1
            code = self._exit_code() if not self.alive() else None
            self.log(f"tunnel down ({why}{'' if code is None else f', exit code {code}'}); "
                     f"restart #{self.restarts + 1} in {delay} s")
            if self._stop.wait(delay):
                return
            with self._lock:
                if self._stop.is_set():
                    return
                self._kill()
                try:
                    self._launch()
                    seconds = self._wait_ready(self.ready_timeout)
                except TunnelError as exc:
                    self.log(f"tunnel restart #{self.restarts + 1} failed: {exc}")
                    continue
            self.restarts += 1
            failures = 0
            self.log(f"tunnel restarted (#{self.restarts}, ssh pid {self.pid}); SOCKS ready after {seconds:.2f} s")
            if self.on_restart:
                try:
                    self.on_restart(self.restarts, self.pid or 0)
                except Exception:
                    pass

    def _kill(self) -> None:
        proc = self.process
        if proc is None:
            return
        try:
            if proc.is_alive():
                proc.terminate()
                deadline = time.monotonic() + 2
                while proc.is_alive() and time.monotonic() < deadline:
                    time.sleep(0.02)
                if proc.is_alive():
                    proc.kill()
        except Exception:
            pass

    def stop(self) -> None:
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=5)
        with self._lock:
            self._kill()
