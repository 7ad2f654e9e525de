"""Installation geometry and the pinhole camera model: where a point on the road lands in the image.

World frame: x to the right across the road, y along the road away from the camera, z up; the
camera sits at (x_offset, 0, mount_height) and is aimed at the capture point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

CHAR_HEIGHT_M = 0.079
PLATE_CENTRE_HEIGHT_M = 0.5


@dataclass(frozen=True, slots=True)
class Installation:
    mount_height_m: float = 5.0
    capture_distance_m: float = 14.0  # along the road, from the pole to the capture point
    capture_x_m: float = -1.75  # lateral position of the capture point (default: centre of lane 0)
    x_offset_m: float = -0.5  # lateral position of the camera (on a gantry or pole at the verge)
    pan_deg: float | None = None  # None: aimed at the capture point
    tilt_deg: float | None = None  # None: aimed at a plate-height point over the capture point
    roll_deg: float = 0.0
    focal_length_mm: float = 12.0
    pixel_pitch_um: float = 3.0
    width: int = 1280
    height: int = 720


@dataclass(slots=True)
class CameraModel:
    inst: Installation
    f_px: float = field(init=False)
    centre: np.ndarray = field(init=False)
    R: np.ndarray = field(init=False)  # rows: right, down, forward (world -> camera)
    cx: float = field(init=False)
    cy: float = field(init=False)

    def __post_init__(self) -> None:
        i = self.inst
        self.f_px = i.focal_length_mm / (i.pixel_pitch_um * 1e-3)
        self.cx, self.cy = i.width / 2.0, i.height / 2.0
        self.centre = np.array([i.x_offset_m, 0.0, i.mount_height_m])
        dx = i.capture_x_m - i.x_offset_m
        pan = math.radians(i.pan_deg) if i.pan_deg is not None else math.atan2(dx, i.capture_distance_m)
        ground = math.hypot(dx, i.capture_distance_m)
        tilt = (math.radians(i.tilt_deg) if i.tilt_deg is not None
                else math.atan2(i.mount_height_m - PLATE_CENTRE_HEIGHT_M, ground))
        f = np.array([math.sin(pan) * math.cos(tilt), math.cos(pan) * math.cos(tilt), -math.sin(tilt)])
        r = np.array([math.cos(pan), -math.sin(pan), 0.0])
        d = np.cross(f, r)
        roll = math.radians(i.roll_deg)
        r2 = math.cos(roll) * r + math.sin(roll) * d
        d2 = -math.sin(roll) * r + math.cos(roll) * d
        self.R = np.stack([r2, d2, f])

    def to_camera(self, pts: np.ndarray) -> np.ndarray:
        return (np.asarray(pts, np.float64) - self.centre) @ self.R.T

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image coordinates (N,2) and depth (N,) of world points (N,3)."""
        c = self.to_camera(pts)
        z = c[:, 2]
        zs = np.where(z > 1e-3, z, 1e-3)
        uv = np.stack([self.cx + self.f_px * c[:, 0] / zs, self.cy + self.f_px * c[:, 1] / zs], axis=1)
        return uv, z

    def ray_to_ground(self, u: float, v: float, height: float = 0.0) -> np.ndarray | None:
        """World point at `height` seen at pixel (u, v), or None above the horizon."""
        d_cam = np.array([(u - self.cx) / self.f_px, (v - self.cy) / self.f_px, 1.0])
        d = self.R.T @ d_cam
        if d[2] >= -1e-9:
            return None
        t = (height - self.centre[2]) / d[2]
        return self.centre + t * d

    def char_height_px(self, x: float, y: float, plate_h: float = PLATE_CENTRE_HEIGHT_M) -> float:
        """Projected height of a 79 mm character on a vertical plate at (x, y)."""
        pts = np.array([[x, y, plate_h + CHAR_HEIGHT_M / 2], [x, y, plate_h - CHAR_HEIGHT_M / 2]])
        uv, _ = self.project(pts)
        return float(np.linalg.norm(uv[0] - uv[1]))

    def plate_y_range(self, plate_h: float = PLATE_CENTRE_HEIGHT_M, x: float = 0.0) -> tuple[float, float]:
        """Nearest and farthest road distance at which a plate centre is inside the frame."""
        ys = []
        for v in (self.inst.height - 1.0, 0.0):
            p = self.ray_to_ground(self.cx, v, plate_h)
            ys.append(float(p[1]) if p is not None else 200.0)
        return min(ys), max(ys)
