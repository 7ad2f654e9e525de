"""The IR illuminator interface; backends: gpio (gpiozero PWM), serial (pyserial), sim."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class IlluminatorStatus:
    level: float
    strobe: bool
    ok: bool = True
    fault: str | None = None
    temperature_c: float | None = None


@runtime_checkable
class Illuminator(Protocol):
    def set_level(self, level: float) -> None:
        """0 (off) .. 1 (full); values outside are clamped."""
        ...

    def strobe(self, enabled: bool) -> None: ...

    def status(self) -> IlluminatorStatus: ...

    def close(self) -> None: ...


def clamp01(x: float) -> float:
    x = float(x)
    if x != x:  # NaN
        return 0.0
    return min(1.0, max(0.0, x))
