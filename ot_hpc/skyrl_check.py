"""Compose SkyRL overrides against SkyRL's real Hydra config, on the login node.

SkyRL's entrypoints use ``@hydra.main(config_path=<skyrl_train>/config,
config_name="ppo_base_config")``. Composing the same config with the job's overrides
catches "Key 'x' is not in struct" (a new key without ``+``), type errors and bad
syntax before anything is submitted, instead of on a GPU node hours later.

The check runs in a separate interpreter (``python -c``): the one SkyRL is installed
in (often a Python 3.12 venv) need not be the one running ot-submit, and Hydra stays
out of ot-submit's own process. Every failing override is reported: the script drops
the one Hydra names and composes again, until the rest compose.
"""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

DEFAULT_CONFIG_NAME = "ppo_base_config"

_CHECK_SCRIPT = r"""
import json, re, sys
request = json.loads(sys.stdin.read())
try:
    import importlib.util
    spec = importlib.util.find_spec("skyrl_train")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("skyrl_train is not installed")
    import os
    config_dir = os.path.join(list(spec.submodule_search_locations)[0], "config")
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
except Exception as exc:
    print(json.dumps({"available": False, "reason": f"{type(exc).__name__}: {exc}"}))
    sys.exit(0)

overrides = list(request["overrides"])
failures = []
key_pattern = re.compile(r"(?:override|Could not override|Could not append to config. An item is already at) '([^']+)'")
for _attempt in range(len(request["overrides"]) + 1):
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir, version_base=None):
            cfg = compose(config_name=request["config_name"], overrides=overrides)
        break
    except Exception as exc:
        text = str(exc)
        if exc.__cause__ is not None and str(exc.__cause__).strip():
            text += "\n" + str(exc.__cause__).splitlines()[0]
        message = " ".join(line.strip() for line in text.splitlines() if line.strip())
        culprit = None
        match = key_pattern.search(str(exc))
        if match:
            key = match.group(1)
            same_key = [item for item in overrides if item.split("=", 1)[0].lstrip("+~") == key]
            appending = "append" in str(exc)
            preferred = [item for item in same_key if item.startswith("+") == appending]
            culprit = (preferred or same_key or [None])[0]
        if culprit is None:
            exact = [item for item in overrides if item in text]
            by_key = [item for item in overrides if re.search(
                re.escape(item.split("=", 1)[0].lstrip("+~")) + r"(?![\w.])", text)]
            culprit = (exact or by_key or [None])[0]
        failures.append({"override": culprit, "message": message})
        if culprit is None:
            break
        overrides.remove(culprit)
values = {}
if not failures:
    from omegaconf import OmegaConf
    for key in request.get("echo", []):
        node = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
        if OmegaConf.is_config(node):
            node = OmegaConf.to_container(node, resolve=False)
        values[key] = node
print(json.dumps({"available": True, "config_dir": config_dir, "failures": failures,
                  "values": values}, default=str))
"""


@dataclass(frozen=True)
class ComposeFailure:
    override: Optional[str]  # the argv element Hydra refused, when it could be told
    message: str  # Hydra's message, on one line

    @property
    def key(self) -> Optional[str]:
        if self.override is None:
            return None
        return self.override.split("=", 1)[0].lstrip("+~")

    def fix(self) -> str:
        if "not in struct" in self.message or "Could not override" in self.message:
            key = self.key or "key"
            return (f"check the spelling against SkyRL's {DEFAULT_CONFIG_NAME}.yaml, or prefix "
                    f"a new key with + (+{key}=...)")
        if "Could not append" in self.message:
            return "the key exists: drop the +, or use ++ to add-or-override"
        return "fix the value (Hydra override syntax: key=value, lists [a,b], quote with '...')"


@dataclass(frozen=True)
class ComposeResult:
    available: bool  # False: skyrl_train (or Hydra) does not import in that interpreter
    reason: str = ""  # why not available
    failures: Tuple[ComposeFailure, ...] = ()
    config_dir: str = ""
    values: Tuple[Tuple[str, object], ...] = ()  # composed values of the keys asked for

    @property
    def ok(self) -> bool:
        return self.available and not self.failures


def compose_overrides(
    python: str,
    overrides: Sequence[str],
    config_name: str = DEFAULT_CONFIG_NAME,
    timeout_seconds: float = 120.0,
    echo_keys: Sequence[str] = (),
) -> ComposeResult:
    """Compose ``overrides`` in ``python``; never raises for SkyRL/Hydra problems."""
    request = json.dumps({"overrides": list(overrides), "config_name": config_name,
                          "echo": list(echo_keys)})
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "USER", "LANG", "TMPDIR")}
    env.setdefault("HOME", os.path.expanduser("~"))
    try:
        proc = subprocess.run(
            [python, "-c", _CHECK_SCRIPT],
            input=request,
            capture_output=True,
            text=True,
            timeout=timeout_seconds,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return ComposeResult(available=False, reason=f"cannot run {python}: {exc}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return ComposeResult(available=False, reason=f"{python} failed: {tail}")
    data = json.loads(lines[-1])
    if not data.get("available"):
        return ComposeResult(available=False, reason=data.get("reason", "unavailable"))
    failures = tuple(ComposeFailure(f.get("override"), f.get("message", "")) for f in data["failures"])
    values = tuple((key, value) for key, value in (data.get("values") or {}).items())
    return ComposeResult(available=True, failures=failures, config_dir=data.get("config_dir", ""),
                         values=values)


def skyrl_importable(python: str, package: str = "skyrl_train", timeout_seconds: float = 30.0) -> bool:
    """True when ``python`` can find ``package`` and the parser its config needs (``hydra``
    for skyrl_train, ``omegaconf`` for skyrl), without importing either."""
    parser = "hydra" if package == "skyrl_train" else "omegaconf"
    code = ("import importlib.util as u, sys; "
            f"sys.exit(0 if u.find_spec({package!r}) and u.find_spec({parser!r}) else 1)")
    try:
        return subprocess.run([python, "-c", code], capture_output=True,
                              timeout=timeout_seconds).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
