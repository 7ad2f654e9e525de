"""Commissioning checks: each is pass / warn / fail with the measured value and what to do.

Thresholds are configurable (`Thresholds`); their basis is in docs/commissioning.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from agent.config import DEFAULT_MIN_CONFIDENCE
from calibration.measure import PlateMeasure


@dataclass(frozen=True, slots=True)
class Thresholds:
    char_height_fail_px: float = 12.0
    char_height_warn_px: float = 16.0
    char_height_max_px: float = 70.0
    sharpness_fail: float = 0.16
    sharpness_warn: float = 0.22
    blur_warn_px: float = 1.5
    blur_fail_px: float = 3.0
    night_level_fail: float = 60.0
    night_contrast_fail: float = 40.0
    day_saturation_warn: float = 0.25
    angle_warn_deg: float = 5.0
    angle_fail_deg: float = 12.0
    cut_off_warn: float = 0.1
    cut_off_fail: float = 0.3
    read_rate_fail: float = 0.8
    read_rate_warn: float = 0.95
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    # what counts as a vehicle's plate (`vehicles`)
    plate_read_min: float = 0.5
    plate_contrast_min: float = 60.0
    vehicle_part_widths: float = 4.0


@dataclass(slots=True)
class Check:
    name: str
    status: str  # pass | warn | fail | skip
    value: str
    advice: str
    data: dict = field(default_factory=dict)


def _grade(value: float, fail: float, warn: float, higher_is_better: bool = True) -> str:
    if higher_is_better:
        return "fail" if value < fail else "warn" if value < warn else "pass"
    return "fail" if value > fail else "warn" if value > warn else "pass"


def _plate_like(t: dict, th: Thresholds) -> bool:
    """Read as something, or at least a light-and-dark pattern: a detector that learnt real photographs
    also outlines patches of flat road and kerb, which a plate (dark characters on a light ground, or
    a retroreflective plate under IR) never looks like."""
    contrast = float(np.median([m.contrast for m in t["measures"]]))
    return t["confidence"] >= th.plate_read_min or contrast >= th.plate_contrast_min


def _velocity(t: dict) -> np.ndarray:
    a, b = t["measures"][0], t["measures"][-1]
    return (np.array(b.centre) - np.array(a.centre)) / max(b.t - a.t, 1e-3)


def _moves_with(part: dict, plate: dict, th: Thresholds) -> bool:
    """Whether an unread region travels with a read plate (a badge, a grille, a sticker on the same
    vehicle): seen over the same time, at the same image velocity, within a vehicle's width of the
    plate. A vehicle in the next lane is further away than that."""
    p, q = part["measures"], plate["measures"]
    t0, t1 = max(p[0].t, q[0].t), min(p[-1].t, q[-1].t)
    if t1 - t0 < 0.5 * min(p[-1].t - p[0].t, q[-1].t - q[0].t):
        return False
    vp, vq = _velocity(part), _velocity(plate)
    if np.linalg.norm(vp - vq) > 0.5 * max(np.linalg.norm(vp), np.linalg.norm(vq), 50.0):
        return False
    qt = np.array([m.t for m in q])
    qc = np.array([m.centre for m in q])
    near = [np.hypot(m.centre[0] - np.interp(m.t, qt, qc[:, 0]), m.centre[1] - np.interp(m.t, qt, qc[:, 1]))
            for m in p if t0 <= m.t <= t1]
    width = float(np.median([m.width_px for m in q]))
    return bool(near) and float(np.median(near)) <= th.vehicle_part_widths * width


def vehicles(tracks: list[dict], th: Thresholds) -> list[dict]:
    """The tracks that are vehicles' plates: seen in 3+ frames (one-off sightings are noise), plate-like,
    and not a part of a read vehicle moving with its plate. Unread plates stay: they are the misses
    the read rate must count."""
    seen = [t for t in tracks if t["frames"] >= 3] or tracks
    plates = [t for t in seen if _plate_like(t, th)]
    read = [t for t in plates if t["confidence"] >= th.plate_read_min]
    return read + [t for t in plates if t["confidence"] < th.plate_read_min
                   and not any(_moves_with(t, r, th) for r in read)]


def run_checks(ms: list[PlateMeasure], tracks: list, fps: float, th: Thresholds,
               night_share: float = 0.0) -> list[Check]:
    """`ms`: every measured region; `tracks`: the tracker's tracks with their regions' measures. The
    checks judge the regions of the tracks that are vehicles' plates (`vehicles`)."""
    out: list[Check] = []
    tracks = vehicles(tracks, th)
    ms = [m for t in tracks for m in t["measures"]] or ms
    inside = [m for m in ms if not m.at_edge]
    if (len(tracks) < 3 or not ms) and night_share > 0.5:  # nothing to judge but the dark
        return [Check("ir_night", "fail", f"{len(tracks)} vehicles seen in {night_share:.0%} night frames",
                      "IR too weak at night: plates are not visible. Raise the illuminator level, check it is aimed "
                      "at the capture point and its window is clean.")]
    if len(tracks) < 3 or not ms:
        return [Check("traffic", "fail", f"{len(tracks)} vehicles seen",
                      "Too few plates were seen to judge the installation: check the camera sees the road and "
                      "traffic is passing, then run again with more frames.")]
    # Focus
    sh = float(np.median([m.sharpness for m in inside or ms]))
    st = _grade(sh, th.sharpness_fail, th.sharpness_warn)
    out.append(Check("focus", st, f"plate edge sharpness {sh:.2f} (need >= {th.sharpness_warn:.2f})",
                     "Sharp." if st == "pass" else "Lens defocused: refocus on a plate at the capture point "
                     "(focus ring or lens controls) until edges are crisp.", {"median_sharpness": sh}))
    # Character height
    ch = np.array([m.char_height_px for m in inside or ms])
    med = float(np.median(ch))
    if med > th.char_height_max_px:
        st, adv = "warn", "Characters larger than needed: zoom out or move the capture point further to see more road."
    else:
        st = _grade(med, th.char_height_fail_px, th.char_height_warn_px)
        adv = ("Good size." if st == "pass" else
               f"Characters too small (need >= {th.char_height_warn_px:.0f} px): zoom in (longer focal length) or "
               f"move the capture point closer to the camera.")
    out.append(Check("character_height", st, f"median {med:.1f} px (p10 {np.percentile(ch, 10):.1f}, "
                     f"p90 {np.percentile(ch, 90):.1f})", adv, {"median_px": med, "values": ch.tolist()}))
    # Angle / skew
    ang = float(np.median(np.abs([m.angle_deg for m in inside or ms])))
    skew = float(np.median(np.abs([m.skew_deg for m in inside or ms])))
    worst = max(ang, skew)
    st = _grade(worst, th.angle_fail_deg, th.angle_warn_deg, higher_is_better=False)
    out.append(Check("plate_angle", st, f"rotation {ang:.1f} deg, skew {skew:.1f} deg",
                     "Level." if st == "pass" else "Plates appear rotated or skewed: level the camera (roll) and "
                     "reduce the pan angle to the lane.", {"rotation_deg": ang, "skew_deg": skew}))
    # Motion blur -> shutter
    speeds = [t["speed_px_s"] for t in tracks if t.get("speed_px_s")]
    exp_us = float(np.median([m.exposure_us for m in ms]))
    if speeds:
        v95 = float(np.percentile(speeds, 95))
        blur = v95 * exp_us * 1e-6
        max_shutter = int(1.5 / v95 * 1e6) if v95 > 0 else None
        st = _grade(blur, th.blur_fail_px, th.blur_warn_px, higher_is_better=False)
        out.append(Check("shutter", st, f"blur {blur:.1f} px at the 95th-percentile speed ({v95:.0f} px/s) with "
                         f"{exp_us:.0f} us", "Short enough." if st == "pass" else
                         f"Shutter too long for the traffic speed: set the maximum shutter to <= {max_shutter} us "
                         f"(camera.exposure_us / max_speed_kmh) and add IR or gain instead.",
                         {"blur_px": blur, "recommended_max_shutter_us": max_shutter, "p95_speed_px_s": v95}))
    # Exposure by day and by IR at night
    night_all = [m for m in ms if m.night]
    night = [m for m in inside if m.night]
    day = [m for m in inside if not m.night]
    if night_share > 0.5 and len(night) < 3:
        out.append(Check("ir_night", "fail", f"{len(night)} whole plates seen in {night_share:.0%} night frames",
                         "IR too weak at night: plates are hardly visible. Raise the illuminator level, check it is "
                         "aimed at the capture point and its window is clean.", {"night_plates": len(night_all)}))
    elif night:
        lvl = float(np.median([m.level for m in night]))
        con = float(np.median([m.contrast for m in night]))
        bad = lvl < th.night_level_fail or con < th.night_contrast_fail
        out.append(Check("ir_night", "fail" if bad else "pass", f"night plate level {lvl:.0f}, contrast {con:.0f}",
                         "IR too weak at night: raise the illuminator level, check it is aimed at the capture point "
                         "and its window is clean, or move the capture point closer." if bad else "Plates bright "
                         "under IR.", {"level": lvl, "contrast": con}))
    if day:
        sat = float(np.median([m.saturated for m in day]))
        con = float(np.median([m.contrast for m in day]))
        st = "warn" if sat > th.day_saturation_warn else "pass"
        out.append(Check("exposure_day", st, f"plate contrast {con:.0f}, saturated {sat:.0%}",
                         "Good." if st == "pass" else "Plates saturate by day: shorten the shutter or lower gain.",
                         {"contrast": con, "saturated": sat}))
    # Plates cut off by the frame edge: vehicles never fully in frame, or plates passing along a side edge
    cut = float(np.mean([t["always_at_edge"] for t in tracks]))
    width = max(m.bbox[0] + m.bbox[2] for m in ms)
    xs = np.array([m.centre[0] for m in ms])
    side = float(min(np.median(xs), width - np.median(xs)) / max(width, 1))
    st = _grade(cut, th.cut_off_fail, th.cut_off_warn, higher_is_better=False)
    if side < 0.08:
        st = "fail"
    elif side < 0.15 and st == "pass":
        st = "warn"
    out.append(Check("framing", st, f"{cut:.0%} of vehicles never fully in frame; plates pass {side:.0%} of the "
                     f"width from the side edge", "Plates pass inside the frame." if st == "pass" else
                     "Camera aimed so plates are cut off at the frame edge: re-aim (pan/tilt) so the lane's plates "
                     "pass through the middle of the image.", {"cut_off_share": cut, "side_margin": side}))
    # Read rate
    good = [t for t in tracks if t["confidence"] >= th.min_confidence]
    rate = len(good) / len(tracks)
    st = _grade(rate, th.read_rate_fail, th.read_rate_warn)
    failing = [c.name for c in out if c.status != "pass"]
    if st == "pass":
        advice = "Reading well."
    elif failing:
        advice = f"Low read rate: fix {', '.join(failing)} above first."
    else:
        advice = ("Low read rate although every check above passes: look at the worst plate patches below "
                  "(dirty or damaged plates, glare, an obstruction) and run again with more traffic.")
    out.append(Check("read_rate", st, f"{rate:.0%} of {len(tracks)} vehicles read at confidence >= "
                     f"{th.min_confidence}", advice,
                     {"rate": rate, "confidences": [t["confidence"] for t in tracks]}))
    return out


def thresholds_json(th: Thresholds) -> dict:
    return asdict(th)
