"""The device configuration: one TOML file validated by pydantic, overridable by ANPR_EDGE_* variables.

Environment variables name a field by its path with double underscores, e.g.
`ANPR_EDGE_UPLINK__BROKER=mqtts://broker:8883` or `ANPR_EDGE_CAMERA__FPS=30`; values are parsed as
TOML values when they can be (numbers, booleans, arrays), else taken as strings.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.recognise.consensus import DEFAULT_VIEWS, VIEWS

# Reads at or above this calibrated confidence are published: on held-out simulated scenes and on the
# calibration's own scenes at least 99.5 % of the single-frame reads at or above it were exactly right
# (models/reader.md, agent/recognise/confidence.py).
DEFAULT_MIN_CONFIDENCE = 0.95

ENV_PREFIX = "ANPR_EDGE_"
DEFAULT_PATH = Path("/etc/anpr-edge/config.toml")

Point = tuple[float, float]
Polygon = Annotated[list[Point], Field(min_length=3)]
# Mirrors sim.scene.PRESETS (a test keeps them equal); agent must not import the simulator.
ConditionName = Literal["day", "overcast", "dusk", "night", "rain", "glare", "night_rain"]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class Site(Strict):
    id: Identifier = Field(description="Site identifier, used in MQTT topics.")
    name: str = Field("", description="Human-readable site name.")
    latitude: float | None = Field(None, ge=-90, le=90, description="Fixed location when there is no GNSS.")
    longitude: float | None = Field(None, ge=-180, le=180)


class SimSource(Strict):
    seed: int = 0
    conditions: ConditionName = "day"
    mount_height_m: float = Field(5.0, gt=0.5, le=30)
    capture_distance_m: float = Field(14.0, gt=1, le=100)
    focal_length_mm: float = Field(12.0, gt=1, le=300)
    pixel_pitch_um: float = Field(3.0, gt=0.5, le=20)
    rate_per_hour: float = Field(900.0, ge=0, le=5000, description="Vehicles per hour per lane.")
    foreign_rate: float = Field(0.02, ge=0, le=1)
    realtime: bool = True
    defocus_px: float = Field(0.0, ge=0, le=20, description="Simulated lens defocus (blur sigma, px).")
    ir_power: float = Field(1.0, ge=0, le=4, description="Simulated illuminator strength (1 = nominal).")
    pan_deg: float | None = Field(None, ge=-60, le=60, description="Aim override; default: at the capture point.")
    tilt_deg: float | None = Field(None, ge=-10, le=89)


class Camera(Strict):
    id: Identifier = Field(description="Camera identifier, used in MQTT topics.")
    backend: Literal["sim", "picamera2", "opencv"] = "sim"
    source: str = Field("", description="opencv: device index, file, folder or stream URL.")
    width: int = Field(1280, ge=160, le=8192)
    height: int = Field(720, ge=120, le=8192)
    fps: float = Field(25.0, gt=0, le=120)
    colour: bool = False
    exposure_us: int = Field(1000, ge=10, le=100_000, description="Starting shutter; exposure control adjusts it.")
    gain: float = Field(1.0, ge=1.0, le=64.0)
    max_speed_kmh: float = Field(130.0, gt=0, le=300, description="Caps the shutter for <= 1.5 px motion blur.")
    sim: SimSource = Field(default_factory=SimSource)


class Illuminator(Strict):
    backend: Literal["none", "sim", "gpio", "serial"] = "none"
    gpio_pin: int = Field(18, ge=0, le=40)
    serial_port: str = "/dev/ttyUSB0"
    baudrate: int = Field(9600, ge=1200, le=921_600)


class Gnss(Strict):
    backend: Literal["none", "serial"] = "none"
    serial_port: str = "/dev/ttyACM0"
    baudrate: int = Field(9600, ge=1200, le=921_600)


class Recogniser(Strict):
    models_dir: Path | None = Field(None, description="Folder with the models; unset: the shipped models.")
    tile: bool = Field(False, description="Also run the detector on tiles of frames over 2.5x its input "
                                          "(slower; for very large frames with small plates).")
    magnify: bool = Field(True, description="Look at images up to about 800x600 at twice the scale (any "
                                            "up to 1024x768 at least at its own), in one run of the finder "
                                            "exported at 768x1024 (finds their plates under 30 px wide; "
                                            "the unit's own 1280x720 frames are never magnified).")
    threads: int = Field(1, ge=1, le=16)
    min_confidence: float = Field(DEFAULT_MIN_CONFIDENCE, ge=0, le=1,
                                  description="Reads below this calibrated confidence are not published.")
    views: int = Field(DEFAULT_VIEWS, ge=1, le=len(VIEWS),
                       description="Most crops of each plate read and compared (2 when the first two agree).")


class Uplink(Strict):
    broker: str = Field("mqtt://127.0.0.1:1883", pattern=r"^mqtts?://[^\s/:]+(:\d{1,5})?/?$")
    mqtt_version: Literal["5", "3.1.1"] = "5"
    client_id: str = ""
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password_file: Path | None = Field(None, description="File holding the password; never the password itself.")
    keepalive_s: int = Field(30, ge=5, le=3600)
    health_interval_s: float = Field(30.0, ge=1, le=3600)
    inflight: int = Field(20, ge=1, le=1000)
    backlog_rate: float = Field(200.0, gt=0, le=100_000, description="Backlog reads per second, behind live reads.")
    receipts: bool = Field(True, description="Keep each read until the central's receipt (end-to-end delivery); "
                                             "false: delete on the broker's PUBACK (a central that sends none).")
    receipt_timeout_s: float = Field(60.0, ge=1, le=3600,
                                     description="Publish a read again when no receipt came this long after its "
                                                 "PUBACK; doubled per attempt up to 10 min.")
    allow_plaintext: bool = Field(False, description="Allow mqtt:// (no TLS) to a broker that is not on this "
                                                     "machine: plates, images and any password go in clear.")

    @model_validator(mode="after")
    def _pairs(self) -> Uplink:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together (client certificate for mTLS)")
        host = self.broker.split("://", 1)[1].split(":", 1)[0].strip("/").lower()
        loopback = host in ("localhost", "::1") or host.startswith("127.")
        if self.broker.startswith("mqtt://") and not loopback and not self.allow_plaintext:
            raise ValueError(f"broker {self.broker} is plaintext MQTT to another machine: reads, images"
                             f"{' and the password' if self.username else ''} would cross the network in clear; "
                             "use mqtts:// (with ca_file) or set allow_plaintext = true")
        return self


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_s(text: str) -> float:
    """'90s', '30m', '36h', '14d' in seconds."""
    return float(text[:-1]) * DURATION_UNITS[text[-1]]


class Storage(Strict):
    state_dir: Path = Path("/var/lib/anpr-edge")
    outbox_max_bytes: int = Field(2_000_000_000, ge=1_000_000)
    max_age: str = Field("14d", pattern=r"^\d{1,6}(\.\d{1,3})?[smhd]$",
                         description="Nothing is kept longer: undelivered reads and alerts past it are deleted "
                                     "(counted as expired), e.g. '36h', '14d'.")
    images_until: Literal["puback", "receipt"] = Field(
        "puback", description="Delete a read's images once the broker has it (the broker keeps the full read "
                              "for the central) or only at the central's receipt.")

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        if isinstance(data, dict) and "outbox_max_age_h" in data:  # before storage.max_age (0.9)
            data = dict(data)
            h = data.pop("outbox_max_age_h")
            if "max_age" not in data and isinstance(h, int | float) and not isinstance(h, bool):
                data["max_age"] = f"{float(h):g}h"
        return data

    @property
    def max_age_s(self) -> float:
        return duration_s(self.max_age)

    @model_validator(mode="after")
    def _positive(self) -> Storage:
        if self.max_age_s < 60:
            raise ValueError(f"max_age {self.max_age} is under a minute")
        return self


class Hotlist(Strict):
    enabled: bool = Field(False, description="Match every read against the vehicle-of-interest list.")
    trust_key_file: Path | None = Field(None, description="The central's Ed25519 public key (PEM) that signs lists.")
    match_key_file: Path | None = Field(None, description="The deployment's match key (64 hex digits, 0600).")
    file: Path | None = Field(None, description="A signed list file loaded at start when newer than the one held.")
    fuzzy: bool = Field(True, description="Also match confusable variants (0/O, 1/I, 5/S, 8/B, 2/Z), flagged fuzzy.")

    @model_validator(mode="after")
    def _keys(self) -> Hotlist:
        if self.enabled and (self.trust_key_file is None or self.match_key_file is None):
            raise ValueError("an enabled hotlist needs trust_key_file and match_key_file")
        return self


class Audit(Strict):
    max_bytes: int = Field(4_000_000, ge=10_000, le=1_000_000_000, description="Rotate the audit log past this.")
    keep: int = Field(8, ge=1, le=100, description="Rotated audit files kept.")


class Evidence(Strict):
    patch_colour: bool = False
    privacy_masks: list[Polygon] = Field(default_factory=list, description="Image polygons blanked in overviews.")


class Geometry(Strict):
    capture_region: Polygon | None = None
    lanes: list[Polygon] = Field(default_factory=list)


class Logging(Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class DeviceConfig(Strict):
    site: Site
    camera: Camera
    illuminator: Illuminator = Field(default_factory=Illuminator)
    gnss: Gnss = Field(default_factory=Gnss)
    recogniser: Recogniser = Field(default_factory=Recogniser)
    uplink: Uplink = Field(default_factory=Uplink)
    storage: Storage = Field(default_factory=Storage)
    evidence: Evidence = Field(default_factory=Evidence)
    geometry: Geometry = Field(default_factory=Geometry)
    logging: Logging = Field(default_factory=Logging)
    hotlist: Hotlist = Field(default_factory=Hotlist)
    audit: Audit = Field(default_factory=Audit)


class ConfigError(Exception):
    """A configuration that cannot be used; `problems` lists (field, value, reason)."""

    def __init__(self, source: str, problems: list[tuple[str, Any, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: invalid configuration"]
        for loc, value, msg in problems:
            shown = _redact(loc, value)
            lines.append(f"  {loc}: {msg} (got {shown})")
        super().__init__("\n".join(lines))


_SECRET_WORDS = ("password", "secret", "token", "key")


def _redact(loc: str, value: Any) -> str:
    leaf = loc.rsplit(".", 1)[-1].lower()
    if any(w in leaf for w in _SECRET_WORDS) and not leaf.endswith("_file"):
        return "<redacted>"
    r = repr(value)
    return r if len(r) <= 80 else r[:77] + "..."


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Nested dict from ANPR_EDGE_SECTION__FIELD=value variables."""
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX):].split("__") if p]
        if not path:
            continue
        node = out
        for p in path[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                nxt = node[p] = {}
            node = nxt
        node[path[-1]] = _parse_env_value(raw)
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def from_mapping(data: dict[str, Any], source: str = "<config>",
                 environ: Mapping[str, str] | None = None) -> DeviceConfig:
    merged = _merge(data, env_overrides(os.environ if environ is None else environ))
    try:
        return DeviceConfig.model_validate(merged)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            problems.append((loc, err.get("input"), err["msg"]))
        raise ConfigError(source, problems) from None


def load(path: Path | str, environ: Mapping[str, str] | None = None) -> DeviceConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(str(path), [("(file)", str(path), f"cannot read: {e.strerror or e}")]) from None
    except UnicodeDecodeError as e:
        raise ConfigError(str(path), [("(file)", str(path), f"not UTF-8 text: {e.reason}")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(path), [("(syntax)", None, f"TOML syntax error: {e}")]) from None
    return from_mapping(data, str(path), environ)
