import datetime as dt

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from agent.plates import ALPHABET, is_valid
from agent.recognise.decode import BLANK, HIDDEN, decode
from agent.recognise.preprocess import N_CLASSES
from sim.plates import UK_FORMATS, generate_foreign, generate_uk
from tests.support.reader_output import T, probs_for


@given(seed=st.integers(0, 2**32 - 1), fmt=st.sampled_from(UK_FORMATS))
def test_clean_reads_decode_exactly(seed, fmt):
    plate = generate_uk(np.random.default_rng(seed), fmt, dt.date.today())
    r = decode(probs_for(plate.vrm))
    assert r is not None and r.vrm == plate.vrm and r.format == fmt
    assert len(r.char_confidences) == len(plate.vrm) and 0.9 < r.confidence <= 1.0


def test_uncertain_character_is_corrected_by_syntax():
    # 'AB12CDE' read with the '1' as an uncertain 'I' (second choice '1'): UK syntax fixes it.
    p = probs_for("AB12CDE", alt={2: ("I", 0.55)})
    p2 = probs_for("ABI2CDE", conf=0.55, alt={2: ("1", 0.40)})
    for probs in (p, p2):
        r = decode(probs)
        assert r is not None and r.vrm == "AB12CDE" and r.format == "gb_current"


def test_confident_foreign_plate_is_not_forced_into_uk():
    r = decode(probs_for("AB123CD"))  # French/Italian style
    assert r is not None and r.vrm == "AB123CD" and r.format == "foreign"


def test_unsure_non_uk_text_is_unknown():
    r = decode(probs_for("XQ9Q", conf=0.6))
    assert r is not None and r.format == "unknown"


def test_nothing_read_gives_none():
    p = np.zeros((T, N_CLASSES), np.float32)
    p[:, BLANK] = 1
    assert decode(p) is None


@given(seed=st.integers(0, 2**32 - 1))
def test_foreign_generated_plates_stay_foreign(seed):
    f = generate_foreign(np.random.default_rng(seed))
    r = decode(probs_for(f.vrm))
    assert r is not None and r.vrm == f.vrm and r.format == "foreign"


@given(arrays(np.float32, (T, N_CLASSES), elements=st.floats(0, 1, width=32)))
def test_decode_never_crashes_on_arbitrary_probabilities(p):
    r = decode(p)
    if r is not None:
        assert set(r.vrm) <= set(ALPHABET)
        assert len(r.char_confidences) == len(r.vrm)
        assert r.format in (*UK_FORMATS, "foreign", "unknown")
        assert (r.format in UK_FORMATS) == is_valid(r.vrm)


@pytest.mark.parametrize("text", ["A1", "LV76XYZ", "ABZ1234", "1234AB"])
def test_short_and_long_valid_marks(text):
    r = decode(probs_for(text))
    assert r is not None and r.vrm == text



def test_confident_look_alike_is_not_bent_into_uk_syntax():
    # 'EP-710-WB' (France) read confidently must stay foreign even though 'EP71 OWB' is a valid UK mark
    r = decode(probs_for("EP710WB"))
    assert r is not None and r.vrm == "EP710WB" and r.format == "foreign"
    # the same shape read unsurely (0 vs O) is settled by UK syntax
    r = decode(probs_for("EP71OWB", alt={4: ("0", 0.45)}, conf=0.5))
    assert r is not None and r.vrm == "EP71OWB"


def probs_with_hidden(text: str, hidden_at: int, p_hidden: float = 0.97) -> np.ndarray:
    """`text` read cleanly, with a run of covered characters (the hidden class) before `hidden_at`."""
    p = probs_for(text)
    col = 2 + hidden_at * 3 - 1  # the blank column before that character
    p[col, :] = (1 - p_hidden) / (N_CLASSES - 1)
    p[col, HIDDEN] = p_hidden
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("at", [0, 3, 6])
def test_covered_characters_make_an_incomplete_unpublishable_read(at):
    # e.g. a tow bar over the 'X' of LV76XYZ: the reader gives 'LV76YZ' and a hidden run; the partial
    # text must neither be taken as a UK mark nor be confident, however sure the visible characters are
    r = decode(probs_with_hidden("LV76YZ" if at == 3 else "LV76XYZ", at))
    assert r is not None and not r.complete and r.format == "unknown"
    assert r.confidence <= 0.03 + 1e-6
    assert decode(probs_for("LV76XYZ")).complete


@given(arrays(np.float32, (T, N_CLASSES), elements=st.floats(0, 1, width=32)))
def test_confidence_stays_a_probability_with_the_hidden_class(p):
    r = decode(p)
    if r is not None:
        assert 0.0 <= r.confidence <= 1.0
        if not r.complete:
            assert r.format == "unknown"


def test_reader_without_the_hidden_class_still_decodes():
    # the 37-class output of readers trained before the hidden class existed
    r = decode(probs_for("AB12CDE")[:, : BLANK + 1])
    assert r is not None and r.vrm == "AB12CDE" and r.complete
