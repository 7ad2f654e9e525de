"""Accuracy on real photographs: the `real-read` (plate crops with text, and whole scenes) and
`real-detect` (scenes with plate boxes, no text) label files of the shared data set.

Three measures, each over the chosen split:
- crops: the reader alone on a labelled plate crop, read along the crop's edges and along the outline
  the refiner finds inside it (`Recogniser.read_crop`);
- scenes: the whole recogniser end to end on a photograph, a plate read when a read overlapping its
  box equals its text; reads of no labelled plate are junk;
- detection: recall at IoU >= 0.5 of the recogniser's plate outlines against the labelled boxes; the
  regions overlapping no labelled plate (junk regions, each a cost in time), and the photo read end to
  end: its reads of no labelled plate, published or not (junk reads; a user sees the published ones).
  Detection recall is also given per labelled plate width (`plate_width`, WIDTH_BANDS) for scenes.
Wrong reads count reads at or above the publishing threshold that are not the plate's text (a
misread plate or junk), over all reads at or above it; a detection-only photo has no text to check
its reads on plates against, so only its junk is counted there.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent.recognise.detector import _iou, overlap
from agent.recognise.image_file import read_image
from agent.recognise.recogniser import Recogniser

DETECT_IOU = 0.5
JUNK_OVERLAP = 0.3  # a region or read overlapping every labelled plate less than this is junk
# Plate widths (labelled box, photo pixels) that detection recall is also given for: half the plates the
# finder misses in the real-detect dev photos are under 15 px wide (session 26), too small to read.
WIDTH_BANDS = (15, 30, 60, 120)


@dataclass(slots=True)
class RealItem:
    file: Path
    plates: list[dict]  # bbox [x, y, w, h], text (None: detection only)
    source: str
    licence: str
    country: str
    kind: str  # "crop", "scene" or "detect"


@dataclass(slots=True)
class Tally:
    counts: Counter = field(default_factory=Counter)
    ms: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        c, n = self.counts, max(self.counts["plates"], 1)
        out: dict[str, object] = {"images": c["images"], "plates": c["plates"]}
        if c["detected"] or "detected" in c:
            out["detection_recall"] = round(c["detected"] / n, 4)
        if c["texts"]:
            out["exact"] = round(c["exact"] / c["texts"], 4)
            out["within_one"] = round(c["within1"] / c["texts"], 4)
            # what a user sees by default: plates read exactly at or above the threshold
            out["exact_published"] = round(c["exact_published"] / c["texts"], 4)
        out["reads_at_threshold"] = c["published"]
        if c["texts"] or not c["plates"]:  # a detection-only photo's reads on its plates cannot be checked
            out["wrong_at_threshold"] = c["wrong_published"]
            out["wrong_rate_at_threshold"] = round(c["wrong_published"] / max(c["published"], 1), 4)
        images = max(c["images"], 1)
        out["junk_reads_per_image"] = round(c["junk"] / images, 3)
        out["junk_published_per_image"] = round(c["junk_published"] / images, 3)
        if "junk_regions" in c:
            out["junk_regions_per_image"] = round(c["junk_regions"] / images, 3)
        if self.ms:
            out["ms_p50"] = round(statistics.median(self.ms), 1)
            out["ms_p99"] = round(float(np.percentile(self.ms, 99)), 1)
        return out


def is_real_labels(path: Path) -> bool:
    """A real-read or real-detect label file (its first line has `split` and `source`)."""
    if path.suffix != ".jsonl":
        return False
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:
                    return False
                return isinstance(r, dict) and "split" in r and "source" in r
    return False


HELD_OUT = "held-out"  # a split of its own: the tenth of real-read's train split no reader trains on


def held_out(r: dict) -> bool:
    """A tenth of the real-read train split, by plate (all crops of one plate together), that the
    reader never trains on: the real reads the confidence calibration is fitted on
    (`scripts/fit_confidence.py --real`) and a real measure to choose models by without touching the
    dev split (`anpr-edge eval ... --split held-out`)."""
    import hashlib

    return int(hashlib.sha1(f"{r['source']}|{r['text']}".encode()).hexdigest(), 16) % 10 == 3


def read_labels(path: Path, split: str | None = "dev", licences: tuple[str, ...] = ()) -> list[dict]:
    """The label lines of one split (None: all; HELD_OUT: the held-out tenth of the train split's
    texts) under the given licence families (none: all)."""
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            if not isinstance(r, dict):
                raise TypeError(f"a label line is a JSON object, not {type(r).__name__}")
            if split == HELD_OUT:
                ok = r["split"] == "train" and "text" in r and held_out(r)
            else:
                ok = not split or r["split"] == split
            keep = ok and (
                not licences or licence_allowed(str(r.get("licence", "")), licences))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"{path}:{n}: bad label line: {e}") from None
        if keep:
            out.append({**r, "_line": n})
    return out


def load_real(path: Path, split: str | None = "dev", licences: tuple[str, ...] = ()) -> list[RealItem]:
    """Items of a real label file; a real-read line gives a crop item and, where it has one, a scene
    item (several crops of one scene make one scene item)."""
    base = path.parent
    items: list[RealItem] = []
    scenes: dict[str, RealItem] = {}
    for r in read_labels(path, split, licences):
        n = r["_line"]
        try:
            src, lic = str(r["source"]), str(r.get("licence", ""))
            if "text" in r:
                text = str(r["text"]).upper()
                country = str(r.get("country", "?"))
                items.append(RealItem(base / r["file"], [{"bbox": None, "text": text}], src, lic, country, "crop"))
                if r.get("scene"):
                    plate = {"bbox": [float(v) for v in r["bbox_in_scene"]], "text": text}
                    s = scenes.get(r["scene"])
                    if s is None:
                        s = scenes[r["scene"]] = RealItem(base / r["scene"], [], src, lic, country, "scene")
                    s.plates.append(plate)
            else:
                plates = [{"bbox": [float(v) for v in p["bbox"]], "text": None} for p in r["plates"]]
                items.append(RealItem(base / r["file"], plates, src, lic, "?", "detect"))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"{path}:{n}: bad label line: {e}") from None
    return items + list(scenes.values())


PERMISSIVE = ("CC0", "CC BY", "MIT", "Apache", "BSD")


def licence_allowed(licence: str, allowed: tuple[str, ...]) -> bool:
    """`allowed` names licence families ("CC0", "MIT", "CC BY", "ODbL", ...); "permissive" stands for
    PERMISSIVE. "CC BY" is attribution only (not BY-SA, BY-NC, BY-ND); a licence of "none stated"
    never matches a family."""
    names = [a for x in allowed for a in (PERMISSIVE if x.strip().lower() == "permissive" else (x,))]
    lic = " ".join(licence.lower().replace("-", " ").split())
    for a in names:
        fam = " ".join(a.strip().lower().replace("-", " ").split())
        if fam and lic.startswith(fam):
            rest = lic[len(fam):].split()
            if not (fam == "cc by" and rest and rest[0] in ("sa", "nc", "nd")):
                return True
    return False


def evaluate_real(path: Path, rec: Recogniser, min_confidence: float, split: str | None = "dev",
                  licences: tuple[str, ...] = (), limit: int | None = None) -> dict:
    items = load_real(path, split, licences)[:limit]
    if not items:
        raise ValueError(f"{path}: no items in split {split!r}" + (f" with licences {licences}" if licences else ""))
    groups: dict[str, dict[str, Tally]] = {"kind": defaultdict(Tally), "source": defaultdict(Tally),
                                           "country": defaultdict(Tally)}
    by_width: dict[str, Counter] = defaultdict(Counter)  # scene plates: labelled and found, per width band
    unreadable = 0
    for it in items:
        img, _ = read_image(it.file)
        if img is None:
            unreadable += 1
            continue
        t0 = time.perf_counter()
        found: list[bool] = []
        c = _score_crop(img, it, rec, min_confidence) if it.kind == "crop" else _score_scene(img, it, rec,
                                                                                              min_confidence, found)
        ms = (time.perf_counter() - t0) * 1000
        if it.kind != "crop":  # a crop is its plate whole: nothing to find
            for p, hit in zip(it.plates, found, strict=True):
                band = by_width[f"{it.kind}:{width_band(p['bbox'][2])}"]
                band["plates"] += 1
                band["detected"] += hit
        keys = {"kind": it.kind, "source": f"{it.kind}:{it.source}", "country": f"{it.kind}:{it.country}"}
        for g, k in keys.items():
            if g == "country" and it.kind == "detect":
                continue
            tally = groups[g][k]
            tally.counts.update(c)
            tally.counts["images"] += 1
            tally.ms.append(ms)
    return {"labels": str(path), "split": split, "licences": list(licences), "min_confidence": min_confidence,
            "unreadable": unreadable,
            **{g: {k: v.summary() for k, v in sorted(d.items())} for g, d in groups.items()},
            "plate_width": {f"{kind}:{band}": {"plates": c["plates"],
                                               "detection_recall": round(c["detected"] / c["plates"], 4)}
                            for kind in sorted({k.split(":")[0] for k in by_width}) for band in WIDTH_NAMES
                            if (c := by_width.get(f"{kind}:{band}"))}}


def width_band(width: float, bands: tuple[float, ...] = WIDTH_BANDS) -> str:
    """The band of `bands` (px, ascending; lower bound inclusive) a plate `width` px wide is counted in:
    "<15", "15-30", ..., ">=120"."""
    lo = max((b for b in bands if width >= b), default=None)
    hi = min((b for b in bands if width < b), default=None)
    return f"<{hi:g}" if lo is None else f">={lo:g}" if hi is None else f"{lo:g}-{hi:g}"


WIDTH_NAMES = tuple(width_band(w) for w in (0, *WIDTH_BANDS))


def _score_crop(img: np.ndarray, it: RealItem, rec: Recogniser, thr: float) -> Counter:
    _d, reading, _two, _res = rec.read_crop(img)
    text = it.plates[0]["text"]
    c = Counter(plates=1, texts=1, detected=1)
    if reading is not None:
        from agent.pipeline.tracker import edit_distance

        c["exact"] += reading.vrm == text
        c["within1"] += edit_distance(reading.vrm, text) <= 1
        if reading.confidence >= thr:
            c["published"] += 1
            c["exact_published"] += reading.vrm == text
            c["wrong_published"] += reading.vrm != text
    return c


def _score_scene(img: np.ndarray, it: RealItem, rec: Recogniser, thr: float, found: list[bool] | None = None
                 ) -> Counter:
    """`found`, when given, gets whether each of `it.plates` was detected, in order."""
    from agent.pipeline.tracker import edit_distance

    found = found if found is not None else []
    c = Counter()
    if it.kind == "detect":
        dets = rec.detect(img)
        boxes = [d.extent for d in dets]
        used: set[int] = set()
        for p in it.plates:
            c["plates"] += 1
            best = max(((i, _iou(tuple(p["bbox"]), b)) for i, b in enumerate(boxes) if i not in used),
                       key=lambda x: x[1], default=(None, 0.0))
            hit = best[0] is not None and best[1] >= DETECT_IOU
            found.append(hit)
            if hit:
                used.add(best[0])
                c["detected"] += 1
        c["junk_regions"] += sum(1 for i, b in enumerate(boxes) if i not in used
                                 and all(overlap(p["bbox"], b) < JUNK_OVERLAP for p in it.plates))
        for r in rec.read_regions(img, dets):
            junk = all(overlap(p["bbox"], r.extent) < JUNK_OVERLAP for p in it.plates)
            c["junk"] += junk
            if r.confidence >= thr:
                c["published"] += 1
                c["junk_published"] += junk
        c.setdefault("detected", 0)
        return c
    reads = rec.recognise(img)
    matched: set[int] = set()
    for p in it.plates:
        c["plates"] += 1
        c["texts"] += 1
        near = [i for i, r in enumerate(reads) if i not in matched and overlap(p["bbox"], r.bbox) > JUNK_OVERLAP]
        hit = any(_iou(tuple(p["bbox"]), reads[i].extent) >= DETECT_IOU for i in near)
        found.append(hit)
        c["detected"] += hit
        if not near:
            continue
        i = min(near, key=lambda i: edit_distance(reads[i].vrm, p["text"]))
        matched.update(near)
        c["exact"] += reads[i].vrm == p["text"]
        c["exact_published"] += reads[i].vrm == p["text"] and reads[i].confidence >= thr
        c["within1"] += edit_distance(reads[i].vrm, p["text"]) <= 1
    for i, r in enumerate(reads):
        ok = i in matched and any(r.vrm == p["text"] for p in it.plates)
        c["junk"] += i not in matched
        if r.confidence >= thr:
            c["published"] += 1
            c["wrong_published"] += not ok
            c["junk_published"] += i not in matched
    c.setdefault("detected", 0)
    return c
