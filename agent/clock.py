"""Clock state for each read: which source the time came from, whether it is synchronised, and the
offset when known. Reads are never dropped because of clock state; the state is reported with them.

Sources, best first: GNSS (a valid RMC fix received in the last few seconds), the kernel's NTP
discipline (adjtimex: STA_UNSYNC clear), otherwise `none`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable
from dataclasses import dataclass

STA_UNSYNC = 0x0040
TIME_ERROR = 5


@dataclass(frozen=True, slots=True)
class ClockState:
    source: str  # ntp | gnss | none
    synchronised: bool
    offset_ms: float | None


class _Timex(ctypes.Structure):
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long), ("tick", ctypes.c_long),
                ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long), ("shift", ctypes.c_int),
                ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long),
                ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int),
                ("_pad", ctypes.c_int * 11)]


def kernel_ntp_state() -> tuple[bool, float | None] | None:
    """(synchronised, estimated error ms) from adjtimex(2), or None where it is unavailable."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        tx = _Timex()
        rc = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if rc < 0:
        return None
    synced = rc != TIME_ERROR and not (tx.status & STA_UNSYNC)
    return synced, (tx.esterror / 1000.0) if synced else None


class Clock:
    def __init__(self, gnss_fix: Callable[[], object] | None = None, max_fix_age_s: float = 5.0,
                 ntp: Callable[[], tuple[bool, float | None] | None] = kernel_ntp_state) -> None:
        self.gnss_fix = gnss_fix
        self.max_fix_age_s = max_fix_age_s
        self.ntp = ntp
        self._cache: tuple[float, ClockState] | None = None

    def state(self) -> ClockState:
        now = time.monotonic()
        if self._cache and now - self._cache[0] < 1.0:
            return self._cache[1]
        st = self._compute(now)
        self._cache = (now, st)
        return st

    def _compute(self, now: float) -> ClockState:
        if self.gnss_fix is not None:
            fix = self.gnss_fix()
            utc = getattr(fix, "utc", None)
            age = now - getattr(fix, "received_mono", 0.0)
            if utc is not None and getattr(fix, "valid", False) and age <= self.max_fix_age_s:
                offset = (time.time() - age - utc.timestamp()) * 1000.0
                return ClockState("gnss", abs(offset) < 1000.0, round(offset, 1))
        ntp = self.ntp()
        if ntp is not None:
            synced, err = ntp
            if synced:
                return ClockState("ntp", True, err)
            return ClockState("ntp", False, None)
        return ClockState("none", False, None)
