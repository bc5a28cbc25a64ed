"""The env-file reader: env_file_values resolves like python-dotenv, without os.environ."""
from __future__ import annotations

import os

import pytest
from dotenv import dotenv_values

from ot_hpc.envfile import env_file_keys, env_file_values, read_env_file


def write(tmp_path, text, name="secret.env"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_quotes_export_and_comments(tmp_path):
    path = write(tmp_path, (
        "# a comment\n"
        "export HF_TOKEN=hf_abc\n"
        "WANDB_API_KEY='single # not a comment'\n"
        'DOUBLE="two words"\n'
        "PLAIN=value # a comment\n"
        "EMPTY=\n"
        "\n"
    ))
    assert env_file_values(path, {}) == {
        "HF_TOKEN": "hf_abc",
        "WANDB_API_KEY": "single # not a comment",
        "DOUBLE": "two words",
        "PLAIN": "value",
        "EMPTY": "",
    }


def test_keys_without_a_value_are_dropped(tmp_path):
    path = write(tmp_path, "NOVALUE\nA=1\n")
    assert env_file_values(path, {"NOVALUE": "from-env"}) == {"A": "1"}
    assert env_file_keys(path) == ["NOVALUE", "A"]


def test_interpolation_file_first_then_environ(tmp_path):
    path = write(tmp_path, (
        "HOME_DIR=${HOME}/x\n"
        "FIRST=file\n"
        "USES_FIRST=${FIRST}-${OTHER}\n"
        "EXTENDS=${EXTENDS}:more\n"
        "DEFAULTED=${UNSET:-fallback}\n"
        "SINGLE='${FIRST}'\n"
    ))
    environ = {"HOME": "/home/me", "FIRST": "env", "OTHER": "o", "EXTENDS": "/bin"}
    assert env_file_values(path, environ) == {
        "HOME_DIR": "/home/me/x",
        "FIRST": "file",
        "USES_FIRST": "file-o",  # the file's earlier key wins over environ
        "EXTENDS": "/bin:more",
        "DEFAULTED": "fallback",
        "SINGLE": "file",  # python-dotenv interpolates single-quoted values too
    }


def test_later_keys_are_not_seen_by_earlier_ones(tmp_path):
    path = write(tmp_path, "A=${B}\nB=later\n")
    assert env_file_values(path, {"B": "env"}) == {"A": "env", "B": "later"}


def test_undefined_reference_resolves_to_empty_like_dotenv(tmp_path, monkeypatch):
    text = "TOKEN_COPY=${SECRET}\nPREFIXED=x${SECRET}y\nSTILL=${NOVALUE:-d}\nNOVALUE\n"
    path = write(tmp_path, text)
    monkeypatch.delenv("SECRET", raising=False)
    monkeypatch.delenv("NOVALUE", raising=False)
    expected = {k: v for k, v in dotenv_values(path, interpolate=True).items() if v is not None}
    assert env_file_values(path, {}) == expected == {
        "TOKEN_COPY": "", "PREFIXED": "xy", "STILL": "d"}


def test_same_as_dotenv_values_against_the_same_environment(tmp_path, monkeypatch):
    text = ("A=1\nB=${A}${C}\nexport C='q'\nD=\"${C} ${HOME_X:-h}\"\nA=2\nE=${A}\n"
            "N\nF=${N:-unused}\n")
    path = write(tmp_path, text)
    for key, value in {"C": "envc", "HOME_X": "hx", "N": "envn"}.items():
        monkeypatch.setenv(key, value)
    expected = {k: v for k, v in dotenv_values(path, interpolate=True).items() if v is not None}
    assert env_file_values(path, dict(os.environ)) == expected


def test_environ_is_never_modified(tmp_path, monkeypatch):
    monkeypatch.delenv("OT_HPC_TEST_SECRET", raising=False)
    path = write(tmp_path, "OT_HPC_TEST_SECRET=s3cret\nX=${PATH}\n")
    before = dict(os.environ)
    environ = {"PATH": "/only/here"}
    assert env_file_values(path, environ) == {"OT_HPC_TEST_SECRET": "s3cret", "X": "/only/here"}
    assert dict(os.environ) == before
    assert environ == {"PATH": "/only/here"}


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        env_file_values(str(tmp_path / "nope.env"), {})


def test_parse_error_is_one_line_without_the_text(tmp_path):
    path = write(tmp_path, "A=1\n\nHF_TOKEN='hf_unterminated\n")
    with pytest.raises(ValueError) as caught:
        env_file_values(path, {})
    message = str(caught.value)
    assert message.startswith(f"{path}:3: cannot parse")
    assert "\n" not in message and "hf_unterminated" not in message


def test_read_env_file_keeps_lines_and_errors(tmp_path):
    path = write(tmp_path, "A=1\n# c\nexport B=${A}\nnot a binding\n")
    env = read_env_file(path)
    assert env.bindings == (("A", "1", 1), ("B", "${A}", 3))
    assert env.errors == ((4, "not a binding"),)
