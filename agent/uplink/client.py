"""The device's MQTT uplink: publishes reads from the outbox (live first, backlog behind at a set
rate), hands each PUBACK to the outbox and each central receipt (`{prefix}/receipt`:
{"read_ids": [...]}) too, so a read is deleted only when the central has stored it; keeps a retained
status with `offline` as Last Will, publishes health periodically, and answers commands. One network
thread; reconnects with exponential back-off and jitter. MQTT v5 persistent session (clean start
off, session expiry) or 3.1.1 clean_session=False.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from agent.uplink.mqtt import BrokerSettings, connect_properties, make_client
from agent.uplink.outbox import Outbox

log = logging.getLogger(__name__)


IDLE_POLL_S = 1.0
ACK_STORE_S = 0.1  # PUBACKs are marked in the outbox together, at most this late (or ACK_STORE_MAX at once)
ACK_STORE_MAX = 200
MAX_RECEIPT_IDS = 10_000  # read ids in one receipt message


def topic_prefix(site: str, camera: str) -> str:
    return f"anpr/v1/{site}/{camera}"


@dataclass(slots=True)
class UplinkStats:
    published: int = 0
    acked: int = 0
    alerts_published: int = 0
    alerts_acked: int = 0
    audit_lines_shipped: int = 0
    reconnects: int = 0
    receipts: int = 0  # reads the central confirmed stored
    bad_receipts: int = 0
    connected: bool = False
    last_error: str | None = None
    ack_latency_ms: list[float] = field(default_factory=list)  # recent publish->PUBACK times


CommandFn = Callable[..., dict]  # (name, payload, retained=...) -> reply


class Uplink:
    def __init__(self, broker: BrokerSettings, site: str, camera: str, outbox: Outbox, *, inflight: int = 20,
                 backlog_rate: float = 200.0, health_interval_s: float = 30.0,
                 health: Callable[[], dict] | None = None, commands: CommandFn | None = None,
                 backoff: tuple[float, float] = (0.5, 30.0), audit=None) -> None:
        self.broker = broker
        self.prefix = topic_prefix(site, camera)
        self.outbox = outbox
        self.inflight_max = inflight
        self.backlog_rate = backlog_rate
        self.health_interval_s = health_interval_s
        self.health_fn = health
        self.commands = commands
        self.audit = audit  # agent.audit.AuditLog: its lines are shipped on .../audit
        self.backoff = backoff
        self.stats = UplinkStats()
        self._client = make_client(broker)
        self._client.will_set(f"{self.prefix}/status", json.dumps({"state": "offline"}), qos=1, retain=True)
        self._client.max_inflight_messages_set(max(inflight, 1))
        self._client.max_queued_messages_set(0)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._inflight: dict[int, tuple[str, str, float]] = {}  # mid -> (kind, id, published at)
        self._inflight_ids: set[str] = set()
        self._acked: list[str] = []  # reads the broker acknowledged, not yet marked in the outbox
        self._first_ack = 0.0  # when the oldest of them was acknowledged
        self.on_acked: Callable[[str], None] | None = None  # read_id, at its PUBACK (benchmarks time it)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live_floor = 0
        self._tokens = 0.0
        self._last_refill = time.monotonic()
        self._next_health = 0.0
        self._next_poll = 0.0
        self._next_expiry = 0.0
        self._audit_inflight = False
        self._connected = threading.Event()
        self._closing = False
        self.heartbeat = time.monotonic()  # each pass of the network thread (commands run in it too)

    def alive(self, stall_s: float) -> bool:
        """The network thread runs and has made a pass within `stall_s` (the unit's watchdog asks)."""
        return (self._thread is not None and self._thread.is_alive()
                and time.monotonic() - self.heartbeat < stall_s)

    # ---- public ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """A new read is in the outbox."""
        self._wake.set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def stop(self, drain_s: float = 0.0) -> None:
        """Wait up to drain_s for outstanding PUBACKs, publish a last health document and `offline`,
        disconnect. The last health says what the unit leaves behind (outbox depth, faults): periodic
        health is QoS 0 and a central subscribing late, or an outage just before, can miss every one."""
        deadline = time.monotonic() + drain_s
        while drain_s and time.monotonic() < deadline and self.stats.connected:
            with self._lock:
                if not self._inflight and self.outbox.stats().depth == 0:
                    break
            time.sleep(0.05)
        self._stop.set()
        self._closing = True
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)
        self._store_acks()
        try:
            if self.stats.connected:
                self._last_health()
                info = self._client.publish(f"{self.prefix}/status", json.dumps({"state": "offline"}), 1, True)
                t0 = time.monotonic()
                while not info.is_published() and time.monotonic() - t0 < 2:
                    self._client.loop(0.05)
                    self._store_acks()
                self._client.disconnect()
        except (OSError, ValueError, RuntimeError) as e:
            log.debug("uplink: disconnect: %s", e)

    def publish_json(self, sub: str, doc: dict, retain: bool = False, qos: int = 1) -> None:
        """Thread-safe publish of a small document under this camera's prefix (health, replies)."""
        try:
            self._client.publish(f"{self.prefix}/{sub}", json.dumps(doc, separators=(",", ":")), qos, retain)
        except (OSError, ValueError, RuntimeError) as e:
            log.warning("uplink: publish %s failed: %s", sub, e)

    # ---- network thread -------------------------------------------------------------------------
    def _run(self) -> None:
        delay = self.backoff[0]
        host, port = self.broker.host_port
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            if not self.stats.connected:
                self._store_acks()  # acknowledged before the connection went: marked now, not after the outage
                try:
                    self._client.connect(host, port, self.broker.keepalive_s, clean_start=False,
                                         properties=connect_properties(self.broker)) \
                        if self.broker.mqtt_version == "5" else self._client.connect(host, port,
                                                                                     self.broker.keepalive_s)
                    t0 = time.monotonic()
                    while not self.stats.connected and time.monotonic() - t0 < 10 and not self._stop.is_set():
                        if self._client.loop(0.1) != mqtt.MQTT_ERR_SUCCESS:
                            break
                    if not self.stats.connected:
                        raise ConnectionError(self.stats.last_error or "no CONNACK")
                    delay = self.backoff[0]
                except (OSError, ConnectionError, ValueError) as e:
                    self.stats.last_error = str(e)
                    wait = delay * random.uniform(0.5, 1.5)  # jitter: a fleet must not reconnect in step
                    log.warning("uplink: cannot connect to %s:%d (%s); retry in %.1f s", host, port, e, wait)
                    self._stop.wait(wait)
                    delay = min(delay * 2, self.backoff[1])
                    continue
            rc = self._client.loop(0.02)
            if self._acked and (len(self._acked) >= ACK_STORE_MAX
                                or time.monotonic() - self._first_ack >= ACK_STORE_S):
                self._store_acks()
            if rc != mqtt.MQTT_ERR_SUCCESS and self.stats.connected:
                self._lost(f"network loop: {mqtt.error_string(rc)}")
                continue
            woke = self._wake.is_set()
            self._wake.clear()
            # With nothing left to send, look at the outbox again only when a read is added (notify),
            # a PUBACK arrives, or once a second: no SQLite queries 20 times a second on an idle unit.
            if (woke or self._inflight or time.monotonic() >= self._next_poll) and self._pump():
                self._next_poll = time.monotonic() + IDLE_POLL_S
            self._health_tick()
            if time.monotonic() >= self._next_expiry:  # storage.max_age holds on a quiet unit too
                self._next_expiry = time.monotonic() + 60.0
                self.outbox.enforce()
            if not self._inflight:
                self._wake.wait(0.05)

    def _lost(self, why: str) -> None:
        self.stats.connected = False
        self._connected.clear()
        self.stats.last_error = why
        log.warning("uplink: connection lost: %s", why)

    def _pump(self) -> bool:
        """Publish what the window allows; True when the outbox had nothing more to send."""
        if not self.stats.connected:
            return False
        with self._lock:
            room = self.inflight_max - len(self._inflight)
            busy = set(self._inflight_ids)
        if room <= 0:
            return False
        # hotlist alerts first, ahead of live reads and any backlog
        for a in self.outbox.alerts_due(room, busy):
            if not self._send("alert", a.read_id, "alert", a.payload):
                return False
            self.stats.alerts_published += 1
            room -= 1
        if room <= 0:
            return False
        self._ship_audit()
        batch = self.outbox.newest(room, busy, newer_than_seq=self._live_floor)
        drained = False
        now = time.monotonic()
        self._tokens = min(self.backlog_rate, self._tokens + (now - self._last_refill) * self.backlog_rate)
        self._last_refill = now
        if len(batch) < room and self._tokens >= 1:
            n = min(room - len(batch), int(self._tokens))
            back = self.outbox.oldest(n, busy | {p.read_id for p in batch})
            self._tokens -= len(back)
            drained = not batch and not back
            batch += back
        for p in batch:
            if not self._send("read", p.read_id, "read", p.payload):
                break
            self.stats.published += 1
        return drained

    def _send(self, kind: str, ident: str, sub: str, payload: bytes) -> bool:
        try:
            info = self._client.publish(f"{self.prefix}/{sub}", payload, qos=1)
        except (OSError, ValueError, RuntimeError) as e:
            self._lost(f"publish: {e}")
            return False
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        with self._lock:
            self._inflight[info.mid] = (kind, ident, time.monotonic())
            self._inflight_ids.add(ident)
        return True

    def _ship_audit(self) -> None:
        """The audit log's new lines, one batch in flight at a time (JSON lines in one message)."""
        if self.audit is None or self._audit_inflight:
            return
        lines = self.audit.unshipped(200)
        if not lines:
            return
        body = ("\n".join(text for _, text in lines)).encode("utf-8")
        if self._send("audit", str(lines[-1][0]), "audit", body):
            self._audit_inflight = True

    def _last_health(self) -> None:
        """One more health document, QoS 1, on stopping (its PUBACK is awaited with `offline`'s)."""
        if self.health_fn is None:
            return
        try:
            self.publish_json("health", self.health_fn(), qos=1)
        except Exception as e:  # a health probe must never stop the unit stopping
            log.warning("uplink: last health failed: %s", e)

    def _health_tick(self) -> None:
        if self.health_fn is None or not self.stats.connected:
            return
        now = time.monotonic()
        if now >= self._next_health:
            self._next_health = now + self.health_interval_s
            try:
                self.publish_json("health", self.health_fn(), qos=0)
            except Exception as e:  # a health probe must never take the uplink down
                log.warning("uplink: health failed: %s", e)

    # ---- paho callbacks (network thread) -------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.stats.last_error = f"refused: {reason_code}"
            log.error("uplink: broker refused the connection: %s", reason_code)
            return
        self.stats.connected = True
        self._connected.set()
        self.stats.reconnects += 1
        session = bool(getattr(flags, "session_present", False))
        with self._lock:
            if not session:  # the broker forgot our in-flight messages: publish them again
                self._inflight.clear()
                self._inflight_ids = set(self._acked)  # acknowledged, not yet stored: not again
                self._audit_inflight = False
        self._live_floor = self.outbox.max_seq()  # what is stored now is backlog; newer reads are live
        self._next_poll = 0.0
        client.subscribe(f"{self.prefix}/cmd/#", qos=1)
        if self.outbox.receipts:
            client.subscribe(f"{self.prefix}/receipt", qos=1)
        client.publish(f"{self.prefix}/status", json.dumps({"state": "online"}), qos=1, retain=True)
        self._next_health = 0.0
        log.info("uplink: connected to %s (session present: %s)", self.broker.url, session)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._closing:
            self.stats.connected = False
            return
        if self.stats.connected:
            self._lost(f"disconnected: {reason_code}")

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            item = self._inflight.pop(mid, None)
            if item is not None and item[0] != "read":  # a read stays busy until its ack is stored
                self._inflight_ids.discard(item[1])
        if item is None:
            return
        kind, read_id, t0 = item
        if kind == "audit":
            self._audit_inflight = False
        if reason_code is not None and getattr(reason_code, "is_failure", False):
            log.error("uplink: broker rejected %s %s: %s", kind, read_id, reason_code)
            with self._lock:
                self._inflight_ids.discard(read_id)
            return  # stays in the outbox; retried on the next pass
        if kind == "alert":
            self.outbox.alert_sent(read_id)
            self.stats.alerts_acked += 1
            return
        if kind == "audit":
            self.audit.mark_shipped(int(read_id))
            self.stats.audit_lines_shipped = self.audit.stats.last_seq - self.audit.stats.unshipped
            return
        if not self._acked:
            self._first_ack = time.monotonic()
        self._acked.append(read_id)  # stored by _store_acks with those of the next ACK_STORE_S, in one commit
        if self.on_acked is not None:
            self.on_acked(read_id)
        self.stats.acked += 1
        lat = self.stats.ack_latency_ms
        lat.append((time.monotonic() - t0) * 1000)
        if len(lat) > 10_000:
            del lat[:5000]

    def _store_acks(self) -> None:
        """Mark the reads acknowledged since the last pass sent, in one outbox transaction; only then
        may the pump see them as not in flight (else it would publish them again)."""
        if not self._acked:
            return
        ids, self._acked = self._acked, []
        self.outbox.mark_sent(*ids)
        with self._lock:
            self._inflight_ids.difference_update(ids)

    def _on_receipt(self, payload: bytes) -> None:
        try:
            doc = json.loads(payload)
            ids = doc["read_ids"] if isinstance(doc, dict) else None
            if not isinstance(ids, list) or len(ids) > MAX_RECEIPT_IDS or not all(
                    isinstance(i, str) and len(i) <= 64 for i in ids):
                raise ValueError(f"read_ids must be a list of at most {MAX_RECEIPT_IDS} ids")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            self.stats.bad_receipts += 1
            if self.stats.bad_receipts <= 10 or self.stats.bad_receipts % 1000 == 0:
                log.warning("uplink: bad receipt ignored (%d so far): %s", self.stats.bad_receipts, str(e)[:120])
            return
        self.stats.receipts += self.outbox.confirm(ids)

    def _on_message(self, client, userdata, msg) -> None:
        topic = msg.topic
        if topic == f"{self.prefix}/receipt":
            self._on_receipt(msg.payload)
            return
        if topic.endswith("/reply") or not topic.startswith(f"{self.prefix}/cmd/"):
            return
        name = topic[len(self.prefix) + 5:]
        if self.commands is None:
            reply = {"ok": False, "error": "commands are not enabled on this unit"}
        else:
            try:
                reply = self.commands(name, msg.payload, retained=bool(msg.retain))
            except Exception as e:  # a command must never take the uplink down
                log.exception("command %s failed", name)
                reply = {"ok": False, "error": f"internal error: {type(e).__name__}"}
        try:
            client.publish(f"{topic}/reply", json.dumps(reply, separators=(",", ":")), qos=1)
        except (OSError, ValueError, RuntimeError) as e:
            log.warning("uplink: reply to %s failed: %s", name, e)
