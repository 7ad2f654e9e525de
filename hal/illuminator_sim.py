"""The simulated illuminator: its level feeds the simulator's optics (retroreflective plates)."""

from __future__ import annotations

from hal.illuminator import IlluminatorStatus, clamp01


class SimIlluminator:
    def __init__(self, camera) -> None:  # a sim.camera.SimCamera (hal must not import sim)
        self._camera = camera
        self._strobe = False

    def set_level(self, level: float) -> None:
        self._camera.set_controls(ir_level=clamp01(level))

    def strobe(self, enabled: bool) -> None:
        self._strobe = bool(enabled)

    def status(self) -> IlluminatorStatus:
        return IlluminatorStatus(self._camera.exposure.ir_level, self._strobe)

    def close(self) -> None:
        pass
