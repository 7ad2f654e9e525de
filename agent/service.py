"""`anpr-edge run`: build the unit from its configuration and run it as a systemd service.

READY is sent after the camera and the outbox are up; WATCHDOG is pinged from the pipeline loop (so
a stalled pipeline gets restarted by systemd); STATUS shows fps and outbox depth. SIGTERM drains:
queued frames are recognised and open tracks committed before exit.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

from agent.audit import AuditLog
from agent.clock import Clock
from agent.config import DeviceConfig
from agent.health import health_document
from agent.pipeline.exposure import ExposureLimits
from agent.pipeline.loop import Identity, Pipeline
from agent.recognise import Recogniser
from agent.signing import key_id, load_private, new_key, private_pem
from agent.uplink.client import Uplink
from agent.uplink.commands import Commands
from agent.uplink.mqtt import BrokerSettings
from agent.uplink.outbox import Outbox, private_dir
from hal.errors import HalError

UPLINK_STALL_S = 90.0  # longer than the longest reconnect back-off wait (30 s) with its jitter

log = logging.getLogger("anpr_edge")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"t": round(record.created, 3), "level": record.levelname, "logger": record.name,
                           "msg": record.getMessage()})


def setup_logging(cfg: DeviceConfig) -> None:
    h = logging.StreamHandler()
    h.setFormatter(JsonFormatter() if cfg.logging.format == "json"
                   else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [h]
    root.setLevel(cfg.logging.level)


def signing_key(state_dir: Path):
    """The device's Ed25519 key (made by `anpr-edge provision`; made here, 0600, if absent)."""
    p = state_dir / "keys" / "signing.pem"
    if p.exists():
        return load_private(p)
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = new_key()
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem(key))
    log.warning("created a new signing key %s (key id %s): register its public key centrally", p,
                key_id(key.public_key()))
    return key


def sim_settings(cfg: DeviceConfig):
    """The simulated camera the configuration describes (sim.camera.SimCameraSettings)."""
    from sim.camera import SimCameraSettings
    from sim.optics import Installation

    c, s = cfg.camera, cfg.camera.sim
    inst = Installation(mount_height_m=s.mount_height_m, capture_distance_m=s.capture_distance_m,
                        focal_length_mm=s.focal_length_mm, pixel_pitch_um=s.pixel_pitch_um, width=c.width,
                        height=c.height, pan_deg=s.pan_deg, tilt_deg=s.tilt_deg)
    return SimCameraSettings(installation=inst, fps=c.fps, colour=c.colour, seed=s.seed, conditions=s.conditions,
                             rate_per_hour=s.rate_per_hour, foreign_rate=s.foreign_rate, exposure_us=c.exposure_us,
                             gain=c.gain, camera_id=c.id, realtime=s.realtime, defocus_px=s.defocus_px,
                             ir_power=s.ir_power)


def build_camera(cfg: DeviceConfig):
    c = cfg.camera
    if c.backend == "sim":
        from sim.camera import SimCamera

        return SimCamera(sim_settings(cfg))
    if c.backend == "picamera2":
        from hal.camera_picamera2 import Picamera2Camera

        return Picamera2Camera(c.id, c.width, c.height, c.fps, c.colour)
    from hal.camera_opencv import OpenCvCamera

    return OpenCvCamera(c.source, c.id, c.width, c.height, c.fps, c.colour)


def build_illuminator(cfg: DeviceConfig, camera):
    b = cfg.illuminator.backend
    if b == "none":
        return None
    if b == "sim":
        from hal.illuminator_sim import SimIlluminator

        if not hasattr(camera, "set_ir_level"):
            raise HalError("illuminator backend 'sim' needs camera backend 'sim'")
        return SimIlluminator(camera)
    if b == "gpio":
        from hal.illuminator_gpio import GpioIlluminator

        return GpioIlluminator(cfg.illuminator.gpio_pin)
    from hal.illuminator_serial import SerialIlluminator

    return SerialIlluminator(cfg.illuminator.serial_port, cfg.illuminator.baudrate)


def build_hotlist(cfg: DeviceConfig, audit: AuditLog):
    """The unit's hotlist (None when disabled); a configured list file newer than the stored list is
    applied. A bad key file stops the unit with a clear error (HotlistError); a bad list file is logged
    and the stored list stays in force."""
    h = cfg.hotlist
    if not h.enabled:
        return None
    from agent.hotlist import Hotlist, HotlistError, read_key_file
    from agent.signing import load_public

    try:
        trust = load_public(h.trust_key_file)
    except (OSError, ValueError) as e:
        raise HotlistError(f"hotlist.trust_key_file {h.trust_key_file}: {getattr(e, 'strerror', None) or e}") from None
    try:
        match_key = read_key_file(h.match_key_file)
    except HotlistError as e:
        raise HotlistError(f"hotlist.match_key_file: {e}") from None
    hl = Hotlist(cfg.storage.state_dir / "hotlist.jsonl", trust, match_key, fuzzy=h.fuzzy,
                 on_event=lambda event, **detail: audit.record(event, **detail))
    if h.file is not None:
        try:
            hl.load_file(h.file)
        except HotlistError as e:
            log.error("hotlist: %s refused: %s; version %d stays in force", h.file, e, hl.stats.version)
    return hl


class Unit:
    """Everything the device runs, wired together; `start()` / `stop()`."""

    def __init__(self, cfg: DeviceConfig, config_path: Path | None = None, *, lossless: bool = False,
                 on_commit=None, notifier=None, frame_hook=None, on_alert=None) -> None:
        self.cfg = cfg
        self.notifier = notifier
        state = cfg.storage.state_dir
        private_dir(state)
        self.key = signing_key(state)
        self.camera = build_camera(cfg)
        self.illuminator = build_illuminator(cfg, self.camera)
        self.gnss = None
        if cfg.gnss.backend == "serial":
            from hal.gnss import SerialGnss

            self.gnss = SerialGnss(cfg.gnss.serial_port, cfg.gnss.baudrate)
        self.clock = Clock(self.gnss.fix if self.gnss else None)
        self.recogniser = Recogniser(cfg.recogniser.models_dir, cfg.recogniser.threads,
                                     views=cfg.recogniser.views, tile=cfg.recogniser.tile,
                                     magnify=cfg.recogniser.magnify)
        self.audit = AuditLog(state / "audit", cfg.audit.max_bytes, cfg.audit.keep)
        self.hotlist = build_hotlist(cfg, self.audit)
        self.outbox = Outbox(state / "outbox.sqlite", cfg.storage.outbox_max_bytes,
                             cfg.storage.max_age_s, receipts=cfg.uplink.receipts,
                             receipt_timeout_s=cfg.uplink.receipt_timeout_s, images_until=cfg.storage.images_until,
                             on_delete=self._deleted)
        caps = self.camera.capabilities
        limits = ExposureLimits(max_us=min(caps.exposure_us_range[1], int(0.8e6 / caps.fps)),
                                max_gain=caps.gain_range[1], has_ir=self.illuminator is not None,
                                max_speed_kmh=cfg.camera.max_speed_kmh)
        self._last_wd = 0.0
        self.pipeline = Pipeline(
            Identity(cfg.site.id, cfg.camera.id, cfg.site.latitude, cfg.site.longitude), self.camera,
            self.recogniser, self.outbox, self.key, self.clock, illuminator=self.illuminator, gnss=self.gnss,
            min_confidence=cfg.recogniser.min_confidence, lanes=cfg.geometry.lanes,
            privacy_masks=cfg.evidence.privacy_masks, patch_colour=cfg.evidence.patch_colour, exposure=limits,
            on_commit=self._committed, watchdog=self._watchdog, lossless=lossless, frame_hook=frame_hook,
            hotlist=self.hotlist, on_alert=self._alerted)
        self._user_on_commit = on_commit
        self._user_on_alert = on_alert
        self.commands = Commands(cfg, config_path, on_change=self._apply, snapshot=self.pipeline.snapshot,
                                 restart=self._restart, hotlist=self.hotlist, audit_log=self.audit)
        u = cfg.uplink
        broker = BrokerSettings(url=u.broker, client_id=u.client_id or f"anpr-edge-{cfg.site.id}-{cfg.camera.id}",
                                mqtt_version=u.mqtt_version, ca_file=u.ca_file, cert_file=u.cert_file,
                                key_file=u.key_file, username=u.username, password_file=u.password_file,
                                keepalive_s=u.keepalive_s)
        self.uplink = Uplink(broker, cfg.site.id, cfg.camera.id, self.outbox, inflight=u.inflight,
                             backlog_rate=u.backlog_rate, health_interval_s=u.health_interval_s,
                             health=self.health, commands=self.commands, audit=self.audit)
        self.restart_requested = threading.Event()

    def health(self) -> dict:
        doc = health_document(self.pipeline, self.outbox, self.clock, self.cfg.storage.state_dir, self.uplink)
        doc["audit"] = self.audit.health()
        if self.hotlist is not None:
            doc["hotlist"] = self.hotlist.health()
            if self.hotlist.stats.fault:
                doc["faults"].append(self.hotlist.stats.fault)
        if self.audit.stats.write_errors:
            doc["faults"].append(f"audit log not writable ({self.audit.stats.write_errors} lines lost)")
        return doc

    def _committed(self, read, track) -> None:
        self.uplink.notify()
        if self._user_on_commit:
            self._user_on_commit(read, track)

    def _alerted(self, alert, read) -> None:
        self.uplink.notify()
        for m in alert.matches:
            self.audit.record("match", read_id=read.read_id, alert_id=alert.alert_id, list=m.list, reason=m.reason,
                              priority=m.priority, fuzzy=m.fuzzy, entry=m.entry, version=m.version)
        if self._user_on_alert:
            self._user_on_alert(alert, read)

    def _deleted(self, why: str, read_ids: list[str]) -> None:
        for i in range(0, len(read_ids), 500):
            part = read_ids[i:i + 500]
            self.audit.record("deletion", why=why, reads=len(part), read_ids=part)

    def failed_threads(self) -> list[str]:
        """The unit's threads that died or stalled: capture, recognise (its loop feeds the watchdog) and
        the uplink's network thread (publishing, receipts, commands). A capture thread that ended with
        its finite source (a video file) is not a failure."""
        bad = [t.name for t in self.pipeline._threads if not t.is_alive()
               and not (t.name == "capture" and self.pipeline.source_ended)]
        if not self.uplink.alive(UPLINK_STALL_S):
            bad.append("uplink")
        return bad

    def _watchdog(self) -> None:
        now = time.monotonic()
        if self.notifier is not None and now - self._last_wd >= 1.0:
            self._last_wd = now
            bad = self.failed_threads()
            if bad:  # no ping: systemd restarts the unit after WatchdogSec
                log.error("watchdog not fed: thread(s) %s dead or stalled", ", ".join(bad))
                return
            st = self.pipeline.stats
            self.notifier.notify(f"WATCHDOG=1\nSTATUS=fps {st.fps:.1f}, outbox {self.outbox.stats().depth}, "
                                 f"reads {st.reads_committed}")

    def _apply(self, cfg: DeviceConfig) -> None:
        self.pipeline.min_confidence = cfg.recogniser.min_confidence
        self.pipeline.privacy_masks = cfg.evidence.privacy_masks
        self.uplink.backlog_rate = cfg.uplink.backlog_rate
        self.uplink.health_interval_s = cfg.uplink.health_interval_s
        if self.pipeline.exposure is not None:
            self.pipeline.exposure.limits.max_speed_kmh = cfg.camera.max_speed_kmh
        logging.getLogger().setLevel(cfg.logging.level)

    def _restart(self) -> None:
        log.warning("restart requested over MQTT")
        self.restart_requested.set()

    def start(self) -> None:
        from agent import __version__

        self.audit.record("start", software=__version__, site=self.cfg.site.id, camera=self.cfg.camera.id,
                          models=dict(self.recogniser.versions),
                          hotlist_version=self.hotlist.stats.version if self.hotlist else None)
        self.pipeline.start()
        self.uplink.start()
        if self.notifier is not None:
            self.notifier.notify("READY=1\nSTATUS=camera and outbox up")

    def stop(self, drain_s: float = 5.0) -> None:
        if self.notifier is not None:
            self.notifier.notify("STOPPING=1")
        self.pipeline.stop(drain=True)
        self.uplink.stop(drain_s=drain_s)
        self.outbox_stats_at_stop = st = self.outbox.stats()
        self.audit.record("stop", reads_committed=self.pipeline.stats.reads_committed, outbox_depth=st.depth,
                          alerts_raised=self.pipeline.stats.alerts_raised, reads_lost=self.pipeline.stats.reads_held)
        self.outbox.close()
        if self.illuminator is not None:
            self.illuminator.close()
        if self.gnss is not None:
            self.gnss.close()


def run(cfg: DeviceConfig, config_path: Path | None) -> int:
    setup_logging(cfg)
    try:
        import sdnotify

        notifier = sdnotify.SystemdNotifier()
    except ImportError:
        notifier = None
    unit = Unit(cfg, config_path, notifier=notifier)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    unit.start()
    log.info("running: site %s camera %s (%s), broker %s", cfg.site.id, cfg.camera.id, cfg.camera.backend,
             cfg.uplink.broker)
    failed: list[str] = []
    while not stop.is_set() and not unit.restart_requested.is_set():
        stop.wait(0.5)
        if not any(t.is_alive() for t in unit.pipeline._threads) and unit.pipeline.source_ended:
            break  # a finite source (file, folder) has ended
        failed = unit.failed_threads()
        if failed:
            log.error("thread(s) %s dead or stalled: stopping so that systemd restarts the unit", ", ".join(failed))
            break
    unit.stop()
    st = unit.outbox_stats_at_stop
    held = unit.pipeline.stats.reads_held
    log.log(logging.ERROR if held else logging.INFO,
            "stopped: %d reads committed, %d awaiting delivery in the outbox (%d of them awaiting a receipt), "
            "%d kept without images (storage full), %d lost (held in memory, the outbox could not store them)",
            unit.pipeline.stats.reads_committed, st.depth, st.awaiting_receipt, st.images_shed, held)
    return 3 if unit.restart_requested.is_set() else 4 if failed else 0
