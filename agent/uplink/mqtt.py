"""MQTT connection settings shared by the device uplink and the central subscriber (paho-mqtt 2.x)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import paho.mqtt.client as mqtt


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    url: str
    client_id: str
    mqtt_version: str = "5"
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    keepalive_s: int = 30

    @property
    def tls(self) -> bool:
        return urlparse(self.url).scheme == "mqtts"

    @property
    def host_port(self) -> tuple[str, int]:
        u = urlparse(self.url)
        if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
            raise ValueError(f"broker URL {self.url!r}: expected mqtt://host[:port] or mqtts://host[:port]")
        return u.hostname, u.port or (8883 if u.scheme == "mqtts" else 1883)


def make_client(s: BrokerSettings) -> mqtt.Client:
    proto = mqtt.MQTTv5 if s.mqtt_version == "5" else mqtt.MQTTv311
    kwargs = {"clean_session": False} if proto == mqtt.MQTTv311 else {}
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=s.client_id, protocol=proto, **kwargs)
    if s.tls:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(s.ca_file) if s.ca_file else None)
        if s.cert_file and s.key_file:
            ctx.load_cert_chain(str(s.cert_file), str(s.key_file))
        c.tls_set_context(ctx)
    if s.username:
        password = None
        if s.password_file:
            password = Path(s.password_file).read_text(encoding="utf-8").strip()
        c.username_pw_set(s.username, password)
    return c


def connect_properties(s: BrokerSettings, session_expiry_s: int = 7 * 86400):
    if s.mqtt_version != "5":
        return None
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    p = Properties(PacketTypes.CONNECT)
    p.SessionExpiryInterval = session_expiry_s
    return p
