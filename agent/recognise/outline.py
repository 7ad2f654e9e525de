"""Plate outline refiner: a small regression model that moves the detector's four corners onto the
plate's edges.

The detector's outline comes from the moments of a probability mask in 4-pixel cells: its ends are off
by about +-4 % of the plate's width (10th/90th percentile) and its slope by about a degree, whatever its
training, and a third of the plates the reader gets wrong read right from an exact outline. The
refiner looks at a generous crop around that outline (straightened by it) and says where the true
corners are in it.
"""

from __future__ import annotations

import cv2
import numpy as np

from agent.recognise.detector import Detection
from agent.recognise.preprocess import stretch_contrast
from agent.recognise.rectify import plate_transform
from agent.recognise.runtime import Model, ModelError

OUTLINE_H, OUTLINE_W = 40, 128  # the refiner's input
MARGIN_W, MARGIN_H = 0.5, 1.0  # extra width and height around the outline, shares of the plate's
MAX_CROP_W = 512  # straightened at most this wide before scaling to the input (large photographs)
# A refined outline more than this much wider/narrower or taller/shorter than the one it started from
# is not taken (a real photo's detector box is often 1.6-2x the plate: 1.6 turned those away).
MAX_CHANGE = 2.2
# The refiner looks again from its own outline: from a box twice the plate's size one look gets it
# only part of the way (real-detect dev found at IoU 0.5: 62.4 % one look, 68.8 % two).
PASSES = 2


def outline_input(grey: np.ndarray, quad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The refiner's HxW uint8 input around `quad`, and the 3x3 matrix from image points to input
    points normalised to 0..1."""
    M, (ow, oh) = plate_transform(quad, MARGIN_W, MARGIN_H, max_w=MAX_CROP_W)
    crop = cv2.warpPerspective(grey, M, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    interp = cv2.INTER_AREA if ow > OUTLINE_W else cv2.INTER_LINEAR
    x = stretch_contrast(cv2.resize(crop, (OUTLINE_W, OUTLINE_H), interpolation=interp))
    return x, np.diag([1.0 / ow, 1.0 / oh, 1.0]) @ M


def to_input(points: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """Image points -> the input's normalised coordinates."""
    return cv2.perspectiveTransform(np.asarray(points, np.float64).reshape(-1, 1, 2), norm).reshape(-1, 2)


def from_input(points: np.ndarray, norm: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(np.asarray(points, np.float64).reshape(-1, 1, 2),
                                    np.linalg.inv(norm)).reshape(-1, 2)


class OutlineRefiner:
    """Loaded once; `refine` is called for every detected plate."""

    def __init__(self, model: Model) -> None:
        if model.input_shape[1:3] != (OUTLINE_H, OUTLINE_W) or model.output_shape[-1] != 8:
            raise ModelError(f"{model.path}: input {model.input_shape} / output {model.output_shape} is not "
                             f"(1, {OUTLINE_H}, {OUTLINE_W}, 1) -> (1, 8)")
        self.model = model

    def refine(self, grey: np.ndarray, d: Detection) -> Detection:
        """`d` with its corners where the refiner sees the plate's after PASSES looks, each from the
        last look's outline."""
        for _ in range(PASSES):
            d = self.refine_once(grey, d)
        return d

    def refine_once(self, grey: np.ndarray, d: Detection) -> Detection:
        """`d` with its corners where the refiner sees the plate's; `d` itself when the refined outline
        is not a plausible plate (far another size, or crossed)."""
        try:
            x, norm = outline_input(grey, d.quad)
        except ValueError:
            return d
        base = to_input(d.quad, norm)
        moved = base + self.model.run(x).reshape(4, 2)
        quad = from_input(moved, norm)
        e = Detection(quad, d.score)
        (w0, h0), (w1, h1) = d.size, e.size
        if not (1 / MAX_CHANGE < w1 / max(w0, 1e-6) < MAX_CHANGE and 1 / MAX_CHANGE < h1 / max(h0, 1e-6) < MAX_CHANGE):
            return d
        if not cv2.isContourConvex(quad.astype(np.float32).reshape(-1, 1, 2)):
            return d
        return e
