"""The reader's training crops cut along the shipped detector's outlines: real rendering, real detector
inference, real reader inference on the result."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from agent.plates import ALPHABET
from agent.recognise.decode import decode
from agent.recognise.preprocess import local_contrast
from agent.recognise.runtime import Model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from train_reader import MAX_LABEL, make_detector_chunk  # noqa: E402


def _text(y: np.ndarray) -> str:
    return "".join(ALPHABET[c] for c in y[: y[MAX_LABEL]])


def test_detector_crops_are_the_plates_they_are_labelled_with():
    chunk = make_detector_chunk(0, seed=424242, per_chunk=24, conditions="day,overcast")
    x, y = chunk["x"], chunk["y"]
    assert x.shape == (24, 32, 128) and x.dtype == np.uint8
    labels = [_text(row) for row in y]
    assert all(2 <= len(t) <= 10 for t in labels)  # every crop is a found plate, none left empty
    # same seed, same bytes: a resumed training run remakes a lost chunk identically
    again = make_detector_chunk(0, seed=424242, per_chunk=24, conditions="day,overcast")
    assert np.array_equal(again["x"], x) and np.array_equal(again["y"], y)
    reader = Model(ROOT / "models" / "reader.tflite")
    reads = [decode(reader.run(local_contrast(c))) for c in x]
    right = sum(r is not None and r.vrm == t for r, t in zip(reads, labels, strict=True))
    # clear daylight plates cut along the detector's outline: the shipped reader reads nearly all
    assert right >= 18, list(zip([r and r.vrm for r in reads], labels, strict=True))
