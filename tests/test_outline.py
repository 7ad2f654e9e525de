"""The outline refiner's geometry and training targets: the crop's coordinates, mirrored samples, and
the targets of outlines cut from a drawn plate."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.recognise.outline import MARGIN_H, MARGIN_W, OUTLINE_H, OUTLINE_W, from_input, outline_input, to_input

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from train_outline import MAX_DELTA, mirrored, sample  # noqa: E402

# where the outline's own corners lie in the refiner's input (0..1 across and down)
BASE = np.array([[0.5 * MARGIN_W / (1 + MARGIN_W), 0.5 * MARGIN_H / (1 + MARGIN_H)],
                 [1 - 0.5 * MARGIN_W / (1 + MARGIN_W), 0.5 * MARGIN_H / (1 + MARGIN_H)],
                 [1 - 0.5 * MARGIN_W / (1 + MARGIN_W), 1 - 0.5 * MARGIN_H / (1 + MARGIN_H)],
                 [0.5 * MARGIN_W / (1 + MARGIN_W), 1 - 0.5 * MARGIN_H / (1 + MARGIN_H)]])


def _plate(cx: float, cy: float, w: float, h: float, slope_deg: float) -> np.ndarray:
    """A parallelogram as the detector outlines plates: vertical sides, sloping top and bottom."""
    t = np.tan(np.radians(slope_deg))
    return np.array([[cx - w / 2, cy - h / 2 - t * w / 2], [cx + w / 2, cy - h / 2 + t * w / 2],
                     [cx + w / 2, cy + h / 2 + t * w / 2], [cx - w / 2, cy + h / 2 - t * w / 2]])


quads = st.builds(_plate, st.floats(100, 540), st.floats(80, 400), st.floats(12, 300), st.floats(6, 80),
                  st.floats(-25, 25))


@settings(max_examples=80, deadline=None)
@given(quad=quads, points=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=6))
def test_outline_corners_sit_at_fixed_places_and_points_map_back(quad, points):
    grey = np.zeros((480, 640), np.uint8)
    x, norm = outline_input(grey, quad)
    assert x.shape == (OUTLINE_H, OUTLINE_W) and x.dtype == np.uint8
    assert np.allclose(to_input(quad, norm), BASE, atol=1e-3)
    p = np.array(points, np.float64)
    assert np.allclose(to_input(from_input(p, norm), norm), p, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(quad=quads, off=st.lists(st.floats(-0.08, 0.08), min_size=8, max_size=8))
def test_a_mirrored_sample_is_the_sample_of_the_mirrored_plate(quad, off):
    """Training doubles its data by mirroring crops; their corner moves must be the ones the mirrored
    plate would have had."""
    grey = np.full((480, 640), 40, np.uint8)
    # drawn to a sixteenth of a pixel, anti-aliased: whole-pixel corners rasterise a thin plate unevenly
    # left and right (a 276 x 6 px plate's mirrored crop differed by 12.3 grey levels a pixel, 5.8 so)
    cv2.fillConvexPoly(grey, np.round(quad * 16).astype(np.int32), 220, cv2.LINE_AA, 4)
    h = float(np.linalg.norm(quad[3] - quad[0]))
    outline = quad + np.array(off).reshape(4, 2) * h
    one = sample(grey, outline, quad)
    flip = lambda q: np.array([[639 - q[i][0], q[i][1]] for i in (1, 0, 3, 2)])  # noqa: E731  mirrored corner order
    other = sample(grey[:, ::-1].copy(), flip(outline), flip(quad))
    assert one is not None and other is not None
    mx, my = mirrored(one[0][None], one[1][None])
    assert np.allclose(my[0], other[1], atol=2e-3)
    # the crops agree too, but for a pixel of rasterisation at the edges (a large share of a tiny plate)
    if quad[1][0] - quad[0][0] >= 60:
        assert np.mean(np.abs(mx[0].astype(int) - other[0].astype(int))) < 12
    back_x, back_y = mirrored(mx, my)
    assert np.array_equal(back_x[0], one[0]) and np.allclose(back_y[0], one[1])


@settings(max_examples=40, deadline=None)
@given(quad=quads, off=st.lists(st.floats(-1, 1), min_size=8, max_size=8))
def test_targets_put_the_outline_on_the_plate(quad, off):
    """An outline off the plate's by any amount: its targets move its corners to the plate's, clipped
    to MAX_DELTA; no move at all for the plate's own outline."""
    grey = np.zeros((480, 640), np.uint8)
    h = float(np.linalg.norm(quad[3] - quad[0]))
    outline = quad + np.array(off).reshape(4, 2) * 0.15 * h
    if not cv2.isContourConvex(outline.astype(np.float32).reshape(-1, 1, 2)):
        return
    _, y = sample(grey, outline, quad)
    assert np.abs(y).max() <= MAX_DELTA + 1e-6
    _, norm = outline_input(grey, outline)
    moved = to_input(outline, norm) + y.reshape(4, 2)
    exact = to_input(quad, norm)
    unclipped = np.abs(exact - to_input(outline, norm)) < MAX_DELTA
    assert np.allclose(moved[unclipped], exact[unclipped], atol=1e-4)
    assert np.allclose(sample(grey, quad, quad)[1], 0, atol=1e-5)


def test_real_scene_samples_point_at_the_labelled_boxes(tmp_path):
    """`train_outline --real`: samples cut from real scenes around the labelled plates, each pointing
    at its labelled box, the same for the same seed and chunk. Made from the committed real fixture,
    relabelled as a train split in a data folder of the shared set's layout."""
    import json

    from real_data import outline_chunk

    fixture = ROOT / "tests" / "data" / "real"
    rows = [json.loads(x) for x in (fixture / "detect.jsonl").read_text().splitlines()]
    rows = [r for r in rows if all(min(p["bbox"][2:]) >= 12 for p in r["plates"])][:4]
    assert rows
    (tmp_path / "real-detect" / "images").mkdir(parents=True)
    (tmp_path / "real-read").mkdir()
    (tmp_path / "real-read" / "labels.jsonl").write_text("")
    for r in rows:
        (tmp_path / "real-detect" / r["file"]).write_bytes((fixture / r["file"]).read_bytes())
    (tmp_path / "real-detect" / "labels.jsonl").write_text("".join(json.dumps({**r, "split": "train"}) + "\n"
                                                                  for r in rows))
    got = outline_chunk(0, tmp_path, 3, 24, (), ROOT / "models")
    x, y = got["x"], got["y"]
    assert x.shape == (24, OUTLINE_H, OUTLINE_W) and y.shape == (24, 8)
    assert np.abs(y).max() <= MAX_DELTA + 1e-6 and x.std() > 10  # real pixels, bounded moves
    assert np.abs(y).mean() > 0.02  # the outlines given are off the labelled boxes: there is a move to learn
    # deterministic in (seed, chunk), as resumable training's cached chunks need
    again = outline_chunk(0, tmp_path, 3, 24, (), ROOT / "models")
    assert np.array_equal(again["x"], x) and np.array_equal(again["y"], y)
    assert not np.array_equal(outline_chunk(1, tmp_path, 3, 24, (), ROOT / "models")["y"], y)
