"""The shared command-line plumbing: exit codes and one-line errors."""
from ot_hpc.cli.common import EXIT_ERROR, EXIT_USAGE, UsageError, run_main
from ot_hpc.scheduler import BackendUnavailable, SchedulerError


def _raising(exc):
    def body(argv=None):
        raise exc

    return body


def test_errors_become_one_line_and_an_exit_code(capsys):
    cases = [
        (UsageError("NUM_NODES='x': not a number; write a whole number"), EXIT_USAGE),
        (BackendUnavailable("pyslurm cannot be imported: ..."), EXIT_USAGE),
        (SchedulerError("Invalid partition name specified"), EXIT_ERROR),
        (PermissionError(13, "Permission denied", "/scratch/exp/specs"), EXIT_ERROR),
    ]
    for exc, code in cases:
        assert run_main(_raising(exc)) == code
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert run_main(_raising(PermissionError(13, "Permission denied", "/scratch/exp/specs"))) == EXIT_ERROR
    assert "Permission denied (/scratch/exp/specs)" in capsys.readouterr().err


def test_backend_in_finds_a_backend_given_after_version():
    from ot_hpc.cli.common import backend_in

    assert backend_in(["--version", "--backend", "cli"]) == "cli"
    assert backend_in(["--backend=pyslurm", "--version"]) == "pyslurm"
    assert backend_in(["--backend", "cli", "--backend", "auto"]) == "auto"  # the last wins
    assert backend_in(["--version"]) is None and backend_in(["--backend"]) is None
    assert backend_in(["--", "--backend", "cli"]) is None
