import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from hal.camera import Camera
from hal.errors import HalError

FAKES = str(Path(__file__).parent / "fakes")


@pytest.fixture
def fake_picamera2(monkeypatch):
    monkeypatch.syspath_prepend(FAKES)
    sys.modules.pop("picamera2", None)
    yield
    sys.modules.pop("picamera2", None)


def test_picamera2_backend_configures_captures_and_controls(fake_picamera2):
    from hal.camera_picamera2 import Picamera2Camera

    cam = Picamera2Camera("camA", 640, 480, 25.0)
    assert isinstance(cam, Camera)
    it = cam.frames()
    f1 = next(it)
    assert f1.pixels.shape == (480, 640) and f1.camera_id == "camA" and f1.exposure_us == 10000
    cam.set_controls(exposure_us=2000, gain=4.0)
    f2 = next(it)
    assert f2.exposure_us == 2000 and f2.gain == 4.0
    assert f2.pixels.mean() == pytest.approx(80, abs=1)  # 2000 us x 4 / 100
    cam.set_controls(exposure_us=10**7, gain=100)  # clamped to the frame time and the gain range
    f3 = next(it)
    assert f3.exposure_us == 40000 and f3.gain == 16.0
    cam.stop()


def test_missing_picamera2_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    from hal.camera_picamera2 import Picamera2Camera

    with pytest.raises(HalError, match="python3-picamera2"):
        Picamera2Camera()


def test_opencv_folder_and_video_file(tmp_path):
    from hal.camera_opencv import OpenCvCamera

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((72, 128, 3), 40 * i, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    cam = OpenCvCamera(str(tmp_path))
    frames = list(cam.frames())
    assert [int(f.pixels.mean()) for f in frames] == [0, 40, 80] and frames[0].pixels.ndim == 2
    video = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (128, 72))
    for i in range(10):
        w.write(np.full((72, 128, 3), 20 * i, np.uint8))
    w.release()
    vf = list(OpenCvCamera(str(video), colour=True).frames())
    assert len(vf) == 10 and vf[0].pixels.shape == (72, 128, 3)


def test_opencv_bad_sources_are_explained(tmp_path):
    from hal.camera_opencv import OpenCvCamera

    with pytest.raises(HalError, match="no such file"):
        OpenCvCamera(str(tmp_path / "missing.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(HalError, match="no images"):
        OpenCvCamera(str(tmp_path / "empty"))
    with pytest.raises(HalError, match="cannot open"):
        OpenCvCamera("/dev/video99").start()
