"""A tiny threaded TCP server for tests: ``handle(conn)`` per connection, in a thread."""
from __future__ import annotations

import socket
import threading
from typing import Callable


def start(host: str, handle: Callable[[socket.socket], None]) -> socket.socket:
    """A listening socket on ``host`` (a free port) that serves until it is closed."""
    server = socket.create_server((host, 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            handle(conn)

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return server
