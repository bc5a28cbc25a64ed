"""A CPU stand-in for SkyRL: ``python -m ot_hpc.demo_trainer [demo.key=value ...]``.

Used by the local demo (``envs/demo.env``) and the runner's tests. It connects to the
Ray cluster at ``$RAY_ADDRESS``, checks that every node the runner expects
(``$OT_HPC_RAY_EXPECTED``) is alive with its CPUs and GPUs, runs one task on each node,
and then, as asked through Hydra-style overrides (other keys are accepted and ignored,
like SkyRL's own ``trainer.*`` overrides):

- ``demo.fetch_url=http://host:port/path``: fetch it through the SOCKS proxy in
  ``$ALL_PROXY``, with the credentials that URL carries (proving egress through the
  job's tunnel and its relay's authentication), from every node's task
  and from the driver; ``demo.fetch_attempts=N`` retries (default 1, 0.5 s apart)
- ``demo.wait_for_file=PATH``: then wait until PATH exists and fetch again (tests kill
  the tunnel in between)
- ``demo.skyrl_progress=skyrl-train|skyrl``: print that SkyRL line's training progress
  (tqdm bar, ``Step N:`` metrics dicts; :mod:`ot_hpc.demo_progress`) for
  ``demo.progress_steps`` steps (default 4) of ``demo.progress_total`` (default: as many),
  ``demo.progress_delay`` s each (default 0.3); ``demo.progress_in_ray=true`` prints it from
  a Ray task, as SkyRL does (done before ``demo.wait_for_file``)
- ``demo.sleep_seconds=S``: then sleep
- trainer faults (after the tasks ran): ``demo.ignore_sigterm=true`` ignores SIGTERM (only
  SIGKILL stops it); ``demo.kill_self=N`` kills itself with signal N (9: as the OOM killer
  does); ``demo.hang=true`` says so once, then prints nothing ever again (a hung
  collective); ``demo.exit_code=137`` is the exit code of a wrapper whose child was killed
- ``demo.print_env=A,B``: print those variables (the job log must show secrets redacted)
- ``demo.export_dir=PATH``: write a tiny fake SkyRL HF export at the end,
  ``PATH/global_step_<demo.export_step, default 1>/policy/`` (config.json, model.safetensors,
  tokenizer.json, plus an FSDP shard that must never be uploaded)
- ``demo.exit_code=N``: exit with N (default 0); ``demo.fail_on_restart=false`` exits 0
  from the second run on (``$SLURM_RESTART_COUNT`` > 0)
- ``demo.checkpoint_dir=PATH``: resume from ``PATH/latest`` (a step number, as SkyRL's
  ``resume_mode=latest`` does) when it exists, then save the next step there at once
- ``demo.ray_init=skyrl``: connect as SkyRL does, ``ray.init(runtime_env=...)`` with no
  address (Ray takes ``$RAY_ADDRESS``, and its token from the environment the runner set)
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Dict, List, Optional
from urllib.parse import unquote, urlsplit


def parse_overrides(argv: List[str]) -> Dict[str, str]:
    values: Dict[str, str] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            raise SystemExit(f"demo_trainer: expected key=value, got {arg!r}")
        values[key.lstrip("+")] = value
    return values


def fetch_via_proxy(url: str, proxy: Optional[str], timeout: float = 10.0) -> str:
    """GET ``url`` through the socks5h://[user:password@]host:port proxy (the job's relay
    wants the credentials its URL carries); return the body's first line."""
    from ot_hpc.runner.egress import Credentials, socks5_connect

    if not proxy:
        raise RuntimeError("no ALL_PROXY in the environment: the job has no tunnel")
    parts = urlsplit(url)
    via = urlsplit(proxy)
    credentials = None
    if via.username is not None:
        credentials = Credentials(unquote(via.username), unquote(via.password or ""))
    port = parts.port or (443 if parts.scheme == "https" else 80)
    sock = socks5_connect(via.hostname or "", via.port or 1080, parts.hostname or "", port, timeout,
                          credentials)
    with sock:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {parts.netloc}\r\n\r\n".encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    if " 200 " not in status + " ":
        raise RuntimeError(f"{url}: {status}")
    return body.decode("utf-8", "replace").strip().splitlines()[0] if body.strip() else ""


def without_credentials(url: Optional[str]) -> str:
    """The URL without its ``user:password@`` (for messages: a Ray task's error travels)."""
    parts = urlsplit(url or "")
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def fetch_with_retries(url: str, proxy: Optional[str], attempts: int) -> str:
    last: Exception = RuntimeError("no attempt")
    for attempt in range(max(1, attempts)):
        try:
            return fetch_via_proxy(url, proxy)
        except Exception as exc:  # noqa: BLE001 - retried, then reported
            last = exc
            time.sleep(0.5)
    raise RuntimeError(f"fetch {url} through {without_credentials(proxy) or 'no proxy'} failed: {last}")


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def check_nodes(ray) -> int:
    """0 when every node the runner expects is alive with its CPUs and GPUs, else 10/11."""
    expected = json.loads(os.environ.get("OT_HPC_RAY_EXPECTED") or "{}")
    alive = {n["NodeManagerAddress"]: n for n in ray.nodes() if n.get("Alive")}
    for ip, want in sorted(expected.items()):
        node = alive.get(ip)
        if node is None:
            say(f"node {want['node']} ({ip}) is missing from the Ray cluster")
            return 10
        res = node.get("Resources", {})
        if int(res.get("CPU", 0)) != want["CPU"] or int(res.get("GPU", 0)) != want["GPU"]:
            say(f"node {want['node']} has CPU={res.get('CPU', 0)} GPU={res.get('GPU', 0)}, "
                f"expected CPU={want['CPU']} GPU={want['GPU']}")
            return 11
    say(f"all {len(expected) or len(alive)} nodes alive with the expected resources")
    return 0


def export_fake_model(export: str, step: int) -> None:
    """A fake Hugging Face model where SkyRL's export would be (for the upload tests)."""
    policy = os.path.join(export, f"global_step_{step}", "policy")
    os.makedirs(policy, exist_ok=True)
    for name, content in (("config.json", '{"model_type": "demo"}'), ("model.safetensors", "demo"),
                          ("tokenizer.json", "{}"), ("model_world_size_1_rank_0.pt", "shard")):
        with open(os.path.join(policy, name), "w") as handle:
            handle.write(content)
    say(f"exported a fake HF model to {policy}")


def show_progress(ray, line: str, demo: Dict[str, str]) -> None:
    """SkyRL-shaped progress output (in a Ray task when ``ray`` is given)."""
    from ot_hpc import demo_progress

    if line not in demo_progress.LINES:
        raise SystemExit(f"demo_trainer: demo.skyrl_progress must be one of {', '.join(demo_progress.LINES)}")
    steps = int(demo.get("progress_steps", "4"))
    total = int(demo.get("progress_total", "0")) or None
    delay = float(demo.get("progress_delay", "0.3"))
    say(f"printing {line}'s progress for {steps} step(s)" + (" from a Ray task" if ray else ""))
    if ray is not None:
        demo_progress.run_in_ray(ray, line, steps, total, delay)
    else:
        demo_progress.run(line, steps, total, delay)


def progress_in_ray(demo: Dict[str, str]) -> bool:
    """demo.progress_in_ray=true: the progress lines come from a Ray task, not the driver."""
    return demo.get("progress_in_ray", "false").lower() == "true"


def connect_ray(ray, demo: Dict[str, str], address: Optional[str]) -> None:
    """``ray.init`` as the demo's options ask: like SkyRL (no address, RAY_ADDRESS from the
    environment, a runtime_env) or with the address; the driver sees the workers' output
    only when the progress lines come from inside Ray."""
    log_to_driver = bool(demo.get("skyrl_progress") and progress_in_ray(demo))
    if demo.get("ray_init") == "skyrl":
        ray.init(runtime_env={"env_vars": {"OT_HPC_DEMO_STYLE": "skyrl"}}, logging_level="ERROR",
                 log_to_driver=log_to_driver)
    else:
        ray.init(address=address, logging_level="ERROR", log_to_driver=log_to_driver)


def checkpoint(directory: str) -> None:
    """Resume from ``directory/latest`` when there is one, then write the next step (atomic)."""
    path = os.path.join(directory, "latest")
    try:
        with open(path) as handle:
            step = int(handle.read().strip() or 0)
        say(f"resuming from checkpoint step {step} ({path})")
    except (OSError, ValueError):
        step = 0
        say(f"no checkpoint in {directory}: starting at step 0")
    os.makedirs(directory, exist_ok=True)
    with open(path + ".tmp", "w") as handle:
        handle.write(f"{step + 1}\n")
    os.replace(path + ".tmp", path)
    say(f"checkpoint step {step + 1} saved")


def trainer_fault(demo: Dict[str, str]) -> None:
    """The faults the runner's tests make: ignore SIGTERM, die by a signal, hang silently."""
    import signal

    if demo.get("ignore_sigterm", "false").lower() == "true":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say("ignoring SIGTERM")
    if demo.get("kill_self"):
        number = int(demo["kill_self"])
        say(f"killing myself with signal {number}")
        os.kill(os.getpid(), number)
        time.sleep(5)
    if demo.get("hang", "false").lower() == "true":
        say("hanging (no more output)")
        while True:
            time.sleep(3600)


def main(argv: Optional[List[str]] = None) -> int:
    opts = parse_overrides(list(sys.argv[1:] if argv is None else argv))
    demo = {k[len("demo."):]: v for k, v in opts.items() if k.startswith("demo.")}
    others = sorted(k for k in opts if not k.startswith("demo."))
    if others:
        say(f"ignoring {len(others)} non-demo override(s): {', '.join(others)}")
    exit_code = int(demo.get("exit_code", "0"))
    restart = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    if demo.get("fail_on_restart", "true").lower() == "false" and restart > 0:
        exit_code = 0
    url = demo.get("fetch_url")
    attempts = int(demo.get("fetch_attempts", "1"))
    proxy = os.environ.get("ALL_PROXY") or os.environ.get("all_proxy")

    for key in [k for k in demo.get("print_env", "").split(",") if k]:
        say(f"env {key}={os.environ.get(key, '<unset>')}")

    import ray

    address = os.environ.get("RAY_ADDRESS")
    started = time.monotonic()
    progress_line = demo.get("skyrl_progress")
    connect_ray(ray, demo, address)
    say(f"connected to Ray at {address} in {time.monotonic() - started:.2f} s")
    problem = check_nodes(ray)
    if problem:
        return problem

    @ray.remote(num_cpus=0)
    def on_node(fetch: Optional[str], tries: int):
        import socket as _socket

        ip = ray.util.get_node_ip_address()
        # The node's own environment (from `ray start`): the proxy URL and its password
        # never travel as task arguments.
        proxy_url = os.environ.get("ALL_PROXY") or os.environ.get("all_proxy")
        body = fetch_with_retries(fetch, proxy_url, tries) if fetch else None
        return ip, _socket.gethostname(), body

    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    refs = []
    for node in ray.nodes():
        if node.get("Alive"):
            strategy = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
            refs.append(on_node.options(scheduling_strategy=strategy).remote(url, attempts))
    try:
        results = ray.get(refs, timeout=120)
    except Exception as exc:  # noqa: BLE001
        say(f"a task failed: {str(exc).splitlines()[0]}")
        return 12
    for ip, host, body in sorted(results):
        say(f"task ran on {ip} ({host})" + (f"; fetched {url} through the proxy: {body}" if url else ""))
    if url:
        say(f"fetch 1 ok from the driver: {fetch_with_retries(url, proxy, attempts)}")
    if demo.get("checkpoint_dir"):
        checkpoint(demo["checkpoint_dir"])
    if progress_line:
        show_progress(ray if progress_in_ray(demo) else None, progress_line, demo)
    marker = demo.get("wait_for_file")
    if marker:
        say(f"waiting for {marker}")
        while not os.path.exists(marker):
            time.sleep(0.1)
        if url:
            try:
                say(f"fetch 2 ok from the driver: {fetch_with_retries(url, proxy, max(attempts, 20))}")
            except RuntimeError as exc:
                say(str(exc))
                return 13
    trainer_fault(demo)
    sleep = float(demo.get("sleep_seconds", "0"))
    if sleep > 0:
        say(f"sleeping {sleep:g} s")
        time.sleep(sleep)
    if demo.get("export_dir"):
        export_fake_model(demo["export_dir"], int(demo.get("export_step", "1")))
    say(f"exiting with code {exit_code}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
