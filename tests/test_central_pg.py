"""The central side on a real PostgreSQL server (a throw-away cluster on a free port, as the broker
tests start Mosquitto): reads stored once, conflicts kept apart, a wrong camera key refused and
counted, and two instances sharing the subscription lose nothing when one is killed under load."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from agent.signing import new_key, sign
from agent.uplink.client import Uplink
from agent.uplink.outbox import Outbox
from sim.central import Central
from sim.local_postgres import Postgres
from sim.synthetic import ReadFactory
from tests.test_uplink import (  # noqa: F401 (fixtures)
    ROOT,
    Client,
    broker,
    expected_ids,
    feeder,
    finish,
    pki,
    settings,
    wait_for,
)


@pytest.fixture(scope="module")
def pg():
    folder = Path(tempfile.mkdtemp(prefix="anpr-pg-"))  # outside pytest's 0700 tree: the server's user must enter it
    p = Postgres(folder).start()
    yield p
    p.stop()
    shutil.rmtree(folder, ignore_errors=True)


def _count(url: str, sql: str) -> int:
    with psycopg.connect(url) as c:
        return int(c.execute(sql).fetchone()[0])


def test_central_on_postgresql_stores_once_keeps_conflicts_and_refuses_a_wrong_key(pki, broker, pg, tmp_path):  # noqa: F811
    from sim.central_pg import reset

    reset(pg.url)
    central = Central(settings(pki, broker, "central", "central-pg"), tmp_path / "c", keys=pki.keys, db=pg.url)
    central.start()
    outbox = Outbox(tmp_path / "o.sqlite", receipts=True, receipt_timeout_s=1.0)
    up = Uplink(settings(pki, broker, "S1.cam1"), "S1", "cam1", outbox, backoff=(0.1, 1.0))
    cam = Client(settings(pki, broker, "S1.cam1"))
    try:
        factory = ReadFactory("S1", "cam1", pki.key, pool=2)
        reads = [factory.read(i) for i in range(30)]
        for r in reads:
            outbox.put(r.read_id, r.to_json_bytes())
        up.start()
        assert wait_for(lambda: outbox.stats().depth == 0, 30), (outbox.stats(), central.counts)
        assert central.store.count() == 30 and _count(pg.url, "SELECT COUNT(*) FROM reads") == 30
        assert sorted(central.store.read_ids()) == sorted(r.read_id for r in reads)
        assert all((tmp_path / "c" / "images" / f"{r.read_id}_patch.jpg").is_file() for r in reads)
        again = reads[0]
        other = sign(again.model_copy(update={"vrm": "QQ99QQW", "signature": None}), pki.key)
        forged = sign(factory.read(99).model_copy(update={"signature": None}), new_key())
        for r in (again, other, forged):
            cam.c.publish("anpr/v1/S1/cam1/read", r.to_json_bytes(), qos=1)
        assert wait_for(lambda: central.counts["wrong_key"] == 1 and central.counts["conflicts"] == 1
                        and central.counts["duplicates"] >= 1, 10), central.counts
        assert _count(pg.url, "SELECT COUNT(*) FROM reads") == 30
        assert central.store.conflicts() == [again.read_id]
        doc = json.loads(json.dumps(central.store._rows("get_doc", (again.read_id,))[0][0]))
        assert doc["vrm"] == again.vrm  # the first copy stays; the other content is kept apart
    finally:
        cam.close()
        up.stop()
        central.stop()
        central.store.close()


def _central_proc(pki, broker, out: Path, db: str, name: str, log: Path) -> subprocess.Popen:  # noqa: F811
    args = [sys.executable, "-m", "agent.cli", "central", "--broker", broker.url, "--out", str(out), "--keys",
            str(pki.keys), "--ca", str(pki.ca), "--cert", str(pki.central[0]), "--key", str(pki.central[1]),
            "--instance", name, "--db", db]
    with log.open("wb") as f:
        return subprocess.Popen(args, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"})


def test_two_centrals_on_postgresql_one_killed_under_load_lose_nothing(pki, broker, pg, tmp_path):  # noqa: F811
    """Both instances share `$share/central/...`; one is SIGKILLed half way. The broker redelivers its
    unacknowledged messages to the other (and the receipts make the camera re-send what neither
    confirmed), so every read is in PostgreSQL once."""
    from sim.central_pg import reset

    reset(pg.url)
    out = tmp_path / "central"
    a = _central_proc(pki, broker, out, pg.url, "a", tmp_path / "a.log")
    b = _central_proc(pki, broker, out, pg.url, "b", tmp_path / "b.log")
    n = 400
    p = None
    try:
        assert wait_for(lambda: "received" in (tmp_path / "a.log").read_text()
                        and "received" in (tmp_path / "b.log").read_text(), 30)
        p = feeder(pki, broker, tmp_path / "state", n, "--rate", "40", "--receipts", "--receipt-timeout", "2",
                   "--receipt-max", "4", "--linger", "120")
        assert wait_for(lambda: _count(pg.url, "SELECT COUNT(*) FROM reads") >= 150, 60)
        b.send_signal(signal.SIGKILL)
        b.wait(10)
        err = finish(p, 240)
        assert p.returncode == 0, err.decode()[-2000:]
        summary = json.loads([x for x in err.decode().splitlines() if x.startswith("{")][-1])
        assert summary["outbox_depth"] == 0, summary
        with psycopg.connect(pg.url) as c:
            ids = [r[0] for r in c.execute("SELECT read_id FROM reads")]
            conflicts = c.execute("SELECT COUNT(*) FROM conflicts").fetchone()[0]
        assert len(ids) == n and set(ids) == expected_ids(n, 1) and conflicts == 0
    finally:
        if p is not None and p.poll() is None:
            p.kill()
        for proc in (a, b):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        time.sleep(0.1)
