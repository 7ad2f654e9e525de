import cv2
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from agent.pipeline.evidence import OVERVIEW_MAX_BYTES, PATCH_MAX_BYTES, best_jpeg, letterbox, overview, plate_patch


def _decode(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None
    return img


@st.composite
def frames(draw):
    h = draw(st.integers(16, 720))
    w = draw(st.integers(16, 1280))
    kind = draw(st.sampled_from(["noise", "flat", "stripes", "gradient"]))
    colour = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (h, w, 3) if colour else (h, w)
    if kind == "noise":
        img = rng.integers(0, 256, shape, dtype=np.uint8)
    elif kind == "flat":
        img = np.full(shape, draw(st.integers(0, 255)), np.uint8)
    elif kind == "stripes":
        img = np.zeros(shape, np.uint8)
        img[:, ::2] = 255
    else:
        img = np.broadcast_to(np.linspace(0, 255, w, dtype=np.uint8)[None, :, None] if colour else
                              np.linspace(0, 255, w, dtype=np.uint8)[None, :], shape).copy()
    return img


@given(img=frames(), quad_seed=st.integers(0, 1000))
def test_patch_is_120x60_within_3000_bytes_for_any_image(img, quad_seed):
    rng = np.random.default_rng(quad_seed)
    h, w = img.shape[:2]
    x0, y0 = rng.uniform(-20, w), rng.uniform(-20, h)
    pw, ph = rng.uniform(0, w), rng.uniform(0, h / 2)
    quad = np.array([[x0, y0], [x0 + pw, y0], [x0 + pw, y0 + ph], [x0, y0 + ph]])
    j = plate_patch(img, quad)
    assert len(j.data) <= PATCH_MAX_BYTES
    assert _decode(j.data).shape[:2] == (60, 120) and (j.width, j.height) == (120, 60)


@given(img=frames())
def test_overview_within_25000_bytes_for_any_image(img):
    j = overview(img)
    assert len(j.data) <= OVERVIEW_MAX_BYTES
    d = _decode(j.data)
    assert (d.shape[1], d.shape[0]) == (j.width, j.height)


def test_quality_search_finds_the_best_that_fits():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (300, 500), dtype=np.uint8), (0, 0), 2)
    j = best_jpeg(img, 20000)
    assert j is not None and len(j.data) <= 20000
    _ok, higher = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, j.quality + 1, cv2.IMWRITE_JPEG_OPTIMIZE, 1])
    assert j.quality == 95 or len(higher) > 20000


def test_letterbox_never_stretches():
    img = np.zeros((10, 100), np.uint8)
    img[2:8, :] = 255  # 6 bright rows of 10
    out = letterbox(img, 120, 60)
    rows = np.where(out.mean(axis=1) > 128)[0]
    assert out.shape == (60, 120) and 6 <= len(rows) <= 9  # 100x10 -> 120x12 (not 120x60), centred
    assert abs((rows.min() + rows.max()) / 2 - 29.5) <= 1.5


def test_privacy_masks_are_blanked_before_encoding():
    img = np.full((200, 300), 200, np.uint8)
    j = overview(img, masks=[[(0, 0), (150, 0), (150, 200), (0, 200)]])
    d = _decode(j.data)
    assert d[:, : d.shape[1] // 2 - 4].mean() < 10 and d[:, d.shape[1] // 2 + 4:].mean() > 180
