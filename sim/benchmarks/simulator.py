"""Simulator throughput, measured on one thread (OpenCV's own threading is switched off)."""

from __future__ import annotations

import time

import cv2
import numpy as np

from sim.camera import SimCamera, SimCameraSettings
from sim.dataset import parse_conditions, plate_samples


def bench_sim(frames: int = 500, crops: int = 2000) -> dict[str, float | int | str]:
    cv2.setNumThreads(1)
    cam = SimCamera(SimCameraSettings(seed=0, rate_per_hour=1200))
    for _ in range(50):  # warm-up: traffic builds up, textures are made
        cam.capture()
    plates_seen = 0
    t0 = time.perf_counter()
    for _ in range(frames):
        plates_seen += len(cam.capture().truth.plates)
    t_frames = time.perf_counter() - t0
    night = SimCamera(SimCameraSettings(seed=1, rate_per_hour=1200, conditions="night", gain=4.0, ir_level=1.0))
    for _ in range(50):
        night.capture()
    t0 = time.perf_counter()
    for _ in range(frames):
        night.capture()
    t_night = time.perf_counter() - t0
    conds = parse_conditions(None)
    t0 = time.perf_counter()
    n = sum(1 for _ in plate_samples(crops, 0, conds))
    t_crops = time.perf_counter() - t0
    return {
        "resolution": "1280x720",
        "sim_frames_per_s_day": frames / t_frames,
        "sim_frames_per_s_night": frames / t_night,
        "mean_plates_per_frame": plates_seen / frames,
        "ms_per_frame_day": 1000 * t_frames / frames,
        "plate_crops_per_s": n / t_crops,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
    }
