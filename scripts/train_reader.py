"""Train the character reader (plate crop -> characters) on simulator crops; export int8 TFLite.

CTC over 32 columns rather than fixed slots: UK registrations have 2 to 7 characters and foreign
ones up to 10, in varying positions, and CTC needs no per-character boxes.

    python scripts/train_reader.py --seed 1            # resumes if train-runs/reader exists
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
    resume_state,
    seed_everything,
    setup_logging,
    weights_from_tflite,
)

MAX_LABEL = 12
CHUNK = 5000
OCCLUSION = 0.12  # share of crops with some characters covered (labelled with the hidden mark)
EXTRA = "extra_"  # names of the layers added after the first readers (see init_from)
# The residual blocks, in the order they were added: each reader can start from one with fewer.
EXTRA_BLOCKS = ("shape", "context", "shape2", "shape3", "wide")
SHIPPED_BLOCKS = EXTRA_BLOCKS[:3]  # the shipped reader's (`--blocks` default)
CUTS_PER_PLATE = 2  # crops of each plate cut from a rendered frame, each with its own outline error
DETECTOR_CUTS = 4  # crops of each plate cut along the detector's outline, each with a run-time view
# Crops the starting reader reads worst, by its CTC loss, as shares of the training set: the worst 2 %
# are mostly past reading (defocus, rain streaks, plates washed out by glare), the next 10 % are the
# near misses (a faded half, N/M, D/O at 12-17 px characters) that `--hard-weight` counts more.
HARD_BAND = (0.02, 0.12)


def _empty_chunk(per_chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Crops (reader size) and labels (class indices, -1 padded, length last) to fill."""
    from agent.recognise.preprocess import READER_H, READER_W

    return np.zeros((per_chunk, READER_H, READER_W), np.uint8), np.full((per_chunk, MAX_LABEL + 1), -1, np.int32)


def _rendered_frames(rng: np.random.Generator, conditions: str | None):
    """Endless rendered frames with their plates that can be read whole (in frame, not covered, characters
    10 px or more). Small frames: the plates are as many pixels as in 1280x720 ones (the focal length
    scales with the width) and a frame costs a quarter as much to render."""
    from sim.dataset import parse_conditions, random_scenes

    for img, truths, _cond in random_scenes(rng, 10**9, parse_conditions(conditions), width=640, height=360,
                                            per_installation=4, foreign_rate=0.1, vehicle_counts=(2, 3, 4)):
        yield img, [t for t in truths if t.in_frame and not t.occluded and t.char_height_px >= 10]


def make_chunk(i: int, seed: int, per_chunk: int, conditions: str | None = None) -> dict[str, np.ndarray]:
    import cv2

    from agent.recognise.preprocess import HIDDEN_MARK, encode_label, reader_crop
    from sim.dataset import parse_conditions, plate_crop
    from sim.plates import generate
    from sim.scene import Conditions

    rng = np.random.default_rng([seed, 1000 + i])
    conds = parse_conditions(conditions)
    xs, ys = _empty_chunk(per_chunk)
    for k in range(per_chunk):
        cond = Conditions.preset(conds[int(rng.integers(len(conds)))])
        if rng.random() < 0.04:  # negatives: bumpers, grilles, road, headlights; nothing to read
            img = _negative(rng)
            vrm = ""
        else:
            text = generate(rng, foreign_rate=0.1)
            img, _, hidden = plate_crop(rng, text, cond, out_h=int(rng.choice([24, 32, 48, 64])),
                                        variety=0.3, colour=bool(rng.random() < 0.3), occlusion=OCCLUSION)
            vrm = hidden_label(text.vrm, hidden, HIDDEN_MARK)
        xs[k] = reader_crop(img)
        lab = encode_label(vrm)
        ys[k, : len(lab)] = lab
        ys[k, MAX_LABEL] = len(lab)
    del cv2
    return {"x": xs, "y": ys}


def make_scene_chunk(i: int, seed: int, per_chunk: int, conditions: str | None = None) -> dict[str, np.ndarray]:
    """Plates cut out of whole rendered frames the way the recogniser cuts them (an outline off by
    what the detector's is, the run-time crop margins and shifts): the frame's own blur, exposure
    and compression, which crops drawn on their own only approximate."""
    from agent.recognise.preprocess import TWO_LINE_ASPECT, encode_label, reader_crop
    from agent.recognise.rectify import crop_plate

    rng = np.random.default_rng([seed, 2000 + i])
    xs, ys = _empty_chunk(per_chunk)
    k = 0
    for img, truths in _rendered_frames(rng, conditions):
        for t in truths:
            if k == per_chunk:
                break
            lab = encode_label(t.vrm)
            for _ in range(min(CUTS_PER_PLATE, per_chunk - k)):
                q = np.array(t.polygon, float)
                h = float(np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])) / 2
                q += rng.normal(0, 0.05 * h, q.shape)  # the detector's outline error (~0.07 h a corner)
                w = float(np.linalg.norm(q[1] - q[0]) + np.linalg.norm(q[2] - q[3])) / 2
                crop = crop_plate(img, q, float(rng.uniform(0.1, 0.4)), float(rng.uniform(0.25, 0.6)),
                                  float(rng.normal(0, 0.02)), float(rng.normal(0, 0.03)))
                xs[k] = reader_crop(crop, w / max(h, 1e-6) < TWO_LINE_ASPECT)
                ys[k, : len(lab)] = lab
                ys[k, MAX_LABEL] = len(lab)
                k += 1
        if k == per_chunk:
            break
    return {"x": xs, "y": ys}


def make_detector_chunk(i: int, seed: int, per_chunk: int, conditions: str | None = None,
                        models: Path | None = None) -> dict[str, np.ndarray]:
    """Plates cut from rendered frames along the outlines the recogniser reads along (the shipped
    detector's frame look and closer look, then the outline refiner where `models` has one) with the
    run-time views: the outline errors the reader meets at run time, tails included (a slope a few
    degrees off, an end merged with a bright surround, a glare-faded end cut off), which the drawn
    noise of `make_scene_chunk` only approximates. The 640x360 frames are set in a 1280x720 one so
    the detector sees their plates at the run-time scale."""
    import cv2

    from agent.recognise import Recogniser
    from agent.recognise.consensus import VIEWS
    from agent.recognise.detector import overlap
    from agent.recognise.preprocess import TWO_LINE_ASPECT, encode_label, reader_crop, to_grey
    from agent.recognise.rectify import crop_plate

    recogniser = Recogniser(models or ROOT / "models", 1, calibrated=False)
    rng = np.random.default_rng([seed, 3000 + i])
    xs, ys = _empty_chunk(per_chunk)
    k = 0
    for img, truths in _rendered_frames(rng, conditions):
        if k == per_chunk:
            break
        grey = to_grey(img)
        frame = cv2.copyMakeBorder(grey, 180, 180, 320, 320, cv2.BORDER_CONSTANT, value=int(np.median(grey)))
        dets = recogniser.detect(frame)
        for t in truths:
            box = [t.bbox[0] + 320, t.bbox[1] + 180, t.bbox[2], t.bbox[3]]
            found = [d for d in dets if overlap(box, d.bbox) > 0.3]
            if not found:
                continue
            d = max(found, key=lambda d: overlap(box, d.bbox))
            w, h = d.size
            lab = encode_label(t.vrm)
            for _ in range(min(DETECTOR_CUTS, per_chunk - k)):
                v = VIEWS[int(rng.integers(len(VIEWS)))]
                crop = crop_plate(frame, d.quad, v.margin_w, v.margin_h, v.shift, v.shift_up)
                xs[k] = reader_crop(crop, w / max(h, 1e-6) < TWO_LINE_ASPECT)
                ys[k, : len(lab)] = lab
                ys[k, MAX_LABEL] = len(lab)
                k += 1
    return {"x": xs, "y": ys}


def hidden_label(vrm: str, hidden: list[bool], mark: str) -> str:
    """The label with one mark for each run of hidden characters: how many are covered cannot be
    seen, only that the read is incomplete."""
    out: list[str] = []
    for c, h in zip(vrm, hidden, strict=True):
        if not h:
            out.append(c)
        elif not out or out[-1] != mark:
            out.append(mark)
    return "".join(out)


def _negative(rng: np.random.Generator) -> np.ndarray:
    import cv2

    h, w = int(rng.integers(20, 64)), int(rng.integers(60, 250))
    img = np.full((h, w), int(rng.integers(0, 255)), np.uint8)
    for _ in range(int(rng.integers(0, 6))):
        p1 = (int(rng.integers(w)), int(rng.integers(h)))
        p2 = (int(rng.integers(w)), int(rng.integers(h)))
        cv2.rectangle(img, p1, p2, int(rng.integers(0, 255)), int(rng.integers(-1, 4)))
    img = np.clip(img + rng.normal(0, rng.uniform(2, 25), img.shape), 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.3, 2.0)))


def build_model(n_classes: int | None = None, extras: tuple[str, ...] = SHIPPED_BLOCKS):
    import keras
    from keras import layers

    from agent.recognise.preprocess import N_CLASSES, READER_H, READER_W

    n_classes = n_classes or N_CLASSES

    def block(x, ch, pool):
        x = layers.Conv2D(ch, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        if pool:
            x = layers.MaxPooling2D(pool)(x)
        return x

    def residual(x, name, kernel, inner=None):
        """A block added to an earlier reader: its last scale starts at zero, so a reader initialised
        from the smaller one starts as that reader and only learns what the extra layers add."""
        ch = x.shape[-1]
        y = layers.Conv2D(inner or ch, kernel, padding="same", use_bias=False, name=f"{name}_conv1")(x)
        y = layers.BatchNormalization(name=f"{name}_bn1")(y)
        y = layers.ReLU(name=f"{name}_relu")(y)
        y = layers.Conv2D(ch, kernel, padding="same", use_bias=False, name=f"{name}_conv2")(y)
        y = layers.BatchNormalization(gamma_initializer="zeros", name=f"{name}_bn2")(y)
        return layers.Add(name=f"{name}_add")([x, y])

    inp = keras.Input((READER_H, READER_W, 1), name="crop")
    x = layers.Rescaling(1 / 255.0)(inp)
    x = block(x, 16, (2, 2))  # 16x64
    x = block(x, 32, (2, 2))  # 8x32
    x = block(x, 64, None)
    if "shape" in extras:
        x = residual(x, f"{EXTRA}shape", 3)  # more capacity where strokes become character shapes
    if "shape2" in extras:
        x = residual(x, f"{EXTRA}shape2", 3)  # and more: blurred N/M/H, D/O and 3/5 are the commonest misreads
    if "shape3" in extras:
        x = residual(x, f"{EXTRA}shape3", 3)  # real European plates: O/Q, C/G, 6/8 in typefaces the simulator lacks
    if "wide" in extras:
        x = residual(x, f"{EXTRA}wide", 3, inner=128)  # twice the channels inside: more shapes, not more depth
    x = layers.SeparableConv2D(64, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.MaxPooling2D((2, 1))(x)  # 4x32
    x = block(x, 96, (2, 1))  # 2x32
    x = layers.Conv2D(128, (2, 1), padding="valid", activation="relu")(x)  # 1x32
    x = layers.Conv2D(128, (1, 3), padding="same", activation="relu")(x)  # context along the plate
    if "context" in extras:
        x = residual(x, f"{EXTRA}context", (1, 5))  # wider context: neighbours tell a 0 from an O
    x = layers.Dropout(0.1)(x)
    logits = layers.Conv2D(n_classes, 1, name="logits")(x)
    logits = layers.Reshape((READER_W // 4, n_classes))(logits)
    return keras.Model(inp, logits, name="reader")


def ctc_loss(y_true, y_pred):
    """One CTC loss a crop, in Keras ops so that any Keras backend trains the reader (TensorFlow on
    this CPU; JAX where a GPU machine is lent): Keras averages them, weighted where `--hard-weight` says."""
    from keras import ops

    from agent.recognise.preprocess import BLANK

    labels = ops.cast(y_true[:, :MAX_LABEL], "int32")
    lengths = ops.cast(y_true[:, MAX_LABEL], "int32")
    labels = ops.where(labels < 0, ops.zeros_like(labels), labels)
    logit_len = ops.full((ops.shape(y_pred)[0],), ops.shape(y_pred)[1], dtype="int32")
    return ops.ctc_loss(labels, y_pred, lengths, logit_len, mask_index=BLANK)


def hard_weights(model, x: np.ndarray, y: np.ndarray, weight: float, work: Path, log) -> np.ndarray:
    """Training weights: `weight` for crops in the starting reader's HARD_BAND of losses, 1 elsewhere.
    Kept in the work folder, so a resumed run weights the same crops as it did before it stopped."""
    path = work / "hard_weights.npy"
    if path.exists():
        return np.load(path)
    from keras import ops

    losses = np.concatenate([
        ops.convert_to_numpy(ctc_loss(y[i:i + 1024], model(x[i:i + 1024].astype(np.float32), training=False)))
        for i in range(0, len(x), 1024)])
    rank = np.argsort(-losses, kind="stable")
    lo, hi = (int(f * len(x)) for f in HARD_BAND)
    w = np.ones(len(x), np.float32)
    w[rank[lo:hi]] = weight
    log.info("hard crops: %d weighted %.1fx (losses %.2f to %.2f; the %d above left at 1)",
             hi - lo, weight, losses[rank[hi - 1]], losses[rank[lo]], lo)
    np.save(path, w)
    return w


def symbols() -> str:
    from agent.plates import ALPHABET
    from agent.recognise.preprocess import HIDDEN_MARK

    return ALPHABET + "_" + HIDDEN_MARK  # index BLANK is never printed


def greedy(probs: np.ndarray) -> list[str]:
    from agent.recognise.preprocess import BLANK

    sym = symbols()
    out = []
    for row in probs.argmax(-1):
        s, prev = [], -1
        for c in row:
            if c != prev and c != BLANK:
                s.append(sym[c])
            prev = c
        out.append("".join(s))
    return out


def labels_to_text(ys: np.ndarray) -> list[str]:
    sym = symbols()
    return ["".join(sym[c] for c in y[: y[MAX_LABEL]]) for y in ys]


def init_from(model, weights: Path, log) -> None:
    """Start from an earlier reader's weights; an output layer with fewer classes (before the hidden
    class existed) is copied into the first columns and the new classes start unlikely; layers added
    since (named EXTRA...) keep their start values, which leave the earlier reader's output as it was."""
    old_classes = model.get_layer("logits").filters
    older = [(old_classes, EXTRA_BLOCKS[:k]) for k in range(len(EXTRA_BLOCKS), -1, -1)] + [(old_classes - 1, ())]
    for n, extras in older:
        old = build_model(n, extras)
        try:
            old.load_weights(weights)
        except ValueError:
            continue
        kept = [ln for ln in model.layers if not ln.name.startswith(EXTRA) or _block(ln.name) in extras]
        for lo, ln in zip(old.layers, kept, strict=True):
            if lo.name == "logits":
                k, b = lo.get_weights()
                k2, b2 = ln.get_weights()
                k2[..., :n], b2[:n] = k, b
                k2[..., n:] = 0.0
                b2[n:] = b.min() - 2.0
                ln.set_weights([k2, b2])
            else:
                ln.set_weights(lo.get_weights())
        log.info("initialised from %s (%d classes, residual blocks %s)", weights, n, ", ".join(extras) or "none")
        return
    raise SystemExit(f"{weights}: not weights of this reader")


def reader_blocks(text: str) -> tuple[str, ...]:
    """`--blocks` in build order (EXTRA_BLOCKS): the blocks of a reader and of those it can start from."""
    names = {b.strip() for b in text.split(",") if b.strip()}
    unknown = names - set(EXTRA_BLOCKS)
    if unknown:
        raise SystemExit(f"--blocks: unknown {', '.join(sorted(unknown))} (choose from {', '.join(EXTRA_BLOCKS)})")
    return tuple(b for b in EXTRA_BLOCKS if b in names)


def shipped_weights(path: Path, work: Path, log) -> Path:
    """The shipped int8 reader's weights (dequantised) as a Keras weights file `init_from` reads, found by
    trying the readers it can be, most blocks first: a reader with more blocks starts from it."""
    for k in range(len(EXTRA_BLOCKS), -1, -1):
        old = build_model(extras=EXTRA_BLOCKS[:k])
        try:
            weights_from_tflite(old, path, log)
        except (AssertionError, IndexError, ValueError):
            continue
        out = work / "shipped.weights.h5"
        work.mkdir(parents=True, exist_ok=True)
        old.save_weights(out)
        return out
    raise SystemExit(f"{path}: not a reader these scripts build")


def _block(layer: str) -> str:
    """The residual block an added layer belongs to: extra_shape2_conv1 -> shape2."""
    return layer[len(EXTRA):].rsplit("_", 1)[0]


def frame_chunks(count: int) -> int:
    """Chunks for --scene-crops or --detector-crops `count` (at least one when asked for any)."""
    return max(1, count // CHUNK) if count else 0


def training_crops(args, n_train: int, n_scene: int, n_found: int, log) -> dict[str, np.ndarray]:
    """Drawn crops and, with --scene-crops and --detector-crops, plates cut from rendered frames; as the
    reader sees them."""
    train = cached_chunks(args.work, "train", n_train,
                          functools.partial(make_chunk, seed=args.seed, per_chunk=CHUNK, conditions=args.conditions),
                          log, args.workers)
    if n_scene:
        scenes = cached_chunks(args.work, "scene", n_scene,
                               functools.partial(make_scene_chunk, seed=args.seed, per_chunk=CHUNK,
                                                 conditions=args.conditions), log, args.workers)
        train = {k: np.concatenate([train[k], scenes[k]]) for k in train}
    if n_found:
        found = cached_chunks(args.work, "detector", n_found,
                              functools.partial(make_detector_chunk, seed=args.seed, per_chunk=CHUNK,
                                                conditions=args.conditions), log, args.workers)
        train = {k: np.concatenate([train[k], found[k]]) for k in train}
    if args.real and args.real_count:
        from real_data import reader_chunk

        real = cached_chunks(args.work, "real", frame_chunks(args.real_count),
                             functools.partial(reader_chunk, data=args.real.resolve(), seed=args.seed, per_chunk=CHUNK,
                                               licences=licence_families(args), loose=args.real_loose,
                                               glyphs=args.real_glyphs,
                                               countries=tuple(sorted(args.real_countries.items())),
                                               invert=args.real_invert, glyph_two=args.real_glyph_two,
                                               typefaces=args.real_typefaces, font_dir=args.typeface_dir),
                             log, args.workers)
        train = {k: np.concatenate([train[k], real[k]]) for k in train}
    return as_reader_sees(train)


def typeface_sources(args) -> list[dict[str, str]]:
    """The installed typefaces a run drew plates in, with their licence, for the model card; a clear
    error before any work when they are asked for and absent."""
    if not (args.real and args.real_count and args.real_glyphs and args.real_typefaces):
        return []
    from typeface_glyphs import FONT_DIR, LICENCE, typefaces

    return [{"typeface": f.name, "licence": LICENCE} for f in typefaces(args.typeface_dir or FONT_DIR)]


def as_reader_sees(part: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Chunks hold `reader_crop`s; the reader sees them as `reader_input` makes them (local contrast)."""
    from agent.recognise.preprocess import local_contrast

    part["x"] = np.stack([local_contrast(x) for x in part["x"]])
    return part


def main() -> None:
    args = parse_args(__doc__, "reader", seed=1, train_count=140_000, val_count=5_000, epochs=10, batch=256)

    if args.hard_weight != 1 and not (args.init_from or args.init_shipped):
        raise SystemExit("--hard-weight needs --init-from: it weights the crops the starting reader reads worst")
    if args.real_typefaces and not (args.real and args.real_count and args.real_glyphs):
        raise SystemExit("--real-typefaces sets a share of the tile-set plates: it needs --real, --real-count and "
                         "--real-glyphs")
    if not 0 <= args.real_typefaces <= 1:
        raise SystemExit(f"--real-typefaces is a share from 0 to 1, not {args.real_typefaces}")
    log = setup_logging(args.work, "train_reader")
    t_start = time.time()
    log.info("reader training: %s", vars(args))
    try:
        log.info("typefaces: %s", [t["typeface"] for t in typeface_sources(args)] or "none")
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from None
    last = min(args.epochs, args.stop_after or args.epochs)
    # A run that finished its epochs (here, or under another Keras backend on a lent GPU machine) only
    # exports: its training crops are not made again.
    trained = int(resume_state(args.work)["epoch"]) >= last and (args.work / "ckpt.weights.h5").exists()  # type: ignore[arg-type]
    n_train = args.train_count // CHUNK
    n_scene, n_found = frame_chunks(args.scene_crops), frame_chunks(args.detector_crops)
    val = as_reader_sees(cached_chunks(args.work, "val", max(1, args.val_count // CHUNK),
                                       functools.partial(make_chunk, seed=args.seed + 7919, per_chunk=CHUNK), log,
                                       args.workers))
    train = None if trained else training_crops(args, n_train, n_scene, n_found, log)
    log.info("data ready: %s train, %d val (%.0f s)", "no" if train is None else len(train["x"]), len(val["x"]),
             time.time() - t_start)

    import keras

    seed_everything(args.seed)
    blocks = reader_blocks(args.blocks)
    model = build_model(extras=blocks)
    if not (args.work / "ckpt.weights.h5").exists():
        if args.init_from:
            init_from(model, args.init_from, log)
        elif args.init_shipped:
            init_from(model, shipped_weights(args.out / "reader.tflite", args.work, log), log)
    if args.init_shipped and not args.init_from:
        freeze_batch_norms(model, log)
    steps = 1 if train is None else len(train["x"]) // args.batch
    start_epoch = prepare_model(model, args.work, steps, args.epochs, ctc_loss, log, lr=args.lr)
    if train is not None and start_epoch < last:
        xtr = train["x"][..., None]
        ytr = train["y"].astype(np.float32)
        weights = hard_weights(model, xtr, ytr, args.hard_weight, args.work, log) if args.hard_weight != 1 else None
        fit_resumable(model, xtr, ytr, weights, args.batch, last, (val["x"][..., None], val["y"].astype(np.float32)),
                      args.work, log, args.seed)
        record_run(args.work, time.time() - t_start)
    train_s = time.time() - t_start
    if keras.backend.backend() != "tensorflow":
        log.info("trained under %s in %.0f s; export needs TensorFlow: run the same command with it, which "
                 "reuses %s and only exports", keras.backend.backend(), train_s, args.work / "ckpt.weights.h5")
        return

    # Accuracy of the float model and of the exported int8 model on the held-out set.
    truth = labels_to_text(val["y"])
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(model.predict(val["x"][..., None], batch_size=256,
                                                                        verbose=0)))
    acc_float = float(np.mean([a == b for a, b in zip(greedy(probs), truth, strict=True)]))
    export = keras.Sequential([model, keras.layers.Softmax(name="probs")], name="reader_export")
    export.build((None, *model.input_shape[1:]))
    out = args.out / "reader.tflite"
    size = export_int8(export, val["x"][..., None], out, log)

    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(out), num_threads=2)
    it.allocate_tensors()
    inp, outd = it.get_input_details()[0], it.get_output_details()[0]
    q_probs = []
    for x in val["x"]:
        it.set_tensor(inp["index"], x[None, :, :, None])
        it.invoke()
        q_probs.append(it.get_tensor(outd["index"])[0])
    acc_int8 = float(np.mean([a == b for a, b in zip(greedy(np.array(q_probs)), truth, strict=True)]))
    import tensorflow as tf

    state = resume_state(args.work)
    meta = {"model": "reader", "seed": args.seed, "train_samples": (n_train + n_scene + n_found) * CHUNK,
            "val_samples": len(val["x"]),
            "scene_crops": args.scene_crops,
            "detector_crops": args.detector_crops, "hard_weight": args.hard_weight, "input_contrast": "local",
            "epochs": last, "schedule_epochs": args.epochs, "lr": args.lr,
            "init_from": str(args.init_from.name) if args.init_from else None,
            "conditions": args.conditions or "all equally",
            "input": list(model.input_shape[1:]), "bytes": size, "blocks": list(blocks),
            "val_exact_float": round(acc_float, 4), "val_exact_int8": round(acc_int8, 4),
            "train_wall_s": state.get("train_wall_s", round(train_s)), "tensorflow": tf.__version__,
            "trained_with": state.get("backend", "tensorflow"),
            "init_shipped": bool(args.init_shipped), "real_count": args.real_count if args.real else 0,
            "real_loose": args.real_loose, "real_glyphs": args.real_glyphs, "real_countries": args.real_countries,
            "real_invert": args.real_invert, "real_glyph_two": args.real_glyph_two,
            "real_typefaces": args.real_typefaces, "typefaces": typeface_sources(args),
            "licences": args.licences or "all", "real_sources": real_sources(args)}
    (args.out / "reader.json").write_text(json.dumps(meta, indent=2) + "\n")
    log.info("done: %s", meta)


if __name__ == "__main__":
    main()
