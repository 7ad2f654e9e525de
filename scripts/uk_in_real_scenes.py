"""UK plates in real photographs, end to end: a rendered UK plate composited over one labelled plate of
each real-detect photo (the way the reader's training composites them, `real_data.composite_uk`: lit,
blurred and compressed like the photo around it), then the whole recogniser on the photo; counted in
all, per source, per layout (a square box gets a two-line plate) and per band of plate width.

Why: the shared set has 10 real UK crops and no UK scene, and UK marks are what the unit reads. On the
dev split (photos no model trained on) this measures whether real vehicles, backgrounds, light and
outlines let a UK mark be found and read; it is a proxy, not real UK photographs: the plate itself is
rendered the way the reader trained on.

    python scripts/uk_in_real_scenes.py --split dev --min-width 40
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "scripts"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))


WIDTH_BANDS = (60, 90, 150)  # px: the labelled plate's width, where reading gets easier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the shared data set")
    ap.add_argument("--split", default="dev", choices=("dev", "train"))
    ap.add_argument("--min-width", type=float, default=40.0, help="labelled plates at least this wide (px)")
    ap.add_argument("--models", type=Path, default=None, help="models folder (default: the shipped ones)")
    ap.add_argument("--threshold", type=float, default=0.95, help="publishing threshold")
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()

    from real_data import bbox_quad, composite_uk

    from agent.recognise import Recogniser
    from sim.evaluate import overlap
    from sim.evaluate_real import width_band

    labels = args.data / "real-detect" / "labels.jsonl"
    if not labels.is_file():
        raise SystemExit(f"{labels}: not found (--data: the shared data set's folder)")
    rec = Recogniser(args.models, threads=1)
    rng = np.random.default_rng(args.seed)
    total: Counter = Counter()
    groups: dict[str, dict[str, Counter]] = {"source": {}, "layout": {}, "width": {}}
    for line in labels.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        plates = [p for p in r["plates"] if p["bbox"][2] >= args.min_width]
        if r["split"] != args.split or not plates:
            continue
        img = cv2.imread(str(args.data / "real-detect" / r["file"]), cv2.IMREAD_COLOR)
        if img is None:
            print(f"{r['file']}: unreadable, skipped", file=sys.stderr)
            continue
        box = plates[0]["bbox"]
        img, text, two = composite_uk(img, bbox_quad(box), rng)
        if text is None:
            continue
        on = [x for x in rec.recognise(img) if overlap(box, x.bbox) >= 0.3]
        pub = [x for x in on if x.confidence >= args.threshold]
        c = Counter(plates=1, found=bool(on), exact=any(x.vrm == text for x in on),
                    published=len(pub), wrong_published=sum(x.vrm != text for x in pub))
        total.update(c)
        keys = {"source": r["source"].split("@")[0], "layout": "two-line" if two else "one-line",
                "width": width_band(box[2], WIDTH_BANDS)}
        for g, k in keys.items():
            groups[g].setdefault(k, Counter()).update(c)
    if not total:
        raise SystemExit(f"no {args.split} photo has a plate {args.min_width:g} px wide or more")

    def summary(c: Counter) -> dict[str, object]:
        n = c["plates"]
        return {"plates": n, "found": round(c["found"] / n, 4), "exact": round(c["exact"] / n, 4),
                "published": c["published"], "wrong_published": c["wrong_published"]}

    print(json.dumps({"split": args.split, "min_width": args.min_width, "threshold": args.threshold,
                      "all": summary(total),
                      **{g: {k: summary(v) for k, v in sorted(d.items())} for g, d in groups.items()}},
                     indent=2))


if __name__ == "__main__":
    main()
