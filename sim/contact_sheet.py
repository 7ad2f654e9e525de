"""A grid of simulated frames with their ground truth drawn on, for a person to judge realism."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from sim.camera import SimCamera, SimCameraSettings
from sim.dataset import auto_exposure
from sim.scene import Conditions, PlateTruth

SHEET_CONDITIONS = ("day", "day", "overcast", "glare", "rain", "dusk", "night", "night", "night_rain")


def draw_truth(img: np.ndarray, plates: list[PlateTruth]) -> np.ndarray:
    out = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img.copy()
    for p in plates:
        poly = np.round(np.array(p.polygon)).astype(np.int32)
        cv2.polylines(out, [poly], True, (0, 255, 0), 2, cv2.LINE_AA)
        x, y, _w, _h = p.bbox
        label = f"{p.display}  {p.char_height_px:.0f}px  {p.speed_kmh:.0f}km/h"
        cv2.putText(out, label, (x, max(14, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(out, label, (x, max(14, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 255), 1, cv2.LINE_AA)
    return out


def interesting_frame(cond_name: str, seed: int, colour: bool = False, max_frames: int = 600):
    """First frame, after traffic has built up, with a whole plate well inside the frame."""
    settings = SimCameraSettings(seed=seed, conditions=cond_name, colour=colour, rate_per_hour=1400)
    cam = SimCamera(settings)
    cond = Conditions.preset(cond_name)
    rng = np.random.default_rng(seed)
    exp = auto_exposure(cond, 15.0, rng, error_stops=0.0)
    cam.set_controls(exposure_us=exp.exposure_us, gain=exp.gain, ir_level=exp.ir_level)
    best = None
    for _ in range(max_frames):
        f = cam.capture()
        plates = [p for p in f.truth.plates if p.in_frame and p.bbox[1] > f.height * 0.3]
        if plates:
            return f
        best = f
    return best


def make_contact_sheet(out: Path, seed: int = 0, cols: int = 3, tile_w: int = 480) -> Path:
    tiles = []
    for i, cond in enumerate(SHEET_CONDITIONS):
        f = interesting_frame(cond, seed + i, colour=(i == 1))
        img = draw_truth(f.pixels, f.truth.plates)
        cv2.putText(img, f"{cond}  exp {f.exposure_us}us  gain {f.gain:.1f}  IR {f.ir_level:.1f}", (12, 34),
                    cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 5, cv2.LINE_AA)
        cv2.putText(img, f"{cond}  exp {f.exposure_us}us  gain {f.gain:.1f}  IR {f.ir_level:.1f}", (12, 34),
                    cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2, cv2.LINE_AA)
        tiles.append(cv2.resize(img, (tile_w, int(tile_w * img.shape[0] / img.shape[1])), interpolation=cv2.INTER_AREA))
    rows = math.ceil(len(tiles) / cols)
    th, tw = tiles[0].shape[:2]
    sheet = np.zeros((rows * th, cols * tw, 3), np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = t
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), sheet):
        raise OSError(f"could not write {out}")
    return out
