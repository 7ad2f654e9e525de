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
                   "/etc/systemd/system/anpr-edge.service", "systemctl daemon-reload",
                   "ln -sf /opt/x/.venv/bin/anpr-edge /usr/local/bin/anpr-edge"):
        assert needle in out, needle
    assert all(line.startswith("would run:") or not line.startswith(("apt", "useradd")) for line in out.splitlines())


def test_shell_scripts_pass_shellcheck():
    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.fail("shellcheck missing: ./scripts/test.sh installs it when run as root")
    scripts = [str(p) for p in (ROOT / "scripts").glob("*.sh")] + [str(ROOT / ".ci" / "run")]
    res = subprocess.run([exe, *scripts], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout


def test_service_unit_is_hardened():
    """The unit's exposure as systemd scores it: 3.8 before the system-call filter, the /proc and
    kernel-log protections; a regression past 2.0 fails."""
    import re

    unit = ROOT / "systemd" / "anpr-edge.service"
    text = unit.read_text()
    for line in ("SystemCallFilter=@system-service", "SystemCallArchitectures=native", "MemoryDenyWriteExecute=yes",
                 "ProtectKernelLogs=yes", "ProtectProc=invisible", "DevicePolicy=closed"):
        assert line in text
    assert shutil.which("systemd-analyze"), "systemd-analyze missing: ./scripts/test.sh installs it when run as root"
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True,
                         text=True, timeout=60).stdout
    score = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", out).group(1))
    assert score <= 2.0, out[-500:]
