"""The job-unique Ray port plan (pure) and its bind/lock check."""
import os
import socket

import pytest

from ot_hpc.runner.ports import (
    CHUNK, HIGH_PORT, LOW_PORT, PortLock, busy_ports, choose_plan, plan_ports, worker_port_count,
)


def all_ports(plan, shared):
    return plan.host_ports(shared)


def test_plan_is_deterministic_and_in_range():
    a = plan_ports("4711", 3, shared_host=False)
    assert a == plan_ports("4711", 3, shared_host=False)
    ports = all_ports(a, False)
    assert len(ports) == len(set(ports))
    assert LOW_PORT <= min(ports) and max(ports) <= a.last < HIGH_PORT
    assert a.size % CHUNK == 0


def test_separate_hosts_share_node_block():
    plan = plan_ports("12", 4, shared_host=False)
    assert len({n for n in plan.nodes}) == 1  # same ports on every (different) host


def test_shared_host_gives_each_node_its_own_ports():
    plan = plan_ports("12", 3, shared_host=True)
    ports = all_ports(plan, True)
    assert len(ports) == len(set(ports))
    assert len({n.node_manager for n in plan.nodes}) == 3


@pytest.mark.parametrize("shared", [False, True])
def test_consecutive_jobs_never_overlap(shared):
    plans = [plan_ports(str(job), 3, shared) for job in range(1000, 1010)]
    seen = set()
    for plan in plans:
        ports = set(range(plan.base, plan.last + 1))
        assert not ports & seen
        seen |= ports


def test_attempt_moves_to_another_block():
    assert plan_ports("7", 2, True, attempt=1).base != plan_ports("7", 2, True).base


def test_ray_args_cover_every_port():
    args = " ".join(plan_ports("5", 1, False).node(0).ray_args())
    for flag in ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                 "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port",
                 "--min-worker-port", "--max-worker-port"):
        assert flag in args


def test_worker_port_count_bounds():
    assert worker_port_count(2) == 100
    assert worker_port_count(64) == 8 * 64 + 64
    assert worker_port_count(10_000) == 1000


def test_busy_port_detected():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert busy_ports([port]) == [port]


def test_busy_ipv6_and_specific_address_ports_detected():
    """Ray binds ``::``: a listener on one IPv4 address or on IPv6 loopback blocks it too."""
    for family, address in ((socket.AF_INET, "127.0.0.3"), (socket.AF_INET6, "::1")):
        if family == socket.AF_INET6 and not socket.has_ipv6:
            continue
        with socket.socket(family) as sock:
            try:
                sock.bind((address, 0))
            except OSError:
                continue  # no such address here
            sock.listen()
            port = sock.getsockname()[1]
            assert busy_ports([port]) == [port], (address, port)


def _namespace(tmp_path) -> str:
    return f"ot-hpc-ports-test/{os.getpid()}/{tmp_path.name}"


def test_port_lock_is_an_abstract_name_not_a_file(tmp_path):
    lock = PortLock([250], _namespace(tmp_path))
    assert lock.acquire()
    try:
        assert lock.name(250).startswith("\0") and "/25000" in lock.name(250)
        other = PortLock([250], _namespace(tmp_path))
        assert not other.acquire()  # held: one holder per name
        assert other.sockets == []
    finally:
        lock.release()
    again = PortLock([250], _namespace(tmp_path))
    assert again.acquire()  # released with the socket: nothing stale is left
    again.release()


def test_choose_plan_skips_locked_and_busy_blocks(tmp_path):
    first = plan_ports("31337", 2, True)
    holder = PortLock(first.chunks(), _namespace(tmp_path))
    assert holder.acquire()
    try:
        plan, lock, skipped = choose_plan("31337", 2, True, lock_namespace=_namespace(tmp_path))
        try:
            assert plan.base != first.base
            assert skipped == {0: [-1]}
            assert not set(range(plan.base, plan.last + 1)) & set(range(first.base, first.last + 1))
        finally:
            lock.release()
    finally:
        holder.release()
    # Released: the job's own block is free again.
    plan, lock, _ = choose_plan("31337", 2, True, lock_namespace=_namespace(tmp_path))
    lock.release()
    assert plan.base == first.base


def test_ray_banner_lines_are_recognised():
    from ot_hpc.runner.ray_cluster import is_ray_banner

    assert is_ray_banner("2026-11-28 22:06:44,342\tINFO scripts.py:1088 -- Next steps")
    assert is_ray_banner("2026-11-28 22:06:44,342\tSUCC scripts.py:1084 -- --------------------")
    assert is_ray_banner("2026-11-28 22:06:40,726\tINFO usage_lib.py:448 -- Usage stats collection is disabled.")
    assert not is_ray_banner("2026-11-28 22:06:44,342\tSUCC scripts.py:1085 -- Ray runtime started.")
    assert not is_ray_banner("2026-11-28 22:06:40,726\tINFO scripts.py:1043 -- Local node IP: 127.0.0.2")
    assert not is_ray_banner("2026-11-28 22:06:40,726\tWARNING authentication_token_setup.py:73 -- Token authentication is disabled")
    assert not is_ray_banner("2026-11-28 22:06:48,550\tINFO node.py:698 -- Node f02 received SIGTERM.")
