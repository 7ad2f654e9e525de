import json

from hypothesis import given
from hypothesis import strategies as st

from agent.commands import SAFE_FIELDS, Commands
from agent.config import from_mapping, load

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
