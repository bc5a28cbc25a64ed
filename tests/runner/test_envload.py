"""The spec's variables, activation, secrets into the environment (and the redactor,
never the notes)."""
import os

import pytest

from ot_hpc.runner.envload import activation_command, load_environment, prepend_path
from ot_hpc.runner.joblog import PhaseError
from ot_hpc.spec import JobSpec


def FakeSpec(**fields) -> JobSpec:
    """A spec with only the environment fields of interest set."""
    return JobSpec(job_name="t", cluster="local", num_nodes=1, experiments_dir="/nonexistent",
                   trainer_python="python3", entrypoint_module="m", **fields)


def test_spec_environment_secrets_and_order(tmp_path):
    site = tmp_path / "site.env"  # named in the resolved config only: never read by the runner
    site.write_text("HF_HOME=/changed/after/submission\nTRITON_CACHE_DIR=/changed\n")
    secret = tmp_path / "secret.env"
    secret.write_text("HF_TOKEN=hf_verysecret\nWANDB_API_KEY=\"wandb secret value\"\n")
    secret.chmod(0o600)
    spec = FakeSpec(secret_env_file=str(secret), extra_pythonpath="/opt/x",
                    environment={"HF_HOME": "/home/u/hf", "WANDB_MODE": "online",
                                 "TRITON_CACHE_DIR": f"{tmp_path}/triton"},
                    resolved_config={"SITE_ENV": str(site)})
    loaded = load_environment(spec, {"HOME": "/home/u", "PATH": "/bin", "PYTHONPATH": "/a",
                                     "WANDB_MODE": "offline"}, "ib0")
    env = loaded.env
    assert env["HF_HOME"] == "/home/u/hf"
    assert env["WANDB_MODE"] == "online"  # the spec's variables win over the batch environment
    assert env["HF_TOKEN"] == "hf_verysecret"
    assert env["WANDB_API_KEY"] == "wandb secret value"
    assert env["PYTHONPATH"] == "/opt/x:/a"
    assert env["NCCL_SOCKET_IFNAME"] == env["GLOO_SOCKET_IFNAME"] == "ib0"
    assert os.path.isdir(tmp_path / "triton")
    assert loaded.secret_keys == ("HF_TOKEN", "WANDB_API_KEY")
    notes = "\n".join(loaded.notes)
    assert "hf_verysecret" not in notes and "wandb secret value" not in notes
    assert loaded.redactor("x hf_verysecret y") == "x [redacted HF_TOKEN] y"


def test_world_readable_secret_file_warns(tmp_path):
    secret = tmp_path / "secret.env"
    secret.write_text("HF_TOKEN=hf_verysecret\n")
    secret.chmod(0o644)
    loaded = load_environment(FakeSpec(secret_env_file=str(secret)), {"PATH": "/bin"})
    assert any("readable by others" in n for n in loaded.notes)


def test_activation_sources_script_with_odd_path(tmp_path):
    odd = tmp_path / "my env $x"
    odd.mkdir()
    script = odd / "activate"
    script.write_text('echo "noise on stdout"\nexport VIRTUAL_ENV="/venv/a b"\nexport PATH="/venv/bin:$PATH"\n')
    loaded = load_environment(FakeSpec(env_activate=str(script), environment={"KEEP": "1"}),
                              {"PATH": "/bin", "HOME": "/root"})
    assert loaded.env["VIRTUAL_ENV"] == "/venv/a b"
    assert loaded.env["PATH"].startswith("/venv/bin:")
    assert loaded.env["KEEP"] == "1"


def test_activation_command_none_without_settings():
    assert activation_command(None, None, ()) is None
    argv = activation_command("/a b/activate", "myenv", ("cuda/12",))
    assert argv[-3:] == ["/a b/activate", "cuda/12", "myenv"]


def test_prepend_path():
    assert prepend_path("/a:/b", "/c:/a") == "/c:/a:/b"
    assert prepend_path(None, None) is None


def _fake_module_system(directory):
    """An init script like Lmod's: defines a `module` shell function (no real Lmod here)."""
    init = directory / "init"
    init.mkdir(parents=True)
    (init / "bash").write_text(
        'module() {\n'
        '  if [ "$1" = load ]; then shift; export LOADEDMODULES="$*"; export FAKE_CUDA_HOME=/opt/cuda;\n'
        '  else echo "unknown module command $1" >&2; return 1; fi\n'
        '}\n')
    return str(directory)


def test_module_load_initialises_the_module_system(tmp_path):
    """A non-login `bash -c` has no `module` function: the init script must be sourced first."""
    lmod = _fake_module_system(tmp_path / "lmod")
    loaded = load_environment(FakeSpec(modules="gcc cuda/12"),
                              {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LMOD_PKG": lmod})
    assert loaded.env["LOADEDMODULES"] == "gcc cuda/12"
    assert loaded.env["FAKE_CUDA_HOME"] == "/opt/cuda"
    assert loaded.env["PATH"] == "/usr/bin:/bin"


def test_module_load_failure_names_the_step(tmp_path):
    lmod = tmp_path / "lmod"
    (lmod / "init").mkdir(parents=True)
    (lmod / "init" / "bash").write_text('module() { echo "Lmod has detected the following error: nope" >&2; return 1; }\n')
    with pytest.raises(PhaseError, match=r"module load failed \(exit 11\): Lmod has detected"):
        load_environment(FakeSpec(modules="nope"),
                         {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LMOD_PKG": str(lmod)})


def _system_has_module_init():
    from ot_hpc.runner.envload import MODULE_INIT_SCRIPTS

    return any(os.path.isfile(p) for p in MODULE_INIT_SCRIPTS if not p.startswith("$"))


def test_module_load_falls_back_to_a_login_shell(tmp_path):
    if _system_has_module_init():
        pytest.skip("this machine has a module init script")
    home = tmp_path / "home"
    home.mkdir()
    # Only the login profile defines `module`, and it chatters on stdout.
    (home / ".bash_profile").write_text(
        'echo "Welcome to the cluster"\n'
        'module() { shift; export LOADEDMODULES="$*"; }\n')
    loaded = load_environment(FakeSpec(modules="gcc", environment={"KEEP": "x y"}),
                              {"PATH": "/usr/bin:/bin", "HOME": str(home)})
    assert loaded.env["LOADEDMODULES"] == "gcc"
    assert loaded.env["KEEP"] == "x y"
    assert not any(k.startswith("Welcome") or "Welcome" in k for k in loaded.env)
    assert any("login shell" in n for n in loaded.notes)


def test_no_module_system_is_one_clear_line(tmp_path):
    if _system_has_module_init():
        pytest.skip("this machine has a module init script")
    home = tmp_path / "home"
    home.mkdir()
    with pytest.raises(PhaseError, match="no module system"):
        load_environment(FakeSpec(modules="gcc"), {"PATH": "/usr/bin:/bin", "HOME": str(home)})


def test_secret_file_interpolates_against_the_job_environment(tmp_path):
    secret = tmp_path / "secret.env"
    secret.write_text("A_TOKEN=${PREFIX}-tok\nB_TOKEN=${A_TOKEN}+\n")
    secret.chmod(0o600)
    loaded = load_environment(FakeSpec(secret_env_file=str(secret), environment={"PREFIX": "p"}),
                              {"PATH": "/bin"})
    assert loaded.env["A_TOKEN"] == "p-tok" and loaded.env["B_TOKEN"] == "p-tok+"


def test_missing_secret_file_is_one_line_exit_2(tmp_path):
    with pytest.raises(PhaseError, match="secret env file .* does not exist") as caught:
        load_environment(FakeSpec(secret_env_file=str(tmp_path / "gone.env")), {"PATH": "/bin"})
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)
