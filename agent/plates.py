"""UK registration formats (DVLA rules): the single source of truth for syntax.

The simulator generates plates from these rules and the recogniser constrains its decoding with
them, so both must agree; this module lives under `agent` because the device needs it at run time
and `agent` must not import the simulator.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Literal

Format = Literal["gb_current", "gb_prefix", "gb_suffix", "gb_dateless", "ni", "foreign", "unknown"]
UK_FORMATS: tuple[Format, ...] = ("gb_current", "gb_prefix", "gb_suffix", "gb_dateless", "ni")

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"
ALPHABET = DIGITS + LETTERS  # the reader's character set

# Current format (Sept 2001 on): memory tag region letter, memory tag second letter, random letters.
CURRENT_REGION = "ABCDEFGHKLMNOPRSVWY"  # I, J, Q, T, U, X, Z are not region letters
CURRENT_TAG2 = "".join(c for c in LETTERS if c not in "IQZ")
CURRENT_RANDOM = "".join(c for c in LETTERS if c not in "IQ")
# Prefix (1983-2001) and suffix (1963-1983) year letters.
YEAR_LETTERS = "ABCDEFGHJKLMNPRSTVWXY"  # no I, O, Q, U, Z
# Three-letter groups of the older GB formats never use I, Q or Z (Z and I belong to Ireland).
GB_OLD_LETTERS = "".join(c for c in LETTERS if c not in "IQZ")
# Northern Ireland two-letter codes: each contains I or Z.
NI_CODES = (
    "AZ", "BZ", "CZ", "DZ", "EZ", "FZ", "GZ", "HZ", "IA", "IB", "IG", "IJ",
    "IL", "IW", "JI", "JZ", "KZ", "LZ", "MZ", "NZ", "OI", "OZ", "PZ", "RZ",
    "SZ", "TZ", "UI", "UZ", "VZ", "WZ", "XI", "XZ", "YZ",
)
NI_SERIAL = "".join(c for c in LETTERS if c not in "IQZ")

MAX_LEN = 7


def issued_age_identifiers(today: _dt.date | None = None) -> list[int]:
    """Age identifiers issued so far: March = yy, September = yy + 50 (51 = Sept 2001)."""
    today = today or _dt.date.today()
    ids: list[int] = []
    for year in range(2001, today.year + 1):
        yy = year % 100
        if year >= 2002 and today >= _dt.date(year, 3, 1):
            ids.append(yy)
        if today >= _dt.date(year, 9, 1):
            ids.append(yy + 50)
    return sorted(ids)


@dataclass(frozen=True, slots=True)
class ParsedPlate:
    vrm: str  # normalised: upper case, no spaces
    format: Format
    display: str  # with the conventional space(s)


class PlateError(ValueError):
    """A string that is not a valid UK registration; the message says why."""


_RE_CURRENT = re.compile(r"^([A-Z])([A-Z])(\d\d)([A-Z]{3})$")
_RE_PREFIX = re.compile(r"^([A-Z])(\d{1,3})([A-Z]{3})$")
_RE_SUFFIX = re.compile(r"^([A-Z]{3})(\d{1,3})([A-Z])$")
_RE_NI = re.compile(r"^([A-Z]?)([A-Z]{2})(\d{1,4})$")
_RE_DATELESS_LD = re.compile(r"^([A-Z]{1,3})(\d{1,4})$")
_RE_DATELESS_DL = re.compile(r"^(\d{1,4})([A-Z]{1,3})$")


def normalise(text: str) -> str:
    return re.sub(r"[\s\-·.]", "", text.upper())


def _check_number(digits: str, what: str) -> None:
    if digits.startswith("0"):
        raise PlateError(f"{what} '{digits}' may not start with 0")


def _why_current(m: re.Match[str], today: _dt.date | None) -> None:
    region, tag2, age, rnd = m.groups()
    if region not in CURRENT_REGION:
        raise PlateError(f"'{region}' is not a DVLA region letter")
    if tag2 not in CURRENT_TAG2:
        raise PlateError(f"'{tag2}' is not used as the second memory-tag letter")
    if int(age) not in issued_age_identifiers(today):
        raise PlateError(f"age identifier {age} has not been issued")
    bad = [c for c in rnd if c not in CURRENT_RANDOM]
    if bad:
        raise PlateError(f"'{bad[0]}' is not used in the random letters")


def _check_dated_gb(year: str, num: str, letters: str, position: str) -> None:
    """Prefix and suffix marks differ only in where the year letter stands."""
    if year not in YEAR_LETTERS:
        raise PlateError(f"'{year}' is not a {position} year letter")
    _check_number(num, "serial number")
    bad = [c for c in letters if c not in GB_OLD_LETTERS]
    if bad:
        raise PlateError(f"'{bad[0]}' is not used in GB letter groups")


def _why_prefix(m: re.Match[str]) -> None:
    year, num, letters = m.groups()
    _check_dated_gb(year, num, letters, "prefix")


def _why_suffix(m: re.Match[str]) -> None:
    letters, num, year = m.groups()
    _check_dated_gb(year, num, letters, "suffix")


def _why_ni(m: re.Match[str]) -> None:
    serial, code, num = m.groups()
    if code not in NI_CODES:
        raise PlateError(f"'{code}' is not a Northern Ireland code")
    if serial and serial not in NI_SERIAL:
        raise PlateError(f"'{serial}' is not used as a Northern Ireland serial letter")
    _check_number(num, "number")


def _why_dateless(letters: str, num: str) -> None:
    _check_number(num, "number")
    bad = [c for c in letters if c not in GB_OLD_LETTERS]
    if bad:
        raise PlateError(f"'{bad[0]}' is not used in GB dateless letter groups")


def parse(text: str, today: _dt.date | None = None) -> ParsedPlate:
    """Parse a UK registration; raise PlateError naming the first rule it breaks."""
    vrm = normalise(text)
    if not vrm:
        raise PlateError("empty registration")
    if len(vrm) > MAX_LEN:
        raise PlateError(f"'{vrm}' has {len(vrm)} characters; UK registrations have at most {MAX_LEN}")
    if not vrm.isalnum() or not vrm.isascii():
        raise PlateError(f"'{vrm}' contains characters other than A-Z and 0-9")
    reasons: list[str] = []
    if m := _RE_CURRENT.match(vrm):
        try:
            _why_current(m, today)
            return ParsedPlate(vrm, "gb_current", f"{vrm[:4]} {vrm[4:]}")
        except PlateError as e:
            reasons.append(str(e))
    if m := _RE_PREFIX.match(vrm):
        try:
            _why_prefix(m)
            return ParsedPlate(vrm, "gb_prefix", f"{m.group(1)}{m.group(2)} {m.group(3)}")
        except PlateError as e:
            reasons.append(str(e))
    if m := _RE_SUFFIX.match(vrm):
        try:
            _why_suffix(m)
            return ParsedPlate(vrm, "gb_suffix", f"{m.group(1)} {m.group(2)}{m.group(3)}")
        except PlateError as e:
            reasons.append(str(e))
    if m := _RE_NI.match(vrm):
        try:
            _why_ni(m)
            return ParsedPlate(vrm, "ni", f"{m.group(1)}{m.group(2)} {m.group(3)}")
        except PlateError as e:
            reasons.append(str(e))
    for rx in (_RE_DATELESS_LD, _RE_DATELESS_DL):
        if m := rx.match(vrm):
            a, b = m.groups()
            letters, num = (a, b) if a.isalpha() else (b, a)
            try:
                _why_dateless(letters, num)
                return ParsedPlate(vrm, "gb_dateless", f"{a} {b}")
            except PlateError as e:
                reasons.append(str(e))
    if reasons:
        raise PlateError(f"'{vrm}': " + "; ".join(dict.fromkeys(reasons)))
    raise PlateError(f"'{vrm}' matches no UK registration pattern")


def is_valid(text: str, today: _dt.date | None = None) -> bool:
    try:
        parse(text, today)
        return True
    except PlateError:
        return False


def classify(text: str, today: _dt.date | None = None) -> Format:
    """UK format name, or 'unknown' for text that is not a valid UK registration."""
    try:
        return parse(text, today).format
    except PlateError:
        return "unknown"


def display(text: str) -> str:
    """Conventional spacing for a valid registration, else the text unchanged."""
    try:
        return parse(text).display
    except PlateError:
        return normalise(text)


# Per-position character classes of each UK pattern, for constrained decoding: a pattern is a tuple
# of allowed-character strings, one per position. Semantic checks (age identifier, NI codes) are
# applied afterwards by `parse`.
def position_patterns() -> list[tuple[Format, tuple[str, ...]]]:
    d1 = DIGITS[1:]
    pats: list[tuple[Format, tuple[str, ...]]] = [
        ("gb_current", (CURRENT_REGION, CURRENT_TAG2, DIGITS, DIGITS) + (CURRENT_RANDOM,) * 3),
    ]
    for n in (1, 2, 3):
        num = (d1,) + (DIGITS,) * (n - 1)
        pats.append(("gb_prefix", (YEAR_LETTERS,) + num + (GB_OLD_LETTERS,) * 3))
        pats.append(("gb_suffix", (GB_OLD_LETTERS,) * 3 + num + (YEAR_LETTERS,)))
    ni_first = "".join(sorted({c[0] for c in NI_CODES}))
    ni_second = "".join(sorted({c[1] for c in NI_CODES}))
    for n in (1, 2, 3, 4):
        num = (d1,) + (DIGITS,) * (n - 1)
        pats.append(("ni", (ni_first, ni_second) + num))
        pats.append(("ni", (NI_SERIAL, ni_first, ni_second) + num))
    for nl in (1, 2, 3):
        for nd in (1, 2, 3, 4):
            if nl + nd > MAX_LEN:
                continue
            num = (d1,) + (DIGITS,) * (nd - 1)
            pats.append(("gb_dateless", (GB_OLD_LETTERS,) * nl + num))
            pats.append(("gb_dateless", num + (GB_OLD_LETTERS,) * nl))
    return pats
