"""Registration layouts of other countries, as letter and digit patterns (no separators, as read).

A non-UK read that fits one of them is likelier a real foreign plate than a misread: a UK mark read
one character wrong (`confidence.near_uk`) is still UK-shaped, and a junk region's read (a badge, a
phone number, a sticker) rarely has a plate's letter/digit layout. The calibration uses both, so a
French SIV mark, one character from a UK current-style mark, is not held back for looking like a
misread UK plate. Patterns from the countries' published formats; only the shape is checked, not
prefixes or check letters, so the list stays honest for countries whose series change.
"""

from __future__ import annotations

import re
from functools import cache

# country -> regular expressions over the read (A-Z, 0-9, no spaces or dashes)
LAYOUTS: dict[str, tuple[str, ...]] = {
    "fr": (r"[A-Z]{2}\d{3}[A-Z]{2}", r"\d{1,4}[A-Z]{1,3}\d{2}"),  # SIV since 2009; FNI (department last)
    "de": (r"[A-Z]{1,3}[A-Z]{1,2}\d{1,4}[EH]?",),  # district, letters, number, electric / historic
    "es": (r"\d{4}[A-Z]{3}", r"[A-Z]{1,2}\d{4}[A-Z]{1,2}"),
    "it": (r"[A-Z]{2}\d{3}[A-Z]{2}",),
    "nl": (r"[A-Z]{2}\d{2}\d{2}", r"\d{2}\d{2}[A-Z]{2}", r"\d{2}[A-Z]{2}\d{2}", r"[A-Z]{2}\d{2}[A-Z]{2}",
           r"[A-Z]{2}[A-Z]{2}\d{2}", r"\d{2}[A-Z]{2}[A-Z]{2}", r"\d{2}[A-Z]{3}\d", r"\d[A-Z]{3}\d{2}",
           r"[A-Z]{2}\d{3}[A-Z]", r"[A-Z]\d{3}[A-Z]{2}", r"[A-Z]{3}\d{2}[A-Z]", r"\d[A-Z]{2}\d{3}",
           r"\d{3}[A-Z]{2}\d"),  # the sidecodes
    "be": (r"\d[A-Z]{3}\d{3}", r"[A-Z]{3}\d{3}"),
    "pl": (r"[A-Z]{2,3}(?:\d{4,5}|\d{3}[A-Z]{1,2}|\d{2}[A-Z]{1,2}|\d[A-Z]\d{2}|[A-Z]\d{3}|[A-Z]{2}\d{2}"
           r"|\d{2}[A-Z]\d)",),
    "cz": (r"\d[A-Z][0-9A-Z]\d{4}",),
    "sk": (r"[A-Z]{2}\d{3}[A-Z]{2}",),
    "at": (r"[A-Z]{1,2}\d{1,5}[A-Z]{1,3}",),
    "ch": (r"[A-Z]{2}\d{1,6}",),
    "se": (r"[A-Z]{3}\d{2}[0-9A-Z]",),
    "no": (r"[A-Z]{2}\d{4,5}",),
    "dk": (r"[A-Z]{2}\d{5}",),
    "fi": (r"[A-Z]{2,3}\d{1,3}",),
    "ie": (r"\d{2,3}[A-Z]{1,2}\d{1,6}",),
    "pt": (r"\d{2}[A-Z]{2}\d{2}", r"\d{4}[A-Z]{2}", r"[A-Z]{2}\d{4}", r"[A-Z]{2}\d{2}[A-Z]{2}"),
    "ro": (r"[A-Z]{1,2}\d{2,3}[A-Z]{3}",),
    "bg": (r"[A-Z]{1,2}\d{4}[A-Z]{1,2}",),
    "hr": (r"[A-Z]{2}\d{3,4}[A-Z]{1,2}",),
    "rs": (r"[A-Z]{2}\d{3,5}[A-Z]{2}",),
    "hu": (r"[A-Z]{3}\d{3}", r"[A-Z]{4}\d{3}"),
    "gr": (r"[A-Z]{3}\d{4}",),
    "lt": (r"[A-Z]{3}\d{3}",),
    "lv": (r"[A-Z]{2}\d{1,4}",),
    "ee": (r"\d{3}[A-Z]{3}",),
    "si": (r"[A-Z]{2}(?:\d{3}[A-Z]{2}|[A-Z]{1,2}\d{3}|\d{2}[A-Z]{3})",),
    "ua": (r"[A-Z]{2}\d{4}[A-Z]{2}",),
    "br": (r"[A-Z]{3}\d[0-9A-Z]\d{2}",),  # old and Mercosur
    "ar": (r"[A-Z]{2}\d{3}[A-Z]{2}", r"[A-Z]{3}\d{3}"),
    "in": (r"[A-Z]{2}\d{1,2}[A-Z]{0,3}\d{4}",),
    "us": (r"\d[A-Z]{3}\d{3}", r"[A-Z]{3}\d{4}", r"\d{3}[A-Z]{3}"),
}


@cache
def _compiled() -> tuple[tuple[str, re.Pattern[str]], ...]:
    return tuple((country, re.compile(rf"(?:{p})\Z")) for country, ps in LAYOUTS.items() for p in ps)


@cache
def _any_layout() -> re.Pattern[str]:
    """Every distinct pattern in one expression: `national_layout` runs for every read the unit makes,
    and several countries share a shape (LL 999 LL: France, Italy, Slovakia, Argentina)."""
    unique = dict.fromkeys(p for ps in LAYOUTS.values() for p in ps)
    return re.compile("(?:" + "|".join(f"(?:{p})" for p in unique) + r")\Z")


# Letters a layout's plates never carry in its letter positions, where the countries that issue nearly all
# plates of that shape a UK unit sees leave them out. LL 999 LL: France's SIV series skip I, O and U,
# Italy's I, O, Q and U; 9999 LLL 99: France's older FNI series skip I, O and U too (none among the 90
# letters of the shared set's 39 FNI marks), as do Dutch plates of the same shape (no vowels). The reader
# reads their Q and D as O and V and D as U (a French plate's Q had 0.01-0.03 left for Q beside 0.95 for
# O), and a confident O or U there is a misread, so the plate's read takes the issued letter its crops
# favour (`consensus.issued_letters`). A read I is left as read (KEPT_AS_READ), though never put in
# another's place: Austrian district codes (KI) and Slovak series (AI) carry it in the LL 999 LL shape. The
# cost: an Argentine Mercosur plate (the same shape, O and U issued) or an Austrian district code with them
# (VO, GU) reads wrong or, where no other letter stands out, unsure; so would an Irish mark with a two-digit
# number and O in its county (12 MO 34).
UNISSUED: tuple[tuple[str, str], ...] = ((r"[A-Z]{2}\d{3}[A-Z]{2}", "IOU"), (r"\d{1,4}[A-Z]{1,3}\d{2}", "IOU"))
KEPT_AS_READ = "I"


@cache
def _unissued() -> tuple[tuple[re.Pattern[str], frozenset[str]], ...]:
    return tuple((re.compile(rf"(?:{p})\Z"), frozenset(letters)) for p, letters in UNISSUED)


def unissued_letters(text: str) -> frozenset[str]:
    """The letters `text`'s layout never carries (`UNISSUED`); empty when no rule covers its shape."""
    return next((letters for p, letters in _unissued() if p.match(text)), frozenset())


def unissued_positions(text: str) -> tuple[int, ...]:
    """Where `text` holds a letter its layout never carries (see `UNISSUED`), bar KEPT_AS_READ."""
    letters = unissued_letters(text) - set(KEPT_AS_READ)
    return tuple(i for i, c in enumerate(text) if c in letters)


def countries(text: str) -> tuple[str, ...]:
    """The countries whose layout `text` fits (empty: none)."""
    return tuple(dict.fromkeys(c for c, p in _compiled() if p.match(text)))


def national_layout(text: str) -> bool:
    """Whether `text` fits some country's registration layout (see module docstring)."""
    return _any_layout().match(text) is not None
