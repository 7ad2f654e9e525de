"""Multi-frame tracker: one vehicle's plate across frames -> one read.

Associates reads frame to frame by predicted box overlap, distance and text similarity; votes per
character weighted by confidence; picks the best frame for evidence; tells direction (plate growing =
coming towards the camera) and lane (configured lane polygons); closes a track when the plate has
not been seen for `max_gap_s`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from agent.plates import classify
from agent.recognise.decode import SURE


@dataclass(slots=True)
class Observation:
    t: float  # seconds (monotonic or simulated)
    frame_id: int
    vrm: str
    confidence: float
    char_confidences: tuple[float, ...]
    bbox: tuple[int, int, int, int]
    det_score: float = 1.0
    payload: Any = None  # whatever the caller needs back for the best frame (frame, read, ...)

    @property
    def centre(self) -> np.ndarray:
        x, y, w, h = self.bbox
        return np.array([x + w / 2, y + h / 2], np.float64)

    @property
    def width(self) -> float:
        return float(self.bbox[2])


@dataclass(slots=True)
class TrackResult:
    track_id: int
    vrm: str
    format: str
    confidence: float
    char_confidences: tuple[float, ...]
    direction: str  # towards | away | unknown
    lane: int | None
    frames: int
    best: Observation
    first_t: float
    last_t: float
    observations: list[Observation] = field(default_factory=list)

    @property
    def speed_px_s(self) -> float | None:
        """Median image speed of the plate between consecutive sightings."""
        v = [float(np.linalg.norm(b.centre - a.centre)) / (b.t - a.t)
             for a, b in zip(self.observations, self.observations[1:], strict=False) if b.t > a.t]
        return float(np.median(v)) if v else None


@dataclass(slots=True)
class Track:
    id: int
    obs: list[Observation] = field(default_factory=list)

    @property
    def last(self) -> Observation:
        return self.obs[-1]

    def predict(self, t: float) -> np.ndarray:
        if len(self.obs) < 2:
            return self.last.centre
        a, b = self.obs[-2], self.obs[-1]
        dt = max(b.t - a.t, 1e-3)
        return b.centre + (b.centre - a.centre) / dt * (t - b.t)


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


class Tracker:
    def __init__(self, lanes: list[list[tuple[float, float]]] | None = None, max_gap_s: float = 0.5,
                 min_frames: int = 1, keep_payloads: int | None = None) -> None:
        self.lanes = [np.asarray(p, np.float32) for p in (lanes or [])]
        self.max_gap_s = max_gap_s
        self.min_frames = min_frames
        self.keep_payloads = keep_payloads  # keep only the best few frames per track in memory
        self._open: list[Track] = []
        self._next = 1

    @property
    def open_tracks(self) -> int:
        return len(self._open)

    def update(self, t: float, observations: list[Observation],
               frame_wh: tuple[int, int] | None = None) -> list[TrackResult]:
        """Add one frame's reads; return the tracks that closed (vehicle gone). With `frame_wh`, a track
        whose plate should by now have left the frame is closed at once instead of after `max_gap_s`."""
        pairs = []
        for ti, tr in enumerate(self._open):
            pred = tr.predict(t)
            for oi, ob in enumerate(observations):
                scale = max(tr.last.width, ob.width, 8.0)
                dist = float(np.linalg.norm(ob.centre - pred)) / scale
                ed = edit_distance(ob.vrm, tr.last.vrm)
                size_ratio = ob.width / max(tr.last.width, 1.0)
                if dist < 1.5 and 0.5 < size_ratio < 2.0 and (ed <= 3 or dist < 0.4):
                    pairs.append((dist + 0.3 * ed, ti, oi))
        used_t, used_o = set(), set()
        for _, ti, oi in sorted(pairs):
            if ti in used_t or oi in used_o:
                continue
            self._open[ti].obs.append(observations[oi])
            self._prune(self._open[ti])
            used_t.add(ti)
            used_o.add(oi)
        for oi, ob in enumerate(observations):
            if oi not in used_o:
                self._open.append(Track(self._next, [ob]))
                self._next += 1
        def gone(tr: Track) -> bool:
            if t - tr.last.t > self.max_gap_s:
                return True
            if frame_wh is None or tr.last.t >= t or len(tr.obs) < 2:
                return False
            w, h = frame_wh
            cx, cy = tr.predict(t)
            half_w, half_h = tr.last.bbox[2] / 2, tr.last.bbox[3] / 2
            return cx + half_w < 0 or cy + half_h < 0 or cx - half_w > w or cy - half_h > h or (
                # last seen touching the edge it was heading for
                _leaving(tr, w, h))

        closed = [tr for tr in self._open if gone(tr)]
        self._open = [tr for tr in self._open if tr not in closed]
        return [r for r in (self._result(tr) for tr in closed) if r is not None]

    def _prune(self, tr: Track) -> None:
        if self.keep_payloads is None:
            return
        held = [o for o in tr.obs if o.payload is not None]
        if len(held) > self.keep_payloads:
            held.sort(key=_quality)
            for o in held[: len(held) - self.keep_payloads]:
                o.payload = None

    def flush(self) -> list[TrackResult]:
        """Close every open track (end of stream, shutdown)."""
        out = [r for r in (self._result(tr) for tr in self._open) if r is not None]
        self._open = []
        return out

    def _result(self, tr: Track) -> TrackResult | None:
        if len(tr.obs) < self.min_frames:
            return None
        vrm, confs, agreement = vote(tr.obs)
        fmt = classify(vrm)
        # As sure as the best frame that read exactly this, lowered by the square of the share of
        # votes against (one stray frame in twenty costs 0.25 %, an even split 25 %); when no single
        # frame read it (a mix), the weakest voted character.
        exact = [o.confidence for o in tr.obs if o.vrm == vrm]
        conf = max(exact) * (1.0 - (1.0 - agreement) ** 2) if exact else (min(confs) if confs else 0.0)
        best = max(tr.obs, key=lambda o: (o.payload is not None, o.vrm == vrm, _quality(o)))
        w0, w1 = tr.obs[0].width, tr.obs[-1].width
        direction = "unknown"
        if len(tr.obs) >= 2 and abs(w1 - w0) > 0.05 * max(w0, w1):
            direction = "towards" if w1 > w0 else "away"
        return TrackResult(tr.id, vrm, fmt if fmt != "unknown" else _fallback_format(tr.obs, vrm),
                           conf, confs, direction, self._lane(best), len(tr.obs), best,
                           tr.obs[0].t, tr.obs[-1].t, list(tr.obs))

    def _lane(self, ob: Observation) -> int | None:
        x, y, w, h = ob.bbox
        pt = (float(x + w / 2), float(y + h))
        for i, poly in enumerate(self.lanes):
            if cv2.pointPolygonTest(poly, pt, False) >= 0:
                return i
        return None


def _leaving(tr: Track, w: int, h: int) -> bool:
    a, b = tr.obs[-2], tr.obs[-1]
    x, y, bw, bh = b.bbox
    v = b.centre - a.centre
    return bool((v[1] > 0 and y + bh >= h - 2) or (v[1] < 0 and y <= 1) or (v[0] > 0 and x + bw >= w - 2)
                or (v[0] < 0 and x <= 1))


def _quality(o: Observation) -> float:
    """Evidence value of a frame: a confident read of a large plate."""
    return o.confidence * o.det_score * min(o.width, 200.0)


def _fallback_format(obs: list[Observation], vrm: str) -> str:
    """Foreign when every frame that read it was sure of every character (as the decoder decides)."""
    same = [o for o in obs if o.vrm == vrm]
    sure = all(min(o.char_confidences, default=0.0) >= SURE for o in same)
    return "foreign" if len(vrm) >= 4 and same and sure else "unknown"


def vote(obs: list[Observation]) -> tuple[str, tuple[float, ...], float]:
    """Per-character vote weighted by confidence, over the reads of the winning length: the text,
    per-character confidences and the agreement (the smallest winning share of a character)."""
    by_len: dict[int, float] = defaultdict(float)
    for o in obs:
        by_len[len(o.vrm)] += o.confidence
    n = max(by_len, key=lambda k: by_len[k])
    same = [o for o in obs if len(o.vrm) == n]
    chars, confs, shares = [], [], []
    for i in range(n):
        w: dict[str, float] = defaultdict(float)
        for o in same:
            c = o.char_confidences[i] if i < len(o.char_confidences) else o.confidence
            w[o.vrm[i]] += c
        ch = max(w, key=lambda k: w[k])
        total = sum(w.values())
        chars.append(ch)
        # agreement share x the best single confidence for that character
        best_c = max((o.char_confidences[i] if i < len(o.char_confidences) else o.confidence)
                     for o in same if o.vrm[i] == ch)
        confs.append(float(w[ch] / total * best_c))
        shares.append(float(w[ch] / total))
    voted = "".join(chars)
    if classify(voted) == "unknown":  # a vote must not turn valid single reads into an invalid mix
        valid = [o for o in same if classify(o.vrm) != "unknown"]
        if valid:
            b = max(valid, key=lambda o: o.confidence)
            share = sum(o.confidence for o in same if o.vrm == b.vrm) / max(sum(o.confidence for o in same), 1e-9)
            return b.vrm, tuple(b.char_confidences), share
    return voted, tuple(confs), min(shares, default=0.0)
