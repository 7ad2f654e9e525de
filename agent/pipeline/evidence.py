"""Evidence images within the UK national limits: plate patch 120x60 JPEG <= 3,000 bytes and
overview JPEG <= 25,000 bytes. JPEG quality (and the overview's scale) is searched so each image is the
best that fits; an image is never forwarded over budget and a read is never dropped for its images.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PATCH_W, PATCH_H = 120, 60
PATCH_MAX_BYTES = 3000
OVERVIEW_MAX_BYTES = 25000
PATCH_MARGIN = 0.12
OVERVIEW_SCALES = (1.0, 0.85, 0.7, 0.6, 0.5, 0.4, 0.3, 0.25)
GOOD_QUALITY = 45  # below this, a smaller overview usually looks better than a blockier big one


@dataclass(frozen=True, slots=True)
class Jpeg:
    data: bytes
    width: int
    height: int
    quality: int


def _encode(img: np.ndarray, q: int) -> bytes:
    ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(q), cv2.IMWRITE_JPEG_OPTIMIZE, 1])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return enc.tobytes()


def best_jpeg(img: np.ndarray, max_bytes: int, q_min: int = 5, q_max: int = 95) -> Jpeg | None:
    """Highest JPEG quality whose size fits `max_bytes` (binary search), or None if none does."""
    lo, hi, best = q_min, q_max, None
    while lo <= hi:
        q = (lo + hi) // 2
        data = _encode(img, q)
        if len(data) <= max_bytes:
            best, lo = (data, q), q + 1
        else:
            hi = q - 1
    if best is None:
        return None
    return Jpeg(best[0], img.shape[1], img.shape[0], best[1])


def _squeeze(img: np.ndarray, max_bytes: int) -> Jpeg:
    """Last resort for pathological images (pure noise): smooth until it fits. Always returns."""
    sigma = 1.0
    while True:
        j = best_jpeg(cv2.GaussianBlur(img, (0, 0), sigma), max_bytes)
        if j is not None:
            return j
        sigma *= 2
        if sigma > 64:
            flat = np.full_like(img, int(np.mean(img)))
            j = best_jpeg(flat, max_bytes)
            assert j is not None
            return j


def letterbox(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Fit into w x h keeping the aspect ratio (never stretched); pad with the image's edge mean."""
    ih, iw = img.shape[:2]
    s = min(w / iw, h / ih)
    nw, nh = max(1, round(iw * s)), max(1, round(ih * s))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    fill = np.mean(np.concatenate([img[0].reshape(-1), img[-1].reshape(-1)])) if img.size else 0
    out = np.empty((h, w) + img.shape[2:], img.dtype)
    out[:] = int(fill)
    y0, x0 = (h - nh) // 2, (w - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = small
    return out


def plate_patch(frame: np.ndarray, quad: np.ndarray, colour: bool = False) -> Jpeg:
    """The plate, straightened, with a small margin, letterboxed to 120x60, best JPEG <= 3,000 bytes."""
    q = np.asarray(quad, np.float64)
    c = q.mean(axis=0)
    u, v = (q[1] - q[0] + q[2] - q[3]) / 2, (q[3] - q[0] + q[2] - q[1]) / 2
    w, h = float(np.linalg.norm(u)), float(np.linalg.norm(v))
    img = frame if colour or frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if w >= 2 and h >= 2:
        u, v = u / w, v / h
        W, H = w * (1 + 2 * PATCH_MARGIN), h * (1 + 4 * PATCH_MARGIN)
        src = np.float32([c - u * W / 2 - v * H / 2, c + u * W / 2 - v * H / 2, c + u * W / 2 + v * H / 2,
                          c - u * W / 2 + v * H / 2])
        ow, oh = max(2, round(W)), max(2, round(H))
        M = cv2.getPerspectiveTransform(src, np.float32([[0, 0], [ow, 0], [ow, oh], [0, oh]]))
        crop = cv2.warpPerspective(img, M, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    else:
        crop = img
    patch = letterbox(crop, PATCH_W, PATCH_H)
    return best_jpeg(patch, PATCH_MAX_BYTES) or _squeeze(patch, PATCH_MAX_BYTES)


def blank_masks(frame: np.ndarray, masks: list[list[tuple[float, float]]]) -> np.ndarray:
    if not masks:
        return frame
    out = frame.copy()
    for poly in masks:
        cv2.fillPoly(out, [np.round(np.asarray(poly, np.float64)).astype(np.int32)], 0)
    return out


def overview(frame: np.ndarray, masks: list[list[tuple[float, float]]] | None = None,
             max_bytes: int = OVERVIEW_MAX_BYTES, max_width: int = 1280) -> Jpeg:
    """Privacy masks blanked first; then the largest scale that still fits at a good quality."""
    img = blank_masks(frame, masks or [])
    base = min(1.0, max_width / img.shape[1])
    fallback: Jpeg | None = None
    for s in OVERVIEW_SCALES:
        k = base * s
        small = img if k >= 0.999 else cv2.resize(img, (max(16, round(img.shape[1] * k)),
                                                        max(16, round(img.shape[0] * k))), interpolation=cv2.INTER_AREA)
        j = best_jpeg(small, max_bytes)
        if j is None:
            continue
        if j.quality >= GOOD_QUALITY:
            return j
        if fallback is None:
            fallback = j
    if fallback is not None:
        return fallback
    tiny = cv2.resize(img, (max(16, round(img.shape[1] * base * 0.2)), max(16, round(img.shape[0] * base * 0.2))),
                      interpolation=cv2.INTER_AREA)
    return best_jpeg(tiny, max_bytes) or _squeeze(tiny, max_bytes)
