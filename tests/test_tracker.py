import pytest

from agent.pipeline.tracker import Observation, Tracker, edit_distance, vote


def obs(t, vrm, x, y, w, conf=0.95, cc=None):
    return Observation(t, int(t * 25), vrm, conf, tuple(cc or [conf] * len(vrm)), (int(x), int(y), int(w), int(w / 4)))


def run(tracker, frames):
    done = []
    for t, ob in frames:
        done += tracker.update(t, ob)
    done += tracker.flush()
    return sorted(done, key=lambda r: r.first_t)


def approaching(vrm, x0, t0, n=12, dt=0.04, y0=100, vy=25, w0=80, grow=4, errors=None):
    out = []
    for k in range(n):
        text = (errors or {}).get(k, vrm)
        out.append((t0 + k * dt, obs(t0 + k * dt, text, x0, y0 + vy * k, w0 + grow * k,
                                     conf=0.6 if text != vrm else 0.95)))
    return out


def merge(*seqs):
    by_t = {}
    for s in seqs:
        for t, o in s:
            by_t.setdefault(round(t, 3), []).append(o)
    return sorted(by_t.items())


def test_single_vehicle_votes_out_misreads_and_reports_direction():
    seq = approaching("AB12CDE", 300, 0.0, errors={3: "AB12CDF", 7: "A812CDE"})
    res = run(Tracker(), [(t, [o]) for t, o in seq])
    assert len(res) == 1
    r = res[0]
    assert r.vrm == "AB12CDE" and r.format == "gb_current" and r.direction == "towards" and r.frames == 12
    assert r.best.vrm == "AB12CDE"


def test_two_plates_side_by_side_stay_separate():
    a = approaching("AB12CDE", 100, 0.0)
    b = approaching("XY65ZZZ", 700, 0.0)
    res = run(Tracker(), merge(a, b))
    assert sorted(r.vrm for r in res) == ["AB12CDE", "XY65ZZZ"]


def test_overtaking_vehicles_crossing_lanes():
    a = approaching("AB12CDE", 200, 0.0, vy=20)
    b = [(0.04 * k, obs(0.04 * k, "KL70MNO", 200 + 30 * k, 60 + 35 * k, 70 + 5 * k)) for k in range(12)]
    res = run(Tracker(), merge(a, b))
    assert sorted(r.vrm for r in res) == ["AB12CDE", "KL70MNO"]


def test_short_occlusion_keeps_one_track_and_long_gap_splits():
    seq = approaching("AB12CDE", 300, 0.0, n=15)
    occluded = [(t, [o]) for k, (t, o) in enumerate(seq) if not 5 <= k < 9]  # 4 frames hidden (0.16 s)
    assert len(run(Tracker(max_gap_s=0.5), occluded)) == 1
    later = approaching("AB12CDE", 300, 3.0)
    assert len(run(Tracker(max_gap_s=0.5), [(t, [o]) for t, o in seq + later])) == 2


def test_departing_vehicle_and_lane():
    seq = [(0.04 * k, obs(0.04 * k, "AB12CDE", 600, 600 - 30 * k, 120 - 5 * k)) for k in range(10)]
    lanes = [[(0, 0), (500, 0), (500, 720), (0, 720)], [(500, 0), (1280, 0), (1280, 720), (500, 720)]]
    r = run(Tracker(lanes=lanes), [(t, [o]) for t, o in seq])[0]
    assert r.direction == "away" and r.lane == 1


def test_vote_prefers_confident_characters():
    o1 = obs(0, "AB12CDE", 0, 0, 80, cc=[0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.3])
    o2 = obs(0.04, "AB12CDF", 0, 0, 80, cc=[0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.95])
    o3 = obs(0.08, "AB12CDE", 0, 0, 80, cc=[0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.4])
    vrm, confs, agreement = vote([o1, o2, o3])
    assert vrm == "AB12CDF" and len(confs) == 7 and agreement == pytest.approx(0.95 / 1.65)


@pytest.mark.parametrize(("a", "b", "d"), [("", "", 0), ("ABC", "ABC", 0), ("ABC", "ABD", 1), ("ABC", "AC", 1),
                                          ("", "AB", 2)])
def test_edit_distance(a, b, d):
    assert edit_distance(a, b) == d


def test_track_closes_as_soon_as_the_plate_leaves_the_frame():
    tr = Tracker(max_gap_s=1.0)
    seq = approaching("AB12CDE", 300, 0.0, n=6, y0=500, vy=40)  # last box touches the bottom of a 720 frame
    done = []
    for t, o in seq:
        done += tr.update(t, [o], (1280, 720))
    assert not done
    done += tr.update(seq[-1][0] + 0.04, [], (1280, 720))  # next frame, plate gone
    assert [r.vrm for r in done] == ["AB12CDE"]


def test_track_confidence_is_the_best_exact_frame_less_disagreement():
    agree = approaching("AB12CDE", 300, 0.0)
    agree[4] = (agree[4][0], obs(agree[4][0], "AB12CDE", 300, 100 + 25 * 4, 96, conf=0.99))
    (r,) = run(Tracker(), [(t, [o]) for t, o in agree])
    assert r.confidence == pytest.approx(0.99)  # every frame agrees: as sure as the best one
    # one stray frame barely matters; half the frames reading another last character matters a lot
    stray = approaching("AB12CDE", 300, 0.0, errors={5: "AB12CDF"})
    (r1,) = run(Tracker(), [(t, [o]) for t, o in stray])
    assert 0.94 < r1.confidence < 0.95
    split = approaching("AB12CDE", 300, 0.0, errors={k: "AB12CDF" for k in range(0, 12, 2)})
    (r2,) = run(Tracker(), [(t, [o]) for t, o in split])
    assert r2.confidence < 0.82
