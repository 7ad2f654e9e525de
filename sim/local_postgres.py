"""A throw-away PostgreSQL cluster on a free loopback port (Debian's server binaries): for the tests
and `anpr-edge bench fleet --db local`, as `local_broker` is for Mosquitto."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

from sim.local_broker import free_port


def server_bin() -> Path | None:
    """The newest installed server's bin folder (package postgresql), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    exe = shutil.which("initdb")
    return Path(exe).parent if exe else None


class Postgres:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.bin = server_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed: run ./scripts/test.sh as root, or "
                               "apt-get install postgresql")
        self.port = free_port()
        self.data = self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgresql://anpr@127.0.0.1:{self.port}/anpr"

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:  # the server refuses to run as root: run it as the package's user
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    def start(self) -> Postgres:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        if not self.data.exists():
            r = self._run("initdb", "-D", str(self.data), "-U", "anpr", "-A", "trust", "--no-sync", "-E", "UTF8")
            if r.returncode:
                raise RuntimeError(f"initdb failed: {r.stderr[-1500:]}")
        opts = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        r = self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.folder / "server.log"), "-w", "start")
        if r.returncode:
            log = (self.folder / "server.log").read_text(errors="replace")[-1500:] if (
                self.folder / "server.log").exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {r.stderr[-800:]} {log}")
        r = self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "anpr", "anpr")
        if r.returncode and "already exists" not in r.stderr:
            raise RuntimeError(f"createdb failed: {r.stderr[-800:]}")
        return self

    def stop(self) -> None:
        if self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
