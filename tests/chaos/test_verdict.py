"""Unit tests of the chaos judge: it must catch a loss, not just count."""

from counterops.chaos.verdict import verdict

LOAD = {"get_errors": 0, "inc_errors": 0, "write_gap_s": 0.2, "read_gap_s": 0.1}


def test_a_clean_run_loses_nothing():
    line, problems = verdict("x", {**LOAD, "acked": [11, 12, 13], "attempted_inc": 4}, 10, 14, 1.0)
    assert problems == []
    assert "lost=0" in line and "acked=3 attempted=4 final=14" in line


def test_a_counter_that_went_back_is_caught_by_reused_values():
    # 12 and 13 were acknowledged, then a failover lost them and the counter
    # counted up from 11 again: 12 is handed out twice.
    load = {**LOAD, "acked": [11, 12, 13, 12], "attempted_inc": 4}
    line, problems = verdict("x", load, 10, 12, 1.0)
    assert "lost=2" in line
    assert problems


def test_acknowledged_values_above_the_final_count_are_lost():
    _, problems = verdict("x", {**LOAD, "acked": [11, 12, 13], "attempted_inc": 3}, 10, 12, 1.0)
    assert any("lost" in p for p in problems)


def test_a_final_count_beyond_the_attempts_is_an_error():
    _, problems = verdict("x", {**LOAD, "acked": [11], "attempted_inc": 1}, 10, 15, 1.0)
    assert any("more than" in p for p in problems)


def test_the_runners_own_probe_increments_count_as_attempts():
    load = {**LOAD, "acked": [11, 12], "attempted_inc": 2}
    _, problems = verdict("x", load, 10, 13, 1.0, probes=1)
    assert problems == []
    _, problems = verdict("x", load, 10, 13, 1.0, probes=0)
    assert problems


def test_the_line_leads_with_what_users_saw_and_names_the_fault_step_apart():
    load = {"acked": [1, 2], "attempted_inc": 3, "get_errors": 4, "inc_errors": 1,
            "write_gap_s": 2.345, "read_gap_s": 0.1}
    line, _ = verdict("x", load, 0, 3, 9.04)
    assert line.startswith("chaos x: write_gap_s=2.3 read_gap_s=0.1 failed=5 lost=0 |"), line
    assert line.endswith("fault_step_s=9.0"), line


def test_the_longest_gap_counts_the_start_and_the_end():
    from counterops.chaos.load import longest_gap
    assert longest_gap([1.0, 1.5, 4.0], 5.0) == 2.5
    assert longest_gap([], 3.0) == 3.0
    assert longest_gap([0.2, 2.9], 3.0) == 2.7


def test_the_load_avoids_the_gateways_a_rotation_file_lists(tmp_path):
    from counterops.chaos.load import Rotation
    rotation_file = tmp_path / "out"
    rotation = Rotation(["http://a", "http://b"], str(rotation_file))
    assert rotation.choices() == ["http://a", "http://b"]
    rotation_file.write_text("http://a\n")
    rotation.read_at = 0
    assert rotation.choices() == ["http://b"]
    rotation_file.write_text("http://a\nhttp://b\n")
    rotation.read_at = 0
    assert rotation.choices() == ["http://a", "http://b"], "with every gateway out, all of them rather than none"
