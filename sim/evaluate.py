"""Accuracy of the recogniser on a labelled set: sim `labels.jsonl` or a `labels.csv` (file,vrm)."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from agent.config import DEFAULT_MIN_CONFIDENCE
from agent.pipeline.tracker import edit_distance
from agent.recognise.detector import overlap
from agent.recognise.image_file import read_image
from agent.recognise.recogniser import PlateRead, Recogniser

THRESHOLDS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


@dataclass(slots=True)
class Item:
    file: Path
    plates: list[dict]  # vrm, format, bbox (None for csv)
    conditions: str


def load_labels(path: Path) -> list[Item]:
    base = path.parent
    items: list[Item] = []
    if path.suffix == ".jsonl":
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                items.append(Item(base / r["file"], list(r.get("plates", [])), str(r.get("conditions", "unknown"))))
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{n}: bad label line: {e}") from None
    elif path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            for n, row in enumerate(csv.DictReader(f), 2):
                if not row.get("file") or row.get("vrm") is None:
                    raise ValueError(f"{path}:{n}: need columns file,vrm")
                vrm = "".join(row["vrm"].split()).upper()
                items.append(Item(base / row["file"], [{"vrm": vrm, "format": "photo", "bbox": None}] if vrm else [],
                                  "photo"))
    else:
        raise ValueError(f"{path}: expected labels.jsonl or labels.csv")
    return items


def evaluate(labels: Path, rec: Recogniser, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
             require_in_frame: bool = True, min_char_px: float = 12.0) -> dict:
    """Plates smaller than `min_char_px` (character height, where labels give it) are not scored: a
    commissioned installation gives at least that (docs/commissioning.md); reads of them are not
    counted as false either.

    Plates labelled `occluded` (characters covered by a tow bar or a nearer vehicle) cannot be read
    exactly: recall and read rates are over the visible plates, the partly hidden ones are reported
    as their own group, and every read of them that is not exactly right counts against precision.
    """
    items = load_labels(labels)
    tot = Counter()
    per_fmt: dict[str, Counter] = defaultdict(Counter)
    per_cond: dict[str, Counter] = defaultdict(Counter)
    confusions: Counter = Counter()
    hidden_c = Counter()  # partly hidden plates
    scored: list[tuple[float, bool, bool]] = []  # (confidence, correct, partly hidden) of matched reads
    false_by_thr = Counter()
    for it in items:
        img, _ = read_image(it.file)
        if img is None:
            tot["unreadable"] += 1
            continue
        tot["images"] += 1
        reads = rec.recognise(img)
        truths = [p for p in it.plates if (not require_in_frame or p.get("in_frame", True))
                  and p.get("char_height_px", min_char_px) >= min_char_px]
        matched: set[int] = set()
        for p in truths:
            best: PlateRead | None = None
            for i, r in enumerate(reads):
                if i in matched:
                    continue
                hit = overlap(p["bbox"], r.bbox) > 0.3 if p.get("bbox") else edit_distance(r.vrm, p["vrm"]) <= 2
                if hit and (best is None or edit_distance(r.vrm, p["vrm"]) < edit_distance(best.vrm, p["vrm"])):
                    best = r
            fmt, cond = str(p.get("format", "?")), it.conditions
            hidden = bool(p.get("occluded"))
            groups = (hidden_c,) if hidden else (tot, per_fmt[fmt], per_cond[cond])
            for c in groups:
                c["plates"] += 1
            if best is None:
                continue
            matched.add(reads.index(best))
            ok = best.vrm == p["vrm"]
            ed = edit_distance(best.vrm, p["vrm"])
            scored.append((best.confidence, ok, hidden))
            if hidden:
                hidden_c["confident_wrong"] += (not ok) and best.confidence >= min_confidence
            for c in groups:
                c["detected"] += 1
                c["exact"] += ok
                c["within1"] += ed <= 1
            if len(best.vrm) == len(p["vrm"]) and not hidden:
                for a, b in zip(p["vrm"], best.vrm, strict=True):
                    if a != b:
                        confusions[f"{a}->{b}"] += 1
        stray = [r for i, r in enumerate(reads) if i not in matched and not _near_unlabelled(r, it.plates)]
        for thr in THRESHOLDS:
            false_by_thr[thr] += any(r.confidence >= thr for r in stray)

    def rates(c: Counter) -> dict:
        n = max(c["plates"], 1)
        return {"plates": c["plates"], "detection_recall": round(c["detected"] / n, 4),
                "exact": round(c["exact"] / n, 4), "within_one": round(c["within1"] / n, 4)}

    calibration = []
    for thr in THRESHOLDS:
        kept = [ok for conf, ok, _h in scored if conf >= thr]
        visible = sum(1 for conf, _ok, h in scored if conf >= thr and not h)
        calibration.append({"threshold": thr, "coverage": round(visible / max(tot["plates"], 1), 4),
                            "precision": round(sum(kept) / max(len(kept), 1), 4),
                            "false_read_frame_rate": round(false_by_thr[thr] / max(tot["images"], 1), 5)})
    at = [conf >= min_confidence for conf, _ok, _h in scored]
    return {
        "labels": str(labels), "images": tot["images"], "unreadable": tot["unreadable"], **rates(tot),
        "min_confidence": min_confidence, "min_char_px": min_char_px,
        "precision_at_threshold": round(sum(ok for (conf, ok, _h) in scored if conf >= min_confidence)
                                        / max(sum(at), 1), 4),
        "partly_hidden": {**rates(hidden_c), "confident_wrong": hidden_c["confident_wrong"]},
        "per_format": {k: rates(v) for k, v in sorted(per_fmt.items())},
        "per_condition": {k: rates(v) for k, v in sorted(per_cond.items())},
        "confused": dict(confusions.most_common(10)),
        "calibration": calibration,
    }


def _near_unlabelled(r: PlateRead, plates: list[dict]) -> bool:
    """A read of a plate that is labelled but excluded (cut by the frame edge) is not a false read."""
    return any(p.get("bbox") and overlap(p["bbox"], r.bbox) > 0.3 for p in plates)
