"""Whole-unit benchmark on the simulator: frames/s per core at 1280x720, capture-to-PUBACK latency
at 25 fps, CPU per frame, and resident memory after 1k and 10k frames (it must stay flat)."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from agent.config import from_mapping
from agent.recognise.runtime import models_dir_or_shipped
from sim.local_broker import Mosquitto


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _unit(folder: Path, broker_url: str, models: Path | None, realtime: bool, seed: int):
    from agent.service import Unit

    cfg = from_mapping({
        "site": {"id": "BENCH"}, "camera": {"id": "cam1", "backend": "sim", "exposure_us": 600,
                                             "sim": {"seed": seed, "rate_per_hour": 1500, "realtime": realtime}},
        "illuminator": {"backend": "sim"},
        "recogniser": {"models_dir": str(models_dir_or_shipped(models)), "threads": 1},
        "uplink": {"broker": broker_url, "health_interval_s": 5}, "storage": {"state_dir": str(folder / "state")},
    }, "bench", environ={})
    return Unit(cfg, None, lossless=not realtime)


def bench_pipeline(models: Path | None = None, latency_frames: int = 750, memory_frames: int = 10_000) -> dict:
    import cv2

    cv2.setNumThreads(1)
    result: dict[str, object] = {"resolution": "1280x720"}
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        broker = Mosquitto(folder / "broker").start()
        try:
            # 1. Throughput and memory: as fast as one recognition thread goes (capture waits, nothing dropped).
            unit = _unit(folder / "a", broker.url, models, realtime=False, seed=3)
            marks: dict[int, float] = {}
            cpu0, t0 = time.process_time(), time.perf_counter()
            done = threading.Event()

            def hook(f, reads):
                n = f.seq + 1
                if n in (1000, memory_frames):
                    marks[n] = rss_mb()
                if n >= memory_frames:
                    done.set()

            unit.pipeline.frame_hook = hook
            unit.camera.settings.max_frames = memory_frames
            unit.start()
            done.wait(3600)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            unit.stop(drain_s=5)
            n = unit.pipeline.stats.frames_processed
            result["throughput"] = {"frames": n, "frames_per_s": round(n / wall, 1),
                                    "cpu_ms_per_frame": round(1000 * cpu / n, 2),
                                    "frames_per_s_per_core": round(n / cpu, 1),
                                    "reads": unit.pipeline.stats.reads_committed,
                                    "rss_mb_at_1k": round(marks.get(1000, float("nan")), 1),
                                    f"rss_mb_at_{memory_frames // 1000}k": round(marks.get(memory_frames,
                                                                                       float("nan")), 1)}
            # 2. Latency at the real frame rate: from the capture of the last frame a plate was seen in
            #    (the read cannot be final before) to the broker's PUBACK.
            unit = _unit(folder / "b", broker.url, models, realtime=True, seed=5)
            last_seen: dict[str, float] = {}
            commit_from_last: list[float] = []

            def on_commit(read, track):
                last = max(o.payload[0].mono_time for o in track.observations if o.payload is not None) \
                    if any(o.payload is not None for o in track.observations) else track.best.payload[0].mono_time
                last_seen[read.read_id] = last
                commit_from_last.append((time.monotonic() - last) * 1000)

            unit._user_on_commit = on_commit
            acked: list[float] = []

            def on_acked(read_id: str) -> None:
                if read_id in last_seen:
                    acked.append((time.monotonic() - last_seen[read_id]) * 1000)

            unit.uplink.on_acked = on_acked
            unit.camera.settings.max_frames = latency_frames
            unit.start()
            t_end = time.monotonic() + latency_frames / 25.0 + 30
            while unit.pipeline.stats.frames_processed < latency_frames and time.monotonic() < t_end:
                time.sleep(0.2)
            unit.stop(drain_s=5)
            a = np.array(acked) if acked else np.array([np.nan])
            result["latency_25fps"] = {
                "frames": unit.pipeline.stats.frames_processed, "dropped": unit.pipeline.queue.dropped,
                "reads": len(acked), "track_close_gap_s": unit.pipeline.tracker.max_gap_s,
                "last_sighting_to_puback_ms_p50": round(float(np.percentile(a, 50)), 1),
                "last_sighting_to_puback_ms_p99": round(float(np.percentile(a, 99)), 1),
            }
        finally:
            broker.stop()
    return result
