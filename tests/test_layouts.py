"""National layouts: real marks of each country fit, UK-shaped misreads and junk mostly do not."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.recognise.layouts import LAYOUTS, countries, national_layout, unissued_positions


@pytest.mark.parametrize(("text", "country"), [
    ("AB123CD", "fr"), ("1020HG90", "fr"), ("1234BCD", "es"), ("BORHD115", "de"), ("MAB1234E", "de"),
    ("1ABC234", "be"), ("14VRLV", "nl"), ("ZG9757HG", "hr"), ("ABC1D23", "br"), ("ABC1234", "br"),
    ("AD054JI", "ar"), ("B123ABC", "ro"), ("AB12345", "dk"), ("CAJ489", "se")])
def test_published_marks_fit_their_country(text, country):
    assert country in countries(text) and national_layout(text)


@pytest.mark.parametrize("text", ["A1B2C3D4", "1A2B3C", "12345678", "ABCDEFGH", "0", ""])
def test_shapes_no_country_uses_fit_none(text):
    assert not national_layout(text) and countries(text) == ()


def test_every_pattern_is_anchored_and_compiles():
    import re
    for ps in LAYOUTS.values():
        for p in ps:
            re.compile(p)
    assert not national_layout("AB123CD45X")  # a match must be the whole read, not a prefix


@given(st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-. a", max_size=14))
def test_any_text_gives_an_answer(text):
    assert national_layout(text) == bool(countries(text))


@pytest.mark.parametrize(("text", "positions"), [
    ("FR452RU", (6,)), ("BO360YO", (1, 6)), ("AB123CD", ()), ("KI361DH", ()), ("OU12345", ()),
    ("5122WO06", (5,)), ("1020HG90", ()), ("12OU3", ())])
def test_unissued_letters_are_found_only_in_the_layouts_that_leave_them_out(text, positions):
    assert unissued_positions(text) == positions
