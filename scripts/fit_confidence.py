"""Fit the read-confidence calibration (models/confidence.json) on simulated scenes and, with
--real, on real photographs.

Run after training the reader (it calibrates that reader): renders labelled scenes from a seed used
by nothing else, reads them with the shipped models, labels each read right or wrong (reads of partly
hidden plates and reads where there is no plate included) and fits a logistic model of correctness.
With --real DIR it also reads the real plate crops the reader never trained on (the held-out tenth of
real-read's train split, `real_data.held_out`), and real-detect train scenes, whose reads of no
labelled plate are wrong reads. No TensorFlow needed.

    python scripts/fit_confidence.py --seed 8200001 --count 6000 --real ../shared/data
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def collect(labels: Path, rec) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    from agent.recognise.confidence import read_features
    from sim.evaluate import load_labels, overlap

    xs, ys = [], []
    for it in load_labels(labels):
        for r in rec.recognise(cv2.imread(str(it.file), cv2.IMREAD_UNCHANGED)):
            if not r.complete:
                continue
            near = [p for p in it.plates if overlap(p["bbox"], r.bbox) > 0.3]
            if near and not any(p.get("in_frame", True) for p in near):
                continue  # a plate cut by the frame edge: not labelled well enough to judge
            xs.append(read_features(r.vrm, r.char_confidences, r.format, r.size[1], r.det_score, r.two_line,
                                    r.agreement, r.hidden))
            ys.append(any(p["vrm"] == r.vrm for p in near))
    return np.array(xs), np.array(ys, float)


def collect_real(data: Path, rec, scenes: int, licences: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Real reads: the held-out crops read as the plate's outline (right or wrong by their text), and
    reads in real scenes that overlap no labelled plate (wrong: junk)."""
    import cv2
    from real_data import detect_items, read_items

    from agent.recognise.confidence import read_features
    from agent.recognise.detector import Detection
    from sim.evaluate import overlap

    xs, ys = [], []
    for r in read_items(data, licences, calibration=True):
        img = cv2.imread(str(data / "real-read" / r["file"]), cv2.IMREAD_COLOR)
        if img is None:
            continue
        h, w = img.shape[:2]
        d = Detection(np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64), 1.0)
        d, reading, two, res = rec.read_plate(img, d)
        if reading is None or not reading.complete:
            continue
        xs.append(read_features(reading.vrm, reading.char_confidences, reading.format, d.size[1], d.score, two,
                                res.agreement, res.hidden))
        ys.append(reading.vrm == r["text"])
    for r in detect_items(data, licences)[:scenes]:
        img = cv2.imread(str(data / "real-detect" / r["file"]), cv2.IMREAD_COLOR)
        if img is None:
            continue
        for rd in rec.recognise(img):
            if rd.complete and all(overlap(p["bbox"], rd.bbox) < 0.3 for p in r["plates"]):
                xs.append(read_features(rd.vrm, rd.char_confidences, rd.format, rd.size[1], rd.det_score,
                                        rd.two_line, rd.agreement, rd.hidden))
                ys.append(False)
    return np.array(xs).reshape(-1, len(xs[0]) if xs else 0), np.array(ys, float)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=8_200_001)
    ap.add_argument("--count", type=int, default=6000)
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    ap.add_argument("--real", type=Path, default=None, help="the shared real-photo data folder")
    ap.add_argument("--real-scenes", type=int, default=1500, help="real-detect train scenes read for junk reads")
    ap.add_argument("--licences", default="", help="licence families of the real items (see train_reader)")
    args = ap.parse_args()

    from agent.recognise import Recogniser
    from agent.recognise.confidence import ConfidenceModel, fit
    from sim.dataset import parse_conditions, write_dataset

    t0 = time.time()
    rec = Recogniser(args.models, threads=1, calibrated=False)  # fit on the reader's own probabilities
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset("scenes", args.count, args.seed, Path(tmp), parse_conditions(None))
        x, y = collect(Path(tmp) / "labels.jsonl", rec)
    fitted_on = f"{args.count} simulated scenes, seed {args.seed}"
    if args.real:
        sys.path.insert(0, str(ROOT / "scripts"))
        lic = tuple(v.strip() for v in args.licences.split(",") if v.strip())
        xr, yr = collect_real(args.real.resolve(), rec, args.real_scenes, lic)
        print(f"real: {len(yr)} reads ({int(yr.sum())} right)")
        x, y = np.concatenate([x, xr]), np.concatenate([y, yr])
        fitted_on += (f"; {len(yr)} real reads (held-out real-read train crops, junk in {args.real_scenes} "
                      f"real-detect train scenes)")
    w, b = fit(x, y)
    model = ConfidenceModel(tuple(float(v) for v in w), b, fitted_on)
    p = np.array([model(v) for v in x])
    table = []
    for thr in (0.5, 0.8, 0.9, 0.95, 0.98):
        kept = p >= thr
        table.append({"threshold": thr, "reads": int(kept.sum()),
                      "precision": round(float(y[kept].mean()) if kept.any() else 1.0, 4)})
    out = args.models / "confidence.json"
    out.write_text(model.to_json(reads=len(y), correct=int(y.sum()), views=rec.views, on_fit_set=table),
                   encoding="utf-8")
    print(f"{len(y)} reads ({int(y.sum())} right) in {time.time() - t0:.0f} s -> {out}")
    for row in table:
        print(row)


if __name__ == "__main__":
    main()
