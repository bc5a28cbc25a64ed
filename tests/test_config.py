"""Settings layering, env-file parsing, overrides and provenance."""
from __future__ import annotations

import pytest

from ot_hpc.config.discovery import ConfigError, load_config
from ot_hpc.envfile import parse_env_text
from ot_hpc.config.merge import format_config
from ot_hpc.config.secrets import is_secret_name
from ot_hpc.config.settings import SETTINGS, format_settings_table
from ot_hpc.clusters import ClusterNotFound


@pytest.fixture
def envs(tmp_path):
    """An envs/ dir with a site env for `local`, and an environment that points at it."""
    envs_dir = tmp_path / "envs"
    envs_dir.mkdir()
    (envs_dir / "local.env").write_text(
        "PARTITION=gpu\nQOS=site-qos\nHF_HOME=/site/hf\nWANDB_PROJECT=site-project\n"
        "EXPERIMENTS_DIR=${HOME}/exp\n")
    environ = {"HOME": str(tmp_path / "home"), "OT_HPC_ENVS_DIR": str(envs_dir), "PATH": "/bin"}
    return tmp_path, envs_dir, environ


def load(environ, cwd, config=None, cli=None, overrides=(), host=("vm", "vm")):
    return load_config(config, {"CLUSTER": "local"} if cli is None else cli, list(overrides), hostname=host[0],
                       fqdn=host[1], environ=environ, cwd=str(cwd))


def test_precedence_builtin_cluster_site_job_cli(envs):
    tmp, envs_dir, environ = envs
    (tmp / "job.env").write_text("QOS=job-qos\nNUM_NODES=2\nMAX_RESTARTS=1\n")
    config = load(environ, tmp, "job.env", {"CLUSTER": "local", "MAX_RESTARTS": "3"})
    assert (config.value("SIGNAL_SECONDS"), config.source("SIGNAL_SECONDS")) == ("300", "built-in")
    assert (config.value("GPUS_PER_NODE"), config.source("GPUS_PER_NODE")) == ("4", "cluster local")
    assert (config.value("PARTITION"), config.source("PARTITION")) == ("gpu", "envs/local.env:1")
    assert (config.value("QOS"), config.source("QOS")) == ("job-qos", "job.env:1")
    assert (config.value("MAX_RESTARTS"), config.source("MAX_RESTARTS")) == ("3", "--max-restarts")
    assert config.value("EXPERIMENTS_DIR") == f"{tmp}/home/exp"
    assert not config.problems


def test_strings_stay_strings(envs):
    tmp, _, environ = envs
    (tmp / "job.env").write_text("JOB_NAME=123\nNUM_NODES=02\nHOLD=True\ntrainer.epochs=1.0\n")
    config = load(environ, tmp, "job.env", {"CLUSTER": "local", "TIME_LIMIT": "010"})
    assert config.value("JOB_NAME") == "123" and isinstance(config.value("JOB_NAME"), str)
    assert config.value("NUM_NODES") == "02"
    assert config.value("HOLD") == "True"
    assert config.value("TIME_LIMIT") == "010"
    assert [o.text for o in config.overrides] == ["trainer.epochs=1.0"]


def test_dotenv_parsing_quotes_export_comments(envs):
    tmp, _, environ = envs
    (tmp / "job.env").write_text(
        "# a comment\n"
        "export NUM_NODES=2   # trailing comment\n"
        "JOB_NAME='single quoted # not a comment'\n"
        'trainer.run_name="double \\"quoted\\" $x"\n'
        "trainer.project_name='it''s'\n"
        "+generator.engine_init_kwargs.foo=[1, 2]\n"
        "++trainer.seed=7\n")
    config = load(environ, tmp, "job.env")
    assert config.value("NUM_NODES") == "2"
    assert config.value("JOB_NAME") == "single quoted # not a comment"
    texts = [o.text for o in config.overrides]
    assert texts[0] == 'trainer.run_name=double "quoted" $x'
    assert "+generator.engine_init_kwargs.foo=[1, 2]" in texts
    assert texts[-1] == "++trainer.seed=7"


def test_line_that_does_not_parse_is_a_problem_not_a_crash(envs):
    tmp, _, environ = envs
    (tmp / "job.env").write_text("NUM_NODES=2\nthis line has no equals sign\nTIME_LIMIT='10\n")
    config = load(environ, tmp, "job.env")
    lines = [p.line() for p in config.problems]
    assert lines, "expected problems"
    assert all("\n" not in line for line in lines)
    assert any("job.env:" in line for line in lines)


def test_overrides_keep_file_order_and_cli_replaces_in_place(envs):
    tmp, _, environ = envs
    (tmp / "job.env").write_text("b.x=1\na.y=2\nc.z=3\n")
    config = load(environ, tmp, "job.env", overrides=["a.y=20", "d.w=4", "+e.v=5"])
    assert [o.text for o in config.overrides] == ["b.x=1", "a.y=20", "c.z=3", "d.w=4", "+e.v=5"]
    assert config.overrides[1].source == "-S a.y"
    assert config.overrides[0].source == "job.env:1"


def test_same_override_twice_in_one_layer_is_a_problem(envs):
    tmp, _, environ = envs
    (tmp / "job.env").write_text("a.b=1\na.b=2\n")
    config = load(environ, tmp, "job.env", overrides=["c.d=1", "c.d=2"])
    fields = [p.field for p in config.problems]
    assert fields.count("a.b") == 1 and fields.count("c.d") == 1


def test_bad_cli_override_is_a_problem(envs):
    tmp, _, environ = envs
    config = load(environ, tmp, None, overrides=["noequals", "nodot=1"])
    assert [p.field for p in config.problems] == ["-S", "-S"]


def test_interpolation_is_late_and_follows_the_cli(envs):
    tmp, _, environ = envs
    (tmp / "job.env").write_text(
        "NUM_NODES=2\n"
        "trainer.placement.policy_num_nodes=${NUM_NODES}\n"
        "trainer.placement.policy_num_gpus_per_node=${GPUS_PER_NODE}\n"
        "trainer.export_path=${EXPERIMENTS_DIR}/exports\n"
        "trainer.x=${trainer.export_path}/x\n"
        "trainer.hydra=${trainer.ckpt_path}/y\n"
        "trainer.oc=${oc.env:HOME}\n"
        "HF_HUB_CACHE=${HF_HOME}/hub\n")
    config = load(environ, tmp, "job.env", {"CLUSTER": "local", "NUM_NODES": "3"})
    values = {o.key: o.value for o in config.overrides}
    assert values["trainer.placement.policy_num_nodes"] == "3"
    assert values["trainer.placement.policy_num_gpus_per_node"] == "4"
    assert values["trainer.export_path"] == f"{tmp}/home/exp/exports"
    assert values["trainer.x"] == f"{tmp}/home/exp/exports/x"
    assert values["trainer.hydra"] == "${trainer.ckpt_path}/y"  # left for Hydra
    assert values["trainer.oc"] == "${oc.env:HOME}"
    assert config.environment["HF_HUB_CACHE"].value == "/site/hf/hub"
    assert not config.problems


def test_cli_values_are_never_interpolated(envs):
    tmp, _, environ = envs
    config = load(environ, tmp, None, {"CLUSTER": "local", "JOB_NAME": "${HOME}"},
                  overrides=["a.b=${HOME}"])
    assert config.value("JOB_NAME") == "${HOME}"
    assert config.overrides[0].value == "${HOME}"


def test_undefined_variable_and_cycle_are_problems(envs):
    tmp, _, environ = envs
    (tmp / "job.env").write_text("SKYRL_HOME=${NOPE}/x\nHF_A=${HF_B}\nHF_B=${HF_A}\n"
                                 "HF_C=${NOPE2:-fallback}\nPATH_X=1\n")
    config = load(environ, tmp, "job.env")
    lines = " | ".join(p.line() for p in config.problems)
    assert "${NOPE}" in lines and "NOPE2" not in lines
    assert "itself" in lines
    assert config.environment["HF_C"].value == "fallback"


def test_self_reference_extends_the_process_environment(envs):
    tmp, _, environ = envs
    (tmp / "job.env").write_text("ENV_PATH=/extra:${PATH}\n")
    config = load(environ, tmp, "job.env")
    assert config.environment["PATH"].value == "/extra:/bin"


def test_unknown_key_did_you_mean_and_env_prefixes(envs):
    tmp, _, environ = envs
    (tmp / "job.env").write_text("NUM_NODE=2\nWANDB_PROJECT=p\nHF_X=1\nENV_MY_FLAG=on\n"
                                 "RANDOM_THING=1\n")
    config = load(environ, tmp, "job.env")
    by_field = {p.field: p.line() for p in config.problems}
    assert "did you mean NUM_NODES?" in by_field["NUM_NODE"]
    assert "RANDOM_THING" in by_field and "ENV_RANDOM_THING" in by_field["RANDOM_THING"]
    assert config.environment["WANDB_PROJECT"].value == "p"
    assert config.environment["MY_FLAG"].value == "on"
    assert "ENV_MY_FLAG" not in config.environment


@pytest.mark.parametrize("line", ["HF_TOKEN=hf_abc", "WANDB_API_KEY=wandb_secret_value", "DAYTONA_API_KEY=dtn_secret_value",
                                  "ENV_MY_PASSWORD=hunter2"])
def test_secrets_are_refused_and_never_echoed(envs, line):
    tmp, _, environ = envs
    (tmp / "job.env").write_text(line + "\n")
    config = load(environ, tmp, "job.env")
    assert len(config.problems) == 1
    text = config.problems[0].line()
    assert "secret" in text and "SECRET_ENV_PATH" in text
    assert line.split("=", 1)[1] not in text
    assert line.split("=", 1)[0].replace("ENV_", "") not in config.environment


def test_cluster_choice_order(envs):
    tmp, _, environ = envs
    (tmp / "job.env").write_text("CLUSTER=local\n")
    assert load(environ, tmp, "job.env", {}).cluster.name == "local"
    assert load(environ, tmp, "job.env", {"CLUSTER": "tacc_vista"}).cluster.name == "tacc_vista"
    env2 = dict(environ, OT_HPC_CLUSTER="tacc_lonestar")
    assert load(env2, tmp, "job.env", {}).cluster.name == "local"  # the file is more specific
    assert load(env2, tmp, None, {}).cluster_source == "$OT_HPC_CLUSTER"
    assert load(environ, tmp, None, {}, host=("jrc0001", "jrc0001.jureca")).cluster.name == "jsc_jureca"
    with pytest.raises(ClusterNotFound, match="--cluster"):
        load(environ, tmp, None, {})


def test_config_found_in_cwd_then_envs(envs):
    tmp, envs_dir, environ = envs
    (envs_dir / "mine.env").write_text("NUM_NODES=1\n")
    assert load(environ, tmp, "mine.env").job_config_path == str(envs_dir / "mine.env")
    assert load(environ, tmp, "mine").config_name == "mine"
    (tmp / "mine.env").write_text("NUM_NODES=2\n")
    assert load(environ, tmp, "mine.env").value("NUM_NODES") == "2"
    with pytest.raises(ConfigError, match="no such file"):
        load(environ, tmp, "missing.env")


def test_site_env_choice(envs):
    tmp, envs_dir, environ = envs
    (tmp / "other.env").write_text("QOS=other\n")
    assert load(environ, tmp, None, {"CLUSTER": "local", "SITE_ENV": "other.env"}).value("QOS") == "other"
    none = load(environ, tmp, None, {"CLUSTER": "local", "SITE_ENV": "none"})
    assert none.site_env_path is None and none.value("PARTITION") == "debug"
    with pytest.raises(ConfigError, match="SITE_ENV"):
        load(environ, tmp, None, {"CLUSTER": "local", "SITE_ENV": "nope.env"})


def test_show_config_names_every_source(envs):
    tmp, _, environ = envs
    (tmp / "job.env").write_text("NUM_NODES=2\na.b=1\n")
    text = format_config(load(environ, tmp, "job.env", {"CLUSTER": "local", "QOS": "q"}))
    assert "NUM_NODES" in text and "job.env:1" in text and "--qos" in text
    assert "a.b=1  # job.env:2" in text and "cluster local" in text


def test_settings_table_is_complete():
    keys = {s.key for s in SETTINGS}
    for key in ("JOB_NAME", "NUM_NODES", "TIME_LIMIT", "MODEL_PATH", "TRAIN_DATA", "VAL_DATA",
                "SKYRL_ENTRYPOINT", "MAX_RESTARTS", "PARTITION", "ACCOUNT", "QOS",
                "GPUS_PER_NODE", "CPUS_PER_NODE", "LOGIN_NODE", "SSH_PORT", "SSH_USER", "SSH_KEY",
                "EGRESS_PROBE", "NEEDS_TUNNEL", "PYTHON", "SECRET_ENV_PATH", "EXPERIMENTS_DIR"):
        assert key in keys
    mapped = {s.key: s.hydra_key for s in SETTINGS if s.hydra_key}
    assert mapped == {"MODEL_PATH": "trainer.policy.model.path", "TRAIN_DATA": "data.train_data",
                      "VAL_DATA": "data.val_data"}
    assert len({s.flag for s in SETTINGS}) == len(SETTINGS)
    assert "--num-nodes" in format_settings_table()


def test_parse_env_text_line_numbers():
    parsed = parse_env_text("\n\n# c\nA=1\n\nB='x\ny'\nC=3\n", "f.env")
    assert [(k, line) for k, _v, line in parsed.bindings] == [("A", 4), ("B", 6), ("C", 8)]


# --- secrets never reach a value, the spec or a Problem line (review fix 1, 3) ---------

SHELL_SECRETS = {"WANDB_API_KEY": "sekrit-wandb", "HF_TOKEN": "sekrit-hf", "MY_CRED": "sekrit-cred"}


def _all_text(config):
    return format_config(config) + "\n".join(p.line() for p in config.problems)


@pytest.mark.parametrize("line,field,name", [
    # (an override named like a secret, trainer.wandb_key, is refused outright: see below)
    ("+trainer.wandb_run=${WANDB_API_KEY}", "trainer.wandb_run", "WANDB_API_KEY"),
    ("trainer.x=a-${HF_TOKEN:-none}", "trainer.x", "HF_TOKEN"),
    ("WANDB_ENTITY=${WANDB_API_KEY}", "WANDB_ENTITY", "WANDB_API_KEY"),
    ("SKYRL_HOME=/x/${HF_TOKEN}", "SKYRL_HOME", "HF_TOKEN"),
])
def test_interpolating_a_secret_is_a_problem_and_never_resolved(envs, line, field, name):
    tmp, _, environ = envs
    (tmp / "job.env").write_text(line + "\n")
    config = load(dict(environ, **SHELL_SECRETS), tmp, "job.env")
    assert [p.field for p in config.problems] == [field]
    text = config.problems[0].line()
    assert "\n" not in text and "${" + name + "}" in text
    assert "secrets reach the job only through SECRET_ENV_PATH" in text
    assert "sekrit" not in _all_text(config)


def test_interpolating_a_secret_file_key_is_refused_even_with_a_plain_name(envs):
    tmp, _, environ = envs
    secret = tmp / "secret.env"
    secret.write_text("MY_CRED=in-the-file\n")
    (tmp / "job.env").write_text(f"SECRET_ENV_PATH={secret}\nENV_LOGIN=${{MY_CRED}}\n"
                                 "ENV_OTHER=${PLAIN_VALUE}\n")
    config = load(dict(environ, PLAIN_VALUE="fine", **SHELL_SECRETS), tmp, "job.env")
    assert [p.field for p in config.problems] == ["LOGIN"]
    assert "${MY_CRED}" in config.problems[0].line()
    assert config.environment["OTHER"].value == "fine"
    assert "sekrit" not in _all_text(config) and "in-the-file" not in _all_text(config)


@pytest.mark.parametrize("override", ["+trainer.hf_token=hf_abcdef", "generator.api_key=sk-abcdef",
                                      "++x.daytona_api_key=dtn-abcdef"])
def test_cli_override_with_a_secret_key_is_refused_without_echo(envs, override):
    tmp, _, environ = envs
    config = load(environ, tmp, None, overrides=[override])
    assert len(config.problems) == 1 and not config.overrides
    text = config.problems[0].line()
    assert "SECRET_ENV_PATH" in text and "abcdef" not in text and "\n" not in text
    assert "abcdef" not in format_config(config)


def test_file_override_with_a_secret_key_is_refused(envs):
    tmp, _, environ = envs
    (tmp / "job.env").write_text("+trainer.hf_token=hf_abcdef\n")
    config = load(environ, tmp, "job.env")
    assert [p.field for p in config.problems] == ["+trainer.hf_token"]
    assert "abcdef" not in _all_text(config)


def test_bad_cli_text_with_a_secret_key_is_not_echoed(envs):
    tmp, _, environ = envs
    config = load(environ, tmp, None, overrides=["hf_token=hf_abcdef"])
    assert len(config.problems) == 1 and "abcdef" not in config.problems[0].line()


@pytest.mark.parametrize("name", ["HF_TOKEN", "WANDB_API_KEY", "DAYTONA_API_KEY", "GITHUB_TOKEN",
                                  "OPENAI_APIKEY", "DB_PASSWORD", "MY_SECRET", "SSH_PRIVATE_KEY",
                                  "token", "HF_TOKEN_2"])
def test_secret_names_are_detected(name):
    from ot_hpc.config.secrets import is_secret_name

    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["TOKENIZERS_PARALLELISM", "HF_HUB_DISABLE_IMPLICIT_TOKEN",
                                  "MAX_TOKENS", "SECRETARY", "KEYCLOAK_URL", "SECRET_ENV_PATH"])
def test_words_that_only_contain_a_secret_word_are_not_secrets(name):
    from ot_hpc.config.secrets import is_secret_name

    assert not is_secret_name(name)


def test_tokenizers_parallelism_is_an_ordinary_job_variable(envs):
    tmp, _, environ = envs
    (tmp / "job.env").write_text("TOKENIZERS_PARALLELISM=false\nHF_HUB_DISABLE_IMPLICIT_TOKEN=1\n")
    config = load(environ, tmp, "job.env")
    assert not config.problems, [p.line() for p in config.problems]
    assert config.environment["TOKENIZERS_PARALLELISM"].value == "false"
    assert config.environment["HF_HUB_DISABLE_IMPLICIT_TOKEN"].value == "1"


# --- --config not found lists the configs there are (review fix 4) ---------------------

def test_missing_config_lists_the_configs_found(envs):
    from ot_hpc.config.discovery import list_configs

    tmp, envs_dir, environ = envs
    (envs_dir / "gsm8k.env").write_text("NUM_NODES=1\n")
    (tmp / "mine.env").write_text("NUM_NODES=1\n")
    found = list_configs(str(tmp), environ)  # also the repository's envs/ (demo.env ...)
    assert {"gsm8k.env", "mine.env", "demo.env"} <= set(found) and found == sorted(found)
    assert not {"local.env", "tacc.env", "jsc.env"} & set(found)  # site env files
    with pytest.raises(ConfigError) as info:
        load(environ, tmp, "missing.env")
    assert "--list-configs" not in str(info.value)
    assert "mine.env" in str(info.value) and "gsm8k.env" in str(info.value)


def test_shutdown_grace_default_is_below_slurm_killwait():
    setting = next(s for s in SETTINGS if s.key == "SHUTDOWN_GRACE")
    assert setting.default == "15" and "KillWait" in setting.help



@pytest.mark.parametrize("name", ["DAYTONA_KEY", "GITHUB_PAT", "CLIENT_SECRET", "DB_PASSWORD",
                                  "DB_PASSWD", "SSH_PASSPHRASE", "GCP_CREDENTIALS", "OPENAI_APIKEY"])
def test_secret_looking_names_in_a_job_config_are_refused(envs, name):
    tmp, _, environ = envs
    (tmp / "job.env").write_text(f"ENV_{name}=value-that-must-not-show\n")
    config = load(environ, tmp, "job.env")
    assert [p.field for p in config.problems] == [f"ENV_{name}"]
    assert "value-that-must-not-show" not in _all_text(config)


@pytest.mark.parametrize("name", ["TOKENIZERS_PARALLELISM", "DATA_PATH", "HF_HUB_DISABLE_IMPLICIT_TOKEN",
                                  "KEYBOARD_LAYOUT", "PATTERN"])
def test_names_that_only_contain_the_words_are_not_secrets(name):
    assert not is_secret_name(name)


def test_not_secret_marks_a_name_as_harmless_in_every_layer(envs):
    tmp, _, environ = envs
    (tmp / "job.env").write_text("NOT_SECRET=VLLM_CACHE_KEY, trainer.cache_key\n"
                                 "ENV_VLLM_CACHE_KEY=abc\n+trainer.cache_key=${VLLM_CACHE_KEY}\n"
                                 "ENV_OTHER_KEY=refused\n")
    config = load(environ, tmp, "job.env")
    assert [p.field for p in config.problems] == ["ENV_OTHER_KEY"]
    assert config.environment["VLLM_CACHE_KEY"].value == "abc"
    assert [o.text for o in config.overrides] == ["+trainer.cache_key=abc"]
