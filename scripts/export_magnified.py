"""Export the finder again at a larger input: the magnified pass over small photographs in one run.

A photograph up to about 800x600 is looked at twice as large (`agent.recognise.detector`). At
the finder's own 640x384 input that took six overlapping tiles, six runs; the same network (fully
convolutional) exported at 768x1024 takes the whole magnified photograph, letterboxed, in one run
of about three tiles' work. TFLite fixes a model's input size at export (its dilated convolutions
carry their padding as constants), hence a second file with the same weights.

The weights come from the shipped int8 finder (dequantised: a clean clone has no float checkpoints,
and int8 weights quantise back to themselves) or a float checkpoint; the activations are calibrated
on 4x4 mosaics of the finder's simulated validation crops, as the finder's own export is on 2x2 ones.

    python scripts/export_magnified.py                   # models/finder.tflite -> models/finder_magnified.tflite
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from train_common import ROOT, export_int8, weights_from_tflite
from train_detector import CHUNK, build_model, make_chunk

SIZE = (768, 1024)  # height, width: a 320x240 photograph at 3.2x, the scale its tiles had


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=ROOT / "models" / "finder.tflite",
                    help="the finder: its int8 .tflite or a float .weights.h5 checkpoint")
    ap.add_argument("--meta", type=Path, default=ROOT / "models" / "finder.json",
                    help="the finder's metadata: its width and last training seed")
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "finder_magnified.tflite")
    ap.add_argument("--size", default=f"{SIZE[0]},{SIZE[1]}", help="input height,width (multiples of 16)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    log = logging.getLogger("export_magnified")
    h, w = (int(v) for v in args.size.split(","))
    if h % 16 or w % 16:
        raise SystemExit(f"--size {args.size}: height and width must be multiples of 16")
    meta = json.loads(args.meta.read_text())
    width, seed = float(meta["width"]), int(meta["stages"][-1]["seed"])

    import keras

    model = build_model(h, w, channels=width)
    if args.source.suffix == ".tflite":
        weights_from_tflite(model, args.source, log)
    else:
        small = build_model(channels=width)
        small.load_weights(args.source)
        model.set_weights(small.get_weights())
    export = keras.Sequential([model, keras.layers.Activation("sigmoid", name="prob")], name="detector_export")
    export.build((None, h, w, 1))
    val = make_chunk(0, seed=seed + 7919, per_chunk=CHUNK)["x"]  # the finder's own validation crops
    th, tw = val.shape[1:3]
    rows, cols = -(-h // th), -(-w // tw)
    per = rows * cols
    rep = np.stack([np.vstack([np.hstack(val[i + r * cols:i + (r + 1) * cols]) for r in range(rows)])[:h, :w]
                    for i in range(0, len(val) - per + 1, per)])
    size = export_int8(export, rep[..., None], args.out, log)
    log.info("%s: %dx%d, %d bytes, weights from %s", args.out, w, h, size, args.source)


if __name__ == "__main__":
    main()
