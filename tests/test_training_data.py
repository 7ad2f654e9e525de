"""The reader's training crops cut along the shipped detector's outlines: real rendering, real detector
inference, real reader inference on the result."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.plates import ALPHABET
from agent.recognise.decode import decode
from agent.recognise.preprocess import local_contrast
from agent.recognise.runtime import Model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from train_common import epoch_order  # noqa: E402
from train_reader import EXTRA_BLOCKS, MAX_LABEL, make_detector_chunk, reader_blocks  # noqa: E402


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


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3000), batch=st.integers(1, 300), seed=st.integers(0, 2**31), epoch=st.integers(0, 50),
       data=st.data())
def test_a_resumed_epoch_goes_on_with_the_batches_it_had_left(n, batch, seed, epoch, data):
    whole = epoch_order(n, batch, seed, epoch)
    steps = n // batch
    assert len(whole) == steps * batch and len(set(whole.tolist())) == len(whole) and (whole < n).all()
    skip = data.draw(st.integers(0, steps))
    rest = epoch_order(n, batch, seed, epoch, skip)
    assert np.array_equal(np.concatenate([whole[: skip * batch], rest]), whole)


def test_each_epoch_has_its_own_order_from_the_seed():
    a, b = epoch_order(1000, 10, 9, 0), epoch_order(1000, 10, 9, 1)
    assert not np.array_equal(a, b) and np.array_equal(a, epoch_order(1000, 10, 9, 0))


@settings(max_examples=40, deadline=None)
@given(degrees=st.floats(-30, 30), cx=st.floats(110, 210), cy=st.floats(90, 150), w=st.floats(20, 80),
       h=st.floats(8, 30))
def test_a_turned_scene_keeps_its_plate_boxes_on_the_plates(degrees, cx, cy, w, h):
    """The detector's real training scenes turned for sloping plates: the plate box must turn with the
    pixels, or the target mask would mark the wrong place."""
    import cv2
    from real_data import rotated

    img = np.zeros((240, 320), np.uint8)
    quad = np.array([[cx - w / 2, cy - h / 2], [cx + w / 2, cy - h / 2], [cx + w / 2, cy + h / 2],
                     [cx - w / 2, cy + h / 2]])
    cv2.fillConvexPoly(img, np.round(quad * 16).astype(np.int32), 255, shift=4)  # to 1/16 px
    out, (q,) = rotated(img, [quad], degrees)
    drawn = np.zeros_like(img)
    cv2.fillConvexPoly(drawn, np.round(q * 16).astype(np.int32), 255, shift=4)
    # every plate pixel within a pixel of the turned box, and the box a pixel in all plate (an overlap
    # share cannot tell: an 8 px high box loses a quarter of it to one row of interpolation)
    bright, ring = out > 127, np.ones((3, 3), np.uint8)
    assert not (bright & (cv2.dilate(drawn, ring) == 0)).any(), degrees
    assert not ((cv2.erode(drawn, ring) > 0) & ~bright).any(), degrees
    # the plate's long side slopes by the turn (image y points down: a positive turn raises the right end)
    slope = np.degrees(np.arctan2(-(q[1, 1] - q[0, 1]), q[1, 0] - q[0, 0]))
    assert abs(slope - degrees) < 1e-6


@given(st.lists(st.sampled_from(EXTRA_BLOCKS), unique=True))
def test_reader_blocks_come_in_build_order_whatever_order_they_are_named(names):
    got = reader_blocks(" , ".join(names[::-1]))
    assert set(got) == set(names) and list(got) == [b for b in EXTRA_BLOCKS if b in names]


def test_an_unknown_reader_block_is_refused_by_name():
    import pytest

    with pytest.raises(SystemExit, match="unknown shape9"):
        reader_blocks("shape,shape9")


@settings(max_examples=60)
@given(st.dictionaries(st.sampled_from(["br", "ar", "fr", "in", "de"]), st.floats(0, 10, allow_nan=False), min_size=1))
def test_country_weights_parse_back_and_weigh_crops_by_country(weights):
    """`--real-countries`: the text form parses to the weights given; each crop is drawn as often as its
    country's weight says (1 where not named)."""
    import pytest
    from real_data import crop_weights, parse_country_weights

    text = ",".join(f"{k}={v!r}" for k, v in weights.items())
    assert parse_country_weights(text) == weights
    crops = [{"country": c} for c in ("br", "br", "fr", "gb", "ar", "in", "de")]
    if sum(weights.get(c["country"], 1.0) for c in crops) == 0:
        with pytest.raises(ValueError):
            crop_weights(crops, weights)
        return
    p = crop_weights(crops, weights)
    assert p is not None and abs(p.sum() - 1) < 1e-9
    assert p[3] > 0  # gb is never named: weight 1
    for i, c in enumerate(crops):
        assert p[i] / p[3] == pytest.approx(weights.get(c["country"], 1.0))


@given(st.sampled_from(["br", "br=", "=0.4", "br=x", "br=-1", "br=nan", "br=0.4;ar=1"]))
def test_bad_country_weights_are_refused_clearly(text):
    import pytest
    from real_data import parse_country_weights

    with pytest.raises(ValueError, match="country weight"):
        parse_country_weights(text)


def _real_data(tmp_path: Path) -> Path:
    """A shared-data folder in the real layout: dark characters on light crops, one grey scene with a
    labelled plate box."""
    import json

    import cv2

    (tmp_path / "real-read" / "crops").mkdir(parents=True)
    (tmp_path / "real-detect" / "images").mkdir(parents=True)
    rows = []
    for i, text in enumerate(("AB12CDE", "FG345HJ", "KL67MNP", "RS890TU")):
        crop = np.full((60, 260, 3), 235, np.uint8)
        cv2.putText(crop, text, (8, 46), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (15, 15, 15), 4)
        cv2.imwrite(str(tmp_path / "real-read" / "crops" / f"c{i}.png"), crop)
        rows.append({"file": f"crops/c{i}.png", "text": text, "lines": 1, "country": "gb", "scene": None,
                     "bbox_in_scene": None, "source": "test", "licence": "MIT", "split": "train"})
    (tmp_path / "real-read" / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    scene = np.random.default_rng(0).integers(60, 120, (300, 400, 3)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "real-detect" / "images" / "s0.png"), scene)
    det = {"file": "images/s0.png", "width": 400, "height": 300, "plates": [{"bbox": [120, 150, 160, 36]}],
           "source": "test", "licence": "MIT", "split": "train"}
    (tmp_path / "real-detect" / "labels.jsonl").write_text(json.dumps(det) + "\n")
    return tmp_path


def test_real_reader_crops_are_labelled_and_turned_negative_when_asked(tmp_path):
    """`--real-invert`: the share asked for comes out light-on-dark (the real crops here are all dark
    on light); every sample keeps a label of its characters."""
    from real_data import read_items, reader_chunk

    data = _real_data(tmp_path)
    read_items.cache_clear()
    texts = {"AB12CDE", "FG345HJ", "KL67MNP", "RS890TU"}
    for invert in (0.0, 1.0):
        chunk = reader_chunk(0, data, seed=3, per_chunk=40, licences=(), invert=invert)
        assert chunk["x"].shape[0] == 40
        labels = ["".join(ALPHABET[int(c)] for c in y[: y[MAX_LABEL]]) for y in chunk["y"]]
        real = [i for i, t in enumerate(labels) if t in texts]  # the real crops (the rest: composited plates)
        assert real and all(len(t) >= 2 for t in labels)
        centre = chunk["x"][real][:, 8:24, 8:120].reshape(len(real), -1)
        light_share = (np.median(centre, axis=1) > 127).mean()
        assert light_share == (1.0 if invert == 0.0 else 0.0), (invert, light_share)


def test_finder_windows_come_from_real_read_scenes_in_the_share_asked_leaving_held_out_scenes_out(
        tmp_path, monkeypatch):
    """`--real-read-scenes`: real-read's scenes join real-detect's as the finder's real windows; a scene
    whose plate is in the held-out tenth stays out (held-out scenes measure photos no model saw)."""
    import json

    import cv2
    import real_data
    from train_detector import TRAIN_H, TRAIN_W

    from sim.evaluate_real import held_out

    data = _real_data(tmp_path)
    (data / "real-read" / "scenes").mkdir()
    texts = [f"AB{i:02d}CDE" for i in range(60)]
    kept = next(t for t in texts if not held_out({"source": "test", "text": t}))
    held = next(t for t in texts if held_out({"source": "test", "text": t}))
    rows = [json.loads(line) for line in (data / "real-read" / "labels.jsonl").read_text().splitlines()]
    for name, text in (("kept", kept), ("held", held)):
        scene = np.random.default_rng(1).integers(60, 120, (480, 640, 3)).astype(np.uint8)
        cv2.imwrite(str(data / "real-read" / "scenes" / f"{name}.png"), scene)
        rows.append({"file": f"crops/{name}.png", "text": text, "lines": 1, "country": "fr",
                     "scene": f"scenes/{name}.png", "bbox_in_scene": [300.0, 320.0, 110.0, 26.0],
                     "source": "test", "licence": "MIT", "split": "train"})
    (data / "real-read" / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    real_data.read_scenes.cache_clear()
    real_data.detect_items.cache_clear()
    assert [s["file"] for s in real_data.read_scenes(data, ())] == ["real-read/scenes/kept.png"]

    loaded: list[str] = []
    real_scene = real_data._scene
    monkeypatch.setattr(real_data, "_scene", lambda d, r: loaded.append(r["file"]) or real_scene(d, r))
    for share in (0.0, 0.5, 1.0):
        loaded.clear()
        chunk = real_data.detector_chunk(0, data, seed=5, per_chunk=40, licences=(), train_hw=(TRAIN_H, TRAIN_W),
                                         read_scenes_share=share)
        assert chunk["x"].shape[0] == 40 and chunk["y"].any()
        from_read = sum(f.startswith("real-read/") for f in loaded) / len(loaded)
        assert "real-read/scenes/held.png" not in loaded
        assert abs(from_read - share) <= 0.2, (share, from_read)


def test_a_square_uk_plate_takes_a_wide_plates_place_whole(tmp_path):
    """`real_data.composite_square_uk` (the refiner's `--real-two-line` samples): the plate comes back
    at a two-line plate's own shape in the middle of the old box, and the wide plate that was there is
    gone, not left showing at its sides (which would teach the refiner to cut wide plates short)."""
    import cv2
    from real_data import bbox_quad, composite_square_uk

    img = np.full((300, 400, 3), 90, np.uint8)
    box = [100.0, 150.0, 200.0, 44.0]
    cv2.rectangle(img, (100, 150), (300, 194), (235, 235, 235), -1)
    for x in range(108, 296, 26):  # the old plate's characters, end to end
        cv2.rectangle(img, (x, 158), (x + 12, 186), (20, 20, 20), -1)
    for seed in range(5):
        made = composite_square_uk(img.copy(), bbox_quad(box), np.random.default_rng(seed))
        assert made is not None
        out, q = made
        w, h = np.linalg.norm(q[1] - q[0]), np.linalg.norm(q[3] - q[0])
        assert 1.0 < w / h < 2.0, (seed, w / h)
        assert abs(q.mean(axis=0)[0] - 200) < 0.1 * 200, q.mean(axis=0)
        left, right = int(q[:, 0].min()) - 3, int(q[:, 0].max()) + 3
        ends = np.concatenate([out[158:187, 104:left], out[158:187, right:297]], axis=1)
        assert ends.size and ends.min() > 60, (seed, int(ends.min()))  # no dark character left beside it
