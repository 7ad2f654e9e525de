"""Read confidence calibrated on simulated scenes and real photographs: the measured chance that a
read is exactly right.

The reader's character probabilities are over-confident on blurred, small and glare-washed plates.
A logistic model over a few properties of the read (weakest and mean character probability, plate
height in pixels, detector score, UK/foreign/unknown, length, two-line, the share of the plate's crops
that read the same text, whether a non-UK read is one character from a UK mark (most such "foreign"
reads are UK plates misread), whether a non-UK read fits another country's layout (`layouts`: a
French SIV mark is one character from a UK mark, yet no misread), and the highest chance any crop gave
to covered characters) maps them to a probability fitted on labelled reads (`scripts/fit_confidence.py`),
so a threshold means what it says. Without
`models/confidence.json` the weakest character probability is used as before.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.plates import ALPHABET, Format
from agent.recognise.decode import patterns_by_length
from agent.recognise.layouts import national_layout

FEATURES = ("logit_min_char", "logit_mean_char", "log_plate_height", "det_score", "uk", "foreign", "length",
            "two_line", "agreement", "near_uk", "hidden", "national_layout")
NON_UK_FORMATS = ("foreign", "unknown")


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def near_uk(text: str) -> bool:
    """One character from a UK mark: the same length with one character outside its pattern, or a
    current-style mark (7 characters) with one missing."""
    if any(c not in ALPHABET for c in text):
        return False
    idx = [ALPHABET.index(c) for c in text]
    for _, masks in patterns_by_length().get(len(text), []):
        if sum(not m[i] for m, i in zip(masks, idx, strict=True)) <= 1:
            return True
    if len(text) != 6:
        return False
    return any(all(m[i] for m, i in zip(masks[:k] + masks[k + 1:], idx, strict=True))
               for _, masks in patterns_by_length().get(7, []) for k in range(7))


def read_features(vrm: str, char_confidences: tuple[float, ...], fmt: Format, plate_height_px: float, det_score: float,
                  two_line: bool, agreement: float = 1.0, hidden: float = 0.0) -> np.ndarray:
    cc = char_confidences or (0.0,)
    uk = fmt not in NON_UK_FORMATS
    return np.array([_logit(min(cc)), _logit(float(np.mean(cc))), math.log(max(plate_height_px, 1.0)),
                     det_score, float(uk), float(fmt == "foreign"), len(cc) / 7.0,
                     float(two_line), agreement, float(not uk and near_uk(vrm)), hidden,
                     float(not uk and national_layout(vrm))])


@dataclass(frozen=True, slots=True)
class ConfidenceModel:
    weights: tuple[float, ...]
    bias: float
    fitted_on: str = ""

    def __call__(self, x: np.ndarray) -> float:
        z = float(np.dot(self.weights, x) + self.bias)
        return 1.0 / (1.0 + math.exp(-min(max(z, -50.0), 50.0)))

    @classmethod
    def load(cls, path: Path) -> ConfidenceModel | None:
        """None when the file is absent; a clear error when it is there but not a calibration."""
        if not path.exists():
            return None
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            if tuple(d["features"]) != FEATURES:
                raise ValueError(f"features {d['features']} are not {list(FEATURES)}")
            w = tuple(float(v) for v in d["weights"])
            if len(w) != len(FEATURES):
                raise ValueError(f"{len(w)} weights for {len(FEATURES)} features")
            return cls(w, float(d["bias"]), str(d.get("fitted_on", "")))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a confidence calibration: {e}") from None

    def to_json(self, **extra: object) -> str:
        return json.dumps({"features": list(FEATURES), "weights": [round(w, 6) for w in self.weights],
                           "bias": round(self.bias, 6), "fitted_on": self.fitted_on, **extra}, indent=2) + "\n"


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, iters: int = 50,
        sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Logistic regression by Newton's method (IRLS) with a small ridge: weights and bias.
    `sample_weight`: how much each read counts (groups of reads weighted to their share of the fit)."""
    n, k = x.shape
    sw = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64)
    if sw.shape != (n,) or not np.isfinite(sw).all() or (sw < 0).any() or sw.sum() <= 0:
        raise ValueError("sample_weight must be one finite, non-negative weight per read, not all zero")
    sw = sw * n / sw.sum()
    mu = (sw[:, None] * x).sum(axis=0) / n
    sd = np.sqrt((sw[:, None] * (x - mu) ** 2).sum(axis=0) / n) + 1e-9
    z = np.hstack([(x - mu) / sd, np.ones((n, 1))])
    w = np.zeros(k + 1)
    reg = np.full(k + 1, l2 * n)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -50, 50)))
        g = z.T @ (sw * (p - y)) + reg * w
        h = (z * (sw * p * (1 - p))[:, None]).T @ z + np.diag(reg) + 1e-9 * np.eye(k + 1)
        step = np.linalg.solve(h, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = w[:k] / sd
    return weights, float(w[k] - np.dot(weights, mu))
