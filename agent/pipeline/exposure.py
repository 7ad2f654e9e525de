"""Plate-priority exposure control: shutter, gain and IR level from the brightness of detected plates
(the scene average only when no plate is seen), with the shutter capped so that a vehicle at the
configured maximum speed blurs by at most 1.5 px.

The loop works on total exposure E = shutter x gain in the log domain, moving a share of the error
each frame. It spends E on the shutter first (up to the blur cap), then on IR (when an illuminator
is fitted and the shutter is at its cap), then on gain, and gives back in the reverse order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_BLUR_PX = 1.5
PLATE_TARGET = 165.0  # plate background level (8-bit) the loop aims for
SCENE_TARGET = 80.0  # scene mean when no plate is seen
PLATE_PX_PER_M_MOTION = 0.5  # share of a plate's pixels-per-metre that along-road motion moves it in the image


@dataclass(slots=True)
class ExposureState:
    exposure_us: int
    gain: float
    ir_level: float


@dataclass(slots=True)
class ExposureLimits:
    min_us: int = 20
    max_us: int = 20000  # also below the frame time
    max_gain: float = 16.0
    has_ir: bool = True
    max_speed_kmh: float = 130.0


class ExposureController:
    def __init__(self, start: ExposureState, limits: ExposureLimits, step: float = 0.6) -> None:
        self.state = start
        self.limits = limits
        self.step = step
        self.blur_cap_us = limits.max_us
        self.last_measure: tuple[str, float] | None = None

    def shutter_cap_for(self, plate_width_px: float) -> int:
        """Longest shutter giving <= 1.5 px blur at the maximum speed for plates of this width."""
        px_per_m = plate_width_px / 0.52 * PLATE_PX_PER_M_MOTION
        speed = self.limits.max_speed_kmh / 3.6
        return int(max(self.limits.min_us, min(self.limits.max_us, MAX_BLUR_PX / (px_per_m * speed) * 1e6)))

    def update(self, pixels: np.ndarray, plate_boxes: list[tuple[int, int, int, int]]) -> ExposureState:
        grey = pixels if pixels.ndim == 2 else pixels.mean(axis=2)
        if plate_boxes:
            levels, widths = [], []
            for x, y, w, h in plate_boxes:
                x0, y0 = max(0, x), max(0, y)
                roi = grey[y0:y + h, x0:x + w]
                if roi.size >= 16:
                    levels.append(float(np.percentile(roi, 85)))  # the plate background, not its characters
                    widths.append(w)
            if levels:
                measured, target = float(np.median(levels)), PLATE_TARGET
                self.blur_cap_us = self.shutter_cap_for(float(np.median(widths)))
                self.last_measure = ("plate", measured)
            else:
                measured, target = float(grey.mean()), SCENE_TARGET
        else:
            measured, target = float(np.mean(grey[::4, ::4])), SCENE_TARGET
            self.last_measure = ("scene", measured)
        # A saturated measurement hides how far over we are: treat it as twice the target.
        err = math.log(target / max(measured, 1.0)) if measured < 250 else -math.log(2.0)
        factor = math.exp(max(-1.4, min(1.4, self.step * err)))
        return self._spend(factor)

    def _spend(self, factor: float) -> ExposureState:
        s, lim = self.state, self.limits
        cap = min(self.blur_cap_us, lim.max_us)
        shutter, gain, ir = float(s.exposure_us), s.gain, s.ir_level
        if factor >= 1:
            need = factor
            room = cap / shutter
            use = min(need, max(room, 1.0))
            shutter *= use
            need /= use
            if need > 1.001 and lim.has_ir and ir < 1.0:
                # IR light scales the plate return roughly in proportion to the drive level
                new_ir = min(1.0, max(ir, 0.05) * need)
                need /= new_ir / max(ir, 0.05)
                ir = new_ir
            if need > 1.001:
                gain = min(lim.max_gain, gain * need)
        else:
            need = factor
            if gain > 1.0:
                use = max(need, 1.0 / gain)
                gain *= use
                need /= use
            if need < 0.999:
                shutter = max(lim.min_us, shutter * need)
        shutter = min(shutter, cap)
        self.state = ExposureState(int(round(shutter)), round(gain, 3), round(ir, 3))
        return self.state
