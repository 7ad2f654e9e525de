"""Many simulated cameras on one broker (`anpr-edge sim fleet`), for load tests of the broker and the
central side.

Each camera is its own MQTT client (client id, topics, Ed25519 signing key, persistent session,
retained status with `offline` as Last Will, health every 30 s) publishing schema-valid signed reads
with real-size evidence images at Poisson rate R. The images come from a small pool rendered once by
the simulator, so the generator itself is cheap: one read costs a copy, a new id and time, and a
signature. A share of the cameras drops at random (an abrupt close: the broker publishes the Will),
keeps reading while offline and rejoins after a few seconds, publishing its backlog on the resumed
session. As a unit does, each camera keeps a read until the central's receipt and publishes it again
when none comes (the broker may hold it for a central instance that died). Clients run in worker
processes, each driving its sockets from one selector loop (paho's external-loop callbacks), not a
thread per camera.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import multiprocessing as mp
import random
import selectors
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization

from agent.read_doc import Read, uuid7
from agent.signing import new_key, sign
from agent.uplink.mqtt import BrokerSettings, connect_properties, make_client

HEALTH_S = 30.0
RECEIPT_S = 20.0  # a read with its PUBACK but no receipt this long is published again (doubling)
RECEIPT_MAX_S = 60.0


@dataclass(frozen=True, slots=True)
class FleetSettings:
    broker: str
    cameras: int = 100
    rate: float = 0.1  # reads per second per camera (Poisson)
    seconds: float = 60.0
    churn: float = 0.05  # share of cameras that drop and rejoin, each once, at a random time
    offline_s: tuple[float, float] = (2.0, 10.0)
    processes: int = 2
    seed: int = 1
    out: Path = Path("fleet-out")  # key register and the ids each worker sent
    drain_s: float = 90.0  # after `seconds`: how long to wait for outstanding PUBACKs and receipts


def camera_name(i: int) -> tuple[str, str]:
    return f"F{i // 100:03d}", f"cam{i % 100:02d}"


def templates(pool: int = 8, seed: int = 0) -> list[Read]:
    """Reads with real evidence images rendered by the simulator once; their identity is replaced per read."""
    from sim.synthetic import truth_reads

    src = truth_reads("POOL", "pool", new_key(), seed=seed)
    return [next(src) for _ in range(pool)]


class _Camera:
    def __init__(self, i: int, broker: BrokerSettings, key, rng: random.Random, settings: FleetSettings) -> None:
        self.site, self.camera = camera_name(i)
        self.prefix = f"anpr/v1/{self.site}/{self.camera}"
        self.key = key
        self.rng = rng
        self.client = make_client(BrokerSettings(broker.url, f"fleet-{self.site}-{self.camera}"))
        self.client.will_set(f"{self.prefix}/status", json.dumps({"state": "offline"}), qos=1, retain=True)
        self.client.max_inflight_messages_set(20)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda *a: setattr(self, "connected", False)
        self.broker = broker
        self.connected = False
        self.next_read = time.monotonic() + rng.expovariate(settings.rate)
        self.next_health = time.monotonic() + rng.uniform(0, HEALTH_S)
        self.drop_at = (time.monotonic() + rng.uniform(0.1, 0.8) * settings.seconds
                        if rng.random() < settings.churn else None)
        self.back_at: float | None = None
        self.pending: dict[int, str] = {}  # mid -> read_id
        self.sent: list[str] = []  # read ids acknowledged by the broker (once each)
        # as a unit's outbox does: each read kept until the central's receipt, published again when none
        # came RECEIPT_S after its PUBACK (doubling)
        self.unconfirmed: dict[str, list] = {}  # read_id -> [payload, due (monotonic) or None, attempts]
        self.resent = 0
        self.made = 0
        self.bytes = 0
        self.drops = 0

    def connect(self) -> None:
        host, port = self.broker.host_port
        self.client.connect(host, port, 30, clean_start=False, properties=connect_properties(self.broker))

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            return
        self.connected = True
        client.subscribe(f"{self.prefix}/receipt", qos=1)
        client.publish(f"{self.prefix}/status", json.dumps({"state": "online"}), qos=1, retain=True)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        rid = self.pending.pop(mid, None)
        if rid is None:
            return
        item = self.unconfirmed.get(rid)
        if item is not None:
            if item[2] == 0:
                self.sent.append(rid)
            item[1] = time.monotonic() + min(RECEIPT_MAX_S, RECEIPT_S * 2 ** item[2])
            item[2] += 1

    def _on_message(self, client, userdata, msg) -> None:
        try:
            ids = json.loads(msg.payload)["read_ids"]
        except (ValueError, KeyError, TypeError):
            return
        for rid in ids if isinstance(ids, list) else []:
            self.unconfirmed.pop(rid, None)

    def resend_due(self, now: float) -> None:
        for rid, item in self.unconfirmed.items():
            if item[1] is not None and item[1] <= now:
                item[1] = None
                info = self.client.publish(f"{self.prefix}/read", item[0], qos=1)
                self.pending[info.mid] = rid
                self.resent += 1

    def publish_read(self, tpl: Read) -> None:
        ms = int(time.time() * 1000)
        r = tpl.model_copy(update={"read_id": uuid7(ms), "site_id": self.site, "camera_id": self.camera,
                                   "captured_at": dt.datetime.fromtimestamp(ms / 1000, dt.UTC), "signature": None})
        r = sign(r, self.key)
        payload = r.to_json_bytes()
        info = self.client.publish(f"{self.prefix}/read", payload, qos=1)
        self.pending[info.mid] = r.read_id  # queued by paho while offline; sent on the resumed session
        self.unconfirmed[r.read_id] = [payload, None, 0]
        self.made += 1
        self.bytes += len(payload)

    def health(self) -> None:
        doc = {"time": round(time.time(), 3), "reads_committed": self.made, "fleet": True}
        self.client.publish(f"{self.prefix}/health", json.dumps(doc), qos=0)


def _worker(index: int, ids: list[int], settings: FleetSettings, keys: list[bytes], result: mp.Queue) -> None:
    try:
        result.put(_drive(index, ids, settings, keys))
    except BaseException as e:  # the parent must hear of it rather than wait
        import traceback

        result.put({"worker": index, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-3000:]})


def _drive(index: int, ids: list[int], settings: FleetSettings, keys: list[bytes]) -> dict:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pool = templates(seed=settings.seed)
    broker = BrokerSettings(settings.broker, "fleet")
    sel = selectors.DefaultSelector()
    cams: list[_Camera] = []
    for i, raw in zip(ids, keys, strict=True):
        c = _Camera(i, broker, Ed25519PrivateKey.from_private_bytes(raw), random.Random(settings.seed * 100_003 + i),
                    settings)
        cl = c.client
        cl.on_socket_open = lambda client, userdata, sock, c=c: _watch(sel, sock, selectors.EVENT_READ, c)
        cl.on_socket_close = lambda client, userdata, sock: _unregister(sel, sock)
        cl.on_socket_register_write = lambda client, userdata, sock, c=c: _watch(
            sel, sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
        cl.on_socket_unregister_write = lambda client, userdata, sock, c=c: _watch(sel, sock, selectors.EVENT_READ, c)
        cams.append(c)
    for c in cams:
        with contextlib.suppress(OSError):
            c.connect()
    t_end = time.monotonic() + settings.seconds
    drain_end = t_end + settings.drain_s
    next_misc = 0.0
    while True:
        now = time.monotonic()
        producing = now < t_end
        if not producing and (all(not c.unconfirmed for c in cams) or now > drain_end):
            break
        for key, ev in sel.select(0.02):
            c = key.data
            if ev & selectors.EVENT_READ:
                c.client.loop_read()
            if ev & selectors.EVENT_WRITE:
                c.client.loop_write()
        now = time.monotonic()
        for c in cams:
            if producing:
                while c.next_read <= now:
                    c.publish_read(pool[c.made % len(pool)])
                    c.next_read += c.rng.expovariate(settings.rate)
            if c.connected and now >= c.next_health:
                c.next_health = now + HEALTH_S
                c.health()
            if c.drop_at is not None and now >= c.drop_at:  # abrupt: no DISCONNECT, so the broker sends the Will
                c.drop_at = None
                c.drops += 1
                sock = c.client.socket()
                if sock is not None:
                    _unregister(sel, sock)
                    with contextlib.suppress(OSError):
                        sock.close()
                c.connected = False
                c.back_at = now + c.rng.uniform(*settings.offline_s)
            if c.back_at is not None and now >= c.back_at:
                c.back_at = None
                with contextlib.suppress(OSError, ValueError):
                    c.client.reconnect()
        if now >= next_misc:
            next_misc = now + 0.5
            for c in cams:
                if c.connected:
                    c.resend_due(now)
                rc = c.client.loop_misc()
                if rc == mqtt.MQTT_ERR_NO_CONN and c.back_at is None and c.drop_at is None:
                    # the connection broke (broker closed it, or our abrupt drop): reconnect
                    with contextlib.suppress(OSError, ValueError):
                        c.client.reconnect()
    for c in cams:
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            c.client.disconnect()
            c.client.loop_write()
    sent = [rid for c in cams for rid in c.sent]
    (settings.out / f"sent-{index}.txt").write_text("\n".join(sent) + ("\n" if sent else ""))
    return {"worker": index, "cameras": len(cams), "made": sum(c.made for c in cams), "acked": len(sent),
            "bytes": sum(c.bytes for c in cams), "dropped": [f"{c.site}.{c.camera}" for c in cams if c.drops],
            "unacked": sum(len(c.pending) for c in cams), "drops": sum(c.drops for c in cams),
            "unconfirmed": sum(len(c.unconfirmed) for c in cams), "resent": sum(c.resent for c in cams)}


def _watch(sel: selectors.BaseSelector, sock, events: int, cam: _Camera) -> None:
    """Register or change a socket's events; a socket this loop closed itself (a simulated drop) is left out."""
    try:
        if sock.fileno() < 0:
            return
        try:
            sel.modify(sock, events, cam)
        except KeyError:
            sel.register(sock, events, cam)
    except (ValueError, OSError):
        pass


def _unregister(sel: selectors.BaseSelector, sock) -> None:
    with contextlib.suppress(KeyError, ValueError):
        sel.unregister(sock)


def write_register(out: Path, cameras: int, seed: int) -> list[bytes]:
    """The cameras' keys (private halves for the workers, kept in memory) and the central's key register
    (`keys.txt`: `{site}.{camera} <raw public key hex>` a line)."""
    rng = random.Random(seed)
    raws, lines = [], []
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    for i in range(cameras):
        key = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
        raws.append(key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                      serialization.NoEncryption()))
        pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        site, cam = camera_name(i)
        lines.append(f"{site}.{cam} {pub.hex()}")
    (out / "keys.txt").write_text("\n".join(lines) + "\n")
    return raws


def run_fleet(settings: FleetSettings, raws: list[bytes] | None = None) -> dict:
    """Run the fleet to the end (seconds, then drain); the ids each worker had acknowledged are in
    out/sent-*.txt. Returns counts."""
    settings.out.mkdir(parents=True, exist_ok=True)
    for p in settings.out.glob("sent-*.txt"):
        p.unlink()
    if raws is None:
        raws = write_register(settings.out, settings.cameras, settings.seed)
    procs = max(1, min(settings.processes, settings.cameras))
    q: mp.Queue = mp.get_context("spawn").Queue()
    ctx = mp.get_context("spawn")
    workers = []
    for w in range(procs):
        ids = list(range(w, settings.cameras, procs))
        p = ctx.Process(target=_worker, args=(w, ids, settings, [raws[i] for i in ids], q), daemon=True)
        p.start()
        workers.append(p)
    results = [q.get(timeout=settings.seconds + settings.drain_s + 300) for _ in workers]
    for p in workers:
        p.join(timeout=30)
    failed = [r for r in results if "error" in r]
    if failed:
        raise RuntimeError(f"fleet worker {failed[0]['worker']} failed: {failed[0]['error']}\n{failed[0]['trace']}")
    return {"cameras": settings.cameras, "made": sum(r["made"] for r in results),
            "acked": sum(r["acked"] for r in results), "unacked": sum(r["unacked"] for r in results),
            "unconfirmed": sum(r["unconfirmed"] for r in results), "resent": sum(r["resent"] for r in results),
            "drops": sum(r["drops"] for r in results), "dropped": sorted(x for r in results for x in r["dropped"]),
            "bytes_per_read": round(sum(r["bytes"] for r in results) / max(1, sum(r["made"] for r in results)))}


def sent_ids(out: Path) -> set[str]:
    ids: set[str] = set()
    for p in out.glob("sent-*.txt"):
        ids.update(x for x in p.read_text().split() if x)
    return ids
