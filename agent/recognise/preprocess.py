"""Image preparation shared by training and run time, so the models see the same thing in both."""

from __future__ import annotations

import cv2
import numpy as np

from agent.plates import ALPHABET

READER_H, READER_W = 32, 128
DET_W, DET_H = 640, 384  # detector input; output mask is 1/4 of this
DET_STRIDE = 4
TWO_LINE_ASPECT = 2.6  # crops narrower than this (w/h) are square two-line plates
BLANK = len(ALPHABET)  # CTC blank index; classes are ALPHABET + blank + hidden
HIDDEN = BLANK + 1  # "characters here are covered" (tow bar, another vehicle): the read is incomplete
HIDDEN_MARK = "?"  # HIDDEN in training labels: one mark per run of covered characters
N_CLASSES = len(ALPHABET) + 2


def to_grey(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        return img
    if img.shape[2] == 1:
        return img[:, :, 0]
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def stretch_contrast(grey: np.ndarray) -> np.ndarray:
    """Percentile stretch: makes day, dusk and IR crops look alike to the reader."""
    lo, hi = percentiles_u8(grey, (2, 98)) if grey.dtype == np.uint8 else np.percentile(grey, (2, 98))
    if hi - lo < 8:
        hi = lo + 8
    return cv2.convertScaleAbs(grey, alpha=255.0 / (hi - lo), beta=-lo * 255.0 / (hi - lo))


def percentiles_u8(img: np.ndarray, qs: tuple[float, ...]) -> tuple[float, ...]:
    """`np.percentile` (linear interpolation) of a uint8 image from its histogram: the same values at
    a fraction of the cost (a plate's crops are stretched a dozen times a read)."""
    cum = np.cumsum(np.bincount(img.ravel(), minlength=256))
    n = int(cum[-1])

    def order_stat(k: int) -> int:  # the k-th smallest value, from 0
        return int(np.searchsorted(cum, k, side="right"))

    out = []
    for q in qs:
        pos = q / 100.0 * (n - 1)
        k = int(np.floor(pos))
        lo = order_stat(k)
        hi = order_stat(min(k + 1, n - 1))
        out.append(lo + (pos - k) * (hi - lo))
    return tuple(out)


def reader_input(crop: np.ndarray, two_line: bool | None = None) -> np.ndarray:
    """A plate crop (any size, grey or BGR) as the reader's HxW uint8 input."""
    return local_contrast(reader_crop(crop, two_line))


def reader_crop(crop: np.ndarray, two_line: bool | None = None) -> np.ndarray:
    """The crop at the reader's size, contrast stretched over the whole crop (what training data is
    stored as; `local_contrast` makes it the reader's input).

    Square two-line plates are cut into their top and bottom halves and laid side by side, so one
    single-line reader reads both kinds.
    """
    g = to_grey(crop)
    h, w = g.shape[:2]
    if h < 2 or w < 2:
        raise ValueError(f"plate crop too small: {w}x{h}")
    if two_line is None:
        two_line = w / h < TWO_LINE_ASPECT
    if two_line:
        mid = h // 2
        top, bot = g[: mid + h // 20], g[mid - h // 20:]
        bot = cv2.resize(bot, (top.shape[1], top.shape[0]), interpolation=cv2.INTER_LINEAR)
        g = np.hstack([top, bot])
    interp = cv2.INTER_AREA if g.shape[1] > READER_W else cv2.INTER_LINEAR
    out = cv2.resize(g, (READER_W, READER_H), interpolation=interp)
    return stretch_contrast(out)


LOCAL_WINDOW = (25, 31)  # width, height: about a character and a half, the whole crop high
MIN_LOCAL_RANGE = 12.0  # grey levels: flatter regions are not stretched into noise beyond this
_LOCAL_KERNEL = np.ones(LOCAL_WINDOW[::-1], np.uint8)


def local_contrast(x: np.ndarray) -> np.ndarray:
    """Stretch each part of the crop between its own darkest and brightest (smoothed): glare or a
    shadow across a plate leaves its characters faint on one side, which one stretch for the whole
    crop does not recover."""
    f = x.astype(np.float32)
    hi = cv2.GaussianBlur(cv2.dilate(f, _LOCAL_KERNEL), (0, 0), 6)
    lo = cv2.GaussianBlur(cv2.erode(f, _LOCAL_KERNEL), (0, 0), 6)
    out = (f - lo) * (255.0 / np.maximum(hi - lo, MIN_LOCAL_RANGE))
    return np.clip(out, 0, 255).astype(np.uint8)


def encode_label(vrm: str) -> list[int]:
    return [HIDDEN if c == HIDDEN_MARK else ALPHABET.index(c) for c in vrm]


def detector_input(img: np.ndarray, size: tuple[int, int] = (DET_H, DET_W), scale: float | None = None
                   ) -> tuple[np.ndarray, float]:
    """Frame scaled (aspect kept) and padded to a detector input `size` (height, width); returns it and
    the scale: the largest that fits, or `scale` where that is smaller."""
    g = to_grey(img)
    h, w = g.shape
    s = min(size[1] / w, size[0] / h)
    s = s if scale is None else min(s, scale)
    nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
    small = cv2.resize(g, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = np.zeros(size, np.uint8)
    out[:nh, :nw] = small
    return out, s
