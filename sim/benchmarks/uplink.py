"""Uplink throughput against a local Mosquitto: backlog drain rate with full-size images,
publish-to-PUBACK latency, and central ingest rate with one and with two subscribers."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from agent.signing import new_key, public_pem
from agent.uplink.client import Uplink
from agent.uplink.mqtt import BrokerSettings
from agent.uplink.outbox import Outbox
from sim.central import Central
from sim.local_broker import Mosquitto
from sim.synthetic import ReadFactory


def _run(folder: Path, n: int, subscribers: int, factory: ReadFactory, keys: Path) -> dict[str, float]:
    broker = Mosquitto(folder / "broker").start()
    try:
        centrals = []
        for i in range(subscribers):
            c = Central(BrokerSettings(broker.url, f"bench-central-{i}"), folder / f"central{i}", "bench", keys)
            c.start()
            centrals.append(c)
        outbox = Outbox(folder / "outbox.sqlite")
        payloads = [factory.read(k) for k in range(n)]
        for r in payloads:
            outbox.put(r.read_id, r.to_json_bytes())
        size = float(np.mean([len(r.to_json_bytes()) for r in payloads]))
        up = Uplink(BrokerSettings(broker.url, "anpr-edge-S1-cam1"), "S1", "cam1", outbox, inflight=100,
                    backlog_rate=1e9)
        t0 = time.perf_counter()
        up.start()
        while outbox.stats().depth > 0 and time.perf_counter() - t0 < 300:
            time.sleep(0.01)
        drained = time.perf_counter() - t0
        while sum(c.store.count() for c in centrals) < n and time.perf_counter() - t0 < 300:
            time.sleep(0.01)
        ingested = time.perf_counter() - t0
        lat = np.array(up.stats.ack_latency_ms)
        up.stop()
        stored = [c.store.count() for c in centrals]
        for c in centrals:
            c.stop()
        return {"reads": n, "mean_read_bytes": round(size), "drain_reads_per_s": round(n / drained, 1),
                "puback_p50_ms": round(float(np.percentile(lat, 50)), 2),
                "puback_p99_ms": round(float(np.percentile(lat, 99)), 2),
                "central_ingest_reads_per_s": round(sum(stored) / ingested, 1), "stored_per_subscriber": stored}
    finally:
        broker.stop()


def bench_uplink(n: int = 2000) -> dict[str, object]:
    key = new_key()
    factory = ReadFactory("S1", "cam1", key, pool=8)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        keys = folder / "keys"
        keys.mkdir()
        (keys / "S1.cam1.pub").write_bytes(public_pem(key.public_key()))
        return {"one_subscriber": _run(folder / "one", n, 1, factory, keys),
                "two_subscribers": _run(folder / "two", n, 2, factory, keys)}
