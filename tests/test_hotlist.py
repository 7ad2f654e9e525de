"""Hotlists on the unit: signed, versioned updates held as keyed hashes; exact and confusable matches;
expiry; every refusal leaves the list in force."""

import datetime as dt
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from agent.cli import app
from agent.hotlist import (
    KEY_FILES,
    Hotlist,
    HotlistError,
    build,
    entries_from_csv,
    keygen,
    match_key_from_secret,
    parse_update,
    read_key_file,
    sign_update,
    variants,
)
from agent.signing import load_private, load_public, new_key

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
ROWS = "vrm,list,reason,priority,action\nAB12CDE,stolen,S1,1,stop\nXY51 ABC,no_insurance,I2,3,\nM4NNY,wanted,W9,2,\n"


class Deployment:
    def __init__(self, folder):
        self.paths = keygen(folder)
        self.secret = read_key_file(self.paths["secret"])
        self.signer = load_private(self.paths["signing"])
        self.trust = load_public(self.paths["trust"])
        self.match = read_key_file(self.paths["match"])

    def lists(self, rows: str, version: int, base: bytes | None = None, now=NOW):
        entries = entries_from_csv(rows, self.secret, now)
        return build(entries, self.secret, self.signer, version, parse_update(base, None) if base else None, now)

    def unit(self, store, clock=lambda: NOW.timestamp(), **kw) -> Hotlist:
        return Hotlist(store, self.trust, self.match, clock=clock, **kw)


@pytest.fixture
def dep(tmp_path):
    return Deployment(tmp_path / "keys")


def test_keys_are_private_and_the_unit_gets_only_the_match_key(dep):
    for k in ("secret", "match", "signing"):
        assert dep.paths[k].stat().st_mode & 0o077 == 0
    assert dep.match == match_key_from_secret(dep.secret) and dep.match != dep.secret
    with pytest.raises(HotlistError, match="not overwriting"):
        keygen(dep.paths["secret"].parent)


def test_a_signed_list_matches_exact_and_confusable_reads_and_survives_a_restart(dep, tmp_path):
    full, _ = dep.lists(ROWS, 10)
    events = []
    hl = dep.unit(tmp_path / "hl.jsonl", on_event=lambda e, **d: events.append((e, d)))
    r = hl.apply(full)
    assert r["version"] == 10 and r["entries"] == 3 and events[-1][0] == "hotlist_update"
    [m] = hl.match("AB12CDE")
    assert (m.list, m.reason, m.priority, m.fuzzy, m.version) == ("stolen", "S1", 1, False, 10)
    [f] = hl.match("A812CDE")  # 8 read for B
    assert f.fuzzy and f.list == "stolen"
    assert hl.match("XY51ABC")[0].list == "no_insurance"
    assert hl.match("XYS1ABC")[0].fuzzy  # 5/S
    assert hl.match("AB12CDF") == [] and hl.match("") == []
    assert dep.unit(tmp_path / "hl.jsonl", fuzzy=False).match("A812CDE") == []
    again = dep.unit(tmp_path / "hl.jsonl")
    assert again.stats.version == 10 and again.match("M4NNY")[0].list == "wanted"
    text = (tmp_path / "hl.jsonl").read_bytes() + full
    for vrm in (b"AB12CDE", b"XY51ABC", b"M4NNY"):
        assert vrm not in text  # hashes and sealed VRMs only


def test_a_delta_adds_replaces_and_removes_on_top_of_its_base(dep, tmp_path):
    full, _ = dep.lists(ROWS, 10)
    rows2 = "vrm,list,reason,priority\nAB12CDE,stolen,S1,1\nNEW1X,wanted,W1,2\nM4NNY,investigation,V3,4\n"
    _, delta = dep.lists(rows2, 11, base=full)
    hl = dep.unit(tmp_path / "hl.jsonl")
    hl.apply(full)
    r = hl.apply(delta)
    assert r["version"] == 11 and r["removed"] == 1 and r["entries"] == 3
    assert hl.match("XY51ABC") == [] and hl.match("NEW1X")[0].list == "wanted"
    assert hl.match("M4NNY")[0].list == "investigation"
    reopened = dep.unit(tmp_path / "hl.jsonl")  # the full list and the delta, re-verified on load
    assert reopened.stats.version == 11 and reopened.match("NEW1X")
    other = dep.unit(tmp_path / "other.jsonl")
    with pytest.raises(HotlistError, match="delta for version 10, but 0 is in force"):
        other.apply(delta)


def _tamper(payload: bytes, change) -> bytes:
    doc = json.loads(payload)
    change(doc)
    return json.dumps(doc).encode()


def test_bad_updates_are_refused_with_a_reason_and_the_old_list_stays(dep, tmp_path):
    full, _ = dep.lists(ROWS, 10)
    newer, _ = dep.lists("vrm,list,reason,priority\nQQ11QQQ,stolen,S1,1\n", 12)
    hl = dep.unit(tmp_path / "hl.jsonl")
    hl.apply(full)
    stranger = Deployment(tmp_path / "other")
    foreign, _ = stranger.lists("vrm,list,reason,priority\nQQ11QQQ,stolen,S1,1\n", 20)
    other_signer = sign_update(parse_update(newer, None), new_key())

    def entry_priority(d):
        d["entries"][0]["priority"] = 9

    cases = {
        "tampered": (_tamper(newer, entry_priority), "bad signature"),
        "unsigned": (_tamper(newer, lambda d: d.pop("signature")), "unsigned"),
        "other signer": (other_signer, "not the trusted"),
        "other deployment": (sign_update(parse_update(foreign, None), dep.signer), "made for match key"),
        "replayed": (full, "stale update: version 10"),
        "malformed": (_tamper(newer, lambda d: d["entries"][0].pop("h")), "malformed update: entries.0.h"),
        "not json": (b"{nope", "not JSON"),
        "nan": (newer.replace(b'"priority":1', b'"priority":NaN'), "not JSON"),
        "deep": (b"[" * 100_000 + b"]" * 100_000, "not"),
    }
    for name, (payload, why) in cases.items():
        with pytest.raises(HotlistError, match=why):
            hl.apply(payload)
        assert hl.stats.version == 10 and hl.match("AB12CDE"), name
    assert hl.stats.updates_refused == len(cases)
    assert dep.unit(tmp_path / "hl.jsonl").stats.version == 10  # nothing refused reached the store
    assert hl.apply(newer)["version"] == 12 and hl.match("QQ11QQQ") and not hl.match("AB12CDE")


def test_an_entry_past_its_expiry_never_matches_and_is_counted(dep, tmp_path):
    old = NOW - dt.timedelta(days=30)  # reviewed 30 days ago: expired 2 days ago
    rows = f"vrm,list,reason,priority,added,reviewed\nAB12CDE,stolen,S1,1,{old.isoformat()},{old.isoformat()}\n" \
           "XY51ABC,wanted,W1,2,,\n"
    full, _ = dep.lists(rows, 5)
    t = [NOW.timestamp()]
    hl = dep.unit(tmp_path / "hl.jsonl", clock=lambda: t[0])
    hl.apply(full)
    assert hl.match("AB12CDE") == [] and hl.match("A812CDE") == []
    assert hl.stats.expired_not_matched == 2
    h = hl.health()
    assert h["entries"] == 2 and h["active"] == 1 and h["expired"] == 1
    assert hl.match("XY51ABC")
    t[0] += 29 * 86400  # the other one's 28 days are up too
    assert hl.match("XY51ABC") == [] and hl.health()["active"] == 0


def test_the_review_rule_and_bad_rows_are_refused_at_build(dep):
    late = (NOW + dt.timedelta(days=29)).isoformat()
    with pytest.raises(HotlistError, match=r"line 2: .*28 days after its last review"):
        entries_from_csv(f"vrm,list,reason,priority,expires\nAB12CDE,stolen,S1,1,{late}\n", dep.secret, NOW)
    with pytest.raises(HotlistError, match="line 3: not a VRM"):
        entries_from_csv("vrm,list,reason,priority\nAB12CDE,stolen,S1,1\n!!,stolen,S1,1\n", dep.secret, NOW)
    with pytest.raises(HotlistError, match="listed twice"):
        entries_from_csv("vrm,list,reason,priority\nAB12CDE,a,S1,1\nab12 cde,b,S1,1\n", dep.secret, NOW)
    with pytest.raises(HotlistError, match="missing priority"):
        entries_from_csv("vrm,list,reason\nAB12CDE,a,S1\n", dep.secret, NOW)


@given(st.binary(max_size=400))
def test_parse_update_refuses_any_bytes_with_hotlist_error(data):
    try:
        parse_update(data, None)
    except HotlistError as e:
        assert str(e)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                    max_leaves=12)


@given(doc=st.fixed_dictionaries({"schema": st.just("anpr.hotlist.v1"), "kind": st.sampled_from(["full", "delta"])},
                                 optional={"version": JSON, "issued_at": JSON, "match_key_id": JSON, "entries": JSON,
                                           "remove": JSON, "base_version": JSON, "signature": JSON}))
def test_parse_update_refuses_malformed_documents(doc):
    with pytest.raises(HotlistError):
        parse_update(json.dumps(doc).encode(), None)


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    d = Deployment(tmp_path_factory.mktemp("k"))
    full, _ = d.lists(ROWS, 3)
    return d, full


def _leaves(doc, path=()):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _leaves(v, (*path, i))
    else:
        yield path


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_change_to_a_signed_list_is_refused(signed, data):
    d, full = signed
    doc = json.loads(full)
    paths = [p for p in _leaves(doc) if p[0] != "signature"]
    path = data.draw(st.sampled_from(paths))
    node = doc
    for k in path[:-1]:
        node = node[k]
    old = node[path[-1]]
    new = data.draw(st.one_of(st.integers(), st.text(max_size=10), st.booleans()).filter(lambda v: v != old))
    node[path[-1]] = new
    with pytest.raises(HotlistError):
        parse_update(json.dumps(doc).encode(), d.trust)


@given(st.text(max_size=300))
def test_csv_parser_refuses_or_builds(text):
    try:
        entries = entries_from_csv(text, b"k" * 32, NOW)
    except HotlistError as e:
        assert str(e)
    else:
        assert all(len(e.h) == 64 for e in entries)


@given(st.text(alphabet="AB0O1I5S8Z2CDE", min_size=1, max_size=12))
def test_variants_swap_only_confusable_characters(vrm):
    vs = list(variants(vrm))
    assert vrm not in vs and len(vs) == len(set(vs)) <= 255
    for v in vs:
        assert len(v) == len(vrm)
        assert all(a == b or {a, b} in ({"0", "O"}, {"1", "I"}, {"5", "S"}, {"8", "B"}, {"2", "Z"})
                   for a, b in zip(v, vrm, strict=True))


def test_cli_build_and_show_never_print_a_vrm_unless_revealed(tmp_path):
    run = CliRunner().invoke
    keys = tmp_path / "k"
    assert run(app, ["hotlist", "keygen", "--out", str(keys)]).exit_code == 0
    (tmp_path / "l.csv").write_text(ROWS)
    out = tmp_path / "list.json"
    r = run(app, ["hotlist", "build", str(tmp_path / "l.csv"), "--key", str(keys / KEY_FILES["secret"]),
                  "--sign", str(keys / KEY_FILES["signing"]), "--out", str(out), "--version", "7"])
    assert r.exit_code == 0, r.output
    shown = run(app, ["hotlist", "show", str(out), "--trust", str(keys / KEY_FILES["trust"])])
    assert shown.exit_code == 0 and '"signature": "verified"' in shown.output and '"entries": 3' in shown.output
    for vrm in ("AB12CDE", "XY51ABC", "M4NNY"):
        assert vrm not in out.read_text() and vrm not in shown.output + r.output
    revealed = run(app, ["hotlist", "show", str(out), "--reveal", "--key", str(keys / KEY_FILES["secret"])])
    assert revealed.exit_code == 0 and "AB12CDE" in revealed.output and "M4NNY" in revealed.output
    assert run(app, ["hotlist", "show", str(out), "--reveal"]).exit_code == 2
    wrong = Deployment(tmp_path / "w")
    assert run(app, ["hotlist", "show", str(out), "--trust", str(wrong.paths["trust"])]).exit_code == 1
    bad = run(app, ["hotlist", "build", str(tmp_path / "l.csv"), "--key", str(tmp_path / "l.csv"),
                    "--sign", str(keys / KEY_FILES["signing"]), "--out", str(tmp_path / "x.json")])
    assert bad.exit_code == 2 and "not a hotlist key file" in bad.output
