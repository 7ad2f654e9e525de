"""A Charles-Wright-like typeface drawn from geometry (no font file, nothing downloaded).

Each glyph is a list of stroke centre-lines in millimetres inside the BS AU 145e character box
(50 mm wide, 79 mm high); strokes are drawn 14 mm thick, so centre-lines stay 7 mm inside the box.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

CHAR_W = 50.0
CHAR_H = 79.0
STROKE = 14.0

Poly = list[tuple[float, float]]


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 24) -> Poly:
    return [
        (cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
        for a in np.linspace(a0, a1, n)
    ]


def _superellipse(cx: float, cy: float, rx: float, ry: float, p: float = 2.6, n: int = 48) -> Poly:
    pts = []
    for t in np.linspace(0, 2 * math.pi, n):
        c, s = math.cos(t), math.sin(t)
        pts.append((cx + rx * math.copysign(abs(c) ** (2 / p), c), cy + ry * math.copysign(abs(s) ** (2 / p), s)))
    return pts


def _rot180(polys: list[Poly]) -> list[Poly]:
    return [[(CHAR_W - x, CHAR_H - y) for x, y in p] for p in polys]


def _glyphs() -> dict[str, list[Poly]]:
    g: dict[str, list[Poly]] = {}
    g["0"] = [_arc(25, 39.5, 16.5, 32.5, 0, 360, 48)]
    g["O"] = [_superellipse(25, 39.5, 18, 32.5)]
    g["1"] = [[(14, 18), (29, 7), (29, 72)]]
    g["2"] = [_arc(25, 23, 17, 16, 195, 375) + [(8, 72), (43, 72)]]
    g["3"] = [_arc(25, 22.5, 16, 15.5, 200, 450) + _arc(25, 55, 18, 17, 270, 520)]
    g["4"] = [[(35, 72), (35, 7), (7, 53), (43, 53)]]
    g["5"] = [[(41, 7), (11, 7), (9, 37)] + _arc(25, 52.5, 18, 19.5, 220, 515)]
    six = [_arc(25, 51, 17.5, 21, 0, 360, 40), _arc(42, 50, 33, 43, 180, 262)]
    g["6"] = six
    g["9"] = _rot180(six)
    g["7"] = [[(7, 7), (43, 7), (19, 72)]]
    g["8"] = [_arc(25, 22.5, 15, 15.5, 0, 360, 36), _arc(25, 54.5, 18, 17.5, 0, 360, 36)]
    g["A"] = [[(7, 72), (25, 7), (43, 72)], [(13, 51), (37, 51)]]
    g["B"] = [
        [(8, 7), (8, 72)],
        [(8, 7), (27, 7)] + _arc(27, 22.5, 14, 15.5, -90, 90) + [(27, 38), (8, 38)],
        [(8, 38), (28, 38)] + _arc(28, 55, 15, 17, -90, 90) + [(28, 72), (8, 72)],
    ]
    g["C"] = [_arc(26, 39.5, 18, 32.5, 38, 322)]
    g["D"] = [[(8, 7), (8, 72)], [(8, 7), (18, 7)] + _arc(18, 39.5, 25, 32.5, -90, 90) + [(18, 72), (8, 72)]]
    g["E"] = [[(42, 7), (8, 7), (8, 72), (42, 72)], [(8, 39.5), (35, 39.5)]]
    g["F"] = [[(42, 7), (8, 7), (8, 72)], [(8, 39.5), (35, 39.5)]]
    g["G"] = [_arc(26, 39.5, 18, 32.5, 5, 322), [(27, 43), (43, 43), (43, 70)]]
    g["H"] = [[(8, 7), (8, 72)], [(42, 7), (42, 72)], [(8, 39.5), (42, 39.5)]]
    g["I"] = [[(25, 7), (25, 72)]]
    g["J"] = [[(40, 7), (40, 52)] + _arc(24, 52, 16, 20, 0, 165)]
    g["K"] = [[(8, 7), (8, 72)], [(42, 7), (8, 48)], [(19, 35), (43, 72)]]
    g["L"] = [[(8, 7), (8, 72), (42, 72)]]
    g["M"] = [[(7, 72), (7, 7), (25, 50), (43, 7), (43, 72)]]
    g["N"] = [[(8, 72), (8, 7), (42, 72), (42, 7)]]
    g["P"] = [[(8, 72), (8, 7), (26, 7)] + _arc(26, 24, 16, 17, -90, 90) + [(26, 41), (8, 41)]]
    g["Q"] = g["O"] + [[(29, 54), (44, 73)]]
    g["R"] = g["P"] + [[(24, 41), (42, 72)]]
    g["S"] = [_arc(25, 23, 17, 16, 330, 90) + _arc(25, 55.5, 18, 16.5, 270, 510)]
    g["T"] = [[(7, 7), (43, 7)], [(25, 7), (25, 72)]]
    g["U"] = [[(8, 7), (8, 50)] + _arc(25, 50, 17, 22, 180, 0) + [(42, 50), (42, 7)]]
    g["V"] = [[(7, 7), (25, 72), (43, 7)]]
    g["W"] = [[(6, 7), (14, 72), (25, 27), (36, 72), (44, 7)]]
    g["X"] = [[(8, 7), (42, 72)], [(42, 7), (8, 72)]]
    g["Y"] = [[(7, 7), (25, 41), (43, 7)], [(25, 41), (25, 72)]]
    g["Z"] = [[(8, 7), (42, 7), (8, 72), (42, 72)]]
    g["-"] = [[(14, 39.5), (36, 39.5)]]
    return g


@cache
def glyph(ch: str) -> tuple[np.ndarray, ...]:
    """Stroke centre-lines of one character as float arrays (mm, origin top-left of its box)."""
    table = _glyphs()
    if ch not in table:
        raise KeyError(f"no glyph for {ch!r}")
    return tuple(np.asarray(p, dtype=np.float64) for p in table[ch])
