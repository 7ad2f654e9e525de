"""Plates set from real character tiles (the shared data's `real-read/glyphs/`: 3,598 UK Charles Wright
characters and ~600 each of German, French, Belgian, Dutch, Serbian and Brazilian ones, cut from real
plates): the real typefaces, stroke weights and wear of these countries in every arrangement their
formats allow, where the real crops give a few hundred European plates and ten UK ones. The reader
trains on them composited into real scenes like the rendered UK plates (`real_data.reader_chunk`).

The tiles have no split (none is an evaluation item); `--licences` filters them like everything else.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cv2
import numpy as np
import train_common  # noqa: F401  (puts the repository on sys.path)

from agent.plates import DIGITS as D
from agent.plates import LETTERS as L
from sim.evaluate_real import read_labels

# Layouts per country as groups of L (letter) and D (digit); the groups are set apart on the plate.
LAYOUTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "de": (("L", "LL", "DDDD"), ("LL", "L", "DDD"), ("LLL", "LL", "DD"), ("L", "L", "DDDD"), ("LL", "LL", "DDD")),
    "fr": (("LL", "DDD", "LL"), ("DDDD", "LL", "DD"), ("DDD", "LLL", "DD")),
    "nl": (("DD", "LLL", "D"), ("D", "LLL", "DD"), ("LL", "DDD", "L"), ("L", "DDD", "LL"), ("LL", "DD", "LL"),
           ("DD", "LL", "LL"), ("LLL", "DD", "L")),
    "be": (("D", "LLL", "DDD"), ("LLL", "DDD")),
    "rs": (("LL", "DDD", "LL"), ("LL", "DDDD", "LL")),
    "br": (("LLL", "DDDD"), ("LLLDLDD",)),
}
# share of plates per country: UK first (what the unit reads), the others for their typefaces
WEIGHTS = {"gb": 0.4, "de": 0.12, "fr": 0.12, "nl": 0.1, "be": 0.08, "rs": 0.08, "br": 0.1}
YELLOW = (40, 200, 250)  # BGR: a UK rear or a Dutch plate
WHITE = (245, 245, 245)
# Dashes between the groups, as each country prints them (chance a plate has them): French SIV and
# Serbian plates always, Dutch and Belgian mostly; German plates space the district from the rest.
DASHES = {"fr": 0.9, "rs": 0.8, "nl": 0.8, "be": 0.7, "de": 0.3}
# Light characters on a dark plate: UK black-and-silver plates of historic vehicles, old French black
# plates. The reader must not learn that characters are always darker than their plate.
LIGHT_ON_DARK = 0.08


@cache
def tiles(data: Path, licences: tuple[str, ...]) -> dict[str, dict[str, list[Path]]]:
    """Tile files by country and character, under the licence families asked for."""
    out: dict[str, dict[str, list[Path]]] = {}
    path = data / "real-read" / "glyphs.jsonl"
    if not path.exists():
        return out
    for r in read_labels(path, None, licences):
        c = str(r["char"]).upper()
        if len(c) == 1 and c in L + D:
            out.setdefault(str(r["country"]), {}).setdefault(c, []).append(data / "real-read" / r["file"])
    return out


@cache
def _tile(path: Path) -> np.ndarray | None:
    """Ink coverage 0-1 (dark strokes on a light tile)."""
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None or min(img.shape) < 4:
        return None
    x = img.astype(np.float32)
    lo, hi = np.percentile(x, 2), np.percentile(x, 98)
    return np.clip((hi - x) / max(hi - lo, 1.0), 0, 1)


def _text(rng: np.random.Generator, country: str, have: dict[str, list[Path]]) -> list[str] | None:
    """A registration as groups, drawn from the characters this country's tiles have."""
    if country == "gb":
        from sim.plates import generate_uk

        p = generate_uk(rng)
        groups = p.display.split()
    else:
        layouts = LAYOUTS[country]
        lay = layouts[int(rng.integers(len(layouts)))]
        letters, digits = [c for c in L if c in have], [c for c in D if c in have]
        if not (letters and digits):
            return None
        groups = ["".join(str(rng.choice(letters if k == "L" else digits)) for k in g) for g in lay]
    if all(c in have for g in groups for c in g):
        return groups
    return None


def _typeface_picker(rng: np.random.Generator, font_dir: Path | None):
    """Ink of each character in one typeface, weight and width for a whole plate (a real plate's
    characters share them), and the small spread of width left between its characters."""
    from typeface_glyphs import FONT_DIR, ink, typefaces, weights

    faces = typefaces(font_dir or FONT_DIR)
    face = faces[int(rng.integers(len(faces)))]
    weight = int(rng.choice(weights(face)))
    width = rng.uniform(0.6, 1.05)  # plate typefaces are mostly narrower than text ones

    def pick(c: str) -> np.ndarray:
        return ink(face, c, weight)

    return pick, (0.97 * width, 1.03 * width)


def _band_blue(rng: np.random.Generator) -> np.ndarray:
    """The blue of an EU side band, a little different on each plate."""
    return np.clip(np.array((150, 50, 10), np.float32) + rng.normal(0, 15, 3), 0, 255)


def _lines(rng: np.random.Generator, groups: list[str], two_line: bool) -> list[list[str]]:
    """The groups on one line, or split over two as square plates carry them (1-AZE / 381, GM / CI 843,
    KL 08 / BH 6265): the first group or groups above, the rest below; one group alone is cut in two."""
    if not two_line:
        return [groups]
    if len(groups) == 1:
        g = groups[0]
        k = max(1, min(len(g) - 1, round(len(g) * rng.uniform(0.35, 0.5))))
        return [[g[:k]], [g[k:]]]
    k = int(rng.integers(1, len(groups)))
    return [groups[:k], groups[k:]]


def glyph_plate(rng: np.random.Generator, data: Path, licences: tuple[str, ...], two_line: bool = False,
                typeface_share: float = 0.0, font_dir: Path | None = None) -> tuple[np.ndarray, str] | None:
    """A plate (BGR, characters 64 px high) set from real tiles, and its text (top line first); one line,
    or two where `two_line`; None when the licences leave no tiles. Two-line plates matter beyond the UK:
    square Swiss, Belgian, Greek, Norwegian, Indian plates read top line then bottom line.
    `typeface_share`: this share of the plates set instead in one installed typeface (`typeface_glyphs`)
    at one weight and width, in a European country's layout and look."""
    if typeface_share and rng.random() < typeface_share:
        country = str(rng.choice(list(LAYOUTS)))
        groups = _text(rng, country, {c: [] for c in L + D})  # a typeface has every character
        if groups is None:
            return None
        pick, jitter = _typeface_picker(rng, font_dir)
    else:
        by_country = tiles(data, licences)
        names = [c for c in WEIGHTS if c in by_country]
        if not names:
            return None
        w = np.array([WEIGHTS[c] for c in names])
        for _ in range(20):
            country = names[int(rng.choice(len(names), p=w / w.sum()))]
            groups = _text(rng, country, by_country[country])
            if groups is not None:
                break
        else:
            return None
        have = by_country[country]

        def pick(c: str) -> np.ndarray | None:
            return _tile(have[c][int(rng.integers(len(have[c])))])

        jitter = (0.9, 1.1)
    ch = 64  # character height in px
    lines = []
    for line in _lines(rng, groups, two_line):
        inks = []
        for g in line:
            row = []
            for c in g:
                t = pick(c)
                if t is None:
                    return None
                aspect = t.shape[1] / t.shape[0] * rng.uniform(*jitter)
                row.append(cv2.resize(t, (max(2, round(ch * aspect)), ch), interpolation=cv2.INTER_AREA))
            inks.append(row)
        lines.append(inks)
    dashes = rng.random() < DASHES.get(country, 0.0)
    gap, group_gap = ch * rng.uniform(0.06, 0.2), ch * rng.uniform(0.5 if dashes else 0.3, 0.8)
    band = country != "gb" or rng.random() < 0.3  # the blue side band with the country letters
    dark = rng.random() < LIGHT_ON_DARK
    band = band and not dark
    right_band = country == "fr" and band and rng.random() < 0.85  # the region number a French plate ends with
    margin_x, margin_y = ch * rng.uniform(0.2, 0.5), ch * rng.uniform(0.15, 0.35)
    line_gap = ch * rng.uniform(0.15, 0.35) if len(lines) > 1 else 0.0  # drawn only then: one-line plates as before
    band_w = ch * 0.55 if band else 0.0
    right_w = ch * 0.55 if right_band else 0.0
    widths = [sum(t.shape[1] for r in inks for t in r) + gap * sum(len(r) - 1 for r in inks)
              + group_gap * (len(inks) - 1) for inks in lines]
    pw = round(max(widths) + 2 * margin_x + band_w + right_w)
    ph = round(len(lines) * ch + (len(lines) - 1) * line_gap + 2 * margin_y)
    if dark:
        bg, ink = (25, 25, 25), (205, 205, 205)
    else:
        bg = YELLOW if (country == "nl" or (country == "gb" and rng.random() < 0.5)) else WHITE
        ink = (30, 20, 160) if country == "be" and rng.random() < 0.7 else (20, 20, 20)
    bg = np.clip(np.array(bg, np.float32) * rng.uniform(0.8, 1.05) + rng.normal(0, 8, 3), 0, 255)
    plate = np.empty((ph, pw, 3), np.float32)
    plate[:] = bg
    ink_col = np.clip(np.array(ink, np.float32) + rng.normal(0, 12, 3), 0, 255)
    for li, (inks, width) in enumerate(zip(lines, widths, strict=True)):
        x = margin_x + band_w + (max(widths) - width) / 2  # each line centred
        y0 = round(margin_y + li * (ch + line_gap))
        for n, r in enumerate(inks):
            for t in r:
                x0 = round(x)
                a = t[:, : max(0, min(t.shape[1], pw - x0))][..., None]
                plate[y0:y0 + ch, x0:x0 + a.shape[1]] = plate[y0:y0 + ch, x0:x0 + a.shape[1]] * (1 - a) + ink_col * a
                x += t.shape[1] + gap
            x += group_gap - gap
            if dashes and n < len(inks) - 1:  # a short bar at mid-height in the gap just passed
                dw, dh = group_gap * rng.uniform(0.35, 0.6), ch * rng.uniform(0.08, 0.14)
                cx, cy = x - group_gap / 2, y0 + ch * rng.uniform(0.45, 0.55)
                plate[round(cy - dh / 2):round(cy + dh / 2) + 1, round(cx - dw / 2):round(cx + dw / 2)] = ink_col
    plate = plate.astype(np.uint8)
    if band:
        plate[:, : round(band_w)] = _band_blue(rng)
        code = {"gb": "UK", "nl": "NL", "be": "B", "rs": "SRB", "br": "BR"}.get(country, country[0].upper())
        cv2.putText(plate, code, (round(band_w * 0.15), ph - round(margin_y)), cv2.FONT_HERSHEY_SIMPLEX, ch / 110,
                    WHITE, 2)
    if right_band:  # the department's number under its region's logo, small: not part of the registration
        x0 = pw - round(right_w)
        plate[:, x0:] = _band_blue(rng)
        cv2.putText(plate, f"{int(rng.integers(1, 96)):02d}", (x0 + round(right_w * 0.08), ph - round(margin_y)),
                    cv2.FONT_HERSHEY_SIMPLEX, ch / 150, WHITE, 2)
    if rng.random() < 0.6:  # a rim
        rim = (200, 200, 200) if dark else (20, 20, 20)
        cv2.rectangle(plate, (1, 1), (pw - 2, ph - 2), rim, int(rng.integers(1, 4)))
    return plate, "".join(groups)
