"""The runner end to end: real local Slurm cluster, real sshd, real Ray.

Each test submits ``python -m ot_hpc.runner <spec>`` the way ot-submit does (a JobSpec
written with write_spec, a two-line batch script, an explicit environment) and runs
``ot_hpc.demo_trainer`` in place of SkyRL. Jobs ask for 1 CPU per node, so two of them
fit side by side on the 2-CPU emulated nodes. Addresses come from the local cluster's
network (tests/localnet.py): separate hosts, or the loopback mode's 127.0.0.x.
"""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from typing import Optional

import pytest

from ot_hpc.runner import shutdown
from ot_hpc.runner.ports import busy_ports
from ot_hpc.runstate import RunState, read_state
from ot_hpc.scheduler import JobRequest, JobState, get_scheduler
from ot_hpc.spec import JobSpec, write_spec

from ..conftest import REPO, base_environment, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster", "ray_available", "local_network")]

SSHD_SCRIPT = os.path.join(REPO, "tools", "local-login-sshd.sh")
SSHD_DIR = os.environ.get("OT_LOCAL_SSHD_DIR", "/var/lib/ot-hpc-local/ssh")
SSHD_PORT = int(os.environ.get("OT_LOCAL_SSHD_PORT", "2222"))
SECRET_VALUE = "s3cr3t-VALUE-never-logged"
HTTP_BODY = "ot-hpc egress ok"  # how tools/local-internet.py's answer begins
JOB_TIMEOUT = 120


# ---- fixtures -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def ray_available():
    if importlib.util.find_spec("ray") is None:
        reason = "Ray is not installed in this Python (pip install ray)"
        if os.environ.get("OT_HPC_REQUIRE_CLUSTER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def login_sshd():
    """The local 'login node': tools/local-login-sshd.sh (idempotent start)."""
    done = subprocess.run(["bash", SSHD_SCRIPT, "start"], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        reason = f"the local sshd did not start: {(done.stderr or done.stdout).strip()[-300:]}"
        if os.environ.get("OT_HPC_REQUIRE_CLUSTER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return {"key": os.path.join(SSHD_DIR, "id_ed25519"),
            "known_hosts": os.path.join(SSHD_DIR, "known_hosts"), "port": SSHD_PORT}


@pytest.fixture(scope="session")
def http_url(local_network):
    """The local cluster's internet service (tools/local-internet.py on ot-internet), which
    the demo trainer fetches through the tunnel: with separate hosts only ot-login reaches it."""
    net = local_network
    done = net.run_in(net.login_netns, [sys.executable, "-c", "import sys, urllib.request; print("
                      "urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())", net.internet_url])
    assert done.returncode == 0 and HTTP_BODY in done.stdout, (
        f"{net.internet_url} does not answer from {net.login_host}: {done.stderr[-300:]} "
        "(run: bash tools/local-cluster.sh start)")
    return net.internet_url


@pytest.fixture(scope="session")
def experiments(tmp_path_factory):
    path = tmp_path_factory.mktemp("runner-exp")
    os.makedirs(path / "logs", exist_ok=True)
    secret = path / "secret.env"
    secret.write_text(f"DEMO_SECRET={SECRET_VALUE}\n")
    secret.chmod(0o600)
    return str(path)


# ---- helpers ----------------------------------------------------------------------------
class Job:
    def __init__(self, job_id: int, spec: JobSpec) -> None:
        self.id = job_id
        self.spec = spec

    @property
    def log_path(self) -> str:
        return self.spec.log_path(str(self.id))

    def log(self) -> str:
        try:
            with open(self.log_path) as handle:
                return handle.read()
        except OSError:
            return ""

    def state(self) -> Optional[RunState]:
        return read_state(self.spec.state_path(str(self.id)))

    def record(self):
        return get_scheduler("cli").get_job(self.id)

    def wait_end(self, timeout: float = JOB_TIMEOUT):
        def finished():
            record = self.record()
            return record if record is not None and record.state.is_finished else None

        try:
            return wait_for(finished, timeout, f"job {self.id} to finish")
        except BaseException:
            print(self.log()[-5000:])
            raise

    def leftovers(self):
        state = self.state()
        marker = (state.details or {}).get("marker") if state else None
        assert marker, f"job {self.id} wrote no marker into its run state"
        return shutdown.marked_processes(marker)

    def busy_ports(self):
        low, high = (int(x) for x in self.state().details["ports"].split("-"))
        return busy_ports(range(low, high + 1))


def submit(experiments, name, nodes, overrides=(), environment=None, gpus=0, max_restarts=0,
           sshd=None, join_timeout=30, grace=3, time_limit=5, probe="127.0.0.1:9",
           secret=None, upload_repo=None, upload_path=None, hold=False, spec_extra=None,
           partition=None, memory_mb=None) -> Job:
    env_for_job = {"PYTHONPATH": REPO}
    env_for_job.update(environment or {})
    if sshd:
        env_for_job.update(SSH_KNOWN_HOSTS=sshd["known_hosts"])
    spec = JobSpec(**{
        "trainer_python": sys.executable, **(spec_extra or {}),
    }, job_name=f"runnertest-{name}", cluster="local", num_nodes=nodes, experiments_dir=experiments,
        entrypoint_module="ot_hpc.demo_trainer", overrides=tuple(overrides),
        gpus_per_node=gpus, secret_env_file=secret or os.path.join(experiments, "secret.env"),
        environment=env_for_job, max_restarts=max_restarts, needs_tunnel=bool(sshd),
        egress_probe=probe, login_node="ot-login", ssh_port=SSHD_PORT,
        ray_join_timeout_seconds=join_timeout, shutdown_grace_seconds=grace,
        upload_repo=upload_repo, upload_path=upload_path, ssh_key=sshd["key"] if sshd else None,
    )
    spec_path = os.path.join(experiments, "specs", f"{spec.job_name}-{time.time_ns()}.json")
    write_spec(spec_path, spec)
    batch_env = base_environment()
    batch_env["PYTHONPATH"] = REPO
    request = JobRequest(
        script=f"#!/bin/bash\nexec {sys.executable} -m ot_hpc.runner {spec_path}\n",
        name=spec.job_name, nodes=nodes, time_limit_minutes=time_limit, environment=batch_env,
        cpus_per_task=1, gpus_per_node=gpus, output_path=os.path.join(spec.logs_dir, f"{spec.job_name}_%j.log"),
        working_directory=experiments, requeue=max_restarts > 0, append_output=max_restarts > 0,
        signal_name="USR2",
        signal_seconds_before_end=60, hold=hold, partition=partition, memory_per_node_mb=memory_mb,
    )
    return Job(get_scheduler("cli").submit(request), spec)


def phases_logged(text: str, phases) -> None:
    for phase in phases:
        assert f"[{phase}] begin" in text, f"phase {phase} never began"
        assert f"[{phase}] done in " in text, f"phase {phase} never finished"


def assert_clean(job: Job, timeout: float = 15) -> None:
    wait_for(lambda: not job.leftovers(), timeout, f"job {job.id}'s processes to be gone")
    wait_for(lambda: not job.busy_ports(), timeout, f"job {job.id}'s ports to be free")


def assert_resumed_and_completed(job: Job, timeout: float = 300) -> str:
    """A requeued job's next run (restart 1) resumed from the demo's checkpoint, completed
    and left nothing behind; returns the whole log."""
    def ran_again():
        record = job.record()
        return record if record and record.state.is_finished and record.restart_count >= 1 else None

    final = wait_for(ran_again, timeout, f"job {job.id} to run again and end")
    text = job.log()
    assert final.state == JobState.COMPLETED and final.restart_count == 1, text[-3000:]
    assert "resuming from checkpoint step 1" in text
    assert job.state().phase == "done"
    assert_clean(job)
    return text


# ---- two jobs at once on the same nodes (also the happy path) ----------------------------
@pytest.fixture(scope="module")
def job_pair(experiments, login_sshd, http_url, tmp_path_factory):
    """Two 3-node jobs training at the same time on the same nodes (each holds in
    training until both are there, so they overlap whatever else the cluster runs)."""
    release = tmp_path_factory.mktemp("pair") / "release"
    first = submit(experiments, "happy", 3, [f"demo.fetch_url={http_url}", "demo.print_env=DEMO_SECRET",
                                             f"demo.wait_for_file={release}", "trainer.epochs=1"],
                   gpus=2, sshd=login_sshd, probe=http_url.split("/")[2])
    second = submit(experiments, "neighbour", 3, [f"demo.wait_for_file={release}"], gpus=2)
    try:
        wait_for(lambda: all("demo: waiting for" in job.log() for job in (first, second)), JOB_TIMEOUT,
                 "both jobs to be training at the same time")
    finally:
        release.write_text("go")
    return first, first.wait_end(), second, second.wait_end()


def test_happy_path_three_nodes(job_pair, http_url, local_network):
    job, record, _, _ = job_pair
    net = local_network
    text = job.log()
    assert record.state == JobState.COMPLETED, text[-3000:]
    assert record.exit_code == 0
    phases_logged(text, ("environment", "egress", "ray", "training", "shutdown"))
    assert "Ray ready on all 3 nodes (3 CPUs, 6 GPUs)" in text
    assert f"SOCKS tunnel socks5h://{net.nodes['n1']}:" in text
    assert f"{http_url.split('/')[2]} reachable through the tunnel (answered via ot-login:{SSHD_PORT})" in text
    assert len(set(net.nodes.values())) == 3
    for ip in net.nodes.values():  # every node's task used the tunnel
        assert f"task ran on {ip} (" in text and f"through the proxy: {HTTP_BODY}" in text
    # ... and the internet saw the requests come from the login node's side of its link
    assert f"through the proxy: {HTTP_BODY}: {net.internet_host} " in text
    assert f"answered {net.login_internet_addr}" in text
    assert "demo: fetch 1 ok from the driver: " + HTTP_BODY in text
    assert "demo: env DEMO_SECRET=[redacted DEMO_SECRET]" in text
    assert SECRET_VALUE not in text
    state = job.state()
    assert state.phase == "done" and state.exit_code == 0 and state.nodes_ready == 3
    assert state.head_address.startswith(f"{net.nodes['n1']}:") and state.tunnel.startswith("socks5h://")
    assert set(state.timings) >= {"environment", "egress", "ray", "training", "shutdown"}
    assert_clean(job)


def test_two_jobs_on_the_same_nodes_do_not_collide(job_pair):
    first, first_record, second, second_record = job_pair
    assert second_record.state == JobState.COMPLETED, second.log()[-3000:]
    assert "Ray ready on all 3 nodes" in second.log()
    a, b = first.state(), second.state()
    low_a, high_a = (int(x) for x in a.details["ports"].split("-"))
    low_b, high_b = (int(x) for x in b.details["ports"].split("-"))
    assert high_a < low_b or high_b < low_a, "the two jobs' port blocks overlap"
    assert a.head_address != b.head_address
    # They really ran at the same time on the same nodes.
    assert first_record.node_list == second_record.node_list
    assert first_record.start_time < second_record.end_time and second_record.start_time < first_record.end_time
    assert_clean(second)


@pytest.fixture(scope="module")
def job_trio(experiments, tmp_path_factory):
    """Three 3-node jobs training at once on the same nodes: partition 'shared' of the local
    cluster (OverSubscribe=FORCE:4; three 1-CPU jobs do not fit 2-CPU nodes otherwise)."""
    if subprocess.run(["scontrol", "show", "partition", "shared"], capture_output=True).returncode:
        pytest.skip("no partition 'shared' (tools/local-cluster.sh restart writes it)")
    release = tmp_path_factory.mktemp("trio") / "release"
    jobs = [submit(experiments, f"trio{i}", 3, [f"demo.wait_for_file={release}"], partition="shared",
                   memory_mb=600) for i in range(3)]
    try:
        wait_for(lambda: all("demo: waiting for" in job.log() for job in jobs), JOB_TIMEOUT,
                 "three jobs to be training at the same time")
    finally:
        release.write_text("go")
    return [(job, job.wait_end()) for job in jobs]


def test_three_jobs_on_the_same_nodes_do_not_collide(job_trio):
    blocks = []
    for job, record in job_trio:
        assert record.state == JobState.COMPLETED, job.log()[-3000:]
        assert "Ray ready on all 3 nodes" in job.log()
        blocks.append(tuple(int(x) for x in job.state().details["ports"].split("-")))
    for i, (low, high) in enumerate(blocks):
        for other_low, other_high in blocks[i + 1:]:
            assert high < other_low or other_high < low, f"port blocks {blocks} overlap"
    records = [record for _job, record in job_trio]
    assert len({r.node_list for r in records}) == 1
    assert max(r.start_time for r in records) < min(r.end_time for r in records), "not all at once"
    for job, _record in job_trio:  # each log holds its own job's lines only
        text = job.log()
        for other, _ in job_trio:
            if other is not job:
                state = other.state()
                assert f"job {other.id} " not in text and state.details["marker"] not in text
                assert state.head_address not in text
        assert_clean(job)


# ---- failures ---------------------------------------------------------------------------
def test_failing_trainer_fails_the_job_with_its_exit_code(experiments):
    job = submit(experiments, "fail", 2, ["demo.exit_code=3"])
    record = job.wait_end()
    text = job.log()
    assert record.state == JobState.FAILED, text[-3000:]
    assert record.exit_code == 3
    assert "[training] trainer exited with code 3" in text
    assert "[runner] exit 3;" in text
    state = job.state()
    assert state.phase == "failed" and state.exit_code == 3
    assert_clean(job)


def test_worker_that_never_joins_fails_clearly(experiments, local_network):
    # 10 s: n2 joins well within it even while three emulated nodes share two busy cores
    job = submit(experiments, "nojoin", 3, environment={"OT_HPC_FAULT_SKIP_NODES": "n3"}, join_timeout=10)
    record = job.wait_end()
    text = job.log()
    assert record.state == JobState.FAILED, text[-3000:]
    assert record.exit_code == 4
    assert "[ray] failed after" in text
    # n3 never starts its agent; on a loaded machine n2 may be late too ("nodes n2 (...),
    # n3 (...) did not join"): the line must name n3 either way.
    missing = [line for line in text.splitlines()
               if "did not join the Ray cluster within 10 s" in line and "[ray] failed after" in line]
    assert missing and f"n3 ({local_network.nodes['n3']})" in missing[-1], text[-3000:]
    assert "[training] begin" not in text
    assert_clean(job)


def test_scancel_mid_training_leaves_nothing(experiments):
    job = submit(experiments, "cancel", 3, ["demo.sleep_seconds=300"], grace=3)
    wait_for(lambda: "demo: sleeping" in job.log(), 90, f"job {job.id} to be training")
    assert job.leftovers(), "the job's processes should be visible while it runs"
    cancelled_at = time.monotonic()
    get_scheduler("cli").cancel(job.id)
    wait_for(lambda: not job.leftovers(), 30, f"job {job.id}'s processes to be gone after scancel")
    wait_for(lambda: not job.busy_ports(), 30 - (time.monotonic() - cancelled_at), "the job's ports to be free")
    assert time.monotonic() - cancelled_at < 30
    record = job.wait_end(60)
    assert record.state == JobState.CANCELLED
    text = job.log()
    assert "received SIGTERM: stopping" in text, text[-3000:]
    assert "[shutdown] done in" in text


def test_scancel_with_restarts_left_is_never_requeued(experiments):
    """The runner asks Slurm why SIGTERM came: a user's scancel (PreemptTime unset, Restarts
    unchanged) is never requeued, whatever MAX_RESTARTS says."""
    job = submit(experiments, "cancelrq", 1, ["demo.sleep_seconds=300"], max_restarts=2)
    wait_for(lambda: "demo: sleeping" in job.log(), 90, f"job {job.id} to be training")
    get_scheduler("cli").cancel(job.id)
    record = job.wait_end(60)
    text = job.log()
    assert record.state == JobState.CANCELLED and record.restart_count == 0, text[-3000:]
    assert "SIGTERM: stopped by the user (scancel) or the system: never requeued" in text
    assert "not requeueing: cancelled" in text and "requeued: Slurm will run" not in text
    assert job.state().phase == "failed" and job.state().exit_code == 143
    assert_clean(job)


def test_tunnel_ssh_killed_mid_run_is_restarted(experiments, login_sshd, http_url, tmp_path):
    go = tmp_path / "go"
    job = submit(experiments, "tunnelkill", 2,
                 [f"demo.fetch_url={http_url}", f"demo.wait_for_file={go}"], sshd=login_sshd)
    wait_for(lambda: "demo: fetch 1 ok" in job.log(), 90, f"job {job.id}'s first fetch")
    state = job.state()
    old_pid = state.details["tunnel_pid"]
    os.kill(old_pid, signal.SIGKILL)
    restarted = wait_for(lambda: (job.state().tunnel_restarts or 0) >= 1 and job.state(), 30,
                         "the watchdog to restart the tunnel")
    assert restarted.details["tunnel_pid"] != old_pid
    go.write_text("go")
    record = job.wait_end()
    text = job.log()
    assert record.state == JobState.COMPLETED, text[-3000:]
    assert "tunnel down (ssh is not running" in text
    assert "[tunnel] tunnel restarted (#1" in text
    assert "demo: fetch 2 ok from the driver: " + HTTP_BODY in text
    assert_clean(job)


def test_requeue_runs_twice_then_stops(experiments):
    job = submit(experiments, "requeue", 1, ["demo.exit_code=5"], max_restarts=1)
    # Slurm starts a requeued job again once its old credential expires (cred_expire:
    # 30 s on the local cluster); forcing it earlier gets it killed ("credential revoked").
    def ran_twice():
        record = job.record()
        return record if record and record.state.is_finished and record.restart_count >= 1 else None

    record = wait_for(ran_twice, 240, f"job {job.id} to run twice and end")
    text = job.log()
    assert record.state == JobState.FAILED, text[-3000:]
    assert record.exit_code == 5
    assert record.restart_count == 1
    # One log holds both runs (submitted with --open-mode=append), in order.
    first, _, second = text.partition("requeueing: failure, restart 1 of 1 next")
    assert second, text[-3000:]
    assert "restart 1 of 1" in second and "not requeueing: failure, all 1 restart(s) used" in second
    state = job.state()
    assert state.restart_count == 1 and state.phase == "failed"
    assert_clean(job)


@pytest.mark.parametrize("exit_code", [0, 3])
def test_upload_after_success_only(experiments, tmp_path, exit_code, local_network):
    """The runner uploads the fake export's HF files to a fake Hub after the trainer exited
    0; after a failing trainer it uploads nothing. The Hub listens where the job reaches it
    directly: 127.0.0.1, or with separate hosts the controller's address on the fabric."""
    from ..fakehub import FakeHub

    token = "hf_upload-token-never-logged"
    secret = tmp_path / "upload-secret.env"
    secret.write_text(f"HF_TOKEN={token}\n")
    secret.chmod(0o600)
    exports = tmp_path / "exports"
    hub = FakeHub(token=token, host=local_network.controller)
    try:
        job = submit(experiments, f"upload{exit_code}", 1,
                     [f"demo.export_dir={exports}", "demo.export_step=3", f"demo.exit_code={exit_code}"],
                     environment={"HF_ENDPOINT": hub.url}, secret=str(secret),
                     upload_repo="org/demo-policy", upload_path=str(exports))
        record = job.wait_end()
        text = job.log()
        assert token not in text
        if exit_code == 0:
            assert record.state == JobState.COMPLETED, text[-3000:]
            phases_logged(text, ["training", "upload", "shutdown"])
            stored = hub.repos[("model", "org/demo-policy")]["files"]
            assert sorted(stored) == ["config.json", "model.safetensors", "tokenizer.json"]
            assert all(auth == f"Bearer {token}" for _m, _p, auth in hub.requests)
            assert job.state().details["upload_files"] == 3
        else:
            assert record.exit_code == 3, text[-3000:]
            assert hub.requests == [] and "[upload] skipped" in text
    finally:
        hub.close()
