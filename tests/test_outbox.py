import json
import time

import pytest

from agent.uplink.outbox import Outbox, OutboxError


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

    from agent.uplink.outbox import Outbox

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


def _doc(n: int) -> bytes:
    return json.dumps({"n": n, "plate_patch": {"jpeg_b64": "QUJD" * 100, "sha256": "x"},
                       "overview": {"jpeg_b64": "REVG" * 1000, "sha256": "y"}}).encode()


def test_images_go_at_puback_the_document_at_the_receipt_and_each_deletion_is_reported(tmp_path):
    gone = []
    ob = Outbox(tmp_path / "o.sqlite", receipts=True, on_delete=lambda why, ids: gone.append((why, ids)))
    ob.put("a", _doc(1))
    ob.put("b", _doc(2))
    before = ob.stats().bytes
    ob.mark_sent("a")
    kept = json.loads(ob._db.execute("SELECT payload FROM reads WHERE read_id='a'").fetchone()[0])
    assert kept["plate_patch"]["jpeg_b64"] == "" and kept["overview"]["sha256"] == "y" and kept["n"] == 1
    st = ob.stats()
    assert st.images_deleted == 1 and st.bytes < before - 4000 and st.depth == 2
    assert ob.confirm(["a"]) == 1 and gone == [("delivered", ["a"])] and ob.stats().deleted == 1
    keep = Outbox(tmp_path / "k.sqlite", receipts=True, images_until="receipt")
    keep.put("a", _doc(1))
    keep.mark_sent("a")
    assert json.loads(keep._db.execute("SELECT payload FROM reads").fetchone()[0])["overview"]["jpeg_b64"]


def test_nothing_outlives_max_age_even_with_no_new_reads(tmp_path):
    gone = []
    ob = Outbox(tmp_path / "o.sqlite", max_age_s=60, on_delete=lambda why, ids: gone.append((why, ids)))
    ob.put("old", _doc(1), alert=("al-1", b"{}"))
    ob._db.execute("UPDATE reads SET created = created - 3600")
    ob._db.execute("UPDATE alerts SET created = created - 3600")
    assert ob.stats().alerts_pending == 1
    ob.enforce()
    st = ob.stats()
    assert st.depth == 0 and st.expired == 1 and st.alerts_pending == 0 and gone == [("expired", ["old"])]


def test_an_alert_is_committed_with_its_read_and_deleted_at_its_puback(tmp_path):
    ob = Outbox(tmp_path / "o.sqlite")
    assert ob.put("r1", b"{}", alert=("al-1", b'{"a":1}'))
    assert not ob.put("r1", b"{}", alert=("al-1", b'{"a":1}'))  # a retried commit adds neither twice
    assert [a.read_id for a in ob.alerts_due(10, set())] == ["al-1"] and ob.alerts_due(10, {"al-1"}) == []
    ob.alert_sent("al-1")
    assert ob.alerts_due(10, set()) == [] and ob.stats().depth == 1


def test_acks_of_one_pass_are_stored_in_one_transaction_all_or_nothing(tmp_path):
    gone: list[tuple[str, list[str]]] = []
    ob = Outbox(tmp_path / "o.sqlite", on_delete=lambda why, ids: gone.append((why, ids)))
    for k in "abcd":
        ob.put(k, k.encode() * 100)
    ob.mark_sent("a", "b", "not-here")
    st = ob.stats()
    assert (st.depth, st.bytes, st.deleted) == (2, 200, 2) and gone == [("delivered", ["a", "b"])]
    # a failure part-way leaves every read of the batch stored, the counts true, and the reads held back
    ob._db.execute("CREATE TRIGGER no_d BEFORE DELETE ON reads WHEN old.read_id = 'd' "
                   "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
    ob.mark_sent("c", "d")
    st = ob.stats()
    assert (st.depth, st.bytes, st.deleted) == (2, 200, 2) and st.fault and len(gone) == 1
    assert ob.newest(10, set()) == []  # held back: no re-send storm
    ob._db.execute("DROP TRIGGER no_d")
    ob.mark_sent("c", "d")
    assert ob.stats().depth == 0 and gone[-1] == ("delivered", ["c", "d"])
