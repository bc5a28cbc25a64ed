"""The two SkyRL lines ot-hpc launches, as plain data: the one source of truth for each
line's entrypoint, config kind, rule defaults and the keys skyrl 0.4 renamed.

- ``skyrl`` (>= 0.3, current 0.4.0): ``skyrl.train.entrypoints.main_base``; typed
  dataclass config (``SkyRLTrainConfig.from_cli_overrides``, parsed with
  ``OmegaConf.from_cli``); a ``+`` prefix is refused.
- ``skyrl-train`` (0.3.1, deprecated upstream): ``skyrl_train.entrypoints.main_base``;
  Hydra (``ppo_base_config.yaml``), ``+key``/``++key`` add keys.

Facts read from the released wheels (see the reference on SkyRL versions). Pure.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Tuple

SKYRL = "skyrl"
SKYRL_TRAIN = "skyrl-train"


@dataclass(frozen=True)
class Line:
    name: str  # "skyrl" | "skyrl-train" (the PyPI name)
    package: str  # the import name
    entrypoint: str  # the default SKYRL_ENTRYPOINT
    config: str  # "structured" (OmegaConf.from_cli into dataclasses) | "hydra"
    accepts_plus: bool  # whether "+key=value" can add a key
    # SkyRL's defaults for the rules that fail late (validate/skyrl.py).
    defaults: Mapping[str, str]
    # The rollout GPU product: engines x tensor x pipeline x data parallel size.
    rollout_keys: Tuple[str, str, str, str]


_COMMON_DEFAULTS = {
    "trainer.placement.colocate_all": "true",
    "trainer.placement.policy_num_nodes": "1",
    "trainer.train_batch_size": "1024",
    "trainer.policy_mini_batch_size": "256",
    "trainer.logger": "wandb",
    "trainer.resume_mode": "latest",
}
_IE = "generator.inference_engine."
LINES: Mapping[str, Line] = {
    SKYRL: Line(
        SKYRL, "skyrl", "skyrl.train.entrypoints.main_base", "structured", False,
        dict(_COMMON_DEFAULTS, **{
            "trainer.placement.policy_num_gpus_per_node": "1",
            _IE + "num_engines": "1", _IE + "tensor_parallel_size": "1",
            _IE + "pipeline_parallel_size": "1", _IE + "data_parallel_size": "1"}),
        (_IE + "num_engines", _IE + "tensor_parallel_size", _IE + "pipeline_parallel_size",
         _IE + "data_parallel_size")),
    SKYRL_TRAIN: Line(
        SKYRL_TRAIN, "skyrl_train", "skyrl_train.entrypoints.main_base", "hydra", True,
        dict(_COMMON_DEFAULTS, **{
            "trainer.placement.policy_num_gpus_per_node": "4",
            "generator.num_inference_engines": "1",
            "generator.inference_engine_tensor_parallel_size": "4",
            "generator.inference_engine_pipeline_parallel_size": "1",
            "generator.inference_engine_data_parallel_size": "1"}),
        ("generator.num_inference_engines", "generator.inference_engine_tensor_parallel_size",
         "generator.inference_engine_pipeline_parallel_size",
         "generator.inference_engine_data_parallel_size")),
}
# When nothing can be detected (TRAINER_PYTHON does not run here): the current SkyRL.
DEFAULT_LINE = SKYRL

# skyrl-train key -> skyrl 0.4 key (SkyRL's own migration table).
RENAMED_IN_04: Mapping[str, str] = {
    "generator.num_inference_engines": _IE + "num_engines",
    **{f"generator.inference_engine_{p}_parallel_size": f"{_IE}{p}_parallel_size"
       for p in ("tensor", "pipeline", "expert", "data")},
    **{f"generator.{k}": _IE + k for k in (
        "backend", "run_engines_locally", "weight_sync_backend", "gpu_memory_utilization",
        "enforce_eager", "engine_init_kwargs")},
}
# skyrl-train keys skyrl 0.4 no longer has: key -> what to do instead.
REMOVED_IN_04: Mapping[str, str] = {
    "generator.async_engine": "remove it (skyrl 0.4 always runs the async engine)",
    "generator.enable_http_endpoint": "remove it (skyrl 0.4 always uses the HTTP/vLLM path)",
    "generator.override_existing_update_group": "remove it (managed by skyrl 0.4 itself)",
    "generator.remote_urls": "use generator.inference_engine.external_server_urls",
}


def line_of_entrypoint(module: Optional[str]) -> Optional[str]:
    """The line an entrypoint module belongs to, by its package; None for other modules."""
    if not module:
        return None
    top = module.split(".", 1)[0]
    return next((line.name for line in LINES.values() if line.package == top), None)


def line_for(entrypoint: Optional[str], installed: Optional[str]) -> str:
    """The line whose parser the overrides are checked and quoted for: the entrypoint's
    package, else the one installed in the trainer's interpreter; with neither, the
    current SkyRL for the default entrypoint, and Hydra's quoting (ot-hpc's historical one)
    for another module (e.g. ot_hpc.demo_trainer)."""
    by_module = line_of_entrypoint(entrypoint)
    if by_module or installed:
        return by_module or installed or DEFAULT_LINE
    return SKYRL_TRAIN if entrypoint else DEFAULT_LINE


def legacy_key_line(key: str) -> Optional[Tuple[str, str]]:
    """For a skyrl-train key that skyrl 0.4 renamed or removed: (reason, fix); else None."""
    bare = key.lstrip("+~")
    if bare in RENAMED_IN_04:
        new = RENAMED_IN_04[bare]
        return f"was renamed {new} in skyrl 0.4", f"write {new}=... instead"
    if bare in REMOVED_IN_04:
        return "was removed in skyrl 0.4", REMOVED_IN_04[bare]
    return None
