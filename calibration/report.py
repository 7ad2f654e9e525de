"""The commissioning report: `report.html` with pictures (sample frames with the capture region,
lanes and privacy masks drawn; best and worst plate patches; histograms) plus `report.json`."""

from __future__ import annotations

import html
import json
from pathlib import Path

import cv2
import numpy as np

from agent.pipeline.evidence import letterbox

COLOURS = {"pass": "#2e7d32", "warn": "#f9a825", "fail": "#c62828", "skip": "#757575"}


def _poly(img: np.ndarray, poly, colour, thickness: int = 2, dashed: bool = False) -> None:
    p = np.round(np.asarray(poly, np.float64)).astype(np.int32)
    if dashed:
        for a, b in zip(p, np.roll(p, -1, axis=0), strict=True):
            n = max(1, int(np.linalg.norm(b - a) // 12))
            for k in range(0, n, 2):
                s = a + (b - a) * k / n
                e = a + (b - a) * min(k + 1, n) / n
                cv2.line(img, tuple(int(v) for v in s), tuple(int(v) for v in e), colour, thickness, cv2.LINE_AA)
    else:
        cv2.polylines(img, [p], True, colour, thickness, cv2.LINE_AA)


def annotate(frame: np.ndarray, quads, cfg, suggested) -> np.ndarray:
    img = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame.copy()
    for m in cfg.evidence.privacy_masks:
        overlay = img.copy()
        cv2.fillPoly(overlay, [np.round(np.asarray(m)).astype(np.int32)], (60, 60, 60))
        img = cv2.addWeighted(overlay, 0.7, img, 0.3, 0)
        _poly(img, m, (200, 200, 200))
    if cfg.geometry.capture_region:
        _poly(img, cfg.geometry.capture_region, (0, 200, 255), 3)
    for i, lane in enumerate(cfg.geometry.lanes):
        _poly(img, lane, (255, 160, 0), 2)
        cv2.putText(img, f"lane {i}", tuple(int(v) + 8 for v in lane[0]), cv2.FONT_HERSHEY_SIMPLEX, 0.8,
                    (255, 160, 0), 2, cv2.LINE_AA)
    if suggested.get("capture_region"):
        _poly(img, suggested["capture_region"], (0, 255, 0), 2, dashed=True)
    for lane in suggested.get("lanes", []):
        _poly(img, lane, (255, 0, 255), 1, dashed=True)
    for q in quads:
        _poly(img, q, (0, 0, 255), 2)
    return img


def histogram(values, bins, title: str, unit: str, w: int = 560, h: int = 260) -> np.ndarray:
    img = np.full((h, w, 3), 255, np.uint8)
    counts, edges = np.histogram(values, bins=bins)
    top = max(1, counts.max())
    x0, y0, pw, ph = 50, 30, w - 70, h - 70
    bw = pw / len(counts)
    for i, c in enumerate(counts):
        bh = int(ph * c / top)
        cv2.rectangle(img, (int(x0 + i * bw + 1), y0 + ph - bh), (int(x0 + (i + 1) * bw - 1), y0 + ph), (180, 110, 40),
                      -1)
    cv2.line(img, (x0, y0 + ph), (x0 + pw, y0 + ph), (0, 0, 0), 1)
    for i in range(0, len(edges), max(1, len(edges) // 6)):
        x = int(x0 + i * bw)
        cv2.putText(img, f"{edges[i]:.3g}", (x - 10, y0 + ph + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
    cv2.putText(img, f"{title} ({unit}), n={len(values)}", (x0, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1,
                cv2.LINE_AA)
    cv2.putText(img, str(top), (5, y0 + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def write_report(out: Path, result: dict, ms, samples, crops, cfg) -> Path:
    img_dir = out / "img"
    img_dir.mkdir(parents=True, exist_ok=True)
    figs = []
    for i, (frame, quads) in enumerate(samples):
        name = f"sample_{i}.jpg"
        a = annotate(frame, quads, cfg, result["suggested"])
        a = cv2.resize(a, (960, int(960 * a.shape[0] / a.shape[1])), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(img_dir / name), a, [cv2.IMWRITE_JPEG_QUALITY, 85])
        figs.append(name)
    # one patch per plate (its best sighting), and only what the reader read something from: a region
    # read at 0.00 is not a plate, and the same plate six times says nothing about the others
    best_per_plate: dict[str, tuple] = {}
    for c in crops:
        vrm = c[3] if len(c) > 3 else ""
        if vrm and c[0] > 0.05 and (vrm not in best_per_plate or c[0] > best_per_plate[vrm][0]):
            best_per_plate[vrm] = c
    patches = sorted(best_per_plate.values(), key=lambda c: (c[0], c[1]))
    picks = {"worst": patches[:6], "best": patches[::-1][:6]}
    patch_html = {}
    for kind, items in picks.items():
        cells = []
        for k, (conf, sharp, crop, *vrm) in enumerate(items):
            name = f"{kind}_{k}.png"
            cv2.imwrite(str(img_dir / name), letterbox(crop, 240, 120))
            cells.append(f'<figure><img src="img/{name}" alt="{kind} plate"><figcaption>'
                         f'{html.escape(vrm[0] if vrm else "")} confidence {conf:.2f}, sharpness {sharp:.2f}'
                         f'</figcaption></figure>')
        patch_html[kind] = "".join(cells)
    if ms:
        cv2.imwrite(str(img_dir / "hist_char_height.png"),
                    histogram([m.char_height_px for m in ms if m.confidence > 0.05 and m.char_height_px >= 6]
                              or [m.char_height_px for m in ms], 20, "character height (plates read)", "px"))
        cv2.imwrite(str(img_dir / "hist_confidence.png"),
                    histogram([m.confidence for m in ms], np.linspace(0, 1, 21), "read confidence", "0-1"))
    rows = "".join(
        f'<tr><td>{html.escape(c["name"])}</td><td><span class="badge" style="background:{COLOURS[c["status"]]}">'
        f'{c["status"].upper()}</span></td><td>{html.escape(c["value"])}</td><td>{html.escape(c["advice"])}</td></tr>'
        for c in result["checks"])
    overall = result["overall"]
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Commissioning report {html.escape(result['site'])}/{html.escape(result['camera'])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:6px 8px;text-align:left;
vertical-align:top}}.badge{{color:#fff;padding:2px 8px;border-radius:4px;font-weight:600}}
figure{{display:inline-block;margin:4px}}figcaption{{font-size:12px;color:#555}}
.overall{{font-size:22px;color:#fff;padding:6px 14px;border-radius:6px;display:inline-block;
background:{COLOURS[overall]}}}</style></head><body>
<h1>Commissioning report: site {html.escape(result['site'])}, camera {html.escape(result['camera'])}</h1>
<p><span class="overall">{overall.upper()}</span> &nbsp; {result['vehicles']} vehicles, {result['plates_measured']}
plate sightings over {result['frames']} frames from {html.escape(str(result['source']))}.</p>
<p>{html.escape(result.get('generated', ''))}; {html.escape(result.get('software', ''))}; models
{html.escape(', '.join(result.get('models', {}).values()))}.</p>
<h2>Checks</h2><table><tr><th>check</th><th>result</th><th>measured</th><th>what to do</th></tr>{rows}</table>
<h2>Sample frames</h2><p>Red: plates found. Orange: configured capture region; blue: configured lanes; grey:
privacy masks. Dashed green: suggested capture region; dashed magenta: suggested lanes.</p>
{''.join(f'<img src="img/{n}" alt="sample frame" style="width:100%;max-width:960px">' for n in figs)}
<h2>Best plate patches</h2>{patch_html.get('best', '')}
<h2>Worst plate patches</h2>{patch_html.get('worst', '')}
<h2>Distributions</h2><img src="img/hist_char_height.png" alt="character height histogram">
<img src="img/hist_confidence.png" alt="confidence histogram">
<h2>Configuration used</h2><pre>{html.escape(json.dumps(result.get('config', {}), indent=2))}</pre>
</body></html>"""
    p = out / "report.html"
    p.write_text(page, encoding="utf-8")
    return p
