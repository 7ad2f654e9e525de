"""Uplink against a real Mosquitto with TLS, client certificates and an ACL made in the test."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from agent.provision import CENTRAL_ACL, acl_block
from agent.read_doc import json_schema, uuid7
from agent.signing import new_key, private_pem, public_pem
from agent.uplink.client import Uplink
from agent.uplink.mqtt import BrokerSettings, connect_properties, make_client
from agent.uplink.outbox import Outbox
from sim.central import Central
from sim.local_broker import Mosquitto
from tests.support.pki import Pki

ROOT = Path(__file__).resolve().parents[1]
ACL = "\n".join([acl_block("S1", "cam1"), acl_block("S1", "cam2"), CENTRAL_ACL]) + """\
topic read $share/g2/anpr/v1/+/+/read

user ops
topic readwrite anpr/v1/+/+/cmd/#
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    p = Pki(folder)
    p.server = p.issue("127.0.0.1", server=True)
    p.cam = p.issue("S1.cam1")
    p.cam2 = p.issue("S1.cam2")
    p.central = p.issue("central")
    p.ops = p.issue("ops")
    key = new_key()
    p.sign_key = folder / "S1.cam1.ed25519"
    p.sign_key.write_bytes(private_pem(key))
    p.keys = folder / "keys"
    p.keys.mkdir()
    (p.keys / "S1.cam1.pub").write_bytes(public_pem(key.public_key()))
    p.key = key
    return p


@pytest.fixture
def broker(pki, tmp_path):
    b = Mosquitto(tmp_path / "broker", ca=pki.ca, cert=pki.server[0], key=pki.server[1], require_certificate=True,
                  acl=ACL).start()
    yield b
    b.stop()


def settings(pki, broker, who: str, client_id: str | None = None) -> BrokerSettings:
    crt, key = getattr(pki, {"S1.cam1": "cam", "S1.cam2": "cam2"}.get(who, who))
    return BrokerSettings(url=broker.url, client_id=client_id or f"{who}-{random.randrange(10**6)}",
                          ca_file=pki.ca, cert_file=crt, key_file=key)


def start_central(pki, broker, out: Path, group: str = "central", client_id: str = "central-1") -> Central:
    c = Central(settings(pki, broker, "central", client_id), out, group=group, keys=pki.keys)
    c.start(reconnect_max_s=0.5)  # back before the cameras (their back-off starts at 2 s): Mosquitto does
    return c                       # not queue shared-subscription messages while no group member is connected


def wait_for(pred, timeout: float, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


class Client:
    """A raw paho client for probing the broker."""

    def __init__(self, s: BrokerSettings):
        self.c = make_client(s)
        self.msgs: list[mqtt.MQTTMessage] = []
        self.suback: list = []
        self.connected = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p: self.connected.set() if not rc.is_failure else None
        self.c.on_message = lambda c, u, m: self.msgs.append(m)
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.suback.extend(rcs)
        host, port = s.host_port
        self.c.connect(host, port, 30, properties=connect_properties(s))
        self.c.loop_start()
        assert self.connected.wait(5)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def expected_ids(count: int, id_seed: int) -> set[str]:
    return {uuid7(1_790_000_000_000 + id_seed * 10_000_000 + k * 40,
                  random.Random(id_seed * 1_000_003 + k).getrandbits(74)) for k in range(count)}


def feeder(pki, broker, state: Path, count: int, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "sim.feeder", "--state", str(state), "--count", str(count), "--broker", broker.url,
            "--sign-key", str(pki.sign_key), "--ca", str(pki.ca), "--cert", str(pki.cam[0]), "--key", str(pki.cam[1]),
            "--id-seed", "1", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # output to a file, not a pipe: a pipe nobody reads fills up and blocks the agent mid-run
    log = state.parent / f"feeder-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        p = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    p.log = log
    return p


def finish(p: subprocess.Popen, timeout: float) -> bytes:
    """Wait for the feeder to end; its output."""
    p.wait(timeout=timeout)
    return p.log.read_bytes()


# ---- read document -------------------------------------------------------------------------------

def test_schema_file_is_generated_from_the_model_and_up_to_date():
    on_disk = json.loads((ROOT / "schemas" / "read.v1.json").read_text())
    assert on_disk == json_schema(), "run: anpr-edge schema --out schemas/read.v1.json"
    alert = json.loads((ROOT / "schemas" / "alert.v1.json").read_text())
    assert alert == json_schema("alert"), "run: anpr-edge schema --kind alert --out schemas/alert.v1.json"


def test_read_ids_are_uuid7_time_ordered_and_unique():
    ids = [uuid7(1_800_000_000_000 + i) for i in range(2000)]
    assert ids == sorted(ids) and len(set(ids)) == 2000
    assert all(i[14] == "7" for i in ids)


def test_verify_cli_accepts_and_rejects_tampering(pki, tmp_path):
    from typer.testing import CliRunner

    from agent.cli import app
    from sim.synthetic import ReadFactory

    r = ReadFactory("S1", "cam1", pki.key, pool=1).read(0)
    f = tmp_path / "read.json"
    f.write_bytes(r.to_json_bytes())
    runner = CliRunner()
    ok = runner.invoke(app, ["verify", str(f), "--pubkey", str(pki.keys / "S1.cam1.pub")])
    assert ok.exit_code == 0, ok.output
    doc = json.loads(f.read_text())
    doc["captured_at"] = "2020-01-01T00:00:00.000Z"
    f.write_text(json.dumps(doc))
    bad = runner.invoke(app, ["verify", str(f), "--pubkey", str(pki.keys / "S1.cam1.pub")])
    assert bad.exit_code == 1 and "signature" in bad.output


def test_a_stored_read_exported_with_its_images_verifies_and_tampering_is_found(pki, broker, tmp_path):
    from typer.testing import CliRunner

    from agent.cli import app
    from sim.synthetic import ReadFactory

    central = start_central(pki, broker, tmp_path / "central")
    cam = Client(settings(pki, broker, "S1.cam1"))
    try:
        whole = ReadFactory("S1", "cam1", pki.key, pool=1).read(0)
        shed = ReadFactory("S1", "cam1", pki.key, pool=1).read(1)
        doc = json.loads(shed.to_json_bytes())
        doc["overview"]["jpeg_b64"] = ""  # the unit shed it (storage full)
        for payload in (whole.to_json_bytes(), json.dumps(doc).encode()):
            cam.c.publish("anpr/v1/S1/cam1/read", payload, qos=1).wait_for_publish(5)
        assert wait_for(lambda: central.store.count() == 2, 5), central.counts
    finally:
        cam.close()
        central.stop()
    run = CliRunner()
    pub = str(pki.keys / "S1.cam1.pub")
    store = tmp_path / "central"
    for r, note in ((whole, ""), (shed, "without overview")):
        f = tmp_path / f"{r.read_id}.json"
        res = run.invoke(app, ["export", str(store), r.read_id, "--out", str(f)])
        assert res.exit_code == 0, res.output
        ok = run.invoke(app, ["verify", str(f), "--pubkey", pub])
        assert ok.exit_code == 0 and note in ok.output, ok.output
    patch = store / "images" / f"{whole.read_id}_patch.jpg"
    patch.write_bytes(patch.read_bytes()[:-10] + b"0123456789")  # an altered image file
    f = tmp_path / "t.json"
    assert run.invoke(app, ["export", str(store), whole.read_id, "--out", str(f)]).exit_code == 0
    bad = run.invoke(app, ["verify", str(f), "--pubkey", pub])
    assert bad.exit_code == 1 and "hash" in bad.output, bad.output
    patch.unlink()
    gone = run.invoke(app, ["export", str(store), whole.read_id])
    assert gone.exit_code == 2 and "missing" in gone.output
    assert run.invoke(app, ["export", str(store), "no-such-read"]).exit_code == 2


# ---- security ------------------------------------------------------------------------------------

def test_acl_certificates_and_tamper_detection(pki, broker, tmp_path):
    central = start_central(pki, broker, tmp_path / "central")
    cam = Client(settings(pki, broker, "S1.cam1"))
    try:
        from sim.synthetic import ReadFactory

        fac = ReadFactory("S1", "cam1", pki.key, pool=1)
        good = fac.read(0)
        cam.c.publish("anpr/v1/S1/cam1/read", good.to_json_bytes(), qos=1).wait_for_publish(5)
        assert wait_for(lambda: central.counts["stored"] == 1, 5)
        # outside its own topics: its publish is dropped, and it receives nothing it subscribes to
        other = fac.read(1).model_copy(update={"camera_id": "cam2"})
        cam.c.publish("anpr/v1/S1/cam2/read", other.to_json_bytes(), qos=1).wait_for_publish(5)
        cam.c.subscribe("anpr/v1/S1/cam2/#", qos=1)
        cam.c.subscribe("anpr/v1/+/+/read", qos=1)
        assert wait_for(lambda: len(cam.suback) == 2, 5)
        cam2 = Client(settings(pki, broker, "S1.cam2"))
        cam2.c.publish("anpr/v1/S1/cam2/read", other.to_json_bytes(), qos=1).wait_for_publish(5)
        assert wait_for(lambda: central.counts["unknown_camera"] == 1, 5)  # cam2's own publish got through
        time.sleep(0.5)
        cam2.close()
        assert cam.msgs == [], [m.topic for m in cam.msgs]
        assert central.counts["received"] == 2  # cam1's publish on cam2's topic never arrived
        # a tampered read fails verification at the central subscriber
        doc = json.loads(fac.read(2).to_json_bytes())
        doc["vrm"] = "AB12CDF" if doc["vrm"] != "AB12CDF" else "AB12CDE"
        cam.c.publish("anpr/v1/S1/cam1/read", json.dumps(doc), qos=1).wait_for_publish(5)
        assert wait_for(lambda: central.counts["bad_signature"] == 1, 5)
        time.sleep(0.5)
        assert central.counts["stored"] == 1 and central.store.count() == 1
    finally:
        cam.close()
        central.stop()
    # no certificate, or one from another CA: refused at the TLS handshake
    other_ca = Pki(tmp_path / "rogue", "rogue-ca")
    rogue = other_ca.issue("S1.cam1")
    for crt, key in ((None, None), rogue):
        s = BrokerSettings(url=broker.url, client_id="intruder", ca_file=pki.ca, cert_file=crt, key_file=key)
        c = make_client(s)
        with pytest.raises((ssl.SSLError, OSError, ConnectionError)):
            c.connect("127.0.0.1", broker.port, 10, properties=connect_properties(s))
            for _ in range(40):
                if c.loop(0.05) != mqtt.MQTT_ERR_SUCCESS:
                    raise ConnectionError("closed by broker")
            raise AssertionError("connected without a valid client certificate")


def test_a_camera_certificate_cannot_take_reads_through_a_shared_subscription(pki, broker, tmp_path):
    """A compromised unit subscribing to the central's shared group gets its SUBSCRIBE granted
    (Mosquitto's ACL file does not check subscriptions) and the broker hands it its share of every
    camera's reads, which the read ACL then drops: it sees none of them, and the receipts make the
    cameras publish the dropped ones again, so the central still stores every read exactly once."""
    from sim.synthetic import ReadFactory

    central = start_central(pki, broker, tmp_path / "central")
    thief = Client(settings(pki, broker, "S1.cam2"))
    thief.c.subscribe("$share/central/anpr/v1/+/+/read", qos=1)
    thief.c.subscribe("$share/thief/anpr/v1/#", qos=1)
    assert wait_for(lambda: len(thief.suback) == 2, 5)
    outbox = Outbox(tmp_path / "o.sqlite", receipts=True, receipt_timeout_s=0.5, receipt_max_s=1.0)
    up = Uplink(settings(pki, broker, "S1.cam1"), "S1", "cam1", outbox, backoff=(0.1, 1.0))
    try:
        reads = [ReadFactory("S1", "cam1", pki.key, pool=1).read(i) for i in range(20)]
        ids = [r.read_id for r in reads]
        for r in reads:
            outbox.put(r.read_id, r.to_json_bytes())
        up.start()
        assert wait_for(lambda: outbox.stats().depth == 0, 30), (outbox.stats(), central.counts, up.stats.published)
        assert sorted(central.store.read_ids()) == sorted(ids) and central.counts["conflicts"] == 0
        assert thief.msgs == [], [m.topic for m in thief.msgs]
    finally:
        up.stop()
        thief.close()
        central.stop()


def test_receipts_keep_reads_until_the_central_has_them_and_a_conflict_is_kept_apart(pki, broker, tmp_path):
    """PUBACK alone deletes nothing: with no central listening the reads stay on the unit, published
    again after the receipt timeout; once a central is up they are stored and deleted. The same read
    id again with other content and a valid signature is stored as a conflict, not over the first."""
    from sim.synthetic import ReadFactory

    outbox = Outbox(tmp_path / "o.sqlite", receipts=True, receipt_timeout_s=1.0)
    up = Uplink(settings(pki, broker, "S1.cam1"), "S1", "cam1", outbox, backoff=(0.1, 1.0))
    reads = [ReadFactory("S1", "cam1", pki.key, pool=1).read(i) for i in range(10)]
    for r in reads:
        outbox.put(r.read_id, r.to_json_bytes())
    up.start()
    try:
        assert wait_for(lambda: up.stats.acked >= 10, 10)
        time.sleep(0.5)
        assert outbox.stats().depth == 10 and outbox.stats().awaiting_receipt == 10
        assert wait_for(lambda: up.stats.published >= 20, 10)  # due again after the timeout
        central = start_central(pki, broker, tmp_path / "central", group="")  # a plain subscription
        assert wait_for(lambda: outbox.stats().depth == 0, 20), outbox.stats()
        assert central.store.count() == 10 and up.stats.receipts == 10
        twin = reads[3].model_copy(update={"vrm": "ZZ99ZZZ"})
        from agent.signing import sign

        doc = sign(twin, pki.key)
        outbox.put(twin.read_id + "-again", doc.to_json_bytes())  # another outbox row, the same read_id inside
        assert wait_for(lambda: central.counts["conflicts"] == 1, 10), central.counts
        assert central.store.count() == 10 and central.store.conflicts() == [twin.read_id]
        assert wait_for(lambda: outbox.stats().depth == 1, 5)  # receipted under the read's id, not the row's
        central.stop()
    finally:
        up.stop()


# ---- delivery under failure ----------------------------------------------------------------------

def test_sigkill_twice_delivers_exactly_1000_distinct_reads(pki, broker, tmp_path):
    central = start_central(pki, broker, tmp_path / "central")
    watcher = Client(settings(pki, broker, "central"))
    watcher.c.subscribe("anpr/v1/S1/cam1/status", qos=1)
    state = tmp_path / "state"
    try:
        for stop_at in (250, 600, None):
            p = feeder(pki, broker, state, 1000, "--rate", "150", "--linger", "60")
            if stop_at is None:
                err = finish(p, 120)
                assert p.returncode == 0, err.decode()[-2000:]
                break
            assert wait_for(lambda n=stop_at: (state / "produced").exists()
                            and int((state / "produced").read_text() or 0) >= n, 60), p.log.read_bytes()[-2000:]
            p.send_signal(signal.SIGKILL)
            p.wait(10)
            # the broker publishes the Last Will: the camera is offline (retained)
            assert wait_for(lambda: bool(watcher.msgs) and json.loads(watcher.msgs[-1].payload)["state"] == "offline",
                            10), [m.payload for m in watcher.msgs]
        assert wait_for(lambda: central.store.count() >= 1000, 30)
        time.sleep(1.0)
        ids = set(central.store.read_ids())
        assert len(ids) == 1000 and ids == expected_ids(1000, 1)
        assert central.counts["invalid"] == 0 and central.counts["bad_signature"] == 0
        for f in list((tmp_path / "central" / "images").iterdir())[:50]:
            assert f.stat().st_size <= (3000 if f.name.endswith("_patch.jpg") else 25000)
    finally:
        watcher.close()
        central.stop()


@pytest.mark.slow
def test_centrals_killed_and_restarted_under_load_lose_nothing(pki, broker, tmp_path):
    """Two centrals share the group: one is stopped for good, the other is stopped for OUTAGE_S and
    restarted under its own client id while a camera keeps publishing. The broker goes on queueing
    the group's share for the stopped sessions; the receipts make the camera publish again what no
    live central confirmed, so every read ends up stored, once, and the camera's outbox empties."""
    outage = float(os.environ.get("ANPR_TEST_OUTAGE_S", "60"))  # the issue's 60 s; shorter for quick local runs
    out = tmp_path / "central"  # one store for both: de-duplication across instances
    a = start_central(pki, broker, out, client_id="c-a")
    b = start_central(pki, broker, out, client_id="c-b")
    state = tmp_path / "state"
    n = 400
    p = feeder(pki, broker, state, n, "--rate", "25", "--receipts", "--receipt-timeout", "2", "--receipt-max", "4",
               "--linger", "120")
    try:
        assert wait_for(lambda: a.store.count() >= 100, 30)
        b.stop()  # gone for good; its session keeps its place in the group
        assert wait_for(lambda: a.store.count() >= 200, 30)
        a.stop()
        time.sleep(outage)
        a = start_central(pki, broker, out, client_id="c-a")
        err = finish(p, 240)
        assert p.returncode == 0, err.decode()[-2000:]
        summary = json.loads([x for x in err.decode().splitlines() if x.startswith("{")][-1])
        assert summary["outbox_depth"] == 0, summary
        ids = set(a.store.read_ids())
        assert len(a.store.read_ids()) == n and ids == expected_ids(n, 1)
        assert a.store.conflicts() == []
    finally:
        if p.poll() is None:
            p.kill()
        a.stop()


@pytest.mark.slow
def test_broker_down_60s_nothing_lost_and_live_reads_overtake_backlog(pki, broker, tmp_path):
    # one central on a plain persistent subscription: Mosquitto queues for it while it reconnects, so
    # the test does not depend on which of camera and central gets back to the restarted broker first
    central = start_central(pki, broker, tmp_path / "central", group="")
    state = tmp_path / "state"
    n = 1700
    p = feeder(pki, broker, state, n, "--rate", "20", "--backlog-rate", "40", "--backoff-min", "2",
               "--backoff-max", "3", "--linger", "90")
    try:
        assert wait_for(lambda: central.store.count() >= 100, 30)
        broker.stop()
        time.sleep(60)
        k_down = int((state / "produced").read_text())
        broker.start()
        t_up = time.time()
        err = finish(p, 200)
        assert p.returncode == 0, err.decode()[-2000:]
        assert wait_for(lambda: central.store.count() >= n, 60)
        ids = expected_ids(n, 1)
        assert set(central.store.read_ids()) == ids
        # order of arrival after the outage: live reads are not queued behind the whole backlog
        index = {uuid7(1_790_000_000_000 + 10_000_000 + k * 40, random.Random(1_000_003 + k).getrandbits(74)): k
                 for k in range(n)}
        after = [index[r] for t, r in central.arrivals if t >= t_up and r in index]
        backlog = [i for i, k in enumerate(after) if k < k_down - 50]
        live = [i for i, k in enumerate(after) if k > k_down + 50]
        assert backlog and live
        assert min(live) < max(backlog), "live reads waited for the whole backlog"
    finally:
        if p.poll() is None:
            p.kill()
        central.stop()


def test_full_outbox_reports_fault_keeps_running_and_resumes(pki, broker, tmp_path):
    central = start_central(pki, broker, tmp_path / "central", group="")  # see the outage test
    watcher = Client(settings(pki, broker, "central"))
    watcher.c.subscribe("anpr/v1/S1/cam1/health", qos=0)
    state = tmp_path / "state"
    try:
        p = feeder(pki, broker, state, 60, "--rate", "30", "--max-pages", "40", "--backoff-min", "2",
                   "--backoff-max", "3", "--linger", "60")
        assert wait_for(lambda: central.store.count() >= 3, 30)
        broker.stop()  # nothing drains: the small outbox fills up
        time.sleep(6)
        assert p.poll() is None, "the agent must keep running when its outbox is full"
        watcher.close()
        broker.start()
        watcher = Client(settings(pki, broker, "central"))
        watcher.c.subscribe("anpr/v1/S1/cam1/health", qos=0)
        assert wait_for(lambda: watcher.suback, 10)  # subscribed before the feeder drains and stops
        err = finish(p, 120)
        assert p.returncode == 0, err.decode()[-2000:]
        assert wait_for(lambda: central.store.count() >= 60, 30), (central.counts, central.store.count(),
                                                                    err.decode()[-3000:],
                                                                    broker.log()[-3000:])
        assert set(central.store.read_ids()) == expected_ids(60, 1)
        docs = [json.loads(m.payload) for m in watcher.msgs]
        assert any(d["outbox_fault_count"] > 0 for d in docs), docs[:3]
        assert b"full" in err or b"disk" in err
    finally:
        watcher.close()
        central.stop()


def test_stopping_sends_a_last_health_document_before_offline(pki, broker, tmp_path):
    """Periodic health is QoS 0 and may be missed (an outage, a late subscriber): on stopping the unit
    sends one more, QoS 1, with what it leaves behind, and only then its `offline` status."""
    from sim.synthetic import ReadFactory

    watcher = Client(settings(pki, broker, "central"))
    watcher.c.subscribe([("anpr/v1/S1/cam1/health", 1), ("anpr/v1/S1/cam1/status", 1)])
    assert wait_for(lambda: len(watcher.suback) == 2, 5)
    outbox = Outbox(tmp_path / "o.sqlite")
    probes = []

    def health() -> dict:
        probes.append(outbox.stats().depth)
        return {"probe": len(probes), "outbox_depth": probes[-1]}

    up = Uplink(settings(pki, broker, "S1.cam1", "anpr-edge-S1-cam1"), "S1", "cam1", outbox, health=health,
                health_interval_s=3600)
    try:
        up.start()
        assert wait_for(lambda: any(m.topic.endswith("/health") for m in watcher.msgs), 10)  # on connecting
        fac = ReadFactory("S1", "cam1", pki.key, pool=1)
        for k in range(3):
            r = fac.read(k)
            outbox.put(r.read_id, r.to_json_bytes())
        up.notify()
        assert wait_for(lambda: outbox.stats().depth == 0, 10)
    finally:
        up.stop(drain_s=2.0)
    assert wait_for(lambda: any(m.topic.endswith("/status") and json.loads(m.payload)["state"] == "offline"
                                for m in watcher.msgs), 5)
    watcher.close()
    topics = [(m.topic.rsplit("/", 1)[1], json.loads(m.payload)) for m in watcher.msgs]
    health_docs = [d for t, d in topics if t == "health"]
    assert [d["probe"] for d in health_docs] == [1, 2], topics  # one on connecting, one on stopping
    assert health_docs[-1]["outbox_depth"] == 0
    last = max(i for i, (t, _) in enumerate(topics) if t == "health")
    assert topics[last + 1:] and all(t == "status" for t, _ in topics[last + 1:]), topics
    assert [m.qos for m in watcher.msgs if m.topic.endswith("/health")][-1] == 1


@pytest.fixture
def small_fs(tmp_path):
    """A real 3 MB filesystem (tmpfs) for the outbox: needs root, as CI has."""
    d = tmp_path / "small"
    d.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(d)],
                                           capture_output=True).returncode != 0:
        pytest.fail("the disk-full test mounts a real 3 MB tmpfs, which needs root: run ./scripts/test.sh as root "
                    "(as CI does)")
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)


def test_disk_full_sheds_images_keeps_every_read_bounded_logs_no_storm(pki, broker, tmp_path, small_fs):
    """On a 3 MB filesystem with no central for a while, 150 reads of ~35 kB cannot all be kept whole:
    the oldest reads' images are shed so every document is committed, storage errors are logged a few
    times, not once per read, nothing is re-sent in a storm; when the central comes the space comes
    back and every read is stored, the shed ones with their hashes and without their images."""
    state = small_fs / "state"
    n = 150
    p = feeder(pki, broker, state, n, "--rate", "50", "--receipts", "--receipt-timeout", "3", "--receipt-max", "6",
               "--linger", "90")
    central = None
    try:
        assert wait_for(lambda: (state / "produced").exists() and int((state / "produced").read_text() or 0) >= n,
                        60), p.log.read_bytes()[-2000:]
        time.sleep(3)
        assert p.poll() is None, p.log.read_bytes()[-2000:]
        central = start_central(pki, broker, tmp_path / "central", group="")
        err = finish(p, 150)
        assert p.returncode == 0, err.decode()[-2000:]
        summary = json.loads([x for x in err.decode().splitlines() if x.startswith("{")][-1])
        assert summary["outbox_depth"] == 0 and summary["produced"] == n, summary
        assert wait_for(lambda: central.store.count() == n, 10)
        assert set(central.store.read_ids()) == expected_ids(n, 1)
        images = tmp_path / "central" / "images"
        shed = [r for r in central.store.read_ids() if not (images / f"{r}_patch.jpg").exists()]
        assert shed, "3 MB cannot hold 150 whole reads: some images must have been shed"
        log_lines = [x for x in err.decode().splitlines() if "outbox:" in x]
        assert len(log_lines) < 40, log_lines[:10]
        assert summary["acked"] < 6 * n, summary  # re-sends bounded by the receipt back-off, no storm
    finally:
        if p.poll() is None:
            p.kill()
        if central is not None:
            central.stop()


# ---- commands ------------------------------------------------------------------------------------

def test_commands_over_mqtt_and_fuzzed_topics(pki, broker, tmp_path):
    from agent.uplink.commands import Commands
    from agent.uplink.outbox import Outbox

    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text('[site]\nid = "S1"\n[camera]\nid = "cam1"\n[recogniser]\nmin_confidence = 0.8\n')
    from agent.config import load

    cfg = load(cfg_path, environ={})
    cmds = Commands(cfg, cfg_path)
    up = Uplink(settings(pki, broker, "S1.cam1", "anpr-edge-S1-cam1"), "S1", "cam1",
                Outbox(tmp_path / "o.sqlite"), commands=cmds)
    up.start()
    assert up.wait_connected(10)
    ops = Client(settings(pki, broker, "ops"))
    ops.c.subscribe("anpr/v1/S1/cam1/cmd/#", qos=1)
    time.sleep(0.3)

    def ask(name: str, payload: bytes | str) -> dict:
        before = len(ops.msgs)
        ops.c.publish(f"anpr/v1/S1/cam1/cmd/{name}", payload, qos=1)
        assert wait_for(lambda: any(m.topic.endswith(f"cmd/{name}/reply") for m in ops.msgs[before:]), 5), name
        return json.loads(next(m for m in ops.msgs[before:] if m.topic.endswith(f"cmd/{name}/reply")).payload)

    try:
        pong = ask("ping", '{"request_id": "r1"}')
        assert pong["ok"] and pong["request_id"] == "r1"
        assert ask("config/get", "")["result"]["recogniser.min_confidence"] == 0.8
        r = ask("config/set", json.dumps({"values": {"recogniser.min_confidence": 0.9}}))
        assert r["ok"] and r["result"]["recogniser.min_confidence"] == 0.9
        assert load(cfg_path, environ={}).recogniser.min_confidence == 0.9  # persisted
        r = ask("config/set", json.dumps({"values": {"uplink.broker": "mqtt://evil:1"}}))
        assert not r["ok"] and "not changeable remotely" in r["error"]
        r = ask("config/set", json.dumps({"values": {"recogniser.min_confidence": 7}}))
        assert not r["ok"] and "min_confidence" in r["error"]
        assert not ask("nonsense", "{}")["ok"]
        assert not ask("ping", "not json")["ok"]
        rnd = random.Random(5)
        for _ in range(40):  # fuzzed command names and payloads: the agent answers and stays up
            name = "/".join("".join(rnd.choice("abcxyz/+#$\u00e9 ") for _ in range(rnd.randint(1, 8))).split("/"))
            name = name.replace("+", "p").replace("#", "h").strip("/") or "x"
            with contextlib.suppress(ValueError):
                ops.c.publish(f"anpr/v1/S1/cam1/cmd/{name}", os.urandom(rnd.randint(0, 300)), qos=1)
        time.sleep(1.0)
        assert ask("ping", "")["ok"] and up.stats.connected
    finally:
        ops.close()
        up.stop()


def test_two_centrals_in_a_group_split_the_load(pki, broker, tmp_path):
    from sim.synthetic import ReadFactory

    a = start_central(pki, broker, tmp_path / "a", group="g2", client_id="c-a")
    b = start_central(pki, broker, tmp_path / "b", group="g2", client_id="c-b")
    cam = Client(settings(pki, broker, "S1.cam1"))
    fac = ReadFactory("S1", "cam1", pki.key, pool=2)
    try:
        for k in range(200):
            cam.c.publish("anpr/v1/S1/cam1/read", fac.read(k).to_json_bytes(), qos=1)
        assert wait_for(lambda: a.counts["stored"] + b.counts["stored"] == 200, 20)
        assert a.counts["stored"] > 20 and b.counts["stored"] > 20
    finally:
        cam.close()
        a.stop()
        b.stop()


def test_mqtt_311_uplink_delivers(pki, tmp_path):
    from agent.uplink.outbox import Outbox
    from sim.synthetic import ReadFactory

    plain = Mosquitto(tmp_path / "plain").start()
    try:
        central = Central(BrokerSettings(plain.url, "c311", mqtt_version="3.1.1"), tmp_path / "c", group="",
                          keys=pki.keys)
        central.start()
        outbox = Outbox(tmp_path / "o.sqlite")
        fac = ReadFactory("S1", "cam1", pki.key, pool=1)
        for k in range(20):
            r = fac.read(k)
            outbox.put(r.read_id, r.to_json_bytes())
        up = Uplink(BrokerSettings(plain.url, "anpr-edge-311", mqtt_version="3.1.1"), "S1", "cam1", outbox)
        up.start()
        assert wait_for(lambda: central.store.count() == 20 and outbox.stats().depth == 0, 20)
        up.stop()
        central.stop()
    finally:
        plain.stop()
