import hashlib
import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from agent.cli import app
from hal.camera import Camera
from sim.camera import SimCamera, SimCameraSettings
from sim.optics import CameraModel, Installation
from sim.plates import PlateText
from sim.render import PlateStyle, render_plate
from sim.scene import Conditions, Exposure, SceneRenderer
from sim.traffic import Lane, Traffic, Vehicle


def _digest(frames):
    h = hashlib.sha256()
    for f in frames:
        h.update(f.pixels.tobytes())
        h.update(json.dumps([p.to_json() for p in f.truth.plates], sort_keys=True).encode())
    return h.hexdigest()


def test_sim_camera_is_a_camera():
    assert isinstance(SimCamera(), Camera)


def test_same_seed_same_frames_and_truth():
    s = dict(seed=11, rate_per_hour=2000, conditions="rain")
    a = SimCamera(SimCameraSettings(**s))
    b = SimCamera(SimCameraSettings(**s))
    fa = [a.capture() for _ in range(120)]
    fb = [b.capture() for _ in range(120)]
    assert sum(len(f.truth.plates) for f in fa) > 0
    assert _digest(fa) == _digest(fb)
    c = SimCamera(SimCameraSettings(**{**s, "seed": 12}))
    assert _digest([c.capture() for _ in range(120)]) != _digest(fa)


def test_dataset_cli_is_byte_identical_per_seed(tmp_path):
    runner = CliRunner()
    for d in ("a", "b"):
        for kind in ("scenes", "plates"):
            res = runner.invoke(app, ["sim", "dataset", "--kind", kind, "--count", "6", "--seed", "5",
                                      "--out", str(tmp_path / d / kind), "--conditions", "day,night"])
            assert res.exit_code == 0, res.output
    for kind in ("scenes", "plates"):
        fa = sorted((tmp_path / "a" / kind).iterdir())
        fb = sorted((tmp_path / "b" / kind).iterdir())
        assert [f.name for f in fa] == [f.name for f in fb] and len(fa) == 7
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(fa, fb, strict=True))
        rows = [json.loads(line) for line in (tmp_path / "a" / kind / "labels.jsonl").read_text().splitlines()]
        assert all({"file", "plates", "conditions"} <= set(r) for r in rows)
        assert all(r["conditions"] in ("day", "night") for r in rows)
        for r in rows:
            for p in r["plates"]:
                assert {"vrm", "format", "bbox", "polygon"} <= set(p)


def test_dataset_cli_rejects_bad_arguments(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["sim", "dataset", "--kind", "cars", "--count", "1", "--seed", "1",
                              "--out", str(tmp_path)])
    assert res.exit_code == 2 and "scenes" in res.output
    res = runner.invoke(app, ["sim", "dataset", "--kind", "plates", "--count", "1", "--seed", "1",
                              "--out", str(tmp_path), "--conditions", "snow"])
    assert res.exit_code == 2 and "snow" in res.output


def _still(distance: float, focal_mm: float = 25.0, exposure_us: int = 60, speed: float = 0.0):
    inst = Installation(mount_height_m=4.0, capture_distance_m=distance, capture_x_m=0.0, x_offset_m=0.0,
                        focal_length_mm=focal_mm)
    renderer = SceneRenderer(CameraModel(inst), seed=3)
    lane = Lane(0, 0.0, "towards")
    v = Vehicle(id=1, lane=lane, plate=PlateText("AB12CDE", "gb_current", "AB12 CDE"), style=PlateStyle(),
                kind="car", size=(4.3, 1.8, 1.45), colour=(200, 200, 200), speed=speed, y0=distance, t0=0.0,
                plate_height=0.5, plate_offset_x=0.0)
    img, truths, masks = renderer.render([v], 0.0, Exposure(exposure_us * 16, 1.0, 0.0), Conditions.preset("day"),
                                         np.random.default_rng(0), want_masks=True)
    return img, truths[0], masks[1]


@pytest.mark.parametrize("distance", [10.0, 16.0, 24.0])
def test_rendered_character_height_matches_optics_within_5_percent(distance):
    img, truth, mask = _still(distance)
    x, y, w, h = truth.bbox
    roi = img[y:y + h, x:x + w].astype(np.float32)
    inner = cv2.erode(mask[y:y + h, x:x + w], np.ones((5, 5), np.uint8)) > 200
    bg = np.percentile(roi[inner], 90)
    dark = (roi < bg * 0.5) & inner
    rows = np.where(dark.sum(axis=1) >= 2)[0]
    measured = rows.max() - rows.min() + 1
    assert measured == pytest.approx(truth.char_height_px, rel=0.05), (measured, truth.char_height_px)
    # and the model itself agrees with the pinhole formula f * H / range
    m = CameraModel(Installation(mount_height_m=4.0, capture_distance_m=distance, capture_x_m=0.0, x_offset_m=0.0,
                                 focal_length_mm=25.0))
    rng_m = float(np.linalg.norm(np.array([0, distance, 0.5]) - m.centre))
    elevation = np.arctan2(4.0 - 0.5, distance)  # a vertical plate seen from above is foreshortened
    assert truth.char_height_px == pytest.approx(m.f_px * 0.079 * np.cos(elevation) / rng_m, rel=0.02)


def test_every_truth_bbox_contains_its_plate_pixels():
    cam = SimCamera(SimCameraSettings(seed=4, rate_per_hour=2500, want_masks=True, exposure_us=4000))
    checked = 0
    for _ in range(250):
        f = cam.capture()
        for p in f.truth.plates:
            m = f.truth.masks[p.vehicle_id] > 0
            x, y, w, h = p.bbox
            inside = np.zeros_like(m)
            inside[y:y + h, x:x + w] = True
            assert m.any() and not (m & ~inside).any(), p
            checked += 1
    assert checked > 30


def test_motion_blur_follows_shutter_and_speed():
    _, slow, _ = _still(14.0, exposure_us=20, speed=30.0)
    _, fast, _ = _still(14.0, exposure_us=200, speed=30.0)
    assert fast.blur_px > 5 * slow.blur_px > 0


def test_controls_are_honoured_and_clamped():
    cam = SimCamera(SimCameraSettings(seed=2))
    dark = cam.capture().pixels.mean()
    cam.set_controls(exposure_us=3000, gain=2.0)
    bright = cam.capture()
    assert bright.exposure_us == 3000 and bright.gain == 2.0
    assert bright.pixels.mean() > 2 * dark
    cam.set_controls(exposure_us=10**9, gain=-5)
    f = cam.capture()
    assert f.exposure_us == cam.capabilities.exposure_us_range[1] and f.gain == cam.capabilities.gain_range[0]


def test_night_is_dark_with_bright_retroreflective_plates():
    cam = SimCamera(SimCameraSettings(seed=8, conditions="night", rate_per_hour=2500, exposure_us=1000, gain=4.0,
                                      ir_level=1.0))
    ratios = []
    for _ in range(300):
        f = cam.capture()
        for p in f.truth.plates:
            if p.in_frame and not p.occluded:
                x, y, w, h = p.bbox
                ratios.append(np.percentile(f.pixels[y:y + h, x:x + w], 90) / max(1.0, np.median(f.pixels)))
    assert np.median(f.pixels) < 40
    assert len(ratios) > 10 and np.median(ratios) > 4


def test_traffic_speeds_directions_and_arrivals():
    lanes = [Lane(0, -1.75, "towards"), Lane(1, 1.75, "away")]
    tr = Traffic(lanes, rate_per_hour=1800, seed=3)
    ids = {}
    for k in range(25 * 600):
        for v in tr.step(k / 25):
            ids[v.id] = v
    speeds = np.array([v.speed * 3.6 for v in ids.values()])
    assert speeds.min() >= 20 and speeds.max() <= 130
    assert {v.lane.direction for v in ids.values()} == {"towards", "away"}
    # 600 s at 1800/h/lane on 2 lanes: about 600 arrivals (spacing rules hold a few back)
    assert 400 < len(ids) < 700


def test_plate_renderer_geometry_and_styles():
    t = PlateText("AB12CDE", "gb_current", "AB12 CDE")
    p = render_plate(t, PlateStyle(), px_per_mm=1.0)
    assert p.image.shape[:2] == (111, 520)
    assert len(p.char_boxes_mm) == 7
    xs = [b[0] for b in p.char_boxes_mm]
    gaps = np.diff(xs) - 50.0
    assert gaps.tolist() == pytest.approx([11, 11, 11, 33, 11, 11])
    sq = render_plate(t, PlateStyle(two_line=True, rear=True), px_per_mm=1.0)
    assert sq.image.shape[:2] == (203, 279)
    assert sq.image[5, 140, 2] > 200 and sq.image[5, 140, 0] < 80  # yellow background (BGR)


def test_contact_sheet(tmp_path):
    res = CliRunner().invoke(app, ["sim", "contact-sheet", "--out", str(tmp_path / "cs.png")])
    assert res.exit_code == 0, res.output
    img = cv2.imread(str(tmp_path / "cs.png"))
    assert img.shape[0] > 500 and img.shape[1] > 1000


def test_reader_crops_label_covered_characters():
    """Training crops for the reader: a cover over some characters marks exactly those as hidden."""
    from sim.dataset import plate_crop
    from sim.plates import PlateText
    from sim.scene import Conditions

    text = PlateText("LV76XYZ", "gb_current", "LV76 XYZ")
    seen_hidden = seen_clear = 0
    for seed in range(60):
        img, _quad, hidden = plate_crop(np.random.default_rng(seed), text, Conditions.preset("day"), out_h=48,
                                       variety=0.0, occlusion=1.0)
        assert len(hidden) == 7 and img.shape[0] == 48
        seen_hidden += any(hidden)
        seen_clear += not all(hidden)
    assert seen_hidden >= 30 and seen_clear >= 30
    for seed in range(20):  # without a cover nothing is hidden unless the crop cuts a character off
        _img, _q, hidden = plate_crop(np.random.default_rng(seed), text, Conditions.preset("day"), out_h=48,
                                      variety=0.0)
        assert sum(hidden) <= 1


def test_hidden_characters_are_the_covered_ones():
    from sim.dataset import _hidden_chars

    text = PlateText("LV76XYZ", "gb_current", "LV76 XYZ")
    tex = render_plate(text, PlateStyle(), px_per_mm=0.5)
    x, y, w, h = tex.char_boxes_mm[4]  # the X
    cover = np.array([[x - 1, y - 5], [x + w + 1, y - 5], [x + w + 1, y + h + 5], [x - 1, y + h + 5]])
    ident = np.eye(3)
    assert _hidden_chars(text, tex, cover, ident, 10_000) == [False] * 4 + [True] + [False] * 2
    assert _hidden_chars(text, tex, None, ident, 10_000) == [False] * 7
    # a crop that ends inside the first group cuts its characters off
    cut = _hidden_chars(text, tex, None, ident, int(tex.char_boxes_mm[2][0] + 1))
    assert cut[:2] == [False, False] and cut[3:] == [True] * 4
