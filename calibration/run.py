"""`anpr-edge calibrate`: watch traffic, measure, judge, and write the commissioning report."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from agent import __version__
from agent.config import DeviceConfig
from agent.pipeline.tracker import Observation, Tracker
from agent.recognise import Recogniser
from agent.recognise.rectify import crop_plate
from calibration.checks import Thresholds, run_checks, thresholds_json, vehicles
from calibration.measure import measure
from calibration.report import write_report

log = logging.getLogger(__name__)

NIGHT_SCENE_LEVEL = 20.0  # frame median below this (or the IR lamp driven hard): night conditions


def build_source(cfg: DeviceConfig, source: str, video: Path | None, frames: int):
    from agent.service import build_camera, sim_settings

    if source == "video":
        from hal.camera_opencv import OpenCvCamera

        if video is None:
            raise ValueError("--source video needs a PATH")
        if not video.exists():
            raise ValueError(f"{video}: not found")
        if video.is_file():
            probe = cv2.VideoCapture(str(video))
            ok = probe.isOpened() and probe.read()[0]
            probe.release()
            if not ok:
                raise ValueError(f"{video}: not a video OpenCV can read (give a video file or a folder of images)")
        return OpenCvCamera(str(video), cfg.camera.id, colour=cfg.camera.colour)
    if source == "sim":
        from sim.camera import SimCamera
        from sim.traffic import Lane

        s = sim_settings(cfg)
        s.realtime = False
        s.max_frames = frames
        # the simulated commissioning visit watches the one lane the camera is installed for
        s.lanes = [Lane(0, s.installation.capture_x_m, "towards")]
        s.rate_per_hour = max(s.rate_per_hour, 1800.0)
        cam = SimCamera(s)
        if cfg.camera.sim.conditions in ("night", "night_rain", "dusk"):
            cam.set_controls(ir_level=1.0)
        return cam
    return build_camera(cfg)


def calibrate(cfg: DeviceConfig, out: Path, frames: int = 750, source: str = "sim", video: Path | None = None,
              thresholds: Thresholds | None = None, models: Path | None = None) -> dict:
    th = thresholds or Thresholds(min_confidence=cfg.recogniser.min_confidence)
    cam = build_source(cfg, source, video, frames)
    rec = Recogniser(models or cfg.recogniser.models_dir, cfg.recogniser.threads)
    tracker = Tracker(cfg.geometry.lanes, max_gap_s=0.4)
    ms, tracks, samples, crops = [], [], [], []
    night_frames = 0
    fps = cam.capabilities.fps
    n = 0
    cam.start()
    for f in cam.frames():
        n += 1
        t = f.truth.t if f.truth is not None else f.seq / fps
        night = float(np.median(f.pixels[::8, ::8])) < NIGHT_SCENE_LEVEL or f.ir_level >= 0.5
        night_frames += night
        dets = rec.detect(f.pixels)
        obs = []
        for d in dets:
            read, _, _ = rec.read_detection(f.pixels, d)
            try:
                m = measure(f, d, read, night)
            except ValueError as e:  # a sliver of a region, too small to measure
                log.debug("frame %d: %s", f.seq, e)
                continue
            ms.append(m)
            with contextlib.suppress(ValueError):
                crops.append((m.confidence, m.sharpness, crop_plate(f.pixels, d.quad, 0.1, 0.3),
                              read.vrm if read else ""))
            # unread plates are tracked too: they count against the read rate and show framing problems
            obs.append(Observation(t, f.seq, read.vrm if read else "", read.confidence if read else 0.0,
                                   read.char_confidences if read else (), d.bbox, d.score, payload=m))
        for r in tracker.update(t, obs):
            tracks.append(_track(r))
        if len(samples) < 3 and dets and n % 25 == 0:
            samples.append((f.pixels.copy(), [d.quad for d in dets]))
        if n >= frames:
            break
    cam.stop()
    tracks += [_track(r) for r in tracker.flush()]
    checks = run_checks(ms, tracks, fps, th, night_share=night_frames / max(n, 1))
    region, lanes = suggest_geometry(ms, cam.capabilities.width, cam.capabilities.height)
    result = {
        "site": cfg.site.id, "camera": cfg.camera.id, "source": source if source != "video" else str(video),
        "frames": n, "plates_measured": len(ms),
        "vehicles": len(vehicles(tracks, th)),  # as the checks count them
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "software": f"anpr-edge {__version__}", "models": dict(rec.versions),
        "config": cfg.model_dump(mode="json"),
        "overall": "fail" if any(c.status == "fail" for c in checks) else
                   "warn" if any(c.status == "warn" for c in checks) else "pass",
        "checks": [asdict(c) for c in checks],
        "suggested": {"capture_region": region, "lanes": lanes},
        "thresholds": thresholds_json(th),
    }
    out.mkdir(parents=True, exist_ok=True)
    public = dict(result)
    public["checks"] = [{k: v for k, v in c.items() if k != "data"} | {"data": _small(c["data"])}
                        for c in result["checks"]]
    (out / "report.json").write_text(json.dumps(public, indent=2) + "\n")
    write_report(out, result, ms, samples, crops, cfg)
    return public


def _small(d: dict) -> dict:
    return {k: v for k, v in d.items() if not isinstance(v, list)}


def _track(r) -> dict:
    return {"vrm": r.vrm, "confidence": r.confidence, "frames": r.frames, "speed_px_s": r.speed_px_s,
            "always_at_edge": all(o.payload.at_edge for o in r.observations), "best": r.best.payload,
            "measures": [o.payload for o in r.observations]}


def suggest_geometry(ms, width: int, height: int) -> tuple[list[list[float]] | None, list[list[list[float]]]]:
    """Capture region: where plates were read, with a margin; lanes: plate tracks clustered across the road."""
    pts = np.array([m.centre for m in ms if not m.at_edge]) if ms else np.zeros((0, 2))
    if len(pts) < 5:
        return None, []
    hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2)
    c = hull.mean(axis=0)
    hull = (hull - c) * 1.15 + c
    hull[:, 0] = np.clip(hull[:, 0], 0, width - 1)
    hull[:, 1] = np.clip(hull[:, 1], 0, height - 1)
    region = [[round(float(x), 1), round(float(y), 1)] for x, y in hull]
    xs = np.sort(pts[:, 0])
    gaps = np.diff(xs)
    widths = np.median([m.width_px for m in ms])
    cuts = [float((xs[i] + xs[i + 1]) / 2) for i in np.where(gaps > 2.0 * widths)[0]]
    bounds = [0.0, *cuts, float(width - 1)]
    lanes = [[[bounds[i], 0.0], [bounds[i + 1], 0.0], [bounds[i + 1], float(height - 1)],
              [bounds[i], float(height - 1)]] for i in range(len(bounds) - 1)]
    return region, lanes
