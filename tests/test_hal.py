import datetime as dt
import os
import pty
import threading
import time
import tty

import pytest
import serial
from hypothesis import given
from hypothesis import strategies as st

from hal.gnss import SerialGnss, checksum_ok, parse_sentence
from hal.illuminator import Illuminator
from hal.illuminator_serial import IlluminatorError, SerialIlluminator


def nmea(body: str) -> str:
    cs = 0
    for ch in body:
        cs ^= ord(ch)
    return f"${body}*{cs:02X}"


GGA = nmea("GPGGA,123519,5130.000,N,00007.500,W,1,08,0.9,45.4,M,46.9,M,,")
RMC = nmea("GPRMC,123519.25,A,5130.000,N,00007.500,W,022.4,084.4,261126,003.1,W")


def test_gga_and_rmc():
    f = parse_sentence(GGA)
    assert f is not None and f.quality == 1 and f.satellites == 8
    assert f.lat == pytest.approx(51.5) and f.lon == pytest.approx(-0.125)
    f = parse_sentence(RMC, f)
    assert f.valid and f.utc == dt.datetime(2026, 11, 26, 12, 35, 19, 250000, tzinfo=dt.UTC)
    assert f.has_position


@pytest.mark.parametrize("bad", [GGA[:-1] + "0", GGA.replace("*", ""), "$GPGGA,,,*00", "", "garbage",
                                 nmea("GPGGA,123519,9930.000,N,00007.500,W,1,08,0.9,45.4,M,46.9,M,,"),
                                 nmea("GPRMC,123519,A,5130.000,N,00007.500,W,022.4,084.4,321326,003.1,W")])
def test_bad_sentences_are_refused(bad):
    assert parse_sentence(bad) is None


@given(st.text(max_size=120))
def test_fuzzed_text_never_crashes(text):
    parse_sentence(text)
    parse_sentence(nmea(text.replace("*", "").replace("$", "")))


@given(st.lists(st.text(alphabet="0123456789.,NSEWAVGPRMC-", max_size=12), max_size=14))
def test_fuzzed_fields_never_crash(fields):
    parse_sentence(nmea("GPGGA," + ",".join(fields)))
    parse_sentence(nmea("GNRMC," + ",".join(fields)))
    assert checksum_ok(nmea("GPGGA," + ",".join(fields)))


def _pty_pair():
    master, slave = pty.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    return master, os.ttyname(slave), slave


def test_serial_gnss_over_a_pty():
    master, name, slave = _pty_pair()
    g = SerialGnss(name, serial_obj=serial.Serial(name, 9600, timeout=0.2))
    try:
        for line in ("noise\r\n", "$GPGGA,bad*00\r\n", GGA + "\r\n", RMC + "\r\n"):
            os.write(master, line.encode())
        end = time.monotonic() + 3
        while time.monotonic() < end and not (g.fix().valid and g.fix().has_position):
            time.sleep(0.02)
        assert g.fix().has_position and g.fix().valid and g.bad_sentences >= 2
    finally:
        g.close()
        os.close(master)
        os.close(slave)


class FakeIlluminator(threading.Thread):
    """The far end of the serial line: answers the documented protocol, or misbehaves on request."""

    def __init__(self, fd: int):
        super().__init__(daemon=True)
        self.fd = fd
        self.mode = "good"
        self.level = 0
        self.strobe = "OFF"
        self.running = True

    def run(self):
        buf = b""
        while self.running:
            try:
                chunk = os.read(self.fd, 256)
            except OSError:
                return
            buf += chunk
            while b"\r\n" in buf:
                line, buf = buf.split(b"\r\n", 1)
                self.answer(line.decode())

    def answer(self, cmd: str):
        if self.mode == "silent":
            return
        if self.mode == "garbage":
            os.write(self.fd, b"\x00\xffZZZ?\r\n")
            return
        if cmd.startswith("LEVEL "):
            self.level = int(cmd.split()[1])
            reply = f"OK LEVEL {self.level}"
        elif cmd.startswith("STROBE "):
            self.strobe = cmd.split()[1]
            reply = f"OK STROBE {self.strobe}"
        elif cmd == "STATUS?":
            reply = f"STATUS LEVEL {self.level} STROBE {self.strobe} TEMP 41.5 FAULT NONE"
        else:
            reply = "ERR unknown"
        os.write(self.fd, (reply + "\r\n").encode())


def test_serial_illuminator_over_a_pty_with_timeouts_and_garbage():
    master, name, slave = _pty_pair()
    far = FakeIlluminator(master)
    far.start()
    ill = SerialIlluminator(name, timeout_s=0.3)
    try:
        assert isinstance(ill, Illuminator)
        ill.set_level(0.73)
        ill.strobe(True)
        st_ = ill.status()
        assert far.level == 73 and far.strobe == "ON"
        assert st_.level == pytest.approx(0.73) and st_.strobe and st_.ok and st_.temperature_c == 41.5
        ill.set_level(7.0)  # clamped
        assert far.level == 100
        far.mode = "silent"
        with pytest.raises(IlluminatorError, match="timeout"):
            ill.set_level(0.5)
        assert not ill.status().ok
        far.mode = "garbage"
        with pytest.raises(IlluminatorError, match="unexpected reply"):
            ill.strobe(False)
        far.mode = "good"
        ill.set_level(0.2)
        assert far.level == 20 and ill.status().ok
    finally:
        far.running = False
        ill.close()
        os.close(master)
        os.close(slave)


def test_gpio_illuminator_with_gpiozero_mock_factory():
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from hal.illuminator_gpio import GpioIlluminator

    factory = MockFactory(pin_class=MockPWMPin)
    ill = GpioIlluminator(18, pin_factory=factory)
    try:
        ill.set_level(0.4)
        assert factory.pin(18).state == pytest.approx(0.4)
        ill.set_level(-3)
        assert factory.pin(18).state == 0
        ill.set_level(float("nan"))
        assert ill.status().level == 0
    finally:
        ill.close()


def test_missing_serial_port_gives_a_clear_error():
    from hal.errors import HalError

    with pytest.raises(HalError, match="dialout"):
        SerialIlluminator("/dev/does-not-exist")
