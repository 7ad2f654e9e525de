import json

from hypothesis import given
from hypothesis import strategies as st

from agent.config import from_mapping, load
from agent.uplink.commands import SAFE_FIELDS, Commands

CFG = {"site": {"id": "S1"}, "camera": {"id": "cam1"}}


def cmds(tmp_path=None):
    return Commands(from_mapping(CFG, environ={}))


@given(name=st.text(max_size=40), payload=st.binary(max_size=300))
def test_fuzzed_commands_never_raise_and_always_answer(name, payload):
    reply = cmds()(name, payload)
    assert isinstance(reply["ok"], bool)
    json.dumps(reply)  # the reply is publishable
    if not reply["ok"]:
        assert reply["error"]


@given(values=st.dictionaries(st.sampled_from([*SAFE_FIELDS, "uplink.broker", "site.id"]),
                              st.one_of(st.floats(allow_nan=True), st.integers(), st.text(max_size=10), st.none(),
                                        st.lists(st.integers(), max_size=3)), max_size=4))
def test_config_set_validates_everything(values):
    c = cmds()
    before = c.safe_view()
    reply = c("config/set", json.dumps({"values": values}, allow_nan=True).encode())
    if reply["ok"]:
        assert all(k in SAFE_FIELDS for k in values)
    else:
        assert c.safe_view() == before  # nothing half-applied


def test_config_set_persists_and_applies(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[site]\nid = "S1"\nname = "A1 north"\n[camera]\nid = "cam1"\nfps = 30.0\n')
    seen = []
    c = Commands(load(path, environ={}), path, on_change=seen.append)
    r = c("config/set", b'{"values": {"uplink.backlog_rate": 50, "logging.level": "DEBUG"}, "request_id": "x"}')
    assert r["ok"] and r["request_id"] == "x"
    cfg = load(path, environ={})
    assert cfg.uplink.backlog_rate == 50 and cfg.logging.level == "DEBUG" and cfg.camera.fps == 30.0
    assert cfg.site.name == "A1 north" and seen and seen[0].uplink.backlog_rate == 50


def test_unknown_and_unsafe_commands_are_named():
    c = cmds()
    assert "unknown command 'reboot-now'" in c("reboot-now", b"")["error"]
    assert "not changeable remotely: uplink.broker" in c("config/set", b'{"values": {"uplink.broker": "x"}}')["error"]
    assert not c("snapshot", b"")["ok"]
    assert c("ping", b"")["ok"]


def test_non_finite_and_loose_values_are_refused_and_nothing_written(tmp_path, caplog):
    path = tmp_path / "c.toml"
    path.write_text('[site]\nid = "S1"\n[camera]\nid = "cam1"\n')
    before = path.read_text()
    c = Commands(load(path, environ={}), path)
    for body in (b'{"values": {"uplink.backlog_rate": Infinity}}', b'{"values": {"uplink.backlog_rate": 1e999}}',
                 b'{"values": {"recogniser.min_confidence": NaN}}', b'{"values": {"recogniser.min_confidence": "0.5"}}',
                 b'{"values": {"recogniser.min_confidence": true}}',
                 b'{"values": {"evidence.privacy_masks": [[[0, 0], [1, NaN], [1, 1]]]}}'):
        with caplog.at_level("INFO", logger="anpr_edge.audit"):
            caplog.clear()
            r = c("config/set", body)
        assert not r["ok"], body
        assert any("ok=False" in m for m in caplog.messages), body
    assert path.read_text() == before and not (tmp_path / "c.toml.prev").exists()
    assert c("config/set", b'{"values": {"recogniser.min_confidence": 1}}')["ok"]  # an int is a number
    assert load(path, environ={}).recogniser.min_confidence == 1.0
    assert (tmp_path / "c.toml.prev").read_text() == before


def test_deeply_nested_payloads_are_refused_and_audited(caplog):
    c = cmds()
    with caplog.at_level("INFO", logger="anpr_edge.audit"):
        r = c("config/set", b'{"values": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    assert not r["ok"] and "nested" in r["error"]
    assert any("config/set" in m and "ok=False" in m for m in caplog.messages)
    assert "nested" not in c("ping", b'{"request_id": "a", "issued_at": null}').get("error", "")


def test_retained_stale_and_replayed_commands_are_refused():
    import time

    restarts = []
    c = Commands(from_mapping(CFG, environ={}), restart=lambda: restarts.append(1))
    fresh = json.dumps({"request_id": "r1", "issued_at": time.time()}).encode()
    assert "retained" in c("restart", fresh, retained=True)["error"]
    assert "needs a request_id" in c("restart", b"")["error"]
    assert "stale" in c("restart", json.dumps({"request_id": "r2", "issued_at": time.time() - 3600}).encode())["error"]
    assert restarts == []
    assert c("restart", fresh)["ok"] and restarts == [1]
    assert "replayed" in c("restart", fresh)["error"] and restarts == [1]
