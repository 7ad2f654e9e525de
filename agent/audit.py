"""An append-only, hash-chained audit log: one JSON object a line, each holding the hash of the one
before, so an edited, inserted or removed line breaks the chain (`anpr-edge audit verify`).

Line: {"seq", "t" (UTC), "event", "detail", "prev", "hash"}; `hash` is SHA-256 over the canonical JSON
of the other five fields, `prev` the previous line's hash (64 zeros before the first line ever). The
file is bounded: past `max_bytes` it is rotated (`audit.jsonl.1`, `.2`, ... up to `keep`), and the new
file's first line still names the last hash of the one before, so the chain runs across files. The
last line's seq and hash are also kept in `audit.head`, so cutting lines off the end shows too; and
the lines are shipped to the central (`.../audit`), where a copy is beyond the unit's reach. No VRM,
image or secret is ever written here: reads are named by read_id, hotlist entries by hash prefix.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

GENESIS = "0" * 64
FIELDS = ("seq", "t", "event", "detail", "prev")


def line_hash(body: dict) -> str:
    data = json.dumps({k: body[k] for k in FIELDS}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def _now_iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(slots=True)
class AuditStats:
    lines: int = 0  # written since start
    last_seq: int = 0
    unshipped: int = 0
    lost_unshipped: int = 0  # rotated away before the central had them
    write_errors: int = 0


class AuditLog:
    def __init__(self, folder: Path, max_bytes: int = 4_000_000, keep: int = 8,
                 clock: Callable[[], float] = time.time) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = self.folder / "audit.jsonl"
        self.head_path = self.folder / "audit.head"
        self.shipped_path = self.folder / "audit.shipped"
        self.max_bytes = max_bytes
        self.keep = keep
        self.clock = clock
        self.stats = AuditStats()
        self._lock = threading.Lock()
        self._seq, self._prev = self._tail()
        self.stats.last_seq = self._seq
        self._shipped = self._read_shipped()
        self._pending: deque[tuple[int, str]] = deque(self._unshipped_on_disk())
        self.stats.unshipped = len(self._pending)

    # ---- writing ---------------------------------------------------------------------------------
    def record(self, event: str, **detail) -> int:
        """Append one line (fsynced); returns its seq. A failed write is counted and logged, never raised:
        the unit keeps reading plates with its audit log on a broken disk, and health says so."""
        with self._lock:
            try:
                if self._rotate_if_full(1024):  # each file starts with a rotated line: a cut start shows
                    self._append("rotated", {"previous_file": "audit.jsonl.1", "previous_seq": self._seq})
            except OSError as e:
                self._write_failed(e)
                return 0
            return self._append(event, detail)

    def _write_failed(self, e: OSError) -> None:
        self.stats.write_errors += 1
        if self.stats.write_errors <= 3 or self.stats.write_errors % 1000 == 0:
            log.error("audit: cannot write %s (%d failures): %s", self.path, self.stats.write_errors,
                      e.strerror or e)

    def _append(self, event: str, detail: dict) -> int:
        body = {"seq": self._seq + 1, "t": _now_iso(self.clock()), "event": event, "detail": detail,
                "prev": self._prev}
        body["hash"] = line_hash(body)
        line = json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())
            self._write_small(self.head_path, f"{body['seq']} {body['hash']}\n")
        except OSError as e:
            self._write_failed(e)
            return 0
        self._seq, self._prev = body["seq"], body["hash"]
        self.stats.lines += 1
        self.stats.last_seq = self._seq
        self._pending.append((self._seq, line))
        self.stats.unshipped = len(self._pending)
        return self._seq

    def _rotate_if_full(self, adding: int) -> bool:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return False
        if size + adding <= self.max_bytes:
            return False
        oldest = self.folder / f"audit.jsonl.{self.keep}"
        if oldest.exists():
            last = _last_seq(oldest)
            lost = sum(1 for s, _ in self._pending if s <= last)
            if lost:
                self.stats.lost_unshipped += lost
                log.error("audit: %d lines rotated away before they were shipped", lost)
                while self._pending and self._pending[0][0] <= last:
                    self._pending.popleft()
            oldest.unlink()
        for i in range(self.keep - 1, 0, -1):
            p = self.folder / f"audit.jsonl.{i}"
            if p.exists():
                os.replace(p, self.folder / f"audit.jsonl.{i + 1}")
        os.replace(self.path, self.folder / "audit.jsonl.1")
        return True

    @staticmethod
    def _write_small(path: Path, text: str) -> None:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
        os.replace(tmp, path)

    def files(self) -> list[Path]:
        return self.files_in(self.folder)

    @staticmethod
    def files_in(folder: Path) -> list[Path]:
        """The log's files, oldest first (audit.jsonl.N ... audit.jsonl.1, audit.jsonl)."""
        rotated = [p for p in Path(folder).glob("audit.jsonl.*") if p.suffix[1:].isdigit()]
        current = Path(folder) / "audit.jsonl"
        return sorted(rotated, key=lambda p: -int(p.suffix[1:])) + ([current] if current.exists() else [])

    def _tail(self) -> tuple[int, str]:
        for p in reversed(self.files()):
            last = _last_line(p)
            if last is not None:
                try:
                    d = json.loads(last)
                    return int(d["seq"]), str(d["hash"])
                except (ValueError, KeyError, TypeError):
                    log.error("audit: the last line of %s is unreadable: a new chain link starts after it", p)
                    return 0, hashlib.sha256(last.encode()).hexdigest()
        return 0, GENESIS

    # ---- shipping --------------------------------------------------------------------------------
    def _read_shipped(self) -> int:
        try:
            return int(self.shipped_path.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _unshipped_on_disk(self) -> list[tuple[int, str]]:
        out = []
        for p in self.files():
            with contextlib.suppress(OSError), p.open(encoding="utf-8", errors="replace") as f:
                for line in f:
                    line = line.rstrip("\n")
                    try:
                        s = int(json.loads(line)["seq"])
                    except (ValueError, KeyError, TypeError):
                        continue
                    if s > self._shipped:
                        out.append((s, line))
        return out

    def unshipped(self, limit: int = 200) -> list[tuple[int, str]]:
        with self._lock:
            return list(self._pending)[:limit]

    def mark_shipped(self, seq: int) -> None:
        """The broker has every line up to `seq`."""
        with self._lock:
            while self._pending and self._pending[0][0] <= seq:
                self._pending.popleft()
            self.stats.unshipped = len(self._pending)
            if seq > self._shipped:
                self._shipped = seq
                try:
                    self._write_small(self.shipped_path, f"{seq}\n")
                except OSError as e:
                    log.warning("audit: cannot record the shipped position: %s", e.strerror or e)

    def head(self) -> dict:
        return {"seq": self._seq, "hash": self._prev}

    def health(self) -> dict:
        s = self.stats
        return {"last_seq": s.last_seq, "unshipped": s.unshipped, "lost_unshipped": s.lost_unshipped,
                "write_errors": s.write_errors}


def _last_line(p: Path) -> str | None:
    try:
        with p.open("rb") as f:
            f.seek(0, os.SEEK_END)
            end = f.tell()
            pos = max(0, end - 65536)
            f.seek(pos)
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
    except OSError:
        return None
    return lines[-1].decode("utf-8", errors="replace") if lines else None


def _last_seq(p: Path) -> int:
    last = _last_line(p)
    try:
        return int(json.loads(last)["seq"]) if last else 0
    except (ValueError, KeyError, TypeError):
        return 0


# ---- verification -----------------------------------------------------------------------------------
@dataclass(slots=True)
class VerifyResult:
    lines: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_lines(lines: list[tuple[str, int, str]], head: tuple[int, str] | None = None) -> VerifyResult:
    """Check a chain given as (file name, line number, text) in order. The first line must start the
    chain (prev = zeros, seq 1) unless it is the first of a rotated-away history, where only the
    links from it on can be checked."""
    res = VerifyResult()
    prev_hash: str | None = None
    prev_seq: int | None = None
    for name, n, text in lines:
        where = f"{name}:{n}"
        try:
            d = json.loads(text)
            if not isinstance(d, dict) or set(d) != {*FIELDS, "hash"}:
                raise ValueError("not an audit line (fields differ)")
            seq = d["seq"]
            if not isinstance(seq, int) or isinstance(seq, bool):
                raise ValueError("seq is not an integer")
            if not isinstance(d["event"], str) or not isinstance(d["detail"], dict):
                raise ValueError("event or detail of the wrong type")
            if not isinstance(d["prev"], str) or not isinstance(d["hash"], str):
                raise ValueError("prev or hash of the wrong type")
            ok_hash = line_hash(d) == d["hash"]
        except (ValueError, TypeError, RecursionError) as e:
            res.problems.append(f"{where}: unreadable line ({str(e)[:80]})")
            prev_hash, prev_seq = None, None
            continue
        if not ok_hash:
            res.problems.append(f"{where}: seq {seq}: line edited (its hash does not match its content)")
        if prev_hash is None and prev_seq is None and res.lines == 0:
            if seq == 1 and d["prev"] != GENESIS:
                res.problems.append(f"{where}: the first line does not start a chain")
            elif seq != 1 and d["event"] != "rotated":
                res.problems.append(f"{where}: starts at seq {seq}, neither the first line ever nor the start of "
                                    "a rotated file: lines removed from the start")
            res.first_seq = seq
        else:
            if prev_seq is not None and seq != prev_seq + 1:
                res.problems.append(f"{where}: seq {seq} follows {prev_seq}: "
                                    f"{'lines removed' if seq > prev_seq + 1 else 'lines out of order or repeated'}")
            if prev_hash is not None and d["prev"] != prev_hash:
                res.problems.append(f"{where}: seq {seq}: does not link to the line before (removed, inserted or "
                                    "edited lines)")
        res.lines += 1
        prev_hash, prev_seq = d["hash"], seq
        res.last_seq, res.last_hash = seq, d["hash"]
    if head is not None and res.problems == [] and (res.last_seq, res.last_hash) != head:
        res.problems.append(f"the log ends at seq {res.last_seq} but the head records seq {head[0]}: "
                            "lines cut off the end")
    return res


def verify_files(paths: list[Path], head_file: Path | None = None) -> VerifyResult:
    """Files oldest first (rotated ones before the current)."""
    lines = []
    for p in paths:
        with Path(p).open(encoding="utf-8", errors="replace") as f:
            for n, text in enumerate(f, start=1):
                if text.strip():
                    lines.append((Path(p).name, n, text.rstrip("\n")))
    head = None
    if head_file is not None and head_file.exists():
        try:
            s, h = head_file.read_text().split()
            head = (int(s), h)
        except ValueError:
            res = verify_lines(lines)
            res.problems.append(f"{head_file}: unreadable")
            return res
    return verify_lines(lines, head)
