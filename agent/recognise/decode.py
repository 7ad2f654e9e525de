"""CTC decoding constrained by UK registration syntax, with a foreign/unknown fallback.

The reader gives per-column class probabilities. Greedy CTC gives the text and, per character, a
probability distribution. A text that is a valid UK mark is taken as read. Otherwise each UK
position pattern of the same length is tried, choosing per position the likeliest allowed character;
the best candidate is accepted only if it changes characters the reader was unsure of, so a
confident non-UK plate is reported as `foreign` and never forced into a UK pattern.

Readers trained with the hidden class mark characters covered by a tow bar or another vehicle; such
a read is incomplete (`complete=False`): its visible characters are kept, its format is `unknown` and
its confidence is at most the chance that nothing was hidden, so it is never published as a read.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from agent.plates import ALPHABET, Format, PlateError, parse, position_patterns
from agent.recognise.preprocess import BLANK, HIDDEN

SURE = 0.9  # a character read with at least this probability is never substituted
MIN_ALT = 0.05  # a substitute must have had at least this probability


@dataclass(frozen=True, slots=True)
class Reading:
    vrm: str
    confidence: float
    char_confidences: tuple[float, ...]
    format: Format
    complete: bool = True  # False: the reader saw characters covered (the read misses some)


@cache
def patterns_by_length() -> dict[int, list[tuple[Format, tuple[np.ndarray, ...]]]]:
    out: dict[int, list[tuple[Format, tuple[np.ndarray, ...]]]] = {}
    for fmt, chars in position_patterns():
        masks = tuple(np.array([c in allowed for c in ALPHABET], bool) for allowed in chars)
        out.setdefault(len(chars), []).append((fmt, masks))
    return out


def _segments(probs: np.ndarray) -> tuple[list[np.ndarray], float]:
    """Per greedy character, its distribution over ALPHABET (max over its columns, renormalised);
    and the highest probability of a greedy hidden-character run (0 when none)."""
    best = probs.argmax(axis=1)
    segs: list[np.ndarray] = []
    hidden = 0.0
    start = None
    for t in range(len(best) + 1):
        c = best[t] if t < len(best) else -1
        if start is not None and (t == len(best) or c != best[start]):
            if best[start] == HIDDEN:
                hidden = max(hidden, float(probs[start:t, HIDDEN].max()))
            else:
                dist = probs[start:t, :BLANK].max(axis=0)
                segs.append(dist / max(float(dist.sum()), 1e-9) * float(probs[start:t, best[start]].max()))
            start = None
        if t < len(best) and c != BLANK and start is None:
            start = t
    return segs, hidden


def character_distributions(probs: np.ndarray) -> list[np.ndarray]:
    """Per greedily read character, its probabilities over ALPHABET (summing to how sure the reader was
    that a character stands there); hidden-character runs left out."""
    return _segments(np.asarray(probs, np.float32))[0]


def decode(probs: np.ndarray, min_chars: int = 2) -> Reading | None:
    """Decode one plate's (T, classes) probabilities; None when nothing was read."""
    segs, hidden = _segments(np.asarray(probs, np.float32))
    if hidden > 0.0:
        if not segs:
            return None
        conf = [float(d.max()) for d in segs]
        text = "".join(ALPHABET[int(d.argmax())] for d in segs)
        return Reading(text, min(*conf, 1.0 - hidden), tuple(conf), "unknown", complete=False)
    if len(segs) < min_chars:
        return None
    idx = [int(d.argmax()) for d in segs]
    conf = [float(d[i]) for d, i in zip(segs, idx, strict=True)]
    text = "".join(ALPHABET[i] for i in idx)
    try:
        p = parse(text)
        return Reading(p.vrm, min(conf), tuple(conf), p.format)
    except PlateError:
        pass
    best: tuple[float, str, list[float], Format] | None = None
    for fmt, masks in patterns_by_length().get(len(segs), []):
        chosen, cconf, ok = [], [], True
        for d, m, i, c in zip(segs, masks, idx, conf, strict=True):
            if m[i]:
                chosen.append(i)
                cconf.append(c)
                continue
            if c >= SURE:
                ok = False
                break
            j = int(np.where(m, d, -1).argmax())
            if d[j] < max(MIN_ALT, 0.2 * c):  # the reader never really considered it
                ok = False
                break
            chosen.append(j)
            cconf.append(float(d[j]))
        if not ok:
            continue
        cand = "".join(ALPHABET[j] for j in chosen)
        try:
            parse(cand)
        except PlateError:
            continue
        score = float(np.prod(cconf))
        if best is None or score > best[0]:
            best = (score, cand, cconf, fmt)
    if best is not None:
        _, cand, cconf, fmt = best
        return Reading(cand, min(cconf), tuple(cconf), fmt)
    fmt_out: Format = "foreign" if len(segs) >= 4 and min(conf) >= SURE else "unknown"
    return Reading(text, min(conf), tuple(conf), fmt_out)
