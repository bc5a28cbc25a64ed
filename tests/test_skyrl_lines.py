"""Both SkyRL lines against their real wheels (tests/skyrl_wheels.py): detection, the
default entrypoint, both gsm8k examples, the rename lines, quoting round-trips; and the
pure parts (lines table, YAML quoting, the altered-value rule) as unit tests."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from ot_hpc import skyrl_check, skyrl_detect, skyrl_structured, submission
from ot_hpc.config.discovery import load_config
from ot_hpc.config.merge import Override
from ot_hpc.hydra import hydra_quote, omegaconf_quote
from ot_hpc.skyrl_lines import SKYRL, SKYRL_TRAIN, legacy_key_line, line_for
from ot_hpc.validate.skyrl import legacy_problems
from tests.skyrl_wheels import skyrl04_python, skyrl_train_python  # noqa: F401 (fixtures)
from tests.test_skyrl_compose import site  # noqa: F401 (fixture: data, secret, site env files)

# Values that must reach SkyRL exactly as written (or be refused), through either parser.
ADVERSARIAL = ["it's", "trail\\", "a b #c", "yes", "null", "123", "1.10", ".5", "x: y",
               " lead", "trail ", "new\nline", 'q"uote', "ü中😀", "[a,b]", "{a: 1}", "a=b",
               "~", "-1", "@x", "!x", "*a", "a,b", "\\\\", "$HOME", "%x", "back\\'slash"]


# ---------------------------------------------------------------- pure: no wheel needed

def test_lines_table_and_line_choice():
    assert line_for("skyrl.train.entrypoints.main_base", None) == SKYRL
    assert line_for("skyrl_train.entrypoints.main_base", SKYRL) == SKYRL_TRAIN
    assert line_for(None, SKYRL_TRAIN) == SKYRL_TRAIN and line_for(None, None) == SKYRL
    assert line_for("ot_hpc.demo_trainer", None) == SKYRL_TRAIN  # historical quoting
    reason, fix = legacy_key_line("generator.num_inference_engines")
    assert reason == "was renamed generator.inference_engine.num_engines in skyrl 0.4"
    assert legacy_key_line("generator.inference_engine_expert_parallel_size")[0].endswith(
        "generator.inference_engine.expert_parallel_size in skyrl 0.4")
    assert legacy_key_line("generator.async_engine")[0] == "was removed in skyrl 0.4"
    assert legacy_key_line("trainer.epochs") is None


def test_plus_and_legacy_keys_are_one_line_each():
    overrides = [Override("", "generator.backend", "vllm", "a.env:3"),
                 Override("+", "trainer.extra_field", "1", "a.env:4"),
                 Override("", "trainer.epochs", "2", "a.env:5")]
    lines = [p.line() for p in legacy_problems(overrides)]
    assert lines[0].startswith("generator.backend='vllm' (a.env:3): was renamed "
                               "generator.inference_engine.backend in skyrl 0.4")
    assert lines[1].startswith("+trainer.extra_field='1' (a.env:4): skyrl 0.4 refuses the '+' prefix")
    assert len(lines) == 2


def test_altered_rule():
    assert skyrl_structured.altered("a b #c", "a b", "a b")
    assert skyrl_structured.altered("yes", True, "True")
    assert not skyrl_structured.altered('"a b #c"', "a b #c", "a b #c")
    assert not skyrl_structured.altered("20", 20, 20) and not skyrl_structured.altered("x", "x", "x")


def test_yaml_quoting_keeps_plain_values_plain():
    assert omegaconf_quote("Qwen/Qwen2.5-1.5B-Instruct") == "Qwen/Qwen2.5-1.5B-Instruct"
    assert omegaconf_quote("/p/a:train") == "/p/a:train"
    assert omegaconf_quote("yes") == '"yes"' and omegaconf_quote("it's") == '"it\'s"'
    assert omegaconf_quote("a\\") == '"a\\\\"'


def test_summary_of_an_interpreter_without_skyrl(tmp_path):
    installed = skyrl_detect.detect(sys.executable, ["json"], environ={"HOME": str(tmp_path)})
    assert installed.ok and installed.line is None and installed.modules["json"]
    assert installed.summary().startswith("no SkyRL installed")


def test_ray_script_is_used_only_when_it_is_the_interpreters(tmp_path):
    from ot_hpc.runner.ray_cluster import ray_command

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python3.12"
    python.symlink_to(sys.executable)
    script = bin_dir / "ray"
    script.write_text(f"#!{python}\nimport ray\n")
    script.chmod(0o755)
    assert ray_command(str(python)) == [str(script)]
    script.write_text("#!/usr/bin/python3.9\nimport ray\n")  # another Python's Ray
    assert ray_command(str(python)) == [str(python), "-m", "ray.scripts.scripts"]


# ---------------------------------------------------------------- against the real wheels

@pytest.mark.parametrize("which,line,version,ray", [
    ("skyrl04_python", SKYRL, "0.4.0", "2.57.0"),
    ("skyrl_train_python", SKYRL_TRAIN, "0.3.1", "2.51.1")])
def test_detection_of_each_line_cold_then_cached(request, tmp_path, which, line, version, ray):
    python = request.getfixturevalue(which)
    environ = {"HOME": str(tmp_path)}
    cold = skyrl_detect.detect(python, environ=environ)
    warm = skyrl_detect.detect(python, environ=environ)
    assert (cold.line, cold.version_of(line), cold.ray) == (line, version, ray)
    assert not cold.cached and warm.cached and warm == skyrl_detect.Installed(
        **{**skyrl_detect.to_dict(cold), "seconds": warm.seconds, "cached": True})
    assert warm.seconds < cold.seconds
    print(f"detect {line}: cold {cold.seconds * 1000:.0f} ms, cached {warm.seconds * 1000:.1f} ms")


def test_skyrl04_config_module_imports_without_torch(skyrl04_python):
    code = ("import sys, skyrl.train.config.config as c; from omegaconf import OmegaConf; "
            "OmegaConf.structured(c.SkyRLTrainConfig); "
            "print(sorted(m for m in ('torch', 'vllm', 'ray') if m in sys.modules))")
    done = subprocess.run([skyrl04_python, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def build(site, config_name, cli, overrides=()):
    tmp, environ = site
    cli = dict({"CLUSTER": "tacc_vista", "SKYRL_CHECK": "true"}, **cli)
    config = load_config(config_name, cli, list(overrides), environ=environ, cwd=str(tmp))
    return submission.build(config, now=datetime(2025, 3, 1, tzinfo=timezone.utc), cwd=str(tmp),
                            environ=environ)


def problem_lines(site, config_name, cli, overrides=()):
    with pytest.raises(submission.ValidationFailed) as caught:
        build(site, config_name, cli, overrides)
    return [p.line() for p in caught.value.problems]


def test_default_entrypoint_follows_the_installed_skyrl(site, skyrl04_python, skyrl_train_python):
    for python, module, config in (
            (skyrl04_python, "skyrl.train.entrypoints.main_base", "gsm8k.env"),
            (skyrl_train_python, "skyrl_train.entrypoints.main_base", "gsm8k-skyrl-train.env")):
        request = build(site, config, {"TRAINER_PYTHON": python, "SKYRL_ENTRYPOINT": "",
                                            "SKYRL_CHECK": "false"})
        assert request.spec.entrypoint_module == module
        assert any(module in line for line in request.job.skyrl_summary)


@pytest.mark.parametrize("config_name,which", [("gsm8k.env", "skyrl04_python"),
                                               ("gsm8k-skyrl-train.env", "skyrl_train_python")])
def test_both_gsm8k_examples_pass_against_their_wheel(request, site, config_name, which):
    python = request.getfixturevalue(which)
    built = build(site, config_name, {"TRAINER_PYTHON": python})
    text = submission.dryrun(built)
    assert "# SkyRL: skyrl" in text and "Ray: 2." in text


def test_legacy_gsm8k_keys_against_skyrl04_are_rename_lines(site, skyrl04_python):
    lines = problem_lines(site, "gsm8k-skyrl-train.env", {
        "TRAINER_PYTHON": skyrl04_python, "SKYRL_ENTRYPOINT": "skyrl.train.entrypoints.main_base"})
    assert any(line.startswith("generator.num_inference_engines='2'") and
               "was renamed generator.inference_engine.num_engines in skyrl 0.4" in line
               for line in lines), lines
    renamed = [line for line in lines if "was renamed" in line]
    assert len(renamed) == 6 and any("generator.async_engine" in line for line in lines)
    assert all("\n" not in line for line in lines)


def test_every_bad_key_and_type_at_once(site, skyrl04_python):
    lines = problem_lines(site, "gsm8k.env", {"TRAINER_PYTHON": skyrl04_python}, [
        "trainer.epochz=3", "trainer.epochs=abc", "generator.samplng_params.top_p=0.5",
        "+trainer.seed=1", "trainer.run_name=my run #1", "hydra.run.dir=/x"])
    assert len(lines) == 6, lines
    assert any(line.startswith("trainer.epochz") and "not in" in line for line in lines)
    assert any(line.startswith("trainer.epochs='abc'") and "Integer" in line for line in lines)
    assert any(line.startswith("+trainer.seed") and "refuses the '+' prefix" in line for line in lines)
    assert any(line.startswith("trainer.run_name") and "'my run'" in line for line in lines)


def test_a_missing_entrypoint_module_is_one_line(site, skyrl_train_python):
    lines = problem_lines(site, "gsm8k.env", {"TRAINER_PYTHON": skyrl_train_python})
    assert lines[0].startswith("SKYRL_ENTRYPOINT='skyrl.train.entrypoints.main_base'")
    assert "does not exist in" in lines[0] and "skyrl_train.entrypoints.main_base" in lines[0]


def test_adversarial_values_round_trip_through_omegaconf(skyrl04_python):
    quoted = [f"trainer.run_name={omegaconf_quote(v)}" for v in ADVERSARIAL]
    raw = [f"trainer.run_name={v}" for v in ADVERSARIAL]
    result = skyrl_structured.check_overrides(skyrl04_python, quoted + raw)
    typed = dict(result.read_back)
    assert [typed.get(text) for text in quoted] == ADVERSARIAL, result.failures
    # Written raw, a value is read back exactly or refused with one line: never altered.
    refused = {f.override: f for f in result.failures}
    for value, text in zip(ADVERSARIAL, raw):
        if text in refused:
            assert "\n" not in refused[text].message and refused[text].fix()
        else:
            assert typed[text] in (value, None), (value, typed[text])
    assert {"trainer.run_name=a b #c", "trainer.run_name=yes", "trainer.run_name=1.10"} <= set(refused)


def test_adversarial_values_round_trip_through_hydra(skyrl_train_python):
    overrides = [f"+ot.v{i}={hydra_quote(v)}" for i, v in enumerate(ADVERSARIAL)]
    result = skyrl_check.compose_overrides(skyrl_train_python, overrides,
                                           echo_keys=[f"ot.v{i}" for i in range(len(ADVERSARIAL))])
    assert result.ok, result.failures
    values = dict(result.values)
    assert [values[f"ot.v{i}"] for i in range(len(ADVERSARIAL))] == ADVERSARIAL
    assert json.dumps(values)  # plain data
