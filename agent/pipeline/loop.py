"""The unit's pipeline: capture -> recognise -> track -> evidence -> signed read -> outbox.

Capture runs in its own thread and never waits for recognition: frames go into a bounded queue
that drops the oldest frame (counted) when recognition falls behind. A closed track becomes one
read, committed to the outbox before anything is published. Exposure control closes the loop from
detected plates back to the camera and the illuminator.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from agent.clock import Clock
from agent.config import DEFAULT_MIN_CONFIDENCE
from agent.pipeline.evidence import overview, plate_patch
from agent.pipeline.exposure import ExposureController, ExposureLimits, ExposureState
from agent.pipeline.tracker import Observation, Tracker, TrackResult
from agent.read_doc import Alert, HotlistMatch, Image, Location, Models, Read, uuid7
from agent.read_doc import Clock as ClockDoc
from agent.recognise.recogniser import PlateRead, Recogniser
from agent.signing import sign
from agent.uplink.outbox import Outbox, OutboxError
from hal.camera import Camera, Frame

log = logging.getLogger(__name__)
TRACK_MIN_CONFIDENCE = 0.3  # reads below this do not even enter the tracker
REPEAT_WINDOW_S = 5.0  # the same VRM again within this time is the same vehicle (a track split by occlusion)
MIN_FRAMES_UNKNOWN = 3  # a read valid in no format needs this many frames (fragments of plates otherwise)
HELD_MAX = 5000  # reads kept in memory while the outbox cannot store them


class FrameQueue:
    """Bounded; a put never blocks: the oldest frame goes. `lossless` (simulated sources only) runs
    capture in lock-step with recognition instead, so a simulated run is the same whatever the load:
    the next frame is made only after the last one was processed and its controls applied."""

    def __init__(self, maxlen: int = 4, lossless: bool = False) -> None:
        self._q: collections.deque[Frame] = collections.deque()
        self.maxlen = maxlen
        self.lossless = lossless
        self.dropped = 0
        self._cv = threading.Condition()
        self.closed = False
        self._unfinished = 0

    def wait_turn(self) -> None:
        """Lossless: wait until the frame before has been processed (call before making the next)."""
        with self._cv:
            while self.lossless and self._unfinished and not self.closed:
                self._cv.wait(0.1)

    def done(self) -> None:
        with self._cv:
            self._unfinished = max(0, self._unfinished - 1)
            self._cv.notify_all()

    def put(self, f: Frame) -> None:
        with self._cv:
            self._unfinished += 1
            if len(self._q) >= self.maxlen:
                self._q.popleft()
                self.dropped += 1
                self._unfinished -= 1
            self._q.append(f)
            self._cv.notify_all()

    def get(self, timeout: float) -> Frame | None:
        with self._cv:
            if not self._q:
                self._cv.wait(timeout)
            if not self._q:
                return None
            f = self._q.popleft()
            self._cv.notify_all()
            return f

    def close(self) -> None:
        with self._cv:
            self.closed = True
            self._cv.notify_all()

    def __len__(self) -> int:
        return len(self._q)


@dataclass(slots=True)
class PipelineStats:
    frames_captured: int = 0
    frames_processed: int = 0
    reads_committed: int = 0
    reads_below_threshold: int = 0
    reads_held: int = 0
    alerts_raised: int = 0
    repeats_suppressed: int = 0
    fragments_dropped: int = 0
    fps: float = 0.0
    last_loop_mono: float = 0.0
    commit_latency_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=5000))
    recent_reads: collections.deque = field(default_factory=lambda: collections.deque(maxlen=600))  # mono times
    stage_ms: dict = field(default_factory=dict)


@dataclass(slots=True)
class Identity:
    site: str
    camera: str
    lat: float | None = None
    lon: float | None = None


class Pipeline:
    def __init__(self, identity: Identity, camera: Camera, recogniser: Recogniser, outbox: Outbox, sign_key,
                 clock: Clock, *, illuminator=None, gnss=None, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                 lanes: list | None = None, privacy_masks: list | None = None, patch_colour: bool = False,
                 exposure: ExposureLimits | None = None, on_commit: Callable[[Read, TrackResult], None] | None = None,
                 watchdog: Callable[[], None] | None = None, lossless: bool = False, queue_len: int = 4,
                 max_gap_s: float = 0.3, frame_hook: Callable[[Frame, list[PlateRead]], None] | None = None,
                 hotlist=None, on_alert: Callable[[Alert, Read], None] | None = None) -> None:
        self.id = identity
        self.camera = camera
        self.recogniser = recogniser
        self.outbox = outbox
        self.key = sign_key
        self.clock = clock
        self.illuminator = illuminator
        self.gnss = gnss
        self.min_confidence = min_confidence
        self.privacy_masks = privacy_masks or []
        self.patch_colour = patch_colour
        self.on_commit = on_commit
        self.watchdog = watchdog
        self.frame_hook = frame_hook  # sees every processed frame and its reads (demo, tests)
        self.hotlist = hotlist  # agent.hotlist.Hotlist: every committed read is matched
        self.on_alert = on_alert
        self.queue = FrameQueue(queue_len, lossless)
        self.tracker = Tracker(lanes or [], max_gap_s=max_gap_s, keep_payloads=2)
        self.stats = PipelineStats()
        self.exposure: ExposureController | None = None
        if exposure is not None:
            ir0 = 0.0
            if illuminator is not None:
                ir0 = illuminator.status().level
            self.exposure = ExposureController(ExposureState(1000, 1.0, ir0), exposure)
        self._held: list[tuple[str, bytes, tuple[str, bytes] | None]] = []
        self._recent: dict[str, float] = {}  # VRM -> time of its last sighting, for the repeat window
        self._stop = threading.Event()
        self._capture_done = threading.Event()
        self.source_ended = False  # the camera's frames ended by themselves (a video file, a folder)
        self._threads: list[threading.Thread] = []
        self._last_frame: Frame | None = None
        self._frame_times: collections.deque[float] = collections.deque(maxlen=50)

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.camera.start()
        if self.exposure is not None:
            s = self.exposure.state
            self.camera.set_controls(exposure_us=s.exposure_us, gain=s.gain)
        self._threads = [threading.Thread(target=self._capture, name="capture", daemon=True),
                         threading.Thread(target=self._work, name="recognise", daemon=True)]
        for t in self._threads:
            t.start()

    def stop(self, drain: bool = True) -> None:
        """Stop capture; with `drain`, recognise what is queued and commit every open track."""
        self._stop.set()
        self.camera.stop()
        self.queue.close()
        for t in self._threads:
            t.join(timeout=30)
        if drain:
            for r in self.tracker.flush():
                self._commit(r)
        self._retry_held()

    # ---- threads --------------------------------------------------------------------------------
    def _capture(self) -> None:
        try:
            frames = self.camera.frames()
            while True:
                self.queue.wait_turn()
                f = next(frames, None)
                if f is None:
                    self.source_ended = not self._stop.is_set()
                    break
                if self._stop.is_set():
                    break
                self.stats.frames_captured += 1
                self.queue.put(f)
        except Exception:
            log.exception("capture failed")
        finally:
            self._capture_done.set()

    def _work(self) -> None:
        while True:
            f = self.queue.get(0.2)
            if f is None:
                if self._capture_done.is_set() or (self._stop.is_set() and not len(self.queue)):
                    break
                self._tick()
                continue
            try:
                self.process(f)
            except Exception:  # a bad frame must not stop the unit
                log.exception("frame %d failed", f.seq)
            finally:
                self.queue.done()
            self._tick()
        for r in self.tracker.flush() if not self._stop.is_set() else []:
            self._commit(r)

    def _tick(self) -> None:
        self.stats.last_loop_mono = time.monotonic()
        if self.watchdog is not None:
            self.watchdog()

    # ---- one frame ------------------------------------------------------------------------------
    def process(self, f: Frame) -> list[Read]:
        t0 = time.perf_counter()
        reads = self.recogniser.recognise(f.pixels)
        t1 = time.perf_counter()
        self._last_frame = f
        if self.frame_hook is not None:
            self.frame_hook(f, reads)
        obs = [Observation(f.mono_time if f.truth is None else f.truth.t, f.seq, r.vrm, r.confidence,
                           r.char_confidences, r.bbox, r.det_score, payload=(f, r))
               for r in reads if r.confidence >= TRACK_MIN_CONFIDENCE]
        t_now = obs[0].t if obs else (f.mono_time if f.truth is None else f.truth.t)
        closed = self.tracker.update(t_now, obs, (f.width, f.height))
        if self.exposure is not None:
            st = self.exposure.update(f.pixels, [r.bbox for r in reads])
            self.camera.set_controls(exposure_us=st.exposure_us, gain=st.gain)
            if self.illuminator is not None:
                self.illuminator.set_level(st.ir_level)
        out = [r for r in (self._commit(c) for c in closed) if r is not None]
        self._retry_held()
        self.stats.frames_processed += 1
        now = time.perf_counter()
        # frames over elapsed time in a sliding window: the mean of 1/dt over-reads (29-47 "fps" for a
        # 25 fps camera whose frames arrive unevenly)
        self._frame_times.append(now)
        span = self._frame_times[-1] - self._frame_times[0]
        if len(self._frame_times) >= 2 and span > 0:
            self.stats.fps = (len(self._frame_times) - 1) / span
        self.stats.stage_ms = {"recognise": (t1 - t0) * 1000, "total": (now - t0) * 1000}
        return out

    def _commit(self, tr: TrackResult) -> Read | None:
        if tr.confidence < self.min_confidence:
            self.stats.reads_below_threshold += 1
            log.debug("track %d: %s below threshold (%.2f)", tr.track_id, tr.vrm, tr.confidence)
            return None
        if tr.best.payload is None:
            return None
        if tr.format == "unknown" and tr.frames < MIN_FRAMES_UNKNOWN:
            self.stats.fragments_dropped += 1
            log.debug("track %d: %s dropped: %d frame(s), valid in no format", tr.track_id, tr.vrm, tr.frames)
            return None
        last = self._recent.get(tr.vrm)
        self._recent = {v: t for v, t in self._recent.items() if tr.last_t - t <= REPEAT_WINDOW_S}
        self._recent[tr.vrm] = tr.last_t
        if last is not None and tr.first_t - last <= REPEAT_WINDOW_S:
            self.stats.repeats_suppressed += 1
            log.debug("track %d: %s seen again within %.0f s: same vehicle, not read twice", tr.track_id, tr.vrm,
                     REPEAT_WINDOW_S)
            return None
        frame, pr = tr.best.payload
        matches = self.hotlist.match(tr.vrm) if self.hotlist is not None else []
        read = self._make_read(tr, frame, pr, matches)
        payload = read.to_json_bytes()
        alert = self._alert(read) if read.hotlist else None
        stored_alert = (alert.alert_id, alert.to_json_bytes()) if alert is not None else None
        try:
            self.outbox.put(read.read_id, payload, alert=stored_alert)
        except OutboxError:
            if len(self._held) >= HELD_MAX:
                log.error("outbox unavailable and %d reads held in memory: holding on to this one too", HELD_MAX)
            self._held.append((read.read_id, payload, stored_alert))
            self.stats.reads_held = len(self._held)
        else:
            self.stats.reads_committed += 1
            self.stats.recent_reads.append(time.monotonic())
            self.stats.commit_latency_ms.append((time.monotonic() - frame.mono_time) * 1000)
        if alert is not None:
            self.stats.alerts_raised += 1
            if self.on_alert is not None:
                self.on_alert(alert, read)
        if self.on_commit is not None:
            self.on_commit(read, tr)
        return read

    def _alert(self, read: Read) -> Alert:
        alert = Alert(alert_id=uuid7(), read_id=read.read_id, site_id=read.site_id, camera_id=read.camera_id,
                      captured_at=read.captured_at, raised_at=dt.datetime.now(dt.UTC), vrm=read.vrm,
                      confidence=read.confidence, matches=read.hotlist or [], plate_patch=read.plate_patch,
                      overview=read.overview)
        return sign(alert, self.key)

    def _retry_held(self) -> None:
        while self._held:
            rid, payload, alert = self._held[0]
            try:
                self.outbox.put(rid, payload, alert=alert)
            except OutboxError:
                return
            self._held.pop(0)
            self.stats.reads_committed += 1
            self.stats.reads_held = len(self._held)

    def _make_read(self, tr: TrackResult, frame: Frame, pr: PlateRead, matches=()) -> Read:
        patch = plate_patch(frame.pixels, pr.quad, self.patch_colour)
        ov = overview(frame.pixels, self.privacy_masks)
        scale = ov.width / frame.width
        x, y, w, h = pr.bbox
        bbox = [round(x * scale), round(y * scale), max(1, round(w * scale)), max(1, round(h * scale))]
        cs = self.clock.state()
        loc = None
        fix = self.gnss.fix() if self.gnss is not None else None
        if fix is not None and fix.has_position:
            loc = Location(lat=fix.lat, lon=fix.lon)
        elif self.id.lat is not None and self.id.lon is not None:
            loc = Location(lat=self.id.lat, lon=self.id.lon)
        ms = int(frame.utc_time * 1000)
        read = Read(
            read_id=uuid7(ms), site_id=self.id.site, camera_id=self.id.camera, lane=tr.lane,
            captured_at=dt.datetime.fromtimestamp(ms / 1000, dt.UTC),
            clock=ClockDoc(source=cs.source, synchronised=cs.synchronised, offset_ms=cs.offset_ms), location=loc,
            vrm=tr.vrm, confidence=round(float(tr.confidence), 4),
            char_confidences=[round(float(c), 4) for c in tr.char_confidences],
            format=tr.format, plate_colour=plate_colour(frame.pixels, pr.quad, tr.format, tr.direction),
            direction=tr.direction,
            frames=tr.frames, bbox=bbox,
            plate_patch=Image.from_jpeg(patch.data, patch.width, patch.height),
            overview=Image.from_jpeg(ov.data, ov.width, ov.height),
            model=Models(**self.recogniser.versions),
            hotlist=[HotlistMatch(**m.doc()) for m in matches] or None,
        )
        return sign(read, self.key)

    def snapshot(self) -> dict:
        f = self._last_frame
        if f is None:
            return {"error": "no frame yet"}
        ov = overview(f.pixels, self.privacy_masks)
        return {"overview": Image.from_jpeg(ov.data, ov.width, ov.height).model_dump(), "seq": f.seq,
                "exposure_us": f.exposure_us, "gain": f.gain, "ir_level": f.ir_level}


def plate_colour(pixels: np.ndarray, quad: np.ndarray, fmt: str, direction: str) -> str:
    """From the plate's pixels on a colour camera; on a mono (IR) camera, for a UK mark, from the
    direction of travel: UK law puts a white plate at the front and a yellow one at the rear, and a
    vehicle coming towards the camera shows its front."""
    seen = _plate_colour(pixels, quad)
    if seen != "unknown" or fmt in ("foreign", "unknown"):
        return seen
    return {"towards": "white", "away": "yellow"}.get(direction, "unknown")


def _plate_colour(pixels: np.ndarray, quad: np.ndarray) -> str:
    if pixels.ndim != 3:
        return "unknown"
    x0, y0 = np.maximum(np.floor(quad.min(axis=0)).astype(int), 0)
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int)
    roi = pixels[y0:y1, x0:x1].reshape(-1, 3).astype(np.float32)
    if len(roi) < 16:
        return "unknown"
    bright = roi[roi.sum(axis=1) >= np.percentile(roi.sum(axis=1), 60)]
    b, g, r = bright.mean(axis=0)
    return "yellow" if b < 0.7 * r and g > 0.6 * r else "white"
