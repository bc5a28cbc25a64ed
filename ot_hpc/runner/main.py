"""The runner's orchestration: environment -> egress -> ray -> training -> shutdown.

Each phase logs ``begin`` and ``done in X s`` (or ``failed after X s: <one line>``) and
rewrites the run-state file next to the log for ``ot-status``. Shutdown always runs:
after success, a failure, scancel (SIGTERM), the time-limit warning (USR2) or an error.

After a successful trainer (exit 0) and only then, the ``upload`` phase uploads the final
policy's Hugging Face files to ``spec.upload_repo`` when one is set (:mod:`ot_hpc.upload`).

Inputs: the spec and the secret env file only. Exit codes: :mod:`ot_hpc.runner.exit_codes`.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sys
import threading
import time
from typing import Dict, List, Mapping, Optional

from ..cluster_facts import Cluster, interconnect_hostname
from ..rayauth import installed_ray_version
from ..runstate import RunState
from ..spec import JobSpec, read_spec, spec_problem
from . import egress, raysecurity, requeue, shutdown, teardown
from .cluster_check import check_host, cluster_of
from .envload import load_environment
from .exit_codes import (EXIT_EGRESS, EXIT_ENV, EXIT_INTERNAL, EXIT_NODE_LOST, EXIT_SIGNAL_BASE,
                         EXIT_TRAINER_IDLE, EXIT_UPLOAD, trainer_exit_reason)
from .jobenv import JobEnvironment, NotInSlurmJob
from .joblog import JobLog, PhaseError
from .ports import choose_plan, worker_port_count
from .progress_report import ProgressReport
from .statefile import StateFile
from .ray_cluster import RayCluster, Stopped, node_address, nodes_share_host, parse_ray_resources
from .trainer import Trainer

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2)
SSH_KNOWN_HOSTS_VAR = "SSH_KNOWN_HOSTS"


def detect(spec: JobSpec, environ: Mapping[str, str], log: JobLog) -> Cluster:
    """The spec's cluster, checked against this host (see :mod:`.cluster_check`)."""
    cluster = cluster_of(spec)
    hostname = socket.gethostname()
    log.line("environment", check_host(cluster, environ, hostname, socket.getfqdn()))
    return cluster


class Runner:
    def __init__(self, spec: JobSpec, job: JobEnvironment, environ: Mapping[str, str], log: JobLog) -> None:
        self.spec = spec
        self.job = job
        self.environ = dict(environ)
        self.log = log
        self.stop_event = threading.Event()
        self.stop_signal: Optional[int] = None
        self.pending_notes: List[str] = []
        self.env: Dict[str, str] = dict(environ)
        self.marker = f"{job.job_id}.{job.restart_count}.{secrets.token_hex(4)}"
        self.cluster: Optional[Cluster] = None
        self.addresses: Dict[str, str] = {}
        self.plan = None
        self.port_lock = None
        self.shared_host = False
        self.tunnel: Optional[egress.Tunnel] = None
        self.ray: Optional[RayCluster] = None
        self.security: Optional[raysecurity.RaySecurity] = None
        self.trainer: Optional[Trainer] = None
        self.upload_failed = False
        self.secret_keys: tuple = ()  # names from the secret env file (values never kept here)
        self.trainer_exit: Optional[int] = None  # the trainer's own exit status, once known
        self.trainer_reason: Optional[str] = None  # one line: how the trainer ended
        self.stop_at: Optional[float] = None  # monotonic: when the stop signal arrived
        self.sigterm_query: Optional[requeue.SigtermCause] = None
        self.state = StateFile(spec.state_path(job.job_id), RunState(
            job_id=job.job_id, phase="starting", phase_started_at=time.time(), updated_at=time.time(),
            nodes_expected=job.num_nodes, restart_count=job.restart_count,
            max_restarts=spec.max_restarts, log_path=spec.log_path(job.job_id),
            details={"marker": self.marker},
        ), log)

    # ---- signals -------------------------------------------------------------------
    def _on_signal(self, signum, _frame) -> None:
        if signum == signal.SIGUSR2 and self.trainer_exit == 0:
            self.pending_notes.append("USR2: the time limit is near, but the trainer already succeeded: "
                                      "not stopping, never requeued")
            return
        if signum == signal.SIGUSR2 and not requeue.should_requeue(
                requeue.TIME_LIMIT, self.job.restart_count, self.spec.max_restarts):
            self.pending_notes.append("USR2: the time limit is near and no restart is left: "
                                      "the trainer keeps running until Slurm ends the job")
            return
        if self.stop_signal is None:
            self.stop_signal = signum
            self.stop_at = time.monotonic()  # Slurm's SIGKILL follows KillWait after this
            if signum == signal.SIGTERM:  # scancel, preemption or a failed node? (asked now)
                self.sigterm_query = requeue.SigtermCause(self.job.job_id, self.job.restart_count,
                                                          lambda m: self.log.line("runner", m))
            self.pending_notes.append(f"received {signal.Signals(signum).name}: stopping")
        self.stop_event.set()

    def install_signals(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)

    def flush_notes(self) -> None:
        while self.pending_notes:
            self.log.line("runner", self.pending_notes.pop(0))

    # ---- phases ----------------------------------------------------------------------
    def phase_environment(self) -> None:
        job, spec = self.job, self.spec
        self.state.update(phase="environment")
        self.cluster = detect(spec, self.environ, self.log)
        self.job = job = job.with_node_gpus(self.environ, self.cluster)  # Ray's GPU count
        loaded = load_environment(spec, self.environ, self.cluster.nccl_socket_ifname)
        self.log.redactor = loaded.redactor
        self.secret_keys = tuple(loaded.secret_keys)
        for note in loaded.notes:
            self.log.line("environment", note)
        self.env = loaded.env
        self.env[shutdown.MARKER_VAR] = self.marker
        os.environ[shutdown.MARKER_VAR] = self.marker  # so every child (sh, srun) inherits it
        self.addresses = {node: node_address(self.cluster, node) for node in job.nodes}
        self.shared_host = nodes_share_host(self.cluster, list(self.addresses.values()))
        if spec.num_nodes and spec.num_nodes != job.num_nodes:
            self.log.line("environment", f"WARNING: the spec asks for {spec.num_nodes} nodes, "
                                         f"the allocation has {job.num_nodes}")
        self.log.line("environment", (
            f"job {job.job_id} ({job.job_name}) on {job.num_nodes} node(s) {','.join(job.nodes)}; "
            f"batch node {job.batch_node}; CPUs per node {'/'.join(str(c) for c in job.cpus_per_node)}; "
            f"GPUs per node {job.gpus_per_node}; restart {job.restart_count} of {spec.max_restarts}"))
        self.log.line("environment", "node addresses: " + ", ".join(f"{n}={a}" for n, a in self.addresses.items()))
        self.security = raysecurity.setup(spec, self.check_trainer_python(), self.env, self.log)
        self.state.update(details={"private_dir": self.security.private_dir})
        workers = worker_port_count(max(job.cpus_per_node))
        try:
            self.plan, self.port_lock, skipped = choose_plan(job.job_id, job.num_nodes, self.shared_host, workers)
        except RuntimeError as exc:
            raise PhaseError(str(exc), EXIT_ENV)
        for attempt, busy in skipped.items():
            why = "claimed by another job (its lock name is taken)" if busy == [-1] else f"busy ports {busy}"
            self.log.line("environment", f"port block {attempt} skipped: {why}")
        self.log.line("environment", f"Ray port block {self.plan.describe()} (GCS {self.plan.gcs}, "
                                     f"dashboard {self.plan.dashboard}, SOCKS {self.plan.tunnel})"
                                     + (", nodes share one host" if self.shared_host else ""))
        self.state.update(details={"ports": self.plan.describe(), "nodes": dict(self.addresses)})

    def check_trainer_python(self) -> Optional[str]:
        """The Ray node agents and the readiness poller run under the trainer's Python
        (the one whose Ray starts the cluster): it must import ot_hpc too. Returns the
        version of its Ray (None when unknown), from the same one subprocess."""
        python = self.spec.trainer_python
        if os.path.realpath(python) == os.path.realpath(sys.executable):
            return installed_ray_version()
        import subprocess

        probe = "import ot_hpc.runner.node_agent\nfrom ot_hpc.rayauth import installed_ray_version as v\nprint(v() or '')"
        try:
            done = subprocess.run([python, "-c", probe], env=self.env,
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PhaseError(f"cannot run the trainer's Python {python}: {exc}", EXIT_ENV)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise PhaseError(f"the trainer's Python {python} cannot import ot_hpc ({last}): install "
                             f"ot-hpc into that environment or add its directory to EXTRA_PYTHONPATH", EXIT_ENV)
        lines = done.stdout.strip().splitlines()
        return lines[-1].strip() if lines and lines[-1].strip() else None

    def phase_egress(self) -> None:
        spec = self.spec
        self.state.update(phase="egress")
        needs = spec.needs_tunnel
        host, port = egress.parse_host_port(spec.egress_probe)
        if needs is False:
            self.log.line("egress", "tunnel disabled for this job (NEEDS_TUNNEL=false)")
            return
        if needs is None:
            problem = egress.probe_tcp(host, port, timeout=3.0)
            if problem is None:
                self.log.line("egress", f"internet reachable ({host}:{port}): no tunnel needed")
                return
            if self.cluster.compute_has_internet:
                self.log.line("egress", f"WARNING: probe failed ({problem}), but {self.cluster.name}'s "
                                        f"compute nodes should have internet: no tunnel")
                return
            self.log.line("egress", f"no internet ({problem}): opening an SSH tunnel")
        login = spec.login_node or (self.cluster.login_nodes[0] if self.cluster.login_nodes else None)
        if not login:
            raise PhaseError(f"a tunnel is needed but no login node is known for {self.cluster.name}: "
                             f"set LOGIN_NODE", EXIT_EGRESS)
        key = spec.ssh_key
        if key and not os.path.isfile(key):
            raise PhaseError(f"SSH_KEY {key} does not exist", EXIT_EGRESS)
        bind = self.addresses[self.job.batch_node]
        self.tunnel = self._new_tunnel(login, bind)
        target = f"{spec.ssh_user + '@' if spec.ssh_user else ''}{login}:{spec.ssh_port}"
        warning = egress.shared_node_warning(self.job.job_id)
        if warning:
            self.log.line("egress", warning)
        try:
            seconds = self.tunnel.start()
        except egress.TunnelError as exc:
            raise PhaseError(f"SSH tunnel to {target} failed: {exc}", EXIT_EGRESS)
        self.log.line("egress", f"SOCKS tunnel {self.tunnel.url} via {target} ready after {seconds:.2f} s "
                                f"(ssh pid {self.tunnel.pid}, relay pid {self.tunnel.relay_pid}; "
                                f"username/password required)")
        self.tunnel.start_watchdog()
        extra = list(self.addresses.values())
        extra += [interconnect_hostname(self.cluster, n) for n in self.job.nodes]
        credentials = self.tunnel.credentials
        self.env.update(egress.proxy_environment(bind, self.plan.tunnel, self.job.nodes, extra, credentials))
        self.state.update(tunnel=self.tunnel.url, details={"tunnel_pid": self.tunnel.pid,
                                                          "relay_pid": self.tunnel.relay_pid})
        try:
            egress.socks5_connect(bind, self.plan.tunnel, host, port, 5.0, credentials).close()
            self.log.line("egress", f"{host}:{port} reachable through the tunnel (answered via {target})")
        except OSError as exc:
            self.log.line("egress", f"WARNING: {host}:{port} not reachable through the tunnel: {exc}")

    def _new_tunnel(self, login: str, bind: str) -> egress.Tunnel:
        """ssh master + the relay that demands this run's fresh password (redacted from
        the log; in the job's environment and the relay's stdin only, never in argv)."""
        spec = self.spec
        credentials = egress.new_credentials()
        self.log.redactor.add(egress.PASSWORD_LABEL, credentials.password)
        control = egress.private_control_path(self.security.private_dir)
        argv = egress.ssh_argv(login, control, spec.ssh_port, spec.ssh_user, spec.ssh_key,
                               self.env.get(SSH_KNOWN_HOSTS_VAR) or None)
        relay = egress.relay_argv(sys.executable, bind, self.plan.tunnel, control)
        return egress.Tunnel(argv, relay, control, bind, self.plan.tunnel, credentials,
                             lambda m: self.log.line("tunnel", m), env=self.tunnel_environment(),
                             on_restart=self._tunnel_restarted, halt=self.stop_event)

    def tunnel_environment(self) -> Dict[str, str]:
        """The job's environment less the secrets: ssh needs none of them, and a user's
        ``SendEnv`` would ship them to the login node."""
        secret = set(self.secret_keys)
        return {k: v for k, v in self.env.items() if k not in secret}

    def _tunnel_restarted(self, tunnel: egress.Tunnel) -> None:
        self.state.update(tunnel_restarts=tunnel.restarts + tunnel.relay_restarts,
                          details={"tunnel_pid": tunnel.pid, "relay_pid": tunnel.relay_pid})

    def phase_ray(self) -> None:
        self.state.update(phase="ray")
        # Custom Ray resources (e.g. TACC's {"vllm_instance": 1}).
        resources = parse_ray_resources(self.spec.ray_resources)
        if resources:
            self.log.line("ray", f"custom resources {resources} on every node")
        ray_env = {k: v for k, v in self.env.items() if k != "RAY_ADDRESS"}
        self.ray = RayCluster(
            self.job, self.plan, self.addresses, ray_env, self.log, self.spec.trainer_python,
            float(self.spec.ray_join_timeout_seconds), self.shared_host, self.security,
            on_progress=lambda ready, total: self.state.update(nodes_ready=ready),
            resources=resources,
        )
        self.state.update(head_address=self.ray.gcs_address, dashboard_url=self.ray.dashboard_url)
        seconds = self.ray.start(self.stop_event)
        cpus = sum(n.cpus for n in self.ray.nodes)
        gpus = sum(n.gpus for n in self.ray.nodes)
        self.log.line("ray", f"Ray ready on all {len(self.ray.nodes)} nodes ({cpus} CPUs, {gpus} GPUs) "
                             f"in {seconds:.2f} s; GCS {self.ray.gcs_address}, dashboard {self.ray.dashboard_url or 'off (needs ray[default])'}")

    def phase_training(self) -> int:
        self.state.update(phase="training")
        env = self.security.driver_environment(self.env)  # RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH
        env["RAY_ADDRESS"] = self.ray.gcs_address
        env["OT_HPC_RAY_EXPECTED"] = json.dumps(self.ray.expected(), sort_keys=True)
        argv = self.spec.trainer_argv()
        cwd = self.spec.trainer_working_dir
        self.log.line("training", "running " + " ".join(argv[:3]) + (f" + {len(argv) - 3} override(s)" if len(argv) > 3 else "")
                      + (f" in {cwd}" if cwd else ""))
        self.trainer = Trainer(argv, env, self.log.sink("trainer"), cwd=cwd, observer=ProgressReport(self.state))
        self.trainer.start()
        self.state.update(details={"trainer_pid": self.trainer.pid})
        code = self.trainer.wait(self.stop_event, tick=self._training_tick)
        if code is None and not self.trainer.running():
            code = self.trainer.exit_code()  # it ended on its own as the signal arrived
        if code is None:
            raise Stopped("stopped by a signal during training")
        self.trainer_exit = code
        raw = self.trainer.raw_exit()
        self.trainer_reason = trainer_exit_reason(code if raw is None else raw)
        self.log.line("training", self.trainer_reason if code else f"trainer exited with code {code}")
        return code

    def _training_tick(self) -> None:
        """Each tick of training: a silent trainer (TRAINER_IDLE_TIMEOUT), a tunnel down too
        long (TUNNEL_DOWN_LIMIT) or a node lost (SkyRL cannot go on without it) ends the job."""
        self.flush_notes()
        idle, limit = self.trainer.idle_seconds(), self.spec.trainer_idle_timeout_seconds
        if limit and idle > limit:
            raise PhaseError(f"the trainer printed nothing for {idle:.0f} s (TRAINER_IDLE_TIMEOUT "
                             f"{limit} s): hung? stopped it", EXIT_TRAINER_IDLE)
        self.check_tunnel()
        problems = self.ray.health_problems() if self.ray is not None else []
        if problems:
            raise PhaseError(f"{problems[0]}: the job cannot go on without it", EXIT_NODE_LOST)

    def check_tunnel(self) -> None:
        """Fail the job (exit 3) once the tunnel has been down longer than TUNNEL_DOWN_LIMIT."""
        limit = self.spec.tunnel_down_limit_seconds
        down = self.tunnel.down_for() if self.tunnel is not None else 0.0
        if limit and down > limit:
            raise PhaseError(f"the SSH tunnel to {self.tunnel.login} has been down for {down:.0f} s "
                             f"and could not be restarted (TUNNEL_DOWN_LIMIT {limit} s)", EXIT_EGRESS)

    def phase_upload(self) -> None:
        """Upload the final policy's HF files (the trainer exited 0). In a thread, so a
        signal still stops the job; the token goes to huggingface_hub as ``token=`` only."""
        from .. import upload

        spec = self.spec
        self.state.update(phase="upload", details={"upload_repo": spec.upload_repo})
        try:
            where = upload.expand_path(spec.upload_path or upload.SKYRL_DEFAULT_EXPORT, self.env)
            directory = upload.resolve_upload_dir(where)
        except upload.UploadError as exc:
            raise PhaseError(f"nothing uploaded: {exc}", EXIT_UPLOAD)
        result: List[object] = []

        def work() -> None:
            try:
                result.append(upload.run_upload(directory, spec.upload_repo or "",
                                                spec.upload_private, self.env,
                                                lambda m: self.log.line("upload", m)))
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                result.append(exc)

        thread = threading.Thread(target=work, name="upload", daemon=True)
        thread.start()
        while thread.is_alive():
            if self.stop_event.wait(0.2):
                raise Stopped("stopped by a signal during the upload")
            self.flush_notes()
        outcome = result[0] if result else RuntimeError("the upload thread ended without a result")
        if isinstance(outcome, upload.UploadError):
            raise PhaseError(f"the trainer succeeded but the upload failed: {outcome}", EXIT_UPLOAD)
        if isinstance(outcome, BaseException):
            raise PhaseError(f"the trainer succeeded but the upload failed: "
                             f"{type(outcome).__name__}: {outcome}", EXIT_UPLOAD)
        names, url = outcome  # type: ignore[misc]
        self.log.line("upload", f"uploaded {len(names)} file(s) to {spec.upload_repo}"
                      + (f": {url}" if url else ""))
        self.state.update(details={"upload_files": len(names), "upload_commit": url})

    # ---- the whole job ---------------------------------------------------------------
    def run(self) -> int:
        self.install_signals()
        code = 0
        message = None
        try:
            with self.log.phase("environment"):
                self.phase_environment()
            self.flush_notes()
            if self.stop_event.is_set():
                raise Stopped("stopped by a signal")
            with self.log.phase("egress"):
                self.phase_egress()
            self.flush_notes()
            if self.stop_event.is_set():
                raise Stopped("stopped by a signal")
            with self.log.phase("ray"):
                self.phase_ray()
            self.flush_notes()
            with self.log.phase("training"):
                code = self.phase_training()
            self.flush_notes()
            if self.spec.upload_repo:
                if code == 0 and not self.stop_event.is_set():
                    try:
                        with self.log.phase("upload"):
                            self.phase_upload()
                    except PhaseError:
                        self.upload_failed = True
                        raise
                elif code != 0:
                    self.log.line("upload", f"skipped: the trainer exited with code {code}; "
                                            f"nothing is uploaded after a failure")
                else:
                    self.upload_failed = True
                    raise PhaseError("the trainer succeeded but the upload was skipped: the job is "
                                     "being stopped (the model stays on disk)", EXIT_UPLOAD)
        except Stopped:
            code = EXIT_SIGNAL_BASE + (self.stop_signal or signal.SIGTERM)
            message = f"stopped by {signal.Signals(self.stop_signal or signal.SIGTERM).name}"
            if self.trainer_exit == 0 and self.spec.upload_repo:
                self.upload_failed = True  # stopped during the upload: training is done
        except PhaseError as exc:
            code, message = exc.exit_code, str(exc)
        except Exception as exc:  # a bug: still shut down, and say what happened in one line
            code, message = EXIT_INTERNAL, f"internal error: {type(exc).__name__}: {exc}"
            self.log.line("runner", message)
        finally:
            self.flush_notes()
            if message is None and code != 0:
                message = self.trainer_reason or f"trainer exited with code {code}"
            try:
                with self.log.phase("shutdown"):
                    notes = teardown.shut_down(self, code, message)
                message = "; ".join([m for m in (message, *notes) if m]) or None
            except Exception as exc:
                self.log.line("runner", f"shutdown error: {type(exc).__name__}: {exc}")
        return self.finish(code, message)

    def finish(self, code: int, message: Optional[str]) -> int:
        cause = requeue.sigterm_cause(self.stop_signal, self.trainer_exit, self.sigterm_query)
        result = requeue.outcome(code, self.stop_signal, self.trainer_exit, self.upload_failed, cause)
        decision = requeue.should_requeue(result, self.job.restart_count, self.spec.max_restarts)
        if self.spec.max_restarts:
            self.log.line("runner", requeue.describe(result, self.job.restart_count, self.spec.max_restarts))
        message = requeue.final_message(message, code, decision, result)
        self.state.update(phase="done" if code == 0 else "failed", exit_code=code,
                          timings=dict(self.log.timings), message=message)
        self.log.line("runner", f"exit {code}; timings: {self.log.summary()}" + (f"; {message}" if message else ""))
        if decision:
            try:
                requeue.requeue(self.job.job_id)
                self.log.line("runner", "requeued: Slurm will run this job again under the same id")
            except Exception as exc:
                self.log.line("runner", f"requeue failed: {exc}")
        return code


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    log = JobLog(sys.stdout)
    if len(args) != 1 or args[0] in ("-h", "--help"):
        sys.stderr.write("usage: python -m ot_hpc.runner <spec.json>\n")
        return EXIT_ENV
    try:
        spec = read_spec(args[0])
    except (OSError, ValueError, TypeError) as exc:
        log.line("runner", f"cannot read the job spec {args[0]}: {spec_problem(exc)}")
        return EXIT_ENV
    try:
        job = JobEnvironment.from_environ(os.environ)
    except (NotInSlurmJob, ValueError) as exc:
        log.line("runner", str(exc))
        return EXIT_ENV
    log.line("runner", f"ot-hpc runner for {spec.job_name}, job {job.job_id}, spec {args[0]}")
    return Runner(spec, job, os.environ, log).run()
