"""The local cluster's network is what tools/local-network.sh promises, for real.

With separate hosts: every compute node is its own network namespace on the fabric, the
internet service (tools/local-internet.py on ``ot-internet``) is unreachable from there
directly and reachable through an SSH tunnel to ``ot-login`` (the job's tunnel: the very
ssh command the runner builds), and from the login node's namespace. Jobs and srun steps
run in their node's namespace. In loopback mode the same names resolve to 127.0.0.x and
nothing is isolated. Every connection attempt has a short timeout and goes only to
addresses these namespaces own.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest


from .conftest import REPO, base_environment

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

SSH_DIR = os.environ.get("OT_LOCAL_SSHD_DIR", "/var/lib/ot-hpc-local/ssh")
SSH_PORT = int(os.environ.get("OT_LOCAL_SSHD_PORT", "2222"))
BODY = "ot-hpc egress ok"

# Connect to host:port from wherever this runs; print "open" or the error (never hangs).
CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print("open")
except OSError as exc:
    print(f"{type(exc).__name__}: {exc.strerror or exc}")
"""
FETCH = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"


def separate_only(net) -> None:
    if not net.separate:
        pytest.skip("loopback mode: one shared network stack, nothing is isolated")


def test_names_resolve_to_the_modes_addresses(local_network):
    net = local_network
    for node, addr in net.nodes.items():
        assert socket.gethostbyname(node) == addr
    assert socket.gethostbyname(net.login_host) == net.login_addr
    assert socket.gethostbyname(net.internet_host) == net.internet_addr
    assert len(set(net.nodes.values())) == len(net.nodes) == 3
    if net.separate:
        assert set(net.node_netns) == set(net.nodes)
        assert all(not socket.inet_aton(a).startswith(b"\x7f") for a in net.nodes.values())
    else:
        assert net.nodes == {"n1": "127.0.0.2", "n2": "127.0.0.3", "n3": "127.0.0.4"}
        assert net.login_addr == net.internet_addr == "127.0.0.1"


def test_the_login_node_reaches_the_internet_service(local_network):
    net = local_network
    done = net.run_in(net.login_netns, [sys.executable, "-c", FETCH, net.internet_url])
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.startswith(f"{BODY}: {net.internet_host} {net.internet_addr}:{net.internet_port}")


def test_compute_nodes_cannot_reach_the_internet_directly(local_network):
    net = local_network
    separate_only(net)
    for node, netns in net.node_netns.items():
        started = time.monotonic()
        done = net.run_in(netns, [sys.executable, "-c", CONNECT, net.internet_host, str(net.internet_port)])
        assert done.stdout.strip() == "OSError: Network is unreachable", (node, done.stdout, done.stderr)
        assert time.monotonic() - started < 10
        # No route out at all: only the fabric, no default route (asked of the routing
        # table, so no packet is ever sent anywhere).
        routes = net.run_in(netns, ["ip", "-4", "route", "show"]).stdout.strip().splitlines()
        assert len(routes) == 1 and routes[0].startswith(f"{net.controller.rsplit('.', 1)[0]}.0/24 "), routes
        # ... while the controller is there, on the fabric (asked properly: a bare TCP
        # probe of slurmctld's port would log an error there)
        done = net.run_in(netns, ["scontrol", "ping"])
        assert "is UP" in done.stdout, (node, done.stdout, done.stderr)


def test_the_login_node_does_not_route_between_its_links(local_network):
    net = local_network
    separate_only(net)
    forward = net.run_in(net.login_netns, ["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip()
    assert forward == "0"
    done = net.run_in(net.internet_netns, [sys.executable, "-c", CONNECT, net.login_addr, str(SSH_PORT)])
    assert done.stdout.strip() == "OSError: Network is unreachable", done.stdout  # the fabric: no way


def _fetch_through_tunnel(net, node: str) -> str:
    """From inside ``node``'s namespace: the job's tunnel as the runner makes it (the ssh
    ControlMaster to the login node plus the password-protected SOCKS5 relay, bound on the
    node's address), then GET the internet service through it."""
    port = 19900 + int(node[1:])  # below Ray's port blocks (ot_hpc.runner.ports)
    script = (
        "import os, shutil, sys, tempfile\n"
        "from ot_hpc.demo_trainer import fetch_via_proxy\n"
        "from ot_hpc.runner import egress\n"
        "login, ssh_port, key, known, bind, port, url = sys.argv[1:8]\n"
        "base = tempfile.mkdtemp()\n"
        "control = egress.private_control_path(base)\n"
        "tunnel = egress.Tunnel(egress.ssh_argv(login, control, int(ssh_port), None, key, known),\n"
        "                       egress.relay_argv(sys.executable, bind, int(port), control), control,\n"
        "                       bind, int(port), egress.new_credentials(), lambda line: None,\n"
        "                       env=dict(os.environ))\n"
        "tunnel.start()\n"
        "try:\n"
        "    print(fetch_via_proxy(url, egress.proxy_url(bind, int(port), tunnel.credentials), timeout=5))\n"
        "finally:\n"
        "    tunnel.stop()\n"
        "    shutil.rmtree(base, ignore_errors=True)\n"
    )
    done = net.run_in(net.node_netns.get(node), [
        sys.executable, "-c", script, net.login_host, str(SSH_PORT), os.path.join(SSH_DIR, "id_ed25519"),
        os.path.join(SSH_DIR, "known_hosts"), net.nodes[node], str(port), net.internet_url],
        env={**os.environ, "PYTHONPATH": REPO})
    assert done.returncode == 0, done.stderr[-1500:]
    return done.stdout.strip()


def test_compute_nodes_reach_the_internet_through_the_tunnel(local_network):
    net = local_network
    if not os.path.exists(os.path.join(SSH_DIR, "id_ed25519")):
        pytest.fail("the local login sshd is not set up (run: bash tools/local-login-sshd.sh start)")
    for node in ("n1", "n3"):
        body = _fetch_through_tunnel(net, node)
        # The internet saw the request come from the login node, not from the compute node.
        assert body == (f"{BODY}: {net.internet_host} {net.internet_addr}:{net.internet_port} "
                        f"answered {net.login_internet_addr}"), body


def test_jobs_and_srun_steps_run_in_their_nodes_namespace(local_network, tmp_path):
    """A batch job on n1 starts one srun step on each of n1..n3: each step reports the
    namespace it runs in (``ip netns identify``) and its own view of the internet."""
    net = local_network
    out = tmp_path / "where.txt"
    script = (f"#!/bin/bash\ncat > {tmp_path}/connect.py <<'PY'\n{CONNECT.strip()}\nPY\n"
              f"for n in n1 n2 n3; do srun --overlap -N1 -n1 -w $n bash -c 'echo $SLURMD_NODENAME "
              f"netns=$(ip netns identify) internet=$({sys.executable} {tmp_path}/connect.py "
              f"{net.internet_host} {net.internet_port} | tr \" \" _)'; done\n")
    done = subprocess.run(["sbatch", "--wait", "-N3", "-n3", "--cpus-per-task=1", "-t", "2",
                           "--job-name=runnertest-netns", f"--output={out}", f"--chdir={tmp_path}"],
                          input=script, capture_output=True, text=True, timeout=120, env=base_environment())
    text = out.read_text() if out.exists() else ""
    assert done.returncode == 0, (done.stdout, done.stderr, text)
    lines = sorted(line.split() for line in text.splitlines() if line.startswith("n"))
    assert [line[0] for line in lines] == ["n1", "n2", "n3"], text
    for node, netns, internet in lines:
        if net.separate:
            assert netns == f"netns={net.node_netns[node]}", text
            assert internet == "internet=OSError:_Network_is_unreachable", text
        else:
            assert netns == "netns=" and internet == "internet=open", text
