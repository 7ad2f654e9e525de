"""Cut a detected plate out of the frame, straightened, with the margin the reader was trained on."""

from __future__ import annotations

import math

import cv2
import numpy as np

MARGIN_W = 0.25  # total extra width, as a share of the plate width (the middle of the reader's training range)
MARGIN_H = 0.40  # total extra height
MAX_W = 256


def plate_transform(quad: np.ndarray, margin_w: float = MARGIN_W, margin_h: float = MARGIN_H, shift: float = 0.0,
                    shift_up: float = 0.0, max_w: int = MAX_W) -> tuple[np.ndarray, tuple[int, int]]:
    """The perspective matrix from image to crop, and the crop's (width, height): what `crop_plate`
    cuts, for code that also needs to map points between the two (the outline refiner)."""
    q = np.asarray(quad, np.float64)
    # plain float arithmetic: this runs for every crop of every region (a dozen a plate)
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = q.tolist()
    ux, uy = (x1 - x0 + x2 - x3) / 2, (y1 - y0 + y2 - y3) / 2
    vx, vy = (x3 - x0 + x2 - x1) / 2, (y3 - y0 + y2 - y1) / 2
    cx = (x0 + x1 + x2 + x3) / 4 + shift * ux - shift_up * vx
    cy = (y0 + y1 + y2 + y3) / 4 + shift * uy - shift_up * vy
    w = (math.hypot(x1 - x0, y1 - y0) + math.hypot(x2 - x3, y2 - y3)) / 2
    h = (math.hypot(x3 - x0, y3 - y0) + math.hypot(x2 - x1, y2 - y1)) / 2
    if w < 2 or h < 2:
        raise ValueError(f"plate region too small: {w:.1f}x{h:.1f} px")
    nu, nv = math.hypot(ux, uy), math.hypot(vx, vy)
    W, H = w * (1 + margin_w), h * (1 + margin_h)
    ax, ay = ux / nu * W / 2, uy / nu * W / 2
    bx, by = vx / nv * H / 2, vy / nv * H / 2
    src = np.array([[cx - ax - bx, cy - ay - by], [cx + ax - bx, cy + ay - by], [cx + ax + bx, cy + ay + by],
                    [cx - ax + bx, cy - ay + by]], np.float32)
    k = min(1.0, max_w / W)
    ow, oh = max(8, int(round(W * k))), max(4, int(round(H * k)))
    dst = np.array([[0, 0], [ow, 0], [ow, oh], [0, oh]], np.float32)
    return cv2.getPerspectiveTransform(src, dst), (ow, oh)


def crop_plate(img: np.ndarray, quad: np.ndarray, margin_w: float = MARGIN_W, margin_h: float = MARGIN_H,
               shift: float = 0.0, shift_up: float = 0.0) -> np.ndarray:
    """`shift` moves the crop along the plate by that share of the plate's width, `shift_up` up it by
    that share of its height."""
    M, size = plate_transform(quad, margin_w, margin_h, shift, shift_up)
    return cv2.warpPerspective(img, M, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


TILTS_DEG = (-24.0, -16.0, -8.0, 8.0, 16.0, 24.0)  # the slopes `tilted_outlines` tries
TILT_ASPECT = (1.2, 7.0)  # a tilted outline this wide for its height could be a plate


def tilted_outlines(quad: np.ndarray, angles_deg: tuple[float, ...] = TILTS_DEG) -> list[np.ndarray]:
    """Rectangles sloping by each angle that touch all four sides of `quad`'s axis-aligned box: the
    plate itself when the box is a labeller's or a detector's box round a sloping plate (such a box
    is far squarer than the plate, and read along it the characters lie askew). Angles that leave no
    plate-shaped rectangle in the box are skipped."""
    q = np.asarray(quad, np.float64)
    (x0, y0), (x1, y1) = q.min(axis=0), q.max(axis=0)
    bw, bh = x1 - x0, y1 - y0
    c = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    out = []
    for a in angles_deg:
        t = np.radians(a)
        cs, sn = np.cos(t), abs(np.sin(t))
        c2 = np.cos(2 * t)
        w, h = (bw * cs - bh * sn) / c2, (bh * cs - bw * sn) / c2  # box = rotated w x h rectangle's extent
        if w <= 0 or h <= 0 or not TILT_ASPECT[0] <= w / h <= TILT_ASPECT[1]:
            continue
        u, v = np.array([cs, np.sin(t)]) * w / 2, np.array([-np.sin(t), cs]) * h / 2
        out.append(np.array([c - u - v, c + u - v, c + u + v, c - u + v]))
    return out
