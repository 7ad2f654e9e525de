"""Raspberry Pi camera through picamera2 (from the OS package python3-picamera2; imported lazily).

Configuration, capture and controls follow picamera2's split: a video configuration sized to the
config, `capture_request()` for pixels and metadata together, `set_controls` with ExposureTime (us)
and AnalogueGain, auto-exposure off so the plate-priority exposure control is in charge.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import cv2
import numpy as np

from hal.camera import CameraCapabilities, Frame
from hal.errors import HalError, missing_library


class Picamera2Camera:
    def __init__(self, camera_id: str = "cam1", width: int = 1280, height: int = 720, fps: float = 25.0,
                 colour: bool = False, index: int = 0) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise missing_library("picamera2", "on Raspberry Pi OS: sudo apt install python3-picamera2 and make the "
                                               "venv with --system-site-packages") from None
        try:
            self._cam = Picamera2(index)
        except (RuntimeError, IndexError) as e:
            raise HalError(f"no Raspberry Pi camera {index}: {e}; check the ribbon cable and 'rpicam-hello'") from None
        self.camera_id = camera_id
        self.colour = colour
        frame_us = int(1_000_000 / fps)
        cfg = self._cam.create_video_configuration(
            main={"size": (width, height), "format": "RGB888" if colour else "YUV420"},
            controls={"FrameDurationLimits": (frame_us, frame_us), "AeEnable": False, "AwbEnable": colour})
        self._cam.configure(cfg)
        self._caps = CameraCapabilities(width, height, fps, colour, exposure_us_range=(20, frame_us),
                                        controls=frozenset({"exposure_us", "gain"}))
        self._running = False
        self._seq = 0

    @property
    def capabilities(self) -> CameraCapabilities:
        return self._caps

    def start(self) -> None:
        self._cam.start()
        self._running = True

    def stop(self) -> None:
        self._running = False
        self._cam.stop()

    def set_controls(self, *, exposure_us: int | None = None, gain: float | None = None, **extra: float) -> None:
        ctl: dict[str, object] = {}
        lo, hi = self._caps.exposure_us_range
        if exposure_us is not None:
            ctl["ExposureTime"] = int(min(hi, max(lo, exposure_us)))
        if gain is not None:
            ctl["AnalogueGain"] = float(min(self._caps.gain_range[1], max(self._caps.gain_range[0], gain)))
        if ctl:
            self._cam.set_controls(ctl)

    def frames(self) -> Iterator[Frame]:
        if not self._running:
            self.start()
        h = self._caps.height
        while self._running:
            req = self._cam.capture_request()
            try:
                arr = req.make_array("main")
                md = req.get_metadata()
            finally:
                req.release()
            # colour: the RGB888 array; mono: the Y plane (first `h` rows) of YUV420
            img = np.ascontiguousarray(arr if self.colour else arr[:h])
            if img.ndim == 3 and not self.colour:
                img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            yield Frame(img, self._seq, time.monotonic(), time.time(), int(md.get("ExposureTime", 0)),
                        float(md.get("AnalogueGain", 1.0)), 0.0, self.camera_id)
            self._seq += 1
