import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_systemd_unit_is_accepted_by_systemd_analyze(tmp_path):
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.fail("systemd-analyze missing: ./scripts/test.sh installs systemd when run as root")
    unit = (ROOT / "systemd" / "anpr-edge.service").read_text()
    for key in ("Type=notify", "WatchdogSec=", "Restart=always", "StateDirectory=anpr-edge", "ProtectSystem=strict",
                "NoNewPrivileges=yes", "SupplementaryGroups=video gpio dialout"):
        assert key in unit
    # verify needs the ExecStart binary to exist: point it at this checkout's entry point
    entry = Path(sys.executable).with_name("anpr-edge")
    (tmp_path / "anpr-edge.service").write_text(unit.replace("/opt/anpr-edge/.venv/bin/anpr-edge", str(entry)))
    res = subprocess.run([exe, "verify", str(tmp_path / "anpr-edge.service")], capture_output=True, text=True,
                         env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    problems = [ln for ln in (res.stdout + res.stderr).splitlines() if "anpr-edge.service" in ln]
    assert res.returncode == 0 and not problems, res.stdout + res.stderr
