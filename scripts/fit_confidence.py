"""Fit the read-confidence calibration (models/confidence.json) on simulated scenes and, with
--real, on real photographs.

Run after training the reader (it calibrates that reader): renders labelled scenes from a seed used
by nothing else, reads them with the shipped models, labels each read right or wrong (reads of partly
hidden plates and reads where there is no plate included) and fits a logistic model of correctness.
With --real DIR it also reads the real plate crops the reader never trained on (the held-out tenth of
real-read's train split, `sim.evaluate_real.held_out`) and their scenes end to end, and real-detect train
scenes, whose reads of no labelled plate are wrong reads. No TensorFlow needed.

Real reads are few beside simulated ones and the junk regions of real scenes outnumber right real
reads thirty to one, so each group is weighted to a set share of the fit (`--real-weight`,
`--junk-weight`): otherwise either the simulator decides what real photographs publish, or junk
does and nothing real reaches the threshold. Reads are saved (`--save-reads`) so a refit with
other weights or features (`--reads`) needs no recogniser run.

    python scripts/fit_confidence.py --seed 8200001 --count 6000 --real ../shared/data
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GROUPS = ("sim", "real", "junk")  # simulated reads; real reads of labelled plates; real reads of no plate


def record(group: str, vrm: str, char_confidences, fmt: str, height: float, det_score: float, two: bool,
           agreement: float, hidden: float, right: bool) -> dict:
    """One read as the calibration sees it: what `read_features` needs, its group and whether it was right."""
    return {"group": group, "vrm": vrm, "cc": [round(float(c), 6) for c in char_confidences], "format": fmt,
            "height": round(float(height), 3), "det_score": round(float(det_score), 6), "two": bool(two),
            "agreement": round(float(agreement), 6), "hidden": round(float(hidden), 6), "right": bool(right)}


def _plate_record(group: str, r, right: bool) -> dict:
    return record(group, r.vrm, r.char_confidences, r.format, r.size[1], r.det_score, r.two_line, r.agreement,
                  r.hidden, right)


def collect(labels: Path, rec) -> list[dict]:
    from agent.recognise.image_file import read_image
    from sim.evaluate import load_labels, overlap

    out = []
    for it in load_labels(labels):
        img, _ = read_image(it.file)  # as `anpr-edge eval` reads them
        if img is None:
            continue
        for r in rec.recognise(img):
            if not r.complete:
                continue
            near = [p for p in it.plates if overlap(p["bbox"], r.bbox) > 0.3]
            if near and not any(p.get("in_frame", True) for p in near):
                continue  # a plate cut by the frame edge: not labelled well enough to judge
            out.append(_plate_record("sim", r, any(p["vrm"] == r.vrm for p in near)))
    return out


def collect_real(data: Path, rec, scenes: int, licences: tuple[str, ...]) -> list[dict]:
    """Real reads: the held-out crops read as the plate's outline and their scenes read end to end
    (right or wrong by their text; a scene's reads of no labelled plate are junk), and reads in
    real-detect train scenes that overlap no labelled plate (junk)."""
    from real_data import detect_items, read_items

    from agent.recognise.detector import Detection
    from agent.recognise.image_file import read_image
    from sim.evaluate import overlap

    out = []
    held = read_items(data, licences, calibration=True)
    for r in held:
        img = read_image(data / "real-read" / r["file"])[0]
        if img is None:
            continue
        d, reading, two, res = rec.read_plate(img, Detection.whole(img))
        if reading is None or not reading.complete:
            continue
        out.append(record("real", reading.vrm, reading.char_confidences, reading.format, d.size[1], d.score, two,
                          res.agreement, res.hidden, reading.vrm == r["text"]))
    seen: set[str] = set()
    for r in held:
        if not r.get("scene") or r["scene"] in seen:
            continue
        seen.add(r["scene"])
        img = read_image(data / "real-read" / r["scene"])[0]
        if img is None:
            continue
        box = [float(v) for v in r["bbox_in_scene"]]
        for rd in rec.recognise(img):
            if rd.complete:
                on_plate = overlap(box, rd.bbox) >= 0.3
                out.append(_plate_record("real" if on_plate else "junk", rd, on_plate and rd.vrm == r["text"]))
    for r in detect_items(data, licences)[:scenes]:
        img = read_image(data / "real-detect" / r["file"])[0]
        if img is None:
            continue
        for rd in rec.recognise(img):
            if rd.complete and all(overlap(p["bbox"], rd.bbox) < 0.3 for p in r["plates"]):
                out.append(_plate_record("junk", rd, False))
    return out


def design(records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    from agent.recognise.confidence import FEATURES, read_features

    x = [read_features(r["vrm"], tuple(r["cc"]), r["format"], r["height"], r["det_score"], r["two"],
                       r["agreement"], r["hidden"]) for r in records]
    return np.array(x).reshape(-1, len(FEATURES)), np.array([r["right"] for r in records], float)


def group_weights(records: list[dict], real_weight: float, junk_weight: float) -> np.ndarray:
    """Per-read weights giving the real and junk groups `real_weight` and `junk_weight` times the
    simulated group's total weight (a group's reads weigh the same; a missing group weighs nothing)."""
    groups = np.array([r["group"] for r in records])
    n_sim = max(int((groups == "sim").sum()), 1)
    w = np.ones(len(records))
    for g, share in (("real", real_weight), ("junk", junk_weight)):
        n = int((groups == g).sum())
        if n:
            w[groups == g] = share * n_sim / n
    return w


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=8_200_001)
    ap.add_argument("--count", type=int, default=6000)
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    ap.add_argument("--real", type=Path, default=None, help="the shared real-photo data folder")
    ap.add_argument("--real-scenes", type=int, default=1500, help="real-detect train scenes read for junk reads")
    ap.add_argument("--licences", default="", help="licence families of the real items (see train_reader)")
    ap.add_argument("--real-weight", type=float, default=0.25,
                    help="the real reads' total weight as a share of the simulated reads'")
    ap.add_argument("--junk-weight", type=float, default=0.1,
                    help="the real junk reads' total weight as a share of the simulated reads'")
    ap.add_argument("--l2", type=float, default=1e-3, help="ridge on the standardised features")
    ap.add_argument("--save-reads", type=Path, default=None, help="write the collected reads here (JSON lines)")
    ap.add_argument("--reads", type=Path, default=None,
                    help="fit on reads saved by --save-reads instead of reading anything")
    args = ap.parse_args()

    from agent.recognise.confidence import ConfidenceModel, fit

    t0 = time.time()
    if args.reads:
        lines = args.reads.read_text(encoding="utf-8").splitlines()
        meta, records = json.loads(lines[0]), [json.loads(v) for v in lines[1:]]
        fitted_on, views = meta["fitted_on"], meta["views"]
    else:
        from agent.recognise import Recogniser
        from sim.dataset import parse_conditions, write_dataset

        rec = Recogniser(args.models, threads=1, calibrated=False)  # fit on the reader's own probabilities
        views = rec.views
        with tempfile.TemporaryDirectory() as tmp:
            write_dataset("scenes", args.count, args.seed, Path(tmp), parse_conditions(None))
            records = collect(Path(tmp) / "labels.jsonl", rec)
        fitted_on = f"{args.count} simulated scenes, seed {args.seed}"
        if args.real:
            sys.path.insert(0, str(ROOT / "scripts"))
            lic = tuple(v.strip() for v in args.licences.split(",") if v.strip())
            records += collect_real(args.real.resolve(), rec, args.real_scenes, lic)
            fitted_on += ("; real reads: held-out real-read train crops and their scenes, junk in "
                          f"{args.real_scenes} real-detect train scenes")
        if args.save_reads:
            args.save_reads.write_text("\n".join(json.dumps(v) for v in [{"fitted_on": fitted_on, "views": views},
                                                                       *records]) + "\n", encoding="utf-8")
    x, y = design(records)
    sw = group_weights(records, args.real_weight, args.junk_weight)
    groups = np.array([r["group"] for r in records])
    counts = {g: [int((groups == g).sum()), int(y[groups == g].sum())] for g in GROUPS}
    print("reads (right) per group:", counts)
    w, b = fit(x, y, l2=args.l2, sample_weight=sw)
    model = ConfidenceModel(tuple(float(v) for v in w), b, fitted_on)
    p = np.array([model(v) for v in x])
    table = []
    for thr in (0.5, 0.8, 0.9, 0.95, 0.98):
        row: dict[str, object] = {"threshold": thr}
        for g in GROUPS:
            kept = (p >= thr) & (groups == g)
            row[g] = {"reads": int(kept.sum()), "right": int(y[kept].sum())}
        table.append(row)
    out = args.models / "confidence.json"
    out.write_text(model.to_json(reads=counts, views=views, weights_of_groups={"real": args.real_weight,
                                 "junk": args.junk_weight}, l2=args.l2, on_fit_set=table), encoding="utf-8")
    print(f"{len(y)} reads ({int(y.sum())} right) in {time.time() - t0:.0f} s -> {out}")
    for row in table:
        print(row)


if __name__ == "__main__":
    main()
