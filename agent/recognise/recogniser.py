"""The recogniser: detect plates in a frame and refine their outlines, straighten each (a few crops of
it), read them, decode with UK syntax and take the read the crops agree on."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from agent.plates import UK_FORMATS, Format
from agent.recognise.confidence import ConfidenceModel, read_features
from agent.recognise.consensus import (
    DEFAULT_VIEWS,
    FIRST_VIEWS,
    VIEWS,
    Consensus,
    first_views_agree,
    first_views_hopeless,
    read_views,
)
from agent.recognise.decode import Reading, decode
from agent.recognise.detector import Detection, PlateDetector, _iou, overlap
from agent.recognise.outline import OutlineRefiner
from agent.recognise.preprocess import BLANK, N_CLASSES, TWO_LINE_ASPECT, local_contrast, reader_crop, to_grey
from agent.recognise.rectify import crop_plate, tilted_outlines
from agent.recognise.runtime import Model, ModelError, models_dir_or_shipped

# A plate read with a least character probability under this is looked at once more from other
# outlines (`_second_look`): a piece of a sloping plate reads as a few unsure characters. A region
# that reads as nothing at all is clutter (the finder's adds some to simulated frames): not looked at
# again, which kept a frame's mean time at 24 ms instead of 35 on 250 held-out simulated scenes.
PlateReadOf = tuple[Detection, Reading | None, bool, Consensus]  # the outline read along, its read, two-line, crops
SECOND_LOOK_BELOW = 0.7
# Outlines this wide for their height may be a two-line plate or a loose box round a one-line plate:
# both are tried (`_likelier_layout`). A UK/EU one-line plate is 4.7:1, a Brazilian car plate 3:1.
AMBIGUOUS_ASPECT = (1.6, 3.2)
MAX_PLATES = 8  # plates read per image, likeliest first: more are clutter a detector took for plates
# per image, for the likeliest plate that read badly: on real photographs most regions that read badly
# are clutter, and a second look costs three detector runs and the reads of what they find (with two,
# second looks were over 40 % of a real dev photo's time, with no more plates read in the real dev scenes or
# the simulated held-out scenes than with one)
MAX_SECOND_LOOKS = 1
# A whole-frame region whose read has fewer characters than this gets no second look: of 478 second
# looks (1,000 held-out simulated scenes, 200 real-read train scenes) the 8 that found the plate all
# began from 4 characters or more, while 279 began from fewer, nearly all clutter.
SECOND_LOOK_MIN_CHARS = 4
# Nor does one whose characters the reader was on average less sure of than this: of 466 second looks
# (1,000 held-out simulated scenes, seed 9200007; 200 real-read train scenes; session 23) the 7 that
# made a read right all began from a mean of 0.45 or more, while junk regions that read badly begin
# near 0.15. It spared two thirds of the second looks on the real-detect dev photos (249 -> 84), each
# ~23 ms of detector runs and reads.
SECOND_LOOK_MIN_MEAN = 0.4
# A region under this many pixels tall is not read: its characters would be 5 px tall or less. Of 2,034
# regions in 1,000 held-out simulated scenes (seed 9200007) the 27 under 8 px read nothing right, nor
# did any under 15 px in the 200 real-read train scenes; on the real-detect dev photos (UC3M's far
# plates, specks of clutter) they were 707 of 2,255 regions and 23 % of the reader's runs (session 23).
MIN_READ_HEIGHT = 8.0
SAME_PLATE_OVERLAP = 0.5  # two outlines sharing more than this of the smaller one are one plate

RecogniserError = ModelError


@dataclass(frozen=True, slots=True)
class PlateRead:
    vrm: str
    confidence: float
    char_confidences: tuple[float, ...]
    format: Format
    quad: np.ndarray
    det_score: float
    two_line: bool
    complete: bool = True  # False: some characters were covered; the read misses them
    agreement: float = 1.0  # share of the plate's crops that read exactly this
    hidden: float = 0.0  # highest chance any crop gave to covered characters

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        return Detection(self.quad, self.det_score).bbox

    @property
    def extent(self) -> tuple[float, float, float, float]:
        return Detection(self.quad, self.det_score).extent

    @property
    def size(self) -> tuple[float, float]:
        return Detection(self.quad, self.det_score).size

    def to_json(self) -> dict[str, object]:
        return {"vrm": self.vrm, "confidence": round(self.confidence, 4), "format": self.format,
                "bbox": list(self.bbox), "char_confidences": [round(c, 4) for c in self.char_confidences],
                "complete": self.complete}


@dataclass(slots=True)
class StageTimes:
    detect: float = 0.0
    rectify: float = 0.0
    read: float = 0.0
    decode: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return self.detect + self.rectify + self.read + self.decode


class Recogniser:
    """Loads the models once; `recognise` is safe to call for every frame."""

    def __init__(self, models_dir: Path | str | None = None, threads: int = 1, det_threshold: float = 0.5,
                 views: int = DEFAULT_VIEWS, calibrated: bool = True, tile: bool = False,
                 magnify: bool = True) -> None:
        """`models_dir` None: the shipped models (`runtime.shipped_models_dir`). `calibrated=False`
        reports the reader's own probabilities (for fitting a new calibration). `tile`: also look at
        tiles of frames much larger than the detector input (slower; for plates a few dozen pixels wide
        in very large photographs). `magnify`: the finder looks at photographs up to about 800x600
        twice as large (any up to 1024x768 at least at its own size), instead of the letterboxed
        passes (`detector.magnified_scale`; needs the models folder's `finder_magnified.tflite`)."""
        if not 1 <= views <= len(VIEWS):
            raise ValueError(f"views must be 1 to {len(VIEWS)}, not {views}")
        self.views = views
        d = models_dir_or_shipped(models_dir)
        self.models_dir = d
        finder = d / "finder.tflite"  # optional: a detector for the whole-frame pass (PlateDetector)
        magnifier = d / "finder_magnified.tflite"  # optional: the finder at a larger input, for small photos
        self.detector = PlateDetector(Model(d / "detector.tflite", threads), threshold=det_threshold, tile=tile,
                                      magnify=magnify,
                                      finder=Model(finder, threads) if finder.is_file() else None,
                                      magnifier=Model(magnifier, threads) if magnifier.is_file() else None,
                                      **_finder_settings(d / "finder.json"))
        self.reader = Model(d / "reader.tflite", threads)
        # optional: a models folder from before the refiner reads along the detector's own outlines
        refiner = d / "outline.tflite"
        self.outline = OutlineRefiner(Model(refiner, threads)) if refiner.is_file() else None
        if self.reader.output_shape[-1] not in (BLANK + 1, N_CLASSES):  # with or without the hidden class
            raise ModelError(f"{d / 'reader.tflite'}: output {self.reader.output_shape} is not (1, T, "
                             f"{BLANK + 1} or {N_CLASSES}) classes")
        self.input_contrast = _reader_contrast(d / "reader.json")  # "local" or "global"
        try:
            self.calibration = ConfidenceModel.load(d / "confidence.json") if calibrated else None
        except ValueError as e:
            raise ModelError(str(e)) from None
        self.versions = {"detector": _version(d / "detector.tflite"), "reader": _version(d / "reader.tflite")}
        if self.outline is not None:
            self.versions["outline"] = _version(refiner)
        if finder.is_file():
            self.versions["detector"] += "+" + _version(finder)

    def read_detection(self, img: np.ndarray, d: Detection, t: StageTimes | None = None
                       ) -> tuple[Reading | None, bool, Consensus]:
        """Straighten, read and decode one detected plate, from as many crops as it takes (see
        `consensus`); (reading or None, two-line, how the crops agreed)."""
        t = t if t is not None else StageTimes()
        w, h = d.size
        aspect = w / max(h, 1e-6)
        two = aspect < TWO_LINE_ASPECT
        first = None  # the first view's probabilities and read, where the layout check read it
        if AMBIGUOUS_ASPECT[0] <= aspect <= AMBIGUOUS_ASPECT[1]:
            two, first = self._likelier_layout(img, d, two, t)
        probs: list[np.ndarray] = []
        readings: list[Reading | None] = []
        for i, v in enumerate(VIEWS[: self.views]):
            # A region whose first crop reads nothing at all is clutter, read no further. Of 2,590 regions
            # read in 300 real-detect and 200 real-read train photos (session 27) the 1,154 whose first
            # crop read nothing were 1,128 clutter and 26 plates, none read right in the end nor at
            # confidence 0.5 or more; their second crops were about a tenth of the reader's runs.
            if i == 1 and readings[0] is None:
                break
            if i == FIRST_VIEWS and (first_views_agree(readings) or first_views_hopeless(readings)):
                break
            if i == 0 and first is not None:
                probs.append(first[0])
                readings.append(first[1])
                continue
            a = time.perf_counter()
            try:
                x = self._reader_input(img, d, v, two)
            except ValueError:
                return None, two, Consensus(None, 0.0)
            b = time.perf_counter()
            probs.append(self.reader.run(x))
            c = time.perf_counter()
            readings.append(decode(probs[-1]))
            t.rectify += b - a
            t.read += c - b
            t.decode += time.perf_counter() - c
        c = time.perf_counter()
        res = read_views(probs, readings)
        r = res.reading
        if r is not None and r.complete and self.calibration is not None:
            x = read_features(r.vrm, r.char_confidences, r.format, h, d.score, two, res.agreement, res.hidden)
            r = replace(r, confidence=self.calibration(x))
        t.decode += time.perf_counter() - c
        return r, two, res

    def _reader_input(self, img: np.ndarray, d: Detection, v, two: bool) -> np.ndarray:
        """One view of the plate as the reader sees it (ValueError for a region too small to cut)."""
        x = reader_crop(crop_plate(img, d.quad, v.margin_w, v.margin_h, v.shift, v.shift_up), two)
        return local_contrast(x) if self.input_contrast == "local" else x

    def _likelier_layout(self, img: np.ndarray, d: Detection, two: bool, t: StageTimes
                         ) -> tuple[bool, tuple[np.ndarray, Reading | None] | None]:
        """One line or two, for an outline whose shape does not say (a loose box round a one-line
        plate is as square as a two-line plate): the first view read both ways, the likelier kept;
        with that view's probabilities and read, for the read to go on from (None: too small to cut)."""
        best, best_conf = two, -1.0
        seen: dict[bool, tuple[np.ndarray, Reading | None]] = {}
        for layout in (two, not two):
            view = self._first_view(img, d, layout, t)
            if view is None:
                return two, None
            seen[layout] = view
            conf = -1.0 if view[1] is None else view[1].confidence
            if conf > best_conf + 0.05:  # the aspect's own guess wins a near tie
                best, best_conf = layout, conf
        return best, seen[best]

    def _first_view(self, img: np.ndarray, d: Detection, two: bool, t: StageTimes
                    ) -> tuple[np.ndarray, Reading | None] | None:
        """The first view along `d` read as `two` lines: its probabilities and read (None: too small to
        cut). How sure the reader is of it is a cheap first choice between layouts or outlines."""
        a = time.perf_counter()
        try:
            x = self._reader_input(img, d, VIEWS[0], two)
        except ValueError:
            return None
        b = time.perf_counter()
        probs = self.reader.run(x)
        c = time.perf_counter()
        r = decode(probs)
        t.rectify += b - a
        t.read += c - b
        t.decode += time.perf_counter() - c
        return probs, r

    def _second_look(self, img: np.ndarray, d: Detection, first: tuple[Reading | None, bool, Consensus],
                     t: StageTimes) -> PlateReadOf:
        """`d` read badly: it may be a piece of a steeply sloping plate, a plate merged with its
        surround (`PlateDetector.alternatives`), or a box round a sloping plate, far squarer than the
        plate (`tilted_outlines`: the rectangles sloping inside it). The likeliest read of all the
        outlines is kept, never one with fewer characters than the first, and never a non-UK read in
        place of a UK one: a second look is for the whole plate, and a piece of a plate read alone as
        non-UK text (RB02 of RB02TXY, seen in the demo) would be a confident partial read."""
        a = time.perf_counter()
        grey = to_grey(img)
        others = [self._refined(grey, e) for e in self.detector.alternatives(grey, d)]
        t.detect += time.perf_counter() - a
        tilted = [Detection(q, d.score) for q in tilted_outlines(d.quad)]
        if tilted:  # one crop of each to choose the slope, then the whole read along that one only
            others.append(max(tilted, key=lambda e: self._tilt_confidence(img, e, t)))
        best = (d, *first)
        for e in others:
            r, two, res = self.read_detection(img, e, t)
            if _better_whole_read(best[1], r):
                best = (e, r, two, res)
        return best

    def _tilt_confidence(self, img: np.ndarray, d: Detection, t: StageTimes) -> float:
        """The first view's confidence along a sloping rectangle, laid out as its shape says."""
        w, h = d.size
        view = self._first_view(img, d, w / max(h, 1e-6) < TWO_LINE_ASPECT, t)
        return -1.0 if view is None or view[1] is None else view[1].confidence

    def read_plate(self, img: np.ndarray, d: Detection, t: StageTimes | None = None
                   ) -> PlateReadOf:
        """One plate read as `recognise` reads each it detects: along `d`, and from other outlines when
        that reads badly or as nothing (`_second_look`: a crop is known to be a plate, and a box round a
        steeply sloping one reads as nothing along its edges); (the outline read along, reading or None,
        two-line, how the crops agreed). For a plate image whose edges are its outline (`anpr-edge
        eval`'s crops)."""
        t = t if t is not None else StageTimes()
        r, two, res = self.read_detection(img, d, t)
        if _reads_badly(res) or res.reading is None:
            return self._second_look(img, d, (r, two, res), t)
        return d, r, two, res

    def read_crop(self, img: np.ndarray, t: StageTimes | None = None
                  ) -> PlateReadOf:
        """A plate crop handed over whole (a labelled crop, an evidence patch re-read): read along its
        edges and along the outline the refiner finds inside it, the likelier read kept. Crops are cut
        loosely: a sloping plate in a squarish crop reads as nothing along the crop's edges (its shape
        says two lines), while the refiner alone cuts into tight crops; the two together read more
        held-out real crops (`models/candidates/README.md`, session 20). Where the two read different
        texts the likelier's confidence is capped by the other's. `anpr-edge eval` reads crops so;
        the calibration is fitted on crops read along their edges, as loose as a detector's outline."""
        t = t if t is not None else StageTimes()
        whole = Detection.whole(img)
        first = self.read_plate(img, whole, t)
        if self.outline is None:
            return first
        a = time.perf_counter()
        inner = self._refined(to_grey(img), whole)
        t.detect += time.perf_counter() - a
        return likelier_read(first, self.read_plate(img, inner, t))

    def detect(self, img: np.ndarray) -> list[Detection]:
        """Plates in the frame, each outlined by a second, closer look and then the outline refiner."""
        grey = to_grey(img)
        found = sorted(self.detector.detect(grey), key=lambda d: -d.score)[:MAX_PLATES]
        out: list[Detection] = []
        for d in self.detector.refine_all(grey, found):
            r = self._refined(grey, d)
            # two first-pass regions (the finder's and the detector's) can come out of the closer look as
            # the same plate: keep it once (one outline looser than the other is settled by `recognise`)
            if all(_iou(r.bbox, o.bbox) <= 0.5 for o in out):
                out.append(r)
        return out

    def _refined(self, grey: np.ndarray, d: Detection) -> Detection:
        return d if self.outline is None else self.outline.refine(grey, d)

    def recognise(self, img: np.ndarray, times: StageTimes | None = None) -> list[PlateRead]:
        _check_image(img)
        t = times if times is not None else StageTimes()
        t0 = time.perf_counter()
        dets = self.detect(img)  # likeliest first
        t.detect += time.perf_counter() - t0
        return self.read_regions(img, dets, t)

    def read_regions(self, img: np.ndarray, dets: list[Detection], times: StageTimes | None = None
                     ) -> list[PlateRead]:
        """The reads of `detect`'s regions (likeliest first), one a plate: `recognise` after its
        detection, for a caller that also needs the regions (`anpr-edge eval` measures both)."""
        t = times if times is not None else StageTimes()
        reads = []
        looks = 0
        for d in dets:
            if d.size[1] < MIN_READ_HEIGHT:
                continue  # found (detection recall counts it) but too small to read
            r, two, res = self.read_detection(img, d, t)
            if looks < MAX_SECOND_LOOKS and _worth_a_second_look(res):
                looks += 1
                d, r, two, res = self._second_look(img, d, (r, two, res), t)
            if r is not None:
                reads.append(_plate_read(d, r, two, res))
        return _one_read_a_plate(reads)

    def recognise_crop(self, img: np.ndarray) -> list[PlateRead]:
        """`read_crop` for an image that is one plate crop (an evidence patch, a labelled crop): its
        read, or none."""
        _check_image(img)
        d, r, two, res = self.read_crop(img)
        return [] if r is None else [_plate_read(d, r, two, res)]


MIN_IMAGE_PX = 16


def _check_image(img: np.ndarray) -> None:
    if img is None or getattr(img, "ndim", None) not in (2, 3):
        raise ValueError(f"not an image: shape {getattr(img, 'shape', None)}")
    if img.shape[0] < MIN_IMAGE_PX or img.shape[1] < MIN_IMAGE_PX:
        raise ValueError(f"image too small: {img.shape[1]}x{img.shape[0]} px (at least "
                         f"{MIN_IMAGE_PX}x{MIN_IMAGE_PX})")


def _plate_read(d: Detection, r: Reading, two: bool, res: Consensus) -> PlateRead:
    return PlateRead(r.vrm, r.confidence, r.char_confidences, r.format, d.quad, d.score, two, r.complete,
                     res.agreement, res.hidden)


def likelier_read(first: PlateReadOf, second: PlateReadOf) -> PlateReadOf:
    """The likelier of two reads of one plate along two outlines. Two different texts cannot both be
    right, so the likelier is no surer than the other is wrong: the better of two reads alone is
    over-confident (more wrong reads published; `models/candidates/README.md`, session 20)."""
    best, other = (second, first) if _confidence(second[1]) > _confidence(first[1]) else (first, second)
    r, o = best[1], other[1]
    if r is None or o is None or o.vrm == r.vrm:
        return best
    return best[0], replace(r, confidence=min(r.confidence, 1.0 - max(o.confidence, 0.0))), best[2], best[3]


def _confidence(r: Reading | None) -> float:
    return -1.0 if r is None else r.confidence


def _reads_badly(res: Consensus) -> bool:
    """A read that gets a second look (SECOND_LOOK_BELOW); a region that read as nothing gets none."""
    return res.reading is not None and res.reading.confidence < SECOND_LOOK_BELOW


def _worth_a_second_look(res: Consensus) -> bool:
    """A whole-frame region's read that may be a plate read badly, not clutter: it reads badly, with
    enough characters (SECOND_LOOK_MIN_CHARS) the reader was on average sure enough of
    (SECOND_LOOK_MIN_MEAN)."""
    r = res.reading
    return (_reads_badly(res) and len(r.vrm) >= SECOND_LOOK_MIN_CHARS
            and float(np.mean(r.char_confidences or [0.0])) >= SECOND_LOOK_MIN_MEAN)


def _better_whole_read(now: Reading | None, new: Reading | None) -> bool:
    """Whether a second look's `new` read replaces `now` (see `Recogniser._second_look`)."""
    if new is None:
        return False
    if now is None:
        return new.format in UK_FORMATS
    if new.format not in UK_FORMATS and now.format in UK_FORMATS and len(new.vrm) <= len(now.vrm):
        return False  # a piece of the plate read as non-UK text; a longer one is no piece
    return new.confidence > now.confidence and len(new.vrm) >= len(now.vrm)


def _one_read_a_plate(reads: list[PlateRead]) -> list[PlateRead]:
    """The likeliest read of each plate. The finder's region and the detector's can outline one plate,
    one outline looser than the other (IoU under a half, so `detect` keeps both: which is the better
    outline shows only in the reads); two reads of one plate in a frame would split its track."""
    kept: list[PlateRead] = []
    for r in sorted(reads, key=lambda r: -r.confidence):
        if all(overlap(r.bbox, k.bbox) <= SAME_PLATE_OVERLAP for k in kept):
            kept.append(r)
    return kept


def _finder_settings(meta: Path) -> dict:
    """finder.json: "threshold" (the finder's probability cut), "adds" (true: its regions join the
    detector's own whole-frame pass instead of replacing it) and "agree" (the IoU a closer look's
    outline needs with a finder region's own to replace it; 0, the default: always)."""
    if not meta.is_file():
        return {}
    try:
        doc = json.loads(meta.read_text())
        t, adds = doc.get("threshold"), doc.get("adds", False)
        agree = doc.get("agree", 0.0)
    except (OSError, ValueError, AttributeError) as e:
        raise ModelError(f"{meta}: not readable JSON ({e})") from None
    if t is not None and (not isinstance(t, int | float) or isinstance(t, bool) or not 0 < t < 1):
        raise ModelError(f"{meta}: threshold {t!r} is not between 0 and 1")
    if not isinstance(adds, bool):
        raise ModelError(f"{meta}: adds {adds!r} is not true or false")
    if not isinstance(agree, int | float) or isinstance(agree, bool) or not 0 <= agree < 1:
        raise ModelError(f"{meta}: agree {agree!r} is not from 0 to under 1")
    return {"finder_threshold": None if t is None else float(t), "finder_adds": adds, "finder_agree": float(agree)}


def _reader_contrast(meta: Path) -> str:
    """How the reader was trained to see its input: "local" (`local_contrast`, the current scripts;
    also when the training metadata is missing) or "global" (readers trained before it)."""
    try:
        contrast = json.loads(meta.read_text()).get("input_contrast", "global")
    except FileNotFoundError:
        return "local"
    except (OSError, ValueError, AttributeError) as e:
        raise ModelError(f"{meta}: not readable training metadata ({e})") from None
    if contrast not in ("local", "global"):
        raise ModelError(f"{meta}: input_contrast {contrast!r} is not 'local' or 'global'")
    return contrast


def _version(path: Path) -> str:
    import hashlib

    return f"{path.stem}-{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"
