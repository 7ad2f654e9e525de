"""`anpr-edge demo`: the whole unit on the simulator, in one command.

A local Mosquitto (or `--broker URL`), the simulated camera with traffic going from day to night,
the real pipeline (recogniser, tracker, evidence, signed reads, outbox, MQTT uplink) and the
reference central subscriber. Shows a live view of reads against ground truth, writes
`demo-out/index.html` (a gallery of reads with their plate patches and overviews) and a summary.
"""

from __future__ import annotations

import html
import json
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent.config import from_mapping
from agent.recognise.runtime import models_dir_or_shipped
from agent.signing import public_pem
from agent.uplink.mqtt import BrokerSettings
from sim.central import Central
from sim.evaluate import overlap
from sim.scene import PRESETS, Conditions

DAY_TO_NIGHT = ("day", "overcast", "dusk", "night")
MIN_FRAMES_IN_VIEW = 3  # a vehicle counts once its whole plate has been in view this many frames


def condition_at(frac: float) -> Conditions:
    """Ambient light blended along day -> overcast -> dusk -> night."""
    stops = [PRESETS[n] for n in DAY_TO_NIGHT]
    x = min(max(frac, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(x), len(stops) - 2)
    a, b = stops[i], stops[i + 1]
    w = x - i
    amb = float(np.exp((1 - w) * np.log(a.ambient) + w * np.log(b.ambient)))
    return Conditions(a.name if w < 0.5 else b.name, amb, headlights=amb < 0.2)


def traffic_ahead(settings, vehicles: int) -> dict[int, str]:
    """The VRMs of the first `vehicles` the simulated camera will show (vehicle id -> VRM): its traffic
    stepped at the camera's own frame times with the same seed, without rendering."""
    from sim.traffic import Traffic

    s = settings
    t = Traffic(s.lanes, s.rate_per_hour, seed=s.seed, foreign_rate=s.foreign_rate, speed_kmh=s.speed_kmh)
    out: dict[int, str] = {}
    seq = 0
    while len(out) < vehicles and seq < 10_000_000:
        for v in t.step(seq / s.fps):
            out.setdefault(v.id, v.plate.vrm)
        seq += 1
    return out


def demo_hotlist(folder: Path, ahead: dict[int, str], share: float, seed: int) -> tuple[Path, dict[int, str]]:
    """Keys and a signed list holding `share` of the coming vehicles (and as many VRMs that never pass,
    as a real list would): what the central side would push. Returns the list file and the listed vehicles."""
    import datetime as dt

    from agent.hotlist import KEY_FILES, build, entries_from_csv, keygen, read_key_file
    from agent.signing import load_private

    if folder.exists():
        shutil.rmtree(folder)
    keygen(folder)
    rng = np.random.default_rng([seed, 19])
    ids = sorted(ahead)
    listed = {int(v): ahead[int(v)] for v in ids if rng.random() < share}
    lists = ("stolen", "no_insurance", "wanted", "investigation")
    rows = ["vrm,list,reason,priority,action"]
    for i, vrm in enumerate(sorted(set(listed.values()))):
        rows.append(f"{vrm},{lists[i % len(lists)]},R{i % 7 + 1},{i % 4 + 1},stop and check")
    for i in range(len(listed)):  # never on the road: a list is mostly vehicles a camera never sees
        rows.append(f"ZZ{i % 100:02d}{chr(65 + i // 100 % 26)}QX,stolen,R1,2,")
    secret = read_key_file(folder / KEY_FILES["secret"])
    entries = entries_from_csv("\n".join(rows) + "\n", secret, dt.datetime.now(dt.UTC))
    full, _ = build(entries, secret, load_private(folder / KEY_FILES["signing"]), int(time.time()))
    (folder / "hotlist.json").write_bytes(full)
    return folder / "hotlist.json", listed


@dataclass
class Tally:
    in_view: dict[int, int] = field(default_factory=dict)  # vehicle id -> frames with the whole plate in view
    truth: dict[int, str] = field(default_factory=dict)  # vehicle id -> VRM
    cond: dict[int, str] = field(default_factory=dict)
    reads: list[dict] = field(default_factory=list)
    occluded: set[int] = field(default_factory=set)
    listed: dict[int, str] = field(default_factory=dict)  # vehicle id -> VRM on the demo's hotlist
    alerts: dict[str, dict] = field(default_factory=dict)  # read_id -> the alert's matches and time
    lock: threading.Lock = field(default_factory=threading.Lock)

    def vehicles(self) -> set[int]:
        return {v for v, n in self.in_view.items() if n >= MIN_FRAMES_IN_VIEW}


def run_demo(out: Path = Path("demo-out"), vehicles: int | None = 60, seed: int = 1, broker_url: str | None = None,
             live: bool = True, headless: bool = False, models: Path | None = None,
             rate_per_hour: float = 1500.0, max_seconds: float | None = None, hotlist_share: float = 0.0,
             threads: int = 1) -> dict:
    from sim.local_broker import Mosquitto

    out.mkdir(parents=True, exist_ok=True)
    for sub in ("central", "state/outbox.sqlite", "state/outbox.sqlite-wal", "state/outbox.sqlite-shm",
                "state/hotlist.jsonl", "state/audit"):
        p = out / sub
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    broker = None
    if broker_url is None:
        broker = Mosquitto(out / "broker").start()
        broker_url = broker.url
    cfg = from_mapping({
        "site": {"id": "DEMO", "name": "anpr-edge demo"},
        "camera": {"id": "cam1", "backend": "sim", "exposure_us": 800,
                   "sim": {"seed": seed, "rate_per_hour": rate_per_hour, "realtime": not headless}},
        "illuminator": {"backend": "sim"},
        "recogniser": {"models_dir": str(models_dir_or_shipped(models)), "threads": threads},
        "uplink": {"broker": broker_url, "health_interval_s": 5},
        "storage": {"state_dir": str(out / "state")},
    }, "demo", environ={})
    from agent.service import Unit, sim_settings
    from sim.camera import lane_polygons

    # the lanes an installer would draw for this view, so reads carry their lane
    cfg = cfg.model_copy(update={"geometry": cfg.geometry.model_copy(
        update={"lanes": lane_polygons(sim_settings(cfg))})})

    tally = Tally()
    if hotlist_share > 0:
        from agent.config import Hotlist
        from agent.hotlist import KEY_FILES

        ahead = traffic_ahead(sim_settings(cfg), 2 * (vehicles or 200) + 20)
        list_file, tally.listed = demo_hotlist(out / "hotlist", ahead, hotlist_share, seed)
        cfg = cfg.model_copy(update={"hotlist": Hotlist(
            enabled=True, trust_key_file=out / "hotlist" / KEY_FILES["trust"],
            match_key_file=out / "hotlist" / KEY_FILES["match"], file=list_file)})
    target = vehicles or 10**9
    t_start = time.monotonic()

    def progress() -> float:
        if vehicles:
            return len(tally.vehicles()) / target
        return min(1.0, (time.monotonic() - t_start) / (max_seconds or 300.0))

    def on_frame(f, reads) -> None:
        cond = condition_at(progress())
        unit.camera.set_conditions(cond)
        with tally.lock:
            for p in f.truth.plates:
                if p.occluded:  # a tow bar or bike rack over the characters: not readable, not counted
                    tally.occluded.add(p.vehicle_id)
                elif p.in_frame:
                    tally.in_view[p.vehicle_id] = tally.in_view.get(p.vehicle_id, 0) + 1
                    tally.truth[p.vehicle_id] = p.vrm
                    tally.cond.setdefault(p.vehicle_id, cond.name)

    def on_commit(read, track) -> None:
        frame, pr = track.best.payload
        vid, best = None, 0.0
        for p in frame.truth.plates:
            ov = overlap(p.bbox, pr.bbox)
            if ov > best:
                vid, best = p.vehicle_id, ov
        with tally.lock:
            tally.reads.append({"read_id": read.read_id, "vrm": read.vrm, "confidence": read.confidence,
                                "format": read.format, "vehicle": vid,
                                "captured": read.captured_at.strftime("%H:%M:%S"),
                                "hidden": vid in tally.occluded and vid not in tally.truth,
                                "truth": tally.truth.get(vid) if vid is not None else None,
                                "cond": frame.truth.conditions,
                                "frames": read.frames, "direction": read.direction})

    def on_alert(alert, read) -> None:
        with tally.lock:
            tally.alerts[read.read_id] = {"alert_id": alert.alert_id, "raised": time.time(),
                                          "matches": [m.model_dump() for m in alert.matches]}

    unit = Unit(cfg, None, lossless=headless, on_commit=on_commit, frame_hook=on_frame, on_alert=on_alert)
    keys = out / "keys"
    keys.mkdir(exist_ok=True)
    (keys / "DEMO.cam1.pub").write_bytes(public_pem(unit.key.public_key()))
    central = Central(BrokerSettings(broker_url, f"demo-central-{seed}"), out / "central", "demo", keys)
    central.start()
    unit.start()
    view = None
    if live and not headless:
        from rich.live import Live

        view = Live(refresh_per_second=4)
        view.start()
    try:
        while progress() < 1.0:
            if max_seconds and time.monotonic() - t_start > max_seconds:
                break
            time.sleep(0.25)
            if view is not None:
                view.update(_table(unit, central, tally, time.monotonic() - t_start))
    except KeyboardInterrupt:
        pass
    finally:
        unit.stop(drain_s=10.0)
        end = time.monotonic() + 15
        while (central.store.count() < len(tally.reads) or len(central.store.alerts()) < len(tally.alerts)) \
                and time.monotonic() < end:
            time.sleep(0.1)
        if view is not None:
            view.update(_table(unit, central, tally, time.monotonic() - t_start))
            view.stop()
        central.stop()
        if broker is not None:
            broker.stop()
    summary = _summary(tally, central, unit, time.monotonic() - t_start)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_gallery(out, tally, central, summary)
    return summary


def _summary(tally: Tally, central: Central, unit, wall_s: float) -> dict:
    vehicles = tally.vehicles()
    reads_by_vehicle: dict[int, list[dict]] = {}
    for r in tally.reads:
        if r["vehicle"] is not None:
            reads_by_vehicle.setdefault(r["vehicle"], []).append(r)
    exact = sum(1 for v in vehicles if any(r["vrm"] == tally.truth[v] for r in reads_by_vehicle.get(v, [])))
    lat = list(unit.pipeline.stats.commit_latency_ms)
    ack = list(unit.uplink.stats.ack_latency_ms)
    per_cond: dict[str, list[int]] = {}
    for v in vehicles:
        c = tally.cond.get(v, "?")
        ok = any(r["vrm"] == tally.truth[v] for r in reads_by_vehicle.get(v, []))
        per_cond.setdefault(c, [0, 0])[0] += ok
        per_cond[c][1] += 1
    return {
        "vehicles": len(vehicles), "reads": len(tally.reads),
        "hidden_vehicles_not_counted": len(tally.occluded - vehicles), "vehicles_read_exactly": exact,
        "accuracy": round(exact / max(len(vehicles), 1), 4),
        "accuracy_by_light": {k: f"{a}/{n}" for k, (a, n) in sorted(per_cond.items())},
        "vehicles_read_twice": sum(1 for v, rs in reads_by_vehicle.items() if len(rs) > 1),
        "reads_without_vehicle": sum(1 for r in tally.reads if r["vehicle"] is None),
        "central": {"stored": central.store.count(), **{k: int(v) for k, v in central.counts.items()}},
        "frames": unit.pipeline.stats.frames_processed, "frames_dropped": unit.pipeline.queue.dropped,
        "capture_to_commit_ms": _pct(lat), "publish_to_puback_ms": _pct(ack), "wall_s": round(wall_s, 1),
        "misses": [{"vehicle": v, "truth": tally.truth[v], "light": tally.cond.get(v, "?"),
                    "frames_in_view": tally.in_view[v],
                    "reads": [(r["vrm"], round(r["confidence"], 2), r["frames"]) for r in reads_by_vehicle.get(v, [])]}
                   for v in sorted(vehicles)
                   if not any(r["vrm"] == tally.truth[v] for r in reads_by_vehicle.get(v, []))][:25],
        "read_twice": [{"truth": tally.truth.get(v), "reads": [(r["vrm"], r["frames"]) for r in rs]}
                       for v, rs in reads_by_vehicle.items() if len(rs) > 1][:25],
        **({"alerts": _alert_summary(tally, central, reads_by_vehicle)} if tally.listed else {}),
    }


def _alert_summary(tally: Tally, central: Central, reads_by_vehicle: dict[int, list[dict]]) -> dict:
    """Listed vehicles that were read exactly must raise exactly one alert each; no other vehicle any."""
    seen = tally.vehicles()
    listed_seen = {v for v in seen if v in tally.listed}
    alerted: dict[int | None, int] = {}
    for r in tally.reads:
        if r["read_id"] in tally.alerts:
            alerted[r["vehicle"]] = alerted.get(r["vehicle"], 0) + 1
    read_ok = {v for v in listed_seen if any(r["vrm"] == tally.truth[v] for r in reads_by_vehicle.get(v, []))}
    stored = {a["read_id"]: a for a in central.store.alerts()}
    raised = {rid: a["raised"] for rid, a in tally.alerts.items()}
    latency = [(stored[rid]["received_at"] - raised[rid]) * 1000 for rid in raised if rid in stored]
    return {
        "listed_vehicles_seen": len(listed_seen), "listed_vehicles_read": len(read_ok),
        "raised": len(tally.alerts), "received_by_central": len(stored),
        "true": sum(1 for v in alerted if v in tally.listed),
        "missed": sorted(tally.listed[v] for v in read_ok if v not in alerted),
        "listed_not_read": len(listed_seen - read_ok),
        "false": sum(n for v, n in alerted.items() if v not in tally.listed),
        "more_than_one": sum(1 for v, n in alerted.items() if v in tally.listed and n > 1),
        "fuzzy": sum(1 for a in tally.alerts.values() if all(m["fuzzy"] for m in a["matches"])),
        "raise_to_central_ms": _pct(latency),
    }


def _pct(v: list[float]) -> dict:
    if not v:
        return {}
    a = np.array(v)
    return {"p50": round(float(np.percentile(a, 50)), 1), "p99": round(float(np.percentile(a, 99)), 1)}


def _verdict(r: dict) -> tuple[str, str]:
    """(truth shown, match shown) for one read: a plate partly hidden (tow bar, bike rack) has no
    readable truth, and a read of nothing the simulator drew is a false read."""
    if r["truth"]:
        return r["truth"], "yes" if r["vrm"] == r["truth"] else "no"
    if r.get("hidden"):
        return "(plate partly hidden)", "not scored"
    return "(no plate there)", "false read"


def _running(tally: Tally) -> tuple[int, int]:
    """(vehicles read exactly, vehicles seen) so far."""
    with tally.lock:
        seen = tally.vehicles()
        right = {r["vehicle"] for r in tally.reads if r["truth"] and r["vrm"] == r["truth"]}
    return len(right & seen), len(seen)


def _table(unit, central: Central, tally: Tally, elapsed_s: float = 0.0):
    from rich.table import Table

    st = unit.pipeline.stats
    cam = unit.camera
    e = cam.exposure
    lat = _pct(list(st.commit_latency_ms))
    right, seen = _running(tally)
    acc = f"{right}/{seen} ({right / seen:.0%})" if seen else "-"
    t = Table(title=f"anpr-edge demo  {int(elapsed_s) // 60:02d}:{int(elapsed_s) % 60:02d} elapsed  light "
                    f"{cam._cond.name}  shutter {e.exposure_us} us  gain {e.gain:.1f}  IR {e.ir_level:.2f}  "
                    f"{st.fps:.1f} frames/s  latency p50 {lat.get('p50', '-')} ms  outbox "
                    f"{unit.outbox.stats().depth}  central {central.store.count()}  read exactly {acc}")
    for c in ("captured", "VRM read", "truth", "match", "confidence", "format", "frames", "light", "hotlist"):
        t.add_column(c)
    with tally.lock:
        recent = tally.reads[-14:]
        alerts = dict(tally.alerts)
    colours = {"yes": "green", "no": "red", "false read": "red", "not scored": "yellow"}
    for r in recent:
        truth, match = _verdict(r)
        t.add_row(r.get("captured", ""), r["vrm"], truth, f"[{colours[match]}]{match}[/]",
                  f"{r['confidence']:.2f}", r["format"], str(r["frames"]), r["cond"],
                  _alert_text(alerts.get(r["read_id"]), rich=True))
    if tally.listed:
        t.caption = f"hotlist: {len(tally.alerts)} alerts raised, {len(central.store.alerts())} at the central"
    return t


def _alert_text(alert: dict | None, rich: bool = False) -> str:
    if not alert:
        return ""
    m = alert["matches"][0]
    text = f"ALERT {m['list']} {m['reason']} p{m['priority']}" + (" (fuzzy)" if m["fuzzy"] else "")
    return f"[bold red]{text}[/]" if rich else text


def _alert_line(summary: dict) -> str:
    a = summary.get("alerts")
    if not a:
        return ""
    lat = a["raise_to_central_ms"]
    return html.escape(f"; hotlist alerts: {a['true']} true, {len(a['missed'])} missed, {a['false']} false "
                       f"({a['listed_vehicles_read']} listed vehicles read), raise to central p50 "
                       f"{lat.get('p50', '-')} ms, p99 {lat.get('p99', '-')} ms")


def write_gallery(out: Path, tally: Tally, central: Central, summary: dict) -> Path:
    cards = []
    for r in reversed(tally.reads[-120:]):
        rid = r["read_id"]
        truth, match = _verdict(r)
        mark = {"yes": "&#10003;", "no": "&#10007;", "false read": "&#10007; false read",
                "not scored": "not scored: the plate was partly hidden (tow bar, bike rack), so no exact truth"}[match]
        alert = _alert_text(tally.alerts.get(rid))
        cards.append(
            f'<figure class="{"ok" if match in ("yes", "not scored") else "bad"}">'
            + (f'<div class="alert">{html.escape(alert)}</div>' if alert else "") + '<img class="ov" '
            f'src="central/images/{rid}_overview.jpg" alt="overview"><div class="row"><img class="patch" '
            f'src="central/images/{rid}_patch.jpg" alt="plate"><div><b>{html.escape(r["vrm"])}</b> '
            f'({html.escape(r["format"])}, {r["confidence"]:.2f})<br>truth {html.escape(truth)} {mark}<br>'
            f'{html.escape(r["cond"])}, {r["frames"]} frames, {html.escape(r["direction"])}<br>'
            f'captured {html.escape(r.get("captured", "?"))} UTC<br><small>read {html.escape(rid)}</small>'
            f'</div></div></figure>')
    by_light = ", ".join(f"{k} {v}" for k, v in summary["accuracy_by_light"].items())
    lat = summary["capture_to_commit_ms"]
    lat_text = ", ".join(f"{k} {v} ms" for k, v in lat.items()) if isinstance(lat, dict) else str(lat)
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>anpr-edge demo</title>
<style>body{{font-family:system-ui,sans-serif;background:#15171a;color:#e8e8e8;margin:16px}}
.sum{{background:#22262b;padding:10px 14px;border-radius:6px;display:inline-block}}
figure{{display:inline-block;vertical-align:top;margin:6px;width:330px;background:#22262b;padding:6px;
border-radius:6px}} figure.bad{{outline:2px solid #c44}} .ov{{width:100%}} .row{{display:flex;gap:8px;
margin-top:4px;font-size:13px}} .patch{{width:120px;height:60px;image-rendering:pixelated}}
.alert{{background:#b00;color:#fff;font-weight:bold;padding:3px 6px;margin-bottom:4px}}</style></head>
<body><h1>anpr-edge demo</h1><div class="sum">{summary['vehicles']} vehicles, {summary['reads']} reads,
accuracy {summary['accuracy']:.1%} against ground truth; by light: {html.escape(by_light)};
capture to commit: {html.escape(lat_text)};
central stored {summary['central']['stored']}{_alert_line(summary)}</div>
<p>Each card: the overview (&le; 25,000 bytes) and plate patch (120x60, &le; 3,000 bytes) as the central
subscriber stored them.</p>
{''.join(cards)}</body></html>"""
    p = out / "index.html"
    p.write_text(page, encoding="utf-8")
    return p
