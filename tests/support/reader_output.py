"""Reader-like outputs for decoding tests: what the reader would give for a text."""

import numpy as np

from agent.plates import ALPHABET
from agent.recognise.preprocess import BLANK, N_CLASSES, READER_W

T = READER_W // 4


def probs_for(text: str, conf: float = 0.98, alt: dict[int, tuple[str, float]] | None = None) -> np.ndarray:
    """Reader-like output: each character over two columns, blanks between, `alt` = position -> (char, p)."""
    p = np.full((T, N_CLASSES), 1e-4, np.float32)
    p[:, BLANK] = 1.0
    col = 2
    for i, ch in enumerate(text):
        for c in (col, col + 1):
            p[c, :] = (1 - conf) / (N_CLASSES - 1)
            p[c, ALPHABET.index(ch)] = conf
            if alt and i in alt:
                a, pa = alt[i]
                p[c, ALPHABET.index(a)] = pa
        col += 3
    return p / p.sum(axis=1, keepdims=True)
