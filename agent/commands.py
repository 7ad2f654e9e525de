"""Remote commands (`.../cmd/{name}` -> `.../cmd/{name}/reply`): validated, audited, never fatal.

Commands: `ping`, `snapshot` (publishes a current overview), `config/get`, `config/set` (only fields
marked safe to change remotely; validated, persisted, applied without restart), `restart`.
"""

from __future__ import annotations

import json
import logging
import time
import tomllib
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


class _Req(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str | None = Field(None, max_length=64)


class ConfigSetReq(_Req):
    values: dict[str, Any] = Field(min_length=1, max_length=len(SAFE_FIELDS))


class Commands:
    def __init__(self, config: DeviceConfig, config_path: Path | None = None,
                 on_change: Callable[[DeviceConfig], None] | None = None,
                 snapshot: Callable[[], dict] | None = None, restart: Callable[[], None] | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.on_change = on_change
        self.snapshot_fn = snapshot
        self.restart_fn = restart

    def __call__(self, name: str, payload: bytes) -> dict:
        t0 = time.time()
        try:
            reply = self._dispatch(name, payload)
        except ValidationError as e:
            reply = {"ok": False, "error": "invalid request: " + "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'payload'}: {err['msg']}" for err in e.errors())}
        rid = reply.pop("_request_id", None)
        if rid is not None:
            reply["request_id"] = rid
        audit.info("command %s from broker: ok=%s %s (%.0f ms)", _safe(name), reply.get("ok"),
                   reply.get("error", ""), (time.time() - t0) * 1000)
        return reply

    def _parse(self, payload: bytes, model: type[_Req]) -> _Req:
        if len(payload) > MAX_PAYLOAD:
            raise _Bad(f"payload too large ({len(payload)} bytes, at most {MAX_PAYLOAD})")
        if not payload.strip():
            return model()
        try:
            data = json.loads(payload)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise _Bad(f"payload is not JSON: {e}") from None
        if not isinstance(data, dict):
            raise _Bad("payload must be a JSON object")
        return model.model_validate(data)

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
            if name == "restart":
                req = self._parse(payload, _Req)
                if self.restart_fn is None:
                    return {"ok": False, "error": "restart is not available", "_request_id": req.request_id}
                self.restart_fn()
                return {"ok": True, "result": "restarting", "_request_id": req.request_id}
            return {"ok": False, "error": f"unknown command {_safe(name)!r}; known: ping, snapshot, config/get, "
                                          f"config/set, restart"}
        except _Bad as e:
            return {"ok": False, "error": str(e)}

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
        self.config = new
        if self.on_change:
            self.on_change(new)
        return {"ok": True, "result": self.safe_view()}


class _Bad(Exception):
    pass


def _safe(s: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in s)[:80]


def _persist(path: Path, values: dict[str, Any]) -> None:
    """Rewrite the TOML with the changed safe fields (atomic replace)."""
    import os

    data = tomllib.loads(path.read_text(encoding="utf-8"))
    for k, v in values.items():
        a, b = SAFE_FIELDS[k]
        data.setdefault(a, {})[b] = v
    tmp = path.with_suffix(".tmp")
    tmp.write_text(to_toml(data), encoding="utf-8")
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
