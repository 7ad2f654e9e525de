import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_install_pi_dry_run_prints_every_action():
    res = subprocess.run(["bash", str(ROOT / "scripts" / "install-pi.sh"), "--dry-run", "--prefix", "/opt/x"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    for needle in ("apt-get install", "python3-picamera2", "useradd", "usermod -a -G video", "usermod -a -G gpio",
                   "usermod -a -G dialout", "venv --system-site-packages /opt/x/.venv",
                   "/etc/systemd/system/anpr-edge.service", "systemctl daemon-reload"):
        assert needle in out, needle
    assert all(line.startswith("would run:") or not line.startswith(("apt", "useradd")) for line in out.splitlines())


def test_shell_scripts_pass_shellcheck():
    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.fail("shellcheck missing: ./scripts/test.sh installs it when run as root")
    scripts = [str(p) for p in (ROOT / "scripts").glob("*.sh")] + [str(ROOT / ".ci" / "run")]
    res = subprocess.run([exe, *scripts], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout
