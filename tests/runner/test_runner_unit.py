"""The Runner's decisions without a cluster: run-state messages are redacted, the ssh
tunnel gets no secrets, a finished trainer is never requeued, custom Ray resources."""
import io
import json
import os
import signal

import pytest

from ot_hpc.runner import egress, main as runner_main, requeue
from ot_hpc.runner.jobenv import JobEnvironment
from ot_hpc.runner.joblog import JobLog, PhaseError, Redactor
from ot_hpc.runner.ports import plan_ports
from ot_hpc.runner.ray_cluster import RayCluster, head_args, parse_ray_resources, worker_args
from ot_hpc.runner.raysecurity import RaySecurity
from ot_hpc.spec import JobSpec

SECRET = "hf_fakeSecretValue123"


class SpecWith:
    """The spec plus fields it may not have yet (e.g. ray_resources)."""

    def __init__(self, spec, **extra):
        self._spec, self._extra = spec, extra

    def __getattr__(self, name):
        if name in self._extra:
            return self._extra[name]
        return getattr(self._spec, name)


def make_runner(tmp_path, **spec_fields):
    spec = JobSpec(job_name="unit", cluster="local", num_nodes=2, experiments_dir=str(tmp_path),
                   trainer_python="/usr/bin/python3", entrypoint_module="trainer", **spec_fields)
    job = JobEnvironment.from_environ({
        "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "n[1-2]", "SLURM_JOB_CPUS_PER_NODE": "2(x2)",
    })
    (tmp_path / "logs").mkdir(exist_ok=True)
    out = io.StringIO()
    runner = runner_main.Runner(spec, job, {"PATH": "/usr/bin:/bin"}, JobLog(out))
    runner.log.redactor = Redactor({"HF_TOKEN": SECRET})
    return runner, out


def test_state_message_is_redacted(tmp_path):
    runner, out = make_runner(tmp_path)
    runner.finish(2, f"activation failed: curl: 401 for token {SECRET}")
    text = open(runner.spec.state_path("4242")).read()
    assert SECRET not in text
    assert "[redacted HF_TOKEN]" in json.loads(text)["message"]
    assert SECRET not in out.getvalue()


def test_tunnel_gets_an_environment_without_secrets(tmp_path, monkeypatch):
    runner, _ = make_runner(tmp_path, needs_tunnel=True, login_node="login1")
    runner.env = {"PATH": "/usr/bin:/bin", "HF_TOKEN": SECRET, "WANDB_API_KEY": "wandb-secret", "KEEP": "1"}
    runner.secret_keys = ("HF_TOKEN", "WANDB_API_KEY")
    runner.cluster = type("Cluster", (), {"name": "local"})()
    runner.plan = plan_ports("4242", 2, shared_host=True)
    runner.addresses = {"n1": "127.0.0.2", "n2": "127.0.0.3"}
    runner.security = type("RaySecurity", (), {"private_dir": str(tmp_path)})()  # the environment phase's
    seen = {}

    class FakeTunnel:
        def __init__(self, argv, relay_argv, control, bind, port, credentials, log, env=None, **_kw):
            seen.update(env=env, argv=argv, relay=relay_argv, credentials=credentials, control=control)

        def start(self):
            raise egress.TunnelError("no ssh in this test")

    monkeypatch.setattr(egress, "Tunnel", FakeTunnel)
    monkeypatch.setattr(egress, "shared_node_warning", lambda job_id: None)
    with pytest.raises(PhaseError):
        runner.phase_egress()
    assert seen["env"]["KEEP"] == "1" and seen["env"]["PATH"] == "/usr/bin:/bin"
    assert "HF_TOKEN" not in seen["env"] and "WANDB_API_KEY" not in seen["env"]
    assert SECRET not in json.dumps(seen["env"])
    # This run's proxy password: never in argv or ssh's environment, always redacted in the log.
    password = seen["credentials"].password
    assert password not in " ".join(seen["argv"] + seen["relay"]) + json.dumps(seen["env"])
    assert password not in runner.log.redactor(f"ALL_PROXY=socks5h://ot-hpc:{password}@127.0.0.2:1")
    assert os.path.dirname(os.path.dirname(seen["control"])) == str(tmp_path)  # in the run's private dir
    os.rmdir(os.path.dirname(seen["control"]))


def test_usr2_after_a_successful_trainer_is_not_requeued(tmp_path, monkeypatch):
    runner, out = make_runner(tmp_path, max_restarts=2)
    calls = []
    monkeypatch.setattr(requeue, "requeue", lambda job_id: calls.append(job_id))
    runner.trainer_exit = 0
    runner._on_signal(signal.SIGUSR2, None)  # the time-limit warning, after the trainer finished
    assert not runner.stop_event.is_set()
    runner.stop_signal = signal.SIGUSR2  # even if it was recorded (signal raced the exit)
    assert runner.finish(0, None) == 0
    assert calls == []
    assert "requeued" not in out.getvalue().replace("not requeueing", "")


def test_usr2_during_training_still_requeues(tmp_path, monkeypatch):
    runner, _ = make_runner(tmp_path, max_restarts=2)
    calls = []
    monkeypatch.setattr(requeue, "requeue", lambda job_id: calls.append(job_id))
    runner._on_signal(signal.SIGUSR2, None)
    assert runner.stop_event.is_set()
    runner.finish(128 + signal.SIGUSR2, "stopped by SIGUSR2")
    assert calls == ["4242"]


# ---- custom Ray resources ------------------------------------------------------------
def test_ray_start_argv_carries_custom_resources():
    plan = plan_ports("4242", 2, shared_host=True)
    head = head_args(plan, "127.0.0.2", 2, 4, "/tmp/x", '{"vllm_instance":1}')
    worker = worker_args(plan, 1, "127.0.0.2:6379", "127.0.0.3", 2, 4, "/tmp/y", '{"vllm_instance":1}')
    assert '--resources={"vllm_instance":1}' in head
    assert '--resources={"vllm_instance":1}' in worker
    assert not any(a.startswith("--resources") for a in head_args(plan, "127.0.0.2", 2, 4, "/tmp/x"))


def test_parse_ray_resources():
    assert parse_ray_resources("") == ""
    assert parse_ray_resources(None) == ""
    assert parse_ray_resources(' {"vllm_instance": 1, "a": 0.5} ') == '{"a":0.5,"vllm_instance":1}'
    for bad in ("{vllm_instance: 1}", "[1]", '{"GPU": 2}', '{"x": "one"}', '{"x": -1}', '{"x": true}'):
        with pytest.raises(PhaseError) as info:
            parse_ray_resources(bad)
        assert "\n" not in str(info.value) and "RAY_RESOURCES" in str(info.value)


def _cluster(tmp_path, resources):
    runner, _ = make_runner(tmp_path)
    plan = plan_ports("4242", 2, shared_host=True)
    security = RaySecurity(token=None, private_dir=str(tmp_path), client_server=False)
    return RayCluster(runner.job, plan, {"n1": "127.0.0.2", "n2": "127.0.0.3"}, {}, runner.log,
                      "/usr/bin/python3", 10.0, True, security, resources=resources)


def test_every_ray_start_gets_the_resources_and_readiness_ignores_them(tmp_path):
    cluster = _cluster(tmp_path, '{"vllm_instance":1}')
    for node in cluster.nodes:  # head and worker
        assert '--resources={"vllm_instance":1}' in cluster._agent(node, None if node.index == 0 else cluster.gcs_address)
    cluster._table = [{"ip": "127.0.0.2", "alive": True, "CPU": 2, "GPU": 0},
                      {"ip": "127.0.0.3", "alive": True, "CPU": 2, "GPU": 0}]
    ready, problems = cluster.readiness()
    assert len(ready) == 2 and problems == []


def test_runner_passes_spec_resources_and_rejects_bad_json(tmp_path, monkeypatch):
    runner, out = make_runner(tmp_path)
    runner.plan = plan_ports("4242", 2, shared_host=True)
    runner.addresses = {"n1": "127.0.0.2", "n2": "127.0.0.3"}
    seen = {}

    class FakeRay:
        def __init__(self, *args, resources="", **kwargs):
            seen["resources"] = resources
            raise PhaseError("stop here", 4)

    monkeypatch.setattr(runner_main, "RayCluster", FakeRay)
    runner.spec = SpecWith(runner.spec, ray_resources='{"vllm_instance": 1}')
    with pytest.raises(PhaseError, match="stop here"):
        runner.phase_ray()
    assert seen["resources"] == '{"vllm_instance":1}'
    runner.spec = SpecWith(runner.spec, ray_resources="{vllm_instance: 1")
    with pytest.raises(PhaseError, match="RAY_RESOURCES .* not valid JSON") as info:
        runner.phase_ray()
    assert info.value.exit_code == 4
