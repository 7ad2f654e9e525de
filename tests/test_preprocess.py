"""The reader's input: size, two-line plates, and local contrast that recovers glare-faded characters."""

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from agent.recognise.preprocess import READER_H, READER_W, local_contrast, reader_crop, reader_input


def _plate_with_glare() -> np.ndarray:
    """Dark characters on a light plate, with a glare that lifts the right half until its characters
    are only 20 grey levels darker than the plate."""
    img = np.full((32, 128), 200, np.float32)
    for i, x in enumerate(range(8, 120, 16)):
        cv2.rectangle(img, (x, 8), (x + 6, 24), 40 if i < 4 else 230, -1)
    img[:, 64:] = np.where(img[:, 64:] >= 230, 235, 255)  # the glare: characters 235, plate 255
    return img.astype(np.uint8)


def _contrast(x: np.ndarray, cols: slice) -> float:
    part = x[8:25, cols].astype(float)
    return float(np.percentile(part, 95) - np.percentile(part, 5))


def test_local_contrast_brings_back_characters_faded_by_glare():
    x = reader_crop(_plate_with_glare())
    before = _contrast(x, slice(64, 128)) / _contrast(x, slice(0, 64))
    y = local_contrast(x)
    after = _contrast(y, slice(64, 128)) / _contrast(y, slice(0, 64))
    assert before < 0.2  # one stretch for the whole crop leaves the glared half faint
    assert after > 0.6


def test_flat_regions_are_not_stretched_into_noise():
    rng = np.random.default_rng(1)
    flat = np.clip(128 + rng.normal(0, 2, (READER_H, READER_W)), 0, 255).astype(np.uint8)
    assert float(local_contrast(flat).std()) < 60  # +-2 levels of noise stay well short of full range


def test_reader_input_is_the_locally_stretched_crop():
    img = _plate_with_glare()
    np.testing.assert_array_equal(reader_input(img), local_contrast(reader_crop(img)))


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(2, 300), st.integers(2, 600))), st.sampled_from([None, True, False]))
def test_any_crop_gives_a_reader_input(img, two_line):
    x = reader_input(img, two_line)
    assert x.shape == (READER_H, READER_W) and x.dtype == np.uint8


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(1, 40), st.integers(1, 256),
       st.lists(st.floats(0, 100), min_size=1, max_size=4))
def test_histogram_percentiles_equal_numpys(seed, h, w, levels, qs):
    from agent.recognise.preprocess import percentiles_u8

    img = np.random.default_rng(seed).integers(0, levels, (h, w)).astype(np.uint8)
    assert np.allclose(percentiles_u8(img, tuple(qs)), np.percentile(img, qs), rtol=0, atol=1e-9)
