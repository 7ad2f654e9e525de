"""On-device recogniser: TFLite plate detector and character reader, UK-aware decoding, tracker."""

from agent.recognise.decode import Reading, decode
from agent.recognise.recogniser import PlateRead, Recogniser, RecogniserError

__all__ = ["PlateRead", "Reading", "Recogniser", "RecogniserError", "decode"]
