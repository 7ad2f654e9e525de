"""Number plates drawn to BS AU 145e geometry, as reflectance textures for the scene renderer.

Geometry (mm): character 79 high x 50 wide, stroke 14, spacing 11, group gap 33, plate 520 x 111;
square plates 279 x 203 on two lines. Front plates white, rear yellow, characters black; the
plate background is retroreflective (the scene brightens it under IR), the characters are not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from sim.glyphs import CHAR_H, CHAR_W, STROKE, glyph
from sim.plates import PlateText

PLATE_W, PLATE_H = 520.0, 111.0
SQUARE_W, SQUARE_H = 279.0, 203.0
SPACING, GROUP_GAP, LINE_GAP = 11.0, 33.0, 19.0
BAND_W = 50.0

WHITE = (238, 240, 240)  # BGR
YELLOW = (24, 200, 250)
INK = (22, 22, 22)
EU_BLUE = (150, 50, 0)
GB_GREEN = (60, 120, 0)

FONTS = ("cw", "cw_thin", "cw_bold", "hershey", "hershey_plain")


@dataclass(frozen=True, slots=True)
class PlateStyle:
    rear: bool = False  # yellow rear plate, else white front
    two_line: bool = False  # square plate
    side_band: bool = False  # UK identifier band on the left
    raised: bool = False  # 3D characters casting a shadow
    screws: bool = False
    border: bool = False
    dirt: float = 0.0  # 0..1
    wear: float = 0.0  # 0..1
    font: str = "cw"
    spacing_scale: float = 1.0  # non-compliant plates squeeze or stretch spacing
    seed: int = 0

    @staticmethod
    def random(rng: np.random.Generator, rear: bool | None = None, variety: float = 0.2) -> PlateStyle:
        """A style with real-world frequencies; `variety` raises the share of unusual fonts/spacing."""
        odd = rng.random() < variety
        return PlateStyle(
            rear=bool(rng.random() < 0.5) if rear is None else rear,
            two_line=bool(rng.random() < 0.04),
            side_band=bool(rng.random() < 0.25),
            raised=bool(rng.random() < 0.15),
            screws=bool(rng.random() < 0.35),
            border=bool(rng.random() < 0.1),
            dirt=float(rng.beta(1.2, 6.0)),
            wear=float(rng.beta(1.0, 8.0)),
            font=str(rng.choice(FONTS[1:])) if odd else "cw",
            spacing_scale=float(rng.uniform(0.6, 1.3)) if odd else 1.0,
            seed=int(rng.integers(2**31)),
        )


@dataclass(slots=True)
class PlateImage:
    image: np.ndarray  # HxWx3 BGR reflectance texture, uint8
    px_per_mm: float
    size_mm: tuple[float, float]
    char_boxes_mm: list[tuple[float, float, float, float]] = field(default_factory=list)  # x, y, w, h

    @property
    def corners_mm(self) -> np.ndarray:
        w, h = self.size_mm
        return np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)


def _lines(text: PlateText, two_line: bool) -> list[list[str]]:
    """Groups of characters per line, as printed."""
    groups = [g for g in text.display.replace("-", " - ").split(" ") if g]
    if not two_line or len(groups) < 2:
        return [groups]
    return [groups[:1], groups[1:]]


def _line_width(groups: list[str], cw: float, sp: float, gap: float) -> float:
    w = 0.0
    for i, g in enumerate(groups):
        w += len(g) * cw + (len(g) - 1) * sp
        if i:
            w += gap
    return w


def _draw_glyph(img: np.ndarray, ch: str, x: float, y: float, sx: float, sy: float, s: float, style: PlateStyle,
                colour: tuple[int, int, int]) -> None:
    thick = {"cw": STROKE, "cw_thin": 10.5, "cw_bold": 16.0}.get(style.font, STROKE)
    if style.font.startswith("hershey"):
        face = cv2.FONT_HERSHEY_DUPLEX if style.font == "hershey" else cv2.FONT_HERSHEY_SIMPLEX
        (tw, th), _ = cv2.getTextSize(ch, face, 1.0, 1)
        scale = CHAR_H * sy * s / max(th, 1)
        t = max(1, int(round(12.0 * s * sy)))
        (tw, th), _ = cv2.getTextSize(ch, face, scale, t)
        ox = x * s + (CHAR_W * sx * s - tw) / 2
        cv2.putText(img, ch, (int(round(ox)), int(round((y + CHAR_H * sy) * s))), face, scale, colour, t, cv2.LINE_AA)
        return
    shift = 4
    k = float(1 << shift)
    pts = [np.round(((p * (sx, sy)) + (x, y)) * s * k).astype(np.int32) for p in glyph(ch)]
    cv2.polylines(img, pts, False, colour, max(1, int(round(thick * s * min(sx, 1.0)))), cv2.LINE_AA, shift)


def render_plate(text: PlateText, style: PlateStyle | None = None, px_per_mm: float = 1.0) -> PlateImage:
    style = style or PlateStyle()
    rng = np.random.default_rng(style.seed)
    s = px_per_mm
    foreign = text.format == "foreign"
    two_line = style.two_line and not foreign
    w_mm, h_mm = (SQUARE_W, SQUARE_H) if two_line else (PLATE_W, PLATE_H)
    bg = YELLOW if style.rear else WHITE
    img = np.empty((int(round(h_mm * s)), int(round(w_mm * s)), 3), np.uint8)
    img[:] = bg

    left = 0.0
    if foreign or style.side_band:
        left = BAND_W
        band_colour = EU_BLUE if foreign or rng.random() < 0.5 else GB_GREEN
        cv2.rectangle(img, (0, 0), (int(BAND_W * s), img.shape[0]), band_colour, -1)
        code = text.country if foreign else "UK"
        fs = 0.9 * s * (BAND_W / 50.0) * (1.0 if len(code) <= 2 else 0.7)
        (tw, _th), _ = cv2.getTextSize(code, cv2.FONT_HERSHEY_SIMPLEX, fs, max(1, int(2 * s)))
        org = (int((BAND_W * s - tw) / 2), int(h_mm * s * 0.85))
        cv2.putText(img, code, org, cv2.FONT_HERSHEY_SIMPLEX, fs, (235, 235, 235), max(1, int(2 * s)), cv2.LINE_AA)

    sx = 0.82 if foreign else 1.0
    cw = CHAR_W * sx
    sp = (7.0 if foreign else SPACING) * style.spacing_scale
    gap = (14.0 if foreign else GROUP_GAP) * style.spacing_scale
    lines = _lines(text, two_line)
    avail = w_mm - left
    # Squeeze when a non-standard spacing would overflow the plate.
    widest = max(_line_width(g, cw, sp, gap) for g in lines)
    if widest > avail - 16:
        f = (avail - 16) / widest
        cw, sp, gap, sx = cw * f, sp * f, gap * f, sx * f
    n_lines = len(lines)
    block_h = n_lines * CHAR_H + (n_lines - 1) * LINE_GAP
    y0 = (h_mm - block_h) / 2
    boxes: list[tuple[float, float, float, float]] = []
    for li, groups in enumerate(lines):
        y = y0 + li * (CHAR_H + LINE_GAP)
        x = left + (avail - _line_width(groups, cw, sp, gap)) / 2
        for gi, grp in enumerate(groups):
            if gi:
                x += gap - sp
            for _ in grp:
                boxes.append((x, y, cw, CHAR_H))
                x += cw + sp
    chars = [c for line in lines for g in line for c in g]
    if style.raised:
        d = 2.5
        for ch, (x, y, _, _) in zip(chars, boxes, strict=True):
            _draw_glyph(img, ch, x + d, y + d, sx, 1.0, s, style, tuple(int(c * 0.55) for c in bg))
    for ch, (x, y, _, _) in zip(chars, boxes, strict=True):
        _draw_glyph(img, ch, x, y, sx, 1.0, s, style, INK)
    if style.border:
        t = max(1, int(round(3 * s)))
        cv2.rectangle(img, (t, t), (img.shape[1] - t - 1, img.shape[0] - t - 1), INK, t)
    if style.screws:
        r = max(1, int(round(6 * s)))
        cap = tuple(int(v) for v in (bg if rng.random() < 0.6 else (190, 190, 190)))
        for fx in (0.25, 0.75) if not two_line else (0.2, 0.8):
            for fy in ((0.08, 0.92) if two_line else (0.5,)):
                c = (int(fx * w_mm * s), int(fy * h_mm * s))
                cv2.circle(img, c, r, cap, -1, cv2.LINE_AA)
                cv2.circle(img, c, r, (90, 90, 90), max(1, r // 4), cv2.LINE_AA)
    if style.dirt > 0.02 or style.wear > 0.02:
        img = _weather(img, style.dirt, style.wear, rng)
    # Only 1- and 0-like glyph boxes are a full character cell; keep boxes for all for geometry checks.
    return PlateImage(img, s, (w_mm, h_mm), boxes)


def _weather(img: np.ndarray, dirt: float, wear: float, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    out = img.astype(np.float32)
    if dirt > 0.02:
        small = rng.random((max(2, h // 16), max(2, w // 16))).astype(np.float32)
        field_ = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        grad = np.linspace(0.6, 1.0, h, dtype=np.float32)[:, None]  # road grime collects low
        shade = 1.0 - dirt * 0.6 * np.clip(field_ * grad * 1.4, 0, 1)
        out *= shade[:, :, None]
    if wear > 0.02:
        n = int(wear * h * w / 40)
        ys = rng.integers(0, h, n)
        xs = rng.integers(0, w, n)
        out[ys, xs] = out[ys, xs] * 0.3 + 170
    return np.clip(out, 0, 255).astype(np.uint8)
