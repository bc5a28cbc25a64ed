"""Egress throughput: 100 MB through the job's proxy, before and after the relay.

- before: ``ssh -N -D <addr>:<port>``, what the runner used to start: SOCKS5 without
  authentication, the same ssh options otherwise.
- after:  the runner's tunnel as it is now (:class:`ot_hpc.runner.egress.Tunnel`): the ssh
  ControlMaster plus the password-protected SOCKS5 relay, each CONNECT a stdio forwarding.

Both go through the same sshd -- a private one on 127.0.0.1 (tests/runner/private_sshd.py:
the local cluster's own login sshd may sit in a network namespace, and other test runs
share it) -- to the same loopback TCP source/sink (a separate process), and are timed from the
SOCKS connect to the last byte: downloads (the source sends N MB, then closes) and
uploads (we send N MB, shut down, the sink answers with the count it got). Runs are
interleaved (before, after, before, ...) so a busy machine hurts both alike; prints
bytes/s per run, the medians, the best, after/before (the median of the per-pair ratios,
and best against best), and the CPU the job's side spends per 100 MB (ssh, the relay, the
client; the sshd is the login node's). Target: after >= 0.9x before.

    python benchmarks/bench_tunnel_throughput.py [--megabytes 100] [--repeat 7] [--address 127.0.0.2]
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from ot_hpc.runner import egress  # noqa: E402
from tests.runner.private_sshd import PrivateSshd  # noqa: E402

BUFFER = 1 << 20

SOURCE = r'''
import socket, struct, sys, threading
size = int(sys.argv[1])
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
block = b"x" * (1 << 20)
def serve(conn):
    with conn:
        mode = conn.recv(1)
        if mode == b"d":
            left = size
            while left > 0:
                conn.sendall(block[:min(left, len(block))])
                left -= min(left, len(block))
        elif mode == b"u":
            got, buf = 0, bytearray(1 << 20)
            while True:
                n = conn.recv_into(buf)
                if not n:
                    break
                got += n
            conn.sendall(struct.pack(">Q", got))
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
'''


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


MASTER_ONLY = ("ControlPersist=no", "ClearAllForwardings=yes")


def tunnel_ssh_argv(sshd: PrivateSshd, control: str) -> List[str]:
    return egress.ssh_argv(sshd.host, control, sshd.port, None, sshd.key, sshd.known_hosts)


def bare_ssh_argv(sshd: PrivateSshd, address: str, port: int) -> List[str]:
    """``ssh -N -n -D address:port`` with the tunnel's other options, as the runner had it."""
    argv = tunnel_ssh_argv(sshd, "/unused")
    options = argv[argv.index("-p"):-1]
    kept: List[str] = []
    for index, item in enumerate(options):
        if item in MASTER_ONLY or (item == "-o" and options[index + 1] in MASTER_ONLY):
            continue
        kept.append(item)
    return ["ssh", "-N", "-n", "-D", f"{address}:{port}", *kept, argv[-1]]


def start_bare(sshd: PrivateSshd, address: str) -> "tuple[subprocess.Popen, int]":
    port = free_port(address)
    proc = subprocess.Popen(bare_ssh_argv(sshd, address, port), stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not egress.socks5_handshake(address, port, 0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the bare ssh -D did not come up")
        time.sleep(0.05)
    return proc, port


def start_relay(sshd: PrivateSshd, address: str) -> "tuple[egress.Tunnel, int]":
    port = free_port(address)
    credentials = egress.new_credentials()
    control = egress.private_control_path()
    argv = tunnel_ssh_argv(sshd, control)
    relay = egress.relay_argv(sys.executable, address, port, control)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": REPO}
    tunnel = egress.Tunnel(argv, relay, control, address, port, credentials,
                           lambda line: print(f"  [tunnel] {line}", flush=True), env=env)
    tunnel.start()
    return tunnel, port


def transfer(address: str, port: int, target: int, size: int, mode: str,
             credentials: Optional[egress.Credentials]) -> float:
    """Bytes per second of one transfer of ``size`` bytes ("d" download, "u" upload)."""
    started = time.monotonic()
    sock = egress.socks5_connect(address, port, "127.0.0.1", target, 30.0, credentials)
    with sock:
        sock.sendall(mode.encode())
        if mode == "d":
            got, buffer = 0, bytearray(BUFFER)
            while True:
                count = sock.recv_into(buffer)
                if not count:
                    break
                got += count
        else:
            block, left = b"y" * BUFFER, size
            while left > 0:
                sock.sendall(block[:min(left, BUFFER)])
                left -= min(left, BUFFER)
            sock.shutdown(socket.SHUT_WR)
            got = int.from_bytes(egress.socks5.recv_exact(sock, 8), "big")
    seconds = time.monotonic() - started
    if got != size:
        raise SystemExit(f"{mode}: moved {got} bytes, expected {size}")
    return size / seconds


def cpu_seconds(pids: List[int]) -> float:
    """User + system CPU of these processes so far (all their threads, live or ended)."""
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measured(run: Callable[[], float], pids: List[int], size: int) -> "tuple[float, float]":
    """(bytes/s, CPU seconds per 100 MB of ``pids`` and this process, the client)."""
    start, own = cpu_seconds(pids), os.times()
    rate = run()
    now = os.times()
    used = cpu_seconds(pids) - start + (now.user + now.system) - (own.user + own.system)
    return rate, used * (100 * 1024 * 1024) / size


def report(name: str, runs: Dict[str, List["tuple[float, float]"]]) -> None:
    rates = {key: [rate for rate, _ in values] for key, values in runs.items()}
    before, after = statistics.median(rates["before"]), statistics.median(rates["after"])
    pairs = statistics.median(a / b for a, b in zip(rates["after"], rates["before"]))
    cpu = {key: statistics.median(c for _, c in values) for key, values in runs.items()}
    print(f"{name}: before (ssh -D) median {before / 1e6:.0f} MB/s, best {max(rates['before']) / 1e6:.0f}; "
          f"after (relay) median {after / 1e6:.0f} MB/s, best {max(rates['after']) / 1e6:.0f}; after/before: "
          f"{pairs:.2f}x (median of the pairs), {max(rates['after']) / max(rates['before']):.2f}x (best)")
    print(f"  job-side CPU per 100 MB (ssh, relay, client): before {cpu['before']:.3f} s, after {cpu['after']:.3f} s")
    for key in ("before", "after"):
        print(f"  {key:6s} " + " ".join(f"{r / 1e6:.0f}" for r in rates[key]) + " MB/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--address", default="127.0.0.2", help="where both proxies listen (the head's address)")
    args = parser.parse_args()
    size = args.megabytes * 1024 * 1024
    source = subprocess.Popen([sys.executable, "-c", SOURCE, str(size)], stdout=subprocess.PIPE, text=True)
    bare = tunnel = None
    sshd = PrivateSshd(tempfile.mkdtemp(prefix="ot-bench-sshd-")).start()
    try:
        target = int(source.stdout.readline())
        bare, bare_port = start_bare(sshd, args.address)
        tunnel, relay_port = start_relay(sshd, args.address)
        print(f"load average {os.getloadavg()[0]:.2f}; {args.megabytes} MB x {args.repeat} per direction, interleaved")
        proxies = {
            "before": ([bare.pid], lambda mode: transfer(args.address, bare_port, target, size, mode, None)),
            "after": ([tunnel.pid, tunnel.relay_pid],
                      lambda mode: transfer(args.address, relay_port, target, size, mode, tunnel.credentials)),
        }
        for mode, name in (("d", "download"), ("u", "upload")):
            runs: Dict[str, List["tuple[float, float]"]] = {"before": [], "after": []}
            for _ in range(args.repeat):
                for key, (pids, run) in proxies.items():
                    runs[key].append(measured(lambda: run(mode), pids, size))
            report(name, runs)
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
    finally:
        if tunnel is not None:
            tunnel.stop()
        for proc in (bare, source):
            if proc is not None:
                proc.terminate()
                proc.wait(5)
        sshd.stop()
        shutil.rmtree(sshd.directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
