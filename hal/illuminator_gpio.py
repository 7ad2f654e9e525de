"""IR LEDs driven by PWM on a GPIO pin through gpiozero (tests use gpiozero's MockFactory)."""

from __future__ import annotations

from hal.errors import HalError, missing_library
from hal.illuminator import IlluminatorStatus, clamp01


class GpioIlluminator:
    def __init__(self, pin: int, pin_factory=None, frequency_hz: int = 1000) -> None:
        try:
            from gpiozero import PWMOutputDevice
        except ImportError:
            raise missing_library("gpiozero", "pip install gpiozero (and on a Pi: apt install python3-lgpio)") from None
        try:
            self._dev = PWMOutputDevice(pin, frequency=frequency_hz, pin_factory=pin_factory)
        except Exception as e:  # gpiozero raises many kinds (no pin factory, pin in use, ...)
            raise HalError(f"cannot drive GPIO{pin} for the illuminator: {e}; check the pin number and that the "
                           f"service user is in the 'gpio' group") from None
        self._level = 0.0
        self._strobe = False

    def set_level(self, level: float) -> None:
        self._level = clamp01(level)
        self._apply()

    def strobe(self, enabled: bool) -> None:
        self._strobe = bool(enabled)
        self._apply()

    def _apply(self) -> None:
        # Strobing in step with the shutter needs the sensor's sync line wired to the LED driver's enable
        # input; the PWM pin sets the drive level either way, so strobe mode is recorded, not bit-banged.
        self._dev.value = self._level

    def status(self) -> IlluminatorStatus:
        return IlluminatorStatus(level=float(self._dev.value), strobe=self._strobe)

    def close(self) -> None:
        self._dev.close()
