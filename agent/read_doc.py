"""The read document (schema anpr.read.v1): what the central system receives for every read.

`schemas/read.v1.json` is generated from `Read` (`anpr-edge schema --out schemas/read.v1.json`) and
a test keeps it up to date. Field meanings are in docs/read-v1.md.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import time
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

SCHEMA_ID = "anpr.read.v1"


class Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Clock(Doc):
    source: Literal["ntp", "gnss", "none"] = Field(description="Where the unit's time came from.")
    synchronised: bool = Field(description="Whether that source was synchronised at capture.")
    offset_ms: float | None = Field(None, description="Estimated offset from true UTC, when known.")


class Location(Doc):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Image(Doc):
    jpeg_b64: str = Field(description="The JPEG, base64; empty when the unit shed the image to keep the read "
                                      "(storage full): sha256 and bytes still name it.")
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    bytes: int = Field(gt=0, description="Size of the JPEG in bytes.")
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]

    @staticmethod
    def from_jpeg(data: bytes, width: int, height: int) -> Image:
        return Image(jpeg_b64=base64.b64encode(data).decode("ascii"), width=width, height=height, bytes=len(data),
                     sha256=hashlib.sha256(data).hexdigest())

    def jpeg(self) -> bytes:
        return base64.b64decode(self.jpeg_b64, validate=True)


class Models(Doc):
    detector: str
    reader: str
    outline: str | None = Field(None, description="The outline refiner, where the unit has one.")


class Signature(Doc):
    alg: Literal["Ed25519"] = "Ed25519"
    key_id: str = Field(description="First 16 hex digits of the SHA-256 of the raw public key.")
    value: str = Field(description="Base64 signature over the canonical document (see docs).")


class HotlistMatch(Doc):
    list: str = Field(min_length=1, max_length=64, description="The list the entry is on.")
    reason: str = Field(min_length=1, max_length=64)
    priority: int = Field(ge=1, le=9, description="1 most urgent.")
    action: str = Field("", max_length=200)
    fuzzy: bool = Field(description="Matched a confusable variant of the read (0/O, 1/I, 5/S, 8/B, 2/Z), not the read.")
    entry: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$",
                                description="First 16 hex digits of the entry's keyed hash.")]
    version: int = Field(ge=1, description="Hotlist version in force.")


class Read(Doc):
    schema_: Literal["anpr.read.v1"] = Field(SCHEMA_ID, alias="schema")
    read_id: Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
                                  description="UUIDv7: unique and time-ordered; the de-duplication key.")]
    site_id: str = Field(min_length=1, max_length=64)
    camera_id: str = Field(min_length=1, max_length=64)
    lane: int | None = Field(None, ge=0)
    captured_at: dt.datetime = Field(description="UTC, millisecond precision, e.g. 2026-11-26T11:54:46.123Z.")
    clock: Clock
    location: Location | None = None
    vrm: Annotated[str, Field(pattern=r"^[A-Z0-9]{1,12}$", description="As read, upper case, no spaces.")]
    confidence: float = Field(ge=0, le=1)
    char_confidences: list[Annotated[float, Field(ge=0, le=1)]]
    format: Literal["gb_current", "gb_prefix", "gb_suffix", "gb_dateless", "ni", "foreign", "unknown"]
    plate_colour: Literal["white", "yellow", "unknown"] = "unknown"
    direction: Literal["towards", "away", "unknown"] = "unknown"
    frames: int = Field(ge=1, description="Frames the read was voted over.")
    bbox: Annotated[list[int], Field(min_length=4, max_length=4, description="x, y, w, h in the overview frame.")]
    plate_patch: Image
    overview: Image
    model: Models
    hotlist: list[HotlistMatch] | None = Field(None, description="Hotlist entries the read matched (and an alert "
                                                                  "went out on .../alert); null when none.")
    signature: Signature | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("captured_at")
    @classmethod
    def _utc(cls, v: dt.datetime) -> dt.datetime:
        if v.tzinfo is None:
            raise ValueError("captured_at must carry a time zone (UTC)")
        v = v.astimezone(dt.UTC)
        return v.replace(microsecond=(v.microsecond // 1000) * 1000)

    @field_serializer("captured_at")
    def _ser_time(self, v: dt.datetime) -> str:
        return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=False).encode("utf-8")


class Alert(Doc):
    """A hotlist match, published on `.../alert` ahead of any backlog (schema anpr.alert.v1)."""

    schema_: Literal["anpr.alert.v1"] = Field("anpr.alert.v1", alias="schema")
    alert_id: Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")]
    read_id: str = Field(description="The read that matched (its document follows on .../read).")
    site_id: str = Field(min_length=1, max_length=64)
    camera_id: str = Field(min_length=1, max_length=64)
    captured_at: dt.datetime
    raised_at: dt.datetime = Field(description="When the unit decided the read and raised the alert (UTC).")
    vrm: Annotated[str, Field(pattern=r"^[A-Z0-9]{1,12}$")]
    confidence: float = Field(ge=0, le=1)
    matches: list[HotlistMatch] = Field(min_length=1)
    plate_patch: Image
    overview: Image
    signature: Signature | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    _utc = field_validator("captured_at", "raised_at")(Read._utc.__func__)

    @field_serializer("captured_at", "raised_at")
    def _ser_time(self, v: dt.datetime) -> str:
        return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=False).encode("utf-8")


def uuid7(unix_ms: int | None = None, rand: int | None = None) -> str:
    """RFC 9562 UUIDv7: 48-bit Unix milliseconds, then 74 random bits (given, for reproducible ids)."""
    ms = int(time.time() * 1000) if unix_ms is None else int(unix_ms)
    rand = int.from_bytes(os.urandom(10), "big") if rand is None else rand
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def json_schema(kind: str = "read") -> dict:
    """The JSON Schema of the read (anpr.read.v1) or alert (anpr.alert.v1) document."""
    s = (Alert if kind == "alert" else Read).model_json_schema(by_alias=True, mode="serialization")
    s["$id"] = f"https://anpr-edge/schemas/{kind}.v1.json"
    s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return s
