"""`anpr-edge run` as systemd runs it: READY and WATCHDOG over NOTIFY_SOCKET, reads delivered, SIGTERM drains."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from agent.uplink.mqtt import BrokerSettings
from agent.uplink.outbox import Outbox
from sim.central import Central
from sim.local_broker import Mosquitto

ROOT = Path(__file__).resolve().parents[1]


def test_run_notifies_systemd_delivers_and_drains_on_sigterm(tmp_path):
    broker = Mosquitto(tmp_path / "broker").start()
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(0.2)
    state = tmp_path / "state"
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""[site]
id = "S1"
[camera]
id = "cam1"
backend = "sim"
exposure_us = 600
[camera.sim]
rate_per_hour = 3000
realtime = true
[recogniser]
models_dir = "{ROOT / 'models'}"
[uplink]
broker = "{broker.url}"
[storage]
state_dir = "{state}"
""")
    central = Central(BrokerSettings(broker.url, "c-run"), tmp_path / "central", require_signature=False)
    central.start()
    env = {**os.environ, "NOTIFY_SOCKET": sock_path, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(cfg)], env=env, cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    msgs: list[str] = []
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end and (central.store.count() < 2 or not any("WATCHDOG=1" in m for m in msgs)):
            with contextlib.suppress(TimeoutError):
                msgs.append(sock.recv(4096).decode())
            assert p.poll() is None, p.stderr.read().decode()[-2000:]
        assert any("READY=1" in m for m in msgs), msgs
        assert any("WATCHDOG=1" in m and "STATUS=fps" in m for m in msgs), msgs[-3:]
        assert central.store.count() >= 2
        p.send_signal(signal.SIGTERM)
        _out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()[-2000:]
        assert b"stopped:" in err
        assert Outbox(state / "outbox.sqlite").stats().depth == 0  # everything committed was delivered
    finally:
        if p.poll() is None:
            p.kill()
        central.stop()
        broker.stop()
        sock.close()


def test_a_dead_uplink_thread_starves_the_watchdog_and_stops_the_unit(tmp_path):
    """Every thread the unit needs is watched: with the uplink's network thread dead the pipeline
    loop no longer pings the watchdog and `run` exits non-zero, so systemd restarts the unit."""
    from agent.config import from_mapping
    from agent.service import Unit

    class Notifier:
        def __init__(self):
            self.msgs: list[str] = []

        def notify(self, m: str) -> None:
            self.msgs.append(m)

    cfg = from_mapping({"site": {"id": "S1"}, "camera": {"id": "cam1", "backend": "sim", "exposure_us": 600,
                                                          "sim": {"rate_per_hour": 3000, "realtime": True}},
                        "recogniser": {"models_dir": str(ROOT / "models")},
                        "uplink": {"broker": "mqtt://127.0.0.1:9"}, "storage": {"state_dir": str(tmp_path / "s")}},
                       "t", environ={})
    n = Notifier()
    unit = Unit(cfg, None, notifier=n)
    unit.start()
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end and not any("WATCHDOG=1" in m for m in n.msgs):
            time.sleep(0.1)
        assert any("WATCHDOG=1" in m for m in n.msgs) and unit.failed_threads() == []
        unit.uplink._stop.set()  # the network thread ends, as an uncaught error would end it
        unit.uplink._thread.join(10)
        assert unit.failed_threads() == ["uplink"]
        time.sleep(1.5)
        k = len(n.msgs)
        time.sleep(2.5)
        assert not any("WATCHDOG=1" in m for m in n.msgs[k:]), n.msgs[k:]
        assert any(t.is_alive() for t in unit.pipeline._threads)  # the pipeline runs on: only the ping stops
    finally:
        unit.stop(drain_s=0)
