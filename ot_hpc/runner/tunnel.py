"""The egress tunnel: two supervised processes on the batch node.

- **ssh**: a ControlMaster to the login node (``ssh -N -M -S <private dir>/mux``, see
  :func:`.egress.ssh_argv`). It forwards no port, so nothing of it listens; it is ready
  when its control socket answers an alive check with its own pid (:mod:`.sshmux`).
- **relay**: the SOCKS5 relay (:mod:`.socks_relay`) on the head's interconnect address
  and the job's SOCKS port, password on its stdin; ready when an authenticated SOCKS5
  handshake through it succeeds.

A watchdog thread checks both every second and restarts whichever is down, with backoff
(1, 2, 4, 8, 16, 30 s), on the same control path and the same port, logging each
restart; it never restarts anything once the job is stopping (``halt``), and
:meth:`Tunnel.stop` ends within the time it is given (its share of the shutdown budget,
:mod:`ot_hpc.shutdown_budget`). :meth:`Tunnel.down_for` says how long it has been down
(the runner fails the job past ``TUNNEL_DOWN_LIMIT``). Their output goes to the job log line by
line, never into a variable that becomes a command.
"""
from __future__ import annotations

import os
import shutil
import threading
import time
from typing import Callable, List, Mapping, Optional, Tuple

from . import socks5, sshmux

READY_TIMEOUT = 30.0
BACKOFF_SECONDS = (1, 2, 4, 8, 16, 30)
KILL_GRACE = 2.0


class TunnelError(Exception):
    pass


class Child:
    """One background process driven with ``sh``; its output lines go to ``sink``."""

    def __init__(self, name: str, argv: List[str], sink: Callable[[str], None],
                 env: Optional[Mapping[str, str]] = None, stdin: Optional[str] = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.sink = sink
        self.env = dict(env) if env is not None else None
        self.stdin = stdin
        self.process = None  # sh.RunningCommand

    def launch(self) -> None:
        import sh  # ~70 ms: only the code that drives processes imports it

        def line(text: str) -> None:
            if text.strip():
                self.sink(f"{self.name}: {text.rstrip()}")

        self.process = sh.Command(self.argv[0])(
            *self.argv[1:], _bg=True, _bg_exc=False, _new_session=True, _tty_out=False,
            _out=line, _err=line, _in=self.stdin, _env=self.env, _ok_code=list(range(256)),
            _decode_errors="replace",
        )

    @property
    def pid(self) -> Optional[int]:
        proc = self.process
        return proc.pid if proc is not None else None

    def alive(self) -> bool:
        proc = self.process
        return proc is not None and proc.is_alive()

    def exit_code(self) -> Optional[int]:
        proc = self.process
        if proc is None:
            return None
        try:
            return proc.exit_code
        except Exception:  # sh raises for signals
            return None

    def terminate(self) -> None:
        proc = self.process
        try:
            if proc is not None and proc.is_alive():
                proc.terminate()
        except Exception:
            pass

    def reap(self, deadline: float) -> None:
        """Wait until ``deadline`` (monotonic) for the process to end, then SIGKILL it."""
        proc = self.process
        try:
            while proc is not None and proc.is_alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            if proc is not None and proc.is_alive():
                proc.kill()
        except Exception:
            pass

    def kill(self, grace: float = KILL_GRACE) -> None:
        self.terminate()
        self.reap(time.monotonic() + grace)


class Tunnel:
    """ssh master + password-protected relay, kept alive by a watchdog thread."""

    def __init__(
        self,
        ssh_argv: List[str],
        relay_argv: List[str],
        control_path: str,
        bind_address: str,
        port: int,
        credentials: socks5.Credentials,
        log: Callable[[str], None],
        env: Optional[Mapping[str, str]] = None,
        on_restart: Optional[Callable[["Tunnel"], None]] = None,
        ready_timeout: float = READY_TIMEOUT,
        check_interval: float = 1.0,
        halt: Optional[threading.Event] = None,
    ) -> None:
        self.control_path = control_path
        self.bind_address = bind_address
        self.port = port
        self.credentials = credentials
        self.log = log
        self.login = ssh_argv[-1]
        self.ssh = Child("ssh", ssh_argv, log, env)
        self.relay = Child("relay", relay_argv, log, env, stdin=credentials.password + "\n")
        self.on_restart = on_restart
        self.ready_timeout = ready_timeout
        self.check_interval = check_interval
        self.halt = halt
        self.restarts = 0  # of ssh (the tunnel proper)
        self.relay_restarts = 0
        self._stop = threading.Event()
        self._watchdog: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self.down_since: Optional[float] = None  # monotonic, while the watchdog finds it broken

    @property
    def url(self) -> str:
        """The proxy's address, without credentials (for the log and the run state)."""
        host = f"[{self.bind_address}]" if ":" in self.bind_address else self.bind_address
        return f"socks5h://{host}:{self.port}"

    @property
    def pid(self) -> Optional[int]:
        return self.ssh.pid

    @property
    def relay_pid(self) -> Optional[int]:
        return self.relay.pid

    def alive(self) -> bool:
        return self.ssh.alive() and self.relay.alive()

    def down_for(self) -> float:
        """Seconds the tunnel has been down without a successful restart (0 while up)."""
        since = self.down_since
        return 0.0 if since is None else time.monotonic() - since

    # ---- readiness --------------------------------------------------------------------
    def _ssh_ready(self) -> bool:
        pid = self.ssh.pid
        return pid is not None and sshmux.master_pid(self.control_path, timeout=1.0) == pid

    def _relay_ready(self) -> bool:
        return socks5.handshake(self.bind_address, self.port, 1.0, self.credentials)

    def _wait(self, child: Child, ready: Callable[[], bool], what: str) -> float:
        start = time.monotonic()
        while time.monotonic() - start < self.ready_timeout:
            if ready():
                return time.monotonic() - start
            if not child.alive():
                who = f"ssh to {self.login}" if child is self.ssh else "the SOCKS relay"
                raise TunnelError(f"{who} exited with code {child.exit_code()} before {what} answered")
            if self._stop.is_set():
                raise TunnelError("the tunnel is being stopped")
            time.sleep(0.05)
        raise TunnelError(f"{what} did not answer within {self.ready_timeout:g} s")

    def _start_ssh(self) -> float:
        try:
            os.unlink(self.control_path)  # a stale socket of a killed ssh: ssh would not replace it
        except OSError:
            pass
        if self._stop.is_set():
            raise TunnelError("the tunnel is being stopped")
        self.ssh.launch()
        return self._wait(self.ssh, self._ssh_ready, "ssh's control socket")

    def _start_relay(self) -> float:
        if self._stop.is_set():
            raise TunnelError("the tunnel is being stopped")
        self.relay.launch()
        return self._wait(self.relay, self._relay_ready, f"SOCKS port {self.bind_address}:{self.port}")

    def start(self) -> float:
        """Start ssh, then the relay; return the seconds until both were ready."""
        with self._lock:
            try:
                return self._start_ssh() + self._start_relay()
            except TunnelError:
                self._kill_all()
                raise

    # ---- the watchdog -----------------------------------------------------------------
    def start_watchdog(self) -> None:
        self._watchdog = threading.Thread(target=self._watch, name="tunnel-watchdog", daemon=True)
        self._watchdog.start()

    def _halted(self, seconds: float) -> bool:
        return self._stop.wait(seconds) or (self.halt is not None and self.halt.is_set())

    def _broken(self) -> Optional[Tuple[Child, str]]:
        for child, ready, failed in ((self.ssh, self._ssh_ready, "its control socket does not answer"),
                                     (self.relay, self._relay_ready, "SOCKS handshake failed")):
            if not child.alive():
                code = child.exit_code()
                return child, f"{child.name} is not running" + ("" if code is None else f", exit code {code}")
            if not ready():
                return child, failed
        return None

    def _watch(self) -> None:
        failures = 0
        while not self._halted(self.check_interval):
            broken = self._broken()
            if broken is None:
                failures = 0
                self.down_since = None
                continue
            if self.down_since is None:
                self.down_since = time.monotonic()
            child, why = broken
            label, count = ("tunnel", self.restarts) if child is self.ssh else ("relay", self.relay_restarts)
            delay = BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS) - 1)]
            failures += 1
            self.log(f"{label} down ({why}); restart #{count + 1} in {delay} s")
            if self._halted(delay):
                return
            if self._restart(child, label, count + 1):
                failures = 0

    def _restart(self, child: Child, label: str, number: int) -> bool:
        with self._lock:
            if self._stop.is_set() or (self.halt is not None and self.halt.is_set()):
                return False
            child.kill()
            try:
                seconds = self._start_ssh() if child is self.ssh else self._start_relay()
            except TunnelError as exc:
                self.log(f"{label} restart #{number} failed: {exc}")
                return False
        if child is self.ssh:
            self.restarts = number
        else:
            self.relay_restarts = number
        self.log(f"{label} restarted (#{number}, {'ssh pid' if child is self.ssh else 'pid'} {child.pid}); "
                 f"{'control socket' if child is self.ssh else 'SOCKS'} ready after {seconds:.2f} s")
        if self.on_restart:
            try:
                self.on_restart(self)
            except Exception:
                pass
        return True

    # ---- stopping ---------------------------------------------------------------------
    def _kill_all(self, grace: float = KILL_GRACE) -> None:
        for child in (self.relay, self.ssh):
            child.terminate()
        deadline = time.monotonic() + grace
        for child in (self.relay, self.ssh):
            child.reap(deadline)

    def stop(self, timeout: float = 2 * KILL_GRACE) -> None:
        """Stop both within about ``timeout`` seconds whatever the watchdog is doing (a
        restart in progress ends on ``_stop``): a quarter of it waiting for the watchdog,
        a quarter for its lock, the rest between SIGTERM and SIGKILL."""
        self._stop.set()
        quarter = max(0.05, timeout / 4)
        if self._watchdog is not None:
            self._watchdog.join(timeout=quarter)
        locked = self._lock.acquire(timeout=quarter)
        try:
            self._kill_all(max(0.1, timeout - 2 * quarter))
        finally:
            if locked:
                self._lock.release()
        shutil.rmtree(os.path.dirname(self.control_path), ignore_errors=True)
