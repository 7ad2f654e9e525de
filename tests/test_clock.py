import datetime as dt
import time

from agent.clock import Clock, kernel_ntp_state
from hal.gnss import GnssFix


def test_gnss_fix_is_the_preferred_source_with_its_offset():
    now = time.time()
    fix = GnssFix(lat=51.5, lon=-0.1, quality=1, satellites=8, valid=True,
                  utc=dt.datetime.fromtimestamp(now - 0.25, dt.UTC), received_mono=time.monotonic())
    st = Clock(lambda: fix, ntp=lambda: (True, 3.0)).state()
    assert st.source == "gnss" and st.synchronised and 150 < st.offset_ms < 400


def test_stale_or_invalid_gnss_falls_back_to_ntp_then_none():
    stale = GnssFix(valid=True, utc=dt.datetime.now(dt.UTC), received_mono=time.monotonic() - 60)
    assert Clock(lambda: stale, ntp=lambda: (True, 2.0)).state().source == "ntp"
    assert Clock(lambda: GnssFix(), ntp=lambda: (False, None)).state() == Clock(ntp=lambda: (False, None)).state()
    st = Clock(ntp=lambda: (False, None)).state()
    assert st.source == "ntp" and not st.synchronised
    assert Clock(ntp=lambda: None).state().source == "none"


def test_kernel_ntp_state_answers_on_linux():
    st = kernel_ntp_state()
    assert st is None or isinstance(st[0], bool)
