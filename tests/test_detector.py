"""Detector post-processing on probability maps drawn by hand: plate geometry and merged regions."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.recognise.detector import Detection, PlateDetector
from agent.recognise.preprocess import DET_H, DET_STRIDE, DET_W
from agent.recognise.runtime import Model

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(scope="module")
def det():
    return PlateDetector(Model(MODELS / "detector.tflite"))


def draw(cells: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """A probability map (detector output grid) with filled parallelograms: (corners in cells, p)."""
    import cv2

    prob = np.zeros((DET_H // DET_STRIDE, DET_W // DET_STRIDE), np.float32)
    for quad, p in cells:
        cv2.fillConvexPoly(prob, np.round(quad).astype(np.int32), p)
    return prob


@pytest.mark.parametrize("slope", [0.0, 0.25, -0.4])
def test_sheared_plate_comes_back_as_its_parallelogram(det, slope):
    # a 30x7-cell plate whose top and bottom edges slope and whose sides stay vertical (camera off to one side)
    x0, y0, w, h = 40.0, 40.0, 30.0, 7.0
    quad = np.array([[x0, y0], [x0 + w, y0 + slope * w], [x0 + w, y0 + slope * w + h], [x0, y0 + h]])
    (d,) = det._components(draw([(quad, 1.0)]), 1.0, 0, 0)
    got = d.quad / DET_STRIDE
    assert np.degrees(np.arctan2(*(got[1] - got[0])[::-1])) == pytest.approx(np.degrees(np.arctan(slope)), abs=2)
    assert abs(got[3, 0] - got[0, 0]) < 1.0  # vertical sides
    assert np.linalg.norm(got[1] - got[0]) == pytest.approx(w * np.hypot(1, slope), rel=0.15)
    assert got[3, 1] - got[0, 1] == pytest.approx(h, rel=0.3)


def test_plate_merged_with_a_bright_strip_is_split_out(det):
    plate = np.array([[60.0, 50], [84, 50], [84, 56], [60, 56]])
    strip = np.array([[20.0, 51], [140, 51], [140, 55], [20, 55]])  # bumper strip through the plate, p 0.6
    prob = draw([(strip, 0.6), (plate, 1.0)])
    found = det._components(prob, 1.0, 0, 0)
    assert len(found) == 1
    w, h = found[0].size
    assert w / DET_STRIDE == pytest.approx(24, rel=0.25) and w < 6.5 * h
    # on its own the same strip is not split into pieces that are not there
    (alone,) = det._components(draw([(strip, 0.6)]), 1.0, 0, 0)
    assert alone.size[0] / DET_STRIDE > 100


@pytest.mark.parametrize(("closer", "kept"), [
    # the closer look finds the plate again, a little shifted: its outline is taken
    (np.array([[11.0, 5], [35, 5], [35, 11], [11, 11]]), False),
    # it finds only a sliver (a region of another size): the first outline stays
    (np.array([[10.0, 8], [34, 8], [34, 8.6], [10, 8.6]]), True),
    # it finds nothing: the first outline stays
    (None, True),
])
def test_closer_look_keeps_the_first_outline_unless_it_finds_the_same_plate(det, monkeypatch, closer, kept):
    from agent.recognise.detector import _closer_width

    first = det._components(draw([(np.array([[10.0, 5], [34, 5], [34, 11], [10, 11]]), 1.0)]), 1.0, 0, 0)[0]
    grey = np.zeros((DET_H, DET_W), np.uint8)
    # the closer look's window (the first quarter of its detector run): frame cells mapped into it
    s = DET_W / _closer_width(first)
    origin = first.quad.mean(axis=0) - np.array([DET_W // 2, DET_H // 2]) / s / 2
    cells = [((closer * DET_STRIDE - origin) * s / DET_STRIDE, 1.0)] if closer is not None else []
    prob = draw(cells)
    monkeypatch.setattr(det.model, "run", lambda x: prob[..., None])
    got = det.refine(grey, first)
    assert (got is first) is kept


def test_other_outlines_include_the_whole_plate_a_piece_belongs_to(det, monkeypatch):
    # the frame's mask gave only the left end of a steeply sloping plate; the other looks see all of it
    # (near the corner, so every look's window starts at (0, 0) and the drawn map lines up with it)
    plate = np.array([[2.0, 5], [42, 25], [42, 33], [2, 13]])
    piece_cells = np.array([[2.0, 5], [12, 10], [12, 18], [2, 13]])
    piece = det._components(draw([(piece_cells, 1.0)]), 1.0, 0, 0)[0]
    grey = np.zeros((DET_H, DET_W), np.uint8)
    monkeypatch.setattr(det, "probability_map", lambda img: (draw([(plate, 1.0)]), 1.0))
    found = det.alternatives(grey, piece)
    assert len(found) == 1
    assert found[0].size[0] / DET_STRIDE == pytest.approx(40 * np.hypot(1, 0.5), rel=0.15)
    # where the other looks find only the piece again, or nothing, there is nothing else to try
    monkeypatch.setattr(det, "probability_map", lambda img: (draw([(piece_cells, 1.0)]), 1.0))
    assert det.alternatives(grey, piece) == []
    monkeypatch.setattr(det, "probability_map", lambda img: (draw([]), 1.0))
    assert det.alternatives(grey, piece) == []


@settings(max_examples=300, deadline=None)
@given(st.integers(16, 5000), st.integers(16, 4000))
def test_magnified_scale_is_twice_the_letterbox_as_far_as_the_magnifier_holds_the_image(width, height):
    """A photograph the letterbox shrinks less than MAGNIFY_MIN_SCALE, or one the magnifier holds whole
    (up to 1024x768), is looked at MAGNIFY times the letterbox's scale, whole, in the magnifier's input
    (less magnified where it would not fit; never less than its own resolution when it fits); larger
    frames (the unit's 1280x720) are not."""
    from agent.recognise.detector import MAGNIFY, MAGNIFY_MIN_SCALE, magnified_scale

    size = (768, 1024)
    s0 = min(DET_W / width, DET_H / height)
    s = magnified_scale(width, height, size)
    fits = width <= size[1] and height <= size[0]
    if s0 < MAGNIFY_MIN_SCALE and not fits:
        assert s is None
        return
    assert s is not None
    if fits:
        assert s >= 1.0 - 1e-9  # never below the photo's own resolution
    assert round(width * s) <= size[1] and round(height * s) <= size[0]  # all of it in one run
    assert s <= MAGNIFY * s0 + 1e-9
    # as magnified as it can be: MAGNIFY times, or filling the magnifier's width or height
    assert s >= MAGNIFY * s0 - 1e-9 or abs(width * s - size[1]) < 1e-6 or abs(height * s - size[0]) < 1e-6
    assert s > s0 or s0 * width >= size[1] or s0 * height >= size[0]


@pytest.mark.parametrize(("size", "magnify", "runs"),
                         [((240, 320), True, {"magnifier": 1}), ((240, 320), False, {"finder": 1, "detector": 1}),
                          ((480, 640), True, {"magnifier": 1}), ((768, 1024), True, {"magnifier": 1}),
                          ((768, 1024), False, {"finder": 1, "detector": 1}),
                          ((769, 1024), True, {"finder": 1, "detector": 1}),
                          ((720, 1280), True, {"finder": 1, "detector": 1})])
def test_small_photographs_get_one_magnified_pass_of_the_finder_alone(size, magnify, runs):
    """A small photo's one pass (up to 1024x768) is the magnifier's, over all of it (the finder exported
    at a larger input), and nothing else: the simulator-trained detector found no more there, only
    clutter. Larger frames, or with magnify off, get the finder's and the detector's letterboxed passes."""
    calls = {"finder": 0, "magnifier": 0, "detector": 0}

    class Counting(Model):
        def __init__(self, path, name):
            super().__init__(path)
            self.name = name

        def run(self, x):
            calls[self.name] += 1
            return super().run(x)

    d = PlateDetector(Counting(MODELS / "detector.tflite", "detector"), finder=Counting(MODELS / "finder.tflite",
                      "finder"), finder_threshold=0.85, finder_adds=True, magnify=magnify,
                      magnifier=Counting(MODELS / "finder_magnified.tflite", "magnifier"))
    d.detect(np.random.default_rng(1).integers(0, 255, size, dtype=np.uint8))
    assert calls == {"finder": 0, "magnifier": 0, "detector": 0} | runs
    # closer looks: none in a photo the magnifier took (its regions are kept as the finder gave them)
    region = Detection(np.array([[100.0, 100], [160, 100], [160, 114], [100, 114]]), 0.9, from_finder=True)
    before = calls["detector"]
    looked = d.refine_all(np.zeros(size, np.uint8), [region])
    magnified = "magnifier" in runs
    assert calls["detector"] - before == (0 if magnified else 1)
    assert (looked[0] is region) if magnified else len(looked) == 1


def test_extent_is_the_outline_box_unrounded_and_bbox_holds_it():
    q = np.array([[10.2, 40.6], [20.6, 40.4], [20.7, 43.3], [10.3, 43.5]])
    d = Detection(q, 0.9)
    x, y, w, h = d.extent
    assert (x, y) == (10.2, 40.4) and abs(w - 10.5) < 1e-9 and abs(h - 3.1) < 1e-9
    bx, by, bw, bh = d.bbox
    assert (bx, by, bw, bh) == (10, 40, 11, 4) and bx <= x and by <= y and bx + bw >= x + w and by + bh >= y + h


def test_the_magnifier_is_the_shipped_finder_at_a_larger_input():
    """finder_magnified.tflite must carry the finder's own int8 filters (scripts/export_magnified.py
    from the same weights): a finder retrained without exporting the magnifier again would leave small
    photos to an older network."""
    from ai_edge_litert.interpreter import Interpreter

    def filters(path):
        it = Interpreter(model_path=str(path))
        it.allocate_tensors()
        out = []
        for t in it.get_tensor_details():
            shape = tuple(t["shape"])  # filters: (out, kh, kw, in), depthwise (1, kh, kw, ch); kernels <= 3
            if t["dtype"] == np.int8 and len(shape) == 4 and shape[1] <= 3 and shape[2] <= 3:
                out.append(it.get_tensor(t["index"]).tobytes())
        return sorted(out)

    finder = filters(MODELS / "finder.tflite")
    assert len(finder) >= 15
    assert filters(MODELS / "finder_magnified.tflite") == finder
    assert filters(MODELS / "detector.tflite") != finder  # the comparison can fail
    assert Model(MODELS / "finder_magnified.tflite").input_shape == (1, 768, 1024, 1)
