"""provision then run, on a clean state directory, against a TLS Mosquitto with a test CA."""

import os
import stat
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from typer.testing import CliRunner

from agent.cli import app
from agent.config import load
from agent.provision import CENTRAL_ACL, acl_block
from agent.service import Unit
from agent.uplink.mqtt import BrokerSettings
from sim.central import Central
from sim.local_broker import Mosquitto
from tests.support.pki import Pki

ROOT = Path(__file__).resolve().parents[1]


def sign_csr(pki: Pki, csr_path: Path, out: Path) -> Path:
    import datetime as dt

    from cryptography.x509.oid import ExtendedKeyUsageOID

    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(pki.ca_cert.subject)
            .public_key(csr.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(pki.ca_key, hashes.SHA256()))
    out.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return out


def test_provision_is_idempotent_keeps_keys_and_then_run_delivers(tmp_path):
    pki = Pki(tmp_path / "pki")
    server = pki.issue("127.0.0.1", server=True)
    central_cert = pki.issue("central")
    acl = acl_block("S7", "camZ") + "\n" + CENTRAL_ACL
    broker = Mosquitto(tmp_path / "broker", ca=pki.ca, cert=server[0], key=server[1], require_certificate=True,
                       acl=acl).start()
    etc, state = tmp_path / "etc", tmp_path / "state"
    args = ["provision", "--site", "S7", "--camera", "camZ", "--broker", broker.url, "--ca", str(pki.ca),
            "--config-dir", str(etc), "--state-dir", str(state), "--models-dir", str(ROOT / "models"),
            "--backend", "sim", "--no-systemd"]
    runner = CliRunner()
    try:
        first = runner.invoke(app, args)
        assert first.exit_code == 0, first.output
        assert "key_id" in first.output and "user S7.camZ" in first.output
        for p in (etc / "device.key", state / "keys" / "signing.pem"):
            assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
        keys_before = (etc / "device.key").read_bytes(), (state / "keys" / "signing.pem").read_bytes()
        crt = sign_csr(pki, etc / "device.csr", tmp_path / "signed.crt")
        again = runner.invoke(app, [*args, "--cert", str(crt)])
        assert again.exit_code == 0, again.output
        assert ((etc / "device.key").read_bytes(), (state / "keys" / "signing.pem").read_bytes()) == keys_before
        third = runner.invoke(app, [*args, "--cert", str(crt)])
        assert "nothing (already provisioned)" in third.output
        # register the unit's public key centrally and run it
        keys = tmp_path / "keys"
        keys.mkdir()
        (keys / "S7.camZ.pub").write_bytes((state / "keys" / "signing.pub").read_bytes())
        central = Central(BrokerSettings(broker.url, "central-p", ca_file=pki.ca, cert_file=central_cert[0],
                                         key_file=central_cert[1]), tmp_path / "central", keys=keys)
        central.start()
        cfg = load(etc / "config.toml", environ={"ANPR_EDGE_CAMERA__SIM__REALTIME": "false",
                                                  "ANPR_EDGE_CAMERA__SIM__RATE_PER_HOUR": "2500"})
        unit = Unit(cfg, etc / "config.toml", lossless=True)
        unit.start()
        end = time.monotonic() + 120
        while central.store.count() < 3 and time.monotonic() < end:
            time.sleep(0.2)
        unit.stop(drain_s=5)
        central.stop()
        assert central.store.count() >= 3 and central.counts["bad_signature"] == 0
        assert unit.uplink.stats.acked >= 3
    finally:
        broker.stop()


def test_provision_refuses_bad_inputs_and_writes_nothing(tmp_path):
    import datetime as dt

    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import NameOID

    pki = Pki(tmp_path / "pki")
    etc, state = tmp_path / "etc", tmp_path / "state"
    base = ["provision", "--config-dir", str(etc), "--state-dir", str(state), "--backend", "sim", "--no-systemd"]
    good = {"--site": "S7", "--camera": "camZ", "--broker": "mqtts://127.0.0.1:8883", "--ca": str(pki.ca)}
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("hello")
    # an Ed25519 certificate (not the unit's EC key) signed by the CA
    ed = ed25519.Ed25519PrivateKey.generate()
    now = dt.datetime.now(dt.UTC)
    ed_cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
               .issuer_name(pki.ca_cert.subject).public_key(ed.public_key()).serial_number(1)
               .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)).sign(pki.ca_key, hashes.SHA256()))
    ed_path = tmp_path / "ed.crt"
    ed_path.write_bytes(ed_cert.public_bytes(serialization.Encoding.PEM))
    cases = [({"--site": "bad site!"}, "site"), ({"--camera": "../x"}, "camera"),
             ({"--broker": "http://nowhere"}, "broker"), ({"--ca": str(not_pem)}, "not a PEM certificate"),
             ({"--ca": str(tmp_path / "missing.pem")}, "missing.pem"),
             ({"--cert": str(ed_path)}, "no TLS key yet")]
    for change, why in cases:
        args = {**good, **change}
        res = CliRunner().invoke(app, base + [x for kv in args.items() for x in kv])
        assert res.exit_code == 2, (change, res.output)
        assert why in res.output and "Traceback" not in res.output, (change, res.output)
        assert not etc.exists() and not state.exists(), change
    ok = CliRunner().invoke(app, base + [x for kv in good.items() for x in kv])
    assert ok.exit_code == 0, ok.output
    res = CliRunner().invoke(app, base + [x for kv in good.items() for x in kv] + ["--cert", str(ed_path)])
    assert res.exit_code == 2 and "was not issued for this unit's TLS key" in res.output, res.output
    assert not (etc / "device.crt").exists()
