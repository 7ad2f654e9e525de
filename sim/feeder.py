"""A device process without a camera: makes reads from simulator ground truth, commits each to the
outbox, and lets the uplink deliver them. Used by the failure tests (kill -9, broker outage, full disk)
and the uplink benchmark. Read k always gets the same read_id, so a restarted feeder carries on
where it stopped without inventing new reads.

    python -m sim.feeder --state DIR --count 1000 --broker mqtts://127.0.0.1:8883 --sign-key KEY ...
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from agent.signing import load_private
from agent.uplink.client import Uplink
from agent.uplink.mqtt import BrokerSettings
from agent.uplink.outbox import Outbox, OutboxError
from sim.synthetic import ReadFactory


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--state", type=Path, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--rate", type=float, default=200.0, help="reads per second produced")
    ap.add_argument("--broker", required=True)
    ap.add_argument("--site", default="S1")
    ap.add_argument("--camera", default="cam1")
    ap.add_argument("--sign-key", type=Path, required=True)
    ap.add_argument("--ca", type=Path)
    ap.add_argument("--cert", type=Path)
    ap.add_argument("--key", type=Path)
    ap.add_argument("--id-seed", type=int, default=1)
    ap.add_argument("--max-bytes", type=int, default=2_000_000_000)
    ap.add_argument("--max-pages", type=int, default=0, help="cap the outbox file (injects 'disk full')")
    ap.add_argument("--backlog-rate", type=float, default=200.0)
    ap.add_argument("--backoff-min", type=float, default=0.5)
    ap.add_argument("--backoff-max", type=float, default=30.0)
    ap.add_argument("--receipts", action="store_true", help="keep each read until the central's receipt")
    ap.add_argument("--receipt-timeout", type=float, default=60.0)
    ap.add_argument("--receipt-max", type=float, default=600.0)
    ap.add_argument("--linger", type=float, default=30.0, help="seconds to keep delivering after the last read")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s feeder %(levelname)s %(message)s")
    log = logging.getLogger("feeder")
    a.state.mkdir(parents=True, exist_ok=True)
    outbox = Outbox(a.state / "outbox.sqlite", max_bytes=a.max_bytes, receipts=a.receipts,
                    receipt_timeout_s=a.receipt_timeout,
                    receipt_max_s=a.receipt_max)
    if a.max_pages:
        outbox._db.execute(f"PRAGMA max_page_count={int(a.max_pages)}")
    broker = BrokerSettings(url=a.broker, client_id=f"anpr-edge-{a.site}-{a.camera}", ca_file=a.ca,
                            cert_file=a.cert, key_file=a.key)

    def health() -> dict:
        st = outbox.stats()
        return {"outbox_depth": st.depth, "outbox_bytes": st.bytes, "outbox_oldest_age_s": st.oldest_age_s,
                "outbox_evicted": st.evicted, "outbox_fault_count": outbox.fault_count,
                "faults": [st.fault] if st.fault else []}

    up = Uplink(broker, a.site, a.camera, outbox, health=health, health_interval_s=1.0,
                backlog_rate=a.backlog_rate, backoff=(a.backoff_min, a.backoff_max))
    up.start()
    stopping = False

    def _term(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _term)
    progress = a.state / "produced"
    k = int(progress.read_text()) if progress.exists() else 0
    factory = ReadFactory(a.site, a.camera, load_private(a.sign_key), pool=6, seed=a.id_seed)
    held: list = []  # reads waiting for space in the outbox (disk full): kept, never dropped
    t0 = time.monotonic()
    produced_now = 0
    while (k < a.count or held) and not stopping:
        if k < a.count and not held:
            held.append(factory.read(k, a.id_seed))
            k += 1
        r = held[0]
        try:
            outbox.put(r.read_id, r.to_json_bytes())
            held.pop(0)
            tmp = progress.with_suffix(".tmp")
            tmp.write_text(str(k))
            os.replace(tmp, progress)
            up.notify()
            produced_now += 1
        except OutboxError as e:
            log.warning("outbox full or failing (%s); holding %d read(s), retrying", e, len(held))
            time.sleep(0.2)
            continue
        due = t0 + produced_now / a.rate
        wait = due - time.monotonic()  # read the clock once: twice, a late second reading went negative
        if wait > 0:
            time.sleep(wait)
    end = time.monotonic() + a.linger
    while time.monotonic() < end and not stopping and outbox.stats().depth > 0:
        time.sleep(0.05)
    up.stop(drain_s=2.0)
    st = outbox.stats()
    print(json.dumps({"produced": k, "outbox_depth": st.depth, "acked": up.stats.acked}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
