"""Claims: a cell is trained by one process at a time, whatever started it.

Before `bench run` trains a cell it claims the cell's key with a lock that the store's own
machinery holds for as long as the claiming process lives, so that a second `bench run` of the
same grid on the same store skips it ("running elsewhere") and trains the cells nobody holds:

- a SQLite store: an exclusive `flock` on `<store folder>/claims/<cell_key>.lock`, which also
  records the holder (host and pid) for the other runner's message;
- a PostgreSQL store: a session-level advisory lock (`pg_try_advisory_lock`) on a connection
  kept open for the claims.

Both are atomic (two processes asking at once: one gets it), and both are released by the kernel
or the server when the holding process dies, however it dies: a dead holder's claim expires by
itself, and its RUNNING run is closed by the orphan rule (`bench.track.orphans`). A tracking
server (`http://`) or another database offers no lock to take from here: there every claim is
granted, and two runners started together may still train a cell twice (docs/scale-out.md:
share cells through the queue, `bench run --queue`, instead).
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import Any, Protocol

from bench.track.tracking import store_folder


class Claims(Protocol):
    """try_claim: True when this process now holds `key` (it trains the cell), False when a
    live process does. holder: who holds a key this process could not claim, in words."""

    def try_claim(self, key: str) -> bool: ...

    def release(self, key: str) -> None: ...

    def holder(self, key: str) -> str: ...

    def close(self) -> None: ...


def open_claims(uri: str) -> Claims:
    """The claims of the store at `uri` (see the module docstring for what each store uses)."""
    if uri.startswith("sqlite:///"):
        return FileClaims(store_folder(uri) / "claims")
    if uri.startswith("postgresql"):
        return PostgresClaims(uri)
    return UnlockedClaims()


class FileClaims:
    """flock-held lock files, one per claimed cell key, in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.held: dict[str, int] = {}

    def try_claim(self, key: str) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.directory / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return False
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"pid {os.getpid()} on {socket.gethostname()}".encode())
        self.held[key] = descriptor
        return True

    def release(self, key: str) -> None:
        descriptor = self.held.pop(key, None)
        if descriptor is not None:
            os.close(descriptor)  # closing the file drops the flock

    def holder(self, key: str) -> str:
        try:
            return (self.directory / f"{key}.lock").read_text().strip() or "another process"
        except OSError:
            return "another process"

    def close(self) -> None:
        for key in list(self.held):
            self.release(key)


class PostgresClaims:
    """Session-level advisory locks on one connection to the store's database; the lock id is
    the first 15 hex digits of the cell key (60 bits: a signed bigint)."""

    def __init__(self, uri: str) -> None:
        import sqlalchemy

        self.engine = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool)
        self.connection: Any = self.engine.connect()
        self.held: set[str] = set()

    def _call(self, function: str, key: str) -> Any:
        import sqlalchemy

        statement = sqlalchemy.text(f"SELECT {function}(:id)")
        result = self.connection.execute(statement, {"id": int(key[:15], 16)}).scalar()
        self.connection.commit()
        return result

    def try_claim(self, key: str) -> bool:
        if not self._call("pg_try_advisory_lock", key):
            return False
        self.held.add(key)
        return True

    def release(self, key: str) -> None:
        if key in self.held:
            self.held.discard(key)
            self._call("pg_advisory_unlock", key)

    def holder(self, key: str) -> str:
        del key
        return "another process (a PostgreSQL advisory lock)"

    def close(self) -> None:
        self.connection.close()  # ends the session: the server drops every lock it held
        self.engine.dispose()


class UnlockedClaims:
    """A store with no lock to take from here: every claim is granted."""

    def try_claim(self, key: str) -> bool:
        del key
        return True

    def release(self, key: str) -> None:
        del key

    def holder(self, key: str) -> str:
        del key
        return "another process"

    def close(self) -> None:
        pass
