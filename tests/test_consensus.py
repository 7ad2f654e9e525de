import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.plates import ALPHABET, UK_FORMATS
from agent.recognise import Recogniser
from agent.recognise.consensus import ctc_log_likelihood, ctc_log_likelihoods, greedy_labels, read_views
from agent.recognise.decode import decode
from agent.recognise.detector import Detection
from agent.recognise.layouts import unissued_letters, unissued_positions
from agent.recognise.preprocess import BLANK, HIDDEN, N_CLASSES
from agent.recognise.rectify import crop_plate
from tests.support.reader_output import probs_for


def brute_force(probs: np.ndarray, labels: list[int]) -> float:
    """Sum over every path that collapses to `labels` (only their classes and blank can)."""
    classes = sorted(set(labels) | {BLANK})
    total = 0.0
    for path in itertools.product(classes, repeat=probs.shape[0]):
        collapsed = [c for i, c in enumerate(path) if c != BLANK and (i == 0 or c != path[i - 1])]
        if collapsed == labels:
            total += float(np.prod([probs[t, c] for t, c in enumerate(path)]))
    return math.log(total) if total > 0 else -math.inf


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), labels=st.lists(st.integers(0, 2), min_size=1, max_size=3),
       steps=st.integers(1, 6))
def test_ctc_likelihood_is_the_sum_over_all_alignments(seed, labels, steps):
    p = np.random.default_rng(seed).dirichlet(np.ones(N_CLASSES), size=steps)
    got = float(ctc_log_likelihood(p, labels)[0])
    want = brute_force(p, labels)
    if want == -math.inf:
        assert got < -60
    else:
        assert got == pytest.approx(want, rel=1e-6, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), options=st.lists(st.lists(st.integers(0, 5), max_size=8), min_size=1,
                                                       max_size=5), views=st.integers(1, 3), steps=st.integers(1, 10))
def test_ctc_likelihoods_of_several_texts_at_once_equal_each_alone(seed, options, views, steps):
    """Padded to the longest, each option (any length, repeats, empty, longer than the steps) scores as
    it would alone."""
    p = np.random.default_rng(seed).dirichlet(np.ones(N_CLASSES), size=(views, steps))
    got = ctc_log_likelihoods(p, options)
    assert got.shape == (len(options), views)
    for lab, row in zip(options, got, strict=True):
        want = brute_force(p[0], lab) if views == 1 and len(lab) <= 3 and steps <= 5 else None
        alone = _one_at_a_time(p, lab)
        assert np.allclose(row, alone, rtol=1e-9, atol=1e-9)
        if want is not None and want > -60:
            assert row[0] == pytest.approx(want, rel=1e-6)


def _one_at_a_time(p: np.ndarray, labels: list[int]) -> np.ndarray:
    """The CTC forward pass for one text, written out plainly (the reference for the batched one)."""
    ext = [BLANK] + [x for c in labels for x in (c, BLANK)]
    views, steps, _ = p.shape
    if len(labels) > steps:
        return np.full(views, -np.inf)
    out = np.empty(views)
    for v in range(views):
        lp = np.log(np.maximum(p[v][:, ext], 1e-30))
        a = np.full(len(ext), -np.inf)
        a[0] = lp[0, 0]
        if len(ext) > 1:
            a[1] = lp[0, 1]
        for t in range(1, steps):
            b = a.copy()
            for s in range(1, len(ext)):
                b[s] = np.logaddexp(b[s], a[s - 1])
                if s >= 2 and ext[s] != BLANK and ext[s] != ext[s - 2]:
                    b[s] = np.logaddexp(b[s], a[s - 2])
            a = b + lp[t]
        out[v] = np.logaddexp(a[-1], a[-2]) if len(ext) > 1 else a[-1]
    return out


def test_views_that_agree_give_full_agreement():
    c = read_views([probs_for("AB12CDE")] * 3)
    assert c.reading is not None and c.reading.vrm == "AB12CDE" and c.agreement == 1.0
    assert c.reading == decode(probs_for("AB12CDE"))


def test_two_agreeing_views_outvote_one_confident_dissenter():
    right, wrong = probs_for("AB12CDE", conf=0.9), probs_for("AB12CBE", conf=0.99)
    c = read_views([wrong, right, right])
    assert c.reading is not None and c.reading.vrm == "AB12CDE"
    assert c.agreement == pytest.approx(2 / 3)


def test_a_dissenter_that_the_other_views_also_support_wins():
    # two views lean to 'B' only slightly, one is sure of 'D': the sum over views decides
    lean = probs_for("AB12CBE", conf=0.5, alt={5: ("D", 0.45)})
    sure = probs_for("AB12CDE", conf=0.99)
    c = read_views([lean, lean, sure])
    assert c.reading is not None and c.reading.vrm == "AB12CDE"


def test_a_letter_a_layout_never_carries_takes_the_issued_letter_the_views_favour():
    # FR-452-RD read as FR452RU: France and Italy issue no U. Views that left D a little chance decide,
    # a view that left it none does not keep the U; the D's confidence is the U's times D's share.
    sure_u = probs_for("FR452RU")
    leaning = probs_for("FR452RU", alt={6: ("D", 0.02)})
    c = read_views([sure_u, leaning, leaning])
    assert c.reading is not None and c.reading.vrm == "FR452RD" and c.reading.format == "foreign"
    assert c.agreement == 1.0 and c.reading.confidence < 0.96 * 0.8
    # two unissued letters, each replaced by its own favourite (Q for O: the reader's usual confusion)
    c = read_views([probs_for("BO360YO", alt={1: ("Q", 0.03), 6: ("D", 0.03)})] * 2)
    assert c.reading is not None and c.reading.vrm == "BQ360YD"
    # never by another unissued letter, however likely: I (left as read where it is read) is no D
    c = read_views([probs_for("FR452RU", alt={6: ("I", 0.04)}), probs_for("FR452RU", alt={6: ("D", 0.01)})])
    assert c.reading is not None and c.reading.vrm == "FR452RD"


@pytest.mark.parametrize("text", ["FR452RU", "AC724OH", "OU123IO"])
def test_an_unissued_letter_stays_when_no_issued_letter_stands_out(text):
    # every other letter equally unlikely (or none given any chance): nothing to choose, the read stands
    flat = probs_for(text)
    none = probs_for(text)
    k = len(ALPHABET)
    none[:, :k] = np.where(none[:, :k] < 0.5, 0.0, none[:, :k])  # only the read letters left
    for p in (flat, none):
        c = read_views([p])
        assert c.reading is not None and c.reading.vrm == text


@pytest.mark.parametrize("text", ["AB12CDE", "AB123CD", "KI361DH", "1020HG90", "UO1234", "12OU3"])
def test_reads_of_other_layouts_and_issued_letters_are_left_alone(text):
    # a UK mark, a SIV mark with issued letters, I (Austrian district codes), an FNI mark with issued
    # letters, shapes no rule covers: unchanged whatever second choices the reader had
    alts = {i: ("Q", 0.03) for i in range(len(text))}
    c = read_views([probs_for(text, alt=alts)])
    assert c.reading is not None and c.reading.vrm == text


@given(letters=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=4, max_size=4), digits=st.text("0123456789",
       min_size=3, max_size=3), alts=st.dictionaries(st.integers(0, 6), st.tuples(
           st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), st.floats(0.0, 0.4)), max_size=4))
def test_only_unissued_letters_ever_change_and_only_to_issued_ones(letters, digits, alts):
    text = letters[:2] + digits + letters[2:]  # the LL 999 LL shape, any letters
    p = probs_for(text, alt=alts)
    read, c = decode(p), read_views([p])
    assert (read is None) == (c.reading is None)
    if read is None:
        return
    assert len(c.reading.vrm) == len(read.vrm) and 0.0 <= c.reading.confidence <= read.confidence
    for i, (a, b) in enumerate(zip(read.vrm, c.reading.vrm, strict=True)):
        assert a == b or (i in unissued_positions(read.vrm) and b.isalpha() and b not in unissued_letters(read.vrm))


def test_covered_characters_seen_by_most_views_make_the_read_incomplete():
    clean = probs_for("SX73MMJ")
    covered = probs_for("SX73MMJ")
    covered[2:4, :] = 1e-4
    covered[2:4, HIDDEN] = 1.0  # the 'S' under a tow bar
    covered /= covered.sum(axis=1, keepdims=True)
    assert greedy_labels(covered)[0] == HIDDEN
    c = read_views([covered, covered, clean])
    assert c.reading is not None and not c.reading.complete and c.hidden > 0.9


def test_nothing_read_in_any_view():
    empty = np.zeros((32, N_CLASSES), np.float32)
    empty[:, BLANK] = 1.0
    c = read_views([empty, empty])
    assert c.reading is None and c.agreement == 0.0


def test_view_count_is_checked():
    with pytest.raises(ValueError, match="views"):
        Recogniser("models", views=0)


def test_shifted_crop_moves_along_the_plate():
    img = np.zeros((100, 300), np.uint8)
    img[:, 150] = 255  # a vertical line in the middle of the plate
    quad = np.array([[100, 40], [200, 40], [200, 60], [100, 60]], float)
    centre = crop_plate(img, quad, 0.0, 0.0)
    moved = crop_plate(img, quad, 0.0, 0.0, shift=0.1)
    col = int(np.argmax(centre.sum(axis=0)))
    col_moved = int(np.argmax(moved.sum(axis=0)))
    assert abs(col - 50) <= 1 and abs(col_moved - 40) <= 1  # the crop moved right by 10 px


def test_cli_defaults_match_the_recogniser_and_config():
    from agent import cli, config
    from agent.recognise.consensus import VIEWS

    assert len(VIEWS) == cli.MAX_VIEWS
    assert config.DEFAULT_MIN_CONFIDENCE == cli.DEFAULT_MIN_CONFIDENCE


def test_first_views_agreeing_end_the_reading():
    from agent.recognise.consensus import first_views_agree

    same = [decode(probs_for("AB12CDE"))] * 2
    assert first_views_agree(same)
    assert not first_views_agree([same[0], decode(probs_for("AB12CBE"))])
    assert not first_views_agree([same[0], None])


def test_first_views_agreeing_on_a_foreign_text_read_on():
    """A non-UK text two crops agree on is read from every crop: how many agree is what tells a right
    foreign read from a confident misread (FIRST_VIEWS)."""
    from agent.recognise.consensus import first_views_agree

    french = [decode(probs_for("FR452RD"))] * 2
    assert french[0] is not None and french[0].vrm == "FR452RD" and french[0].format not in UK_FORMATS
    assert not first_views_agree(french)


def test_recogniser_reads_a_foreign_plate_from_every_view(monkeypatch):
    """End to end on the shipped reader: a plate the first two crops read alike as UK stops there,
    a non-UK one does not."""
    import agent.recognise.recogniser as recogniser_module
    from agent.recognise.consensus import FIRST_VIEWS, VIEWS

    rec = Recogniser(None, 1)
    runs = []
    real_run = rec.reader.run
    monkeypatch.setattr(rec.reader, "run", lambda x: runs.append(1) or real_run(x))
    for text, views in (("AB12CDE", FIRST_VIEWS), ("FR452RD", len(VIEWS))):
        monkeypatch.setattr(recogniser_module, "decode", lambda probs, text=text: decode(probs_for(text)))
        runs.clear()
        img = np.full((200, 600, 3), 200, np.uint8)
        d = Detection(np.array([[100, 70], [500, 70], [500, 130], [100, 130]], float), 1.0)
        reading, _two, res = rec.read_detection(img, d)
        assert reading is not None and reading.vrm == text
        assert len(runs) == views
        assert res.agreement == 1.0



def test_first_views_that_disagree_unsure_of_their_characters_end_the_reading():
    """Junk regions read as unsure, disagreeing text: more crops would not read them (HOPEFUL_MEAN)."""
    from agent.recognise.consensus import HOPEFUL_MEAN, first_views_hopeless

    unsure = [decode(probs_for("AB12CDE", conf=0.3)), decode(probs_for("XB12CDF", conf=0.3))]
    assert all(np.mean(r.char_confidences) < HOPEFUL_MEAN for r in unsure)
    assert first_views_hopeless(unsure)
    assert first_views_hopeless([unsure[0], None])
    sure = decode(probs_for("AB12CDE", conf=0.9))
    assert np.mean(sure.char_confidences) >= HOPEFUL_MEAN
    assert not first_views_hopeless([sure, unsure[1]])  # one view sure enough: look further
    assert not first_views_hopeless([unsure[1], sure])


def test_two_outlines_reading_different_texts_cap_the_likelier():
    """A crop read along two outlines: the likelier read is kept, and where the other read a different
    text the kept read is no surer than the other is wrong (both cannot be right)."""
    import numpy as np

    from agent.recognise.consensus import Consensus
    from agent.recognise.decode import Reading
    from agent.recognise.detector import Detection
    from agent.recognise.recogniser import likelier_read

    box = Detection(np.array([[0, 0], [120, 0], [120, 30], [0, 30]], np.float64), 1.0)
    inner = Detection(np.array([[10, 5], [110, 5], [110, 25], [10, 25]], np.float64), 1.0)

    def read(d, vrm, conf):
        r = None if vrm is None else Reading(vrm, conf, (conf,) * len(vrm), "gb_current")
        return d, r, False, Consensus(r, 1.0)

    d, r, _two, _res = likelier_read(read(box, "AB12CDE", 0.97), read(inner, "AB12CDF", 0.99))
    assert d is inner and r.vrm == "AB12CDF" and abs(r.confidence - 0.03) < 1e-9
    d, r, _two, _res = likelier_read(read(box, "AB12CDE", 0.97), read(inner, "AB12CDE", 0.99))
    assert d is inner and r.confidence == 0.99  # the same text: nothing to doubt
    d, r, _two, _res = likelier_read(read(box, None, 0.0), read(inner, "AB12CDE", 0.9))
    assert d is inner and r.confidence == 0.9  # nothing read along the edges
    d, r, _two, _res = likelier_read(read(box, "AB12CDE", 0.6), read(inner, None, 0.0))
    assert d is box and r.confidence == 0.6
