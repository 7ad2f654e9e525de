"""SimCamera: the simulator as a `hal.Camera` backend, with ground truth on every frame.

Simulated time advances by 1/fps per frame (not wall-clock time) so a run is deterministic per
seed; `realtime=True` paces delivery to the frame rate for demos.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from hal.camera import CameraCapabilities, Frame
from sim.optics import CameraModel, Installation
from sim.scene import Conditions, Exposure, PlateTruth, SceneRenderer
from sim.traffic import Lane, Traffic, default_lanes


@dataclass(slots=True)
class FrameTruth:
    seq: int
    t: float
    conditions: str
    plates: list[PlateTruth]
    masks: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass(slots=True)
class SimCameraSettings:
    installation: Installation = field(default_factory=Installation)
    fps: float = 25.0
    colour: bool = False
    seed: int = 0
    conditions: str = "day"
    defocus_px: float = 0.0
    jpeg_quality: int | None = None
    lanes: list[Lane] = field(default_factory=default_lanes)
    rate_per_hour: float = 900.0
    foreign_rate: float = 0.02
    speed_kmh: tuple[float, float] = (20.0, 130.0)
    exposure_us: int = 1000
    gain: float = 1.0
    ir_level: float = 0.0
    camera_id: str = "cam1"
    realtime: bool = False
    max_frames: int | None = None
    want_masks: bool = False
    ir_power: float = 1.0  # illuminator strength: scales the IR level the controls ask for


class SimCamera:
    """Implements `hal.Camera`; honours set_controls so exposure control runs in closed loop."""

    def __init__(self, settings: SimCameraSettings | None = None) -> None:
        self.settings = s = settings or SimCameraSettings()
        self._model = CameraModel(s.installation)
        self._renderer = SceneRenderer(self._model, colour=s.colour, seed=s.seed)
        self._traffic = Traffic(s.lanes, s.rate_per_hour, seed=s.seed, foreign_rate=s.foreign_rate,
                                speed_kmh=s.speed_kmh)
        self._cond = Conditions.preset(s.conditions)
        caps = CameraCapabilities(s.installation.width, s.installation.height, s.fps, s.colour,
                                  controls=frozenset({"exposure_us", "gain", "ir_level"}))
        self._caps = caps
        self._exp = Exposure(s.exposure_us, s.gain, s.ir_level)
        self._lock = threading.Lock()
        self._seq = 0
        self._running = False

    @property
    def capabilities(self) -> CameraCapabilities:
        return self._caps

    @property
    def model(self) -> CameraModel:
        return self._model

    @property
    def exposure(self) -> Exposure:
        return self._exp

    def start(self) -> None:
        self._running = True

    def stop(self) -> None:
        self._running = False

    def set_controls(self, *, exposure_us: int | None = None, gain: float | None = None, **extra: float) -> None:
        lo, hi = self._caps.exposure_us_range
        glo, ghi = self._caps.gain_range
        with self._lock:
            e = self._exp
            self._exp = Exposure(
                int(np.clip(exposure_us, lo, hi)) if exposure_us is not None else e.exposure_us,
                float(np.clip(gain, glo, ghi)) if gain is not None else e.gain,
                float(np.clip(extra["ir_level"], 0.0, 1.0)) if "ir_level" in extra else e.ir_level,
            )

    def set_ir_level(self, level: float) -> None:
        self.set_controls(ir_level=level)

    def set_conditions(self, cond: Conditions | str) -> None:
        self._cond = Conditions.preset(cond) if isinstance(cond, str) else cond

    def capture(self) -> Frame:
        """Render the next frame (advances simulated time by one frame period)."""
        s = self.settings
        seq = self._seq
        self._seq += 1
        t = seq / s.fps
        vehicles = self._traffic.step(t)
        with self._lock:
            exp = self._exp
        rng = np.random.default_rng([s.seed, seq])
        if s.ir_power != 1.0:
            exp = Exposure(exp.exposure_us, exp.gain, exp.ir_level * s.ir_power)
        pixels, plates, masks = self._renderer.render(vehicles, t, exp, self._cond, rng, s.defocus_px,
                                                      s.jpeg_quality, s.want_masks)
        if seq % 50 == 0:
            self._renderer.forget({v.id for v in vehicles})
        return Frame(pixels=pixels, seq=seq, mono_time=time.monotonic(), utc_time=time.time(),
                     exposure_us=exp.exposure_us, gain=exp.gain, ir_level=self._exp.ir_level,
                     camera_id=s.camera_id, truth=FrameTruth(seq, t, self._cond.name, plates, masks))

    def frames(self) -> Iterator[Frame]:
        if not self._running:
            self.start()
        s = self.settings
        t0 = time.monotonic()
        n = 0
        while self._running and (s.max_frames is None or n < s.max_frames):
            if s.realtime:
                due = t0 + n / s.fps
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield self.capture()
            n += 1


def lane_polygons(s: SimCameraSettings) -> list[list[list[float]]]:
    """Each simulated lane as an image polygon where plates pass (at plate height, over the distances
    at which a plate is in frame): the lanes an installer would draw for this view (geometry.lanes)."""
    from sim.optics import PLATE_CENTRE_HEIGHT_M, CameraModel

    model = CameraModel(s.installation)
    near, far = model.plate_y_range()
    far = min(far, near + 60.0)
    out = []
    for lane in sorted(s.lanes, key=lambda ln: ln.index):
        x0, x1 = lane.centre_x - lane.width / 2, lane.centre_x + lane.width / 2
        pts = np.array([[x0, near, PLATE_CENTRE_HEIGHT_M], [x1, near, PLATE_CENTRE_HEIGHT_M],
                        [x1, far, PLATE_CENTRE_HEIGHT_M], [x0, far, PLATE_CENTRE_HEIGHT_M]])
        uv, _ = model.project(pts)
        out.append([[round(float(u), 1), round(float(v), 1)] for u, v in uv])
    return out
