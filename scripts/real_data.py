"""Real photographs as training samples for the detector and the reader (the shared data set's
`real-detect` and `real-read`, train split only), with rendered UK plates composited into the real
scenes at their labelled boxes: real vehicles, light, blur and JPEG around the UK typeface and formats,
which the real data barely has (10 UK crops).

Every maker is deterministic in (seed, chunk), as `train_common.cached_chunks` needs, and takes the
licence families to keep (`--licences`), so a model can be trained on permissively licensed data only.
"""

from __future__ import annotations

import dataclasses
import math
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import train_common  # noqa: F401  (puts the repository on sys.path)

from sim.evaluate_real import held_out, read_labels

COMPOSITE_RATE = 0.4  # share of labelled plates in real scenes replaced by a rendered UK plate


@cache
def detect_items(data: Path, licences: tuple[str, ...]) -> list[dict]:
    return [r for r in read_labels(data / "real-detect" / "labels.jsonl", "train", licences) if r["plates"]]


@cache
def read_items(data: Path, licences: tuple[str, ...], calibration: bool = False) -> list[dict]:
    """Real-read train items: those the reader trains on, or (`calibration`) the held-out tenth."""
    from agent.plates import ALPHABET

    return [r for r in read_labels(data / "real-read" / "labels.jsonl", "train", licences)
            if r["text"] and all(c in ALPHABET for c in r["text"]) and held_out(r) == calibration]


def _read_scene_groups(data: Path, licences: tuple[str, ...]) -> list[dict]:
    """Every real-read train scene, in label order, as a real-detect item (file relative to `data`,
    plates with bbox; several crops of one scene give one scene), with whether any of its plates is
    in the held-out tenth."""
    by_scene: dict[str, dict] = {}
    for r in read_labels(data / "real-read" / "labels.jsonl", "train", licences):
        if r.get("scene") and r.get("bbox_in_scene"):
            s = by_scene.setdefault(r["scene"], {"file": f"real-read/{r['scene']}", "plates": [],
                                                  "source": r["source"], "licence": r["licence"], "held": False})
            s["plates"].append({"bbox": r["bbox_in_scene"]})
            s["held"] |= held_out(r)
    return list(by_scene.values())


@cache
def read_scenes(data: Path, licences: tuple[str, ...]) -> list[dict]:
    """Real-read's train scenes as real-detect items: the scenes of the held-out tenth's plates left
    out, so `--split held-out` still measures photos no model trained on."""
    return [s for s in _read_scene_groups(data, licences) if not s["held"]]


def sources(data: Path, licences: tuple[str, ...], sets: tuple[str, ...] = ("real-detect", "real-read")
            ) -> list[dict[str, object]]:
    """Source, licence and item count of what training used (the reader uses both sets: real crops,
    and real scenes with UK plates composited in; the detector real-detect, and with `real-read-scenes`
    real-read's scenes), for the model card."""
    from collections import Counter

    c = Counter((r["source"], r["licence"], kind) for kind, items in
                (("real-detect", detect_items(data, licences)), ("real-read", read_items(data, licences)),
                 ("real-read-scenes", read_scenes(data, licences)))
                if kind in sets for r in items)
    return [{"set": k, "source": s, "licence": lic, "items": n} for (s, lic, k), n in sorted(c.items())]


def bbox_quad(b: list[float]) -> np.ndarray:
    x, y, w, h = b
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)


def composite_uk(img: np.ndarray, quad: np.ndarray, rng: np.random.Generator):
    """A rendered UK plate warped over the plate at `quad`, lit like the region it covers (its mean and
    spread of brightness and its colour cast), blurred to the scene's sharpness; (image, text, two-line):
    a square two-line plate where the box is square, a one-line plate elsewhere."""
    w = float(np.linalg.norm(quad[1] - quad[0]))
    h = float(np.linalg.norm(quad[3] - quad[0]))
    two_line = w / max(h, 1e-6) < 2.6
    text, tex = _rendered_uk(rng, two_line, px_per_mm=2.0 * w / 520)
    out = composite(img, quad, tex, rng)
    return (img, None, two_line) if out is None else (out, text.vrm, two_line)


def _rendered_uk(rng: np.random.Generator, two_line: bool, px_per_mm: float):
    """A random UK mark and its rendered plate image (1-4 px a millimetre)."""
    from sim.plates import generate
    from sim.render import PlateStyle, render_plate

    text = generate(rng, foreign_rate=0.0)
    style = dataclasses.replace(PlateStyle.random(rng, variety=0.3), two_line=two_line)
    return text, render_plate(text, style, px_per_mm=max(1.0, min(4.0, px_per_mm))).image


def composite(img: np.ndarray, quad: np.ndarray, texture: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """`texture` (a plate image) warped over the plate at `quad` and lit like what it covers; None
    when the box is too small to take it."""
    return composite_at(img, quad, texture, rng)[0]


def composite_square_uk(img: np.ndarray, quad: np.ndarray, rng: np.random.Generator
                        ) -> tuple[np.ndarray, np.ndarray] | None:
    """A rendered two-line UK plate at its own shape in the middle of where the plate at `quad` was (a
    square plate in a wide plate's place, as on imported cars and motorcycles); (image, its own quad),
    None where the box is too small. The outline refiner learns square plates from these: real-detect's
    labelled plates are nearly all one-line."""
    h = float(np.linalg.norm(quad[3] - quad[0]))
    # the plate that was there goes first (filled in from around it): a square plate with a wide one's
    # ends showing beside it is no real plate, and would teach the refiner to cut real plates short
    c = quad.mean(axis=0)
    hole = np.zeros(img.shape[:2], np.uint8)
    cv2.fillConvexPoly(hole, np.round(c + (quad - c) * 1.08).astype(np.int32), 255)
    img = cv2.inpaint(img, hole, 3, cv2.INPAINT_TELEA)
    _, tex = _rendered_uk(rng, True, px_per_mm=2.0 * h / 200)
    own_w = h * tex.shape[1] / tex.shape[0]
    if float(np.linalg.norm(quad[1] - quad[0])) > own_w:
        quad = _narrowed(quad, own_w)
    out, q = composite_at(img, quad, tex, rng)
    return None if out is None else (out, q)


def composite_at(img: np.ndarray, quad: np.ndarray, texture: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray | None, np.ndarray]:
    """`composite`, and the quad the plate went to (it fills 85-100 % of `quad`, a little skewed)."""
    tex = texture.astype(np.float32)
    w = float(np.linalg.norm(quad[1] - quad[0]))
    h = float(np.linalg.norm(quad[3] - quad[0]))
    ph, pw = tex.shape[:2]
    # the label box is loose around the plate: the plate fills 85-100 % of it
    c = quad.mean(axis=0)
    fill = rng.uniform(0.85, 1.0, 2)
    q = c + (quad - c) * np.array([fill[0], fill[1]])
    q = q + rng.normal(0, 0.02 * h, q.shape)  # a little perspective
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    M = cv2.getPerspectiveTransform(src, q.astype(np.float32))
    out_h, out_w = img.shape[:2]
    region = cv2.warpPerspective(np.ones((ph, pw), np.float32), M, (out_w, out_h))
    warped = cv2.warpPerspective(tex, M, (out_w, out_h), flags=cv2.INTER_AREA)
    mask = region > 0.5
    if mask.sum() < 20:
        return None, q
    under = img[mask].astype(np.float32)
    lum = under.mean() / 255.0
    # a plate is one of the brightest things around it: light it a little above what it covers
    gain = float(np.clip(rng.uniform(0.9, 1.5) * lum / 0.75, 0.25, 1.2))
    cast = np.clip(under.mean(axis=0) / max(under.mean(), 1.0), 0.7, 1.3) if img.ndim == 3 else 1.0
    lit = warped * gain * (cast if img.ndim == 3 else 1.0)
    lit = lit + rng.uniform(0, 40)  # ambient light lifts the dark characters
    sigma = float(rng.uniform(0.0, 1.2)) * max(1.0, w / 150)
    if sigma > 0.3:
        lit = cv2.GaussianBlur(lit, (0, 0), sigma)
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 0.7)
    if img.ndim == 3:
        soft = soft[..., None]
    else:
        lit = lit.mean(axis=2) if lit.ndim == 3 else lit
    blended = img.astype(np.float32) * (1 - soft) + lit * soft
    blended += rng.normal(0, rng.uniform(0, 6), blended.shape)
    return np.clip(blended, 0, 255).astype(np.uint8), q


def _jpeg(img: np.ndarray, rng: np.random.Generator, lo: int = 30) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(lo, 96))])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else img


def photometric(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light, blur, noise and compression beyond what a photograph already has."""
    x = img.astype(np.float32) / 255.0
    x = np.clip(x ** rng.uniform(0.6, 1.6) * rng.uniform(0.5, 1.3) + rng.uniform(-0.1, 0.1), 0, 1)
    if rng.random() < 0.3:  # low contrast: haze, dirt, a dull day
        x = 0.5 + (x - 0.5) * rng.uniform(0.4, 0.9)
    out = (x * 255).astype(np.uint8)
    if rng.random() < 0.4:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.3, 1.5)))
    if rng.random() < 0.3:
        out = np.clip(out + rng.normal(0, rng.uniform(2, 12), out.shape), 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        out = _jpeg(out, rng)
    return out


def _scene(data: Path, r: dict) -> np.ndarray | None:
    path = data / r["file"] if r["file"].startswith("real-read/") else data / "real-detect" / r["file"]
    return cv2.imread(str(path), cv2.IMREAD_COLOR)


def detector_chunk(i: int, data: Path, seed: int, per_chunk: int, licences: tuple[str, ...],
                   train_hw: tuple[int, int], mask_scale: tuple[float, float] = (1.0, 1.0),
                   rotate_deg: float = 0.0, read_scenes_share: float = 0.0) -> dict[str, np.ndarray]:
    """Windows of real scenes at the scales the run-time letterbox gives them (and up to 2.5x
    closer, as the detector's second look sees a plate), with plate masks from the labelled boxes.
    `rotate_deg`: half the scenes turned up to this many degrees either way, boxes with them (plates
    on slopes and cameras off level: real photos have few, and the detector missed those it met).
    `read_scenes_share`: that share of the windows from real-read's scenes (`read_scenes`): whole
    European cars photographed from the roadside, which real-detect (Spanish 320x240 frames, Romanian
    dashcam, Kaggle and Open Images) has few of."""
    from train_detector import plate_mask

    from agent.recognise.preprocess import DET_H, DET_STRIDE, DET_W, to_grey

    th, tw = train_hw
    rng = np.random.default_rng([seed, 5000 + i])
    items = detect_items(data, licences)
    extra = read_scenes(data, licences) if read_scenes_share > 0 else []
    xs = np.zeros((per_chunk, th, tw), np.uint8)
    ys = np.zeros((per_chunk, th // DET_STRIDE, tw // DET_STRIDE), np.uint8)
    k = 0
    while k < per_chunk:
        pool = extra if extra and rng.random() < read_scenes_share else items
        r = pool[int(rng.integers(len(pool)))]
        img = _scene(data, r)
        if img is None:
            continue
        quads = [bbox_quad(p["bbox"]) for p in r["plates"]]
        for q in quads:
            if rng.random() < COMPOSITE_RATE and min(q[2] - q[0]) >= 12:
                img, _, _ = composite_uk(img, q, rng)
        if rng.random() < 0.3:
            img = _jpeg(img, rng)
        grey = to_grey(img)
        quads = [shrink(q, mask_scale) for q in quads]
        if rotate_deg > 0 and rng.random() < 0.5:
            grey, quads = rotated(grey, quads, float(rng.uniform(-rotate_deg, rotate_deg)))
        h, w = grey.shape
        s = min(DET_W / w, DET_H / h) * float(np.exp(rng.uniform(math.log(0.7), math.log(2.5))))
        sw, sh = max(1, int(w * s)), max(1, int(h * s))
        scaled = cv2.resize(grey, (sw, sh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        canvas = np.zeros((max(sh, th), max(sw, tw)), np.uint8)
        if rng.random() < 0.5:
            canvas[:] = int(rng.integers(0, 256))
        canvas[:sh, :sw] = scaled
        ox = int(rng.integers(0, canvas.shape[1] - tw + 1))
        oy = int(rng.integers(0, canvas.shape[0] - th + 1))
        if rng.random() < 0.8:  # mostly windows that hold a plate
            c = quads[int(rng.integers(len(quads)))].mean(axis=0) * s
            ox = int(np.clip(c[0] - rng.uniform(0.1, 0.9) * tw, 0, canvas.shape[1] - tw))
            oy = int(np.clip(c[1] - rng.uniform(0.1, 0.9) * th, 0, canvas.shape[0] - th))
        xs[k] = photometric(canvas[oy:oy + th, ox:ox + tw], rng)
        ys[k] = plate_mask([q * s - (ox, oy) for q in quads], (th, tw), DET_STRIDE)
        k += 1
    return {"x": xs, "y": ys}


def rotated(grey: np.ndarray, quads: list[np.ndarray], degrees: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """The image turned `degrees` about its centre (edges mirrored, so no black wedge marks the turn)
    and the plate quadrilaterals with it."""
    h, w = grey.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    out = cv2.warpAffine(grey, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return out, [q @ m[:, :2].T + m[:, 2] for q in quads]


def shrink(q: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """An axis-aligned box quad scaled around its centre (width, height)."""
    c = q.mean(axis=0)
    return (q - c) * np.asarray(scale, np.float64) + c


def _jitter_quad(q: np.ndarray, rng: np.random.Generator, size: float = 0.06, angle_deg: float = 4.0) -> np.ndarray:
    """The outline off the way a detector's is: scaled, shifted, turned a little."""
    c = q.mean(axis=0)
    w = np.linalg.norm(q[1] - q[0])
    h = np.linalg.norm(q[3] - q[0])
    a = np.radians(rng.uniform(-angle_deg, angle_deg))
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    sc = 1 + rng.uniform(-size, size, 2)
    shift = rng.normal(0, size / 2, 2) * (w, h)
    return (q - c) * sc @ R.T + c + shift


def loosen(q: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The outline a detector gives a real plate: on real-detect dev, with the finder, the detection
    holding a labelled plate's centre was a median 1.04-1.2x its width and 1.25-1.3x its height, a
    quarter of them over 1.6x, and off centre (session 11, models/candidates/README.md)."""
    c = q.mean(axis=0)
    w = np.linalg.norm(q[1] - q[0])
    h = np.linalg.norm(q[3] - q[0])
    sw, sh = np.exp(rng.uniform(np.log(0.95), np.log(1.5))), np.exp(rng.uniform(np.log(0.9), np.log(1.9)))
    shift = rng.normal(0, 0.06, 2) * (w, h)
    return (q - c) * (sw, sh) + c + shift


def composite_glyphs(img: np.ndarray, quad: np.ndarray, rng: np.random.Generator, data: Path,
                     licences: tuple[str, ...], two_share: float = 0.0, typeface_share: float = 0.0,
                     font_dir: Path | None = None):
    """A plate set from real character tiles (`glyph_plates`) composited at `quad` like `composite_uk`;
    (image, text or None, two-line, the plate's quad). `two_share` > 0: a two-line plate where the box
    is square, and this share of the others too, set in the middle of the box at its own shape (a
    square plate stretched over a wide box would not look like one); 0: one line always (as before);
    `typeface_share`, `font_dir`: this share set in an installed typeface (`glyph_plates.glyph_plate`)."""
    from glyph_plates import glyph_plate

    w = float(np.linalg.norm(quad[1] - quad[0]))
    h = float(np.linalg.norm(quad[3] - quad[0]))
    two = two_share > 0 and (w / max(h, 1e-6) < 2.6 or rng.random() < two_share)
    made = glyph_plate(rng, data, licences, two_line=two, typeface_share=typeface_share, font_dir=font_dir)
    if made is None:
        return img, None, False, quad
    tex, text = made
    own_w = h * tex.shape[1] / tex.shape[0]  # the box's height at the plate's own shape
    if two and w > own_w:
        quad, w = _narrowed(quad, own_w), own_w
    f = min(1.0, 2.0 * w / tex.shape[1])  # shrunk smoothly first: warping alone would alias the strokes
    if f < 1.0:
        tex = cv2.resize(tex, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    out = composite(img, quad, tex, rng)
    return (img, None, False, quad) if out is None else (out, text, two, quad)


def _narrowed(quad: np.ndarray, width: float) -> np.ndarray:
    """`quad` (TL, TR, BR, BL) cut to `width` along its top edge, about its centre."""
    c = quad.mean(axis=0)
    along = (quad[1] - quad[0]) / max(float(np.linalg.norm(quad[1] - quad[0])), 1e-6)
    down = (quad[3] - quad[0]) / 2
    half = along * width / 2
    return np.array([c - half - down, c + half - down, c + half + down, c - half + down], np.float64)


def crop_weights(crops: list[dict], by_country: dict[str, float]) -> np.ndarray | None:
    """How likely each real crop is drawn (summing to one): its country's weight from `by_country`
    (1 where not named); None when nothing is named (all alike). Brazilian crops are half the real
    ones: weighing them down gives the European typefaces the unit's neighbours drive with more say."""
    if not by_country:
        return None
    w = np.array([float(by_country.get(str(r.get("country", "")), 1.0)) for r in crops])
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"country weights {by_country} leave no crop to draw")
    return w / w.sum()


def parse_country_weights(text: str) -> dict[str, float]:
    """'br=0.4,ar=0.8' -> {'br': 0.4, 'ar': 0.8}; a clear error for anything else."""
    out: dict[str, float] = {}
    for part in filter(None, (t.strip() for t in text.split(","))):
        name, sep, value = (v.strip() for v in part.partition("="))
        try:
            weight = float(value) if sep and name else None
        except ValueError:
            weight = None
        if weight is None:
            raise ValueError(f"country weight {part!r} is not COUNTRY=WEIGHT (e.g. br=0.4)")
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"country weight {part!r} must be a finite number >= 0")
        out[name.lower()] = weight
    return out


def reader_chunk(i: int, data: Path, seed: int, per_chunk: int, licences: tuple[str, ...],
                 loose: float = 0.0, glyphs: float = 0.0, countries: tuple[tuple[str, float], ...] = (),
                 invert: float = 0.0, glyph_two: float = 0.0, typefaces: float = 0.0,
                 font_dir: Path | None = None) -> dict[str, np.ndarray]:
    """Real plates as the recogniser cuts them: a real crop (its own outline, or its outline in its
    scene where the data has the scene), or a rendered UK plate composited into a real scene, each cut
    with the run-time margins, an outline error and more light, blur and compression; `loose`: this
    share with the looser outline a detector gives real plates (`loosen`); `glyphs`: this share of the
    composited plates set from real character tiles instead of rendered (`glyph_plates`); `countries`:
    (country, weight) pairs weighing how often real crops are drawn (`crop_weights`); `invert`: this
    share turned negative (light characters on a dark plate: French black plates, UK black-and-silver
    ones; a reader that saw only dark characters reads them as nothing or as garbage); `glyph_two`: the
    tile-set plates in square boxes, and this share of the others, set on two lines (`composite_glyphs`);
    `typefaces`: this share of the tile-set plates set in an installed typeface from `font_dir` instead."""
    from train_reader import MAX_LABEL, _empty_chunk

    from agent.recognise.consensus import VIEWS
    from agent.recognise.preprocess import encode_label, reader_crop
    from agent.recognise.rectify import crop_plate

    rng = np.random.default_rng([seed, 7000 + i])
    crops, scenes = read_items(data, licences), detect_items(data, licences)
    xs, ys = _empty_chunk(per_chunk)
    # a few hundred items per chunk, each decoded once and cut many ways (decoding is most of the cost)
    p = crop_weights(crops, dict(countries))
    crop_pool = [crops[int(j)] for j in rng.choice(len(crops), min(len(crops), 400), replace=False, p=p)]
    scene_pool = [scenes[int(j)] for j in rng.choice(len(scenes), min(len(scenes), 300), replace=False)]
    images: dict[str, np.ndarray | None] = {}

    def load(path: Path) -> np.ndarray | None:
        if str(path) not in images:
            images[str(path)] = cv2.imread(str(path), cv2.IMREAD_COLOR)
        return images[str(path)]

    k = 0
    while k < per_chunk:
        if rng.random() < 0.5:
            r = crop_pool[int(rng.integers(len(crop_pool)))]
            text, two = r["text"], r["lines"] == 2
            if r.get("scene") and rng.random() < 0.7:
                img = load(data / "real-read" / r["scene"])
                quad = bbox_quad(r["bbox_in_scene"])
            else:
                img = load(data / "real-read" / r["file"])
                quad = None if img is None else bbox_quad([0, 0, img.shape[1], img.shape[0]])
            if img is None:
                continue
        else:
            r = scene_pool[int(rng.integers(len(scene_pool)))]
            img = load(data / "real-detect" / r["file"])
            ok = [p for p in r["plates"] if p["bbox"][2] >= 24] if img is not None else []
            if not ok:
                continue
            quad = bbox_quad(ok[int(rng.integers(len(ok)))]["bbox"])
            if glyphs and rng.random() < glyphs:
                img, text, two, quad = composite_glyphs(img, quad, rng, data, licences, glyph_two, typefaces, font_dir)
            else:
                img, text, two = composite_uk(img, quad, rng)
            if text is None:
                continue
            c = quad.mean(axis=0)
            quad = c + (quad - c) * 0.93  # the plate inside its loose label box
        v = VIEWS[int(rng.integers(len(VIEWS)))]
        q = _jitter_quad(loosen(quad, rng) if rng.random() < loose else quad, rng)
        try:
            crop = crop_plate(img, q, v.margin_w, v.margin_h, v.shift, v.shift_up)
        except ValueError:
            continue
        if rng.random() < 0.35:  # resolution loss: plates seen small (crop 16-48 px high, characters 8-25 px)
            h = crop.shape[0]
            target = float(rng.uniform(16, 48))
            if h > target:
                f = target / h
                small = cv2.resize(crop, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
                crop = cv2.resize(small, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_LINEAR)
        crop = photometric(crop, rng)
        if invert and rng.random() < invert:
            crop = 255 - crop
        xs[k] = reader_crop(crop, two)  # one or two lines as the plate has them, whatever the crop's shape
        lab = encode_label(text)
        ys[k, : len(lab)] = lab
        ys[k, MAX_LABEL] = len(lab)
        k += 1
    return {"x": xs, "y": ys}


@cache
def scene_plates(data: Path, licences: tuple[str, ...]) -> list[tuple[Path, list[np.ndarray]]]:
    """Every train-split real scene with its labelled plate boxes as quads: real-detect's scenes and
    real-read's (several crops of one scene give one scene)."""
    scenes = [(data / "real-detect" / r["file"], r["plates"]) for r in detect_items(data, licences)]
    scenes += [(data / s["file"], s["plates"]) for s in sorted(_read_scene_groups(data, licences),
                                                               key=lambda s: s["file"])]
    return [(path, [bbox_quad(p["bbox"]) for p in plates]) for path, plates in scenes]


def outline_chunk(i: int, data: Path, seed: int, per_chunk: int, licences: tuple[str, ...],
                  models: Path, two_line_share: float = 0.0) -> dict[str, np.ndarray]:
    """Outline-refiner samples on real scenes: the outline the shipped detector (finder included, after
    its closer look) gives each labelled plate, outlines drawn around it and loose ones drawn around the
    label (`loosen`: real plates' outlines are mostly too big), each pointing at the labelled box.
    `two_line_share`: in that share of the scenes one plate is replaced by a square two-line UK plate
    (`composite_square_uk`), its own quad the target: the detector outlines such a plate with its
    surround, and the refiner had learnt to keep that or cut it to one line."""
    from train_outline import add_samples

    from agent.recognise.outline import OUTLINE_H, OUTLINE_W
    from agent.recognise.preprocess import to_grey
    from agent.recognise.recogniser import MAX_PLATES, Recogniser
    from sim.evaluate import overlap

    rec = Recogniser(models, threads=1, calibrated=False)
    rng = np.random.default_rng([seed, 9000 + i])
    items = scene_plates(data, licences)
    xs = np.zeros((per_chunk, OUTLINE_H, OUTLINE_W), np.uint8)
    ys = np.zeros((per_chunk, 8), np.float32)
    k = 0
    while k < per_chunk:
        path, truths = items[int(rng.integers(len(items)))]
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            continue
        if two_line_share > 0 and rng.random() < two_line_share:
            wide = [j for j, t in enumerate(truths) if min(t[2] - t[0]) >= 24]
            if not wide:
                continue
            j = wide[int(rng.integers(len(wide)))]
            made = composite_square_uk(img, truths[j], rng)
            if made is None:
                continue
            img, q = made
            truths = [q if n == j else t for n, t in enumerate(truths)]  # a copy: scene_plates is cached
        if rng.random() < 0.3:
            img = _jpeg(img, rng)
        grey = photometric(to_grey(img), rng)
        found = sorted(rec.detector.detect(grey), key=lambda d: -d.score)[:MAX_PLATES]
        dets = rec.detector.refine_all(grey, found)
        for truth in truths:
            box = [truth[0, 0], truth[0, 1], truth[1, 0] - truth[0, 0], truth[2, 1] - truth[0, 1]]
            if min(box[2:]) < 6:
                continue
            c = truth.mean(axis=0)
            holding = [d for d in dets if overlap(box, d.bbox) > 0.2 or (
                d.bbox[0] <= c[0] <= d.bbox[0] + d.bbox[2] and d.bbox[1] <= c[1] <= d.bbox[1] + d.bbox[3])]
            quads = [_jitter_quad(loosen(truth, rng), rng), _jitter_quad(truth, rng)]
            if holding:
                q = max(holding, key=lambda d: overlap(box, d.bbox)).quad
                quads += [q, _jitter_quad(q, rng)]
            k = add_samples(xs, ys, k, grey, quads, truth)
    return {"x": xs[:k], "y": ys[:k]}
