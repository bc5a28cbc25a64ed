"""tools/local-login-sshd.sh `stop` ends only OUR sshd: the pid file's process must be an
sshd whose command line holds `-f <our config>` (never the system sshd, never a stale pid)."""
import os
import shutil
import signal
import subprocess
import time

import pytest

from ..conftest import REPO

SCRIPT = os.path.join(REPO, "tools", "local-login-sshd.sh")


def _fake_sshd(tmp_path, *args):
    """A process whose /proc/<pid>/exe ends in /sshd (a copy of bash) with the given args."""
    binary = tmp_path / "bin" / "sshd"
    binary.parent.mkdir(exist_ok=True)
    shutil.copy(shutil.which("bash"), binary)
    proc = subprocess.Popen([str(binary), "-c", "sleep 300; :", *args], start_new_session=True)
    deadline = time.monotonic() + 5
    while os.readlink(f"/proc/{proc.pid}/exe") != str(binary) and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc


def _stop(tmp_path, pid):
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    (run_dir / "sshd.pid").write_text(f"{pid}\n")
    env = dict(os.environ, OT_LOCAL_SSHD_RUN_DIR=str(run_dir), OT_LOCAL_SSHD_DIR=str(tmp_path / "state"))
    return subprocess.run(["bash", SCRIPT, "stop"], env=env, capture_output=True, text=True, timeout=30)


@pytest.fixture
def cleanup():
    procs = []
    yield procs
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def test_stop_leaves_an_sshd_without_our_config_alone(tmp_path, cleanup):
    other = _fake_sshd(tmp_path, "-D", "-f", "/etc/ssh/sshd_config")
    cleanup.append(other)
    done = _stop(tmp_path, other.pid)
    assert done.returncode == 0, done.stderr
    assert "not running" in done.stdout
    time.sleep(0.2)
    assert other.poll() is None  # still alive


def test_stop_ends_the_sshd_with_our_config(tmp_path, cleanup):
    ours = _fake_sshd(tmp_path, "-D", "-e", "-f", str(tmp_path / "state" / "sshd_config"))
    cleanup.append(ours)
    done = _stop(tmp_path, ours.pid)
    assert done.returncode == 0, done.stderr
    assert f"stopped (pid {ours.pid})" in done.stdout
    assert ours.wait(timeout=10) is not None
