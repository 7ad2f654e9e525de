"""An RS-485/RS-232 illuminator through pyserial, with a line protocol (docs/illuminator-protocol.md).

Commands end in CR LF; the illuminator answers one line each:
    LEVEL <0-100>     -> OK LEVEL <0-100>
    STROBE ON|OFF     -> OK STROBE ON|OFF
    STATUS?           -> STATUS LEVEL <0-100> STROBE ON|OFF TEMP <deg C> FAULT <NONE|word>
    anything else     -> ERR <reason>
No answer within the timeout, or an answer that does not fit, is an error (retried once).
"""

from __future__ import annotations

import logging
import re
import threading

from hal.errors import HalError, missing_library
from hal.illuminator import IlluminatorStatus, clamp01

log = logging.getLogger(__name__)
_STATUS = re.compile(r"^STATUS LEVEL (\d{1,3}) STROBE (ON|OFF) TEMP (-?\d{1,3}(?:\.\d)?) FAULT ([A-Z_]+)$")


class IlluminatorError(HalError):
    pass


class SerialIlluminator:
    def __init__(self, port: str, baudrate: int = 9600, timeout_s: float = 0.5, serial_obj=None) -> None:
        if serial_obj is None:
            try:
                import serial
            except ImportError:
                raise missing_library("pyserial", "pip install pyserial") from None
            try:
                serial_obj = serial.Serial(port, baudrate, timeout=timeout_s, write_timeout=timeout_s)
            except (serial.SerialException, OSError) as e:
                raise HalError(f"cannot open illuminator port {port}: {e}; check the cable and that the service "
                               f"user is in the 'dialout' group") from None
        self._ser = serial_obj
        self._lock = threading.Lock()
        self._level = 0.0
        self._strobe = False
        self._fault: str | None = None

    def _ask(self, cmd: str, expect: re.Pattern[str] | str) -> str:
        with self._lock:
            last = "no reply"
            for _attempt in range(2):
                self._ser.reset_input_buffer()
                self._ser.write((cmd + "\r\n").encode("ascii"))
                self._ser.flush()
                raw = self._ser.readline()
                line = raw.decode("ascii", errors="replace").strip()
                if not raw.endswith(b"\n"):
                    last = f"timeout waiting for a reply to {cmd!r}" + (f" (partial {line!r})" if line else "")
                    continue
                ok = expect.match(line) if isinstance(expect, re.Pattern) else line == expect
                if ok:
                    return line
                last = f"unexpected reply {line[:60]!r} to {cmd!r}"
            self._fault = last
            log.warning("illuminator: %s", last)
            raise IlluminatorError(last)

    def set_level(self, level: float) -> None:
        pct = round(clamp01(level) * 100)
        self._ask(f"LEVEL {pct}", f"OK LEVEL {pct}")
        self._level = pct / 100
        self._fault = None

    def strobe(self, enabled: bool) -> None:
        word = "ON" if enabled else "OFF"
        self._ask(f"STROBE {word}", f"OK STROBE {word}")
        self._strobe = bool(enabled)

    def status(self) -> IlluminatorStatus:
        try:
            line = self._ask("STATUS?", _STATUS)
        except IlluminatorError as e:
            return IlluminatorStatus(self._level, self._strobe, ok=False, fault=str(e))
        m = _STATUS.match(line)
        assert m is not None
        fault = None if m.group(4) == "NONE" else m.group(4)
        return IlluminatorStatus(int(m.group(1)) / 100, m.group(2) == "ON", ok=fault is None, fault=fault,
                                 temperature_c=float(m.group(3)))

    def close(self) -> None:
        self._ser.close()
