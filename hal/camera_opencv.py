"""Camera through OpenCV: a V4L2 device ("0" or /dev/videoN), an RTSP/HTTP stream (reconnects), a
video file, or a folder of images (sorted, for replaying recorded traffic)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from hal.camera import CameraCapabilities, Frame
from hal.errors import HalError

log = logging.getLogger(__name__)
IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


class OpenCvCamera:
    def __init__(self, source: str, camera_id: str = "cam1", width: int = 1280, height: int = 720, fps: float = 25.0,
                 colour: bool = False, loop: bool = False, reconnect_s: float = 2.0) -> None:
        self.source = source
        self.camera_id = camera_id
        self.colour = colour
        self.loop = loop
        self.reconnect_s = reconnect_s
        self._caps = CameraCapabilities(width, height, fps, colour, controls=frozenset({"exposure_us", "gain"}))
        self._cap: cv2.VideoCapture | None = None
        self._files: list[Path] = []
        self._running = False
        self._exposure_us, self._gain = 0, 1.0
        p = Path(source)
        self.kind = ("folder" if p.is_dir() else "device" if source.isdigit() or source.startswith("/dev/video")
                     else "stream" if "://" in source else "file")
        if self.kind == "folder":
            self._files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXT)
            if not self._files:
                raise HalError(f"camera source {source}: folder has no images")
        elif self.kind == "file" and not p.is_file():
            raise HalError(f"camera source {source}: no such file")

    @property
    def capabilities(self) -> CameraCapabilities:
        return self._caps

    def _open(self) -> cv2.VideoCapture:
        src: int | str = int(self.source) if self.source.isdigit() else self.source
        cap = cv2.VideoCapture(src)
        if not cap.isOpened():
            raise HalError(f"cannot open camera source {self.source!r}: check the device/URL and the 'video' group")
        if self.kind == "device":
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._caps.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._caps.height)
            cap.set(cv2.CAP_PROP_FPS, self._caps.fps)
        return cap

    def start(self) -> None:
        if self.kind != "folder":
            self._cap = self._open()
        self._running = True

    def stop(self) -> None:
        self._running = False
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def set_controls(self, *, exposure_us: int | None = None, gain: float | None = None, **extra: float) -> None:
        if exposure_us is not None:
            self._exposure_us = int(exposure_us)
            if self.kind == "device" and self._cap is not None:
                self._cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, 1)  # manual (V4L2)
                self._cap.set(cv2.CAP_PROP_EXPOSURE, max(1, exposure_us // 100))  # V4L2 units of 100 us
        if gain is not None:
            self._gain = float(gain)
            if self.kind == "device" and self._cap is not None:
                self._cap.set(cv2.CAP_PROP_GAIN, gain)

    def _frame(self, img: np.ndarray, seq: int) -> Frame:
        if not self.colour and img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        return Frame(img, seq, time.monotonic(), time.time(), self._exposure_us, self._gain, 0.0, self.camera_id)

    def frames(self) -> Iterator[Frame]:
        if not self._running:
            self.start()
        seq = 0
        if self.kind == "folder":
            while self._running:
                for f in self._files:
                    if not self._running:
                        return
                    img = cv2.imread(str(f), cv2.IMREAD_COLOR)
                    if img is None:
                        log.warning("camera: skipping unreadable image %s", f)
                        continue
                    yield self._frame(img, seq)
                    seq += 1
                if not self.loop:
                    return
            return
        while self._running:
            assert self._cap is not None
            ok, img = self._cap.read()
            if ok and img is not None:
                yield self._frame(img, seq)
                seq += 1
                continue
            if self.kind == "file" and not self.loop:
                return
            if self.kind == "file":
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            log.warning("camera: lost %s; reconnecting in %.1f s", self.source, self.reconnect_s)
            self._cap.release()
            time.sleep(self.reconnect_s)
            try:
                self._cap = self._open()
            except HalError as e:
                log.warning("camera: %s", e)
                self._cap = cv2.VideoCapture()
