"""Store and forward: every read is committed to SQLite (WAL, synchronous=FULL) before it is
published. The broker's PUBACK only says the broker has it; with receipts on (the default for the
unit) a read is deleted when the central's receipt for it arrives, and one that got its PUBACK but no
receipt is published again after RECEIPT_TIMEOUT_S, then twice as long each time, up to RECEIPT_MAX_S (10 min).
Without receipts (a central that sends none) it is deleted on PUBACK. Bounded by bytes and age: beyond
the bounds the oldest reads are evicted and counted (health reports it), so it never fills the disk.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.signing import IMAGE_FIELDS

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
CREATE TABLE IF NOT EXISTS alerts (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  alert_id TEXT NOT NULL UNIQUE,
  created REAL NOT NULL,
  payload BLOB NOT NULL
);
"""
# Added with end-to-end receipts; an outbox from before gets them on open.
COLUMNS = (("sent_at", "REAL"), ("attempts", "INTEGER NOT NULL DEFAULT 0"), ("due", "REAL NOT NULL DEFAULT 0"),
           ("shed", "INTEGER NOT NULL DEFAULT 0"))
MARGIN_BYTES = 512 * 1024  # free space kept for the WAL (at most a sixth of the disk): images are shed below it
LOG_EVERY_S = 30.0  # the same storage error is logged at most this often (with how many since)
HOLD_S = (1.0, 60.0)  # a read whose update failed is not published again for this long (doubling)
RECEIPT_TIMEOUT_S = 60.0
RECEIPT_MAX_S = 600.0


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
    awaiting_receipt: int = 0  # published and acknowledged by the broker, no receipt from the central yet
    images_shed: int = 0  # reads kept without their images since start (storage full)
    expired: int = 0  # reads deleted undelivered at max_age (cumulative, kept in the database)
    deleted: int = 0  # reads deleted once delivered (receipt, or PUBACK without receipts)
    images_deleted: int = 0  # reads whose images were deleted at PUBACK while they wait for their receipt
    alerts_pending: int = 0


def without_images(payload: bytes) -> bytes | None:
    """The read document with its images' bytes removed (hashes, sizes and signature stay valid)."""
    try:
        doc = json.loads(payload)
        for f in IMAGE_FIELDS:
            if isinstance(doc.get(f), dict):
                doc[f]["jpeg_b64"] = ""
        return json.dumps(doc, separators=(",", ":")).encode()
    except (ValueError, TypeError, AttributeError):
        return None


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
    def __init__(self, path: Path, max_bytes: int = 2_000_000_000, max_age_s: float = 14 * 86400,
                 receipts: bool = False, receipt_timeout_s: float = RECEIPT_TIMEOUT_S,
                 receipt_max_s: float = RECEIPT_MAX_S, images_until: str = "puback",
                 on_delete: Callable[[str, list[str]], None] | None = None) -> None:
        self.path = Path(path)
        private_file(self.path)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a committed read survives power loss
        self._db.executescript(SCHEMA)
        have = {r[1] for r in self._db.execute("PRAGMA table_info(reads)")}
        for name, decl in COLUMNS:
            if name not in have:
                self._db.execute(f"ALTER TABLE reads ADD COLUMN {name} {decl}")
        self.receipts = receipts
        self.images_until = images_until  # "puback": images deleted once the broker has the read; "receipt"
        self.on_delete = on_delete  # (why, read_ids): the unit's audit log
        self.receipt_timeout_s = receipt_timeout_s
        self.receipt_max_s = max(receipt_max_s, receipt_timeout_s)
        self.fault: str | None = None
        self.fault_count = 0  # failed writes since start (cumulative, for health)
        self.images_shed = 0  # reads whose images were dropped to keep their documents (storage full)
        self._logged: dict[str, tuple[float, int]] = {}  # error kind -> (last logged, suppressed since)
        self._hold: dict[str, tuple[float, float]] = {}  # read_id -> (not before, next hold) after failed updates
        # a small WAL, checkpointed often and truncated after: on a nearly full disk it must not hold the
        # space that shedding images gave back
        self._db.execute("PRAGMA journal_size_limit=262144")
        self._db.execute("PRAGMA wal_autocheckpoint=64")
        self._recount()
        try:
            self._total_disk = shutil.disk_usage(self.path.parent).total
        except OSError:
            self._total_disk = 1 << 40

    def _room(self, enough: int = 1 << 62) -> int:
        """Bytes the database can still grow by: free disk plus its own free pages (those only looked
        up when the disk alone has less than `enough`)."""
        try:
            free = shutil.disk_usage(self.path.parent).free
            if free >= enough:
                return free
            pages = self._db.execute("PRAGMA freelist_count").fetchone()[0]
            size = self._db.execute("PRAGMA page_size").fetchone()[0]
        except (OSError, sqlite3.Error):
            return 1 << 62
        return free + int(pages) * int(size)

    def _make_room(self, need: int) -> None:
        """Before the disk is full: shed the oldest reads' images until this read's document and a
        margin for the WAL fit. The database file does not shrink; its freed pages take the next reads."""
        margin = min(MARGIN_BYTES, max(64 * 1024, self._total_disk // 6))
        tries = 0
        while self._room(need + margin) < need + margin and tries < 20:
            tries += 1
            if not self._shed_images(need + margin - self._room()):
                return
            self._checkpoint()
            self.fault = f"storage nearly full: images of {self.images_shed} reads shed to keep every read"
            self._log_error("shed", "storage nearly full: shed the images of the oldest reads (%d so far)",
                            self.images_shed)

    def _log_error(self, kind: str, msg: str, *args) -> None:
        """Rate-limited: a full disk fails every write, and one line per frame would fill it further."""
        now = time.monotonic()
        last, quiet = self._logged.get(kind, (0.0, 0))
        if now - last >= LOG_EVERY_S:
            log.error("outbox: " + msg + (f" ({quiet} more like it in the last {LOG_EVERY_S:.0f} s)" if quiet else ""),
                      *args)
            self._logged[kind] = (now, 0)
        else:
            self._logged[kind] = (last, quiet + 1)

    def _hold_back(self, read_id: str) -> None:
        """An update of this read failed: do not publish it again at once (no re-send storm)."""
        _, step = self._hold.get(read_id, (0.0, HOLD_S[0]))
        self._hold[read_id] = (time.monotonic() + step, min(step * 2, HOLD_S[1]))

    def _shed_images(self, need: int) -> int:
        """Drop the images of the oldest reads that still have them, until `need` bytes are freed:
        their documents, hashes and signatures stay (the signature does not cover the image bytes)."""
        freed = shed = 0
        self._db.execute("PRAGMA secure_delete=FAST")  # see confirm: zeroing freed pages needs WAL space
        rows = self._db.execute("SELECT seq, payload FROM reads WHERE shed = 0 ORDER BY seq LIMIT 64").fetchall()
        for seq, payload in rows:
            small = without_images(payload)
            if small is None:
                continue
            self._db.execute("UPDATE reads SET payload = ?, bytes = ?, shed = 1 WHERE seq = ?",
                             (small, len(small), seq))
            freed += len(payload) - len(small)
            shed += 1
            if freed >= need:
                break
        self.images_shed += shed
        if freed:
            self._db.execute("INSERT INTO counters (name, value) VALUES ('shed', ?) "
                             "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (shed,))
            self._recount()
        return freed

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put(self, read_id: str, payload: bytes, created: float | None = None,
            alert: tuple[str, bytes] | None = None) -> bool:
        """Commit a read (and its hotlist alert, in the same transaction); False if it was already there
        (same read_id). When storage is full the oldest reads' images are shed first to make room for
        this document (see _make_room); raises OutboxError when even that fails (the caller keeps the
        read and retries)."""
        created = time.time() if created is None else created
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._make_room(len(payload) + (len(alert[1]) if alert else 0))
            for attempt in range(2):
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    try:
                        if alert is not None:
                            self._db.execute("INSERT OR IGNORE INTO alerts (alert_id, created, payload) VALUES (?,?,?)",
                                             (alert[0], created, alert[1]))
                        cur = self._db.execute(
                            "INSERT OR IGNORE INTO reads (read_id, created, bytes, payload) VALUES (?,?,?,?)",
                            (read_id, created, len(payload), payload))
                        self._db.execute("COMMIT")
                    except BaseException:
                        with contextlib.suppress(sqlite3.Error):
                            self._db.execute("ROLLBACK")
                        raise
                    break
                except sqlite3.Error as e:
                    self.fault_count += 1
                    full = "full" in str(e).lower()
                    if attempt == 0 and full:
                        try:
                            self._checkpoint()
                            shed = self._shed_images(2 * len(payload))
                            self._checkpoint()
                        except sqlite3.Error:
                            shed = 0
                        if shed:
                            self.fault = f"storage full: images of {self.images_shed} reads shed to keep reads"
                            self._log_error("shed", "storage full: shed the images of the oldest reads "
                                            "(%d so far) to store read %s", self.images_shed, read_id)
                            continue
                    self.fault = f"outbox write failed: {e}"
                    self._log_error("put", "cannot store read %s: %s", read_id, e)
                    raise OutboxError(str(e)) from e
            if self.fault and self.fault.startswith("outbox write failed"):
                self.fault = None
            if cur.rowcount:
                self._bytes += len(payload)
                self._depth += 1
            self._enforce_bounds()
            return bool(cur.rowcount)

    def enforce(self) -> None:
        """Apply the age bound now (also done at every put): nothing is kept past max_age, even on a
        unit that sees no traffic."""
        with self._lock:
            self._enforce_bounds()

    def _enforce_bounds(self) -> None:
        cutoff = time.time() - self.max_age_s
        evicted = 0
        try:
            old = [r[0] for r in self._db.execute("DELETE FROM reads WHERE created < ? RETURNING read_id", (cutoff,))]
            stale_alerts = self._db.execute("DELETE FROM alerts WHERE created < ?", (cutoff,)).rowcount
            if old or stale_alerts:
                self._count("expired", len(old))
                self._recount()
                log.warning("outbox: %d undelivered reads and %d alerts older than %.0f h deleted (storage.max_age)",
                            len(old), stale_alerts, self.max_age_s / 3600)
                self._deleted("expired", old)
            gone = []
            while self._bytes > self.max_bytes:
                row = self._db.execute("SELECT seq, bytes FROM reads ORDER BY seq LIMIT 1").fetchone()
                if row is None:
                    break
                gone += [r[0] for r in self._db.execute("DELETE FROM reads WHERE seq = ? RETURNING read_id",
                                                        (row[0],))]
                self._bytes -= int(row[1])
                evicted += 1
            if evicted:
                self._count("evicted", evicted)
                self._deleted("evicted", gone)
                self._recount()
                log.warning("outbox: evicted %d oldest unsent reads (bounds %d bytes, %.0f h)", evicted,
                            self.max_bytes, self.max_age_s / 3600)
        except sqlite3.Error as e:
            self.fault = f"outbox eviction failed: {e}"
            self._log_error("evict", "%s", self.fault)

    def mark_sent(self, *read_ids: str) -> None:
        """The broker acknowledged these reads: without receipts they are done; with them each waits for
        its receipt and is due again for publishing after the receipt timeout (doubling per attempt).
        Images are deleted now unless `images_until` is "receipt": the broker holds the full read for
        the central's persistent session, the unit keeps the document and hashes for the receipt.
        One transaction for all of them: with synchronous=FULL each commit is a flush to the card, and
        a backlog drained one commit per PUBACK runs at the card's flush rate (`anpr-edge bench uplink`
        here: 549 reads/s so, 1,835-2,306 batched). Losing an uncommitted delete to power loss only sends
        that read again."""
        if not read_ids:
            return
        with self._lock:
            gone: list[str] = []
            freed = 0
            try:
                self._db.execute("BEGIN IMMEDIATE")
                now = time.time()
                for read_id in read_ids:
                    if self.receipts:
                        self._db.execute(
                            "UPDATE reads SET sent_at = ?, attempts = attempts + 1, "
                            "due = ? + min(?, ? * (1 << min(attempts, 16))) WHERE read_id = ?",
                            (now, now, self.receipt_max_s, self.receipt_timeout_s, read_id))
                        if self.images_until == "puback":
                            self._drop_images(read_id)
                        continue
                    row = self._db.execute("DELETE FROM reads WHERE read_id = ? RETURNING bytes",
                                           (read_id,)).fetchone()
                    if row is not None:
                        gone.append(read_id)
                        freed += int(row[0])
                self._count("deleted", len(gone))
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                    self._recount()
                self.fault = f"outbox update failed: {e}"
                self._log_error("update", "%s", self.fault)
                for read_id in read_ids:
                    self._hold_back(read_id)
                return
            for read_id in read_ids:
                self._hold.pop(read_id, None)
            self._deleted("delivered", gone)
            if gone:
                self._bytes -= freed
                self._depth -= len(gone)
                if self.fault:
                    self._after_delete()

    def confirm(self, read_ids: list[str]) -> int:
        """The central's receipt: these reads are stored there, delete them; how many were here."""
        if not read_ids:
            return 0
        done = 0
        with self._lock:
            try:
                # under storage pressure: small steps, the WAL emptied between, and freed pages not zeroed
                # (secure_delete, on in Debian's SQLite, writes every freed page to the WAL again: a full
                # disk could then never delete); zeroing resumes once there is room
                step = 32 if self.fault else 500
                self._db.execute(f"PRAGMA secure_delete={'FAST' if self.fault else 'ON'}")
                for i in range(0, len(read_ids), step):
                    if self.fault:
                        self._checkpoint()
                    part = read_ids[i:i + step]
                    sql = f"DELETE FROM reads WHERE read_id IN ({','.join('?' * len(part))}) RETURNING bytes"
                    try:
                        rows = self._db.execute(sql, part).fetchall()
                    except sqlite3.OperationalError:  # full: empty the WAL and try once more
                        self._checkpoint()
                        rows = self._db.execute(sql, part).fetchall()
                    done += len(rows)
                    self._bytes -= sum(int(r[0]) for r in rows)
                    self._depth -= len(rows)
                if done:
                    self._count("deleted", done)
                    self._deleted("delivered", read_ids)
            except sqlite3.Error as e:
                self.fault = f"outbox delete failed: {e}"
                self._log_error("delete", "%s", self.fault)
                for rid in read_ids:
                    self._hold_back(rid)
                return done
            for rid in read_ids:
                self._hold.pop(rid, None)
            if done and self.fault:
                self._after_delete()
        return done

    def _recount(self) -> None:
        """The running byte and read counts, from the table (after bulk deletes or a rolled-back update)."""
        row = self._db.execute("SELECT COALESCE(SUM(bytes), 0), COUNT(*) FROM reads").fetchone()
        self._bytes, self._depth = int(row[0]), int(row[1])

    def _count(self, name: str, n: int) -> None:
        if n:
            self._db.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                             "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, n))

    def _deleted(self, why: str, read_ids: list[str]) -> None:
        if self.on_delete is not None and read_ids:
            try:
                self.on_delete(why, read_ids)
            except Exception:  # the audit trail must not stop deliveries
                log.exception("outbox: deletion hook failed")

    def _drop_images(self, read_id: str) -> None:
        row = self._db.execute("SELECT payload FROM reads WHERE read_id = ? AND shed = 0", (read_id,)).fetchone()
        if row is None:
            return
        small = without_images(row[0])
        if small is None:
            return
        self._db.execute("UPDATE reads SET payload = ?, bytes = ?, shed = 2 WHERE read_id = ?",
                         (small, len(small), read_id))
        self._bytes -= len(row[0]) - len(small)
        self._count("images_deleted", 1)

    # ---- alerts (hotlist matches): published before any read, deleted at PUBACK ---------------------
    def alerts_due(self, limit: int, exclude: set[str]) -> list[Pending]:
        with self._lock:
            try:
                rows = self._db.execute("SELECT seq, alert_id, created, payload FROM alerts ORDER BY seq LIMIT ?",
                                        (limit + len(exclude),)).fetchall()
            except sqlite3.Error as e:
                self._log_error("read", "alerts unreadable: %s", e)
                return []
        return [Pending(int(q), str(a), float(c), bytes(p)) for q, a, c, p in rows if a not in exclude][:limit]

    def alert_sent(self, alert_id: str) -> None:
        with self._lock:
            try:
                self._db.execute("DELETE FROM alerts WHERE alert_id = ?", (alert_id,))
            except sqlite3.Error as e:
                self._log_error("update", "cannot delete delivered alert %s: %s", alert_id, e)

    def _checkpoint(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _after_delete(self) -> None:
        """Space freed after a storage fault: give the WAL's back to the disk; clear the fault once
        there is room again."""
        self._checkpoint()
        if self._room() > 4 * MARGIN_BYTES:
            self.fault = None

    def newest(self, limit: int, exclude: set[str], newer_than_seq: int = 0) -> list[Pending]:
        """Most recent reads due for publishing first (live traffic before backlog)."""
        return self._select("SELECT seq, read_id, created, payload FROM reads WHERE seq > ? AND due <= ? "
                            "ORDER BY seq DESC LIMIT ?", (newer_than_seq, time.time(), limit + len(exclude)),
                            exclude, limit)

    def oldest(self, limit: int, exclude: set[str]) -> list[Pending]:
        return self._select("SELECT seq, read_id, created, payload FROM reads WHERE due <= ? ORDER BY seq LIMIT ?",
                            (time.time(), limit + len(exclude),), exclude, limit)

    def _select(self, sql: str, args: tuple, exclude: set[str], limit: int) -> list[Pending]:
        with self._lock:
            try:
                rows = self._db.execute(sql, args).fetchall()
            except sqlite3.Error as e:
                self.fault = f"outbox read failed: {e}"
                self._log_error("read", "%s", self.fault)
                return []
            now = time.monotonic()
            held = {r for r, (until, _) in self._hold.items() if until > now}
        out = [Pending(int(s), str(r), float(c), bytes(p)) for s, r, c, p in rows if r not in exclude and r not in held]
        return out[:limit]

    def max_seq(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM reads").fetchone()[0])

    def stats(self) -> OutboxStats:
        with self._lock:
            try:
                oldest = self._db.execute("SELECT MIN(created) FROM reads").fetchone()[0]
                counts = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
                waiting = self._db.execute("SELECT COUNT(*) FROM reads WHERE sent_at IS NOT NULL").fetchone()[0]
                alerts = self._db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
            except sqlite3.Error as e:
                return OutboxStats(self._depth, self._bytes, None, 0, f"outbox unreadable: {e}")
        return OutboxStats(self._depth, self._bytes, None if oldest is None else max(0.0, time.time() - oldest),
                           int(counts.get("evicted", 0)), self.fault, int(waiting), self.images_shed,
                           int(counts.get("expired", 0)), int(counts.get("deleted", 0)),
                           int(counts.get("images_deleted", 0)), int(alerts))
