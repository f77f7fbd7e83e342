"""The chaos timeline's data: answers binned per half second by kind, the
primary's stretches, and the record written beside the picture."""

import json

from counterops.chaos import load, timeline


def test_answers_are_counted_in_their_half_second():
    assert load.binned([0.1, 0.4, 0.6, 2.49, 2.5], end=2.5) == [2, 1, 0, 0, 1, 1]
    assert load.binned([], end=1.0) == [0, 0, 0]


def test_the_primary_is_drawn_as_one_stretch_per_holder():
    seen = [(0.5, "a"), (1.0, "a"), (1.5, None), (2.0, "b"), (2.5, "b")]
    assert timeline.primary_spans(seen, end=4.0) == [(0.5, 1.5, "a"), (1.5, 2.0, None), (2.0, 4.0, "b")]


def test_a_run_is_recorded_with_its_verdict_marks_and_primaries(tmp_path, monkeypatch):
    monkeypatch.setattr(timeline, "RESULTS", tmp_path)
    line = {"bin_s": 0.5, "get_ok": [3, 4], "inc_ok": [1, 0], "get_err": [0, 1], "inc_err": [0, 0]}
    png = timeline.record("primary-kill", "chaos primary-kill: lost=0", {"timeline": line},
                          {"fault": 0.6, "recovered": 0.9, "healed": 0.9}, [(0.5, "198.18.0.11")])
    (record,) = tmp_path.glob("*-primary-kill.json")
    saved = json.loads(record.read_text())
    assert saved["timeline"] == line and saved["marks"]["fault"] == 0.6 and saved["primaries"] == [[0.5, "198.18.0.11"]]
    # The tests' Python has no matplotlib: the record stays JSON; scripts/chaos draws it.
    assert png is None or (png.exists() and png.stat().st_size > 1000)
