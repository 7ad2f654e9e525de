"""Training plates set from character tiles (`scripts/glyph_plates.py`): their text follows a country's
layout, each character drawn from that country's tiles, the same for the same seed, and the licence
filter removes tiles as it removes every other real item. The tiles here are drawn by the test in the
shared set's layout (the real ones are AGPL and stay out of the repository)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import glyph_plates  # noqa: E402
from glyph_plates import LAYOUTS, glyph_plate  # noqa: E402

from agent.plates import is_valid  # noqa: E402


def _data(tmp_path: Path, countries: dict[str, str], licence: str = "MIT") -> Path:
    """A data folder with one drawn tile per character of each country's alphabet."""
    glyphs = tmp_path / "real-read" / "glyphs"
    glyphs.mkdir(parents=True)
    rows = []
    for country, chars in countries.items():
        for c in chars:
            tile = np.full((48, 30), 255, np.uint8)
            cv2.putText(tile, c, (2, 42), cv2.FONT_HERSHEY_SIMPLEX, 1.4, 0, 4)
            name = f"glyphs/{country}_{c}.png"
            cv2.imwrite(str(tmp_path / "real-read" / name), tile)
            rows.append({"file": name, "char": c, "country": country, "source": "test", "licence": licence})
    (tmp_path / "real-read" / "glyphs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    glyph_plates.tiles.cache_clear()
    return tmp_path


def _pattern(layout: tuple[str, ...]) -> str:
    return "^" + "".join("[A-Z]" if k == "L" else "[0-9]" for g in layout for k in g) + "$"


def test_plates_follow_their_countrys_layout_and_tiles(tmp_path):
    letters, digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789"
    data = _data(tmp_path, {"gb": letters + digits, "fr": letters + digits, "de": "ABCDEFGH" + digits})
    rng = np.random.default_rng(5)
    seen = set()
    for _ in range(60):
        made = glyph_plate(rng, data, ())
        assert made is not None
        img, text = made
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[1] > img.shape[0]  # one line, wide
        assert img.std() > 20  # characters drawn on the plate, not a blank
        kinds = {c for c in ("fr", "de") if any(re.match(_pattern(lay), text) for lay in LAYOUTS[c])}
        if is_valid(text):
            kinds.add("gb")
        assert kinds, f"{text} is in none of the three countries' layouts"
        if kinds == {"de"}:
            assert set(text) <= set("ABCDEFGH" + digits)  # only the characters German tiles exist for
        seen |= kinds
    assert seen == {"gb", "fr", "de"}
    # deterministic in the generator's seed, as cached training chunks need
    a = glyph_plate(np.random.default_rng(9), data, ())
    b = glyph_plate(np.random.default_rng(9), data, ())
    assert a is not None and b is not None and a[1] == b[1] and np.array_equal(a[0], b[0])


def test_a_country_missing_characters_never_gets_them(tmp_path):
    data = _data(tmp_path, {"de": "ABC0123"})
    rng = np.random.default_rng(1)
    texts = [m[1] for m in (glyph_plate(rng, data, ()) for _ in range(200)) if m is not None]
    assert texts and all(set(t) <= set("ABC0123") for t in texts)


@pytest.mark.parametrize("licences, kept", [(("MIT",), True), (("permissive",), True), (("CC0",), False)])
def test_the_licence_filter_applies_to_tiles(tmp_path, licences, kept):
    data = _data(tmp_path, {"gb": "ABCDEFGHJKLMNOPRSTUVWXYZ0123456789"})
    made = glyph_plate(np.random.default_rng(2), data, licences)
    assert (made is not None) == kept


def test_some_plates_have_light_characters_on_a_dark_plate(tmp_path):
    """UK black-and-silver plates and old French black ones: the reader must see characters lighter
    than their plate too, and the characters must still be there (not a flat dark plate)."""
    data = _data(tmp_path, {"gb": "ABCDEFGHJKLMNOPRSTUVWXYZ0123456789"})
    rng = np.random.default_rng(11)
    plates = [m[0] for m in (glyph_plate(rng, data, ()) for _ in range(300)) if m is not None]
    dark = [p for p in plates if np.median(p) < 100]
    assert len(plates) == 300 and 0.02 * 300 <= len(dark) <= 0.2 * 300
    for p in dark:
        assert (p > 150).mean() > 0.03  # light strokes drawn on it


def test_french_plates_mostly_carry_dashes_and_a_region_band(tmp_path):
    """French SIV plates print dashes between the groups and end in a blue band with the department's
    number, which is no part of the registration: the text stays the groups alone."""
    letters, digits = "ABCDEFGHJKLMNPQRSTVWXYZ", "0123456789"
    data = _data(tmp_path, {"fr": letters + digits})
    rng = np.random.default_rng(4)
    blue_right = 0
    for _ in range(80):
        made = glyph_plate(rng, data, ())
        assert made is not None
        img, text = made
        assert any(re.match(_pattern(lay), text) for lay in LAYOUTS["fr"]), text
        right = img[:, -max(3, img.shape[1] // 40):].reshape(-1, 3).astype(float).mean(axis=0)
        blue_right += right[0] > right[2] + 60  # BGR: far more blue than red at the right end
    assert 0.5 * 80 <= blue_right <= 0.95 * 80


def _strokes_per_line(img: np.ndarray) -> tuple[int, int]:
    """Character-sized ink blobs in the top and bottom half of a light plate."""
    g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    ink = (g < 100).astype(np.uint8)
    n, _lab, stats, cents = cv2.connectedComponentsWithStats(ink)
    tall = [k for k in range(1, n) if 25 <= stats[k, cv2.CC_STAT_HEIGHT] <= 70]  # a character, not the rim
    top = sum(1 for k in tall if cents[k][1] < img.shape[0] / 2)
    return top, len(tall) - top


def test_two_line_plates_are_square_and_carry_every_character_on_one_of_two_lines(tmp_path):
    """Square plates (Swiss, Belgian, Greek, Indian, UK motorcycle): the first group or groups above, the
    rest below, so that the reader's cut into halves finds one line in each; one-line plates stay wide."""
    data = _data(tmp_path, {"gb": "ABCDEFGHJKLMNOPRSTUVWXYZ0123456789"})
    rng = np.random.default_rng(21)
    checked = 0
    for _ in range(60):
        made = glyph_plate(rng, data, (), two_line=True)
        assert made is not None
        img, text = made
        assert is_valid(text) and img.shape[1] / img.shape[0] < 2.6, (text, img.shape)
        if np.median(img) < 100:
            continue  # light characters on a dark plate: counted by the test above
        top, bottom = _strokes_per_line(img)
        assert top >= 1 and bottom >= 1 and top + bottom == len(text), (text, top, bottom)
        checked += 1
    assert checked >= 40
    one = glyph_plate(np.random.default_rng(21), data, ())
    assert one is not None and one[0].shape[1] / one[0].shape[0] > 2.6


def test_two_line_composites_sit_in_the_box_at_their_own_shape(tmp_path):
    import real_data

    data = _data(tmp_path, {"gb": "ABCDEFGHJKLMNOPRSTUVWXYZ0123456789"})
    scene = np.random.default_rng(0).integers(60, 200, (300, 400, 3)).astype(np.uint8)
    wide = real_data.bbox_quad([100, 100, 160, 40])
    img, text, two, quad = real_data.composite_glyphs(scene.copy(), wide, np.random.default_rng(3), data, (), 1.0)
    w, h = np.linalg.norm(quad[1] - quad[0]), np.linalg.norm(quad[3] - quad[0])
    assert text and two and w < 160 and abs(h - 40) < 1e-6 and np.allclose(quad.mean(axis=0), wide.mean(axis=0))
    assert not np.array_equal(img, scene)
    # share 0: one line in the box as given (the behaviour before two-line plates)
    img, text, two, quad = real_data.composite_glyphs(scene.copy(), wide, np.random.default_rng(3), data, (), 0.0)
    assert text and not two and np.array_equal(quad, wide)
