"""A local Mosquitto on a free loopback port: for the demo, the benchmarks and the tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_path() -> str:
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if exe is None:
        raise RuntimeError("mosquitto is not installed: run ./scripts/test.sh as root, or apt-get install mosquitto")
    return exe


class Mosquitto:
    def __init__(self, folder: Path, *, ca: Path | None = None, cert: Path | None = None, key: Path | None = None,
                 require_certificate: bool = False, acl: str | None = None) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls = ca is not None
        lines = [f"listener {self.port} 127.0.0.1", "persistence true", f"persistence_location {folder}/",
                 "autosave_interval 1", "max_queued_messages 200000", "max_inflight_messages 100",
                 f"log_dest file {folder}/mosquitto.log", "log_type error", "log_type warning", "log_type notice",
                 "log_type subscribe"]
        if os.geteuid() == 0:  # otherwise mosquitto drops to user 'mosquitto' and cannot read the test files
            lines.append("user root")
        if self.tls:
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
            if require_certificate:
                lines += ["require_certificate true", "use_identity_as_username true"]
        lines.append("allow_anonymous true" if not require_certificate else "allow_anonymous false")
        if acl is not None:
            (folder / "acl").write_text(acl)
            lines.append(f"acl_file {folder / 'acl'}")
        (folder / "mosquitto.conf").write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> Mosquitto:
        self.proc = subprocess.Popen([mosquitto_path(), "-c", str(self.folder / "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def log(self) -> str:
        p = self.folder / "mosquitto.log"
        return p.read_text(errors="replace") if p.exists() else ""
