"""Still images from files as the recogniser reads them: upright, 8-bit, grey or BGR.

Phone cameras store a portrait photo as landscape pixels with an EXIF Orientation tag that viewers
apply. OpenCV applies it too, except when asked for the file's pixels unchanged (`IMREAD_UNCHANGED`),
and a plate lying on its side is never found: the flags here keep 16-bit depth and grey images and
still turn the photo upright, so reads and their boxes are in the picture the user sees.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

# Any depth and channel count, the EXIF orientation applied (IMREAD_UNCHANGED would ignore it); alpha is dropped.
READ_FLAGS = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH


def to_8bit(img: np.ndarray) -> np.ndarray:
    """16-bit and float images stretched to 8-bit by their own maximum; 8-bit ones as they are."""
    if img.dtype == np.uint8:
        return img
    return cv2.convertScaleAbs(img, alpha=255.0 / max(float(img.max()), 1.0))


def read_image(path: Path) -> tuple[np.ndarray | None, str | None]:
    """(image, None), or (None, why not) for a missing or undecodable file."""
    img = cv2.imread(str(path), READ_FLAGS) if path.is_file() else None
    if img is None:
        return None, "not found" if not path.exists() else "not a readable image"
    if img.ndim == 3 and img.shape[2] == 4:  # some decoders keep alpha whatever the flags
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return to_8bit(img), None
