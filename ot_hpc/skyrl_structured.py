"""Check overrides against skyrl >= 0.3's own typed config, on the login node.

skyrl 0.4's entrypoint builds its config with ``SkyRLTrainConfig.from_cli_overrides(argv)``:
``OmegaConf.from_cli`` (each value read with YAML) merged into the dataclasses. That last
step runs ``__post_init__``, which imports torch; merging into
``OmegaConf.structured(SkyRLTrainConfig)`` checks every key and type without it. Each
override is merged on its own, so every unknown key and wrong type is reported at once.
The few rules ``from_cli_overrides`` applies before the merge are applied here too (a
``+`` prefix, ``hydra.*`` keys, ``async_engine``, removed engine keys, the
``use_sample_packing`` alias).

Each override's value is also read back: a string field that would receive something
other than what was written (``a #b`` arrives as ``a``, ``yes`` as ``True``, ``1.10`` as
``1.1``) is a failure too, never silently altered.

Runs in the trainer's interpreter (``python -c``), like :mod:`ot_hpc.skyrl_check`.
"""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

CONFIG_MODULE = "skyrl.train.config.config"

_CHECK_SCRIPT = r"""
import json, sys
request = json.loads(sys.stdin.read())
try:
    from omegaconf import OmegaConf
    from skyrl.train.config.config import SkyRLTrainConfig
    base = OmegaConf.structured(SkyRLTrainConfig)
except Exception as exc:
    print(json.dumps({"available": False, "reason": f"{type(exc).__name__}: {exc}"}))
    sys.exit(0)
IE = "generator.inference_engine."
REMOVED = {IE + "enable_http_endpoint", IE + "override_existing_update_group", IE + "remote_urls"}
def one_line(exc):
    text = str(exc).strip().splitlines() or [type(exc).__name__]
    return f"{type(exc).__name__}: {text[0]}"
def plain(node):
    return OmegaConf.to_container(node, resolve=False) if OmegaConf.is_config(node) else node
def select(cfg, key):
    return plain(OmegaConf.select(cfg, key, throw_on_resolution_failure=False))
failures, accepted, read_back = [], [], {}
for arg in request["overrides"]:
    key, sep, raw = arg.partition("=")
    if arg.startswith(("+", "~")):
        failures.append({"override": arg, "kind": "plus", "message": "skyrl refuses the + prefix "
                         "(ValueError: add custom fields by subclassing the config dataclass)"})
        continue
    if not sep or not key:
        failures.append({"override": arg, "kind": "syntax", "message": "is not key=value"})
        continue
    if key.split(".")[0] == "hydra":
        failures.append({"override": arg, "kind": "key", "message": "skyrl has no Hydra: hydra.* keys are refused"})
        continue
    if key in REMOVED:
        failures.append({"override": arg, "kind": "removed", "message": "is no longer supported by skyrl"})
        continue
    if key == IE + "async_engine":
        if raw.strip().lower() != "true":
            failures.append({"override": arg, "kind": "removed", "message": "async_engine=false is no longer supported"})
        continue  # true: accepted and dropped by from_cli_overrides
    if key == "trainer.use_sample_packing":
        arg = "trainer.remove_microbatch_padding=" + raw
        key = "trainer.remove_microbatch_padding"
    try:
        cli = OmegaConf.from_cli([arg])
        parsed = select(cli, key)
        merged = OmegaConf.merge(base, cli)
    except Exception as exc:
        failures.append({"override": arg, "kind": "refused", "message": one_line(exc)})
        continue
    typed = select(merged, key)
    read_back[arg] = {"parsed": parsed, "typed": typed}
    accepted.append(arg)
values = {}
if accepted:
    try:
        cfg = OmegaConf.merge(base, OmegaConf.from_cli(accepted))
        values = {key: select(cfg, key) for key in request.get("echo", [])}
    except Exception as exc:
        failures.append({"override": None, "kind": "refused", "message": one_line(exc)})
print(json.dumps({"available": True, "failures": failures, "read_back": read_back,
                  "values": values}, default=str))
"""


@dataclass(frozen=True)
class StructuredFailure:
    override: Optional[str]
    kind: str  # plus | syntax | key | removed | refused | altered
    message: str

    @property
    def key(self) -> Optional[str]:
        return None if self.override is None else self.override.split("=", 1)[0].lstrip("+~")

    def fix(self) -> str:
        if self.kind == "plus":
            return f"drop the + ({self.key}=...): skyrl has no new keys; the key must be a config field"
        if self.kind == "altered":
            return "quote the value: key=\"...\" (YAML double quotes, \\\" and \\\\ inside)"
        if "not in" in self.message or self.kind == "key":
            return "check the spelling against skyrl's SkyRLTrainConfig (skyrl/train/config/config.py)"
        if self.kind == "removed":
            return "remove the override"
        return "fix the value (OmegaConf.from_cli reads it as YAML: lists [a,b], quote with \"...\")"


@dataclass(frozen=True)
class StructuredResult:
    available: bool
    reason: str = ""
    failures: Tuple[StructuredFailure, ...] = ()
    values: Tuple[Tuple[str, object], ...] = ()
    read_back: Tuple[Tuple[str, object], ...] = ()  # override -> the value its field gets

    @property
    def ok(self) -> bool:
        return self.available and not self.failures


def _is_quoted(raw: str) -> bool:
    text = raw.strip()
    return len(text) >= 2 and text[0] == text[-1] and text[0] in "'\""


def altered(raw: str, parsed: object, typed: object) -> bool:
    """A string field would get something other than the text written (pure)."""
    if not isinstance(typed, str) or _is_quoted(raw) or "${" in raw:
        return False
    return typed != raw or (isinstance(parsed, str) and parsed != raw)


def check_overrides(python: str, overrides: Sequence[str], echo_keys: Sequence[str] = (),
                    timeout_seconds: float = 120.0) -> StructuredResult:
    """Merge ``overrides`` into skyrl's structured config in ``python``; never raises."""
    request = json.dumps({"overrides": list(overrides), "echo": list(echo_keys)})
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "USER", "LANG", "TMPDIR")}
    try:
        proc = subprocess.run([python, "-c", _CHECK_SCRIPT], input=request, capture_output=True,
                              text=True, timeout=timeout_seconds, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return StructuredResult(False, f"cannot run {python}: {exc}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return StructuredResult(False, f"{python} failed: {tail}")
    data = json.loads(lines[-1])
    if not data.get("available"):
        return StructuredResult(False, data.get("reason", "unavailable"))
    failures = [StructuredFailure(f.get("override"), f.get("kind", ""), f.get("message", ""))
                for f in data["failures"]]
    for arg, seen in (data.get("read_back") or {}).items():
        raw = arg.split("=", 1)[1]
        if altered(raw, seen.get("parsed"), seen.get("typed")):
            failures.append(StructuredFailure(
                arg, "altered", f"skyrl would read the value as {seen.get('typed')!r}, not as written"))
    read_back = tuple((arg, seen.get("typed")) for arg, seen in (data.get("read_back") or {}).items())
    return StructuredResult(True, failures=tuple(failures), read_back=read_back,
                            values=tuple((data.get("values") or {}).items()))
