"""Vehicle-of-interest lists (hotlists): signed, versioned updates, VRMs held only as keyed hashes.

Keys (`anpr-edge hotlist keygen`): a deployment secret that only the central side holds, from which
HKDF derives the *match key* (HMAC-SHA256, copied to every unit: entry id = HMAC(match key, VRM)) and
the *seal key* (AES-GCM over each VRM, so the central tool can show a list in clear; never on a unit);
and the central's Ed25519 signing key, whose public half each unit trusts from its configuration.
A unit therefore holds hashes, list names and reason codes, never a listed VRM in clear. (Anyone with
a unit's match key can still test a guessed VRM against the list: the key is 0600 and the state
folder 0700; docs/hotlists.md says what that protects and what not.)

An update is a JSON document (schema anpr.hotlist.v1), `full` (replaces the list) or `delta` (adds or
replaces entries and removes ids, on top of exactly `base_version`), signed over the canonical form
read documents use. It is refused with a reason, the list in force unchanged, when it is unsigned,
signed by another key, made for another match key, not newer than the list in force, or malformed.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import hmac
import io
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator, model_validator

from agent.signing import canonical, key_id

log = logging.getLogger(__name__)

SCHEMA_ID = "anpr.hotlist.v1"
REVIEW_DAYS = 28  # national standard: every entry reviewed at least this often
MAX_UPDATE_BYTES = 96 * 1024 * 1024  # an entry is about 350 bytes: room for MAX_ENTRIES
MAX_ENTRIES = 250_000
# Characters a reader confuses (the national near-miss pairs): a read is also matched with each swapped.
CONFUSABLE = {"0": "O", "O": "0", "1": "I", "I": "1", "5": "S", "S": "5", "8": "B", "B": "8", "2": "Z", "Z": "2"}
MAX_FUZZY_POSITIONS = 8  # 2**8 variants at most per read
KEY_BYTES = 32

VrmHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Text = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]


class HotlistError(ValueError):
    """Why an update, a list file or a key was refused."""


def normalise_vrm(vrm: str) -> str:
    v = "".join(vrm.split()).upper()
    if not v or len(v) > 12 or not v.isascii() or not v.isalnum():
        raise HotlistError(f"not a VRM: {vrm[:20]!r} (1-12 letters and digits)")
    return v


# ---- keys ---------------------------------------------------------------------------------------------
def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=b"anpr-edge hotlist " + purpose).derive(
        secret)


def match_key_from_secret(secret: bytes) -> bytes:
    return _derive(secret, b"match")


def seal_key_from_secret(secret: bytes) -> bytes:
    return _derive(secret, b"seal")


def match_key_id(match_key: bytes) -> str:
    return hashlib.sha256(b"anpr-edge match key id" + match_key).hexdigest()[:16]


def vrm_hash(match_key: bytes, vrm: str) -> str:
    return hmac.new(match_key, normalise_vrm(vrm).encode("ascii"), hashlib.sha256).hexdigest()


def read_key_file(path: Path) -> bytes:
    """A 32-byte key stored as 64 hex digits (keygen writes them 0600)."""
    try:
        text = Path(path).read_text(encoding="ascii").strip()
        key = bytes.fromhex(text)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise HotlistError(f"{path}: not a hotlist key file ({getattr(e, 'strerror', None) or e})") from None
    if len(key) != KEY_BYTES:
        raise HotlistError(f"{path}: a hotlist key is {KEY_BYTES} bytes (64 hex digits), this one {len(key)}")
    return key


def write_secret_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(data.hex() + "\n")


# ---- the document -------------------------------------------------------------------------------------
def _utc(v: dt.datetime) -> dt.datetime:
    if v.tzinfo is None:
        raise ValueError("times must carry a time zone (UTC)")
    return v.astimezone(dt.UTC).replace(microsecond=0)


def _iso(v: dt.datetime) -> str:
    return v.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=False)


class Entry(_Doc):
    h: VrmHash = Field(description="HMAC-SHA256 of the VRM under the deployment's match key.")
    list: Text = Field(description="List name, e.g. stolen, no_insurance, wanted.")
    reason: Text = Field(description="Reason code.")
    priority: int = Field(ge=1, le=9, description="1 most urgent.")
    action: str = Field("", max_length=200, description="What an officer should do.")
    added: dt.datetime
    reviewed: dt.datetime
    expires: dt.datetime
    sealed: str | None = Field(None, max_length=200, description="The VRM under the seal key (central use only).")

    _t = field_validator("added", "reviewed", "expires")(staticmethod(_utc))

    @field_serializer("added", "reviewed", "expires")
    def _ser(self, v: dt.datetime) -> str:
        return _iso(v)

    @model_validator(mode="after")
    def _review(self) -> Entry:
        if self.reviewed < self.added:
            raise ValueError("reviewed before it was added")
        if self.expires <= self.added:
            raise ValueError("expires before it was added")
        if self.expires > self.reviewed + dt.timedelta(days=REVIEW_DAYS):
            raise ValueError(f"expires more than {REVIEW_DAYS} days after its last review")
        return self


class Signature(_Doc):
    alg: Literal["Ed25519"] = "Ed25519"
    key_id: str = Field(max_length=32)
    value: str = Field(max_length=200)


class Update(_Doc):
    schema_: Literal["anpr.hotlist.v1"] = Field(SCHEMA_ID, alias="schema")
    kind: Literal["full", "delta"]
    version: int = Field(ge=1, le=2**53)
    base_version: int | None = Field(None, ge=0, le=2**53)
    issued_at: dt.datetime
    match_key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    entries: list[Entry] = Field(default_factory=list, max_length=MAX_ENTRIES)
    remove: list[VrmHash] = Field(default_factory=list, max_length=MAX_ENTRIES)
    signature: Signature | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)
    _t = field_validator("issued_at")(staticmethod(_utc))

    @field_serializer("issued_at")
    def _ser(self, v: dt.datetime) -> str:
        return _iso(v)

    @model_validator(mode="after")
    def _shape(self) -> Update:
        if self.kind == "full" and (self.base_version is not None or self.remove):
            raise ValueError("a full list has no base_version and no remove")
        if self.kind == "delta" and self.base_version is None:
            raise ValueError("a delta needs the base_version it applies to")
        if self.kind == "delta" and self.base_version is not None and self.base_version >= self.version:
            raise ValueError("a delta's version must be above its base_version")
        ids = [e.h for e in self.entries]
        if len(set(ids)) != len(ids):
            raise ValueError("the same VRM twice in one update")
        return self

    def doc(self) -> dict:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def sign_update(update: Update, key: Ed25519PrivateKey) -> bytes:
    doc = update.model_copy(update={"signature": None}).doc()
    sig = key.sign(canonical(doc))
    doc["signature"] = {"alg": "Ed25519", "key_id": key_id(key.public_key()),
                        "value": base64.b64encode(sig).decode("ascii")}
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def parse_update(payload: bytes, trust: Ed25519PublicKey | None, match_id: str | None = None) -> Update:
    """The update, checked: size, JSON, schema, review rule, signature (when `trust` is given) and that
    it was made for this match key. Raises HotlistError saying why not."""
    if len(payload) > MAX_UPDATE_BYTES:
        raise HotlistError(f"update too large ({len(payload)} bytes, at most {MAX_UPDATE_BYTES})")
    try:
        raw = json.loads(payload, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise HotlistError(f"not JSON: {str(e)[:120]}") from None
    if not isinstance(raw, dict):
        raise HotlistError("not a JSON object")
    try:
        upd = Update.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise HotlistError(f"malformed update: {where}: {first['msg']} ({e.error_count()} problem(s))") from None
    if trust is not None:
        if upd.signature is None:
            raise HotlistError("unsigned update")
        if upd.signature.key_id != key_id(trust):
            raise HotlistError(f"signed with key {upd.signature.key_id}, not the trusted {key_id(trust)}")
        try:
            trust.verify(base64.b64decode(upd.signature.value, validate=True), canonical(
                {k: v for k, v in raw.items() if k != "signature"}))
        except (InvalidSignature, ValueError):
            raise HotlistError("bad signature (tampered, or signed by another key)") from None
    if match_id is not None and upd.match_key_id != match_id:
        raise HotlistError(f"made for match key {upd.match_key_id}, this unit has {match_id}")
    return upd


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


# ---- the central side's tool --------------------------------------------------------------------------
CSV_COLUMNS = ("vrm", "list", "reason", "priority", "action", "added", "reviewed", "expires")


def _time(text: str, what: str, line: int) -> dt.datetime:
    try:
        v = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise HotlistError(f"line {line}: {what} {text!r} is not an ISO 8601 time") from None
    if v.tzinfo is None:
        v = v.replace(tzinfo=dt.UTC)
    return v


def entries_from_csv(text: str, secret: bytes, now: dt.datetime | None = None) -> list[Entry]:
    """Rows `vrm,list,reason,priority[,action,added,reviewed,expires]`; added defaults to now, reviewed to
    added, expires to reviewed + 28 days. Each VRM is hashed with the match key and sealed with the seal key."""
    now = now or dt.datetime.now(dt.UTC)
    mk, sk = match_key_from_secret(secret), AESGCM(seal_key_from_secret(secret))
    try:
        return _entries(csv.DictReader(io.StringIO(text)), mk, sk, now)
    except csv.Error as e:
        raise HotlistError(f"not CSV: {e}") from None


def _entries(rows: csv.DictReader, mk: bytes, sk: AESGCM, now: dt.datetime) -> list[Entry]:
    missing = [c for c in CSV_COLUMNS[:4] if c not in (rows.fieldnames or [])]
    if missing:
        raise HotlistError(f"CSV needs the columns {', '.join(CSV_COLUMNS[:4])} (missing {', '.join(missing)}); "
                           f"optional: {', '.join(CSV_COLUMNS[4:])}")
    out: dict[str, Entry] = {}
    for n, row in enumerate(rows, start=2):
        try:
            vrm = normalise_vrm(row.get("vrm") or "")
            added = _time(row["added"], "added", n) if row.get("added") else now
            reviewed = _time(row["reviewed"], "reviewed", n) if row.get("reviewed") else added
            expires = (_time(row["expires"], "expires", n) if row.get("expires")
                       else reviewed + dt.timedelta(days=REVIEW_DAYS))
            nonce = os.urandom(12)
            sealed = base64.b64encode(nonce + sk.encrypt(nonce, vrm.encode(), b"anpr-edge hotlist")).decode()
            e = Entry(h=vrm_hash(mk, vrm), list=(row.get("list") or "").strip(),
                      reason=(row.get("reason") or "").strip(), priority=int(row.get("priority") or 0),
                      action=(row.get("action") or "").strip(), added=added, reviewed=reviewed, expires=expires,
                      sealed=sealed)
        except HotlistError as e:
            raise HotlistError(f"line {n}: {e}" if not str(e).startswith("line") else str(e)) from None
        except (ValidationError, ValueError) as e:
            msg = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
            raise HotlistError(f"line {n}: {msg}") from None
        if e.h in out:
            raise HotlistError(f"line {n}: {vrm} is listed twice")
        out[e.h] = e
    return list(out.values())


def unseal(entry: Entry, secret: bytes) -> str:
    if not entry.sealed:
        raise HotlistError("entry carries no sealed VRM")
    try:
        raw = base64.b64decode(entry.sealed, validate=True)
        return AESGCM(seal_key_from_secret(secret)).decrypt(raw[:12], raw[12:], b"anpr-edge hotlist").decode()
    except Exception:
        raise HotlistError("cannot unseal: not this deployment's secret") from None


# ---- the unit's list ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Match:
    list: str
    reason: str
    priority: int
    action: str
    fuzzy: bool
    entry: str  # first 16 hex digits of the entry's hash: names it without the VRM
    version: int

    def doc(self) -> dict:
        return {"list": self.list, "reason": self.reason, "priority": self.priority, "action": self.action,
                "fuzzy": self.fuzzy, "entry": self.entry, "version": self.version}


@dataclass(slots=True)
class HotlistStats:
    version: int = 0
    entries: int = 0
    updates_applied: int = 0
    updates_refused: int = 0
    matches: int = 0
    fuzzy_matches: int = 0
    expired_not_matched: int = 0  # reads that matched only an entry past its expiry
    last_refusal: str | None = None
    fault: str | None = None


def variants(vrm: str) -> Iterable[str]:
    """The read with each combination of confusable characters swapped (not the read itself)."""
    pos = [i for i, c in enumerate(vrm) if c in CONFUSABLE][:MAX_FUZZY_POSITIONS]
    for mask in itertools.product((False, True), repeat=len(pos)):
        if not any(mask):
            continue
        chars = list(vrm)
        for i, swap in zip(pos, mask, strict=True):
            if swap:
                chars[i] = CONFUSABLE[chars[i]]
        yield "".join(chars)


class Hotlist:
    """The list in force on a unit: verified updates applied and kept in `store` (each signed update
    since the last full list, re-verified on load), matched against every read."""

    def __init__(self, store: Path, trust: Ed25519PublicKey, match_key: bytes, *, fuzzy: bool = True,
                 clock: Callable[[], float] = time.time, on_event: Callable[..., None] | None = None) -> None:
        self.store = Path(store)
        self.trust = trust
        self.signer = key_id(trust)
        self.match_key = match_key
        self.match_id = match_key_id(match_key)
        self.fuzzy = fuzzy
        self.clock = clock
        self.on_event = on_event or (lambda *a, **k: None)
        self.stats = HotlistStats()
        self._entries: dict[str, tuple[Entry, float]] = {}  # hash -> (entry, expiry as Unix seconds)
        self._chain: list[bytes] = []  # the signed updates the list in force is made of
        self._lock = threading.Lock()
        self._load()

    # ---- updates ---------------------------------------------------------------------------------
    def apply(self, payload: bytes, source: str = "mqtt") -> dict:
        """Verify and apply one update; returns what changed. Raises HotlistError (the list in force
        stays) with the reason."""
        try:
            upd = parse_update(payload, self.trust, self.match_id)
            with self._lock:
                cur = self.stats.version
                if upd.version <= cur:
                    raise HotlistError(f"stale update: version {upd.version} is not newer than {cur} in force")
                if upd.kind == "delta" and upd.base_version != cur:
                    raise HotlistError(f"delta for version {upd.base_version}, but {cur} is in force: send a full list")
                entries = {} if upd.kind == "full" else dict(self._entries)
                removed = sum(1 for h in upd.remove if entries.pop(h, None) is not None)
                for e in upd.entries:
                    entries[e.h] = (e, e.expires.timestamp())
                chain = [payload] if upd.kind == "full" else [*self._chain, payload]
                self._persist(chain)
                self._entries, self._chain = entries, chain
                self.stats.version, self.stats.entries = upd.version, len(entries)
                self.stats.updates_applied += 1
                self.stats.fault = None
        except HotlistError as e:
            self.stats.updates_refused += 1
            self.stats.last_refusal = str(e)[:200]
            log.warning("hotlist: update from %s refused: %s", source, e)
            self.on_event("hotlist_refused", source=source, reason=str(e)[:200], version_in_force=self.stats.version)
            raise
        result = {"version": upd.version, "kind": upd.kind, "entries": len(entries), "added_or_replaced":
                  len(upd.entries), "removed": removed, "active": self.active(), "signer": self.signer}
        log.info("hotlist: %s update to version %d applied from %s: %d entries (%d active)", upd.kind, upd.version,
                 source, len(entries), result["active"])
        self.on_event("hotlist_update", source=source, **result)
        return result

    def load_file(self, path: Path) -> dict | None:
        """A signed list file (from `hotlist build`): applied when newer than the list in force."""
        try:
            payload = Path(path).read_bytes()
        except OSError as e:
            raise HotlistError(f"{path}: cannot read: {e.strerror or e}") from None
        upd = parse_update(payload, self.trust, self.match_id)
        if upd.version <= self.stats.version:
            log.info("hotlist: %s is version %d, %d already in force", path, upd.version, self.stats.version)
            return None
        return self.apply(payload, source=str(path))

    def _persist(self, chain: list[bytes]) -> None:
        tmp = self.store.with_name(self.store.name + ".tmp")
        try:
            self.store.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(b"\n".join(chain) + b"\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.store)
        except OSError as e:
            raise HotlistError(f"cannot store the list: {e.strerror or e}") from None

    def _load(self) -> None:
        if not self.store.exists():
            return
        try:
            lines = [ln for ln in self.store.read_bytes().splitlines() if ln.strip()]
        except OSError as e:
            self.stats.fault = f"hotlist store unreadable: {e.strerror or e}; no list in force"
            log.error("hotlist: %s", self.stats.fault)
            return
        entries: dict[str, tuple[Entry, float]] = {}
        version = 0
        try:
            for ln in lines:
                upd = parse_update(ln, self.trust, self.match_id)
                if upd.kind == "full":
                    entries = {}
                elif upd.base_version != version:
                    raise HotlistError(f"stored delta {upd.version} does not follow {version}")
                for h in upd.remove:
                    entries.pop(h, None)
                for e in upd.entries:
                    entries[e.h] = (e, e.expires.timestamp())
                version = upd.version
        except HotlistError as e:
            self.stats.fault = f"hotlist store {self.store} refused on load ({e}); no list in force until an update"
            log.error("hotlist: %s", self.stats.fault)
            return
        self._entries, self._chain = entries, list(lines)
        self.stats.version, self.stats.entries = version, len(entries)
        log.info("hotlist: version %d in force, %d entries (%d active)", version, len(entries), self.active())

    # ---- matching --------------------------------------------------------------------------------
    def active(self) -> int:
        now = self.clock()
        with self._lock:
            return sum(1 for _, exp in self._entries.values() if exp > now)

    def match(self, vrm: str) -> list[Match]:
        """Entries the read names: its own VRM, and (fuzzy) each confusable variant. Expired entries
        never match (counted)."""
        try:
            v = normalise_vrm(vrm)
        except HotlistError:
            return []
        now = self.clock()
        out: list[Match] = []
        expired = False
        with self._lock:
            if not self._entries:
                return []
            cands = [(v, False)] + ([(x, True) for x in variants(v)] if self.fuzzy else [])
            for text, fuzzy in cands:
                h = hmac.new(self.match_key, text.encode("ascii"), hashlib.sha256).hexdigest()
                hit = self._entries.get(h)
                if hit is None:
                    continue
                e, exp = hit
                if exp <= now:
                    expired = True
                    continue
                out.append(Match(e.list, e.reason, e.priority, e.action, fuzzy, h[:16], self.stats.version))
            if expired and not out:
                self.stats.expired_not_matched += 1
            self.stats.matches += bool(out)
            self.stats.fuzzy_matches += bool(out) and all(m.fuzzy for m in out)
        out.sort(key=lambda m: (m.fuzzy, m.priority))
        return out

    def health(self) -> dict:
        s = self.stats
        active = self.active()
        return {"version": s.version, "entries": s.entries, "active": active, "expired": s.entries - active,
                "updates_applied": s.updates_applied, "updates_refused": s.updates_refused, "matches": s.matches,
                "fuzzy_matches": s.fuzzy_matches, "expired_not_matched": s.expired_not_matched,
                "last_refusal": s.last_refusal, "fault": s.fault}


@dataclass(slots=True)
class Summary:
    """What `hotlist show` prints: no VRM unless revealed."""

    version: int
    kind: str
    issued_at: str
    signer: str | None
    match_key_id: str
    entries: int
    removed: int
    by_list: dict[str, int] = field(default_factory=dict)
    expired: int = 0
    expiring_7d: int = 0
    next_expiry: str | None = None
    sealed: int = 0


def summarise(upd: Update, now: dt.datetime | None = None) -> Summary:
    now = now or dt.datetime.now(dt.UTC)
    by: dict[str, int] = {}
    for e in upd.entries:
        by[e.list] = by.get(e.list, 0) + 1
    live = [e.expires for e in upd.entries if e.expires > now]
    return Summary(upd.version, upd.kind, _iso(upd.issued_at), upd.signature.key_id if upd.signature else None,
                   upd.match_key_id, len(upd.entries), len(upd.remove), dict(sorted(by.items())),
                   sum(1 for e in upd.entries if e.expires <= now),
                   sum(1 for x in live if x <= now + dt.timedelta(days=7)), _iso(min(live)) if live else None,
                   sum(1 for e in upd.entries if e.sealed))


# ---- keys and lists for the central side (`anpr-edge hotlist keygen|build`) -----------------------------
KEY_FILES = {"secret": "hotlist-secret.key", "match": "hotlist-match.key", "signing": "hotlist-signing.pem",
             "trust": "hotlist-signing.pub.pem"}


def keygen(folder: Path) -> dict[str, Path]:
    """A deployment's hotlist keys: the secret and the signing key stay central; the match key and the
    signing key's public half go to every unit. Never overwrites."""
    from agent.signing import new_key, private_pem, public_pem

    paths = {k: Path(folder) / v for k, v in KEY_FILES.items()}
    there = [str(p) for p in paths.values() if p.exists()]
    if there:
        raise HotlistError(f"not overwriting {', '.join(there)}")
    secret = os.urandom(KEY_BYTES)
    write_secret_file(paths["secret"], secret)
    write_secret_file(paths["match"], match_key_from_secret(secret))
    key = new_key()
    fd = os.open(paths["signing"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem(key))
    paths["trust"].write_bytes(public_pem(key.public_key()))
    return paths


def build(entries: list[Entry], secret: bytes, key: Ed25519PrivateKey, version: int,
          base: Update | None = None, now: dt.datetime | None = None) -> tuple[bytes, bytes | None]:
    """The signed full list and, given the full list units hold now (`base`), the signed delta from it
    to this one under the same version."""
    now = now or dt.datetime.now(dt.UTC)
    mid = match_key_id(match_key_from_secret(secret))
    if base is not None and base.kind != "full":
        raise HotlistError("--delta-from needs a full list file (each build writes one)")
    if base is not None and base.match_key_id != mid:
        raise HotlistError(f"{base.match_key_id} is another deployment's list (this key: {mid})")
    if base is not None and version <= base.version:
        raise HotlistError(f"version {version} must be above the base list's {base.version}")
    try:
        full = Update(kind="full", version=version, issued_at=now, match_key_id=mid, entries=entries)
    except ValidationError as e:
        raise HotlistError(f"cannot build the list: {e.errors()[0]['msg']}") from None
    delta = None
    if base is not None:
        def same(a: Entry, b: Entry) -> bool:
            return a.model_dump(exclude={"sealed"}) == b.model_dump(exclude={"sealed"})

        old = {e.h: e for e in base.entries}
        new = {e.h: e for e in entries}
        changed = [e for h, e in new.items() if h not in old or not same(e, old[h])]
        removed = sorted(h for h in old if h not in new)
        delta = sign_update(Update(kind="delta", version=version, base_version=base.version, issued_at=now,
                                   match_key_id=mid, entries=changed, remove=removed), key)
    return sign_update(full, key), delta
