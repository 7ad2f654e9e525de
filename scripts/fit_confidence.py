"""Fit the read-confidence calibration (models/confidence.json) on simulated scenes.

Run after training the reader (it calibrates that reader): renders labelled scenes from a seed used
by nothing else, reads them with the shipped models, labels each read right or wrong (reads of partly
hidden plates and reads where there is no plate included) and fits a logistic model of correctness.
No TensorFlow needed.

    python scripts/fit_confidence.py --seed 8200001 --count 6000
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

    from agent.evaluate import load_labels, overlap
    from agent.recognise.confidence import read_features

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=8_200_001)
    ap.add_argument("--count", type=int, default=6000)
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    args = ap.parse_args()

    from agent.recognise import Recogniser
    from agent.recognise.confidence import ConfidenceModel, fit
    from sim.dataset import parse_conditions, write_dataset

    t0 = time.time()
    rec = Recogniser(args.models, threads=1, calibrated=False)  # fit on the reader's own probabilities
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset("scenes", args.count, args.seed, Path(tmp), parse_conditions(None))
        x, y = collect(Path(tmp) / "labels.jsonl", rec)
    w, b = fit(x, y)
    model = ConfidenceModel(tuple(float(v) for v in w), b, f"{args.count} simulated scenes, seed {args.seed}")
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
