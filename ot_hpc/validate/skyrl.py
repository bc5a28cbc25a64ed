"""SkyRL's rules that fail late on the GPU node (checked on the login node instead), and
the overrides composed against SkyRL's real Hydra config where SkyRL is installed."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from ..config.merge import Override
from ..config.problems import Problem
from ..skyrl_lines import LINES, SKYRL, Line, legacy_key_line, line_of_entrypoint
from .fields import Context, Fields, Section, int_of

POLICY_KEYS = ("trainer.placement.policy_num_nodes", "trainer.placement.policy_num_gpus_per_node")


def is_skyrl_entrypoint(entrypoint: Optional[str]) -> bool:
    """SkyRL's own entrypoint (either line): the rules and the config check apply."""
    return line_of_entrypoint(entrypoint) is not None


class _Overrides:
    """The final overrides over SkyRL's defaults, with where each value came from."""

    def __init__(self, overrides: Mapping[str, Override], line: Line) -> None:
        self.by_key = overrides
        self.line = line

    def get(self, key: str) -> Optional[str]:
        if key in self.by_key:
            return self.by_key[key].value
        return self.line.defaults.get(key)

    def source(self, *keys: str) -> str:
        sources = [self.by_key[k].source for k in keys if k in self.by_key]
        return ", ".join(sources) if sources else "SkyRL defaults"


def _placement_problems(values: _Overrides, num_nodes: Optional[int],
                        gpus_per_node: Optional[int]) -> List[Problem]:
    policy_nodes, policy_gpn = (int_of(values.get(k)) for k in POLICY_KEYS)
    rollout = [int_of(values.get(k)) for k in values.line.rollout_keys]
    if policy_nodes is None or policy_gpn is None:
        return []
    problems = []
    policy_gpus = policy_nodes * policy_gpn
    colocated = (values.get("trainer.placement.colocate_all") or "").strip().lower() == "true"
    if colocated and all(r is not None for r in rollout):
        rollout_gpus = rollout[0] * rollout[1] * rollout[2] * rollout[3]  # type: ignore[operator]
        if policy_gpus != rollout_gpus:
            problems.append(Problem(
                "trainer.placement.colocate_all", "true",
                f"policy GPUs {policy_nodes}x{policy_gpn}={policy_gpus} differ from rollout "
                f"GPUs {'x'.join(str(r) for r in rollout)}={rollout_gpus}",
                "make policy_num_nodes*policy_num_gpus_per_node equal the product of "
                + ", ".join(k.rsplit(".", 1)[1] for k in values.line.rollout_keys),
                values.source(*POLICY_KEYS, *values.line.rollout_keys)))
    if num_nodes is not None and gpus_per_node is not None and (
            policy_nodes > num_nodes or policy_gpn > gpus_per_node):
        problems.append(Problem(
            "trainer.placement.policy_num_nodes", f"{policy_nodes}x{policy_gpn}",
            f"needs {policy_nodes} nodes x {policy_gpn} GPUs but the job has {num_nodes} "
            f"x {gpus_per_node}",
            "set trainer.placement.policy_num_nodes=${NUM_NODES} and "
            "trainer.placement.policy_num_gpus_per_node=${GPUS_PER_NODE}",
            values.source(*POLICY_KEYS)))
    return problems


def _logger_problems(values: _Overrides, secret_keys: Optional[List[str]],
                     secret_path: Optional[str], environment: Mapping[str, str]) -> List[Problem]:
    logger = (values.get("trainer.logger") or "").lower()
    wandb_mode = (environment.get("WANDB_MODE") or "").lower()
    if "wandb" not in logger or wandb_mode in ("offline", "disabled"):
        return []
    where = values.source("trainer.logger")
    if secret_path is None:
        return [Problem("trainer.logger", values.get("trainer.logger"),
                        "logs to W&B but no secret env file is set",
                        "set SECRET_ENV_PATH to a file holding WANDB_API_KEY (or "
                        "trainer.logger=console, or WANDB_MODE=offline)", where)]
    if secret_keys is not None and "WANDB_API_KEY" not in secret_keys:
        return [Problem("trainer.logger", values.get("trainer.logger"),
                        f"logs to W&B but {secret_path} has no WANDB_API_KEY",
                        "add WANDB_API_KEY=... to that file (or trainer.logger=console)", where)]
    return []


def legacy_problems(overrides: Sequence[Override]) -> List[Problem]:
    """For skyrl >= 0.3: the skyrl-train keys it renamed or removed, and ``+`` (pure)."""
    problems = []
    for o in overrides:
        legacy = legacy_key_line(o.key)
        if legacy is not None:
            problems.append(Problem(o.key, o.value, legacy[0], legacy[1], o.source))
        elif o.prefix:
            problems.append(Problem(
                o.prefix + o.key, o.value, f"skyrl 0.4 refuses the {o.prefix!r} prefix (its config "
                "is typed dataclasses: it cannot add keys)", f"drop the prefix ({o.key}=...) if "
                "the key is a config field; new fields need a subclassed config", o.source))
    return problems


def check_skyrl_rules(context: Context, found: Mapping[str, Any]) -> Section:
    """GPUs, placement, batch sizes, the W&B key and (skyrl >= 0.3) the renamed keys, for
    SkyRL's own entrypoints."""
    fields = Fields(context.config, context.cwd)
    if not is_skyrl_entrypoint(found.get("entrypoint")):
        return fields.section()
    gpus_per_node = found.get("gpus_per_node")
    if gpus_per_node == 0:
        fields.problem("GPUS_PER_NODE", "is 0 but SkyRL trains on GPUs",
                       "set GPUS_PER_NODE to the GPUs per node (or use a CPU entrypoint)")
    overrides = found.get("overrides", ())
    line = LINES[found.get("skyrl_line") or SKYRL]
    if line.name == SKYRL:
        fields.problems.extend(legacy_problems(overrides))
    values = _Overrides({o.key: o for o in overrides}, line)
    fields.problems.extend(_placement_problems(values, found.get("num_nodes"), gpus_per_node))
    train_batch = int_of(values.get("trainer.train_batch_size"))
    mini_batch = int_of(values.get("trainer.policy_mini_batch_size"))
    if train_batch is not None and mini_batch is not None and train_batch < mini_batch:
        fields.problems.append(Problem(
            "trainer.train_batch_size", str(train_batch),
            f"is smaller than trainer.policy_mini_batch_size={mini_batch}",
            "make train_batch_size >= policy_mini_batch_size (and a multiple of it)",
            values.source("trainer.train_batch_size", "trainer.policy_mini_batch_size")))
    fields.problems.extend(_logger_problems(values, found.get("secret_keys"),
                                            found.get("secret_env_file"), found.get("environment", {})))
    return fields.section()


def _failure_problems(result, overrides: Sequence[Override]) -> List[Problem]:
    """The failures of either check as problems, skipping what legacy_problems reported."""
    by_text: Dict[str, Override] = {o.text: o for o in overrides}
    problems = []
    for failure in result.failures:
        culprit = by_text.get(failure.override or "")
        if culprit is not None and getattr(failure, "kind", "") and (
                culprit.prefix or legacy_key_line(culprit.key) is not None):
            continue  # already one line from legacy_problems
        problems.append(Problem(
            culprit.key if culprit else (failure.key or "overrides"),
            culprit.value if culprit else failure.override,
            f"SkyRL's config refuses it: {failure.message}", failure.fix(),
            culprit.source if culprit else ""))
    return problems


def check_skyrl_config(context: Context, found: Mapping[str, Any]) -> Section:
    """The overrides checked against the installed SkyRL's own config (SKYRL_CHECK): Hydra
    composition for skyrl-train, the structured dataclass config for skyrl >= 0.3."""
    from .. import skyrl_check, skyrl_structured

    fields = Fields(context.config, context.cwd)
    mode = found.get("skyrl_check_mode") or "auto"
    python = found.get("trainer_python")
    line = found.get("skyrl_line") or SKYRL
    if not (context.run_skyrl_check and is_skyrl_entrypoint(found.get("entrypoint"))
            and mode != "false" and python):
        return fields.section()
    package = LINES[line].package
    if mode == "auto" and not skyrl_check.skyrl_importable(python, package):
        fields.warnings.append(
            f"{package} does not import with {python}: overrides were not checked "
            "against SkyRL's config (set TRAINER_PYTHON to SkyRL's interpreter to check)")
        return fields.section()
    overrides = found.get("overrides", ())
    texts = [o.text for o in overrides]
    if line == SKYRL:
        result = skyrl_structured.check_overrides(python, texts)
    else:
        result = skyrl_check.compose_overrides(python, texts)
    if not result.available and mode == "true":
        fields.problem("SKYRL_CHECK", f"cannot check with {python}: {result.reason}",
                       "point TRAINER_PYTHON at SkyRL's venv, or SKYRL_CHECK=auto")
    fields.problems.extend(_failure_problems(result, overrides))
    return fields.section()
