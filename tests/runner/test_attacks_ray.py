"""Another user attacks a running job's Ray: real local Slurm cluster, real Ray, uid nobody.

The attacker is uid ``nobody``, both on the fabric (this host's network namespace; with
tools/local-network.sh's separate hosts the nodes are across its bridge) and on the job's
own nodes (each node's network namespace, entered through its slurmd; in loopback mode
that is the same one). Before the job starts (it is submitted held, so its id is known), the
attacker takes the lock names of the job's first port block on every node, listens on a
port of its second block, and makes the temp dirs the runner used to use
(``/tmp/ot-ray-<job>-<n>``, 0777). Then, while the job trains, it tries to attach a driver
through the GCS (no token, a guessed token), submit a Ray job through the dashboard,
connect to the Ray Client port, read the job's private files, and every listening socket of
the job's processes is scanned and probed without the token (and, as a control, with it).
Every attack must fail; the job must train on and end normally. Set
``OT_HPC_TEST_RAY_PYTHON`` to a Python with ``ray[default]`` and grpcio (its Ray the same
version) to run the job with the dashboard, its agents and the Ray Client server too.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import pytest

from ot_hpc.runner.cluster_check import cluster_of
from ot_hpc.runner.ports import PortLock, plan_ports, worker_port_count
from ot_hpc.runner.ray_cluster import node_address, nodes_share_host
from ot_hpc.scheduler import JobState, get_scheduler

from ..conftest import wait_for
from . import attack_tools
from .jobscan import Listener, job_processes, listeners, node_namespaces
from .test_runner_slurm import JOB_TIMEOUT, Job, experiments, ray_available, submit  # noqa: F401

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster", "ray_available")]

ATTACKER = "nobody"
TIMEOUT = 60  # seconds any one attack may take (ray.init gives up after about 20 s)
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")
REFUSED_GRPC = (16, 12, None)  # UNAUTHENTICATED, UNIMPLEMENTED (not this server's method), none

ATTACH = r"""
import sys
import ray
try:
    ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR")
    @ray.remote
    def run():
        import subprocess
        return subprocess.run(["id"], capture_output=True, text=True).stdout
    print("ATTACHED", ray.get(run.remote(), timeout=20))
except Exception as exc:
    print("REFUSED", type(exc).__name__, str(exc).splitlines()[0][:300] if str(exc) else "")
"""
SUBMIT = r"""
import json, sys, urllib.request, urllib.error
body = json.dumps({"entrypoint": "id > " + sys.argv[2]}).encode()
request = urllib.request.Request(sys.argv[1] + "/api/jobs/", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(request, timeout=10) as answer:
        print("ACCEPTED", answer.status, answer.read()[:200])
except urllib.error.HTTPError as exc:
    print("REFUSED", exc.code)
except OSError as exc:
    print("REFUSED", type(exc).__name__)
"""
CLIENT = r"""
import sys
import ray
try:
    ray.init("ray://" + sys.argv[1], logging_level="ERROR")
    print("ATTACHED", ray.cluster_resources())
except Exception as exc:
    print("REFUSED", type(exc).__name__, str(exc).splitlines()[0][:300] if str(exc) else "")
"""
READ = r"""
import os, sys
for path in sys.argv[1:]:
    try:
        if os.path.isdir(path):
            print("LISTED", path, os.listdir(path))
        else:
            print("READ", path, len(open(path, "rb").read()))
    except OSError as exc:
        print("DENIED", path, type(exc).__name__)
"""


# ---- the attacker -----------------------------------------------------------------------
@dataclass
class Attacker:
    python: str
    pythonpath: str
    tools: str

    def argv(self, args: List[str], netns_pid: Optional[int]) -> List[str]:
        drop = ["setpriv", f"--reuid={ATTACKER}", "--regid=nogroup", "--clear-groups", "--"]
        enter = ["nsenter", f"--net=/proc/{netns_pid}/ns/net", "--"] if netns_pid else []
        return enter + drop + args

    def env(self) -> Dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8",
                "PYTHONPATH": f"{self.tools}:{self.pythonpath}"}

    def python_code(self, code: str, *args: str, netns_pid: Optional[int] = None) -> str:
        done = subprocess.run(self.argv([self.python, "-c", code, *args], netns_pid), env=self.env(),
                              capture_output=True, text=True, timeout=TIMEOUT, cwd="/")
        return done.stdout.strip() or done.stderr.strip()[-500:]

    def probe(self, host: str, port: int, netns_pid: Optional[int] = None) -> dict:
        return json.loads(self.python_code(
            "import sys, json, attack_tools as a; print(json.dumps(a.probe(sys.argv[1], int(sys.argv[2]))))",
            host, str(port), netns_pid=netns_pid).splitlines()[-1])

    def squatter(self, names: List[str], ports: List[int], dirs: List[str], netns_pid: Optional[int]):
        script = os.path.join(self.tools, "attack_tools.py")
        proc = subprocess.Popen(self.argv([self.python, script, "squat", ",".join(names),
                                           ",".join(map(str, ports)), ",".join(dirs)], netns_pid),
                                env=self.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "READY", "the squatter did not start"
        return proc


def runnable_by_attacker(python: str, pythonpath: str) -> bool:
    probe = Attacker(python, pythonpath, "/")
    try:
        out = probe.python_code("import sys, ray; print(sys.version_info[:2])")
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.endswith(str(tuple(sys.version_info[:2])))


def site_packages(python: str) -> str:
    """The trainer's Python's site directories (its .pth files followed), as a PYTHONPATH."""
    done = subprocess.run([python, "-c", "import sys; print('\\n'.join(sys.path))"],
                          capture_output=True, text=True, timeout=60)
    dirs = [p for p in done.stdout.splitlines() if p.rstrip("/").endswith(("site-packages", "dist-packages"))]
    return ":".join(dirs) or sysconfig.get_paths()["purelib"]


@pytest.fixture(scope="module")
def attacker(tmp_path_factory):
    """uid nobody with a Python that imports the job's Ray (from the job's site-packages)."""
    if os.getuid() != 0:
        pytest.skip("the attacks need root (to act as another uid and to read /proc)")
    purelib = site_packages(trainer_python())
    minor = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    for python in (sys.executable, f"/usr/bin/{minor}", f"/usr/local/bin/{minor}"):
        if os.path.exists(python) and runnable_by_attacker(python, purelib):
            break
    else:
        pytest.fail(f"uid {ATTACKER} cannot run a {minor} that imports Ray from {purelib}: "
                    f"make the interpreter and site-packages world-readable")
    tools = tempfile.mkdtemp(prefix="ot-attacker-")
    shutil.copy(attack_tools.__file__, tools)
    os.chmod(tools, 0o755)
    yield Attacker(python, purelib, tools)
    shutil.rmtree(tools, ignore_errors=True)


# ---- the attacked job ------------------------------------------------------------------
@dataclass
class Attacked:
    job: Job
    release_file: str
    plans: list
    planted: List[str]
    squatters: list = field(default_factory=list)

    def state(self):
        return self.job.state()

    @property
    def head(self) -> Tuple[str, int]:
        host, _, port = self.state().head_address.rpartition(":")
        return host, int(port)

    def batch_netns(self) -> Optional[int]:
        """A pid of the job in its batch node's network namespace (its trainer)."""
        return self.state().details.get("trainer_pid")

    def token(self) -> str:
        with open(os.path.join(self.state().details["private_dir"], "ray-token")) as handle:
            return handle.read()

    def private_dirs(self) -> List[str]:
        text = self.job.log()
        agents = [line.split("private directory ", 1)[1].split(" ", 1)[0]
                  for line in text.splitlines() if "node-agent" in line and "private directory" in line]
        return [self.state().details["private_dir"]] + agents


def trainer_python() -> str:
    return os.environ.get("OT_HPC_TEST_RAY_PYTHON") or sys.executable


def _squat_everywhere(attacker: Attacker, job: Job, nodes: int) -> Tuple[list, list, List[str]]:
    """Before the job runs: its first block's lock names and a port of its second block
    taken on every node, the old runner's temp dir names made (0777, the attacker's)."""
    names = sorted(node_namespaces())
    cluster = cluster_of(job.spec)
    shared = nodes_share_host(cluster, [node_address(cluster, n) for n in names])
    plans = [plan_ports(str(job.id), nodes, shared, worker_port_count(1), attempt) for attempt in (0, 1, 2)]
    locks = [PortLock(plans[0].chunks()).name(c)[1:] for c in plans[0].chunks()]
    planted = [f"/tmp/ot-ray-{job.id}-{n}" for n in range(nodes)]
    squatters = []
    for index, (node, pid) in enumerate(sorted(node_namespaces().items())):
        squatters.append(attacker.squatter(locks, [plans[1].gcs], planted if index == 0 else [], pid))
    return plans, squatters, planted


@pytest.fixture(scope="module")
def attacked(experiments, attacker, tmp_path_factory):  # noqa: F811
    release = str(tmp_path_factory.mktemp("attack") / "release")
    job = submit(experiments, "attacked", 2, [f"demo.wait_for_file={release}", "demo.ray_init=skyrl"],
                 hold=True, spec_extra={"trainer_python": trainer_python(), "ray_client_server": True})
    squatters: list = []
    try:
        plans, squatters, planted = _squat_everywhere(attacker, job, 2)
        get_scheduler("cli").release(job.id)
        wait_for(lambda: "demo: waiting for" in job.log() or job.record().state.is_finished,
                 JOB_TIMEOUT, f"job {job.id} to be training")
        assert "demo: waiting for" in job.log(), job.log()[-3000:]
        yield Attacked(job, release, plans, planted, squatters)
    finally:
        open(release, "w").close()
        for proc in squatters:
            proc.stdin.close()
            proc.wait(timeout=30)
        for path in glob.glob(f"/tmp/ot-ray-{job.id}-*"):
            shutil.rmtree(path, ignore_errors=True)
        if not job.record().state.is_finished:
            job.wait_end()


# ---- the attacks -----------------------------------------------------------------------------
def test_ports_held_by_another_user_are_skipped(attacked):
    text = attacked.job.log()
    assert "port block 0 skipped: claimed by another job (its lock name is taken)" in text, text[-3000:]
    assert f"port block 1 skipped: busy ports [{attacked.plans[1].gcs}]" in text
    assert attacked.state().details["ports"] == attacked.plans[2].describe()


def test_a_driver_cannot_attach_through_the_gcs(attacked, attacker):
    host, port = attacked.head
    address = f"{host}:{port}"
    for netns in (None, attacked.batch_netns()):  # from the fabric, and from the job's node
        out = attacker.python_code(ATTACH, address, netns_pid=netns)
        print(address, out)
        assert out.startswith("REFUSED") and "ATTACHED" not in out, out
    guessed = "RAY_AUTH_MODE=token RAY_AUTH_TOKEN=" + "0" * 64
    code = "import os\nos.environ.update(dict(p.split('=', 1) for p in %r.split()))\n" % guessed + ATTACH
    out = attacker.python_code(code, address)
    assert out.startswith("REFUSED") and "ATTACHED" not in out, out


def test_no_ray_job_through_the_dashboard(attacked, attacker, tmp_path):
    host, _ = attacked.head
    port = attacked.plans[2].dashboard
    pwned = f"/tmp/ot-attack-pwned-{attacked.job.id}"
    for url, netns in ((f"http://{host}:{port}", None), (f"http://127.0.0.1:{port}", attacked.batch_netns())):
        out = attacker.python_code(SUBMIT, url, pwned, netns_pid=netns)
        print(url, out)
        assert out.startswith("REFUSED"), (url, out)
        assert out.split()[1] in ("401", "403", "ConnectionRefusedError", "URLError"), (url, out)
    time.sleep(1)
    assert not os.path.exists(pwned)


def test_no_ray_client_connection(attacked, attacker):
    host, _ = attacked.head
    port = attacked.plans[2].client_server
    answer = attacker.probe(host, port)
    if "closed" in answer:  # no grpcio in the job's Python: no Ray Client server at all
        assert "the Ray Client server needs grpcio" in attacked.job.log()
        return
    assert all(status in REFUSED_GRPC for status, _ in answer["grpc"].values()), answer
    out = attacker.python_code(CLIENT, f"{host}:{port}")
    print(answer, out)
    assert out.startswith("REFUSED") and "ATTACHED" not in out, out


def test_planted_paths_are_never_used(attacked):
    for path in attacked.planted:  # still the attacker's, still empty
        info = os.lstat(path)
        assert info.st_uid != 0 and os.listdir(path) == [], path
    for path in attacked.private_dirs():
        assert path not in attacked.planted and os.path.dirname(path) != "/tmp/ot-hpc-ports"
        info = os.lstat(path)
        assert stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
        assert stat.S_IMODE(info.st_mode) == 0o700, (path, oct(info.st_mode))


def test_private_files_are_private(attacked, attacker):
    dirs = attacked.private_dirs()
    tokens = [os.path.join(d, "ray-token") for d in dirs if os.path.exists(os.path.join(d, "ray-token"))]
    assert len(tokens) >= 2  # the runner's and at least one agent's
    for path in tokens:
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600, path
    ray_logs = glob.glob(os.path.join(dirs[1], "r", "session_*", "logs"))
    state = attacked.job.spec.state_path(str(attacked.job.id))
    specs = glob.glob(os.path.join(attacked.job.spec.experiments_dir, "specs", "runnertest-attacked-*"))
    for path in [state] + specs:  # wherever they are: never readable by others
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600, path
    targets = dirs + tokens + ray_logs + [state] + specs
    out = attacker.python_code(READ, *targets).splitlines()
    assert len(out) == len(targets) and all(line.startswith("DENIED") for line in out), out


def _target(attacked, listener: Listener) -> str:
    """Where to connect to ``listener``: its address, or for a wildcard one the address of
    the node whose network namespace it is in (127.0.0.1 when that is not one node's)."""
    address = listener.address.replace("::ffff:", "")
    if address not in ("::", "0.0.0.0"):
        return address
    netns = os.readlink(f"/proc/{listener.pid}/ns/net")
    nodes = attacked.state().details["nodes"]
    ips = [nodes[name] for name, pid in node_namespaces().items()
           if name in nodes and os.readlink(f"/proc/{pid}/ns/net") == netns]
    return ips[0] if len(ips) == 1 else "127.0.0.1"


def _authenticated(attacked, attacker, listener: Listener) -> Optional[str]:
    """None when ``listener`` refuses the attacker and serves the token's holder; else why not."""
    host = _target(attacked, listener)
    denied = attacker.probe(host, listener.port, netns_pid=listener.pid)
    allowed = _probe_as_job(host, listener.port, attacked.token(), listener.pid)
    if "http" in denied:
        ok = denied["http"] in (401, 403) and allowed.get("http") not in (401, 403, None)
    elif "grpc" in denied:
        statuses = [status for status, _size in denied["grpc"].values()]
        ok = (all(s in REFUSED_GRPC for s in statuses) and 16 in statuses
              and not any(size for _s, size in denied["grpc"].values())
              and any(s not in REFUSED_GRPC for s, _ in allowed.get("grpc", {}).values()))
    else:
        ok = False
    return None if ok else f"{listener} at {host}: without the token {denied}, with it {allowed}"


def _probe_as_job(host: str, port: int, token: str, netns: int) -> dict:
    code = "import sys, json, attack_tools as a; print(json.dumps(a.probe(sys.argv[1], int(sys.argv[2]), sys.argv[3])))"
    done = subprocess.run(["nsenter", f"--net=/proc/{netns}/ns/net", "--", sys.executable, "-c", code,
                           host, str(port), token], capture_output=True, text=True, timeout=TIMEOUT,
                          env={"PYTHONPATH": os.path.dirname(attack_tools.__file__), "PATH": "/usr/bin:/bin"})
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_listening_socket_is_loopback_or_authenticated(attacked, attacker):
    marker = attacked.state().details["marker"]
    found = listeners(job_processes(marker))
    assert any(l.port == attacked.head[1] for l in found), found  # the scan sees the GCS
    block = attacked.plans[2]
    problems = []
    for listener in found:
        if listener.address in LOOPBACK:
            continue  # loopback-only: only processes on that node reach it
        if listener.command == "srun":
            continue  # Slurm's own step I/O, authenticated by Slurm's job credential
        if not block.base <= listener.port <= block.last:
            problems.append(f"{listener}: outside the job's port block {block.describe()}")
            continue
        why = _authenticated(attacked, attacker, listener)
        if why:
            problems.append(why)
        else:
            print(f"authenticated: {listener}")
    assert not problems, "\n".join(problems)


def test_the_token_is_in_no_argv_log_state_spec_or_status(attacked):
    token = attacked.token()
    assert len(token) == 64
    for pid in job_processes(attacked.state().details["marker"]):
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        assert token.encode() not in argv, pid
    specs = glob.glob(os.path.join(attacked.job.spec.experiments_dir, "specs", "runnertest-attacked-*"))
    for path in [attacked.job.log_path, attacked.job.spec.state_path(str(attacked.job.id))] + specs:
        assert token not in open(path).read(), path
    status = subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.dirname(
        os.path.dirname(__file__))), "bin", "ot-status"), "--json", str(attacked.job.id)],
        capture_output=True, text=True, timeout=60)
    assert token not in status.stdout + status.stderr


def test_the_job_ends_normally(attacked):
    open(attacked.release_file, "w").close()
    record = attacked.job.wait_end()
    text = attacked.job.log()
    assert record.state == JobState.COMPLETED and record.exit_code == 0, text[-3000:]
    assert "demo: all 2 nodes alive with the expected resources" in text
    assert text.count("demo: task ran on ") == 2
    assert "token authentication on" in text and "InvalidAuthToken" not in text
