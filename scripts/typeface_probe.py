"""How well a reader reads clean plates in a typeface: every letter A-Z in the second place of F?264CL,
drawn black on white in each given typeface at each of its stroke weights and three widths, read by the
reader alone (no detector, no calibration). Clean, large characters: what fails here is the shape of a
letter in that typeface (or the reader's expectation of its neighbours), not blur or outline.

By default the typefaces are DejaVu Sans Mono and Mono Bold, which no training run sets plates in
(`typeface_glyphs.FONT_FILES` leaves them out): a measure of reading a typeface never seen. Its zero
carries a dot, so the texts have none.

    python scripts/typeface_probe.py [--models DIR] [--typefaces DejaVuSansMono.ttf,...]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import train_common  # noqa: F401  (puts the repository on sys.path)
from typeface_glyphs import FONT_DIR, ink, weights

from agent.recognise.decode import decode
from agent.recognise.preprocess import reader_input
from agent.recognise.runtime import Model, shipped_models_dir

HELD_OUT = ("DejaVuSansMono-Bold.ttf", "DejaVuSansMono.ttf")
WIDTHS = (0.65, 0.8, 0.95)
CH = 64  # character height, px


def plate(text: str, face: Path, weight: int, width: float) -> np.ndarray:
    """Grey plate: the text in two groups after its second and fifth characters, margins round it."""
    inks = [ink(face, c, weight) for c in text]
    inks = [cv2.resize(t, (max(2, round(CH * t.shape[1] / t.shape[0] * width)), CH), interpolation=cv2.INTER_AREA)
            for t in inks]
    gap, group_gap = 8, 20
    w = sum(t.shape[1] for t in inks) + gap * (len(text) - 1) + 2 * group_gap + 60
    out = np.full((CH + 30, w), 235, np.float32)
    x = 30
    for i, t in enumerate(inks):
        out[15:15 + CH, x:x + t.shape[1]] = out[15:15 + CH, x:x + t.shape[1]] * (1 - t) + 20 * t
        x += t.shape[1] + gap + (group_gap - gap if i in (1, 4) else 0)
    return out.astype(np.uint8)


def probe(reader: Model, faces: list[Path]) -> dict[str, object]:
    per_letter: dict[str, list[int]] = {}
    misreads: Counter = Counter()
    for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        text = f"F{letter}264CL"
        right = n = 0
        for face in faces:
            for wt in weights(face):
                for width in WIDTHS:
                    r = decode(reader.run(reader_input(plate(text, face, wt, width))))
                    n += 1
                    if r is not None and r.vrm == text:
                        right += 1
                    else:
                        misreads[f"{text}->{r.vrm if r else ''}"] += 1
        per_letter[letter] = [right, n]
    right, n = sum(v[0] for v in per_letter.values()), sum(v[1] for v in per_letter.values())
    return {"typefaces": [f.name for f in faces], "exact": round(right / n, 4), "right": right, "plates": n,
            "per_letter": {k: f"{a}/{b}" for k, (a, b) in per_letter.items()},
            "commonest_misreads": dict(misreads.most_common(12))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=None, help="folder with reader.tflite (default: the shipped)")
    ap.add_argument("--typefaces", default=",".join(HELD_OUT), help="typeface files in --typeface-dir")
    ap.add_argument("--typeface-dir", type=Path, default=FONT_DIR)
    args = ap.parse_args()
    faces = [args.typeface_dir / f.strip() for f in args.typefaces.split(",") if f.strip()]
    missing = [str(f) for f in faces if not f.is_file()]
    if missing:
        raise SystemExit(f"no such typeface: {', '.join(missing)} (install fonts-dejavu-core)")
    reader = Model((args.models or shipped_models_dir()) / "reader.tflite")
    print(json.dumps(probe(reader, faces), indent=2))


if __name__ == "__main__":
    main()
