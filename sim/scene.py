"""Scene renderer: road, vehicles and plates under day/dusk/night/rain/glare light, exposed through
the camera's shutter and gain, with motion blur, defocus and noise as physics says.

Light model, in sensor counts (DN): DN = 255 * K * reflectance * illumination * exposure_us * gain / 1000,
with daylight illumination 1.0. Under the IR illuminator a retroreflective plate returns far more
light to the (co-located) camera than diffuse paint or road, falling off with range squared: that is
why night frames are dark with bright plates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from sim.optics import CameraModel
from sim.render import PlateImage, render_plate
from sim.traffic import Vehicle

K_SENSOR = 0.8
IR_RETRO = 53.0  # plate illumination x range^2 at ir_level 1
IR_DIFFUSE = 1.6  # paint / road illumination x range^2 at ir_level 1


@dataclass(frozen=True, slots=True)
class Conditions:
    name: str = "day"
    ambient: float = 1.0  # 1 = daylight
    rain: float = 0.0  # 0..1
    glare: float = 0.0  # 0..1, sun glare / wet-road reflection
    headlights: bool = False

    @staticmethod
    def preset(name: str) -> Conditions:
        try:
            return PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown condition {name!r}; choose from {', '.join(PRESETS)}") from None


PRESETS: dict[str, Conditions] = {
    "day": Conditions("day", 1.0),
    "overcast": Conditions("overcast", 0.45),
    "dusk": Conditions("dusk", 0.08, headlights=True),
    "night": Conditions("night", 0.012, headlights=True),
    "rain": Conditions("rain", 0.35, rain=0.7, headlights=True),
    "glare": Conditions("glare", 1.0, glare=0.8),
    "night_rain": Conditions("night_rain", 0.012, rain=0.6, headlights=True),
}


@dataclass(frozen=True, slots=True)
class Exposure:
    exposure_us: int
    gain: float
    ir_level: float

    @property
    def factor(self) -> float:
        return K_SENSOR * self.exposure_us * self.gain / 1000.0


@dataclass(slots=True)
class PlateTruth:
    vehicle_id: int
    vrm: str
    format: str
    display: str
    polygon: list[list[float]]  # 4 image points, clockwise from top-left
    bbox: list[int]  # x, y, w, h; covers the motion-blurred plate, clipped to the frame
    in_frame: bool  # the whole plate is inside the frame
    char_height_px: float
    distance_m: float
    speed_kmh: float
    lane: int
    direction: str
    rear: bool
    two_line: bool
    occluded: bool
    blur_px: float

    def to_json(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]


@dataclass(slots=True)
class SceneRenderer:
    """Renders frames of one installation; static parts (road, noise bank) are made once."""

    model: CameraModel
    colour: bool = False
    seed: int = 0
    road_half_width: float = 3.7
    _bg: np.ndarray = field(init=False)  # reflectance of the static scene, float32, DN-scaled 0..255
    _bg_ir: np.ndarray = field(init=False)  # same, times relative IR falloff
    _sky: np.ndarray = field(init=False)
    _noise: list[np.ndarray] = field(init=False)
    _rain: list[np.ndarray] = field(init=False)
    _textures: dict[tuple[int, int], PlateImage] = field(init=False, default_factory=dict)
    _blur_vec: np.ndarray = field(init=False, default_factory=lambda: np.zeros(2))
    _last_hull: np.ndarray | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._build_static()
        _trim_heap()

    # ---- static scene ---------------------------------------------------------------------------
    def _build_static(self) -> None:
        inst = self.model.inst
        h, w = inst.height, inst.width
        rng = np.random.default_rng([self.seed, 7])
        vv, uu = np.mgrid[0:h, 0:w].astype(np.float32)
        # Ray through each pixel to the road plane.
        d_cam = np.stack([(uu - self.model.cx) / self.model.f_px, (vv - self.model.cy) / self.model.f_px,
                          np.ones_like(uu)], axis=-1)
        d = d_cam @ self.model.R.astype(np.float32)
        dz = d[..., 2]
        ground = dz < -1e-6
        t = np.where(ground, -self.model.centre[2] / np.where(ground, dz, -1.0), 1e6).astype(np.float32)
        gx = self.model.centre[0] + t * d[..., 0]
        gy = t * d[..., 1]
        rng_m = np.where(ground, t * np.linalg.norm(d, axis=-1), 1e6)
        # Asphalt with patches, verges beyond the kerbs, lane markings.
        patches = cv2.resize(rng.random((h // 40 + 2, w // 40 + 2)).astype(np.float32), (w, h),
                             interpolation=cv2.INTER_CUBIC)
        grain = rng.normal(0, 1, (h, w)).astype(np.float32)
        refl = 0.27 + 0.07 * patches + 0.03 * grain
        verge = np.abs(gx) > self.road_half_width + 0.3
        refl = np.where(verge, 0.3 + 0.1 * patches + 0.06 * grain, refl)
        kerb = (np.abs(gx) > self.road_half_width) & ~verge
        refl = np.where(kerb, 0.45 + 0.02 * grain, refl)
        edge = (np.abs(np.abs(gx) - (self.road_half_width - 0.25)) < 0.075)
        centre_dash = (np.abs(gx) < 0.06) & ((np.floor(gy / 3.0) % 3) == 0)
        refl = np.where(edge | centre_dash, 0.7 + 0.03 * grain, refl)
        refl = np.where(ground, refl, 0.0).astype(np.float32)
        self._sky = np.where(ground, 0.0, 0.9).astype(np.float32)
        falloff = np.where(ground, 1.0 / np.maximum(rng_m, 2.0) ** 2, 0.0).astype(np.float32)
        bg = refl * 255.0
        bg_ir = bg * falloff * IR_DIFFUSE
        if self.colour:
            tint = np.array([1.0, 1.0, 1.0], np.float32)
            green = np.array([0.55, 1.0, 0.6], np.float32)
            col = np.where(verge[..., None], green, tint)
            bg = bg[..., None] * col
            bg_ir = bg_ir[..., None] * col
            self._sky = self._sky[..., None] * np.array([1.0, 0.9, 0.8], np.float32)
        self._bg, self._bg_ir = bg, bg_ir
        shape = (h + 64, w, 3) if self.colour else (h + 64, w)
        self._noise = [np.clip(rng.normal(128, 16, shape), 0, 255).astype(np.uint8) for _ in range(3)]
        self._rain = []
        for _ in range(3):
            layer = np.zeros((h, w), np.uint8)
            for _ in range(600):
                x, y = int(rng.integers(w)), int(rng.integers(h))
                ln = int(rng.integers(8, 30))
                cv2.line(layer, (x, y), (x + ln // 6, y + ln), int(rng.integers(40, 120)), 1, cv2.LINE_AA)
            self._rain.append(layer if not self.colour else cv2.cvtColor(layer, cv2.COLOR_GRAY2BGR))

    # ---- helpers --------------------------------------------------------------------------------
    def _c(self, bgr: tuple[float, float, float], scale: float) -> tuple[float, ...] | float:
        """Colour (reflectance 0..255 BGR) to DN under `scale` illumination x exposure."""
        if self.colour:
            return tuple(float(min(255.0, c * scale)) for c in bgr)
        lum = 0.114 * bgr[0] + 0.587 * bgr[1] + 0.299 * bgr[2]
        # IR-sensitive mono sensors see most paints as mid grey.
        return float(min(255.0, (0.6 * lum + 0.4 * 140.0) * scale))

    def _texture(self, v: Vehicle, px_wide: float) -> PlateImage:
        level = 4 if px_wide > 300 else 2 if px_wide > 120 else 1
        key = (v.id, level)
        tex = self._textures.get(key)
        if tex is None:
            base = render_plate(v.plate, v.style, px_per_mm=0.5 * level)
            if not self.colour:
                base.image = cv2.cvtColor(cv2.cvtColor(base.image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
            tex = base
            if len(self._textures) > 256:
                self._textures.clear()
            self._textures[key] = tex
        return tex

    def forget(self, vehicle_ids: set[int]) -> None:
        for k in [k for k in self._textures if k[0] not in vehicle_ids]:
            del self._textures[k]

    # ---- a frame --------------------------------------------------------------------------------
    def render(self, vehicles: list[Vehicle], t: float, exp: Exposure, cond: Conditions,
               rng: np.random.Generator, defocus_px: float = 0.0, jpeg_quality: int | None = None,
               want_masks: bool = False) -> tuple[np.ndarray, list[PlateTruth], dict[int, np.ndarray]]:
        ef = exp.factor
        amb = cond.ambient
        frame_f = cv2.addWeighted(self._bg, amb * ef, self._bg_ir, exp.ir_level * ef, 0.0)
        if amb > 0.02:
            frame_f = cv2.scaleAdd(self._sky, 255.0 * amb * ef, frame_f)
        frame = np.clip(frame_f, 0, 255).astype(np.uint8)
        truths: list[PlateTruth] = []
        masks: dict[int, np.ndarray] = {}
        cam_y_min = 1.5
        order = sorted(vehicles, key=lambda v: -v.near_face_y(t))
        for v in order:
            yn = v.near_face_y(t)
            self._last_hull = None
            if yn < cam_y_min or yn > 120:
                continue
            pt = self._draw_vehicle(frame, v, yn, t, exp, cond, rng, want_masks)
            hull = self._last_hull
            if hull is not None:  # this (nearer) vehicle hides the plates of those drawn before it
                for tr in truths:
                    inside = sum(cv2.pointPolygonTest(hull, (float(x), float(y)), False) >= 0 for x, y in tr.polygon)
                    if inside >= 2:
                        tr.occluded = True
            if pt is not None:
                truth, mask = pt
                truths.append(truth)
                if mask is not None:
                    masks[v.id] = mask
        if defocus_px > 0.3:
            frame = cv2.GaussianBlur(frame, (0, 0), defocus_px)
        if cond.rain > 0:
            layer = self._rain[int(rng.integers(len(self._rain)))]
            frame = cv2.addWeighted(frame, 1.0 - 0.25 * cond.rain, layer, cond.rain * min(1.0, ef * 2), 8 * cond.rain)
        if cond.glare > 0:
            frame = self._glare(frame, cond, ef, rng)
        sigma = 0.8 + 1.1 * exp.gain + (0.6 if cond.ambient < 0.1 else 0.0)
        bank = self._noise[int(rng.integers(len(self._noise)))]
        off = int(rng.integers(64))
        k = sigma / 16.0
        frame = cv2.addWeighted(frame, 1.0, bank[off:off + frame.shape[0]], k, -128.0 * k)
        if jpeg_quality is not None:
            ok, enc = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
            if ok:
                frame = cv2.imdecode(enc, cv2.IMREAD_UNCHANGED)
        return frame, truths, masks

    def _glare(self, frame: np.ndarray, cond: Conditions, ef: float, rng: np.random.Generator) -> np.ndarray:
        h, w = frame.shape[:2]
        small = np.zeros((h // 8, w // 8), np.float32)
        cx, cy = int(rng.integers(w // 8)), int(rng.integers(h // 16))
        cv2.circle(small, (cx, cy), max(2, w // 40), 1.0, -1)
        small = cv2.GaussianBlur(small, (0, 0), w / 60)
        small /= max(float(small.max()), 1e-6)
        glow = cv2.resize(small, (w, h)) * (255.0 * cond.glare * min(1.5, ef))
        g8 = np.clip(glow, 0, 255).astype(np.uint8)
        if frame.ndim == 3:
            g8 = cv2.cvtColor(g8, cv2.COLOR_GRAY2BGR)
        return cv2.add(frame, g8)

    def _draw_vehicle(self, frame: np.ndarray, v: Vehicle, yn: float, t: float, exp: Exposure, cond: Conditions,
                      rng: np.random.Generator, want_mask: bool) -> tuple[PlateTruth, np.ndarray | None] | None:
        m = self.model
        H, W = frame.shape[:2]
        ln, wd, ht = v.size
        x0, x1 = v.x - wd / 2, v.x + wd / 2
        ef = exp.factor
        rng_m = float(np.linalg.norm(np.array([v.x, yn, 0.8]) - m.centre))
        diffuse = cond.ambient + exp.ir_level * IR_DIFFUSE / rng_m**2
        low_top = ht * (0.55 if v.kind in ("car", "suv") else 1.0)

        def poly(pts: list[tuple[float, float, float]]) -> np.ndarray | None:
            uv, z = m.project(np.array(pts))
            if (z < 0.3).any():
                return None
            return np.round(uv * 16).astype(np.int32)

        def fill(pts: list[tuple[float, float, float]], colour: tuple[float, float, float], shade: float) -> None:
            p = poly(pts)
            if p is not None:
                cv2.fillPoly(frame, [p], self._c(colour, shade * diffuse * ef), cv2.LINE_AA, 4)

        # Bounding region of the vehicle in the image, for blur and for occlusion of farther plates.
        corners = [(x, y, z) for x in (x0, x1) for y in (yn, yn + ln) for z in (0.0, ht)]
        uv_all, z_all = m.project(np.array(corners))
        self._last_hull = None
        if (z_all < 0.3).all():
            return None
        if (z_all >= 0.3).all():
            self._last_hull = cv2.convexHull(uv_all.astype(np.float32))
        # Shadow (day) under the vehicle.
        if cond.ambient > 0.3:
            fill([(x0 - 0.1, yn - 0.3, 0), (x1 + 0.1, yn - 0.3, 0), (x1 + 0.1, yn + ln, 0), (x0 - 0.1, yn + ln, 0)],
                 (30, 30, 30), 1.0)
        col = v.colour
        # Lower body: top (bonnet/boot), camera-facing side, near face.
        fill([(x0, yn, low_top), (x1, yn, low_top), (x1, yn + ln, low_top), (x0, yn + ln, low_top)], col, 1.0)
        side_x = x0 if m.centre[0] < x0 else x1 if m.centre[0] > x1 else None
        if side_x is not None:
            fill([(side_x, yn, 0.25), (side_x, yn + ln, 0.25), (side_x, yn + ln, low_top), (side_x, yn, low_top)],
                 col, 0.7)
        if v.kind in ("car", "suv"):
            c0, c1 = yn + 0.28 * ln, yn + 0.82 * ln
            inset = 0.12
            fill([(x0 + inset, c0 + 0.5, ht), (x1 - inset, c0 + 0.5, ht), (x1 - inset, c1, ht), (x0 + inset, c1, ht)],
                 col, 0.95)
            # Windscreen / rear window.
            fill([(x0 + inset, c0, low_top), (x1 - inset, c0, low_top), (x1 - inset, c0 + 0.5, ht),
                  (x0 + inset, c0 + 0.5, ht)], (35, 35, 35), 1.0 + 0.6 * cond.glare)
        fill([(x0, yn, 0.25), (x1, yn, 0.25), (x1, yn, low_top), (x0, yn, low_top)], col, 0.85)
        if v.kind not in ("car", "suv"):
            fill([(x0 + 0.1, yn, ht * 0.62), (x1 - 0.1, yn, ht * 0.62), (x1 - 0.1, yn, ht * 0.95),
                  (x0 + 0.1, yn, ht * 0.95)], (35, 35, 35), 1.0)
        # Bumper / grille.
        fill([(x0 + 0.05, yn, 0.25), (x1 - 0.05, yn, 0.25), (x1 - 0.05, yn, 0.38), (x0 + 0.05, yn, 0.38)],
             (25, 25, 25), 1.0)
        self._lamps(frame, v, yn, x0, x1, exp, cond)
        truth, mask = self._draw_plate(frame, v, yn, t, exp, cond, rng, want_mask)
        # Motion blur over the vehicle's region: displacement during the exposure.
        if truth is not None and truth.blur_px > 0.75:
            x_lo, y_lo = np.floor(uv_all.min(axis=0)).astype(int) - 8
            x_hi, y_hi = np.ceil(uv_all.max(axis=0)).astype(int) + 8
            x_lo, y_lo = max(0, x_lo), max(0, y_lo)
            x_hi, y_hi = min(W, x_hi), min(H, y_hi)
            if x_hi - x_lo > 2 and y_hi - y_lo > 2:
                k = _line_kernel(self._blur_vec)
                frame[y_lo:y_hi, x_lo:x_hi] = cv2.filter2D(frame[y_lo:y_hi, x_lo:x_hi], -1, k,
                                                           borderType=cv2.BORDER_REPLICATE)
        return (truth, mask) if truth is not None else None

    def _lamps(self, frame: np.ndarray, v: Vehicle, yn: float, x0: float, x1: float, exp: Exposure,
               cond: Conditions) -> None:
        if not cond.headlights:
            return
        m = self.model
        towards = v.lane.direction == "towards"
        z = 0.62 if v.kind in ("car", "suv") else 0.9
        pts = np.array([[x0 + 0.3, yn, z], [x1 - 0.3, yn, z]])
        uv, zc = m.project(pts)
        if (zc < 0.5).any():
            return
        r = max(1, int(m.f_px * 0.07 / zc[0]))
        power = (25.0 if towards else 1.2) * exp.factor / max(cond.ambient * 40, 1.0)
        for (u, vv) in uv:
            c = (int(u), int(vv))
            if towards:
                for k in (2.2, 1.6, 1.0):
                    level = min(255.0, 255.0 * power / (k**4))
                    cv2.circle(frame, c, int(r * k), self._c((level,) * 3, 1.0), -1, cv2.LINE_AA)
            else:
                cv2.circle(frame, c, r, self._c((40, 40, min(255.0, 255 * power)), 1.0), -1, cv2.LINE_AA)

    def _draw_plate(self, frame: np.ndarray, v: Vehicle, yn: float, t: float, exp: Exposure, cond: Conditions,
                    rng: np.random.Generator, want_mask: bool) -> tuple[PlateTruth | None, np.ndarray | None]:
        m = self.model
        H, W = frame.shape[:2]
        two = v.style.two_line and v.plate.format != "foreign"
        pw, ph = (0.279, 0.203) if two else (0.52, 0.111)
        cx, cz = v.x + v.plate_offset_x, v.plate_height
        yp = yn - 0.005
        world = np.array([[cx - pw / 2, yp, cz + ph / 2], [cx + pw / 2, yp, cz + ph / 2],
                          [cx + pw / 2, yp, cz - ph / 2], [cx - pw / 2, yp, cz - ph / 2]])
        uv, z = m.project(world)
        if (z < 0.5).any():
            return None, None
        # Plate position at the end of the exposure, for blur and the truth box.
        dy = v.speed * exp.exposure_us * 1e-6 * (-1 if v.lane.direction == "towards" else 1)
        uv_end, _ = m.project(world + np.array([0, dy, 0]))
        self._blur_vec = (uv_end - uv).mean(axis=0)
        blur_px = float(np.linalg.norm(self._blur_vec))
        # The blur kernel is centred on the plate, so the exposure spans uv -/+ half the displacement.
        # (+2 px for interpolation and the kernel's rounding to whole pixels)
        half = np.abs(self._blur_vec) / 2 + 2.0
        allpts = np.vstack([uv - half, uv + half])
        bx0, by0 = np.floor(allpts.min(axis=0)).astype(int)
        bx1, by1 = np.ceil(allpts.max(axis=0)).astype(int) + 1
        if bx1 <= 0 or by1 <= 0 or bx0 >= W or by0 >= H:
            return None, None
        in_frame = bool(bx0 >= 0 and by0 >= 0 and bx1 <= W and by1 <= H)
        rx0, ry0, rx1, ry1 = max(0, bx0), max(0, by0), min(W, bx1), min(H, by1)
        px_wide = float(np.linalg.norm(uv[1] - uv[0]))
        tex = self._texture(v, px_wide)
        src = tex.corners_mm * tex.px_per_mm
        dst = uv - np.array([rx0, ry0])
        Hm = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
        rng_m = float(np.linalg.norm(world.mean(axis=0) - m.centre))
        illum = cond.ambient * 0.95 + exp.ir_level * IR_RETRO / rng_m**2
        scale = illum * exp.factor
        img = tex.image if self.colour else tex.image[:, :, 0]
        scaled = cv2.convertScaleAbs(img, alpha=scale)
        roi = frame[ry0:ry1, rx0:rx1]
        cv2.warpPerspective(scaled, Hm, (rx1 - rx0, ry1 - ry0), dst=roi, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_TRANSPARENT)
        occluded = False
        if v.occluder is not None:
            ox, oy, ow, oh = v.occluder
            q = [(ox, oy), (ox + ow, oy), (ox + ow, oy + oh), (ox, oy + oh)]
            pts = np.array([_bilinear(uv, a, b) for a, b in q])
            cv2.fillConvexPoly(frame, np.round(pts * 16).astype(np.int32), self._c(
                (30, 30, 30), (cond.ambient + exp.ir_level * IR_DIFFUSE / rng_m**2) * exp.factor), cv2.LINE_AA, 4)
            occluded = True
        mask = None
        if want_mask:
            mask = np.zeros((H, W), np.uint8)
            mroi = mask[ry0:ry1, rx0:rx1]
            ones = np.full(img.shape[:2], 255, np.uint8)
            cv2.warpPerspective(ones, Hm, (rx1 - rx0, ry1 - ry0), dst=mroi, flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_TRANSPARENT)
            if blur_px > 0.75:
                mask = cv2.filter2D(mask, -1, _line_kernel(self._blur_vec))
        truth = PlateTruth(
            vehicle_id=v.id, vrm=v.plate.vrm, format=v.plate.format, display=v.plate.display,
            polygon=[[round(float(a), 2), round(float(b), 2)] for a, b in uv],
            bbox=[int(rx0), int(ry0), int(rx1 - rx0), int(ry1 - ry0)], in_frame=in_frame,
            char_height_px=round(m.char_height_px(cx, yp, cz) if not two else m.char_height_px(cx, yp, cz + 0.05), 2),
            distance_m=round(rng_m, 2), speed_kmh=round(v.speed * 3.6, 1), lane=v.lane.index,
            direction=v.lane.direction, rear=v.style.rear, two_line=two, occluded=occluded, blur_px=round(blur_px, 2),
        )
        return truth, mask


def _trim_heap() -> None:
    """Give the building's temporary arrays back to the OS (glibc keeps freed memory otherwise)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _bilinear(quad: np.ndarray, a: float, b: float) -> np.ndarray:
    top = quad[0] + (quad[1] - quad[0]) * a
    bot = quad[3] + (quad[2] - quad[3]) * a
    return top + (bot - top) * b


def _line_kernel(vec: np.ndarray) -> np.ndarray:
    """Box kernel along the motion vector (length = displacement in pixels)."""
    length = float(np.linalg.norm(vec))
    n = int(np.ceil(length)) | 1
    k = np.zeros((n, n), np.float32)
    c = n // 2
    d = vec / max(length, 1e-6)
    for s in np.linspace(-length / 2, length / 2, max(2, int(length * 2) + 1)):
        x, y = c + d[0] * s, c + d[1] * s
        xi, yi = min(n - 1, max(0, int(round(x)))), min(n - 1, max(0, int(round(y))))
        k[yi, xi] += 1
    return k / k.sum()
