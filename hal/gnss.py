"""GNSS over serial: NMEA 0183 GGA (position, fix quality, satellites) and RMC (UTC date/time, validity).

`parse_sentence` never raises on bad input: it returns None and the reason is logged at debug level,
so a noisy receiver cannot crash the unit.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, replace

from hal.errors import HalError, missing_library

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GnssFix:
    lat: float | None = None
    lon: float | None = None
    quality: int = 0  # GGA fix quality: 0 none, 1 GPS, 2 DGPS, 4 RTK fixed, ...
    satellites: int = 0
    utc: dt.datetime | None = None  # from RMC
    valid: bool = False  # RMC status A
    received_mono: float = 0.0  # time.monotonic() when the sentence arrived

    @property
    def has_position(self) -> bool:
        return self.lat is not None and self.lon is not None and self.quality > 0


def checksum_ok(sentence: str) -> bool:
    if not sentence.startswith("$") or "*" not in sentence:
        return False
    body, _, cs = sentence[1:].rpartition("*")
    if len(cs) != 2:
        return False
    calc = 0
    for ch in body:
        calc ^= ord(ch)
    try:
        return calc == int(cs, 16)
    except ValueError:
        return False


def _coord(value: str, hemi: str, deg_digits: int) -> float | None:
    if not value or hemi not in ("N", "S", "E", "W"):
        return None
    try:
        deg = int(value[:deg_digits])
        minutes = float(value[deg_digits:])
    except ValueError:
        return None
    if not 0 <= minutes < 60:
        return None
    v = deg + minutes / 60
    limit = 90 if deg_digits == 2 else 180
    if v > limit:
        return None
    return -v if hemi in ("S", "W") else v


def parse_sentence(line: str, fix: GnssFix | None = None) -> GnssFix | None:
    """Update `fix` from one sentence; None if the sentence is not a valid GGA/RMC."""
    fix = fix or GnssFix()
    s = line.strip()
    if not checksum_ok(s):
        log.debug("gnss: bad or missing checksum: %r", s[:80])
        return None
    fields = s[1:s.rindex("*")].split(",")
    kind = fields[0][-3:] if len(fields[0]) >= 5 else ""
    try:
        if kind == "GGA" and len(fields) >= 8:
            q = int(fields[6] or 0)
            lat = _coord(fields[2], fields[3], 2)
            lon = _coord(fields[4], fields[5], 3)
            if q and (lat is None or lon is None):
                return None
            return replace(fix, lat=lat, lon=lon, quality=q, satellites=int(fields[7] or 0),
                           received_mono=time.monotonic())
        if kind == "RMC" and len(fields) >= 10:
            t, status, d = fields[1], fields[2], fields[9]
            if len(t) < 6 or len(d) != 6:
                return None
            frac = float("0" + t[6:]) if len(t) > 6 else 0.0
            utc = dt.datetime(2000 + int(d[4:6]), int(d[2:4]), int(d[0:2]), int(t[0:2]), int(t[2:4]), int(t[4:6]),
                              int(round(frac * 1e6)) % 1_000_000, tzinfo=dt.UTC)
            return replace(fix, utc=utc, valid=status == "A", received_mono=time.monotonic())
    except (ValueError, IndexError, OverflowError) as e:
        log.debug("gnss: unparsable %s: %s", kind, e)
        return None
    return None


class SerialGnss:
    """Reads NMEA lines in a background thread and keeps the latest fix."""

    def __init__(self, port: str, baudrate: int = 9600, serial_obj=None) -> None:
        if serial_obj is None:
            try:
                import serial
            except ImportError:
                raise missing_library("pyserial", "pip install pyserial") from None
            try:
                serial_obj = serial.Serial(port, baudrate, timeout=0.5)
            except (serial.SerialException, OSError) as e:
                raise HalError(f"cannot open GNSS port {port}: {e}; check the receiver and the 'dialout' group") \
                    from None
        self._ser = serial_obj
        self._fix = GnssFix()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.bad_sentences = 0
        self._thread = threading.Thread(target=self._run, name="gnss", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                raw = self._ser.readline()
            except (OSError, ValueError) as e:
                log.warning("gnss: read failed: %s", e)
                self._stop.wait(1.0)
                continue
            if not raw:
                continue
            line = raw.decode("ascii", errors="replace")
            with self._lock:
                new = parse_sentence(line, self._fix)
                if new is None:
                    self.bad_sentences += 1
                else:
                    self._fix = new

    def fix(self) -> GnssFix:
        with self._lock:
            return self._fix

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._ser.close()
