import contextlib
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from agent.cli import app
from agent.config import ConditionName, ConfigError, env_overrides, from_mapping, load
from sim.scene import PRESETS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config.example.toml"
MINIMAL = {"site": {"id": "S1"}, "camera": {"id": "cam1"}}


def test_example_config_is_valid_and_documented():
    cfg = load(EXAMPLE, environ={})
    assert cfg.camera.width == 1280 and cfg.camera.backend == "sim"
    text = EXAMPLE.read_text()
    # every field of every section appears in the example
    data = tomllib.loads(text)
    for section, model in cfg:
        for name in type(model).model_fields:
            assert name in data.get(section, {}) or f"# {name}" in text, f"{section}.{name} undocumented"


def test_env_overrides_nested_fields():
    cfg = load(EXAMPLE, environ={"ANPR_EDGE_CAMERA__FPS": "30", "ANPR_EDGE_UPLINK__BROKER": "mqtts://b.example:8883",
                                 "ANPR_EDGE_CAMERA__SIM__CONDITIONS": "night", "OTHER": "x"})
    assert cfg.camera.fps == 30.0
    assert cfg.uplink.broker == "mqtts://b.example:8883"
    assert cfg.camera.sim.conditions == "night"


def test_bad_values_name_field_value_and_reason():
    with pytest.raises(ConfigError) as e:
        from_mapping({"site": {"id": "S1"}, "camera": {"id": "cam1", "fps": -2, "backend": "usb"}}, environ={})
    msg = str(e.value)
    assert "camera.fps" in msg and "-2" in msg and "greater than 0" in msg
    assert "camera.backend" in msg and "'usb'" in msg


def test_unknown_field_is_refused():
    with pytest.raises(ConfigError, match=r"camera\.fsp"):
        from_mapping({**MINIMAL, "camera": {"id": "cam1", "fsp": 25}}, environ={})


def test_secrets_are_not_echoed():
    with pytest.raises(ConfigError) as e:
        from_mapping({**MINIMAL, "uplink": {"password": "hunter2"}}, environ={})
    assert "hunter2" not in str(e.value)


def test_mtls_needs_cert_and_key_together():
    with pytest.raises(ConfigError, match="cert_file and key_file"):
        from_mapping({**MINIMAL, "uplink": {"cert_file": "/x.crt"}}, environ={})


def test_condition_names_match_the_simulator():
    assert set(ConditionName.__args__) == set(PRESETS)


def test_syntax_error_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[site\nid=1")
    with pytest.raises(ConfigError, match="TOML syntax error"):
        load(bad, environ={})
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.toml", environ={})


@given(st.text(max_size=200))
def test_loader_never_crashes_on_arbitrary_text(tmp_path_factory, text):
    p = tmp_path_factory.mktemp("cfg") / "c.toml"
    p.write_text(text, encoding="utf-8")
    with contextlib.suppress(ConfigError):
        load(p, environ={})


@given(fps=st.one_of(st.floats(allow_nan=True), st.integers(), st.text(max_size=5), st.booleans()),
       width=st.one_of(st.integers(-10, 10_000), st.text(max_size=4)))
def test_loader_validates_or_explains(fps, width):
    data = {"site": {"id": "S1"}, "camera": {"id": "cam1", "fps": fps, "width": width}}
    try:
        cfg = from_mapping(data, environ={})
    except ConfigError as e:
        assert e.problems and all(loc.startswith("camera.") for loc, _, _ in e.problems)
    else:
        assert 0 < cfg.camera.fps <= 120 and 160 <= cfg.camera.width <= 8192


@given(st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=20), max_size=5))
def test_env_parsing_never_crashes(env):
    env_overrides({f"ANPR_EDGE_{k}": v for k, v in env.items()})


def test_cli_config_check(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["config", "check", str(EXAMPLE)])
    assert ok.exit_code == 0 and "OK" in ok.output
    bad = tmp_path / "bad.toml"
    bad.write_text('[site]\nid = "S1"\n[camera]\nid = "cam1"\nheight = 5\n')
    res = runner.invoke(app, ["config", "check", str(bad)])
    assert res.exit_code == 2
    assert "camera.height" in res.output and "5" in res.output


def test_cli_version_and_help_list_only_working_commands():
    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).output.startswith("anpr-edge ")
    out = runner.invoke(app, ["--help"]).output
    for cmd in ("config", "sim", "bench", "demo"):
        assert cmd in out


def test_plaintext_mqtt_to_another_machine_is_refused_unless_allowed():
    import pytest

    from agent.config import ConfigError, from_mapping

    base = {"site": {"id": "S1"}, "camera": {"id": "cam1"}}
    with pytest.raises(ConfigError, match="plaintext MQTT"):
        from_mapping({**base, "uplink": {"broker": "mqtt://10.1.2.3:1883"}}, "t", environ={})
    for ok in ({"broker": "mqtt://127.0.0.1:1883"}, {"broker": "mqtt://localhost"},
               {"broker": "mqtt://broker.example:1883", "allow_plaintext": True},
               {"broker": "mqtts://broker.example:8883"}):
        from_mapping({**base, "uplink": ok}, "t", environ={})


def test_hotlist_needs_its_keys_and_storage_max_age_parses_old_and_new_names():
    import pytest

    from agent.config import ConfigError, from_mapping

    base = {"site": {"id": "S1"}, "camera": {"id": "cam1"}}
    with pytest.raises(ConfigError, match="trust_key_file and match_key_file"):
        from_mapping({**base, "hotlist": {"enabled": True}}, environ={})
    assert from_mapping({**base, "storage": {"max_age": "36h"}}, environ={}).storage.max_age_s == 36 * 3600
    assert from_mapping({**base, "storage": {"outbox_max_age_h": 48}}, environ={}).storage.max_age_s == 48 * 3600
    for bad in ("14", "2w", "30s", "-1d"):
        with pytest.raises(ConfigError, match="max_age"):
            from_mapping({**base, "storage": {"max_age": bad}}, environ={})
