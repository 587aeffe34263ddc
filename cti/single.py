"""One CTI per SQLite file.

SQLite is the embedded default for one machine: one CTI process draws its ticket numbers,
runs its timers and answers its calls there. A second ``hotline serve`` on the same file is
refused at start, before it touches the database: the first one holds an exclusive lock on
``<database>.lock`` for as long as it lives. The lock is the operating system's (``flock``),
so it goes with the process however that ends, ``kill -9`` included: no stale lock file to
clean up. Several CTIs on one database need PostgreSQL, where the database itself keeps them
apart (``tickets.numbers``, ``tickets.timers``).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url

from cti.errors import CommandError, ConfigError


class DatabaseInUse(ConfigError, CommandError):
    """Another CTI runs on this SQLite file (``hotline serve`` exits with status 2)."""

    def __init__(self, message: str) -> None:
        self.problems = [message]
        self.source = ""
        self.exit_code = 2
        Exception.__init__(self, message)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for other databases and in-memory ones."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


class SingleCti:
    """The lock of one CTI on its SQLite file; nothing to hold for other databases."""

    def __init__(self, url: str) -> None:
        path = sqlite_path(url)
        self.lock_path = path.with_name(path.name + ".lock") if path is not None else None
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        if self.lock_path is None or self._file is not None:
            return
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        # Opened without truncating: the holder's pid stays readable to the one refused.
        handle = open(self.lock_path, "a+", encoding="ascii")  # held for the process's life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            database = self.lock_path.with_suffix("")
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise DatabaseInUse(
                f"another hotline CTI{who} is running on the SQLite database {database}:"
                " one CTI per SQLite file (its ticket numbers and timers are its own)."
                " Stop that one first, or run several CTIs on PostgreSQL"
                ' ([database] url = "postgresql://...").'
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        """Closing the file releases the lock; the file stays (deleting it would race with a
        process that opened it to take the lock)."""
        handle, self._file = self._file, None
        if handle is not None:
            handle.close()
