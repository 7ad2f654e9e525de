"""Simulator demo: traffic passing the simulated camera as daylight fades to night.

Shows, live, the plates in view with their ground truth and writes a small gallery of frames to
`demo-out/index.html`. (The recogniser, uplink and central subscriber join the demo as they land.)
"""

from __future__ import annotations

import html
import time
from pathlib import Path

import cv2
import numpy as np

from sim.camera import SimCamera, SimCameraSettings
from sim.contact_sheet import draw_truth
from sim.dataset import auto_exposure
from sim.scene import PRESETS, Conditions

DAY_TO_NIGHT = ("day", "overcast", "dusk", "night")


def _condition_at(frac: float) -> Conditions:
    """Blend ambient light along day -> overcast -> dusk -> night."""
    stops = [PRESETS[n] for n in DAY_TO_NIGHT]
    x = min(max(frac, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(x), len(stops) - 2)
    a, b = stops[i], stops[i + 1]
    w = x - i
    amb = float(np.exp((1 - w) * np.log(a.ambient) + w * np.log(b.ambient)))
    name = a.name if w < 0.5 else b.name
    return Conditions(name, amb, headlights=amb < 0.2)


def run_demo(seconds: float = 60.0, out: Path = Path("demo-out"), seed: int = 1, live: bool = True,
             fps: float = 25.0) -> dict[str, object]:
    out.mkdir(parents=True, exist_ok=True)
    cam = SimCamera(SimCameraSettings(seed=seed, fps=fps, rate_per_hour=1500, realtime=live))
    total = int(seconds * fps)
    seen: dict[int, dict[str, object]] = {}
    gallery: list[tuple[str, str]] = []
    rng = np.random.default_rng(seed)
    t_start = time.perf_counter()
    live_ctx = None
    if live:
        from rich.live import Live

        live_ctx = Live(refresh_per_second=4)
        live_ctx.start()
    try:
        for i in range(total):
            cond = _condition_at(i / max(total - 1, 1))
            cam.set_conditions(cond)
            exp = auto_exposure(cond, 15.0, rng, error_stops=0.0)
            cam.set_controls(exposure_us=exp.exposure_us, gain=exp.gain, ir_level=exp.ir_level)
            f = cam.capture()
            for p in f.truth.plates:
                rec = seen.setdefault(p.vehicle_id, {"vrm": p.display, "format": p.format, "speed_kmh": p.speed_kmh,
                                                     "direction": p.direction, "lane": p.lane, "frames": 0,
                                                     "conditions": cond.name, "max_char_px": 0.0})
                rec["frames"] = int(rec["frames"]) + 1
                rec["max_char_px"] = max(float(rec["max_char_px"]), p.char_height_px)
                if p.in_frame and len(gallery) < 24 and p.vehicle_id not in {int(g[1].split("#")[1]) for g in gallery}:
                    name = f"frame_{f.seq:06d}.jpg"
                    cv2.imwrite(str(out / name), draw_truth(f.pixels, f.truth.plates), [cv2.IMWRITE_JPEG_QUALITY, 80])
                    gallery.append((name, f"{p.display} ({cond.name}) #{p.vehicle_id}"))
            if live_ctx is not None and i % 5 == 0:
                live_ctx.update(_table(seen, f.seq, cond.name, f.exposure_us, f.gain, f.ir_level))
    except KeyboardInterrupt:
        pass
    finally:
        if live_ctx is not None:
            live_ctx.stop()
    elapsed = time.perf_counter() - t_start
    _write_html(out, gallery, seen)
    return {"frames": cam._seq, "vehicles_seen": len(seen), "gallery": str(out / "index.html"),
            "wall_s": round(elapsed, 2)}


def _table(seen: dict[int, dict[str, object]], seq: int, cond: str, exp_us: int, gain: float, ir: float):
    from rich.table import Table

    t = Table(title=f"simulated camera: frame {seq}  light {cond}  shutter {exp_us} us  gain {gain:.1f}  IR {ir:.1f}")
    for col in ("vehicle", "VRM (truth)", "format", "direction", "km/h", "frames", "char px"):
        t.add_column(col)
    for vid, r in list(seen.items())[-15:]:
        t.add_row(str(vid), str(r["vrm"]), str(r["format"]), str(r["direction"]), f"{r['speed_kmh']:.0f}",
                  str(r["frames"]), f"{float(r['max_char_px']):.0f}")
    return t


def _write_html(out: Path, gallery: list[tuple[str, str]], seen: dict[int, dict[str, object]]) -> None:
    cards = "\n".join(
        f'<figure><img src="{html.escape(n)}" alt="{html.escape(c)}"><figcaption>{html.escape(c)}</figcaption></figure>'
        for n, c in gallery)
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>anpr-edge simulator demo</title>
<style>body{{font-family:sans-serif;background:#111;color:#eee;margin:1em}}
figure{{display:inline-block;margin:6px;width:420px}}img{{width:100%}}</style></head>
<body><h1>anpr-edge simulator demo</h1><p>{len(seen)} vehicles passed; frames with ground truth drawn.</p>
{cards}</body></html>"""
    (out / "index.html").write_text(page, encoding="utf-8")
