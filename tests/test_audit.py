"""The hash-chained audit log: it verifies as written, and any edited, removed, inserted or cut line
is found; rotation keeps the chain; shipping resumes where it stopped."""

import json

from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from agent.audit import AuditLog, verify_files, verify_lines
from agent.cli import app


def written(folder, n: int = 12, **kw) -> AuditLog:
    log = AuditLog(folder, **kw)
    for i in range(n):
        log.record("command", name=f"c{i}", ok=i % 2 == 0, request_id=None)
    return log


def lines_of(path):
    return [(path.name, i + 1, t) for i, t in enumerate(path.read_text().splitlines())]


def test_the_chain_verifies_and_survives_a_restart(tmp_path):
    log = written(tmp_path)
    again = AuditLog(tmp_path)
    again.record("start", software="x")
    res = verify_files(again.files(), tmp_path / "audit.head")
    assert res.ok and res.lines == 13 and (res.first_seq, res.last_seq) == (1, 13)
    assert again.head()["seq"] == 13 and log.head()["seq"] == 12
    for p in tmp_path.iterdir():
        assert p.stat().st_mode & 0o077 == 0


@given(index=st.integers(0, 11), field=st.sampled_from(["t", "event", "detail", "seq", "prev", "hash"]),
       value=st.one_of(st.integers(), st.text(max_size=5), st.just({"name": "forged"})))
def test_any_edited_line_is_found(tmp_path_factory, index, field, value):
    folder = tmp_path_factory.mktemp("a")
    written(folder)
    path = folder / "audit.jsonl"
    text = path.read_text().splitlines()
    d = json.loads(text[index])
    if d[field] == value:
        return
    d[field] = value
    text[index] = json.dumps(d, separators=(",", ":"))
    res = verify_lines([("audit.jsonl", i + 1, t) for i, t in enumerate(text)])
    assert not res.ok and any(f"audit.jsonl:{index + 1}" in p or f"audit.jsonl:{index + 2}" in p
                              for p in res.problems)


def test_removed_inserted_and_cut_lines_are_found(tmp_path):
    written(tmp_path)
    path = tmp_path / "audit.jsonl"
    head = tmp_path / "audit.head"
    lines = path.read_text().splitlines()
    gone = lines[:5] + lines[6:]
    res = verify_lines([("f", i, t) for i, t in enumerate(gone)])
    assert not res.ok and any("lines removed" in p for p in res.problems)
    doubled = lines[:5] + [lines[4]] + lines[5:]
    assert not verify_lines([("f", i, t) for i, t in enumerate(doubled)]).ok
    path.write_text("\n".join(lines[:-2]) + "\n")  # the end cut off: only the head shows it
    assert verify_lines(lines_of(path)).ok
    res = verify_files([path], head)
    assert not res.ok and "cut off the end" in res.problems[0]
    path.write_text("\n".join(lines[1:]) + "\n")  # the first line gone
    assert not verify_files([path], head).ok


def test_rotation_keeps_the_chain_across_files_and_bounds_the_size(tmp_path):
    log = written(tmp_path, 400, max_bytes=6000, keep=3)
    files = log.files()
    assert len(files) == 4 and files[-1].name == "audit.jsonl"
    assert sum(p.stat().st_size for p in files) <= 4 * 6000
    res = verify_files(files, tmp_path / "audit.head")
    assert res.ok and res.first_seq > 1  # the oldest are rotated away
    assert all(json.loads(p.read_text().splitlines()[0])["event"] == "rotated" for p in files)
    assert json.loads(files[-1].read_text().splitlines()[-1])["detail"]["name"] == "c399"
    assert log.stats.lost_unshipped > 0  # nobody shipped them: counted, not silent
    assert not verify_files([files[0], files[2], files[3]]).ok  # a whole file missing in the middle


def test_shipping_resumes_after_a_restart_and_rotation_counts_unshipped_losses(tmp_path):
    log = written(tmp_path, 10)
    batch = log.unshipped(4)
    assert [s for s, _ in batch] == [1, 2, 3, 4]
    log.mark_shipped(4)
    again = AuditLog(tmp_path)
    assert [s for s, _ in again.unshipped(100)] == list(range(5, 11)) and again.stats.lost_unshipped == 0


@given(st.lists(st.text(max_size=60), max_size=8))
def test_verify_never_crashes_on_garbage(lines):
    res = verify_lines([("f", i, t) for i, t in enumerate(lines)])
    assert isinstance(res.problems, list)


def test_cli_verify_exit_codes(tmp_path):
    written(tmp_path / "a")
    run = CliRunner().invoke
    ok = run(app, ["audit", "verify", str(tmp_path / "a")])
    assert ok.exit_code == 0 and "OK: 12 lines" in ok.output
    p = tmp_path / "a" / "audit.jsonl"
    p.write_text(p.read_text().replace('"name":"c3"', '"name":"c4"'))
    bad = run(app, ["audit", "verify", str(tmp_path / "a")])
    assert bad.exit_code == 1 and "line edited" in bad.output
    assert run(app, ["audit", "verify", str(tmp_path / "empty")]).exit_code == 2
