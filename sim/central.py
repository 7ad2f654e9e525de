"""Reference central subscriber: shared subscription, schema validation, signature verification
against each camera's registered key, de-duplication by read_id, reads in SQLite and images as files.

Several instances in the same group (`$share/{group}/...`) split the load on any MQTT 5 broker.
Public keys are registered as files `{site}.{camera}.pub` (PEM) in the keys folder.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import ClassVar

import paho.mqtt.client as mqtt

from agent.read_doc import Alert, Read
from agent.signing import VerifyError, load_public, verify
from agent.uplink.mqtt import BrokerSettings, connect_properties, make_client

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS reads (
  read_id TEXT PRIMARY KEY,
  site_id TEXT NOT NULL,
  camera_id TEXT NOT NULL,
  captured_at TEXT NOT NULL,
  received_at REAL NOT NULL,
  vrm TEXT NOT NULL,
  confidence REAL NOT NULL,
  format TEXT NOT NULL,
  doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reads_vrm ON reads (vrm);
CREATE TABLE IF NOT EXISTS conflicts (
  read_id TEXT NOT NULL,
  received_at REAL NOT NULL,
  doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
  alert_id TEXT PRIMARY KEY,
  read_id TEXT NOT NULL,
  site_id TEXT NOT NULL,
  camera_id TEXT NOT NULL,
  raised_at TEXT NOT NULL,
  received_at REAL NOT NULL,
  vrm TEXT NOT NULL,
  priority INTEGER NOT NULL,
  doc TEXT NOT NULL
);
"""
IMAGE_FILES = (("plate_patch", "patch"), ("overview", "overview"))  # read field, images/{read_id}_{suffix}.jpg
RECEIPT_BATCH = 200  # read ids per receipt message
RECEIPT_FLUSH_S = 0.2  # longest a stored read waits for its receipt to be sent

def central_client_id(group: str, instance: str) -> str:
    """A client id that is the same every time this instance starts: the broker keeps a persistent
    session (and the reads queued for it while it was down) under the client id, so an id that changes
    per process (the PID) leaves the old session's queue orphaned and its reads lost."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in f"{group}-{instance}")
    return f"anpr-central-{safe}"[:64]


class KeyRegistry:
    """Camera id -> its Ed25519 public key: a folder of `{site}.{camera}.pub` PEM files (looked up on
    first use, so a new camera's file can be added while running), or one register file with a line
    `{site}.{camera} <64 hex digits of the raw public key>` a camera (a fleet's thousands of keys)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._cache: dict[str, object] = {}
        if folder is not None and Path(folder).is_file():
            self._cache = load_register(Path(folder))
            self.folder = None

    def get(self, site: str, camera: str):
        name = f"{site}.{camera}"
        if name not in self._cache and self.folder is not None:
            p = self.folder / f"{name}.pub"
            if p.is_file() and "/" not in name:
                try:
                    self._cache[name] = load_public(p)
                except ValueError as e:
                    log.error("central: bad key file %s: %s", p, e)
        return self._cache.get(name)


def load_register(path: Path) -> dict[str, object]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    keys: dict[str, object] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            name, hexkey = line.split()
            keys[name] = Ed25519PublicKey.from_public_bytes(bytes.fromhex(hexkey))
        except ValueError:
            raise ValueError(f"{path}:{n}: expected '{{site}}.{{camera}} <64 hex digits>'") from None
    return keys


class Store:
    """Read documents (images stripped) in SQLite (the embedded default) and the images as files.
    The SQL is named in STATEMENTS so that sim.central_pg.PgStore runs the same logic on PostgreSQL."""

    STATEMENTS: ClassVar[dict[str, str]] = {
        "insert_read": "INSERT OR IGNORE INTO reads VALUES (?,?,?,?,?,?,?,?,?)",
        "get_doc": "SELECT doc FROM reads WHERE read_id = ?",
        "add_conflict": "INSERT INTO conflicts VALUES (?,?,?)",
        "update_doc": "UPDATE reads SET doc = ? WHERE read_id = ?",
        "insert_alert": "INSERT OR IGNORE INTO alerts VALUES (?,?,?,?,?,?,?,?,?)",
        "alerts": "SELECT alert_id, read_id, vrm, raised_at, received_at, priority FROM alerts ORDER BY received_at",
        "count": "SELECT COUNT(*) FROM reads",
        "conflicts": "SELECT read_id FROM conflicts ORDER BY received_at",
        "read_ids": "SELECT read_id FROM reads ORDER BY read_id",
        "rows": "SELECT read_id, captured_at, received_at, site_id, camera_id FROM reads",
    }

    def __init__(self, out: Path) -> None:
        self.out = out
        (out / "images").mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._audit_seq: dict[Path, int] = {}
        self._connect()

    def _connect(self) -> None:
        self._db = sqlite3.connect(self.out / "reads.sqlite", check_same_thread=False, isolation_level=None,
                                   timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def _run(self, name: str, args: tuple = ()) -> int:
        """Run a named statement; rows changed."""
        with self._lock:
            return self._db.execute(self.STATEMENTS[name], args).rowcount

    def _rows(self, name: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return [tuple(r) for r in self._db.execute(self.STATEMENTS[name], args).fetchall()]

    def close(self) -> None:
        self._db.close()

    def add(self, read, raw: dict) -> str:
        """Store a verified read: "stored", "duplicate" (the same document again) or "conflict" (the
        same read_id with other content: kept apart in `conflicts`, never over the first)."""
        doc = dict(raw)
        for f, _ in IMAGE_FILES:  # images go to files; a shed one keeps its empty jpeg_b64
            doc[f] = {k: v for k, v in doc[f].items() if k != "jpeg_b64" or not v}
        text = json.dumps(doc, separators=(",", ":"), sort_keys=True)
        if self._run("insert_read", (read.read_id, read.site_id, read.camera_id, raw["captured_at"], time.time(),
                                     read.vrm, read.confidence, read.format, text)):
            self._write_images(read, [f for f, _ in IMAGE_FILES])
            return "stored"
        (first,) = self._rows("get_doc", (read.read_id,))[0]
        old = first if isinstance(first, dict) else json.loads(first)
        if _without_image_bytes(old) != _without_image_bytes(doc):
            self._run("add_conflict", (read.read_id, time.time(), text))
            return "conflict"
        # the same read again (a re-send after the unit deleted its images counts as the same);
        # images that the first copy lacked are kept now
        missing = [f for f, _ in IMAGE_FILES if "jpeg_b64" in old[f] and getattr(read, f).jpeg_b64]
        if missing:
            for f in missing:
                old[f].pop("jpeg_b64")
            self._run("update_doc", (json.dumps(old, separators=(",", ":"), sort_keys=True), read.read_id))
            self._write_images(read, missing)
        return "duplicate"

    def _write_images(self, read, fields: list[str]) -> None:
        for f, suffix in IMAGE_FILES:
            if f not in fields:
                continue
            img = getattr(read, f)
            if img.jpeg_b64:  # empty: shed on the unit (storage full); the document and hash are kept
                (self.out / "images" / f"{read.read_id}_{suffix}.jpg").write_bytes(img.jpeg())

    def add_alert(self, alert, raw: dict) -> bool:
        """Store a verified alert (with its images inline); False when it was already here."""
        text = json.dumps(raw, separators=(",", ":"), sort_keys=True)
        return bool(self._run("insert_alert", (alert.alert_id, alert.read_id, alert.site_id, alert.camera_id,
                                               raw["raised_at"], time.time(), alert.vrm,
                                               min(m.priority for m in alert.matches), text)))

    def alerts(self) -> list[dict]:
        return [dict(zip(("alert_id", "read_id", "vrm", "raised_at", "received_at", "priority"), r, strict=True))
                for r in self._rows("alerts")]

    def add_audit(self, site: str, camera: str, payload: bytes) -> int:
        """Append a unit's shipped audit lines to audit/{site}.{camera}.jsonl (`anpr-edge audit verify`
        checks the chain there, beyond the unit's reach); lines already held are skipped."""
        folder = self.out / "audit"
        folder.mkdir(exist_ok=True)
        path = folder / f"{site}.{camera}.jsonl"
        with self._lock:
            last = self._audit_seq.get(path)
            if last is None:
                last = 0
                if path.exists():
                    from agent.audit import _last_seq

                    last = _last_seq(path)
            new = []
            for line in payload.decode("utf-8", errors="replace").splitlines():
                try:
                    seq = int(json.loads(line)["seq"])
                except (ValueError, KeyError, TypeError):
                    continue
                if seq > last:
                    new.append(line)
                    last = seq
            if new:
                with path.open("a", encoding="utf-8") as f:
                    f.write("\n".join(new) + "\n")
            self._audit_seq[path] = last
        return len(new)

    def count(self) -> int:
        return int(self._rows("count")[0][0])

    def conflicts(self) -> list[str]:
        return [r[0] for r in self._rows("conflicts")]

    def read_ids(self) -> list[str]:
        return [r[0] for r in self._rows("read_ids")]

    def stored_rows(self) -> list[tuple[str, str, float, str]]:
        """(read_id, captured_at as ISO text, received_at Unix seconds, site.camera) of every read."""
        return [(r[0], r[1] if isinstance(r[1], str) else r[1].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                 float(r[2]), f"{r[3]}.{r[4]}") for r in self._rows("rows")]


def open_store(out: Path, db: str | None = None) -> Store:
    """SQLite in `out` (db None), or PostgreSQL (db a postgresql:// URL; images still in out/images)."""
    if db is None:
        return Store(out)
    from sim.central_pg import PgStore

    return PgStore(out, db)


def _without_image_bytes(doc: dict) -> dict:
    d = dict(doc)
    for f, _ in IMAGE_FILES:
        if isinstance(d.get(f), dict):
            d[f] = {k: v for k, v in d[f].items() if k != "jpeg_b64"}
    return d


class ExportError(ValueError):
    """A read that cannot be exported from a store (absent, or its image files missing or altered)."""


def export_read(out: Path, read_id: str) -> bytes:
    """The stored document with its images put back from images/, as the camera signed it; an image
    the unit shed (storage full) stays empty, and `verify` says so; a missing image file is an error."""
    import base64

    db = out / "reads.sqlite"
    if not db.is_file():
        raise ExportError(f"{out}: not a central store (no reads.sqlite)")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT doc FROM reads WHERE read_id = ?", (read_id,)).fetchone()
    finally:
        con.close()
    if row is None:
        raise ExportError(f"read {read_id!r} is not in {db}")
    doc = json.loads(row[0])
    for f, suffix in IMAGE_FILES:
        if "jpeg_b64" in doc[f]:
            continue  # shed on the unit (storage full): it arrived without its bytes
        p = out / "images" / f"{read_id}_{suffix}.jpg"
        if not p.is_file():
            raise ExportError(f"{p} is missing: the stored read cannot be shown whole")
        doc[f]["jpeg_b64"] = base64.b64encode(p.read_bytes()).decode("ascii")
    return json.dumps(doc, separators=(",", ":")).encode()


class Central:
    def __init__(self, broker: BrokerSettings, out: Path, group: str = "central", keys: Path | None = None,
                 require_signature: bool = True, db: str | None = None, session_expiry_s: int = 300) -> None:
        self.broker = broker
        # How long the broker keeps this instance's session (and its share of the group's reads) after it
        # goes: long enough for systemd to restart it and resume; short enough that an instance removed for
        # good stops taking a share (the broker then drops what it queued, and the cameras' receipt
        # timeouts publish those reads again, to the instances that are up).
        self.session_expiry_s = session_expiry_s
        self.group = group
        self.store = open_store(out, db)
        self.keys = KeyRegistry(keys)
        self.require_signature = require_signature
        self.counts: Counter = Counter()
        self.arrivals: list[tuple[float, str]] = []  # (time, read_id) for ordering checks
        self._client = make_client(broker)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._subscribed = threading.Event()
        self._client.on_subscribe = lambda *a: self._subscribed.set()
        self._receipts: dict[tuple[str, str], list[str]] = {}
        self._receipt_lock = threading.Lock()
        self._stopping = threading.Event()
        self._receipt_thread = threading.Thread(target=self._receipt_loop, name="receipts", daemon=True)
        self._warned: dict[str, float] = {}

    @property
    def topic(self) -> str:
        return self._shared("read")

    def _shared(self, kind: str) -> str:
        base = f"anpr/v1/+/+/{kind}"
        return f"$share/{self.group}/{base}" if self.group and self.broker.mqtt_version == "5" else base

    def start(self, timeout: float = 10.0, reconnect_max_s: float = 10.0) -> None:
        host, port = self.broker.host_port
        if self.broker.mqtt_version == "5":
            self._client.connect(host, port, self.broker.keepalive_s, clean_start=False,
                                 properties=connect_properties(self.broker, self.session_expiry_s))
        else:
            self._client.connect(host, port, self.broker.keepalive_s)
        self._client.reconnect_delay_set(min(0.2, reconnect_max_s), reconnect_max_s)
        self._client.loop_start()
        self._receipt_thread.start()
        if not self._subscribed.wait(timeout):
            raise ConnectionError(f"central: not subscribed to {self.topic} within {timeout} s")

    def stop(self) -> None:
        self._stopping.set()
        if self._receipt_thread.is_alive():
            self._receipt_thread.join(timeout=5)
        self._flush_receipts()
        self._client.disconnect()
        self._client.loop_stop()

    def _warn(self, kind: str, msg: str, *args) -> None:
        """At most one line a second per kind: a misconfigured camera must not flood the log."""
        now = time.monotonic()
        if now - self._warned.get(kind, 0.0) >= 1.0:
            self._warned[kind] = now
            log.warning(msg, *args)

    def _on_alert(self, alert, raw: dict, site: str, camera: str) -> None:
        if (alert.site_id, alert.camera_id) != (site, camera):
            self.counts["invalid"] += 1
            log.warning("central: alert %s names %s/%s but came on %s/%s", alert.alert_id, alert.site_id,
                        alert.camera_id, site, camera)
            return
        if self.store.add_alert(alert, raw):
            self.counts["alerts"] += 1
            m = alert.matches[0]
            log.warning("central: ALERT %s.%s read %s: list %s, reason %s, priority %d%s", site, camera, alert.read_id,
                        m.list, m.reason, m.priority, " (fuzzy)" if m.fuzzy else "")
        else:
            self.counts["alert_duplicates"] += 1

    def _receipt(self, site: str, camera: str, read_id: str) -> None:
        with self._receipt_lock:
            self._receipts.setdefault((site, camera), []).append(read_id)
            full = len(self._receipts[(site, camera)]) >= RECEIPT_BATCH
        if full:
            self._flush_receipts()

    def _receipt_loop(self) -> None:
        while not self._stopping.wait(RECEIPT_FLUSH_S):
            self._flush_receipts()

    def _flush_receipts(self) -> None:
        """Receipts for what is stored, per camera, in batches: the camera deletes a read only on its
        receipt, so a read is kept on the unit until it is in this store."""
        with self._receipt_lock:
            todo, self._receipts = self._receipts, {}
        for (site, camera), ids in todo.items():
            for i in range(0, len(ids), RECEIPT_BATCH):
                body = json.dumps({"read_ids": ids[i:i + RECEIPT_BATCH]}, separators=(",", ":"))
                info = self._client.publish(f"anpr/v1/{site}/{camera}/receipt", body, qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    # not connected: the camera re-sends after its receipt timeout and gets one then
                    self.counts["receipts_unsent"] += len(ids[i:i + RECEIPT_BATCH])
                else:
                    self.counts["receipts"] += len(ids[i:i + RECEIPT_BATCH])

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("central: connection refused: %s", reason_code)
            return
        client.subscribe([(self._shared(k), 1) for k in ("read", "alert", "audit")])

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        if len(parts) != 5:
            self.counts["invalid"] += 1
            return
        site, camera = parts[2], parts[3]
        if parts[4] == "audit":
            self.counts["audit_lines"] += self.store.add_audit(site, camera, msg.payload)
            return
        self.counts["received"] += parts[4] == "read"
        try:
            raw = json.loads(msg.payload)
            if not isinstance(raw, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError):
            self.counts["invalid"] += 1
            log.warning("central: %s: payload is not a JSON object", msg.topic)
            return
        key = self.keys.get(site, camera)
        try:
            if key is None:
                if self.require_signature:
                    self.counts["unknown_camera"] += 1
                    log.warning("central: no registered key for %s.%s", site, camera)
                    return
                read = (Alert if parts[4] == "alert" else Read).model_validate(raw)
            else:
                read = verify(raw, key, Alert if parts[4] == "alert" else Read)
        except VerifyError as e:
            why = str(e)
            self.counts["wrong_key" if why.startswith("signed with key") else
                        "bad_signature" if "signature" in why or "hash" in why else "invalid"] += 1
            self._warn("rejected", "central: rejected %s on %s: %s", parts[4], msg.topic, e)
            return
        except ValueError as e:
            self.counts["invalid"] += 1
            log.warning("central: invalid read on %s: %s", msg.topic, str(e)[:200])
            return
        if parts[4] == "alert":
            self._on_alert(read, raw, site, camera)
            return
        if parts[4] != "read":
            return
        if (read.site_id, read.camera_id) != (site, camera):
            self.counts["invalid"] += 1
            log.warning("central: read %s names %s/%s but came on %s", read.read_id, read.site_id, read.camera_id,
                        msg.topic)
            return
        outcome = self.store.add(read, raw)
        if outcome == "stored":
            self.counts["stored"] += 1
            self.arrivals.append((time.time(), read.read_id))
        elif outcome == "duplicate":
            self.counts["duplicates"] += 1
        else:
            self.counts["conflicts"] += 1
            log.warning("central: read %s from %s.%s arrived again with other content (valid signature): kept "
                        "as a conflict", read.read_id, site, camera)
        self._receipt(site, camera, read.read_id)
