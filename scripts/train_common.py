"""Helpers shared by the training scripts: logging, cached data chunks, resumable Keras training,
int8 export. Training needs the `train` extra (TensorFlow on CPU)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from multiprocessing import get_context
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def setup_logging(work: Path, name: str) -> logging.Logger:
    work.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger(name)
    log.setLevel(logging.INFO)
    if not log.handlers:
        fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
        for h in (logging.FileHandler(work / "train.log"), logging.StreamHandler(sys.stdout)):
            h.setFormatter(fmt)
            log.addHandler(h)
    return log


def cached_chunks(work: Path, prefix: str, n_chunks: int, make: Callable[[int], dict[str, np.ndarray]],
                  log: logging.Logger, workers: int = 2) -> dict[str, np.ndarray]:
    """Make (or reuse) numbered .npz chunks with a process pool and concatenate them.

    `make(i)` must be deterministic in i, so a resumed run reuses finished chunks and remakes the rest
    to the same bytes.
    """
    work.mkdir(parents=True, exist_ok=True)
    todo = [i for i in range(n_chunks) if not (work / f"{prefix}_{i:04d}.npz").exists()]
    if todo:
        log.info("making %d of %d %s chunks with %d workers", len(todo), n_chunks, prefix, workers)
        t0 = time.time()
        with get_context("spawn").Pool(workers) as pool:
            for k, (i, arrays) in enumerate(pool.imap_unordered(_call, [(make, i) for i in todo])):
                tmp = work / f"{prefix}_{i:04d}.tmp.npz"
                np.savez(tmp, **arrays)
                os.replace(tmp, work / f"{prefix}_{i:04d}.npz")
                log.info("chunk %s %d done (%d/%d, %.0f s)", prefix, i, k + 1, len(todo), time.time() - t0)
    parts = [dict(np.load(work / f"{prefix}_{i:04d}.npz")) for i in range(n_chunks)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _call(arg: tuple[Callable[[int], dict[str, np.ndarray]], int]) -> tuple[int, dict[str, np.ndarray]]:
    fn, i = arg
    import cv2

    cv2.setNumThreads(1)
    return i, fn(i)


def seed_everything(seed: int) -> None:
    """Seeds, and on TensorFlow (this machine's backend) two threads and deterministic ops; under another
    Keras backend (JAX on a lent GPU machine) only the seeds."""
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(2)
    tf.config.threading.set_intra_op_parallelism_threads(2)
    if os.environ.get("ANPR_TRAIN_DETERMINISTIC", "1") == "1":
        tf.config.experimental.enable_op_determinism()


def resume_state(work: Path) -> dict[str, object]:
    p = work / "state.json"
    return json.loads(p.read_text()) if p.exists() else {"epoch": 0, "history": []}


def record_run(work: Path, wall_s: float) -> None:
    """Notes in state.json which Keras backend trained the run and how long it took, for the model card
    (a run trained on another backend is exported later, with TensorFlow)."""
    import keras

    st = resume_state(work)
    st.update(backend=keras.backend.backend(), train_wall_s=round(wall_s))
    (work / "state.json").write_text(json.dumps(st))


# Within an epoch too, this often (the reader's epochs take about ten minutes on this machine's 2 cores).
CHECKPOINT_S = 180.0


def resume_point(work: Path) -> tuple[int, int]:
    """(epochs done, batches done in the next one) of the last checkpoint."""
    st = resume_state(work)
    return int(st["epoch"]), int(st.get("batch", 0))  # type: ignore[call-overload]


def epoch_order(n: int, batch: int, seed: int, epoch: int, skip: int = 0) -> np.ndarray:
    """The samples of one epoch in training order, whole batches only, the first `skip` batches left
    out: an epoch resumed from a checkpoint within it goes on with exactly the batches it had left."""
    steps = n // batch
    return np.random.default_rng([seed, epoch]).permutation(n)[skip * batch: steps * batch]


def checkpoint_callback(work: Path, log: logging.Logger, every_s: float | None = None, skipped: int = 0):
    """Saves the weights and how far training got, atomically: after every epoch and, with `every_s`,
    within one that often (`skipped`: batches of this epoch done before this fit began)."""
    import keras

    class Checkpoint(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.last = time.monotonic()
            self.epoch = 0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch = epoch

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if every_s is not None and time.monotonic() - self.last >= every_s:
                self._save(epoch=self.epoch, batch=skipped + batch + 1)
                log.info("checkpoint: epoch %d, batch %d", self.epoch + 1, skipped + batch + 1)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            hist = list(resume_state(work).get("history", []))  # type: ignore[arg-type]
            hist.append({k: float(v) for k, v in (logs or {}).items()})
            self._save(epoch=epoch + 1, batch=0, history=hist)
            log.info("epoch %d done: %s", epoch + 1, {k: round(float(v), 4) for k, v in (logs or {}).items()})

        def _save(self, **progress: object) -> None:
            # weights first: a stop between the two writes trains a few batches again, never skips any
            tmp = work / "ckpt.tmp.weights.h5"
            self.model.save_weights(tmp)
            os.replace(tmp, work / "ckpt.weights.h5")
            st = resume_state(work)
            st.update(progress)
            tmp_state = work / "state.tmp.json"
            tmp_state.write_text(json.dumps(st))
            os.replace(tmp_state, work / "state.json")
            self.last = time.monotonic()

    return Checkpoint()


def fit_resumable(model, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None, batch: int, last: int,
                  validation: tuple[np.ndarray, np.ndarray], work: Path, log: logging.Logger, seed: int) -> None:
    """Train on arrays up to epoch `last`, from the last checkpoint, saving every CHECKPOINT_S seconds;
    each epoch's order comes from the seed, so a resumed run sees the batches an uninterrupted one would."""
    first, skip = resume_point(work)
    for epoch in range(first, last):
        done = skip if epoch == first else 0
        order = epoch_order(len(x), batch, seed, epoch, done)
        model.fit(x[order], y[order], sample_weight=None if weights is None else weights[order], batch_size=batch,
                  epochs=epoch + 1, initial_epoch=epoch, validation_data=validation, shuffle=False,
                  callbacks=[checkpoint_callback(work, log, CHECKPOINT_S, done)], verbose=2)


def separable(x, channels: int, stride: int = 1, dilation: int = 1):
    """Separable 3x3 convolution, batch norm, ReLU: the block both the detector and the outline refiner
    are built from."""
    from keras import layers

    x = layers.SeparableConv2D(channels, 3, strides=stride, dilation_rate=dilation, padding="same",
                               use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def export_int8(model, representative: np.ndarray, out: Path, log: logging.Logger) -> int:
    """Full-integer int8 TFLite (uint8 in/out) calibrated on `representative` (N,H,W,1 uint8)."""
    import tensorflow as tf

    def rep():
        for i in range(min(300, len(representative))):
            yield [representative[i:i + 1].astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.uint8
    data = conv.convert()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    log.info("wrote %s (%d bytes)", out, len(data))
    return len(data)


def prepare_model(model, work: Path, steps_per_epoch: int, epochs: int, loss, log: logging.Logger,
                  lr: float = 2e-3) -> int:
    """Resume weights from the last checkpoint, compile with a cosine schedule continued from where
    it stopped; returns the epoch to start from."""
    import keras

    start_epoch, start_batch = resume_point(work)
    ckpt = work / "ckpt.weights.h5"
    if (start_epoch or start_batch) and ckpt.exists():
        model.load_weights(ckpt)
        log.info("resumed at epoch %d, batch %d", start_epoch, start_batch)
    sched = keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps_per_epoch * epochs, alpha=0.02)
    model.compile(optimizer=keras.optimizers.Adam(sched), loss=loss)
    if start_epoch or start_batch:  # continue the learning-rate schedule where it stopped
        model.optimizer.build(model.trainable_variables)
        model.optimizer.iterations.assign(start_epoch * steps_per_epoch + start_batch)
    return start_epoch


def _country_weights(text: str) -> dict[str, float]:
    from real_data import parse_country_weights

    try:
        return parse_country_weights(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parse_args(doc: str, name: str, seed: int, train_count: int, val_count: int, epochs: int, batch: int,
               lr: float = 2e-3):
    """The command line both training scripts share."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=seed)
    ap.add_argument("--train-count", type=int, default=train_count)
    ap.add_argument("--val-count", type=int, default=val_count)
    ap.add_argument("--epochs", type=int, default=epochs, help="total epochs; more than before resumes and goes on")
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--work", type=Path, default=ROOT / "train-runs" / name)
    ap.add_argument("--out", type=Path, default=ROOT / "models")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--lr", type=float, default=lr, help="peak learning rate of the cosine schedule")
    ap.add_argument("--stop-after", type=int, default=None,
                    help="stop after this epoch (the learning-rate schedule still spans --epochs)")
    ap.add_argument("--conditions", default=None,
                    help="training light and weather, comma-separated; a name given twice is drawn twice as often "
                         "(default: every condition equally; validation data always uses every condition equally)")
    ap.add_argument("--init-from", type=Path, default=None,
                    help="weights (.weights.h5) of an earlier run to fine-tune from instead of starting at random")
    ap.add_argument("--real", type=Path, default=None,
                    help="the shared real-photo data folder (real-detect/, real-read/): add its train split")
    ap.add_argument("--real-count", type=int, default=0, help="training samples made from --real")
    ap.add_argument("--licences", default="",
                    help="use only real items under these licence families, comma-separated "
                         "(CC0,CC BY,MIT,Apache,BSD,ODbL or 'permissive' for CC0, CC BY, MIT, Apache, BSD)")
    ap.add_argument("--init-shipped", action="store_true",
                    help="start from the shipped int8 model in --out (dequantised) instead of at random")
    if name == "detector":
        ap.add_argument("--real-mask-scale", default="1,1",
                        help="WIDTH,HEIGHT: shrink the real photos' labelled boxes to this share around their centre "
                             "for the target masks (an axis-aligned box around a tilted plate is far taller than "
                             "the plate: 0.92,0.8 keeps the target on the plate)")
        ap.add_argument("--real-rotate", type=float, default=0.0,
                        help="turn half the real scenes up to this many degrees either way (sloping plates)")
        ap.add_argument("--real-read-scenes", type=float, default=0.0,
                        help="share of the real windows cut from real-read's train scenes (French and Croatian "
                             "roadside and car-park photos, one labelled plate each; the held-out tenth's scenes "
                             "left out) instead of real-detect's")
        ap.add_argument("--width", type=float, default=1.0,
                        help="channel multiplier of the network (1: the shipped detector's 64 kB; a finder trained on "
                             "real photographs from scratch gains from more)")
    if name == "outline":
        ap.add_argument("--real-two-line", type=float, default=0.0,
                        help="share of the real scenes with one plate replaced by a square two-line UK plate, its "
                             "own quad the target (real-detect's plates are nearly all one-line)")
    if name == "reader":
        ap.add_argument("--real-loose", type=float, default=0.0,
                        help="share of the real crops cut along an outline as loose as a detector gives real plates "
                             "(real_data.loosen: up to 1.5x the width, 1.9x the height, off centre)")
        ap.add_argument("--real-glyphs", type=float, default=0.0,
                        help="share of the plates composited into real scenes set from the real character tiles "
                             "(real-read/glyphs: UK, German, French, Dutch, Belgian, Serbian, Brazilian typefaces) "
                             "instead of rendered UK plates (scripts/glyph_plates.py)")
        ap.add_argument("--real-glyph-two", type=float, default=0.0,
                        help="set the tile-set plates on two lines in square boxes and in this share of the others "
                             "(square Swiss, Belgian, Greek, Norwegian, Indian plates; 0: one line always)")
        ap.add_argument("--real-typefaces", type=float, default=0.0,
                        help="share of the tile-set plates set instead in an installed sans typeface at a random "
                             "weight and width (DejaVu, scripts/typeface_glyphs.py): letter shapes of typefaces "
                             "no real tile has; their licence (Bitstream Vera's, permissive) goes into the model "
                             "card, and --licences does not filter them")
        ap.add_argument("--typeface-dir", type=Path, default=None,
                        help="folder with the DejaVu typefaces (default /usr/share/fonts/truetype/dejavu)")
        ap.add_argument("--real-countries", type=_country_weights, default={},
                        help="how often real crops of each country are drawn, e.g. br=0.4 (others 1): Brazilian "
                             "crops are half the real ones")
        ap.add_argument("--real-invert", type=float, default=0.0,
                        help="share of the real crops turned negative: light characters on a dark plate (French "
                             "black plates, UK black-and-silver ones)")
        ap.add_argument("--scene-crops", type=int, default=0,
                        help="add this many plates cut from whole rendered frames (in chunks of 5,000)")
        ap.add_argument("--detector-crops", type=int, default=0,
                        help="add this many plates cut from rendered frames along the outlines the recogniser reads "
                             "along (models/detector.tflite, refined by models/outline.tflite; in chunks of 5,000)")
        ap.add_argument("--blocks", default="shape,context,shape2",
                        help="the reader's residual blocks (shape, context, shape2, shape3); a block the starting "
                             "reader lacks starts as nothing, so the new reader starts as the old one")
        ap.add_argument("--hard-weight", type=float, default=1.0,
                        help="count the crops the starting reader (--init-from) reads worst, bar the unreadable, "
                             "this many times (1: all alike)")
    return ap.parse_args()


def freeze_batch_norms(model, log: logging.Logger) -> None:
    """Keep a model started from shipped int8 weights (`weights_from_tflite`) in inference mode in its
    batch norms. Each is the identity plus the bias the converter folded in, with no statistics of
    its own; trained in batch mode it would normalise by each batch instead, which undoes what the
    model had learnt at the first step (session 24: the outline refiner's corner error on simulated
    outlines went from 0.011 to 0.029 in two epochs at lr 1e-4; frozen, the convolutions fine-tune
    from where they were). Called on every start of such a run, resumed ones too."""
    from keras import layers

    def walk(layer):
        for la in getattr(layer, "layers", []):
            yield la
            yield from walk(la)

    norms = [la for la in walk(model) if isinstance(la, layers.BatchNormalization)]
    for la in norms:
        la.trainable = False
    log.info("%d batch norms kept in inference mode (started from shipped int8 weights)", len(norms))


def weights_from_tflite(model, path: Path, log: logging.Logger, output_scale: float = 1.0) -> None:
    """Start a Keras model from a shipped int8 TFLite model of the same architecture: its convolutions'
    weights dequantised, each batch norm made the identity plus the bias the converter folded into the
    convolution before it. A clean clone has the shipped models but no float checkpoints
    (train-runs/ is not committed), so a fine-tuning run starts from what is shipped. Dense layers
    too; `output_scale`: the export divided the last one's output by this (the outline refiner's
    TARGET_SCALE, folded into its weights by the converter)."""
    import tensorflow as tf
    from keras import layers

    it = tf.lite.Interpreter(model_path=str(path),
                             experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    details = {t["index"]: t for t in it.get_tensor_details()}

    def const(i: int) -> np.ndarray:
        q = details[i]["quantization_parameters"]
        raw = it.get_tensor(i).astype(np.float32)
        scales, zeros = q["scales"], q["zero_points"]
        if len(scales) == 0:
            return raw
        dim = q["quantized_dimension"]
        shape = [1] * raw.ndim
        shape[dim] = -1
        return (raw - zeros.reshape(shape)) * scales.reshape(shape)

    ops = [o for o in it._get_ops_details() if o["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    dense = [la for la in model.layers if isinstance(la, layers.Dense)]
    pending_bias: np.ndarray | None = None
    rescale = 1.0  # a Rescaling layer is folded into the first convolution's weights
    k = 0
    for layer in model.layers:
        if isinstance(layer, layers.Rescaling):
            rescale = float(layer.scale)
        elif isinstance(layer, layers.SeparableConv2D):
            dw, pw = ops[k], ops[k + 1]
            k += 2
            assert dw["op_name"] == "DEPTHWISE_CONV_2D" and pw["op_name"] == "CONV_2D", (layer.name, dw, pw)
            d = const(dw["inputs"][1]) / rescale  # (1, kh, kw, C) -> (kh, kw, C, 1)
            rescale = 1.0
            p = const(pw["inputs"][1])  # (out, 1, 1, in) -> (1, 1, in, out)
            layer.set_weights([d.transpose(1, 2, 3, 0), p.transpose(1, 2, 3, 0)])
            pending_bias = const(pw["inputs"][2])
        elif isinstance(layer, layers.Conv2D):
            op = ops[k]
            k += 1
            assert op["op_name"] == "CONV_2D", (layer.name, op)
            w = const(op["inputs"][1]).transpose(1, 2, 3, 0) / rescale
            rescale = 1.0
            b = const(op["inputs"][2])
            if layer.use_bias:
                layer.set_weights([w, b])
                pending_bias = None
            else:
                layer.set_weights([w])
                pending_bias = b
        elif isinstance(layer, layers.Dense):
            op = ops[k]
            k += 1
            assert op["op_name"] == "FULLY_CONNECTED", (layer.name, op)
            scale = output_scale if layer is dense[-1] else 1.0
            layer.set_weights([const(op["inputs"][1]).T * scale, const(op["inputs"][2]) * scale])
        elif isinstance(layer, layers.BatchNormalization):
            assert pending_bias is not None, layer.name
            n = pending_bias.shape[0]
            layer.set_weights([np.ones(n, np.float32), pending_bias, np.zeros(n, np.float32),
                               np.full(n, 1.0 - layer.epsilon, np.float32)])
            pending_bias = None
    assert k == len(ops), f"{path}: {len(ops)} convolutions, the model has {k}"
    log.info("initialised from the shipped %s (dequantised int8 weights)", path)


def licence_families(args) -> tuple[str, ...]:
    return tuple(x.strip() for x in args.licences.split(",") if x.strip())


def real_sources(args, sets: tuple[str, ...] = ("real-detect", "real-read")) -> list[dict[str, object]]:
    """What of the real data a run trained on (source, licence, items), for the model card."""
    if not (args.real and args.real_count):
        return []
    from real_data import sources

    return sources(args.real.resolve(), licence_families(args), sets)
