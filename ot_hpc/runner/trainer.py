"""Phase 4: the trainer (``<python> -m <entrypoint> <overrides...>``), as an argv list.

Run in its own session with ``RAY_ADDRESS`` set; stdout and stderr go line by line into
the job log (redacted), then to an optional ``observer`` (``feed(text)``, ``flush(final)``:
the progress report, :mod:`.progress_report`), flushed while waiting and at the end; its
exit code becomes the job's. :meth:`Trainer.stop` is graceful: SIGTERM to its process
group, SIGKILL after the grace period.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, List, Mapping, Optional, Protocol

from . import shutdown


def exit_status(raw: Optional[int]) -> Optional[int]:
    """sh's exit code (negative for a signal) as a shell would report it (128+N)."""
    if raw is None:
        return None
    return 128 - raw if raw < 0 else raw


class OutputObserver(Protocol):
    def feed(self, text: str) -> None: ...

    def flush(self, final: bool = False) -> None: ...


class Trainer:
    def __init__(self, argv: List[str], env: Mapping[str, str], sink: Callable[[str], None],
                 cwd: Optional[str] = None, observer: Optional[OutputObserver] = None) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.sink = sink
        self.cwd = cwd
        self.observer = observer
        self.process = None
        self.started_at: Optional[float] = None
        self.last_output_at: Optional[float] = None  # monotonic: the hang detector's clock

    @property
    def pid(self) -> Optional[int]:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        import sh

        self.started_at = self.last_output_at = time.monotonic()
        self.process = sh.Command(self.argv[0])(
            *self.argv[1:], _bg=True, _bg_exc=False, _new_session=True, _tty_out=False,
            _env=self.env, _cwd=self.cwd, _out=self._output,
            _err_to_out=True,
            _ok_code=list(range(256)), _decode_errors="replace",
        )

    def _output(self, chunk: str) -> None:
        self.last_output_at = time.monotonic()
        self.sink(chunk)
        if self.observer is not None:
            self.observer.feed(chunk)  # returns None: sh keeps calling (a true value would stop it)

    def idle_seconds(self) -> float:
        """Seconds since the trainer last printed anything (or started)."""
        return 0.0 if self.last_output_at is None else time.monotonic() - self.last_output_at

    def _flush(self, final: bool = False) -> None:
        if self.observer is not None:
            self.observer.flush(final)

    def running(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def wait(self, stop_event: threading.Event, tick: Optional[Callable[[], None]] = None,
             interval: float = 0.1) -> Optional[int]:
        """The exit status, or None when ``stop_event`` was set first."""
        while self.running():
            if stop_event.wait(interval):
                return None
            if tick is not None:
                tick()
            self._flush()
        return self.exit_code()

    def raw_exit(self) -> Optional[int]:
        """The exit status as the process layer has it: negative when a signal killed it."""
        if self.process is None:
            return None
        try:
            self.process.wait()
        except Exception:
            pass
        self._flush(final=True)
        try:
            return self.process.process.exit_code
        except Exception:
            return None

    def exit_code(self) -> Optional[int]:
        return exit_status(self.raw_exit())

    def stop(self, grace: float, kill_wait: float = 2.0) -> Optional[str]:
        """Stop the trainer's process group; return a note when SIGKILL was needed."""
        if self.process is None:
            return None
        pgid = self.process.pid
        self._flush()
        if shutdown.stop_group(pgid, grace, kill_wait):
            return None
        return f"trainer did not stop within {grace:g} s of SIGTERM: killed"
