"""Character ink drawn from installed TrueType typefaces (DejaVu Sans and its condensed cuts, Debian's
fonts-dejavu-core), for plates the reader trains on in shapes no real tile has.

Every real typeface the reader learns from is one country's (UK Charles Wright, German, French FNI,
Dutch, Belgian, Serbian, Brazilian tiles); plates of other typefaces (the French SIV one, German FE,
Italian, Spanish) misread on clear, large crops, M as N, D as U, Q as O (models/candidates/README.md,
session 28). Sans typefaces at many widths and weights teach the shapes of the letters rather than one
typeface's details. Nothing is downloaded: a system without the fonts gets a clear error.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cv2
import numpy as np

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
# sans cuts only: plates are set in even-stroked sans typefaces, never serif ones; not the monospaced
# cut either, whose zero carries a dot no plate's has
FONT_FILES = ("DejaVuSans-Bold.ttf", "DejaVuSansCondensed-Bold.ttf", "DejaVuSansCondensed.ttf", "DejaVuSans.ttf")
LICENCE = "Bitstream Vera Fonts licence (DejaVu changes public domain): free to use and redistribute"
CAP = 96  # cap height the ink is drawn at, px
# stroke weight changes, px at CAP (negative: thinner), of the bold cuts and of the book ones (strokes
# about 15 and 10 px): plate typefaces range from medium to heavy, none as light as a book cut
WEIGHTS = {"bold": (-2, 0, 2, 4), "book": (1, 3, 5, 7)}


def weights(font: Path) -> tuple[int, ...]:
    """The stroke weight changes that keep `font` within the weights plates are printed in."""
    return WEIGHTS["bold" if "Bold" in font.stem else "book"]


def typefaces(font_dir: Path = FONT_DIR) -> tuple[Path, ...]:
    """The typeface files present; a clear error when none is (install fonts-dejavu-core)."""
    found = tuple(font_dir / f for f in FONT_FILES if (font_dir / f).is_file())
    if not found:
        raise FileNotFoundError(f"no typeface of {list(FONT_FILES)} in {font_dir}: install the Debian package "
                                "fonts-dejavu-core, or point --typeface-dir at a folder with them")
    return found


@cache
def _face(font: Path):
    """The typeface loaded once at the size the ink is drawn at."""
    from PIL import ImageFont

    return ImageFont.truetype(str(font), size=round(CAP * 1.4))


@cache
def ink(font: Path, char: str, weight: int = 0) -> np.ndarray:
    """Ink coverage 0-1 (float32) of one character, cut to its width and to the cap height (with what
    reaches below it, Q's tail), stroke thickened (`weight` > 0) or thinned by `weight` px at CAP."""
    from PIL import Image, ImageDraw

    if len(char) != 1:
        raise ValueError(f"one character at a time, not {char!r}")
    face = _face(font)
    _, top, _, base = face.getbbox("H")
    left, ctop, right, cbot = face.getbbox(char)
    pad = abs(weight) + 2
    w, h = right - left + 2 * pad, max(base, cbot) - min(top, ctop) + 2 * pad
    img = Image.new("L", (w, h), 0)
    ImageDraw.Draw(img).text((pad - left, pad - min(top, ctop)), char, font=face, fill=255)
    a = np.asarray(img, np.float32) / 255.0
    if weight:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(weight) + 1, 2 * abs(weight) + 1))
        a = cv2.dilate(a, k) if weight > 0 else cv2.erode(a, k)
    cols, rows = np.flatnonzero(a.max(axis=0) > 0.5), np.flatnonzero(a.max(axis=1) > 0.5)
    if not len(cols):
        raise ValueError(f"{font.name} draws no ink for {char!r}")
    out = a[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    out.setflags(write=False)
    return out
