"""The camera interface every backend implements (simulator, picamera2, OpenCV)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(slots=True)
class Frame:
    """One captured image with the exposure it was taken with, so exposure control can close the loop."""

    pixels: np.ndarray  # HxW (mono) or HxWx3 (BGR), uint8
    seq: int
    mono_time: float  # time.monotonic() seconds at capture
    utc_time: float  # POSIX seconds (UTC) at capture
    exposure_us: int
    gain: float
    ir_level: float
    camera_id: str
    truth: Any = None  # simulator ground truth; None for real cameras

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


@dataclass(frozen=True, slots=True)
class CameraCapabilities:
    width: int
    height: int
    fps: float
    colour: bool
    exposure_us_range: tuple[int, int] = (20, 33_000)
    gain_range: tuple[float, float] = (1.0, 16.0)
    controls: frozenset[str] = field(default_factory=lambda: frozenset({"exposure_us", "gain"}))


@runtime_checkable
class Camera(Protocol):
    @property
    def capabilities(self) -> CameraCapabilities: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def frames(self) -> Iterator[Frame]: ...

    def set_controls(self, *, exposure_us: int | None = None, gain: float | None = None, **extra: float) -> None:
        """Apply at the next frame; values outside `capabilities` are clamped, never an error."""
        ...
