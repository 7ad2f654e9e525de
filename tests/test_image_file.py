"""Image files as the recogniser reads them: upright by their EXIF orientation (as a phone's portrait
photo is shown), 8-bit, and a clear reason for a file that is not an image."""

import json
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.recognise import Recogniser
from agent.recognise.image_file import read_image

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "tests" / "data" / "real" / "images" / "rolp_00316.jpg"  # one plate, read at 0.99

# EXIF orientation -> the stored pixels of an upright image (the inverse of what a viewer applies)
STORED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, 1),  # shown turned 90 degrees clockwise: stored turned anticlockwise
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, -1),
}


def jpeg_with_orientation(img: np.ndarray, orientation: int, quality: int = 95) -> bytes:
    """A JPEG of `img` whose EXIF (an APP1 segment with one IFD entry, big-endian) gives `orientation`."""
    ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    tiff = b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) \
        + struct.pack(">I", 0)
    app1 = b"Exif\x00\x00" + tiff
    data = enc.tobytes()
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:]


@pytest.mark.parametrize("orientation", sorted(STORED))
def test_a_photo_is_read_upright_whatever_its_exif_orientation(tmp_path, orientation):
    upright = np.zeros((48, 96, 3), np.uint8)
    upright[:16, :32] = (255, 255, 255)  # a white block top left, a grey one bottom right: no symmetry hides a turn
    upright[32:, 64:] = (128, 128, 128)
    f = tmp_path / f"o{orientation}.jpg"
    f.write_bytes(jpeg_with_orientation(np.ascontiguousarray(STORED[orientation](upright)), orientation))
    img, why = read_image(f)
    assert why is None and img.shape == upright.shape
    assert np.abs(img.astype(int) - upright).max() < 40


def test_depth_channels_and_bad_files(tmp_path):
    """16-bit grey stretched to 8-bit, alpha dropped, grey kept grey; missing and undecodable files say why."""
    g16 = (np.arange(40 * 60).reshape(40, 60) * 20).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), g16)
    img, _ = read_image(tmp_path / "g16.png")
    assert img.dtype == np.uint8 and img.shape == (40, 60) and img.max() == 255
    bgra = np.full((30, 50, 4), 90, np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    img, _ = read_image(tmp_path / "a.png")
    assert img.shape == (30, 50, 3) and int(img[0, 0, 0]) == 90
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    assert read_image(tmp_path / "junk.jpg") == (None, "not a readable image")
    assert read_image(tmp_path / "absent.jpg") == (None, "not found")


def test_recognise_reads_a_portrait_phone_photo_the_way_it_is_shown(tmp_path):
    """A photo stored on its side with EXIF orientation 6 (a phone held upright): `anpr-edge recognise`
    gives the reads, boxes included, of the picture as shown, not of the stored pixels."""
    upright = cv2.imread(str(PHOTO), cv2.IMREAD_COLOR)
    f = tmp_path / "portrait.jpg"
    f.write_bytes(jpeg_with_orientation(np.ascontiguousarray(STORED[6](upright)), 6))
    shown = cv2.rotate(cv2.imread(str(f), cv2.IMREAD_UNCHANGED), cv2.ROTATE_90_CLOCKWISE)  # what a viewer shows
    expected = [(r.vrm, list(r.bbox)) for r in Recogniser(ROOT / "models", threads=1).recognise(shown)]
    assert expected, "the fixture photo's plate is read when upright"
    res = CliRunner().invoke(app, ["recognise", "--json", "--all", str(f)])
    assert res.exit_code == 0, res.output
    line = json.loads(next(x for x in res.output.splitlines() if x.startswith("{")))
    assert [(r["vrm"], list(r["bbox"])) for r in line["reads"]] == expected
