"""`anpr-edge bench fleet`: a local Mosquitto, K central instances sharing one subscription group, and
a fleet of simulated cameras; one JSON line of what was sent, stored, lost and duplicated, the rate
sustained, publish-to-stored latency, and the broker's and centrals' CPU and memory."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from sim.fleet import FleetSettings, run_fleet, sent_ids, write_register
from sim.local_broker import Mosquitto

TICK = os.sysconf("SC_CLK_TCK")
CENTRAL_SESSION_S = 20  # a killed central's share stops within this; the cameras re-send what it held


def proc_usage(pid: int) -> tuple[float, int]:
    """(CPU seconds used, peak resident bytes) of a live process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICK
        hwm = next((int(x.split()[1]) * 1024 for x in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if x.startswith("VmHWM:")), 0)
        return cpu, hwm
    except (OSError, ValueError, IndexError):
        return 0.0, 0


def _central(broker: str, out: Path, keys: Path, name: str, db: str | None, log: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "agent.cli", "central", "--broker", broker, "--out", str(out), "--group", "fleet",
            "--keys", str(keys), "--instance", name, "--session-expiry", str(CENTRAL_SESSION_S)]
    if db:
        args += ["--db", db]
    with log.open("wb") as f:
        return subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def stored_reads(out: Path, db: str | None) -> list[tuple[str, str, float, str]]:
    """(read_id, captured_at, received_at, site.camera) of every stored read."""
    from sim.central import open_store

    store = open_store(out, db)
    try:
        return store.stored_rows()
    finally:
        store.close()


def bench_fleet(cameras: int = 1000, rate: float = 0.1, seconds: float = 120.0, centrals: int = 1,
                kill_one: bool = False, churn: float = 0.05, processes: int = 2, db: str | None = None,
                out: Path = Path("bench-fleet-out")) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    local_pg = None
    if db == "local":  # a throw-away PostgreSQL server for this run
        import tempfile

        from sim.local_postgres import Postgres

        local_pg = Postgres(Path(tempfile.mkdtemp(prefix="anpr-bench-pg-"))).start()
        db = local_pg.url
    try:
        return _bench(cameras, rate, seconds, centrals, kill_one, churn, processes, db, out)
    finally:
        if local_pg is not None:
            local_pg.stop()
            import shutil

            shutil.rmtree(local_pg.folder, ignore_errors=True)


def _bench(cameras: int, rate: float, seconds: float, centrals: int, kill_one: bool, churn: float, processes: int,
           db: str | None, out: Path) -> dict:
    store = out / "central"
    for p in (store / "reads.sqlite", store / "reads.sqlite-wal", store / "reads.sqlite-shm"):
        p.unlink(missing_ok=True)
    if db:
        from sim.central_pg import reset

        reset(db)
    broker = Mosquitto(out / "broker").start()
    broker_pid = broker.proc.pid
    fleet = FleetSettings(broker=broker.url, cameras=cameras, rate=rate, seconds=seconds, churn=churn,
                          processes=processes, out=out / "fleet")
    fleet.out.mkdir(parents=True, exist_ok=True)
    raws = write_register(fleet.out, cameras, fleet.seed)
    procs = [_central(broker.url, store, fleet.out / "keys.txt", f"c{k}", db, out / f"central-{k}.log")
             for k in range(centrals)]
    killed: list[int] = []
    try:
        time.sleep(3.0)  # subscribed before the first read
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"central exited: {(out / 'central-0.log').read_text()[-2000:]}")
        if kill_one and centrals > 1:
            def kill() -> None:
                time.sleep(seconds / 2)
                procs[-1].send_signal(signal.SIGKILL)
                killed.append(procs[-1].pid)
            threading.Thread(target=kill, daemon=True).start()
        cpu0 = {p.pid: proc_usage(p.pid)[0] for p in [broker.proc, *procs]}
        t0 = time.monotonic()
        counts = run_fleet(fleet, raws)
        sent = sent_ids(fleet.out)
        deadline = time.monotonic() + 120
        rows = stored_reads(store, db)
        while time.monotonic() < deadline:  # the centrals catch up with what the broker holds
            have = {r[0] for r in rows}
            if sent <= have:
                break
            time.sleep(2.0)
            rows = stored_reads(store, db)
        wall = time.monotonic() - t0
        usage = {p.pid: proc_usage(p.pid) for p in [broker.proc, *procs] if p.poll() is None}
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.stop()
    ids = [r[0] for r in rows]
    have = set(ids)
    dropped = set(counts["dropped"])
    lat, steady = [], []
    for _, captured, received, cam in rows:
        ms = (received - dt.datetime.fromisoformat(captured.replace("Z", "+00:00")).timestamp()) * 1000
        lat.append(ms)
        if cam not in dropped:
            steady.append(ms)
    recv = sorted(r[2] for r in rows)
    span = (recv[-1] - recv[0]) if len(recv) > 1 else 0.0
    cent = [p.pid for p in procs if p.pid in usage]
    return {
        "cameras": cameras, "rate_per_camera": rate, "seconds": seconds, "centrals": centrals,
        "central_killed": bool(killed), "db": "postgresql" if db else "sqlite",
        "reads_sent": counts["made"], "reads_acked_by_broker": counts["acked"], "unacked_at_end": counts["unacked"],
        "without_receipt_at_end": counts["unconfirmed"], "published_again": counts["resent"],
        "camera_drops": counts["drops"], "bytes_per_read": counts["bytes_per_read"], "reads_stored": len(have),
        "lost": len(sent - have),
        "duplicates_stored": len(ids) - len(have),
        "reads_per_s_sustained": round(len(have) / span, 1) if span else None,
        "publish_to_stored_ms": _pct(lat),
        "publish_to_stored_ms_cameras_never_dropped": _pct(steady),
        "broker": {"cpu_percent": round(100 * (usage.get(broker_pid, (0, 0))[0] - cpu0[broker_pid]) / wall, 1),
                   "rss_peak_mb": round(usage.get(broker_pid, (0, 0))[1] / 2**20, 1)},
        "centrals_live": [{"cpu_percent": round(100 * (usage[pid][0] - cpu0[pid]) / wall, 1),
                           "rss_peak_mb": round(usage[pid][1] / 2**20, 1)} for pid in cent],
        "wall_s": round(wall, 1),
    }


def _pct(v: list[float]) -> dict:
    """Made-to-stored latency: for a camera that dropped, its offline backlog's wait counts too."""
    if not v:
        return {}
    return {"p50": round(float(np.percentile(v, 50)), 1), "p99": round(float(np.percentile(v, 99)), 1)}
