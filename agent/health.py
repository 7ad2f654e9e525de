"""The health document published on `.../health`: throughput, drops, outbox, host, clock, models."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from agent.clock import Clock
from agent.uplink.outbox import Outbox


def cpu_temperature_c() -> float | None:
    for p in sorted(Path("/sys/class/thermal").glob("thermal_zone*/temp")):
        try:
            return round(int(p.read_text().strip()) / 1000.0, 1)
        except (OSError, ValueError):
            continue
    return None


def health_document(pipeline, outbox: Outbox, clock: Clock, state_dir: Path, uplink=None) -> dict:
    st = pipeline.stats
    ob = outbox.stats()
    now = time.monotonic()
    reads_min = sum(1 for t in st.recent_reads if now - t <= 60.0)
    try:
        du = shutil.disk_usage(state_dir)
        disk_free = du.free
    except OSError:
        disk_free = None
    cs = clock.state()
    faults = [f for f in (ob.fault,) if f]
    if st.reads_held:
        faults.append(f"{st.reads_held} reads held in memory: outbox cannot store them")
    if now - st.last_loop_mono > 5 and st.last_loop_mono:
        faults.append("pipeline stalled")
    return {
        "time": round(time.time(), 3),
        "fps": round(st.fps, 1),
        "frames_captured": st.frames_captured,
        "frames_processed": st.frames_processed,
        "frames_dropped": pipeline.queue.dropped,
        "reads_per_min": reads_min,
        "reads_committed": st.reads_committed,
        "outbox_depth": ob.depth,
        "outbox_bytes": ob.bytes,
        "outbox_oldest_age_s": None if ob.oldest_age_s is None else round(ob.oldest_age_s, 1),
        "outbox_evicted": ob.evicted,
        "outbox_expired": ob.expired,
        "reads_deleted_after_delivery": ob.deleted,
        "images_deleted_after_puback": ob.images_deleted,
        "alerts_raised": st.alerts_raised,
        "alerts_pending": ob.alerts_pending,
        "outbox_awaiting_receipt": ob.awaiting_receipt,
        "images_shed": ob.images_shed,
        "reads_held_in_memory": st.reads_held,
        "outbox_fault_count": outbox.fault_count,
        "cpu_temperature_c": cpu_temperature_c(),
        "load_1m": round(os.getloadavg()[0], 2),
        "disk_free_bytes": disk_free,
        "clock": {"source": cs.source, "synchronised": cs.synchronised, "offset_ms": cs.offset_ms},
        "models": dict(pipeline.recogniser.versions),
        "uplink": None if uplink is None else {"connected": uplink.stats.connected, "acked": uplink.stats.acked,
                                               "reconnects": uplink.stats.reconnects},
        "faults": faults,
    }
