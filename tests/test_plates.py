import datetime as dt

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.plates import (
    CURRENT_REGION,
    PlateError,
    classify,
    issued_age_identifiers,
    normalise,
    parse,
    position_patterns,
)
from sim.plates import FORMAT_WEIGHTS, UK_FORMATS, generate_foreign, generate_uk

TODAY = dt.date(2026, 11, 26)


@given(seed=st.integers(0, 2**32 - 1), fmt=st.sampled_from(UK_FORMATS))
def test_every_generated_plate_parses_back_to_its_format(seed, fmt):
    p = generate_uk(np.random.default_rng(seed), fmt, TODAY)
    parsed = parse(p.vrm, TODAY)
    assert parsed.format == fmt == p.format
    assert parse(p.display, TODAY).vrm == p.vrm  # the printed form parses too


@given(seed=st.integers(0, 2**32 - 1))
def test_generated_plates_fit_a_position_pattern(seed):
    p = generate_uk(np.random.default_rng(seed), today=TODAY)
    pats = [chars for fmt, chars in position_patterns() if fmt == p.format and len(chars) == len(p.vrm)]
    assert any(all(c in allowed for c, allowed in zip(p.vrm, chars, strict=True)) for chars in pats)


@given(seed=st.integers(0, 2**32 - 1))
def test_foreign_plates_are_never_valid_uk(seed):
    f = generate_foreign(np.random.default_rng(seed), TODAY)
    assert f.format == "foreign"
    if f.country in ("F", "I"):  # their series leave these letters out (the decoder relies on it)
        assert not set(f.vrm) & set("IOU")
    assert classify(f.vrm, TODAY) == "unknown"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("AI12ABC", "second memory-tag"),  # I not used in the memory tag
        ("QA12ABC", "region"),  # Q is not a region letter
        ("AB12CIE", "random letters"),  # I not used in the random letters
        ("AB12CQE", "random letters"),
        ("AB49CDE", "age identifier"),  # 49 never issued
        ("AB01CDE", "age identifier"),  # 01 never issued (March 2001 was Y-prefix)
        ("AB27CDE", "age identifier"),  # March 2027 is in the future
        ("AB77CDE", "age identifier"),
        ("AB12CDEF", "at most 7"),
        ("I123ABC", "year letter"),
        ("ABC123Q", "year letter"),
        ("ABZ0123", "start with 0"),
        ("", "empty"),
        ("AB12 C*E", "other than A-Z"),
        ("QAZ1234", "serial letter"),
    ],
)
def test_known_invalid_strings_are_rejected_with_a_reason(text, why):
    with pytest.raises(PlateError) as e:
        parse(text, TODAY)
    assert why in str(e.value)


@pytest.mark.parametrize(
    ("text", "fmt"),
    [("AB12 CDE", "gb_current"), ("LV76 XYZ", "gb_current"), ("A123 BCD", "gb_prefix"), ("Y9 XYW", "gb_prefix"),
     ("ABC 123D", "gb_suffix"), ("ABZ 1234", "ni"), ("IA 1", "ni"), ("A 1", "gb_dateless"), ("1234 AB", "gb_dateless"),
     ("ab12-cde", "gb_current")],
)
def test_known_valid_strings(text, fmt):
    assert parse(text, TODAY).format == fmt


def test_age_identifiers_follow_march_september_rule():
    ids = issued_age_identifiers(TODAY)
    assert 51 in ids and 2 in ids and 26 in ids and 76 in ids
    assert 1 not in ids and 50 not in ids and 27 not in ids and 77 not in ids
    assert 26 not in issued_age_identifiers(dt.date(2026, 2, 28))
    assert 76 not in issued_age_identifiers(dt.date(2026, 8, 31))


def test_format_frequencies_are_realistic():
    rng = np.random.default_rng(0)
    counts = {f: 0 for f in UK_FORMATS}
    for _ in range(3000):
        counts[generate_uk(rng, today=TODAY).format] += 1
    assert counts["gb_current"] / 3000 == pytest.approx(FORMAT_WEIGHTS["gb_current"], abs=0.04)
    assert all(c > 0 for c in counts.values())


@given(st.text(max_size=12))
def test_parse_never_crashes_on_arbitrary_text(text):
    try:
        p = parse(text, TODAY)
    except PlateError:
        return
    assert p.vrm == normalise(text) and p.format in UK_FORMATS


def test_region_letters_exclude_unused():
    assert not set("IJQTUXZ") & set(CURRENT_REGION)
