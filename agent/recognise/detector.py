"""Plate detector: the TFLite model's plate-probability map -> plate quadrilaterals in image pixels.

Any image is letterboxed whole into the detector input: one pass, whatever its size (tiles of very large
photographs at a finer scale only when asked, `tile`). A photograph up to about 800x600 (a 320x240 or
640x480 photo, which the letterbox hardly shrinks), or any the magnifier holds whole (up to 1024x768),
is looked at instead by the finder alone, MAGNIFY times larger, whole, in one run of the finder exported
at a larger input (`magnifier`, `magnified_scale`): its far plates are 20-30 px wide, too small at the
letterbox's scale, and the simulator-trained detector finds nothing there the finder does not. Each
plate found (in a frame the magnifier does not take) is then looked at again in a window around it,
scaled so the plate is about REFINE_WIDTH detector pixels wide: at the frame's scale a plate is only a
few mask cells tall, and its outline (which the reader's crop follows) comes out about a third more
exact from the closer look. The closer looks share detector runs, four quarter-size windows to a run.
A plate sloping 25 degrees or more can come out of the frame's mask in pieces, and one beside a
bright surround merged with it; for a detection that read badly the recogniser tries the other
outlines `alternatives` finds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from agent.recognise.preprocess import DET_H, DET_STRIDE, DET_W, detector_input, to_grey
from agent.recognise.runtime import Model

TILE_SCALE = 0.4  # detector scale used for tiles of large images
# Photographs whose letterbox scale is MAGNIFY_MIN_SCALE or more (up to 800x600, 1066x600 at 16:9) are
# looked at MAGNIFY times as large. Measured on the real-detect dev photos (session 15, in overlapping tiles of the
# finder's own input): plates found 68.8 -> 76.4 % (plates under 30 px wide 37 -> 53 %); twice 74.3 %
# with tiles that do not overlap; 1.7x 73.5 %, 2.5x 75.2 %, 3x 72.3 % (more clutter crowds the plates out).
# Since session 23 in one run of the finder exported at 768x1024 (`scripts/export_magnified.py`): a
# 320x240 photo at 3.2x fills it, where six tiles took six runs of the 640x384 finder.
# Until session 23 only photos under 640x480 were (scale 0.85, for the six tiles' cost); one run costs
# little more than the letterboxed passes it replaces, and at 0.6 the 200 real-read train scenes
# scaled to 640x480 had 199 plates found against 190 (161 read exactly against 155, 93 published
# against 96, none wrong), at 800x600 198 against 192 (162 against 158; 96 published both), and the
# real-detect train split's 1280x720 Romanian photos scaled to 800x450 192 of 193 against 184.
# Larger frames (the unit's own 1280x720, letterbox scale 0.5) get the letterboxed passes only.
MAGNIFY = 2.0
MAGNIFY_MIN_SCALE = 0.6
# A photograph the magnifier holds whole at its own resolution or larger (up to 1024x768) is magnified
# too, whatever its letterbox scale: the letterbox would halve a 1024x768 photo (since session 27).
# In the 200 real-read train scenes (about 150 of them such photos, mostly 1024x768 French cars, which no
# finder trains on) plates found went from 185 to 191, plates read exactly from 167 to 170, published
# reads from 110 to 116 (wrong or unlabelled 3 -> 5: the two new are plates of other vehicles the labels
# leave out); the held-out tenth of them: 17 -> 16 of 21 read. The unit's 1280x720 frames do not fit.
REFINE_WIDTH = 140.0  # plate width in detector pixels for the second, closer look
# A steeply sloping plate can come out of the frame's mask as a piece of itself; looked at with the
# piece this wide (detector pixels), a whole plate 2-5 times its width is at a scale the detector reads.
CONTEXT_WIDTH = 35.0
# Every closer look shares a run, four quarter-size windows to it (a real photograph's clutter makes 5-6
# regions an image). Until session 19 the likeliest region had a whole run of its own (two until session
# 14); without it (session 19): simulated held-out sets 384 / 413 / 369 plates read where it read
# 384 / 412 / 366 (seeds 9200007 / 9100003 / 9300011), real-detect train photos 423 / 424 of 518 plates
# found, real-read train scenes 164 exact both, and 5-10 % less time a real photo.


@dataclass(frozen=True, slots=True)
class MaskSpread:
    """How far the probability mask spills over a plate, in detector-input pixels: measured mask size
    = gain x plate size + edge, and square plates' masks `square_w` times too wide. Fitted on 2,500
    held-out simulated scenes (seed 9100003): one-line width 1.035 x + 3.9, height 1.036 x + 5.2;
    two-line width 1.25 x."""

    edge_w: float = 3.9
    edge_h: float = 5.2
    gain: float = 1.035
    square_aspect: float = 2.2
    square_w: float = 1.2


SPREAD = MaskSpread()
MAX_SLOPE = math.radians(60)  # steeper than this is not a plate seen by a roadside camera
MAX_ASPECT = 6.5  # one plate is at most ~5:1 (UK 520x111 mm, EU with its band); longer is a merged region
SPLIT_THRESHOLDS = (0.8, 0.95)  # looked at in turn when a region is too long for one plate


@dataclass(frozen=True, slots=True)
class Detection:
    quad: np.ndarray  # (4, 2) image points: top-left, top-right, bottom-right, bottom-left
    score: float
    # outlined by a finder that learnt real photographs: the simulator-trained detector's closer look
    # replaces its outline only where the two agree (`PlateDetector.finder_agree`)
    from_finder: bool = False

    @classmethod
    def whole(cls, img: np.ndarray) -> Detection:
        """The image's edges as a plate's outline: a plate crop handed over whole."""
        h, w = img.shape[:2]
        return cls(np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64), 1.0)

    def _corners(self) -> tuple[float, float, float, float]:
        (x0, y0), (x1, y1) = self.quad.min(axis=0).tolist(), self.quad.max(axis=0).tolist()
        return x0, y0, x1, y1

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = self._corners()
        left, top = math.floor(x0), math.floor(y0)
        return left, top, math.ceil(x1) - left, math.ceil(y1) - top

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """The outline's box (x, y, w, h) unrounded: `bbox` rounds outwards, which on a plate 10x3 px
        adds a third to its height; measured against labelled boxes, this is the outline's own box."""
        x0, y0, x1, y1 = self._corners()
        return x0, y0, x1 - x0, y1 - y0

    @property
    def size(self) -> tuple[float, float]:
        (ax, ay), (bx, by), _, (dx, dy) = self.quad.tolist()  # called for every region many times a frame
        return math.hypot(bx - ax, by - ay), math.hypot(dx - ax, dy - ay)


def windows(width: int, height: int, tile: bool = False) -> list[tuple[int, int, int, int]]:
    """Regions (x0, y0, x1, y1) to run the detector on: the whole image, letterboxed, in one pass; with
    `tile`, tiles of a large image too."""
    out = [(0, 0, width, height)]
    if not tile or min(DET_W / width, DET_H / height) >= TILE_SCALE * 0.9:
        return out
    tw, th = int(DET_W / TILE_SCALE), int(DET_H / TILE_SCALE)
    step_x, step_y = int(tw * 0.75), int(th * 0.75)
    for y0 in range(0, max(1, height - th // 4), step_y):
        for x0 in range(0, max(1, width - tw // 4), step_x):
            out.append((x0, y0, min(width, x0 + tw), min(height, y0 + th)))
    return out


def magnified_scale(width: int, height: int, size: tuple[int, int]) -> float | None:
    """The scale of the magnified pass over an image: MAGNIFY times the letterbox's, as far as the
    magnifier's input `size` (height, width) holds the whole image; None for an image the letterbox
    scales by less than MAGNIFY_MIN_SCALE that the magnifier cannot hold whole at its own resolution
    (the unit's 1280x720 frames; a 1024x768 photo it holds)."""
    s0 = min(DET_W / width, DET_H / height)
    if s0 < MAGNIFY_MIN_SCALE and (width > size[1] or height > size[0]):
        return None
    return min(MAGNIFY * s0, size[1] / width, size[0] / height)


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    return inter / max(1, a[2] * a[3] + b[2] * b[3] - inter)


def _closer_width(d: Detection) -> float:
    """Width in image pixels of the closer look's window: the plate REFINE_WIDTH detector pixels wide."""
    return max(DET_W * d.size[0] / REFINE_WIDTH, 2.0 * d.size[0])


def overlap(a, b) -> float:
    """Intersection of two [x, y, w, h] boxes over the smaller one."""
    iw = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return iw * ih / max(1, min(a[2] * a[3], b[2] * b[3]))


class PlateDetector:
    def __init__(self, model: Model, threshold: float = 0.5, min_cells: int = 3, tile: bool = False,
                 finder: Model | None = None, finder_threshold: float | None = None,
                 finder_adds: bool = False, magnify: bool = True, finder_agree: float = 0.0,
                 magnifier: Model | None = None) -> None:
        """`finder`: a second detector for the first, whole-frame pass only (one trained on real photographs
        finds plates the simulator never showed); `model` then makes the closer looks, which set the
        outline the reader reads along. `magnify`: the finder looks at small photographs magnified, by
        `magnifier` (the finder at a larger input; without one, at the letterbox's scale).
        `finder_agree`: a region the finder outlined takes the closer look's outline only where the
        two boxes overlap at least this much (IoU; 0: always, as the detector's own regions do). The
        simulator-trained detector outlines real plates worse than a finder trained on them (often the
        whole bumper); on simulated plates the two agree and the closer look's more exact outline is
        kept."""
        for m in (model, finder):
            if m is not None and m.input_shape[1:3] != (DET_H, DET_W):
                raise ValueError(f"detector model input {m.input_shape} is not (1, {DET_H}, {DET_W}, 1)")
        if magnifier is not None and (magnifier.input_shape[1] < DET_H or magnifier.input_shape[2] < DET_W):
            raise ValueError(f"magnifier input {magnifier.input_shape} is smaller than ({DET_H}, {DET_W})")
        self.model = model
        self.finder = finder
        self.finder_threshold = finder_threshold  # a stricter cut for the finder: fewer junk regions to look at
        self.finder_adds = finder_adds  # the finder's regions join the detector's own whole-frame pass
        self.threshold = threshold
        self.min_cells = min_cells
        self.tile = tile
        self.magnify = magnify
        self.magnifier = magnifier
        self.finder_agree = finder_agree

    def probability_map(self, img: np.ndarray, model: Model | None = None, scale: float | None = None
                        ) -> tuple[np.ndarray, float]:
        """The model's plate probabilities over `img` letterboxed into its input (at most `scale`)."""
        m = model or self.model
        x, s = detector_input(img, m.input_shape[1:3], scale)
        return m.run(x)[..., 0], s

    def magnified(self, height: int, width: int) -> float | None:
        """The scale of the magnified pass over an image this size; None: the letterboxed passes."""
        if not (self.magnify and self.magnifier):
            return None
        return magnified_scale(width, height, self.magnifier.input_shape[1:3])

    def detect(self, img: np.ndarray) -> list[Detection]:
        grey = to_grey(img)
        h, w = grey.shape
        magnified = self.magnified(h, w)
        if magnified is not None:
            # A small photograph (never the unit's frame) is looked at by the finder magnified only. At
            # the letterbox's scale as well it found no more plates (session 23: 285 against 286 of the
            # 343 dev, 515 against 513 of 597 train ones), nor did the simulator-trained detector's pass
            # (287 both; 527 against 525), which added 1.6 regions of clutter a dev photo; magnified,
            # that detector found fewer (73.2 %, session 15).
            prob, s = self.probability_map(grey, self.magnifier, magnified)
            return self._suppress(self._components(prob, s, 0, 0, self.finder_threshold, from_finder=True))
        found: list[Detection] = []
        for x0, y0, x1, y1 in windows(w, h, self.tile):
            found.extend(self._first_pass(grey, x0, y0, x1, y1))
            if self.finder is not None and self.finder_adds:
                prob, s = self.probability_map(grey[y0:y1, x0:x1])
                found.extend(self._components(prob, s, x0, y0))
        return self._suppress(found)

    def _first_pass(self, grey: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> list[Detection]:
        """Regions in one window by the finder at its own cut (the detector where there is no finder)."""
        prob, s = self.probability_map(grey[y0:y1, x0:x1], self.finder)
        if self.finder is None:
            return self._components(prob, s, x0, y0)
        return self._components(prob, s, x0, y0, self.finder_threshold, from_finder=True)

    def outlines(self, grey: np.ndarray) -> list[Detection]:
        """Plates in the frame, each outlined by a second, closer look."""
        return self.refine_all(grey, self.detect(grey))

    def refine(self, grey: np.ndarray, d: Detection) -> Detection:
        """The same plate seen closer (see module docstring); the first outline when the closer look
        does not find it again."""
        return self.refine_all(grey, [d])[0]

    def refine_all(self, grey: np.ndarray, dets: list[Detection]) -> list[Detection]:
        """`refine` for each of `dets`, four to a detector run (`_closer_looks`); a finder's region only
        where the closer look agrees with it (`finder_agree`). No closer look in a photo the magnifier
        takes: its regions come back as they are."""
        # Since session 27 a magnified photo's regions get no closer look. They are the finder's, at twice
        # the letterbox's scale, and the simulator-trained detector's closer look replaces a finder outline
        # only where the two agree (`finder_agree`): there it changed little. Without it, in the same runs:
        # 532 against 533 of 597 plates found in every seventh real-detect train photo (39 published both);
        # the 200 real-read train scenes 168 against 170 read exactly, 112 against 111 of them published; UK
        # marks composited into the real-detect train photos 85.4 against 85.3 % exact, 965 against 955
        # published, 3 against 4 wrong; the 303 real dev photos' p50 92.0 against 105.3 ms (alternating).
        if self.magnified(*grey.shape[:2]) is not None:
            return list(dets)
        looks = self._closer_looks(grey, dets)
        out = []
        for d, found in zip(dets, looks, strict=True):
            w0, h0 = max(d.size[0], 1e-6), max(d.size[1], 1e-6)
            c = d.quad.mean(axis=0)
            agree = self.finder_agree if d.from_finder else 0.0
            same = [e for e in found if overlap(e.bbox, d.bbox) > 0.5 and 0.5 < e.size[0] / w0 < 2.0
                    and 0.5 < e.size[1] / h0 < 2.0 and _iou(e.bbox, d.bbox) >= agree]
            out.append(min(same, key=lambda e: float(np.linalg.norm(e.quad.mean(axis=0) - c))) if same else d)
        return out

    def _closer_looks(self, grey: np.ndarray, dets: list[Detection]) -> list[list[Detection]]:
        """Plates in a window around each of `dets` at the closer look's scale (the plate REFINE_WIDTH
        detector pixels wide). Each window is a quarter of the detector input, the size of the crops
        it was trained on, and four share one run: a closer look costs a quarter of a whole-frame pass
        (a real photograph's clutter makes several a frame)."""
        qw, qh = DET_W // 2, DET_H // 2
        qcw, qch = qw // DET_STRIDE, qh // DET_STRIDE
        out: list[list[Detection]] = []
        for k in range(0, len(dets), 4):
            batch = dets[k:k + 4]
            x = np.zeros((DET_H, DET_W), np.uint8)
            origins = []
            for i, d in enumerate(batch):
                s = DET_W / _closer_width(d)
                c = d.quad.mean(axis=0)
                wx0, wy0 = c[0] - qw / s / 2, c[1] - qh / s / 2  # the window's top left, image pixels
                origins.append((s, wx0, wy0))
                x0, y0 = int(max(0, np.floor(wx0))), int(max(0, np.floor(wy0)))
                x1 = int(min(grey.shape[1], np.ceil(wx0 + qw / s)))
                y1 = int(min(grey.shape[0], np.ceil(wy0 + qh / s)))
                if x1 - x0 < 2 or y1 - y0 < 2:
                    continue
                crop = cv2.resize(grey[y0:y1, x0:x1], (max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s))),
                                  interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
                # where the crop starts in the quarter
                u, v = min(max(0, round((x0 - wx0) * s)), qw - 1), min(max(0, round((y0 - wy0) * s)), qh - 1)
                crop = crop[: qh - v, : qw - u]
                qx, qy = (i % 2) * qw, (i // 2) * qh
                x[qy + v: qy + v + crop.shape[0], qx + u: qx + u + crop.shape[1]] = crop
            prob = self.model.run(x)[..., 0]
            for i, (s, wx0, wy0) in enumerate(origins):
                qx, qy = (i % 2) * qcw, (i // 2) * qch
                out.append(self._components(prob[qy:qy + qch, qx:qx + qcw], s, wx0, wy0))
        return out

    def alternatives(self, grey: np.ndarray, d: Detection) -> list[Detection]:
        """Other outlines for a plate that read badly, for the recogniser to try. Closer: the regions
        the closer look found within it that `refine` set aside as not the same size (a plate whose
        mask merged with a bright surround comes out on its own there). Wider: a larger plate it is a
        piece of (a plate sloping 25 degrees or more can come out of the frame's mask in pieces),
        looked at with the piece CONTEXT_WIDTH detector pixels wide, then outlined closer."""
        c = d.quad.mean(axis=0)
        closer = [e for e in self._look(grey, c, _closer_width(d))
                  if overlap(e.bbox, d.bbox) > 0.5 and _iou(e.bbox, d.bbox) < 0.7]
        wider = [e for e in self._look(grey, c, DET_W * max(d.size) / CONTEXT_WIDTH)
                 if overlap(e.bbox, d.bbox) > 0.5 and e.size[0] > 1.3 * d.size[0]]
        if wider:
            whole = self.refine(grey, max(wider, key=lambda e: e.score))
            if all(_iou(whole.bbox, e.bbox) < 0.7 for e in closer):
                closer.append(whole)
        return closer

    def _look(self, grey: np.ndarray, centre: np.ndarray, width: float) -> list[Detection]:
        """Plates in a window `width` image pixels wide (detector aspect) around `centre`."""
        wh = width * DET_H / DET_W
        x0, y0 = int(max(0, centre[0] - width / 2)), int(max(0, centre[1] - wh / 2))
        x1, y1 = int(min(grey.shape[1], centre[0] + width / 2)), int(min(grey.shape[0], centre[1] + wh / 2))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return []
        prob, s = self.probability_map(grey[y0:y1, x0:x1])
        return self._components(prob, s, x0, y0)

    def _components(self, prob: np.ndarray, scale: float, ox: int, oy: int,
                    threshold: float | None = None, from_finder: bool = False) -> list[Detection]:
        """Plates in a probability map. A region too elongated to be one plate (a plate merged with a
        bright bumper strip or its neighbour) is looked at again at a higher threshold, where the
        plate's core stands apart."""
        t = self.threshold if threshold is None else threshold
        mask = (prob >= t).astype(np.uint8)
        # grow each component a little so its soft edge (probabilities under the threshold) is included
        n, labels, stats, _ = cv2.connectedComponentsWithStats(cv2.dilate(mask, np.ones((3, 3), np.uint8)),
                                                              connectivity=8)
        # cells at the threshold per component, counted at once: most components are specks below min_cells
        cells = np.bincount(labels[mask.astype(bool)], minlength=n)
        out = []
        for k in range(1, n):
            if cells[k] < self.min_cells:
                continue
            x0, y0, bw, bh = (int(v) for v in stats[k, :4])
            ys, xs = np.nonzero(labels[y0:y0 + bh, x0:x0 + bw] == k)  # its own box only: the same cells, in order
            ys, xs = ys + y0, xs + x0
            p = prob[ys, xs]
            quad = self._quad_from_moments(xs, ys, p)
            if quad is None:
                continue
            d = Detection(quad / scale + np.array([ox, oy]), float(p.max()), from_finder)
            w, h = d.size
            higher = [x for x in SPLIT_THRESHOLDS if x > t]
            if w > MAX_ASPECT * h and higher:
                sub = self._components(np.where(labels == k, prob, 0.0), scale, ox, oy, higher[0], from_finder)
                if sub:
                    out.extend(sub)
                    continue
            out.append(d)
        return out

    @staticmethod
    def _quad_from_moments(xs: np.ndarray, ys: np.ndarray, p: np.ndarray) -> np.ndarray | None:
        """Plate parallelogram from the probability-weighted moments of a component.

        Seen by an upright camera from the side or from above, a plate's vertical edges stay vertical
        and its top and bottom edges slope: a parallelogram, not a rotated rectangle. The slope is
        the regression of y on x (unbiased whatever the plate's aspect, so square plates too), the
        length comes from the variance along it and the height from the vertical spread left over.
        The mask is the plate polygon sampled on a DET_STRIDE grid, so each variance is the plate's
        (L^2 / 12) plus the cell's (s^2 / 12): L = sqrt(12 var - s^2).
        """
        w = np.clip(p, 0, 1).astype(np.float64)
        tot = float(w.sum())
        if tot <= 0:
            return None
        # training drew the plate polygon at coordinates / DET_STRIDE, so cell i stands for input pixel i * s
        px = xs * float(DET_STRIDE)
        py = ys * float(DET_STRIDE)
        cx, cy = float(w @ px) / tot, float(w @ py) / tot
        dx, dy = px - cx, py - cy
        wdx = w * dx
        var_x, var_y, cov = float(wdx @ dx) / tot, float((w * dy) @ dy) / tot, float(wdx @ dy) / tot
        slope = min(max(math.atan2(cov, var_x), -MAX_SLOPE), MAX_SLOPE)
        s2 = DET_STRIDE ** 2
        length = math.sqrt(max(12 * var_x / math.cos(slope) ** 2 - s2, s2))
        height = math.sqrt(max(12 * (var_y - cov * cov / max(var_x, 1e-9)) - s2, s2 / 4))
        # The mask spills over the plate's edges by a few pixels whatever its size, and wider still
        # beside square plates (fitted on simulated scenes, see SPREAD)
        length = max((length - SPREAD.edge_w) / SPREAD.gain, DET_STRIDE)
        height = max((height - SPREAD.edge_h) / SPREAD.gain, DET_STRIDE / 2)
        if length < SPREAD.square_aspect * height:
            length /= SPREAD.square_w
        ux, uy = math.cos(slope) * length / 2, math.sin(slope) * length / 2
        v = height / 2
        return np.array([[cx - ux, cy - uy - v], [cx + ux, cy + uy - v], [cx + ux, cy + uy + v],
                         [cx - ux, cy - uy + v]])

    @staticmethod
    def _suppress(dets: list[Detection], iou: float = 0.3) -> list[Detection]:
        keep: list[tuple[Detection, tuple[int, int, int, int]]] = []
        for d in sorted(dets, key=lambda d: -d.score):
            b = d.bbox
            if all(_iou(b, kb) < iou for _, kb in keep):
                keep.append((d, b))
        return [d for d, _ in keep]
