"""Train the plate outline refiner (a crop around the detector's outline -> where the plate's corners
are in it) on plates in rendered frames; export int8 TFLite.

The detector's corners come from a coarse mask and are off by a few per cent of the plate's width;
the reader reads a third of its misses right from an exact outline. The refiner is trained on the
shipped detector's own outlines (frame look and closer look, so its real errors, tails included) and
on outlines drawn around them and around the labelled ones, each mirrored too.

    python scripts/train_outline.py --seed 5            # resumes if train-runs/outline exists
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import numpy as np
from train_common import (
    ROOT,
    cached_chunks,
    export_int8,
    fit_resumable,
    freeze_batch_norms,
    licence_families,
    parse_args,
    prepare_model,
    real_sources,
    record_run,
    seed_everything,
    separable,
    setup_logging,
    weights_from_tflite,
)

CHUNK = 3000
DRAWN_PER_OUTLINE = 2  # outlines drawn around each detector outline, and around each labelled one
MAX_DELTA = 0.35  # corner moves beyond this (input widths/heights) are clipped: the outline was not this plate
# Trained on moves this many times larger (the export divides again): moves of a few hundredths give
# gradients so small that Adam's epsilon swamps them and the network learns nothing.
TARGET_SCALE = 10.0


def _jitter(rng: np.random.Generator, quad: np.ndarray) -> np.ndarray:
    """An outline off the way the detector's are: ends along the plate, top and bottom across it, the
    slope, and each corner a little."""
    q = np.asarray(quad, np.float64).copy()
    u = (q[1] - q[0] + q[2] - q[3]) / 2
    v = (q[3] - q[0] + q[2] - q[1]) / 2
    left, right = rng.normal(0, 0.05, 2)
    top, bottom = rng.normal(0, 0.1, 2)
    tilt = rng.normal(0, 0.03)  # the right end up or down by this share of the plate's width (~1.7 degrees)
    q[[0, 3]] -= left * u
    q[[1, 2]] += right * u
    q[[0, 1]] -= top * v
    q[[2, 3]] += bottom * v
    q[[1, 2]] += tilt * np.linalg.norm(u) * v / max(np.linalg.norm(v), 1e-6)
    return q + rng.normal(0, 0.03 * np.linalg.norm(v), q.shape)


def sample(grey: np.ndarray, quad: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(input, corner moves to the labelled outline in input units) for one outline, or None when the
    outline cannot be cut."""
    from agent.recognise.outline import outline_input, to_input

    try:
        x, norm = outline_input(grey, quad)
    except ValueError:
        return None
    delta = to_input(truth, norm) - to_input(quad, norm)
    return x, np.clip(delta, -MAX_DELTA, MAX_DELTA).reshape(8).astype(np.float32)


def add_samples(xs: np.ndarray, ys: np.ndarray, k: int, grey: np.ndarray, quads: list[np.ndarray],
                truth: np.ndarray) -> int:
    """Cut a sample for each of `quads` into xs/ys from row k while there is room; the next free row."""
    for q in quads:
        s = sample(grey, q, truth) if k < len(xs) else None
        if s is not None:
            xs[k], ys[k] = s
            k += 1
    return k


def make_chunk(i: int, seed: int, per_chunk: int, conditions: str | None = None,
               models: Path | None = None) -> dict[str, np.ndarray]:
    """Outlines of plates in rendered frames (set in a 1280x720 frame, as in the reader's detector
    crops): the shipped detector's, drawn ones around it, drawn ones around the labelled outline."""
    import cv2
    from train_reader import _rendered_frames

    from agent.recognise.detector import PlateDetector, overlap
    from agent.recognise.outline import OUTLINE_H, OUTLINE_W
    from agent.recognise.preprocess import to_grey
    from agent.recognise.runtime import Model

    detector = PlateDetector(Model((models or ROOT / "models") / "detector.tflite", 1))
    rng = np.random.default_rng([seed, 4000 + i])
    xs = np.zeros((per_chunk, OUTLINE_H, OUTLINE_W), np.uint8)
    ys = np.zeros((per_chunk, 8), np.float32)
    k = 0
    for img, truths in _rendered_frames(rng, conditions):
        if k >= per_chunk:
            break
        grey = to_grey(img)
        frame = cv2.copyMakeBorder(grey, 180, 180, 320, 320, cv2.BORDER_CONSTANT, value=int(np.median(grey)))
        dets = detector.outlines(frame)
        for t in truths:
            truth = np.array(t.polygon, np.float64) + (320, 180)
            box = [t.bbox[0] + 320, t.bbox[1] + 180, t.bbox[2], t.bbox[3]]
            found = [d for d in dets if overlap(box, d.bbox) > 0.3]
            quads = [_jitter(rng, truth) for _ in range(DRAWN_PER_OUTLINE)]
            if found:
                q = max(found, key=lambda d: overlap(box, d.bbox)).quad
                quads += [q] + [_jitter(rng, q) for _ in range(DRAWN_PER_OUTLINE)]
            k = add_samples(xs, ys, k, frame, quads, truth)
    return {"x": xs[:k], "y": ys[:k]}


def mirrored(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same crops mirrored left to right, with their corner moves (TL<->TR, BL<->BR, x negated)."""
    d = y.reshape(-1, 4, 2)[:, [1, 0, 3, 2]] * np.array([-1.0, 1.0], np.float32)
    return x[:, :, ::-1], d.reshape(-1, 8)


def build_model():
    import keras
    from keras import layers

    from agent.recognise.outline import OUTLINE_H, OUTLINE_W

    inp = keras.Input((OUTLINE_H, OUTLINE_W, 1), name="crop")
    x = layers.Rescaling(1 / 255.0)(inp)
    x = layers.Conv2D(24, 3, strides=2, padding="same", use_bias=False)(x)  # 20x64
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = separable(x, 32)
    x = separable(x, 48, 2)  # 10x32
    x = separable(x, 48)
    x = separable(x, 64, 2)  # 5x16
    x = separable(x, 64)
    x = separable(x, 96, 2)  # 3x8
    x = layers.Flatten()(x)  # where things are is the answer: keep the layout
    x = layers.Dense(96, activation="relu")(x)
    out = layers.Dense(8, name="corners")(x)
    return keras.Model(inp, out, name="outline")


def corner_error(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Mean and 90th percentile of the corners' distance from the labelled ones (input units)."""
    d = np.abs((y_true - y_pred).reshape(-1, 4, 2))
    return {"x_mean": float(d[..., 0].mean()), "x_p90": float(np.percentile(d[..., 0], 90)),
            "y_mean": float(d[..., 1].mean()), "y_p90": float(np.percentile(d[..., 1], 90))}


def main() -> None:
    args = parse_args(__doc__, "outline", seed=5, train_count=60_000, val_count=3_000, epochs=10, batch=64, lr=1e-3)
    log = setup_logging(args.work, "train_outline")
    t_start = time.time()
    log.info("outline training: %s", vars(args))
    train = cached_chunks(args.work, "train", max(1, args.train_count // CHUNK),
                          functools.partial(make_chunk, seed=args.seed, per_chunk=CHUNK, conditions=args.conditions),
                          log, args.workers)
    val = cached_chunks(args.work, "val", max(1, args.val_count // CHUNK),
                        functools.partial(make_chunk, seed=args.seed + 7919, per_chunk=CHUNK), log, args.workers)
    if args.real and args.real_count:
        from real_data import outline_chunk

        real = cached_chunks(args.work, "real", max(1, args.real_count // CHUNK),
                             functools.partial(outline_chunk, data=args.real.resolve(), seed=args.seed, per_chunk=CHUNK,
                                               licences=licence_families(args), models=args.out,
                                               two_line_share=args.real_two_line),
                             log, args.workers)
        train = {k: np.concatenate([train[k], real[k]]) for k in train}
    mx, my = mirrored(train["x"], train["y"])
    x, y = np.concatenate([train["x"], mx]), np.concatenate([train["y"], my])
    log.info("data ready: %d train (mirrored included), %d val (%.0f s)", len(x), len(val["x"]), time.time() - t_start)

    import keras
    import tensorflow as tf

    seed_everything(args.seed)
    model = build_model()
    if not (args.work / "ckpt.weights.h5").exists():
        if args.init_from:
            model.load_weights(args.init_from)
            log.info("initialised from %s", args.init_from)
        elif args.init_shipped:
            weights_from_tflite(model, args.out / "outline.tflite", log, output_scale=TARGET_SCALE)
    if args.init_shipped and not args.init_from:
        freeze_batch_norms(model, log)
    prepare_model(model, args.work, len(x) // args.batch, args.epochs, keras.losses.Huber(delta=0.3), log, lr=args.lr)
    last = min(args.epochs, args.stop_after or args.epochs)
    fit_resumable(model, x[..., None], y * TARGET_SCALE, None, args.batch, last,
                  (val["x"][..., None], val["y"] * TARGET_SCALE), args.work, log, args.seed)
    train_s = time.time() - t_start
    record_run(args.work, train_s)

    out = args.out / "outline.tflite"
    export = keras.Sequential([model, keras.layers.Rescaling(1 / TARGET_SCALE, name="moves")], name="outline_export")
    size = export_int8(export, val["x"][..., None], out, log)
    from agent.recognise.runtime import Model

    m = Model(out, 2)
    pred = np.stack([m.run(v) for v in val["x"]])
    before, after = corner_error(val["y"], np.zeros_like(val["y"])), corner_error(val["y"], pred)
    meta = {"model": "outline", "seed": args.seed, "train_samples": len(x), "epochs": last, "lr": args.lr,
            "conditions": args.conditions or "all equally", "input": list(m.input_shape[1:]), "bytes": size,
            "val_corner_error_before": {k: round(v, 4) for k, v in before.items()},
            "val_corner_error_int8": {k: round(v, 4) for k, v in after.items()},
            "train_wall_s": round(train_s), "tensorflow": tf.__version__,
            "init_shipped": bool(args.init_shipped), "real_count": args.real_count if args.real else 0,
            "real_two_line": args.real_two_line, "real_sources": real_sources(args, ("real-detect", "real-read"))}
    (args.out / "outline.json").write_text(json.dumps(meta, indent=2) + "\n")
    log.info("done: %s", meta)


if __name__ == "__main__":
    main()
