"""Read-confidence calibration: fitting, the file format, and use by the recogniser."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.recognise import Recogniser, RecogniserError
from agent.recognise.confidence import FEATURES, ConfidenceModel, fit, near_uk, read_features

MODELS = Path(__file__).resolve().parents[1] / "models"


def test_fit_recovers_a_known_logistic_model():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, len(FEATURES)))
    true_w = np.array([2.0, 0.0, -1.0, 0.5, 0.0, 0.0, 1.0, 0.0, 1.5, -0.8, -1.2, 0.7])
    y = (rng.random(4000) < 1 / (1 + np.exp(-(x @ true_w - 0.5)))).astype(float)
    w, b = fit(x, y, l2=1e-4)
    assert np.allclose(w, true_w, atol=0.2) and abs(b + 0.5) < 0.2
    m = ConfidenceModel(tuple(w), b)
    p = np.array([m(v) for v in x])
    # calibrated: among reads given about 0.8, about 80 % are right
    band = (p > 0.75) & (p < 0.85)
    assert abs(y[band].mean() - 0.8) < 0.06


def test_file_round_trip_and_clear_errors(tmp_path):
    m = ConfidenceModel(tuple(float(i) for i in range(len(FEATURES))), -1.5, "test")
    f = tmp_path / "confidence.json"
    assert ConfidenceModel.load(f) is None  # absent: the reader's own probabilities are used
    f.write_text(m.to_json(reads=3))
    assert ConfidenceModel.load(f) == m
    for bad in ("not json", json.dumps({"features": ["x"], "weights": [1], "bias": 0}),
                json.dumps({"features": list(FEATURES), "weights": [1], "bias": 0}), json.dumps([1, 2])):
        f.write_text(bad)
        with pytest.raises(ValueError, match="not a confidence calibration"):
            ConfidenceModel.load(f)


def test_recogniser_refuses_a_broken_calibration(tmp_path):
    for p in MODELS.glob("*.tflite"):
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "confidence.json").write_text("{")
    with pytest.raises(RecogniserError, match="confidence"):
        Recogniser(tmp_path)


@given(st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", max_size=12), st.lists(st.floats(0, 1), min_size=0, max_size=12),
       st.sampled_from(["gb_current", "foreign", "unknown"]), st.floats(0, 5000), st.floats(0, 1), st.booleans(),
       st.floats(0, 1), st.floats(0, 1))
def test_features_and_confidence_are_always_finite_probabilities(vrm, cc, fmt, h, det, two, agreement, hidden):
    x = read_features(vrm, tuple(cc), fmt, h, det, two, agreement, hidden)
    assert x.shape == (len(FEATURES),) and np.isfinite(x).all()
    p = ConfidenceModel(tuple([3.0] * len(FEATURES)), -2.0)(x)
    assert 0.0 <= p <= 1.0


@pytest.mark.parametrize(("text", "near"), [("FL00VGU", True), ("KM60VA", True), ("AB12CD3", True), ("WDB12345", False),
                                             ("349T25719", False), ("DE1234567", False)])
def test_near_uk_spots_uk_marks_read_one_character_wrong(text, near):
    assert near_uk(text) is near


def test_a_read_weighted_twice_counts_as_two_reads():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, len(FEATURES)))
    y = (rng.random(600) < 1 / (1 + np.exp(-x[:, 0]))).astype(float)
    twice = np.arange(600) < 200
    w1, b1 = fit(np.vstack([x, x[twice]]), np.concatenate([y, y[twice]]))
    w2, b2 = fit(x, y, sample_weight=np.where(twice, 2.0, 1.0))
    assert np.allclose(w1, w2, atol=1e-6) and abs(b1 - b2) < 1e-6
    w3, _ = fit(x, y)
    assert not np.allclose(w1, w3, atol=1e-3)  # the weights did change the fit
    for bad in (np.ones(5), np.full(600, -1.0), np.zeros(600), np.full(600, np.nan)):
        with pytest.raises(ValueError, match="sample_weight"):
            fit(x, y, sample_weight=bad)
