"""A stand-in for the picamera2 library at its API boundary (x86 has no Pi camera).

It behaves like Picamera2 where the backend uses it: create_video_configuration/configure/start/stop,
set_controls with ExposureTime/AnalogueGain taking effect on the next frame, capture_request() giving
make_array("main") and get_metadata(), release(). Frames are a YUV420 buffer whose brightness follows
exposure x gain, so exposure control can be exercised against it.
"""

from __future__ import annotations

import numpy as np


class _Request:
    def __init__(self, arr, md):
        self._arr, self._md, self.released = arr, md, False

    def make_array(self, name):
        assert name == "main"
        return self._arr

    def get_metadata(self):
        return dict(self._md)

    def release(self):
        self.released = True


class Picamera2:

    def __init__(self, camera_num=0):
        if camera_num != 0:
            raise IndexError("camera index out of range")
        self.config = None
        self.started = False
        self.controls = {"ExposureTime": 10000, "AnalogueGain": 1.0}
        self._pending: dict = {}
        self.frame = 0

    def create_video_configuration(self, main=None, controls=None, **kw):
        return {"main": dict(main or {}), "controls": dict(controls or {})}

    def configure(self, config):
        self.config = config

    def start(self):
        if self.config is None:
            raise RuntimeError("Camera must be configured before starting")
        self.started = True

    def stop(self):
        self.started = False

    def set_controls(self, controls):
        for k in controls:
            if k not in ("ExposureTime", "AnalogueGain", "FrameDurationLimits", "AeEnable", "AwbEnable"):
                raise RuntimeError(f"Control {k} is not advertised by libcamera")
        self._pending.update(controls)

    def capture_request(self):
        if not self.started:
            raise RuntimeError("Camera is not started")
        self.controls.update(self._pending)  # controls apply from the next frame
        self._pending = {}
        w, h = self.config["main"]["size"]
        level = min(255, int(self.controls["ExposureTime"] * self.controls["AnalogueGain"] / 100))
        fmt = self.config["main"].get("format", "YUV420")
        if fmt == "YUV420":
            arr = np.full((h * 3 // 2, w), 128, np.uint8)
            arr[:h] = level
        else:
            arr = np.full((h, w, 3), level, np.uint8)
        self.frame += 1
        md = {"ExposureTime": int(self.controls["ExposureTime"]), "AnalogueGain": float(self.controls["AnalogueGain"]),
              "SensorTimestamp": self.frame * 40_000_000}
        return _Request(arr, md)
