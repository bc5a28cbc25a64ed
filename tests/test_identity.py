"""Identity comes from the uid: $USER and $LOGNAME are anyone's to set."""
from __future__ import annotations

import os
import pwd

import pytest

from ot_hpc.cli import rmlogs, scancelall, status
from ot_hpc.monitor import options

ME = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
def lying_environment(monkeypatch):
    for name in ("USER", "LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.setenv(name, "someone-else")


class AskedFor:
    """A scheduler that records whose jobs were listed (and has none)."""

    name = "recording"

    def __init__(self):
        self.users = []

    def list_jobs(self, user=None, account=None, include_finished=False):
        self.users.append(user)
        return []


def test_current_user_ignores_user_and_logname(lying_environment):
    assert options.current_user() == ME


def test_current_user_of_a_uid_without_passwd_entry(monkeypatch):
    monkeypatch.setattr(os, "getuid", lambda: 54321)
    monkeypatch.setattr(pwd, "getpwuid", lambda uid: (_ for _ in ()).throw(KeyError(uid)))
    assert options.current_user() == "54321"


@pytest.mark.parametrize("module, argv", [
    (scancelall, ["--yes"]),
    (rmlogs, ["--days", "7", "--experiments-dir", "{tmp}"]),
    (status, ["--json"]),
])
def test_commands_act_for_the_uid_only(lying_environment, monkeypatch, tmp_path, module, argv,
                                       capsys):
    asked = AskedFor()
    monkeypatch.setattr(module, "scheduler_from_args", lambda args: asked)
    argv = [a.format(tmp=tmp_path) for a in argv]
    if module is status:
        module.body(argv, scheduler=asked)
    else:
        module.body(argv)
    assert asked.users == [ME]
