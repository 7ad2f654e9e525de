"""Remote commands (`.../cmd/{name}` -> `.../cmd/{name}/reply`): validated, audited, never fatal.

Commands: `ping`, `snapshot` (publishes a current overview), `config/get`, `config/set` (only fields
marked safe to change remotely; validated, persisted, applied without restart), `hotlist/update`
(the signed list or delta; agent.hotlist verifies it), `hotlist/get`, `restart`.

A command must be fresh: a retained message (the broker replays it to every new session, so a retained
`restart` would restart the unit forever) is refused, `restart` needs a `request_id` and an `issued_at`
(Unix seconds) within MAX_AGE_S of the unit's clock, and a request id seen before is refused as a replay.
Payloads are bounded in size and nesting depth; numbers must be finite and of the field's own type
("0.5" or true are not a threshold). Every refusal is answered and audited.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
import tomllib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.config import DeviceConfig, from_mapping

audit = logging.getLogger("anpr_edge.audit")

# Fields an operator may change over MQTT; everything else needs a site visit / provisioning.
SAFE_FIELDS: dict[str, tuple[str, str]] = {
    "recogniser.min_confidence": ("recogniser", "min_confidence"),
    "uplink.health_interval_s": ("uplink", "health_interval_s"),
    "uplink.backlog_rate": ("uplink", "backlog_rate"),
    "camera.max_speed_kmh": ("camera", "max_speed_kmh"),
    "logging.level": ("logging", "level"),
    "evidence.privacy_masks": ("evidence", "privacy_masks"),
}
MAX_PAYLOAD = 64 * 1024
MAX_DEPTH = 8  # nesting of JSON objects and arrays; the deepest real command (privacy masks) needs 4
MAX_AGE_S = 300.0  # an issued_at older (or further ahead) than this is stale
SEEN_IDS = 1024  # request ids remembered for replay detection


class _Req(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str | None = Field(None, max_length=64)
    issued_at: float | None = Field(None, description="Unix seconds when the request was made")


class ConfigSetReq(_Req):
    values: dict[str, Any] = Field(min_length=1, max_length=len(SAFE_FIELDS))


class Commands:
    def __init__(self, config: DeviceConfig, config_path: Path | None = None,
                 on_change: Callable[[DeviceConfig], None] | None = None,
                 snapshot: Callable[[], dict] | None = None, restart: Callable[[], None] | None = None,
                 hotlist=None, audit_log=None) -> None:
        self.config = config
        self.hotlist = hotlist  # agent.hotlist.Hotlist, when the unit has one
        self.audit_log = audit_log  # agent.audit.AuditLog: every command, answered or refused
        self.config_path = config_path
        self.on_change = on_change
        self.snapshot_fn = snapshot
        self.restart_fn = restart
        self._seen: OrderedDict[str, None] = OrderedDict()

    def __call__(self, name: str, payload: bytes, retained: bool = False) -> dict:
        t0 = time.time()
        try:
            if retained:
                reply = {"ok": False, "error": "retained command ignored: commands must be sent without the "
                                               "retain flag"}
            else:
                reply = self._dispatch(name, payload)
        except ValidationError as e:
            reply = {"ok": False, "error": "invalid request: " + "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'payload'}: {err['msg']}" for err in e.errors())}
        except Exception as e:  # never fatal, always audited
            audit.exception("command %s: internal error", _safe(name))
            reply = {"ok": False, "error": f"internal error: {type(e).__name__}"}
        rid = reply.pop("_request_id", None)
        if rid is not None:
            reply["request_id"] = rid
        audit.info("command %s from broker: ok=%s %s (%.0f ms)", _safe(name), reply.get("ok"),
                   reply.get("error", ""), (time.time() - t0) * 1000)
        if self.audit_log is not None:
            self.audit_log.record("command", name=_safe(name), ok=bool(reply.get("ok")),
                                  error=str(reply.get("error", ""))[:200] or None, request_id=rid)
        return reply

    def _parse(self, payload: bytes, model: type[_Req]) -> _Req:
        if len(payload) > MAX_PAYLOAD:
            raise _Bad(f"payload too large ({len(payload)} bytes, at most {MAX_PAYLOAD})")
        if not payload.strip():
            req = model()
        else:
            depth = _nesting(payload)
            if depth > MAX_DEPTH:
                raise _Bad(f"payload nested {depth} deep, at most {MAX_DEPTH}")
            try:
                data = json.loads(payload, parse_constant=_no_constant)
            except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
                raise _Bad(f"payload is not JSON: {e}") from None
            if not isinstance(data, dict):
                raise _Bad("payload must be a JSON object")
            if not _finite(data):
                raise _Bad("numbers must be finite (no NaN, Infinity or overflow)")
            req = model.model_validate(data)
        self._check_fresh(req)
        return req

    def _check_fresh(self, req: _Req) -> None:
        if req.issued_at is not None and abs(time.time() - req.issued_at) > MAX_AGE_S:
            raise _Bad(f"stale request: issued_at {req.issued_at:.0f} is more than {MAX_AGE_S:.0f} s from now")
        if req.request_id is not None:
            if req.request_id in self._seen:
                raise _Bad(f"replayed request_id {_safe(req.request_id)!r}")
            self._seen[req.request_id] = None
            while len(self._seen) > SEEN_IDS:
                self._seen.popitem(last=False)

    def _dispatch(self, name: str, payload: bytes) -> dict:
        try:
            if name == "ping":
                req = self._parse(payload, _Req)
                return {"ok": True, "result": {"pong": time.time()}, "_request_id": req.request_id}
            if name == "config/get":
                req = self._parse(payload, _Req)
                return {"ok": True, "result": self.safe_view(), "_request_id": req.request_id}
            if name == "config/set":
                req = self._parse(payload, ConfigSetReq)
                assert isinstance(req, ConfigSetReq)
                return {**self._config_set(req.values), "_request_id": req.request_id}
            if name == "snapshot":
                req = self._parse(payload, _Req)
                if self.snapshot_fn is None:
                    return {"ok": False, "error": "no camera running", "_request_id": req.request_id}
                return {"ok": True, "result": self.snapshot_fn(), "_request_id": req.request_id}
            if name in ("hotlist/update", "hotlist/get"):
                return self._hotlist(name, payload)
            if name == "restart":
                req = self._parse(payload, _Req)
                if req.request_id is None or req.issued_at is None:
                    return {"ok": False, "error": "restart needs a request_id and issued_at (Unix seconds)",
                            "_request_id": req.request_id}
                if self.restart_fn is None:
                    return {"ok": False, "error": "restart is not available", "_request_id": req.request_id}
                self.restart_fn()
                return {"ok": True, "result": "restarting", "_request_id": req.request_id}
            return {"ok": False, "error": f"unknown command {_safe(name)!r}; known: ping, snapshot, config/get, "
                                          f"config/set, hotlist/update, hotlist/get, restart"}
        except _Bad as e:
            return {"ok": False, "error": str(e)}

    def _hotlist(self, name: str, payload: bytes) -> dict:
        """`hotlist/update`: the payload is the signed update itself (its version makes a replay stale);
        `hotlist/get`: the version and counts in force (never an entry)."""
        from agent.hotlist import HotlistError

        if self.hotlist is None:
            return {"ok": False, "error": "no hotlist on this unit (hotlist.enabled is false)"}
        if name == "hotlist/get":
            req = self._parse(payload, _Req)
            return {"ok": True, "result": self.hotlist.health(), "_request_id": req.request_id}
        try:
            return {"ok": True, "result": self.hotlist.apply(payload)}
        except HotlistError as e:
            return {"ok": False, "error": f"hotlist update refused: {e}",
                    "result": {"version_in_force": self.hotlist.stats.version}}

    def safe_view(self) -> dict:
        d = self.config.model_dump(mode="json")
        return {k: d[a][b] for k, (a, b) in SAFE_FIELDS.items()}

    def _config_set(self, values: dict[str, Any]) -> dict:
        unknown = [k for k in values if k not in SAFE_FIELDS]
        if unknown:
            return {"ok": False, "error": f"not changeable remotely: {', '.join(map(_safe, unknown))}; "
                                          f"allowed: {', '.join(SAFE_FIELDS)}"}
        data = self.config.model_dump(mode="json", by_alias=True)
        for k, v in values.items():
            a, b = SAFE_FIELDS[k]
            why = _loose(v, data[a][b])
            if why:
                return {"ok": False, "error": f"{k}: {why}"}
            data[a][b] = v
        try:
            new = from_mapping(data, "config/set", environ={})
        except Exception as e:  # ConfigError: report which field and why
            return {"ok": False, "error": str(e).replace("\n", " ")}
        if self.config_path is not None:
            try:
                _persist(self.config_path, {k: values[k] for k in values})
            except OSError as e:
                return {"ok": False, "error": f"cannot persist configuration: {e.strerror or e}"}
        if self.audit_log is not None:
            self.audit_log.record("config_change", changed={k: values[k] for k in values},
                                  persisted=self.config_path is not None)
        self.config = new
        if self.on_change:
            self.on_change(new)
        return {"ok": True, "result": self.safe_view()}


class _Bad(Exception):
    pass


def _safe(s: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in s)[:80]


def _nesting(payload: bytes) -> int:
    """Deepest nesting of objects and arrays, outside strings: checked before parsing, which recurses."""
    depth = deepest = 0
    in_str = esc = False
    for ch in payload.decode("utf-8", errors="replace"):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number a unit accepts")


def _finite(v: Any) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, dict):
        return all(_finite(x) for x in v.values())
    if isinstance(v, list):
        return all(_finite(x) for x in v)
    return True


def _loose(new: Any, current: Any) -> str | None:
    """Why `new` is not of the type of the field's current value (None when it is): JSON numbers for
    numbers (not true/false, not strings), strings for strings, lists for lists."""
    number = (int, float)
    if isinstance(current, bool):
        return None if isinstance(new, bool) else f"expected true or false, got {json.dumps(new)[:40]}"
    if isinstance(current, number) and current is not None:
        if isinstance(new, bool) or not isinstance(new, number):
            return f"expected a number, got {json.dumps(new)[:40]}"
    elif isinstance(current, str) and not isinstance(new, str):
        return f"expected a string, got {json.dumps(new)[:40]}"
    elif isinstance(current, list) and not isinstance(new, list):
        return f"expected a list, got {json.dumps(new)[:40]}"
    return None


def _persist(path: Path, values: dict[str, Any]) -> None:
    """Rewrite the TOML with the changed safe fields: the whole new file is parsed and validated
    before it replaces the old one (atomically, fsynced); the old one is kept as `<name>.prev`."""
    from agent.config import ConfigError

    data = tomllib.loads(path.read_text(encoding="utf-8"))
    for k, v in values.items():
        a, b = SAFE_FIELDS[k]
        data.setdefault(a, {})[b] = v
    text = to_toml(data)
    try:
        from_mapping(tomllib.loads(text), str(path), environ={})
    except (tomllib.TOMLDecodeError, ConfigError) as e:
        raise OSError(f"the new configuration would not load: {e}") from None
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    prev = path.with_name(path.name + ".prev")
    with contextlib.suppress(OSError):  # keeping the old copy is a courtesy; the replace is what matters
        prev.write_bytes(path.read_bytes())
    os.replace(tmp, path)


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    lines, tables = [], []
    for k, v in data.items():
        if isinstance(v, dict):
            tables.append((k, v))
        else:
            lines.append(f"{k} = {json.dumps(v)}")
    out = (f"[{prefix}]\n" if prefix and lines else "") + "\n".join(lines) + ("\n" if lines else "")
    for k, v in tables:
        out += "\n" + to_toml(v, f"{prefix}.{k}" if prefix else k)
    return out
