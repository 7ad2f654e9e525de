import time

import pytest

from agent.outbox import Outbox, OutboxError


def test_bounded_by_bytes_evicts_oldest_and_counts(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite", max_bytes=1_000_000, max_age_s=3600)
    for i in range(30):
        ob.put(f"r{i:03d}", b"x" * 50_000)
    st = ob.stats()
    assert st.bytes <= 1_000_000 and st.evicted == 30 - st.depth and st.evicted >= 10
    kept = [p.read_id for p in ob.oldest(100, set())]
    assert kept == sorted(kept) and kept[-1] == "r029"  # the newest are kept


def test_bounded_by_age(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite", max_bytes=10**9, max_age_s=60)
    ob.put("old", b"a", created=time.time() - 3600)
    ob.put("new", b"b")
    st = ob.stats()
    assert [p.read_id for p in ob.oldest(10, set())] == ["new"] and st.expired == 1 and st.evicted == 0


def test_survives_reopen_and_deletes_only_on_ack(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite")
    assert ob.put("a", b"1") and not ob.put("a", b"1")  # idempotent by read_id
    ob.put("b", b"2")
    ob.close()
    ob = Outbox(tmp_path / "o.sqlite")
    assert [p.read_id for p in ob.newest(10, set())] == ["b", "a"]
    ob.mark_sent("a")
    assert ob.stats().depth == 1


def test_disk_full_is_an_error_the_caller_can_hold_on_to(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite")
    ob._db.execute("PRAGMA max_page_count=12")  # SQLITE_FULL: as on a full file system
    with pytest.raises(OutboxError, match="full"):
        for i in range(100):
            ob.put(f"r{i}", b"x" * 20_000)
    assert ob.stats().fault and ob.fault_count >= 1


def test_outbox_files_are_private(tmp_path):
    import os
    import stat

    from agent.outbox import Outbox

    state = tmp_path / "state"
    ob = Outbox(state / "outbox.sqlite")
    ob.close()
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    for p in state.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    loose = tmp_path / "loose.sqlite"
    loose.write_bytes(b"")
    os.chmod(loose, 0o644)
    Outbox(loose).close()
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600
