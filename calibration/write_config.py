"""Write calibration suggestions (capture region, lane polygons) into the configuration file."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from agent.config import from_mapping
from agent.uplink.commands import to_toml


def write_geometry(path: Path, suggested: dict) -> None:
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    geo = data.setdefault("geometry", {})
    if suggested.get("capture_region"):
        geo["capture_region"] = suggested["capture_region"]
    geo["lanes"] = suggested.get("lanes", [])
    from_mapping(data, str(path), environ={})  # still valid
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(to_toml(data), encoding="utf-8")
    os.replace(tmp, path)
