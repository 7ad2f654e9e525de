"""Train the plate detector (frame -> plate regions) on simulator scenes; export int8 TFLite.

A small fully convolutional network predicts, at 1/4 resolution, the probability that each cell lies
on a number plate; at run time connected regions become rotated rectangles (plate quadrilaterals).
Segmentation rather than anchor boxes: no anchors to tune, any number of plates, any plate angle,
and a single sigmoid output that quantises cleanly to int8.

    python scripts/train_detector.py --seed 2           # resumes if train-runs/detector exists
"""

from __future__ import annotations

import functools
import json
import math
import time

import numpy as np
from train_common import (
    cached_chunks,
    checkpoint_callback,
    export_int8,
    freeze_batch_norms,
    licence_families,
    parse_args,
    prepare_model,
    real_sources,
    seed_everything,
    separable,
    setup_logging,
    weights_from_tflite,
)

CHUNK = 1000
CROPS_PER_SCENE = 2
TRAIN_H, TRAIN_W = 192, 320  # training crops; the network is fully convolutional


def plate_mask(polys: list[np.ndarray], shape: tuple[int, int], stride: int) -> np.ndarray:
    import cv2

    m = np.zeros((shape[0] // stride, shape[1] // stride), np.uint8)
    for p in polys:
        q = np.round(p / stride * 16).astype(np.int32)
        cv2.fillConvexPoly(m, q, 255, cv2.LINE_AA, 4)
    return m


def _distractors(img: np.ndarray, rng: np.random.Generator) -> None:
    """Text and bright shapes that are not plates: van livery, signs, lamps (hard negatives)."""
    import cv2

    h, w = img.shape
    for _ in range(int(rng.integers(1, 4))):
        chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 &-"
        s = "".join(chars[int(rng.integers(len(chars)))] for _ in range(int(rng.integers(3, 14))))
        face = int(rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
                               cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_ITALIC | cv2.FONT_HERSHEY_SIMPLEX]))
        scale = float(rng.uniform(0.4, 2.5))
        org = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.putText(img, s, org, face, scale, int(rng.integers(0, 256)), int(rng.integers(1, 5)), cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 3))):
        c = (int(rng.integers(w)), int(rng.integers(h)))
        cv2.ellipse(img, c, (int(rng.integers(3, 30)), int(rng.integers(3, 30))), 0, 0, 360,
                    int(rng.integers(150, 256)), -1, cv2.LINE_AA)


def make_chunk(i: int, seed: int, per_chunk: int, conditions: str | None = None) -> dict[str, np.ndarray]:
    import cv2

    from agent.recognise.preprocess import DET_STRIDE
    from sim.dataset import parse_conditions, scene_samples

    DET_H, DET_W = TRAIN_H, TRAIN_W

    rng = np.random.default_rng([seed, 2000 + i])
    conds = parse_conditions(conditions)
    n_scenes = per_chunk // CROPS_PER_SCENE
    xs = np.zeros((per_chunk, DET_H, DET_W), np.uint8)
    ys = np.zeros((per_chunk, DET_H // DET_STRIDE, DET_W // DET_STRIDE), np.uint8)
    k = 0
    for sample in scene_samples(n_scenes, seed * 100_003 + i, conds, per_installation=2, foreign_rate=0.1):
        img = sample.image if sample.image.ndim == 2 else cv2.cvtColor(sample.image, cv2.COLOR_BGR2GRAY)
        polys = [np.array(p["polygon"], np.float64) for p in sample.plates]
        for _ in range(CROPS_PER_SCENE):
            s = float(np.exp(rng.uniform(math.log(0.3), math.log(1.1))))
            sw, sh = int(img.shape[1] * s), int(img.shape[0] * s)
            scaled = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
            canvas = np.zeros((max(sh, DET_H), max(sw, DET_W)), np.uint8)
            if rng.random() < 0.5:  # pad with texture rather than black, like a wider photo
                canvas[:] = np.clip(rng.normal(rng.uniform(20, 200), rng.uniform(2, 30), canvas.shape), 0, 255)
            canvas[:sh, :sw] = scaled
            ox = int(rng.integers(0, canvas.shape[1] - DET_W + 1))
            oy = int(rng.integers(0, canvas.shape[0] - DET_H + 1))
            if polys and rng.random() < 0.7:  # mostly windows that hold a plate
                c = polys[int(rng.integers(len(polys)))].mean(axis=0) * s
                ox = int(np.clip(c[0] - rng.uniform(0.1, 0.9) * DET_W, 0, canvas.shape[1] - DET_W))
                oy = int(np.clip(c[1] - rng.uniform(0.1, 0.9) * DET_H, 0, canvas.shape[0] - DET_H))
            crop = canvas[oy:oy + DET_H, ox:ox + DET_W].copy()
            if rng.random() < 0.4:
                _distractors(crop, rng)
            moved = [p * s - (ox, oy) for p in polys]
            xs[k] = crop
            ys[k] = plate_mask(moved, (DET_H, DET_W), DET_STRIDE)
            k += 1
    return {"x": xs[:k], "y": ys[:k]}


def build_model(height: int = TRAIN_H, width: int = TRAIN_W, channels: float = 1.0):
    """`channels` multiplies every layer's width (1: the shipped 64 kB detector)."""
    import keras
    from keras import layers

    def c(n: int) -> int:
        return max(8, round(n * channels / 8) * 8)

    inp = keras.Input((height, width, 1), name="frame")
    x = layers.Rescaling(1 / 255.0)(inp)
    x = layers.Conv2D(c(16), 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)  # 1/2
    s4 = separable(x, c(32), 2)  # 1/4
    x = separable(s4, c(48), 2)
    s8 = separable(x, c(48))  # 1/8
    x = separable(s8, c(64), 2)
    x = separable(x, c(64), dilation=2)
    x = separable(x, c(64), dilation=4)  # 1/16, wide context
    x = layers.Conv2D(c(48), 1, use_bias=False)(x)
    x = layers.UpSampling2D(2, interpolation="bilinear")(x)
    x = layers.Add()([x, s8])
    x = separable(x, c(32))
    x = layers.UpSampling2D(2, interpolation="bilinear")(x)
    x = layers.Add()([x, s4])
    x = separable(x, c(16))
    logits = layers.Conv2D(1, 1, name="logits")(x)
    return keras.Model(inp, logits, name="detector")


def seg_loss(y_true, y_pred):
    import tensorflow as tf

    t = tf.cast(y_true, tf.float32)
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=t, logits=y_pred)
    # Plates are a tiny share of pixels: weight them up so recall does not collapse.
    w = 1.0 + 9.0 * t
    bce = tf.reduce_sum(bce * w) / tf.reduce_sum(w)
    p = tf.sigmoid(y_pred)
    inter = tf.reduce_sum(p * t, axis=[1, 2, 3])
    dice = 1.0 - (2 * inter + 1.0) / (tf.reduce_sum(p, axis=[1, 2, 3]) + tf.reduce_sum(t, axis=[1, 2, 3]) + 1.0)
    return bce + 0.5 * tf.reduce_mean(dice)


def main() -> None:
    args = parse_args(__doc__, "detector", seed=2, train_count=16_000, val_count=1_000, epochs=10, batch=32)

    log = setup_logging(args.work, "train_detector")
    t_start = time.time()
    log.info("detector training: %s", vars(args))
    make_train = functools.partial(make_chunk, seed=args.seed, per_chunk=CHUNK, conditions=args.conditions)
    train = cached_chunks(args.work, "train", args.train_count // CHUNK,
                          make_train, log, args.workers)
    val = cached_chunks(args.work, "val", max(1, args.val_count // CHUNK),
                        functools.partial(make_chunk, seed=args.seed + 7919, per_chunk=CHUNK), log, args.workers)
    if args.real and args.real_count:
        from real_data import detector_chunk

        real = cached_chunks(args.work, "real", max(1, args.real_count // CHUNK),
                             functools.partial(detector_chunk, data=args.real.resolve(), seed=args.seed,
                                               per_chunk=CHUNK, licences=licence_families(args),
                                               train_hw=(TRAIN_H, TRAIN_W),
                                               mask_scale=tuple(float(v) for v in args.real_mask_scale.split(",")),
                                               rotate_deg=args.real_rotate,
                                               read_scenes_share=args.real_read_scenes),
                             log, args.workers)
        train = {k: np.concatenate([train[k], real[k]]) for k in train}
    log.info("data ready: %d train, %d val (%.0f s)", len(train["x"]), len(val["x"]), time.time() - t_start)

    import keras
    import tensorflow as tf

    seed_everything(args.seed)
    model = build_model(channels=args.width)
    steps = len(train["x"]) // args.batch
    if not (args.work / "ckpt.weights.h5").exists():
        if args.init_from:
            model.load_weights(args.init_from)
            log.info("initialised from %s", args.init_from)
        elif args.init_shipped:
            weights_from_tflite(model, args.out / "detector.tflite", log)
    if args.init_shipped and not args.init_from:
        freeze_batch_norms(model, log)
    start_epoch = prepare_model(model, args.work, steps, args.epochs, seg_loss, log, lr=args.lr)
    last = min(args.epochs, args.stop_after or args.epochs)

    def gen(x, y, augment, seed):
        rng = np.random.default_rng(seed)

        def it():
            order = rng.permutation(len(x)) if augment else np.arange(len(x))
            for i in order:
                img, m = x[i], y[i]
                if augment:
                    if rng.random() < 0.5:
                        img, m = img[:, ::-1], m[:, ::-1]
                    g = rng.uniform(0.6, 1.6)
                    img = (255.0 * (img / 255.0) ** g * rng.uniform(0.6, 1.3)).clip(0, 255)
                yield img[..., None].astype(np.float32), (m[..., None] / 255.0).astype(np.float32)

        return it

    from agent.recognise.preprocess import DET_H, DET_STRIDE, DET_W

    sig = (tf.TensorSpec((TRAIN_H, TRAIN_W, 1), tf.float32),
           tf.TensorSpec((TRAIN_H // DET_STRIDE, TRAIN_W // DET_STRIDE, 1), tf.float32))
    remaining = last - start_epoch
    ds_train = (tf.data.Dataset.from_generator(gen(train["x"], train["y"], True, args.seed + start_epoch),
                                               output_signature=sig)
                .repeat().batch(args.batch).prefetch(2))
    ds_val = (tf.data.Dataset.from_generator(gen(val["x"], val["y"], False, 0), output_signature=sig)
              .batch(32).cache())
    if remaining > 0:
        model.fit(ds_train, epochs=last, initial_epoch=start_epoch, steps_per_epoch=steps,
                  validation_data=ds_val, callbacks=[checkpoint_callback(args.work, log)], verbose=2)
    train_s = time.time() - t_start

    # Same weights on the run-time input size (the network is fully convolutional).
    full = build_model(DET_H, DET_W, channels=args.width)
    full.set_weights(model.get_weights())
    export = keras.Sequential([full, keras.layers.Activation("sigmoid", name="prob")], name="detector_export")
    export.build((None, DET_H, DET_W, 1))
    out = args.out / "detector.tflite"
    def mosaic(a: np.ndarray) -> np.ndarray:  # 2x2 mosaics of validation crops as full-size frames
        return np.stack([np.vstack([np.hstack(a[i:i + 2]), np.hstack(a[i + 2:i + 4])])
                         for i in range(0, len(a) - 3, 4)])

    rep, rep_y = mosaic(val["x"]), mosaic(val["y"])
    size = export_int8(export, rep[..., None], out, log)
    # Pixel-level recall/precision of the int8 model on held-out scenes.
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(out), num_threads=2)
    it.allocate_tensors()
    inp, outd = it.get_input_details()[0], it.get_output_details()[0]
    tp = fp = fn = 0
    for x, y in zip(rep, rep_y, strict=True):
        it.set_tensor(inp["index"], x[None, :, :, None])
        it.invoke()
        p = it.get_tensor(outd["index"])[0, :, :, 0] > 127
        t = y > 127
        tp += int((p & t).sum())
        fp += int((p & ~t).sum())
        fn += int((~p & t).sum())
    meta = {"model": "detector", "seed": args.seed, "train_samples": len(train["x"]), "epochs": last, "lr": args.lr,
            "conditions": args.conditions or "all equally",
            "init_from": str(args.init_from.parent.name) if args.init_from else None,
            "input": [DET_H, DET_W, 1], "train_crop": [TRAIN_H, TRAIN_W], "output_stride": DET_STRIDE, "bytes": size,
            "val_cell_recall_int8": round(tp / max(tp + fn, 1), 4),
            "val_cell_precision_int8": round(tp / max(tp + fp, 1), 4),
            "train_wall_s": round(train_s), "tensorflow": tf.__version__,
            "init_shipped": bool(args.init_shipped), "real_count": args.real_count if args.real else 0,
            "real_mask_scale": args.real_mask_scale, "real_rotate": args.real_rotate,
            "real_read_scenes": args.real_read_scenes, "width": args.width, "licences": args.licences or "all",
            "real_sources": real_sources(args, ("real-detect",) + (("real-read-scenes",) if args.real_read_scenes
                                                                   else ()))}
    (args.out / "detector.json").write_text(json.dumps(meta, indent=2) + "\n")
    log.info("done: %s", meta)


if __name__ == "__main__":
    main()
