"""Per-plate measurements for commissioning: sharpness, character height, angle and skew, exposure
(level, contrast, saturation), whether the plate is cut by the frame edge, where it is."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from agent.recognise.detector import Detection
from agent.recognise.rectify import crop_plate

CHAR_TO_PLATE_HEIGHT = 79.0 / 111.0  # BS AU 145e: 79 mm characters on a 111 mm plate


@dataclass(frozen=True, slots=True)
class PlateMeasure:
    frame: int
    t: float
    night: bool
    exposure_us: int
    gain: float
    ir_level: float
    bbox: tuple[int, int, int, int]
    centre: tuple[float, float]
    width_px: float
    char_height_px: float
    angle_deg: float
    skew_deg: float
    sharpness: float
    level: float  # plate background (85th percentile)
    contrast: float  # p95 - p5
    saturated: float  # share of plate pixels at 250+
    at_edge: bool
    vrm: str | None
    confidence: float


def sharpness(crop: np.ndarray) -> float:
    """Edge steepness independent of size and contrast: mean gradient at the strongest edges, per
    unit of contrast, on the plate scaled to 40 px high. ~0.3+ sharp, < 0.15 visibly soft."""
    g = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    h, w = g.shape
    g = cv2.resize(g, (max(8, round(w * 40 / h)), 40), interpolation=cv2.INTER_AREA).astype(np.float32)
    lo, hi = np.percentile(g, (5, 95))
    if hi - lo < 10:
        return 0.0
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.sqrt(gx * gx + gy * gy)
    top = np.percentile(mag, 97)
    return float(top / (8.0 * (hi - lo)))


def measure(frame, det: Detection, read, night: bool) -> PlateMeasure:
    img = frame.pixels
    H, W = img.shape[:2]
    q = det.quad
    w, h = det.size
    top = q[1] - q[0]
    left = q[3] - q[0]
    angle = float(np.degrees(np.arctan2(top[1], top[0])))
    skew = float(np.degrees(np.arctan2(left[0], left[1])) + angle)  # vertical edge vs perpendicular of top edge
    crop = crop_plate(img, q, 0.0, 0.0)
    g = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    p5, p85, p95 = np.percentile(g, (5, 85, 95))
    x, y, bw, bh = det.bbox
    return PlateMeasure(
        frame=frame.seq, t=frame.truth.t if frame.truth is not None else frame.mono_time, night=night,
        exposure_us=frame.exposure_us, gain=frame.gain, ir_level=frame.ir_level, bbox=(x, y, bw, bh),
        centre=(float(q[:, 0].mean()), float(q[:, 1].mean())), width_px=w,
        char_height_px=h * CHAR_TO_PLATE_HEIGHT if w / max(h, 1) > 2.6 else h * 0.39,
        angle_deg=angle, skew_deg=skew, sharpness=sharpness(g), level=float(p85), contrast=float(p95 - p5),
        saturated=float((g >= 250).mean()), at_edge=bool(x <= 2 or y <= 2 or x + bw >= W - 2 or y + bh >= H - 2),
        vrm=None if read is None else read.vrm, confidence=0.0 if read is None else read.confidence)
