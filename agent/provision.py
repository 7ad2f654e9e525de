"""`anpr-edge provision`: make a unit ready for its site.

Writes the configuration, creates the device's Ed25519 signing key and its TLS key with a
certificate signing request (CN `{site}.{camera}`), prints the public key fingerprint for the
central register and the broker ACL block, and installs and enables the systemd unit when run as
root. Idempotent: running it again changes nothing; existing keys are never replaced without
`--force`. Keys are written 0600.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.config import from_mapping
from agent.signing import key_id, load_private, new_key, private_pem, public_pem

UNIT_SRC = Path(__file__).resolve().parents[1] / "systemd" / "anpr-edge.service"


@dataclass
class ProvisionResult:
    config: Path
    signing_key: Path
    signing_pub: Path
    tls_key: Path
    csr: Path
    cert: Path
    key_id: str
    fingerprint: str
    created: list[str]
    unit_installed: bool


def _write_secret(path: Path, data: bytes, force: bool) -> bool:
    """Write 0600; False if it exists and not forced (never replaced silently)."""
    if path.exists() and not force:
        os.chmod(path, 0o600)
        return False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return True


def config_text(site: str, camera: str, broker: str, ca: Path, cert: Path, key: Path, state_dir: Path,
                models_dir: Path, backend: str, username: str | None, password_file: Path | None) -> str:
    lines = [
        "# written by anpr-edge provision; see config.example.toml for every field",
        "[site]", f'id = "{site}"', "",
        "[camera]", f'id = "{camera}"', f'backend = "{backend}"', "",
        "[recogniser]", f'models_dir = "{models_dir}"', "",
        "[uplink]", f'broker = "{broker}"', f'ca_file = "{ca}"', f'cert_file = "{cert}"', f'key_file = "{key}"',
    ]
    if username:
        lines.append(f'username = "{username}"')
    if password_file:
        lines.append(f'password_file = "{password_file}"')
    lines += ["", "[storage]", f'state_dir = "{state_dir}"', ""]
    return "\n".join(lines)


def provision(site: str, camera: str, broker: str, ca: Path, *, config_dir: Path = Path("/etc/anpr-edge"),
              state_dir: Path = Path("/var/lib/anpr-edge"), models_dir: Path = Path("/opt/anpr-edge/models"),
              backend: str = "picamera2", cert: Path | None = None, username: str | None = None,
              password_file: Path | None = None, force: bool = False, systemd: bool | None = None) -> ProvisionResult:
    import tomllib

    from agent.config import ConfigError

    created: list[str] = []
    # Every input is checked before anything is written: a typo leaves no keys or CSR behind.
    cfg_path = config_dir / "config.toml"
    ca_dst, cert_dst, tls_key = config_dir / "ca.pem", config_dir / "device.crt", config_dir / "device.key"
    text = config_text(site, camera, broker, ca_dst, cert_dst, tls_key, state_dir, models_dir, backend, username,
                       password_file)
    try:
        from_mapping(tomllib.loads(text), "provision", environ={})
    except (ConfigError, tomllib.TOMLDecodeError) as e:
        raise ValueError(str(e).replace("provision: ", "")) from None
    ca_bytes = _pem_certificate(Path(ca), "--ca")
    cert_obj = None if cert is None else x509.load_pem_x509_certificate(_pem_certificate(Path(cert), "--cert"))
    if cert_obj is not None:
        if force:
            raise ValueError("--force makes a new TLS key, which --cert was not issued for: run with --force "
                             "alone, have the CA sign the new CSR, then give its certificate")
        if not tls_key.exists():
            raise ValueError(f"{cert}: this unit has no TLS key yet ({tls_key}): run provision without --cert "
                             "first, have the CA sign the CSR, then give its certificate")
        mine = serialization.load_pem_private_key(tls_key.read_bytes(), password=None).public_key()
        if not _same_key(cert_obj.public_key(), mine):
            raise ValueError(f"{cert} was not issued for this unit's TLS key ({tls_key})")
    config_dir.mkdir(parents=True, exist_ok=True)
    if not ca_dst.exists() or ca_dst.read_bytes() != ca_bytes:
        ca_dst.write_bytes(ca_bytes)
        created.append(str(ca_dst))
    # Signing key (evidence) in the state directory.
    sk_path = state_dir / "keys" / "signing.pem"
    if sk_path.exists() and not force:
        sk = load_private(sk_path)
        os.chmod(sk_path, 0o600)
    else:
        sk = new_key()
        _write_secret(sk_path, private_pem(sk), True)
        created.append(str(sk_path))
    pub_path = state_dir / "keys" / "signing.pub"
    pub = public_pem(sk.public_key())
    if not pub_path.exists() or pub_path.read_bytes() != pub:
        pub_path.write_bytes(pub)
        created.append(str(pub_path))
    # TLS key and CSR.
    if tls_key.exists() and not force:
        tk = serialization.load_pem_private_key(tls_key.read_bytes(), password=None)
        os.chmod(tls_key, 0o600)
    else:
        tk = ec.generate_private_key(ec.SECP256R1())
        _write_secret(tls_key, tk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()), True)
        created.append(str(tls_key))
    csr_path = config_dir / "device.csr"
    cn = f"{site}.{camera}"
    need_csr = True
    if csr_path.exists():
        old = x509.load_pem_x509_csr(csr_path.read_bytes())
        need_csr = not (old.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
                        and _same_key(old.public_key(), tk.public_key()))
    if need_csr:
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])).sign(tk, hashes.SHA256()))
        csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
        created.append(str(csr_path))
    if cert is not None and (not cert_dst.exists() or cert_dst.read_bytes() != Path(cert).read_bytes()):
        shutil.copyfile(cert, cert_dst)
        created.append(str(cert_dst))
    # Configuration (validated above).
    if not cfg_path.exists() or force:
        cfg_path.write_text(text, encoding="utf-8")
        created.append(str(cfg_path))
    raw = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    installed = False
    if systemd is None:
        systemd = os.geteuid() == 0 and shutil.which("systemctl") is not None and Path("/run/systemd/system").exists()
    if systemd:
        dst = Path("/etc/systemd/system/anpr-edge.service")
        shutil.copyfile(UNIT_SRC, dst)
        subprocess.run(["systemctl", "daemon-reload"], check=True)
        subprocess.run(["systemctl", "enable", "anpr-edge.service"], check=True)
        installed = True
    return ProvisionResult(cfg_path, sk_path, pub_path, tls_key, csr_path, cert_dst, key_id(sk.public_key()),
                           hashlib.sha256(raw).hexdigest(), created, installed)


def _pem_certificate(path: Path, flag: str) -> bytes:
    try:
        data = path.read_bytes()
        x509.load_pem_x509_certificate(data)
    except OSError as e:
        raise ValueError(f"{flag} {path}: {e.strerror or e}") from None
    except ValueError:
        raise ValueError(f"{flag} {path}: not a PEM certificate") from None
    return data


def _same_key(a, b) -> bool:
    """Two public keys of any type (EC, RSA, Ed25519) are the same key."""
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return a.public_bytes(*fmt) == b.public_bytes(*fmt)


def acl_block(site: str, camera: str) -> str:
    """The camera's Mosquitto ACL block: it writes only its own reads, alerts, audit lines, status,
    health and command replies, and reads only its own commands and receipts (the central alone
    writes receipts)."""
    p = f"anpr/v1/{site}/{camera}"
    return (f"user {site}.{camera}\n" + "".join(f"topic write {p}/{t}\n" for t in
                                                ("read", "alert", "audit", "status", "health", "cmd/+/reply",
                                                 "cmd/+/+/reply"))
            + f"topic read {p}/cmd/#\ntopic read {p}/receipt\n")


CENTRAL_ACL = """user central
topic read anpr/v1/+/+/read
topic read $share/central/anpr/v1/+/+/read
topic read anpr/v1/+/+/alert
topic read $share/central/anpr/v1/+/+/alert
topic read anpr/v1/+/+/audit
topic read $share/central/anpr/v1/+/+/audit
topic read anpr/v1/+/+/status
topic read anpr/v1/+/+/health
topic write anpr/v1/+/+/receipt
"""
