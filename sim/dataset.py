"""Labelled data sets from the simulator: whole scenes (for a plate detector) and plate crops (for a
character reader), varied in installation, light, weather and plate style; deterministic per seed."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sim.optics import CameraModel, Installation
from sim.plates import PlateText, generate
from sim.render import PlateStyle, render_plate
from sim.scene import IR_RETRO, K_SENSOR, PRESETS, Conditions, Exposure, PlateTruth, SceneRenderer
from sim.traffic import Lane, random_vehicle

ALL_CONDITIONS = tuple(PRESETS)


def parse_conditions(text: str | None) -> tuple[str, ...]:
    if not text:
        return ("day", "overcast", "dusk", "night", "rain", "glare", "night_rain")
    names = tuple(c.strip() for c in text.split(",") if c.strip())
    for n in names:
        Conditions.preset(n)  # raises with the list of valid names
    return names


def random_installation(rng: np.random.Generator, width: int = 1280, height: int = 720) -> Installation:
    """Installations from close gantry cameras to wide pole-mounted views; characters 10-60 px."""
    h = float(rng.uniform(2.5, 9.0))
    d = float(rng.uniform(6.0, 30.0))
    char_px = float(np.exp(rng.uniform(math.log(11), math.log(60))))
    rngm = math.hypot(h - 0.5, d)
    pitch = 3.0
    f_px = char_px * rngm / 0.079 * (width / 1280.0)
    return Installation(
        mount_height_m=h, capture_distance_m=d, capture_x_m=float(rng.choice([-1.75, 1.75, -5.25])),
        x_offset_m=float(rng.uniform(-4.0, 4.0)), roll_deg=float(rng.normal(0, 2.5)),
        focal_length_mm=f_px * pitch * 1e-3, pixel_pitch_um=pitch, width=width, height=height,
    )


def auto_exposure(cond: Conditions, range_m: float, rng: np.random.Generator, error_stops: float = 1.2) -> Exposure:
    """Roughly what a working exposure control would choose, with a random error in stops."""
    ir = 0.0 if cond.ambient > 0.3 else float(rng.uniform(0.5, 1.0))
    plate_illum = cond.ambient * 0.95 + ir * IR_RETRO / range_m**2
    ef = 170.0 / (238.0 * max(plate_illum, 1e-3))
    ef *= 2.0 ** rng.uniform(-error_stops, error_stops)
    gain = 1.0 if ef < 1.2 else float(min(16.0, ef / 1.0))
    exposure_us = int(np.clip(ef * 1000.0 / (K_SENSOR * gain), 50, 4000))
    return Exposure(exposure_us, gain, ir)


@dataclass(slots=True)
class Sample:
    name: str
    image: np.ndarray
    plates: list[dict[str, object]]
    conditions: str


def _place_vehicles(rng: np.random.Generator, model: CameraModel, n: int, foreign_rate: float,
                    t: float) -> list:
    """Vehicles spread over the stretch of road where plates are in view, mostly in the watched lane."""
    near, far = model.plate_y_range()
    cx = model.inst.capture_x_m
    lanes = [Lane(0, cx, "towards" if rng.random() < 0.6 else "away"), Lane(1, cx + 3.5, "away"),
             Lane(2, cx - 3.5, "towards")]
    vehicles = []
    used: dict[int, list[tuple[float, float]]] = {}
    for i in range(n):
        lane = lanes[0] if rng.random() < 0.75 else lanes[int(rng.integers(1, 3))]
        y = float(rng.uniform(max(2.0, near - 1.0), min(far + 2.0, 90.0)))
        v = random_vehicle(rng, i + 1, lane, y, t, foreign_rate, occlusion_rate=0.05)
        v.t0 = t
        spans = used.setdefault(lane.index, [])
        if any(not (y + v.size[0] + 1.0 < a or y > b + 1.0) for a, b in spans):
            continue
        spans.append((y, y + v.size[0]))
        vehicles.append(v)
    return vehicles


def scene_samples(count: int, seed: int, conditions: tuple[str, ...], width: int = 1280, height: int = 720,
                  per_installation: int = 8, foreign_rate: float = 0.08, colour_rate: float = 0.3) -> Iterator[Sample]:
    rng = np.random.default_rng([seed, 1])
    for i, (img, truths, cond) in enumerate(random_scenes(rng, count, conditions, width, height, per_installation,
                                                          foreign_rate, colour_rate)):
        yield Sample(f"scene_{seed}_{i:06d}", img, [_truth_label(t) for t in truths], cond.name)


def random_scenes(rng: np.random.Generator, count: int, conditions: tuple[str, ...], width: int = 1280,
                  height: int = 720, per_installation: int = 8, foreign_rate: float = 0.08, colour_rate: float = 0.3,
                  vehicle_counts: tuple[int, ...] = (0, 1, 1, 1, 2, 2, 3)
                  ) -> Iterator[tuple[np.ndarray, list[PlateTruth], Conditions]]:
    """Frames of random installations, light, weather, exposure error, focus and compression."""
    renderer: SceneRenderer | None = None
    for i in range(count):
        if renderer is None or i % per_installation == 0:
            inst = random_installation(rng, width, height)
            renderer = SceneRenderer(CameraModel(inst), colour=bool(rng.random() < colour_rate),
                                     seed=int(rng.integers(2**31)))
        cond = Conditions.preset(conditions[int(rng.integers(len(conditions)))])
        model = renderer.model
        n = int(rng.choice(vehicle_counts))
        vehicles = _place_vehicles(rng, model, n, foreign_rate, 0.0)
        rng_m = math.hypot(model.inst.mount_height_m - 0.5, model.inst.capture_distance_m)
        exp = auto_exposure(cond, rng_m, rng)
        defocus = float(rng.choice([0.0, 0.0, 0.0, rng.uniform(0.5, 2.5)]))
        jpeg = int(rng.integers(35, 95)) if rng.random() < 0.6 else None
        img, truths, _ = renderer.render(vehicles, 0.0, exp, cond, rng, defocus, jpeg)
        renderer.forget(set())
        yield img, truths, cond


def _truth_label(t: PlateTruth) -> dict[str, object]:
    return {"vrm": t.vrm, "format": t.format, "bbox": t.bbox, "polygon": t.polygon, "in_frame": t.in_frame,
            "occluded": t.occluded, "char_height_px": t.char_height_px, "rear": t.rear, "two_line": t.two_line}


def plate_crop(rng: np.random.Generator, text: PlateText, cond: Conditions, out_h: int = 64,
               variety: float = 0.25, colour: bool = False, occlusion: float = 0.0
               ) -> tuple[np.ndarray, list[list[float]], list[bool]]:
    """A plate as a detector would hand it to the reader: loosely cropped around the plate, with the
    perspective, blur, noise, light and compression of a real capture.

    The margins and offsets span the detector's measured box errors (width up to ~1.4x the plate,
    centre off by a few percent). With probability `occlusion` something (a tow bar, bike rack, the
    edge of a nearer vehicle) covers part of the plate. Returns the image, the plate polygon and, per
    character of `text.vrm`, whether it is hidden (covered or cut off by the crop).
    """
    style = PlateStyle.random(rng, variety=variety)
    tex = render_plate(text, style, px_per_mm=0.5)
    th, tw = tex.image.shape[:2]
    aspect = tw / th
    # Plate size in the crop: a margin around it, skew and rotation as a detector box would leave.
    ph = out_h / rng.uniform(1.1, 1.75)
    pw = ph * aspect * rng.uniform(0.85, 1.15)
    out_w = int(round(pw * rng.uniform(1.05, 1.45))) if not style.two_line else int(round(pw * rng.uniform(1.1, 1.4)))
    cx, cy = out_w / 2 + rng.normal(0, out_w * 0.03), out_h / 2 + rng.normal(0, out_h * 0.05)
    ang = math.radians(rng.normal(0, 4))
    shear = rng.normal(0, 0.12)
    persp = rng.normal(0, 0.06)
    base = np.array([[-pw / 2, -ph / 2], [pw / 2, -ph / 2], [pw / 2, ph / 2], [-pw / 2, ph / 2]])
    base[:, 0] += shear * base[:, 1]
    base[[1, 2], 1] *= 1 + persp
    base[[0, 3], 1] *= 1 - persp
    rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    quad = base @ rot.T + [cx, cy]
    # Downscale the texture first (plates can be as small as 10 px high) to avoid aliasing.
    small_h = max(8, int(ph * 1.5))
    src_img = cv2.resize(tex.image, (max(8, int(small_h * aspect)), small_h), interpolation=cv2.INTER_AREA)
    sh, sw = src_img.shape[:2]
    Hm = cv2.getPerspectiveTransform(np.float32([[0, 0], [sw, 0], [sw, sh], [0, sh]]), quad.astype(np.float32))
    car = np.array([rng.integers(10, 250) for _ in range(3)], np.uint8)
    if not colour:  # work in one channel from the start: 3x less to do
        src_img = cv2.cvtColor(src_img, cv2.COLOR_BGR2GRAY)
        car = np.array([int(0.114 * car[0] + 0.587 * car[1] + 0.299 * car[2])], np.uint8)
    shape = (out_h, out_w) if not colour else (out_h, out_w, 3)
    bg = np.empty(shape, np.uint8)
    bg[:] = car if colour else car[0]
    bg = cv2.add(bg, (rng.standard_normal(shape, dtype=np.float32) * 8).astype(np.int16), dtype=cv2.CV_8U)
    if rng.random() < 0.5:  # bumper edges, grille slats, shadows around the plate
        for _ in range(int(rng.integers(1, 4))):
            y = int(rng.integers(out_h))
            c = tuple(int(v) for v in rng.integers(0, 255, 3))
            cv2.line(bg, (0, y), (out_w, y + int(rng.integers(-5, 6))), c if colour else c[0], int(rng.integers(1, 6)))
    cv2.warpPerspective(src_img, Hm, (out_w, out_h), dst=bg, borderMode=cv2.BORDER_TRANSPARENT,
                        flags=cv2.INTER_LINEAR)
    img = bg
    to_crop = Hm @ np.diag([sw / tex.size_mm[0], sh / tex.size_mm[1], 1.0])  # plate mm -> crop pixels
    cover = _occluder_mm(rng, tex.size_mm) if rng.random() < occlusion else None
    if cover is not None:
        pts = cv2.perspectiveTransform(cover[None].astype(np.float32), to_crop)[0]
        c = tuple(int(v) for v in rng.integers(0, 120, 3)) if rng.random() < 0.7 else tuple(
            int(v) for v in rng.integers(0, 255, 3))
        cv2.fillConvexPoly(img, np.round(pts * 16).astype(np.int32), c if colour else c[0], cv2.LINE_AA, 4)
    hidden = _hidden_chars(text, tex, cover, to_crop, out_w)
    # Light: day, IR night (plate bright, surroundings dark), over/under exposure, gamma (one LUT).
    night = cond.ambient < 0.1
    if night:
        mask = np.full((out_h, out_w), 31, np.uint8)
        cv2.fillConvexPoly(mask, np.round(quad).astype(np.int32), 255)
        if cover is not None:  # the cover does not retroreflect
            cv2.fillConvexPoly(mask, np.round(pts).astype(np.int32), 31)
        img = cv2.multiply(img, cv2.merge([mask] * 3) if colour else mask, scale=1 / 255.0)
    gain = 2.0 ** rng.uniform(-1.5, 1.0)
    lut = (255.0 * (np.clip(np.arange(256) * gain, 0, 255) / 255.0) ** rng.uniform(0.6, 1.6)).astype(np.uint8)
    img = cv2.LUT(img, lut)
    if cond.glare > 0 and rng.random() < 0.5:
        gx = int(rng.integers(out_w))
        cv2.circle(img, (gx, int(rng.integers(out_h))), int(rng.integers(4, out_h)), (255, 255, 255), -1)
        img = cv2.GaussianBlur(img, (0, 0), 3)
    # Blur: defocus or motion (vertical, as traffic moves along the road).
    r = rng.random()
    if r < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.4))
    elif r < 0.5:
        n = int(rng.integers(2, 5))
        k = np.zeros((n, n), np.float32)
        k[:, n // 2] = 1.0 / n
        img = cv2.filter2D(img, -1, k)
    if rng.random() < 0.15:  # very small plates: lose resolution and come back
        f = rng.uniform(0.35, 0.7)
        img = cv2.resize(cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA), (out_w, out_h))
    sigma = rng.uniform(1, 12 if not night else 18)
    img = cv2.add(img, (rng.standard_normal(img.shape, dtype=np.float32) * sigma).astype(np.int16), dtype=cv2.CV_8U)
    if cond.rain > 0:
        for _ in range(int(rng.integers(0, 15))):
            x, y = int(rng.integers(out_w)), int(rng.integers(out_h))
            cv2.line(img, (x, y), (x + 2, y + 10), (200, 200, 200), 1)
    if rng.random() < 0.7:
        _ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 95))])
        img = cv2.imdecode(enc, cv2.IMREAD_UNCHANGED)
    return img, [[round(float(a), 2), round(float(b), 2)] for a, b in quad], hidden


def _occluder_mm(rng: np.random.Generator, size_mm: tuple[float, float]) -> np.ndarray:
    """A cover in plate millimetres: a bar (tow bar, rack) across some characters, or the edge of
    a nearer vehicle over one end of the plate."""
    w, h = size_mm
    if rng.random() < 0.6:  # bar, from below (tow ball neck) or from above, sometimes slanted
        bw = w * rng.uniform(0.06, 0.3)
        x0 = rng.uniform(-0.05 * w, w - bw * 0.5)
        y0, y1 = (rng.uniform(-0.1, 0.5) * h, 1.1 * h) if rng.random() < 0.7 else (-0.1 * h, rng.uniform(0.5, 1.1) * h)
        slant = rng.normal(0, 0.15) * (y1 - y0)
        return np.array([[x0 + slant, y0], [x0 + bw + slant, y0], [x0 + bw, y1], [x0, y1]])
    cut = w * rng.uniform(0.1, 0.5)  # vehicle edge over the left or right end
    x0, x1 = (-0.2 * w, cut) if rng.random() < 0.5 else (w - cut, 1.2 * w)
    slant = rng.normal(0, 0.1) * h
    return np.array([[x0 + slant, -0.2 * h], [x1 + slant, -0.2 * h], [x1 - slant, 1.2 * h], [x0 - slant, 1.2 * h]])


def _hidden_chars(text: PlateText, tex, cover: np.ndarray | None, to_crop: np.ndarray, out_w: int) -> list[bool]:
    """Per character of the VRM: hidden if a third or more of its box is covered or outside the crop."""
    boxes = [b for b, ch in zip(tex.char_boxes_mm, [c for c in text.display if c != " "], strict=False)
             if ch.isalnum()]
    out = []
    for x, y, bw, bh in boxes:
        xs = np.linspace(x, x + bw, 7)
        ys = np.linspace(y, y + bh, 5)
        grid = np.array([[a, b] for a in xs for b in ys], np.float32)
        inside = np.zeros(len(grid), bool)
        if cover is not None:
            inside = np.array([cv2.pointPolygonTest(cover.astype(np.float32), (float(a), float(b)), False) >= 0
                               for a, b in grid])
        px = cv2.perspectiveTransform(grid[None], to_crop)[0][:, 0]
        off = (px < 0) | (px > out_w)
        out.append(bool(np.mean(inside | off) >= 0.34))
    return out if len(out) == len(text.vrm) else [False] * len(text.vrm)


def plate_samples(count: int, seed: int, conditions: tuple[str, ...], foreign_rate: float = 0.08,
                  colour_rate: float = 0.3) -> Iterator[Sample]:
    rng = np.random.default_rng([seed, 2])
    for i in range(count):
        cond = Conditions.preset(conditions[int(rng.integers(len(conditions)))])
        text = generate(rng, foreign_rate)
        img, quad, _hidden = plate_crop(rng, text, cond, colour=bool(rng.random() < colour_rate))
        xs, ys = [p[0] for p in quad], [p[1] for p in quad]
        x0, y0 = max(0, int(min(xs))), max(0, int(min(ys)))
        x1, y1 = min(img.shape[1], math.ceil(max(xs))), min(img.shape[0], math.ceil(max(ys)))
        bbox = [x0, y0, x1 - x0, y1 - y0]
        yield Sample(f"plate_{seed}_{i:06d}", img, [{"vrm": text.vrm, "format": text.format, "bbox": bbox,
                                                      "polygon": quad, "display": text.display}], cond.name)


def write_dataset(kind: str, count: int, seed: int, out: Path, conditions: tuple[str, ...]) -> int:
    out.mkdir(parents=True, exist_ok=True)
    if kind == "scenes":
        gen, ext, params = scene_samples(count, seed, conditions), ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 92]
    elif kind == "plates":
        gen, ext, params = plate_samples(count, seed, conditions), ".png", [cv2.IMWRITE_PNG_COMPRESSION, 3]
    else:
        raise ValueError(f"unknown dataset kind {kind!r}; choose scenes or plates")
    n = 0
    with (out / "labels.jsonl").open("w", encoding="utf-8") as f:
        for s in gen:
            name = s.name + ext
            if not cv2.imwrite(str(out / name), s.image, params):
                raise OSError(f"could not write {out / name}")
            f.write(json.dumps({"file": name, "plates": s.plates, "conditions": s.conditions}, sort_keys=True) + "\n")
            n += 1
    return n
