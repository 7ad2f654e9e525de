"""Several crops of one plate, read together.

The detector's outline is off by a few per cent; a character at the crop's edge, or a crop that cuts
a stroke, is where most single reads go wrong. Each plate is therefore cut more than once (`VIEWS`:
wider, narrower, taller, shifted) and each crop is read and decoded. When the first two crops read
the same complete UK mark that is the read (most of the unit's plates: about 2.5 crops a plate on
average). Otherwise, and for any other text the first two agree on (a foreign plate, which no UK
syntax constrains and which real photographs show misread as confidently as read), all the crops are
read and, of the texts read, the one the views together find likeliest wins: its
CTC likelihood (summed over all alignments) is added up over every view, including the views that
read something else, so a text only one crop saw rarely beats one the other crops also support. How
many views read exactly the winning text (`agreement`) is a strong sign that the read is right, and
how sure any view was that characters were covered (`hidden`) a sign that it may be a partial read;
both go into the calibrated confidence.

A non-UK read in a layout whose issuing countries never use some letters (`layouts.UNISSUED`: O and U in a
French or Italian LL 999 LL mark, or an older French 9999 LLL 99 one) gets, in their place, the issued
letter the views that read as many characters gave most probability to, however sure they were: the
reader reads those plates' Q and D as O and V and D as U, and no confidence makes an unissued letter
right (`issued_letters`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

import numpy as np

from agent.plates import ALPHABET, UK_FORMATS
from agent.recognise.decode import Reading, character_distributions, decode
from agent.recognise.layouts import unissued_letters, unissued_positions
from agent.recognise.preprocess import BLANK, HIDDEN


@dataclass(frozen=True, slots=True)
class View:
    """One crop of a detected plate: extra width and height (shares of the plate's) and shifts along
    and across the plate (shares of its width and height)."""

    margin_w: float
    margin_h: float
    shift: float = 0.0
    shift_up: float = 0.0


# The first is the crop the reader was trained around; all stay inside its training range.
VIEWS = (View(0.25, 0.40), View(0.25, 0.40, -0.03), View(0.25, 0.40, 0.03), View(0.15, 0.40), View(0.35, 0.40),
         View(0.25, 0.25), View(0.25, 0.60), View(0.25, 0.40, 0.0, -0.06), View(0.25, 0.40, 0.0, 0.06),
         View(0.10, 0.30), View(0.20, 0.30), View(0.40, 0.55), View(0.25, 0.40, -0.015), View(0.25, 0.40, 0.015))
FIRST_VIEWS = 2  # read first; more only when these disagree or agree on a non-UK text
# Why a non-UK text the first views agree on is read from every view: with the calibration refitted on
# each (1,500 simulated scenes, the held-out real-read crops and scenes, junk in 600 real-detect train
# photos; two-fold cross-validation five times), right real reads published at 0.95 went from 45 (of 48
# published) to 57 (of 60): how many of fourteen crops agree tells a right foreign read from a
# confident misread (C/G, M/N) better than two. UK marks keep the early stop: it costs them nothing
# there, and a 1280x720 frame would take 10 ms longer (14.5 -> 24.3 ms p50).
# More views only when one of the first is this sure of its characters on average. Junk regions (lamps,
# grilles, livery) are two thirds of a real photo's views; of 2,976 regions whose first views disagreed
# (400 simulated scenes, 200 real-read and 250 real-detect train photos), none read right or at
# confidence 0.5 or more in the end from first views under 0.5 (right ones started at 0.69 or more).
HOPEFUL_MEAN = 0.5
DEFAULT_VIEWS = len(VIEWS)


@dataclass(frozen=True, slots=True)
class Consensus:
    reading: Reading | None
    agreement: float  # share of the views whose own read is exactly reading.vrm
    hidden: float = 0.0  # highest chance, in any view, that characters were covered


def greedy_labels(probs: np.ndarray) -> tuple[int, ...]:
    """Best-path classes, repeats and blanks removed, hidden marks kept."""
    best = np.asarray(probs).argmax(axis=1)
    keep = np.r_[True, best[1:] != best[:-1]] & (best != BLANK)
    return tuple(int(c) for c in best[keep])


def _labels(r: Reading, probs: np.ndarray) -> tuple[int, ...]:
    """What a view read, as classes: an incomplete read keeps its hidden marks where they were seen."""
    if not r.complete:
        return greedy_labels(probs)
    return tuple(ALPHABET.index(c) for c in r.vrm)


def ctc_log_likelihood(probs: np.ndarray, labels: list[int]) -> np.ndarray:
    """log P(labels | each view): probs is (views, T, classes); CTC forward over all alignments."""
    return ctc_log_likelihoods(probs, [labels])[0]


def ctc_log_likelihoods(probs: np.ndarray, options: list[list[int]]) -> np.ndarray:
    """log P(labels | each view) for each of `options` at once, (options, views): one CTC forward
    pass over the options' extended label sequences padded to the longest (padded states are kept at
    zero). In probabilities scaled to sum to one at each step, the scales' logs added up: the same
    likelihoods as the log-space recursion at a fraction of its cost."""
    p = np.maximum(np.asarray(probs, np.float64), 1e-30)
    if p.ndim == 2:
        p = p[None]
    n_views, steps, _ = p.shape
    exts = [[BLANK] + [x for c in lab for x in (c, BLANK)] for lab in options]
    s = max(len(e) for e in exts)
    ext_a = np.array([e + [BLANK] * (s - len(e)) for e in exts])  # options, S
    real = (np.arange(s)[None, :] < np.array([len(e) for e in exts])[:, None])[:, None, :].astype(np.float64)
    px = p[:, :, ext_a].transpose(2, 0, 1, 3) * real[:, :, None, :]  # options, views, T, S
    skip = np.zeros(ext_a.shape, np.float64)
    skip[:, 2:] = (ext_a[:, 2:] != BLANK) & (ext_a[:, 2:] != ext_a[:, :-2])
    skip = skip[:, None, :]
    n_opt = len(options)
    a = np.zeros((n_opt, n_views, s))
    a[:, :, 0] = px[:, :, 0, 0]
    if s > 1:
        a[:, :, 1] = px[:, :, 0, 1]
    log_scale = np.zeros((n_opt, n_views))
    with np.errstate(divide="ignore"):  # log(0): a text no alignment gives
        for t in range(steps):
            if t:
                nxt = a.copy()
                nxt[:, :, 1:] += a[:, :, :-1]
                nxt[:, :, 2:] += a[:, :, :-2] * skip[:, :, 2:]
                a = nxt * px[:, :, t]
            c = a.sum(axis=2)
            log_scale += np.log(c)
            a = a / np.where(c > 0, c, 1.0)[:, :, None]
        out = np.empty((n_opt, n_views))
        for i, (lab, e) in enumerate(zip(options, exts, strict=True)):
            n = len(e)
            if len(lab) > steps:
                out[i] = -np.inf
            else:
                end = a[i, :, n - 1] + (a[i, :, n - 2] if n > 1 else 0.0)
                out[i] = np.log(end) + log_scale[i]
    return out


def first_views_agree(readings: list[Reading | None]) -> bool:
    """The first views read the same complete UK mark: no need to look further (see FIRST_VIEWS)."""
    first = readings[:FIRST_VIEWS]
    return (all(r is not None and r.complete and r.format in UK_FORMATS for r in first)
            and len({r.vrm for r in first if r}) == 1)


def first_views_hopeless(readings: list[Reading | None]) -> bool:
    """The first views read nothing, or a few characters each and not the same ones, or disagree with
    neither sure of its characters (HOPEFUL_MEAN): not a plate more crops would read (lamps, grilles
    and text a detector took for a plate); no further views."""
    first = readings[:FIRST_VIEWS]
    if all(r is None or len(r.vrm) < 4 for r in first) and len({r.vrm for r in first if r}) != 1:
        return True
    return all(r is None or not r.char_confidences or float(np.mean(r.char_confidences)) < HOPEFUL_MEAN
               for r in first)


def read_views(probs: list[np.ndarray], readings: list[Reading | None] | None = None) -> Consensus:
    """The read the views together find likeliest (`readings`: each view already decoded)."""
    readings = readings if readings is not None else [decode(p) for p in probs]
    read = [(r, _labels(r, p)) for r, p in zip(readings, probs, strict=True) if r is not None]
    hidden = max((float(p[:, HIDDEN].max()) for p in probs if p.shape[1] > HIDDEN), default=0.0)
    if not read:
        return Consensus(None, 0.0, hidden)
    options = list(dict.fromkeys(lab for _, lab in read))
    if len(options) == 1:
        best_labels = options[0]
    else:
        stack = np.stack([np.asarray(p, np.float32) for p in probs])
        scores = ctc_log_likelihoods(stack, [list(lab) for lab in options]).sum(axis=1)
        best_labels = options[int(np.argmax(scores))]
    same = [r for r, lab in read if lab == best_labels]
    best = issued_letters(max(same, key=lambda r: r.confidence), probs, readings)
    return Consensus(best, len(same) / len(probs), hidden)


@cache
def _issued_mask(unissued: frozenset[str]) -> np.ndarray:
    return np.array([c.isalpha() and c not in unissued for c in ALPHABET], bool)


def issued_letters(r: Reading, probs: list[np.ndarray], readings: list[Reading | None]) -> Reading:
    """`r` with each letter its layout never carries replaced (see the module docstring): by the issued
    letter with the most probability there, summed over the views that read as many characters, its
    confidence the read letter's times that letter's share of the issued letters' probability. A letter
    for which no issued letter had more probability than every other stays as read."""
    bad = unissued_positions(r.vrm) if r.complete and r.format not in UK_FORMATS else ()
    if not bad:
        return r
    mask = _issued_mask(unissued_letters(r.vrm))
    views = [character_distributions(p) for p, v in zip(probs, readings, strict=True) if v is not None and v.complete]
    dists = [d for d in views if len(d) == len(r.vrm)]
    chars, conf = list(r.vrm), list(r.char_confidences)
    for k in bad:
        total = np.sum([d[k] for d in dists], axis=0) if dists else np.zeros(len(ALPHABET))
        issued = np.sort(total[mask])
        if issued[-1] <= issued[-2]:  # none given a chance, or no one letter more than another
            continue
        j = int(np.where(mask, total, -1.0).argmax())
        share = float(issued.sum())
        chars[k] = ALPHABET[j]
        conf[k] = conf[k] * float(total[j]) / share
    return replace(r, vrm="".join(chars), confidence=min(conf), char_confidences=tuple(conf))
