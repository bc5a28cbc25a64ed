"""Attacks on a running job's egress proxy, as another user, through the real local cluster.

A 2-node job with the tunnel on fetches through the proxy, then holds in training
(``demo.wait_for_file``). Meanwhile user ``nobody`` -- a tiny stdlib script run by
/usr/bin/python3, so nothing of ours needs to be readable by it -- tries SOCKS5 CONNECT to
the login node's sshd and to the "internet" service through the job's proxy port on the
head's address: with no authentication, a wrong password, the right username with an
empty password, and a SOCKS4 request (which ``ssh -D`` used to accept without any). Every
attempt must be refused. Then the job must still fetch through the proxy and end
COMPLETED.

Where the old design had its second door -- ``ssh -D`` on a port of the head node,
reachable by every user there (127.0.0.1 is not private on a shared node) -- the test
asserts there is none: the job's ssh holds no listening socket, its control socket is in
a directory only we can enter (``nobody`` gets EACCES), and no port of the job's block
on the head accepts a SOCKS greeting without a password, tried from the head's own
network stack where the cluster gives nodes one (tools/local-network.sh), else from the
shared loopback. The local cluster's partitions let jobs share nodes (cons_tres, no
``--exclusive``), so the job must log the shared-node WARNING.

Also: this run's password is in the job's environment (read as root from the trainer's
/proc/<pid>/environ) and nowhere else: not in any process's argv, not in the log, the
run state or the spec.
"""
from __future__ import annotations

import glob
import json
import os
import re
import subprocess
from urllib.parse import unquote, urlsplit

import pytest

from ot_hpc.runner import shutdown
from ot_hpc.scheduler import JobState

from ..conftest import wait_for
from .test_runner_slurm import (  # noqa: F401 - fixtures
    HTTP_BODY, JOB_TIMEOUT, SSHD_PORT, assert_clean, experiments, http_url, login_sshd, ray_available, submit,
)
from .test_tunnel_local import listening_tcp_inodes

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster", "ray_available")]

ATTACKER = r'''
import json, socket, struct, sys
proxy_host, proxy_port, targets, wrong = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]

def recv(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data

def attempt(greeting, auth, host, port):
    """What the proxy answered, as a word: 'connected' would be the attacker's win."""
    try:
        sock = socket.create_connection((proxy_host, proxy_port), timeout=5)
    except OSError as exc:
        return "unreachable: %s" % exc
    with sock:
        sock.settimeout(5)
        try:
            sock.sendall(greeting)
            answer = recv(sock, 2)
            if answer != b"\x05" + greeting[2:3]:
                return "refused greeting %r" % answer
            if auth is not None:
                sock.sendall(auth)
                if recv(sock, 2) != b"\x01\x00":
                    return "refused credentials"
            name = host.encode()
            sock.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack(">H", port))
            reply = recv(sock, 10)
            return "connected" if reply[:2] == b"\x05\x00" else "refused connect %r" % reply[:2]
        except OSError as exc:
            return "closed: %s" % exc

def userpass(user, password):
    return bytes([1, len(user)]) + user + bytes([len(password)]) + password

results = {}
for host, port in targets:
    key = "%s:%d" % (host, port)
    results[key + " no-auth"] = attempt(b"\x05\x01\x00", None, host, port)
    results[key + " wrong password"] = attempt(b"\x05\x01\x02", userpass(b"ot-hpc", wrong.encode()), host, port)
    results[key + " empty password"] = attempt(b"\x05\x01\x02", userpass(b"ot-hpc", b""), host, port)
    try:
        with socket.create_connection((proxy_host, proxy_port), timeout=5) as sock:
            sock.settimeout(5)
            ip = socket.inet_aton(socket.gethostbyname(host))
            sock.sendall(b"\x04\x01" + struct.pack(">H", port) + ip + b"nobody\x00")
            results[key + " socks4"] = "answered %r" % recv(sock, 8)
    except OSError as exc:
        results[key + " socks4"] = "closed: %s" % exc
print(json.dumps(results))
'''

SCAN = r'''
import json, socket, sys
host, ports = sys.argv[1], json.loads(sys.argv[2])
accepted = []
for port in ports:
    try:
        sock = socket.create_connection((host, port), timeout=0.3)
    except OSError:
        continue
    with sock:
        sock.settimeout(0.5)
        try:
            sock.sendall(b"\x05\x01\x00")
            if sock.recv(2) == b"\x05\x00":
                accepted.append(port)
        except OSError:
            pass
print(json.dumps(accepted))
'''

UNIX_PROBE = r'''
import json, socket, sys
sock = socket.socket(socket.AF_UNIX)
try:
    sock.connect(sys.argv[1])
    print(json.dumps("CONNECTED"))
except OSError as exc:
    print(json.dumps(type(exc).__name__))
'''


def as_nobody(script, *args, netns=None):
    """Run a stdlib script as uid nobody (optionally inside a node's network namespace)."""
    argv = ["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", script, *args]
    if netns:
        argv = ["nsenter", f"--net={netns}"] + argv
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def job_password(job):
    """This run's proxy password, from a job process's environment (root may read it)."""
    marker = job.state().details["marker"]
    for pid in shutdown.marked_processes(marker):
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environ = dict(item.split(b"=", 1) for item in handle.read().split(b"\0") if b"=" in item)
        except OSError:
            continue
        url = environ.get(b"ALL_PROXY")
        if url and b"@" in url:
            return unquote(urlsplit(url.decode()).password or "")
    pytest.fail("no process of the job carries ALL_PROXY with credentials")


def head_netns(node):
    path = f"/run/netns/ot-{node}"
    return path if os.path.exists(path) else None


def assert_password_only_in_the_environment(job, password):
    for path in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(path, "rb") as handle:
                assert password.encode() not in handle.read(), f"the proxy password is in the argv of {path}"
        except OSError:
            continue
    for path in (job.log_path, job.spec.state_path(str(job.id))):
        with open(path) as handle:
            assert password not in handle.read(), path
    for path in glob.glob(os.path.join(job.spec.experiments_dir, "specs", "*.json")):
        with open(path) as handle:
            assert password not in handle.read(), path


def test_other_users_cannot_use_the_jobs_proxy(experiments, login_sshd, http_url, tmp_path):
    go = tmp_path / "go"
    job = submit(experiments, "proxyattack", 2, [f"demo.fetch_url={http_url}", f"demo.wait_for_file={go}",
                                                 "demo.print_env=ALL_PROXY"], sshd=login_sshd)
    try:
        wait_for(lambda: "demo: waiting for" in job.log(), JOB_TIMEOUT, f"job {job.id} to be training")
        text = job.log()
        address, port = re.search(r"SOCKS tunnel socks5h://([^:/\s]+):(\d+) ", text).groups()
        password = job_password(job)
        internet = urlsplit(http_url)
        targets = [[job.spec.login_node, SSHD_PORT], [internet.hostname, internet.port]]
        results = as_nobody(ATTACKER, address, port, json.dumps(targets), "x" * len(password))
        assert len(results) == 8 and not [k for k, v in results.items() if v == "connected"], results
        assert all(v.startswith(("refused", "closed", "answered b''")) for v in results.values()), results
        # No second door: ssh listens nowhere, its control socket is ours alone, and no port of
        # the job's block on the head accepts SOCKS without a password (the head's own stack).
        state = job.state()
        ssh_pid = state.details["tunnel_pid"]
        assert listening_tcp_inodes(ssh_pid) == set()
        with open(f"/proc/{ssh_pid}/cmdline", "rb") as handle:
            argv = handle.read().decode().split("\0")
        assert "-D" not in argv
        control = argv[argv.index("-S") + 1]
        assert as_nobody(UNIX_PROBE, control) == "PermissionError"
        low, high = (int(x) for x in state.details["ports"].split("-"))
        netns = head_netns(re.search(r"batch node (\S+);", text).group(1))
        for host in ("127.0.0.1", address):
            assert as_nobody(SCAN, host, json.dumps(list(range(low, high + 1))), netns=netns) == []
        assert_password_only_in_the_environment(job, password)
    finally:
        go.write_text("go")
    record = job.wait_end()
    text = job.log()
    assert record.state == JobState.COMPLETED, text[-3000:]
    assert "demo: fetch 2 ok from the driver: " + HTTP_BODY in text
    assert "username/password required" in text
    assert "relay: refused" in text and "wrong username or password" in text
    assert "WARNING: other users' jobs may share these nodes: the job's OverSubscribe=OK" in text
    assert "demo: env ALL_PROXY=socks5h://ot-hpc:[redacted SOCKS_PASSWORD]@" in text
    assert "tunnel closed (0 restart(s) of ssh, 0 of the relay during the job)" in text
    assert_clean(job)
