"""Plate generator with realistic UK format frequencies, plus foreign plates for negatives.

The rules come from `agent.plates` (re-exported here) so the simulator and the recogniser share one
definition of what a valid registration is.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import numpy as np

from agent.plates import (  # noqa: F401  (re-exported: sim.plates is the documented home)
    CURRENT_RANDOM,
    CURRENT_REGION,
    CURRENT_TAG2,
    DIGITS,
    GB_OLD_LETTERS,
    LETTERS,
    NI_CODES,
    NI_SERIAL,
    UK_FORMATS,
    YEAR_LETTERS,
    Format,
    ParsedPlate,
    PlateError,
    classify,
    display,
    is_valid,
    issued_age_identifiers,
    normalise,
    parse,
)

# Share of the UK fleet on the road by format (rough, from DVLA licensing statistics: most vehicles
# are post-2001; cherished dateless and NI plates are a few percent).
FORMAT_WEIGHTS: dict[str, float] = {
    "gb_current": 0.84,
    "gb_prefix": 0.06,
    "gb_suffix": 0.02,
    "gb_dateless": 0.04,
    "ni": 0.04,
}

# Foreign (EU) layouts: (country code, pattern) with L = letter, D = digit, '-'/' ' separators kept
# for rendering. Only strings that are not valid UK registrations are emitted, so a label of
# "foreign" is never ambiguous.
FOREIGN_PATTERNS: list[tuple[str, str]] = [
    ("F", "LL-DDD-LL"),
    ("D", "L LL DDDD"),
    ("D", "LL L DDD"),
    ("NL", "DD-LLL-D"),
    ("NL", "L-DDD-LL"),
    ("E", "DDDD LLL"),
    ("I", "LL DDD LL"),
    ("PL", "LL DDDDD"),
    ("IRL", "DDD-L-DDDDD"),
    ("B", "D-LLL-DDD"),
]
# Letters a country's series leave out (France's SIV: I, O, U; Italy: I, O, Q, U), as the recogniser's
# decoding expects (`agent.recognise.layouts.UNISSUED`).
FOREIGN_LETTERS: dict[str, str] = {
    "F": "".join(c for c in LETTERS if c not in "IOU"),
    "I": "".join(c for c in LETTERS if c not in "IOQU"),
}


@dataclass(frozen=True, slots=True)
class PlateText:
    vrm: str  # no spaces
    format: Format
    display: str  # as printed on the plate
    country: str = "GB"


def _pick(rng: np.random.Generator, chars: str) -> str:
    return chars[int(rng.integers(len(chars)))]


def _number(rng: np.random.Generator, max_digits: int) -> str:
    n = int(rng.integers(1, max_digits + 1))
    # Short numbers are common on cherished plates; weight toward 2-3 digits otherwise.
    return str(int(rng.integers(10 ** (n - 1) if n > 1 else 1, 10**n)))


def generate_uk(rng: np.random.Generator, fmt: str | None = None, today: _dt.date | None = None) -> PlateText:
    if fmt is None:
        names = list(FORMAT_WEIGHTS)
        w = np.array([FORMAT_WEIGHTS[n] for n in names])
        fmt = names[int(rng.choice(len(names), p=w / w.sum()))]
    if fmt == "gb_current":
        ages = issued_age_identifiers(today)
        vrm = (
            _pick(rng, CURRENT_REGION)
            + _pick(rng, CURRENT_TAG2)
            + f"{ages[int(rng.integers(len(ages)))]:02d}"
            + "".join(_pick(rng, CURRENT_RANDOM) for _ in range(3))
        )
    elif fmt == "gb_prefix":
        vrm = _pick(rng, YEAR_LETTERS) + _number(rng, 3) + "".join(_pick(rng, GB_OLD_LETTERS) for _ in range(3))
    elif fmt == "gb_suffix":
        vrm = "".join(_pick(rng, GB_OLD_LETTERS) for _ in range(3)) + _number(rng, 3) + _pick(rng, YEAR_LETTERS)
    elif fmt == "ni":
        serial = _pick(rng, NI_SERIAL) if rng.random() < 0.85 else ""
        vrm = serial + NI_CODES[int(rng.integers(len(NI_CODES)))] + _number(rng, 4)
    elif fmt == "gb_dateless":
        while True:
            letters = "".join(_pick(rng, GB_OLD_LETTERS) for _ in range(int(rng.integers(1, 4))))
            num = _number(rng, min(4, 7 - len(letters)))
            vrm = letters + num if rng.random() < 0.8 else num + letters
            p = _try_parse(vrm, today)
            if p is not None and p.format == "gb_dateless":
                break
    else:
        raise ValueError(f"unknown UK format {fmt!r}; expected one of {', '.join(UK_FORMATS)}")
    parsed = parse(vrm, today)
    if parsed.format != fmt:  # e.g. a prefix-looking NI plate; draw again
        return generate_uk(rng, fmt, today)
    return PlateText(parsed.vrm, parsed.format, parsed.display)


def _try_parse(vrm: str, today: _dt.date | None) -> ParsedPlate | None:
    try:
        return parse(vrm, today)
    except PlateError:
        return None


def generate_foreign(rng: np.random.Generator, today: _dt.date | None = None) -> PlateText:
    while True:
        country, pattern = FOREIGN_PATTERNS[int(rng.integers(len(FOREIGN_PATTERNS)))]
        letters = FOREIGN_LETTERS.get(country, LETTERS)
        shown = "".join(
            _pick(rng, letters) if c == "L" else _pick(rng, DIGITS) if c == "D" else c for c in pattern
        )
        vrm = normalise(shown)
        if not is_valid(vrm, today):
            return PlateText(vrm, "foreign", shown, country)


def generate(rng: np.random.Generator, foreign_rate: float = 0.0, today: _dt.date | None = None) -> PlateText:
    if foreign_rate > 0 and rng.random() < foreign_rate:
        return generate_foreign(rng, today)
    return generate_uk(rng, today=today)
