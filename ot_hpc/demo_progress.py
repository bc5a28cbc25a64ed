"""SkyRL-shaped training output for the CPU stand-in (``demo.skyrl_progress=<line>``).

What SkyRL's training loop prints (``skyrl_train/trainer.py``, ``skyrl/train/trainer.py``),
so that the runner's progress reading is tested through the real runner:

- tqdm's own bar ``Training Batches Processed`` on stderr (real tqdm: ``\\r`` redraws,
  a newline only when it closes), updated after each step is logged;
- each step, SkyRL's console tracker (``ConsoleLogger.log``): a loguru-formatted line on
  stderr ending in ``Step N: ``, then the metrics dict from ``pprint.pformat`` with every
  float turned into a string (``'0.4100'``), over several lines. ``skyrl-train`` logs the
  timings as a second ``Step N:`` dict, ``skyrl`` (0.4) in the same one;
- around them what else a step prints: an ``example:`` line and the status dict, which has
  no ``Step N:`` in front and is not progress.

With ``demo.progress_in_ray=true`` the loop runs in a Ray task called ``skyrl_entrypoint``,
as SkyRL's does, and reaches the job log the way SkyRL's does: through Ray's driver, with
``(skyrl_entrypoint pid=N)`` in front of every line.

Rewards and losses follow :func:`reward_at` and :func:`loss_at`, so tests know what to expect.
"""
from __future__ import annotations

import pprint
import sys
import time
from datetime import datetime
from typing import Any, Dict, Optional, TextIO

LINES = {"skyrl-train": "skyrl_train", "skyrl": "skyrl.train"}  # the line's package


def reward_at(step: int, total: int) -> float:
    return round(0.1 + 0.6 * step / max(total, 1), 4)


def loss_at(step: int) -> float:
    return round(1.0 / (step + 1), 4)


def stringify_floats(obj: Any) -> Any:
    """As SkyRL's ``ConsoleLogger.stringify_floats``: floats become ``'%.4f'`` strings."""
    if isinstance(obj, float):
        return f"{obj:.4f}"
    if isinstance(obj, dict):
        return {key: stringify_floats(value) for key, value in obj.items()}
    return obj


def loguru_line(package: str, where: str, message: str) -> str:
    """loguru's default format (no colour: not a terminal)."""
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return f"{stamp} | INFO     | {package}.{where} - {message}"


def step_metrics(step: int, total: int, epoch: int) -> Dict[str, Any]:
    return {
        "generate/avg_num_tokens": 512.0 + step, "generate/max_num_tokens": 1024,
        "loss/avg_final_rewards": reward_at(step, total) - 0.01, "loss/avg_raw_advantages": 0.0,
        "policy/grad_norm": 0.5 / step, "policy/policy_entropy": 1.2, "policy/policy_kl": 0.001 * step,
        "policy/policy_loss": loss_at(step), "policy/policy_lr": 1e-06,
        "reward/avg_pass_at_4": min(1.0, reward_at(step, total) + 0.2),
        "reward/avg_raw_reward": reward_at(step, total), "reward/mean_positive_reward": 0.5,
        "trainer/epoch": epoch, "trainer/global_step": step,
    }


def step_timings(delay: float) -> Dict[str, float]:
    return {"timing/step": delay, "timing/generate": delay * 0.6, "timing/train_critic_and_policy": delay * 0.3}


def log_step(package: str, step: int, data: Dict[str, Any], err: TextIO) -> None:
    """``ConsoleLogger.log``: ``logger.info(f"Step {step}: \\n{pformat(...)}")``."""
    message = f"Step {step}: \n{pprint.pformat(stringify_floats(data))}"
    err.write(loguru_line(package, "utils.tracking:log:107", message) + "\n")
    err.flush()


def run(line: str, steps: int, total: Optional[int] = None, delay: float = 0.3,
        out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> None:
    """Train ``steps`` fake steps of ``total`` (default: ``steps``), ``delay`` s each."""
    from tqdm import tqdm

    package = LINES[line]
    out, err = out or sys.stdout, err or sys.stderr
    total = total or steps
    err.write(loguru_line(package, "trainer:train:280", "Starting training") + "\n")
    pbar = tqdm(total=total, initial=0, desc="Training Batches Processed", file=err, mininterval=0)
    for step in range(1, steps + 1):
        time.sleep(delay)
        print("example: ", f"<|im_start|>user What is {step} + {step}?<|im_end|> {2 * step}", file=out, flush=True)
        status = {"policy_loss": loss_at(step), "policy_lr": 1e-06, "grad_norm": 0.5 / step}
        err.write(loguru_line(package, "trainer:train:402", str(status)) + "\n")
        metrics = step_metrics(step, total, epoch=0)
        if line == "skyrl-train":
            log_step(package, step, metrics, err)
            log_step(package, step, step_timings(delay), err)
        else:
            log_step(package, step, {**metrics, **step_timings(delay)}, err)
        pbar.update(1)
    if steps >= total:
        pbar.close()
    err.write(loguru_line(package, "trainer:train:460", "Training done!") + "\n")
    err.flush()


def run_in_ray(ray, line: str, steps: int, total: Optional[int], delay: float) -> None:
    """:func:`run` in a Ray task named like SkyRL's, on this node."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=True)
    task = ray.remote(num_cpus=0)(skyrl_entrypoint).options(scheduling_strategy=here)
    ray.get(task.remote(line, steps, total, delay))
    time.sleep(1.5)  # Ray's driver prints a task's last lines a moment after it ends


def skyrl_entrypoint(line: str, steps: int, total: Optional[int], delay: float) -> None:
    """The Ray task (named as SkyRL's, which is what Ray puts in front of its lines)."""
    run(line, steps, total, delay)
