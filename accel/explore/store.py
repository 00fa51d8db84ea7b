"""The results store of sweeps: one SQLite file in WAL mode, one row per finished point.

Only the client writes it (one writer), a row per point as its result arrives, each in its own
committed transaction (``synchronous=FULL``), with ``INSERT .. ON CONFLICT(key) DO NOTHING``: a
point is stored once, whatever is killed when (the client, a worker, the scheduler) and however
often the same command is run again. A rerun subtracts the stored keys and computes the rest.
Several sweeps may share a store; each reads back the rows of its own keys.

Table ``points``:
  id             integer, in the order rows were stored (``STORE:ID`` names a point)
  key            sha256 of the point's canonical JSON, accel's version and the model file's
                 sha256 (``accel.explore.spec.point_key``); unique
  point          the point's canonical JSON (sorted keys)
  accel_version, model_sha256   what the key was made of besides the point
  status         "ok" (``result`` holds the SimResult JSON plus "compression") or "error"
                 (``error``: the one-line reason the point cannot be evaluated; not retried)
  seconds        the worker's time for the point; finished  UTC time it was stored
Table ``meta``: ``schema`` (this module's ``SCHEMA``).
"""

from __future__ import annotations

import datetime
import json
import sqlite3
from pathlib import Path

from accel.errors import ConfigError

SCHEMA = "1"
BUSY_TIMEOUT_MS = 30_000

_CREATE = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    point TEXT NOT NULL,
    accel_version TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    result TEXT,
    error TEXT,
    seconds REAL,
    finished TEXT NOT NULL
);
"""


class Store:
    """An open results store (see the module documentation)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            raise ConfigError(f"store {self.path}: is a directory, not a SQLite file")
        if not self.path.parent.is_dir():
            raise ConfigError(f"store {self.path}: directory {self.path.parent} does not exist")
        try:
            # autocommit: every statement is its own transaction
            self.db = sqlite3.connect(self.path, isolation_level=None,
                                      timeout=BUSY_TIMEOUT_MS / 1000)
            mode = self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise ConfigError(f"store {self.path}: SQLite cannot use WAL mode here "
                                  f"(journal mode {mode}; a network file system?)")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_CREATE)
            self.db.execute("INSERT INTO meta (name, value) VALUES ('schema', ?) "
                            "ON CONFLICT(name) DO NOTHING", (SCHEMA,))
            schema = self.db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"store {self.path}: not a usable SQLite results store "
                              f"({exc})") from None
        if schema[0] != SCHEMA:
            raise ConfigError(f"store {self.path}: schema {schema[0]}, this accel writes "
                              f"schema {SCHEMA}; use another --store")

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def finished(self, keys) -> set[str]:
        """The keys among ``keys`` that have a row."""
        keys = list(keys)
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = self.db.execute(
                f"SELECT key FROM points WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            found.update(row[0] for row in rows)
        return found

    def add(self, key: str, point_json: str, accel_version: str, model_sha256: str,
            outcome: dict) -> bool:
        """Store one finished point (committed before this returns); False if it was stored
        already."""
        finished = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        cursor = self.db.execute(
            "INSERT INTO points (key, point, accel_version, model_sha256, status, result, "
            "error, seconds, finished) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(key) DO NOTHING",
            (key, point_json, accel_version, model_sha256, outcome["status"],
             outcome.get("result"), outcome.get("error"), outcome.get("seconds"), finished))
        return cursor.rowcount == 1

    def rows(self, keys) -> dict[str, dict]:
        """key -> {id, point, status, result (parsed), error, seconds} for the stored keys
        among ``keys``."""
        keys = list(keys)
        out: dict[str, dict] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = self.db.execute(
                "SELECT id, key, point, status, result, error, seconds FROM points "
                f"WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            for id_, key, point, status, result, error, seconds in rows:
                out[key] = {"id": id_, "key": key, "point": json.loads(point),
                            "status": status,
                            "result": None if result is None else json.loads(result),
                            "error": error, "seconds": seconds}
        return out

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM points").fetchone()[0]


def read_row(path: str | Path, row_id: int) -> dict:
    """The row ``STORE:ID`` names, {id, key, point, model_sha256, status, result, error}, read
    without writing to the file: opened read-only (no WAL switch, no tables created), so it
    can be read while a sweep writes it, and a file that is not a store stays as it was."""
    from urllib.parse import quote

    path = Path(path)
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            schema = db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
            if schema is None or schema[0] != SCHEMA:
                raise ConfigError(f"store {path}: not a results store of schema {SCHEMA}")
            found = db.execute(
                "SELECT id, key, point, model_sha256, status, result, error FROM points "
                "WHERE id = ?", (row_id,)).fetchone()
            count = db.execute("SELECT COUNT(*) FROM points").fetchone()[0]
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"store {path}: not a usable SQLite results store ({exc})") from None
    if found is None:
        raise ConfigError(f"store {path} has no point {row_id} (it holds {count} points)")
    id_, key, point, model_sha256, status, result, error = found
    return {"id": id_, "key": key, "point": json.loads(point), "model_sha256": model_sha256,
            "status": status, "result": None if result is None else json.loads(result),
            "error": error}
