"""The central's key register: one file mapping thousands of camera ids to their public keys."""

import pytest
from cryptography.hazmat.primitives import serialization

from agent.signing import key_id, new_key, sign
from sim.central import KeyRegistry
from sim.fleet import write_register
from sim.synthetic import ReadFactory


def _raw(pub) -> str:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def test_a_register_file_maps_each_camera_to_its_key_and_bad_lines_are_named(tmp_path):
    k1, k2 = new_key(), new_key()
    reg = tmp_path / "keys.txt"
    reg.write_text(f"# fleet\nS1.cam1 {_raw(k1.public_key())}\n\nS1.cam2 {_raw(k2.public_key())}\n")
    keys = KeyRegistry(reg)
    assert key_id(keys.get("S1", "cam1")) == key_id(k1.public_key())
    assert key_id(keys.get("S1", "cam2")) == key_id(k2.public_key()) and keys.get("S1", "cam3") is None
    reg.write_text(f"S1.cam1 {_raw(k1.public_key())}\nS1.cam2 nothex\n")
    with pytest.raises(ValueError, match=r"keys\.txt:2"):
        KeyRegistry(reg)


def test_a_read_verifies_only_against_its_own_cameras_key(tmp_path):
    from agent.signing import VerifyError, verify

    write_register(tmp_path, 3, seed=5)
    keys = KeyRegistry(tmp_path / "keys.txt")
    other = new_key()
    read = ReadFactory("F000", "cam01", other, pool=1).read(0)
    with pytest.raises(VerifyError, match="signed with key"):
        verify(read.to_json_bytes(), keys.get("F000", "cam01"))
    assert verify(sign(read.model_copy(update={"signature": None}), other).to_json_bytes(), other.public_key())
