"""TFLite interpreter loading: ai-edge-litert (XNNPACK on by default) or, where that is what the OS
offers, tflite-runtime. Chosen at import time of the first model."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

MODELS_ENV = "ANPR_EDGE_MODELS"


def shipped_models_dir() -> Path:
    """Where the shipped models are, wherever the command is run from: $ANPR_EDGE_MODELS, else the
    repository's models/ beside the package (a checkout or an editable install), else the wheel's
    data files (<prefix>/share/anpr-edge/models), else the Pi install (/opt/anpr-edge/models)."""
    env = os.environ.get(MODELS_ENV)
    if env:
        return Path(env)
    candidates = (Path(__file__).resolve().parents[2] / "models", Path(sys.prefix) / "share" / "anpr-edge" / "models",
                  Path("/opt/anpr-edge/models"))
    for c in candidates:
        if (c / "detector.tflite").is_file():
            return c
    return candidates[0]


def models_dir_or_shipped(path: Path | str | None) -> Path:
    return shipped_models_dir() if path is None or str(path) == "" else Path(path)


class ModelError(RuntimeError):
    """A model that cannot be loaded or run; the message says what to install or check."""


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite-runtime"
    except ImportError:
        raise ModelError("no TFLite runtime installed: pip install ai-edge-litert "
                         "(or, on Raspberry Pi OS, apt install python3-tflite-runtime)") from None


class Model:
    """One loaded model with uint8 input/output, dequantising the output."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        self.path = Path(path)
        self.threads = threads
        cls, self.runtime = _interpreter_class()
        if not self.path.is_file():
            raise ModelError(f"model file {self.path} not found: train it (scripts/train_*.py) or set "
                             f"recogniser.models_dir")
        try:
            self._it = cls(model_path=str(self.path), num_threads=self.threads)
            self._it.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"cannot load {self.path}: {e}") from None
        self._in = self._it.get_input_details()[0]
        self._out = self._it.get_output_details()[0]
        self.input_shape = tuple(int(x) for x in self._in["shape"])
        self.output_shape = tuple(int(x) for x in self._out["shape"])
        scale, zero = self._out.get("quantization", (0.0, 0))
        self._scale = float(scale) or 1.0
        self._zero = int(zero)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Input HxW uint8 (one image); returns the float output without the batch axis."""
        self._it.set_tensor(self._in["index"], x.reshape(self.input_shape).astype(np.uint8, copy=False))
        self._it.invoke()
        raw = self._it.get_tensor(self._out["index"])[0]
        return (raw.astype(np.float32) - self._zero) * self._scale

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size
