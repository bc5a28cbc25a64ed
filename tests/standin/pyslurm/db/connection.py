# Stand-in for pyslurm 25.11.2 pyslurm/db/connection.pyx: Connection.open(), close(),
# commit(), rollback(), is_open; _open_conn_or_error(conn). The stand-in has no slurmdbd
# handle: every sacct call is its own connection, so a Connection only tracks open/closed.
from __future__ import annotations


def _open_conn_or_error(conn):
    if not conn:
        conn = Connection.open()
    if not conn.is_open:
        raise ValueError("Database connection is not open")
    return conn


class Connection:
    __slots__ = ("_open",)

    def __init__(self):
        raise RuntimeError("A new connection should be created through "
                           "calling Connection.open()")

    def __repr__(self):
        state = "open" if self.is_open else "closed"
        return f"pyslurm.db.{self.__class__.__name__} is {state}"

    @staticmethod
    def open():
        conn = Connection.__new__(Connection)
        conn._open = True
        return conn

    def close(self):
        self._open = False

    def commit(self):
        return None

    def rollback(self):
        return None

    @property
    def is_open(self):
        return bool(self._open)
