"""Private directories, the token's way to every Ray process, RAY_AUTH decisions, and the
Ray version probe (no cluster: the attacks against a real job are in test_attacks_ray.py)."""
from __future__ import annotations

import os
import stat
import sys

import pytest

from ot_hpc import rayauth
from ot_hpc.runner import private, raysecurity
from ot_hpc.runner.joblog import PhaseError
from ot_hpc.runner.ray_cluster import head_args, worker_args
from ot_hpc.runner.node_agent import adjust_ray_argv
from ot_hpc.runner.ports import plan_ports


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# ---- private directories and files ---------------------------------------------------
def test_private_dir_is_fresh_unpredictable_and_0700(tmp_path):
    first = private.make_private_dir(str(tmp_path))
    second = private.make_private_dir(str(tmp_path))
    assert first != second and os.path.basename(first).startswith("ot-")
    assert mode(first) == 0o700 and os.lstat(first).st_uid == os.getuid()


def test_private_file_is_0600_and_never_an_existing_file_or_link(tmp_path):
    directory = private.make_private_dir(str(tmp_path))
    path = private.write_private_file(directory, "token", "abc")
    assert mode(path) == 0o600 and open(path).read() == "abc"
    with pytest.raises(FileExistsError):
        private.write_private_file(directory, "token", "other")
    os.symlink(str(tmp_path / "elsewhere"), os.path.join(directory, "link"))
    with pytest.raises(OSError):
        private.write_private_file(directory, "link", "x")
    assert not (tmp_path / "elsewhere").exists()


def test_a_found_directory_is_refused(tmp_path):
    (tmp_path / "open").mkdir(mode=0o755)
    os.chmod(tmp_path / "open", 0o755)
    os.symlink(str(tmp_path / "open"), str(tmp_path / "link"))
    for name, why in (("open", "mode 755"), ("link", "not a directory")):
        with pytest.raises(private.PrivatePathError, match=why):
            private.check_private_dir(str(tmp_path / name))
    with pytest.raises(FileExistsError):
        private.make_private_subdir(str(tmp_path), "open")


def test_private_root_prefers_tmpdir_and_falls_back_to_tmp(tmp_path):
    good = tmp_path / "t"
    good.mkdir()
    short = str(good) if len(str(good)) <= 20 else None
    if short:
        assert private.private_root({"TMPDIR": short}) == (short, None)
    assert private.private_root({}) == ("/tmp", None)
    too_long = str(tmp_path / ("x" * 40))
    os.mkdir(too_long)
    root, note = private.private_root({"TMPDIR": too_long})
    assert root == "/tmp" and "too long for Ray's Unix sockets" in note
    root, note = private.private_root({"TMPDIR": "relative/dir"})
    assert root == "/tmp" and "not an absolute path" in note
    world = tmp_path / "w"
    world.mkdir()
    os.chmod(world, 0o777)  # writable by others, not sticky: another user could swap entries
    assert "not sticky" in private.root_problem(str(world))
    os.chmod(world, 0o1777)
    assert private.root_problem(str(world)) is None


def test_remove_private_dir_never_follows_a_link(tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "file").write_text("x")
    os.symlink(str(keep), str(tmp_path / "link"))
    private.remove_private_dir(str(tmp_path / "link"))
    assert (keep / "file").exists()


# ---- the token's way ------------------------------------------------------------------
def test_runner_and_agents_get_mode_and_path_never_the_token_in_ray(tmp_path):
    said = []
    security = raysecurity.prepare("auto", False, "2.60.0", sys.executable,
                                   {"TMPDIR": "/tmp"}, said.append)
    try:
        assert said == [] and security.token and len(security.token) == 64
        assert mode(security.private_dir) == 0o700 and mode(security.token_path) == 0o600
        assert open(security.token_path).read() == security.token
        job_env = {"PATH": "/bin", "RAY_AUTH_TOKEN": "user-set", "RAY_AUTH_MODE": "disabled"}
        driver = security.driver_environment(job_env)
        assert driver["RAY_AUTH_MODE"] == "token" and driver["RAY_AUTH_TOKEN_PATH"] == security.token_path
        assert "RAY_AUTH_TOKEN" not in driver and raysecurity.TOKEN_VAR not in driver
        assert driver["TMPDIR"] == security.private_dir
        agent = security.agent_environment(job_env)
        assert agent[raysecurity.TOKEN_VAR] == security.token and "RAY_AUTH_TOKEN" not in agent
        assert agent["RAY_enable_metrics_collection"] == "0" and agent["DASHBOARD_METRIC_PORT"] == "-1"
        node = raysecurity.prepare_node(agent, security.private_dir)  # an agent on the batch host
        assert os.path.dirname(node.directory) == security.private_dir and mode(node.directory) == 0o700
        assert node.env["RAY_AUTH_MODE"] == "token" and raysecurity.TOKEN_VAR not in node.env
        assert open(node.env["RAY_AUTH_TOKEN_PATH"]).read() == security.token
        assert node.env["TMPDIR"] == node.temp_dir == os.path.join(node.directory, "r")
        assert len(node.temp_dir) <= private.RAY_TEMP_MAX
        remote = raysecurity.prepare_node({**agent, "TMPDIR": "/tmp"}, None)  # another host
        assert os.path.dirname(remote.directory) == "/tmp" and remote.authenticated
        private.remove_private_dir(remote.directory)
        assert security.token not in security.describe()
    finally:
        private.remove_private_dir(security.private_dir)


def test_user_metrics_settings_are_kept(tmp_path):
    security = raysecurity.RaySecurity(token=None, private_dir=str(tmp_path), client_server=False)
    env = security.agent_environment({"RAY_enable_metrics_collection": "1"})
    assert env["RAY_enable_metrics_collection"] == "1" and raysecurity.TOKEN_VAR not in env


def test_old_ray_warns_under_auto_and_fails_under_required():
    on, warning = raysecurity.decide_auth("auto", "2.51.1", "/venv/bin/python")
    assert not on and warning.count("\n") == 0
    assert "Ray 2.51.1 (/venv/bin/python) has no token authentication" in warning
    assert "run code as you" in warning and "RAY_AUTH=required" in warning
    with pytest.raises(PhaseError, match="RAY_AUTH=required but Ray 2.51.1") as info:
        raysecurity.decide_auth("required", "2.51.1", "/venv/bin/python")
    assert info.value.exit_code == 2
    assert raysecurity.decide_auth("required", "2.52.0", "p") == (True, None)
    assert raysecurity.decide_auth("auto", None, "p")[0] is True  # unknown: try, and say so
    with pytest.raises(PhaseError):
        raysecurity.decide_auth("required", None, "p")


def test_dashboard_on_loopback_and_client_server_only_when_asked():
    plan = plan_ports("4242", 2, shared_host=True)
    head = head_args(plan, "10.0.0.1", 2, 0)
    assert "--dashboard-host=127.0.0.1" in head
    assert not any(a.startswith(("--ray-client-server-port", "--temp-dir")) for a in head)
    assert f"--ray-client-server-port={plan.client_server}" in head_args(plan, "10.0.0.1", 2, 0,
                                                                        client_server=True)
    assert not any(a.startswith("--temp-dir") for a in worker_args(plan, 1, "h:1", "10.0.0.2", 2, 0))
    # An agent never takes a --temp-dir from its argv: it adds its own private one.
    assert "--temp-dir=/tmp/ot-ray-1-0" not in adjust_ray_argv(head + ["--temp-dir=/tmp/ot-ray-1-0"])


# ---- the version probe ----------------------------------------------------------------
def test_versions():
    assert rayauth.parse_version("2.51.1") == (2, 51) and rayauth.parse_version("x") is None
    assert not rayauth.supports_token_auth("2.51.1") and rayauth.supports_token_auth("2.52.0")
    assert rayauth.supports_token_auth("3.0.0") and not rayauth.supports_token_auth(None)


