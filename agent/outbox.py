"""Store and forward: every read is committed to SQLite (WAL, synchronous=FULL) before it is
published, and deleted only when the broker's PUBACK arrives. Bounded by bytes and age: beyond the
bounds the oldest unsent reads are evicted and counted (health reports it), so it never fills the disk.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS reads (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  read_id TEXT NOT NULL UNIQUE,
  created REAL NOT NULL,
  bytes INTEGER NOT NULL,
  payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS reads_created ON reads (created);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class OutboxError(RuntimeError):
    """The outbox could not store a read (disk full, I/O error); the caller keeps it and retries."""


@dataclass(frozen=True, slots=True)
class Pending:
    seq: int
    read_id: str
    created: float
    payload: bytes


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    bytes: int
    oldest_age_s: float | None
    evicted: int
    fault: str | None


def private_dir(d: Path) -> None:
    """A folder only the unit's user can enter (plates and images are personal data): made 0700; an
    existing looser one is left as it is (it may be shared) with a warning, the files in it are 0600."""
    if not d.exists():
        d.mkdir(parents=True, mode=0o700)
        os.chmod(d, 0o700)  # mkdir's mode is masked by the umask
    elif d.stat().st_mode & 0o077:
        log.warning("state folder %s is readable by others (mode %o): make it 0700", d, d.stat().st_mode & 0o777)


def private_file(p: Path) -> None:
    """The database file made (or tightened to) 0600 before SQLite opens it: its -wal and -shm files
    take the same permissions."""
    private_dir(p.parent)
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    if p.stat().st_mode & 0o077:
        os.chmod(p, 0o600)


class Outbox:
    def __init__(self, path: Path, max_bytes: int = 2_000_000_000, max_age_s: float = 14 * 86400) -> None:
        self.path = Path(path)
        private_file(self.path)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a committed read survives power loss
        self._db.executescript(SCHEMA)
        self.fault: str | None = None
        self.fault_count = 0  # failed writes since start (cumulative, for health)
        row = self._db.execute("SELECT COALESCE(SUM(bytes), 0), COUNT(*) FROM reads").fetchone()
        self._bytes, self._depth = int(row[0]), int(row[1])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put(self, read_id: str, payload: bytes, created: float | None = None) -> bool:
        """Commit a read; False if it was already there (same read_id). Raises OutboxError on I/O failure."""
        created = time.time() if created is None else created
        with self._lock:
            try:
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO reads (read_id, created, bytes, payload) VALUES (?,?,?,?)",
                    (read_id, created, len(payload), payload))
            except sqlite3.Error as e:
                self.fault = f"outbox write failed: {e}"
                self.fault_count += 1
                log.error("outbox: cannot store read %s: %s", read_id, e)
                raise OutboxError(str(e)) from e
            self.fault = None
            if cur.rowcount:
                self._bytes += len(payload)
                self._depth += 1
            self._enforce_bounds()
            return bool(cur.rowcount)

    def _enforce_bounds(self) -> None:
        cutoff = time.time() - self.max_age_s
        evicted = 0
        try:
            evicted += self._db.execute("DELETE FROM reads WHERE created < ?", (cutoff,)).rowcount
            while self._bytes > self.max_bytes:
                row = self._db.execute("SELECT seq, bytes FROM reads ORDER BY seq LIMIT 1").fetchone()
                if row is None:
                    break
                self._db.execute("DELETE FROM reads WHERE seq = ?", (row[0],))
                self._bytes -= int(row[1])
                evicted += 1
            if evicted:
                self._db.execute("INSERT INTO counters (name, value) VALUES ('evicted', ?) "
                                 "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (evicted,))
                row = self._db.execute("SELECT COALESCE(SUM(bytes), 0), COUNT(*) FROM reads").fetchone()
                self._bytes, self._depth = int(row[0]), int(row[1])
                log.warning("outbox: evicted %d oldest unsent reads (bounds %d bytes, %.0f h)", evicted,
                            self.max_bytes, self.max_age_s / 3600)
        except sqlite3.Error as e:
            self.fault = f"outbox eviction failed: {e}"
            log.error("outbox: %s", self.fault)

    def mark_sent(self, read_id: str) -> None:
        with self._lock:
            try:
                row = self._db.execute("DELETE FROM reads WHERE read_id = ? RETURNING bytes", (read_id,)).fetchone()
            except sqlite3.Error as e:
                self.fault = f"outbox delete failed: {e}"
                log.error("outbox: %s", self.fault)
                return
            if row is not None:
                self._bytes -= int(row[0])
                self._depth -= 1

    def newest(self, limit: int, exclude: set[str], newer_than_seq: int = 0) -> list[Pending]:
        """Most recent unsent reads first (live traffic before backlog)."""
        return self._select("SELECT seq, read_id, created, payload FROM reads WHERE seq > ? ORDER BY seq DESC LIMIT ?",
                            (newer_than_seq, limit + len(exclude)), exclude, limit)

    def oldest(self, limit: int, exclude: set[str]) -> list[Pending]:
        return self._select("SELECT seq, read_id, created, payload FROM reads ORDER BY seq LIMIT ?",
                            (limit + len(exclude),), exclude, limit)

    def _select(self, sql: str, args: tuple, exclude: set[str], limit: int) -> list[Pending]:
        with self._lock:
            try:
                rows = self._db.execute(sql, args).fetchall()
            except sqlite3.Error as e:
                self.fault = f"outbox read failed: {e}"
                log.error("outbox: %s", self.fault)
                return []
        out = [Pending(int(s), str(r), float(c), bytes(p)) for s, r, c, p in rows if r not in exclude]
        return out[:limit]

    def max_seq(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM reads").fetchone()[0])

    def stats(self) -> OutboxStats:
        with self._lock:
            try:
                oldest = self._db.execute("SELECT MIN(created) FROM reads").fetchone()[0]
                ev = self._db.execute("SELECT value FROM counters WHERE name='evicted'").fetchone()
            except sqlite3.Error as e:
                return OutboxStats(self._depth, self._bytes, None, 0, f"outbox unreadable: {e}")
        return OutboxStats(self._depth, self._bytes, None if oldest is None else max(0.0, time.time() - oldest),
                           int(ev[0]) if ev else 0, self.fault)
