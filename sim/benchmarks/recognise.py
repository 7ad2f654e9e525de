"""Recogniser speed on simulated 1280x720 frames with one and with three plates, single thread."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from agent.recognise.image_file import read_image
from agent.recognise.recogniser import Recogniser, StageTimes


def _frames(n_plates: int, count: int, seed: int) -> list[np.ndarray]:
    from sim.optics import CameraModel, Installation
    from sim.plates import generate_uk
    from sim.render import PlateStyle
    from sim.scene import Conditions, Exposure, SceneRenderer
    from sim.traffic import Lane, Vehicle

    inst = Installation(capture_x_m=0.0, x_offset_m=0.0, focal_length_mm=8.0)  # three lanes in view
    renderer = SceneRenderer(CameraModel(inst), seed=seed)
    near, far = renderer.model.plate_y_range()
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        vehicles = []
        for k in range(n_plates):
            lane = Lane(k, (k - (n_plates - 1) / 2) * 3.5 if n_plates > 1 else 0.0, "towards")
            y = float(rng.uniform(near + 1, min(far - 1, near + 8)))
            vehicles.append(Vehicle(id=i * 10 + k, lane=lane, plate=generate_uk(rng), style=PlateStyle(),
                                    kind="car", size=(4.3, 1.8, 1.45), colour=(150, 150, 150), speed=15.0, y0=y,
                                    t0=0.0, plate_height=0.5, plate_offset_x=0.0))
        img, _, _ = renderer.render(vehicles, 0.0, Exposure(500, 1.0, 0.0), Conditions.preset("day"), rng)
        out.append(img)
    return out


def _summary(per_frame: list[float], stages: StageTimes, reads: int, n: int) -> dict[str, object]:
    ms = np.array(per_frame) * 1000
    return {
        "frames": n, "reads_per_frame": round(reads / n, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "frames_per_s": round(1000 / float(ms.mean()), 1),
        "stage_ms": {k: round(1000 * getattr(stages, k) / n, 3) for k in ("detect", "rectify", "read", "decode")},
    }


def bench_images(models_dir: Path | None, files: list[Path], magnify: bool = True) -> dict[str, object]:
    """Whole-image time (decoded image in, reads out) over real photographs, one thread: each image
    once after a warm-up on the first few. Unreadable files are counted, not timed."""
    cv2.setNumThreads(1)
    rec = Recogniser(models_dir, threads=1, magnify=magnify)
    imgs = [im for im, _ in map(read_image, files) if im is not None]  # as `recognise` reads them
    if not imgs:
        raise ValueError("no readable images")
    sizes = np.array([im.shape[1] * im.shape[0] for im in imgs])
    return {**_timed(rec, imgs, 5), "unreadable": len(files) - len(imgs), "median_pixels": int(np.median(sizes))}


def _timed(rec: Recogniser, images: list[np.ndarray], warm_up: int) -> dict[str, object]:
    """Each image recognised once, timed whole and per stage, after `warm_up` untimed ones."""
    for im in images[:warm_up]:
        rec.recognise(im)
    per_frame, stages, reads = [], StageTimes(), 0
    for im in images:
        t0 = time.perf_counter()
        reads += len(rec.recognise(im, stages))
        per_frame.append(time.perf_counter() - t0)
    return _summary(per_frame, stages, reads, len(images))


def bench_recognise(models_dir: Path | None, count: int = 200, seed: int = 0) -> dict[str, object]:
    cv2.setNumThreads(1)
    rec = Recogniser(models_dir, threads=1)
    result: dict[str, object] = {"resolution": "1280x720", "threads": 1, "runtime": rec.reader.runtime}
    for n in (1, 3):
        result[f"{n}_plate"] = _timed(rec, _frames(n, count, seed + n), 10)
    return result
