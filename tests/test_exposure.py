import numpy as np
import pytest

from agent.pipeline.exposure import PLATE_TARGET, ExposureController, ExposureLimits, ExposureState
from hal.illuminator_sim import SimIlluminator
from sim.camera import SimCamera, SimCameraSettings


def run_loop(cam, ctl, ill, frames, use_truth=True):
    levels = []
    for _ in range(frames):
        f = cam.capture()
        boxes = [p.bbox for p in f.truth.plates if p.in_frame] if use_truth else []
        st = ctl.update(f.pixels, boxes)
        cam.set_controls(exposure_us=st.exposure_us, gain=st.gain)
        ill.set_level(st.ir_level)
        for x, y, w, h in boxes:
            levels.append((f.seq, float(np.percentile(f.pixels[y:y + h, x:x + w], 85))))
    return levels


def test_night_start_badly_exposed_converges_within_50_frames():
    cam = SimCamera(SimCameraSettings(seed=21, conditions="night", rate_per_hour=3000, exposure_us=100, gain=1.0,
                                      ir_level=0.0))
    ill = SimIlluminator(cam)
    ctl = ExposureController(ExposureState(100, 1.0, 0.0), ExposureLimits(max_us=20000, max_speed_kmh=130))
    for _ in range(150):  # let traffic build up with the camera unchanged
        cam.capture()
    levels = run_loop(cam, ctl, ill, 50)
    after = [lv for seq, lv in levels if seq >= 150 + 40]
    assert after, "no plates in the last frames"
    assert np.median(after) == pytest.approx(PLATE_TARGET, rel=0.3)
    assert ctl.state.ir_level > 0.3  # it used the illuminator, not only gain


def test_shutter_is_capped_for_motion_blur():
    ctl = ExposureController(ExposureState(1000, 1.0, 0.0), ExposureLimits(max_us=20000, max_speed_kmh=130))
    cap = ctl.shutter_cap_for(plate_width_px=140)
    # 140 px per 0.52 m plate, half of that as along-road image motion, 36.1 m/s: 1.5 px in ~298 us
    assert cap == pytest.approx(1.5 / (140 / 0.52 * 0.5 * 130 / 3.6) * 1e6, rel=0.01)
    dark = np.zeros((720, 1280), np.uint8)
    dark[300:340, 500:640] = 20  # a dim plate
    for _ in range(30):
        st = ctl.update(dark, [(500, 300, 140, 40)])
    assert st.exposure_us <= cap and st.gain > 1.0


def test_bright_day_reduces_gain_then_shutter():
    ctl = ExposureController(ExposureState(4000, 8.0, 0.0), ExposureLimits(max_us=20000, has_ir=False))
    bright = np.full((720, 1280), 255, np.uint8)
    for _ in range(20):
        st = ctl.update(bright, [])
    assert st.gain == 1.0 and st.exposure_us < 4000


def test_closed_loop_with_the_recogniser_read_rate_recovers_at_night():
    """From a badly exposed night start, plate-priority control driven by the real detector brings the
    read rate back (exposure, gain and IR all start far too low)."""
    from pathlib import Path

    from agent.recognise import Recogniser
    from sim.traffic import Lane

    rec = Recogniser(Path(__file__).resolve().parents[1] / "models")
    cam = SimCamera(SimCameraSettings(seed=33, conditions="night", rate_per_hour=3600, exposure_us=60, gain=1.0,
                                      ir_level=0.0, lanes=[Lane(0, -1.75, "towards")]))
    ill = SimIlluminator(cam)
    ctl = ExposureController(ExposureState(60, 1.0, 0.0), ExposureLimits(max_us=20000, max_speed_kmh=130))

    def window(n, control):
        seen = read = 0
        for _ in range(n):
            f = cam.capture()
            truth = {p.vrm for p in f.truth.plates if p.in_frame and not p.occluded and p.char_height_px >= 14}
            reads = rec.recognise(f.pixels)
            seen += len(truth)
            read += len(truth & {r.vrm for r in reads if r.confidence >= 0.5})
            if control:
                st = ctl.update(f.pixels, [r.bbox for r in reads])
                cam.set_controls(exposure_us=st.exposure_us, gain=st.gain)
                ill.set_level(st.ir_level)
        return read / max(seen, 1), seen

    for _ in range(100):  # traffic builds up
        cam.capture()
    before, n0 = window(40, control=False)
    window(50, control=True)  # converging
    after, n1 = window(150, control=True)
    assert n0 > 5 and n1 > 20
    print(f"read rate before {before:.2f} ({n0} plate sightings), after {after:.2f} ({n1}); {ctl.state}")
    assert before < 0.2 and after > 0.7, (before, after, ctl.state)
