"""Training plates set in installed typefaces (`scripts/typeface_glyphs.py`, `glyph_plates.glyph_plate`
with `typeface_share`): real ink of the DejaVu typefaces (bootstrap installs fonts-dejavu-core), cut to
the cap height at the weights plates are printed in, set whole plates in one typeface in a European
country's layout, and a clear error where the typefaces are missing."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import glyph_plates  # noqa: E402
import typeface_glyphs  # noqa: E402
from glyph_plates import LAYOUTS, glyph_plate  # noqa: E402
from typeface_glyphs import ink, typefaces, weights  # noqa: E402


@pytest.fixture(scope="module")
def faces() -> tuple[Path, ...]:
    return typefaces()


def test_every_typeface_draws_every_character_at_the_cap_height(faces):
    assert len(faces) == len(typeface_glyphs.FONT_FILES)
    for face in faces:
        cap = ink(face, "H").shape[0]
        assert abs(cap - typeface_glyphs.CAP) <= 0.15 * typeface_glyphs.CAP  # drawn as large as asked
        for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ":
            a = ink(face, c)
            assert a.dtype == np.float32 and a.min() >= 0.0 and a.max() <= 1.0
            assert a.mean() > 0.1 and (c == "I" or a.mean() < 0.8), (face.name, c)  # ink; only I a filled bar
            # cut to the character: ink touches all four edges (Q's tail reaches below the cap height)
            assert a[0].max() > 0.5 and a[-1].max() > 0.5 and a[:, 0].max() > 0.5 and a[:, -1].max() > 0.5
            assert cap - 2 <= a.shape[0] <= cap * 1.3, (face.name, c, a.shape)
        assert ink(face, "I").shape[1] < ink(face, "W").shape[1] / 2


def test_weights_thicken_and_thin_the_strokes(faces):
    for face in faces:
        ws = weights(face)
        inks = [ink(face, "E", w).mean() for w in ws]
        assert inks == sorted(inks) and inks[-1] > inks[0] * 1.3, (face.name, inks)
    book = [f for f in faces if "Bold" not in f.stem]
    assert book and all(min(weights(f)) > 0 for f in book)  # a book cut is never made lighter still


def test_missing_typefaces_give_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="fonts-dejavu-core"):
        typefaces(tmp_path)
    with pytest.raises(ValueError, match="one character"):
        ink(typefaces()[0], "AB")


def test_typeface_plates_follow_a_european_layout_without_any_tile(tmp_path, faces):
    """No real tile at all: every plate asked for in a typeface is made; one line, every character a
    separate stroke of about one height (one typeface, weight and width to the plate)."""
    glyph_plates.tiles.cache_clear()
    rng = np.random.default_rng(7)
    patterns = [re.compile("^" + "".join("[A-Z]" if k == "L" else "[0-9]" for g in lay for k in g) + "$")
                for lays in LAYOUTS.values() for lay in lays]
    checked = 0
    for _ in range(40):
        made = glyph_plate(rng, tmp_path, (), typeface_share=1.0)
        assert made is not None
        img, text = made
        assert img.dtype == np.uint8 and img.shape[1] > 2.6 * img.shape[0]
        assert any(p.match(text) for p in patterns), text
        g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        if np.median(g) < 100:
            continue  # light characters on a dark plate
        n, _lab, stats, _c = cv2.connectedComponentsWithStats((g < 100).astype(np.uint8))
        heights = [stats[k, cv2.CC_STAT_HEIGHT] for k in range(1, n) if 40 <= stats[k, cv2.CC_STAT_HEIGHT] <= 80]
        assert len(heights) == len(text), (text, heights)
        assert max(heights) - min(heights) <= 0.25 * 64  # one cap height along the plate
        checked += 1
    assert checked >= 30
    a = glyph_plate(np.random.default_rng(9), tmp_path, (), typeface_share=1.0)
    b = glyph_plate(np.random.default_rng(9), tmp_path, (), typeface_share=1.0)
    assert a is not None and b is not None and a[1] == b[1] and np.array_equal(a[0], b[0])
    # without the share nothing changes: no tiles, no plate
    assert glyph_plate(np.random.default_rng(9), tmp_path, ()) is None


def test_the_share_sets_that_many_plates_in_a_typeface(tmp_path, faces, monkeypatch):
    calls = []
    real = glyph_plates._typeface_picker

    def counted(rng, font_dir):
        calls.append(font_dir)
        return real(rng, font_dir)

    monkeypatch.setattr(glyph_plates, "_typeface_picker", counted)
    rng = np.random.default_rng(3)
    made = [glyph_plate(rng, tmp_path, (), typeface_share=0.3) for _ in range(400)]
    assert sum(m is not None for m in made) == len(calls)  # no tiles: only typeface plates are made
    assert 0.24 * 400 <= len(calls) <= 0.36 * 400


@pytest.mark.parametrize("argv, message", [
    (["--real-typefaces", "0.3"], "needs --real, --real-count and --real-glyphs"),
    (["--real", "data", "--real-count", "10", "--real-glyphs", "0.5", "--real-typefaces", "1.5"],
     "a share from 0 to 1"),
])
def test_train_reader_refuses_a_typeface_share_it_cannot_use(tmp_path, monkeypatch, argv, message):
    import train_reader

    monkeypatch.setattr(sys, "argv", ["train_reader.py", "--work", str(tmp_path / "w"), *argv])
    with pytest.raises(SystemExit, match=message):
        train_reader.main()
    assert not (tmp_path / "w").exists()  # refused before any work


def test_typeface_probe_reads_plates_in_a_typeface_no_training_run_uses(faces):
    """scripts/typeface_probe.py: every letter in every weight and width of a held-out typeface, read by
    the shipped reader; a plate drawn wrong (blank, cut, inverted) would read as nothing."""
    import typeface_probe

    from agent.recognise.runtime import Model

    assert not set(typeface_probe.HELD_OUT) & set(typeface_glyphs.FONT_FILES)
    face = typeface_glyphs.FONT_DIR / typeface_probe.HELD_OUT[0]
    p = typeface_probe.plate("FM264CL", face, 0, 0.8)
    assert p.dtype == np.uint8 and p.shape[0] == typeface_probe.CH + 30 and p.shape[1] > 4 * p.shape[0]
    out = typeface_probe.probe(Model(ROOT / "models" / "reader.tflite"), [face])
    assert out["plates"] == 26 * len(weights(face)) * len(typeface_probe.WIDTHS)
    assert 0.5 <= out["exact"] <= 1.0 and out["right"] == round(out["exact"] * out["plates"])
