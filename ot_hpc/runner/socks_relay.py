"""The job's egress proxy: a SOCKS5 server that demands the job's password.

``python -m ot_hpc.runner.socks_relay --listen <head address>:<job port> --control <path>``
with the password on stdin (never in argv: ``/proc/<pid>/cmdline`` is world-readable).

It listens on the head node's interconnect address, so the Ray workers on every node of
the allocation reach it; a client must offer RFC 1929 username/password and give the
job's credentials (compared in constant time), else it is refused and disconnected. An
authenticated CONNECT becomes a stdio forwarding of the job's ssh ControlMaster
(:mod:`.sshmux`), whose control socket nobody else can open: nothing of the job's
egress listens without authentication, not even on 127.0.0.1.

What the client sends goes to ssh untouched: the master reads the client's socket itself.
What comes back is written by ssh into a pipe and moved from there to the client by
``splice(2)`` (no copy through Python, where ``os.splice`` exists: Python >= 3.10), so the
relay can pass the remote end's EOF on as a FIN. One thread per connection.

The runner supervises the relay like the ssh master (restarted with backoff on the same
port); it exits by itself when the runner is gone. It logs to stderr, which the runner
puts in the job log: refusals (rate-limited), never a password.
"""
from __future__ import annotations

import argparse
import errno
import fcntl
import os
import select
import socket
import sys
import threading
import time
from typing import Callable, Optional, Tuple

from . import socks5, sshmux

HANDSHAKE_TIMEOUT = 5.0  # seconds per read while a client has not authenticated
MAX_CLIENTS = 1024
PIPE_SIZE = 1 << 20
CHUNK = 1 << 20
# While a download streams (a splice moved >= COALESCE_BYTES but the pipe was not half
# full), wait a little before the next one: fewer, larger splices, fewer wake-ups of ssh,
# the relay and the client. Never after a small reply, never while the pipe is filling up.
COALESCE_BYTES = 16 * 1024
COALESCE_SECONDS = 0.0005
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
EXIT_USAGE = 2
EXIT_BIND = 3


def grow_pipe(fd: int, size: int = PIPE_SIZE) -> int:
    """A larger pipe buffer, for fewer wake-ups per MB (best effort: beyond a user's pipe
    limit the kernel refuses); returns the pipe's size now."""
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, size)
    except OSError:
        pass
    try:
        return fcntl.fcntl(fd, F_GETPIPE_SZ)
    except OSError:
        return 64 * 1024


def _wait_writable(fd: int) -> None:
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    poller.poll()


def _copy_plain(src: int, dst: int) -> None:
    buffer = bytearray(256 * 1024)
    view = memoryview(buffer)
    while True:
        count = os.readv(src, [buffer])
        if count == 0:
            return
        sent = 0
        while sent < count:
            try:
                sent += os.write(dst, view[sent:count])
            except BlockingIOError:
                _wait_writable(dst)


def copy_stream(src: int, dst: int, pipe_size: int) -> None:
    """Copy the pipe ``src`` (of ``pipe_size`` bytes) to the socket ``dst`` until EOF, by
    splice(2) where there is ``os.splice``: no copy through Python. ``dst`` may be
    non-blocking (ssh makes the client's socket so)."""
    splice = getattr(os, "splice", None)
    if splice is not None:
        try:
            while True:
                try:
                    moved = splice(src, dst, CHUNK)
                except BlockingIOError:
                    _wait_writable(dst)
                    continue
                if not moved:
                    return
                if COALESCE_BYTES <= moved < pipe_size // 2:  # streaming, not behind: let
                    time.sleep(COALESCE_SECONDS)  # more arrive, for fewer wake-ups per MB
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS):
                raise  # EINVAL: this pair cannot be spliced; nothing was moved yet
    _copy_plain(src, dst)


class Notes:
    """Log lines about refused clients, at most ``burst`` per ``window`` seconds."""

    def __init__(self, log: Callable[[str], None], burst: int = 5, window: float = 60.0) -> None:
        self.log, self.burst, self.window = log, burst, window
        self.started, self.count, self.dropped = 0.0, 0, 0
        self.lock = threading.Lock()

    def __call__(self, message: str) -> None:
        with self.lock:
            now = time.monotonic()
            if now - self.started > self.window:
                if self.dropped:
                    self.log(f"... and {self.dropped} more refusal(s) in {self.window:g} s")
                self.started, self.count, self.dropped = now, 0, 0
            self.count += 1
            if self.count > self.burst:
                self.dropped += 1
                return
        self.log(message)


class Relay:
    def __init__(self, listen: Tuple[str, int], control: str, credentials: socks5.Credentials,
                 log: Callable[[str], None], max_clients: int = MAX_CLIENTS,
                 handshake_timeout: float = HANDSHAKE_TIMEOUT) -> None:
        self.listen = listen
        self.control = control
        self.credentials = credentials
        self.log = log
        self.notes = Notes(log)
        self.handshake_timeout = handshake_timeout
        self.slots = threading.BoundedSemaphore(max_clients)
        self.listener: Optional[socket.socket] = None

    def bind(self) -> socket.socket:
        host, port = self.listen
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.create_server((host, port), family=family, backlog=128)
        return self.listener

    def serve(self, keep_going: Callable[[], bool] = lambda: True) -> None:
        listener = self.listener or self.bind()
        listener.settimeout(1.0)
        while keep_going():
            try:
                client, peer = listener.accept()
            except socket.timeout:
                continue
            except OSError as exc:
                if exc.errno == errno.EBADF:
                    return  # the listener was closed
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.notes(f"accept failed: {exc.strerror}")
                    time.sleep(0.1)
                    continue
                raise
            if not self.slots.acquire(blocking=False):
                client.close()
                self.notes(f"refused {_peer(peer)}: too many connections")
                continue
            threading.Thread(target=self._serve, args=(client, peer), daemon=True).start()

    def _serve(self, client: socket.socket, peer) -> None:
        try:
            client.settimeout(self.handshake_timeout)
            socks5.negotiate(client, self.credentials)
            host, port = socks5.read_request(client)
            self._connect(client, host, port)
        except socks5.Refused as exc:
            self.notes(f"refused {_peer(peer)}: {exc}")
        except (OSError, ValueError):
            pass  # the client went away (a readiness check closes right after authenticating)
        finally:
            client.close()
            self.slots.release()

    def _connect(self, client: socket.socket, host: str, port: int) -> None:
        client.settimeout(None)  # blocking, before ssh shares the socket (and its flags)
        try:
            mux, from_remote = sshmux.open_stdio(self.control, host, port, client.fileno())
        except sshmux.MuxRefused as exc:
            client.sendall(socks5.reply(socks5.NOT_ALLOWED if exc.denied else socks5.CONNECTION_REFUSED))
            self.notes(f"CONNECT {host}:{port}: the login node refused it ({exc})")
            return
        except OSError as exc:
            client.sendall(socks5.reply(socks5.HOST_UNREACHABLE if isinstance(exc, socket.timeout)
                                        else socks5.GENERAL_FAILURE))
            self.notes(f"CONNECT {host}:{port}: ssh master not usable ({exc})")
            return
        try:
            # The master reads the client's socket from now on (never touch its blocking
            # mode again: the flag is shared with ssh); it writes only into the pipe, so
            # this reply is the first thing the client gets back.
            client.sendall(socks5.reply(socks5.SUCCEEDED))
            size = grow_pipe(from_remote)  # downloads are the bulk; pipes count against a user limit
            copy_stream(from_remote, client.fileno(), size)
            client.shutdown(socket.SHUT_WR)  # the remote end's EOF, passed on
            mux.sock.settimeout(None)
            while mux.sock.recv(4096):  # until the master ends the forwarding (the client's EOF)
                pass
        except OSError:
            pass  # the client or ssh went away: closing the control connection ends the forwarding
        finally:
            mux.close()
            os.close(from_remote)


def _peer(peer) -> str:
    try:
        return f"{peer[0]}:{peer[1]}"
    except (TypeError, IndexError):
        return str(peer)


def parse_listen(text: str) -> Tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise ValueError(f"--listen wants HOST:PORT, got {text!r}")
    return host, int(port)


def _say(message: str) -> None:
    try:
        sys.stderr.write(message.replace("\n", " ") + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ot_hpc.runner.socks_relay")
    parser.add_argument("--listen", required=True, help="HOST:PORT to listen on")
    parser.add_argument("--control", required=True, help="the ssh ControlMaster's control socket")
    parser.add_argument("--user", default="ot-hpc", help="the username clients must give")
    args = parser.parse_args(argv)
    password = sys.stdin.readline().strip()
    if len(password) < 16:
        _say("no password on stdin (at least 16 characters): refusing to run without one")
        return EXIT_USAGE
    threading.stack_size(512 * 1024)
    relay = Relay(parse_listen(args.listen), args.control, socks5.Credentials(args.user, password), _say)
    try:
        relay.bind()
    except OSError as exc:
        _say(f"cannot listen on {args.listen}: {exc.strerror or exc}")
        return EXIT_BIND
    parent = os.getppid()
    _say(f"listening on {args.listen} (username/password required)")
    relay.serve(keep_going=lambda: os.getppid() == parent)
    _say("the runner is gone: exiting")
    return 0


if __name__ == "__main__":
    sys.exit(main())
