"""Phase logging format and redaction of secret values."""
import io

import pytest

from ot_hpc.runner.joblog import JobLog, PhaseError, Redactor, format_line, format_timestamp


class Clock:
    def __init__(self):
        self.now = 1_700_000_000.0

    def __call__(self):
        return self.now


def test_format_line_is_one_line_with_timestamp_and_tag():
    line = format_line(1_700_000_000.25, "ray", "two\nlines\n")
    stamp, rest = line[:23], line[24:]
    assert stamp == format_timestamp(1_700_000_000.25)
    assert stamp.endswith(".250")
    assert rest == "[ray] two | lines"


def test_phase_logs_begin_done_and_duration():
    out, clock = io.StringIO(), Clock()
    log = JobLog(out, clock=clock, monotonic=clock)
    with log.phase("ray"):
        clock.now += 4.5
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("[ray] begin")
    assert lines[1].endswith("[ray] done in 4.50 s")
    assert log.timings == {"ray": 4.5}


def test_phase_failure_is_one_line_and_reraised():
    out, clock = io.StringIO(), Clock()
    log = JobLog(out, clock=clock, monotonic=clock)
    with pytest.raises(PhaseError):
        with log.phase("egress"):
            clock.now += 1
            raise PhaseError("SSH tunnel to login:22 failed: exit 255", 3)
    assert out.getvalue().splitlines()[-1].endswith(
        "[egress] failed after 1.00 s: SSH tunnel to login:22 failed: exit 255")


def test_redactor_replaces_every_secret_longest_first():
    red = Redactor({"HF_TOKEN": "hf_abcdef", "WANDB_API_KEY": "hf_abcdef_longer", "SHORT": "ab"})
    text = red("token=hf_abcdef key=hf_abcdef_longer ab")
    assert "hf_abcdef" not in text
    assert "[redacted WANDB_API_KEY]" in text and "[redacted HF_TOKEN]" in text
    assert text.endswith(" ab")  # values under 4 characters are not secrets worth blanking


def test_every_log_line_is_redacted_including_process_output():
    out = io.StringIO()
    log = JobLog(out, redactor=Redactor({"DAYTONA_API_KEY": "dtn_SECRET_123"}))
    log.line("runner", "env has dtn_SECRET_123")
    log.sink("trainer")("Authorization: Bearer dtn_SECRET_123\nnext line\n")
    text = out.getvalue()
    assert "dtn_SECRET_123" not in text
    assert text.count("[redacted DAYTONA_API_KEY]") == 2
    assert "[trainer] next line" in text
