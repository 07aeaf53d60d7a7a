"""Sessionization edge cases (gap rule, ties, repeats, one-item sessions, bad input)."""
from __future__ import annotations

import pandas as pd
import pytest

from talkrec.errors import InputError
from talkrec.sessions.sessionize import session_lists, sessionize


def log(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def items(df):
    return session_lists(df).items


def test_gap_exactly_threshold_stays_one_session_and_one_more_second_splits():
    df = log([("u", "a", 0), ("u", "b", 3600), ("u", "c", 7201), ("u", "d", 7300)])
    assert items(sessionize(df, gap_seconds=3600)) == [["a", "b"], ["c", "d"]]


def test_gap_is_configurable():
    df = log([("u", "a", 0), ("u", "b", 600), ("u", "c", 1300)])
    assert items(sessionize(df, gap_seconds=600)) == [["a", "b"]]          # c alone -> dropped
    assert items(sessionize(df, gap_seconds=700)) == [["a", "b", "c"]]


def test_unsorted_input_is_ordered_by_time_and_ties_keep_input_order():
    df = log([("u", "c", 20), ("u", "a", 10), ("u", "x", 15), ("u", "b", 15)])
    assert items(sessionize(df)) == [["a", "x", "b", "c"]]


def test_users_never_share_a_session_even_when_interleaved_in_time():
    df = log([("u1", "a", 0), ("u2", "b", 1), ("u1", "c", 2), ("u2", "d", 3)])
    s = session_lists(sessionize(df))
    assert sorted(map(tuple, s.items)) == [("a", "c"), ("b", "d")]
    assert sorted(s.users.tolist()) == ["u1", "u2"]


def test_single_item_sessions_are_dropped():
    df = log([("u", "a", 0), ("u", "b", 10_000), ("u", "c", 10_100), ("v", "z", 5)])
    assert items(sessionize(df)) == [["b", "c"]]


def test_remove_repeats_keeps_first_occurrence_then_applies_min_length():
    df = log([("u", "a", 0), ("u", "b", 1), ("u", "a", 2), ("u", "c", 3),
              ("v", "x", 0), ("v", "x", 1)])
    assert items(sessionize(df)) == [["a", "b", "a", "c"], ["x", "x"]]
    assert items(sessionize(df, remove_repeats=True)) == [["a", "b", "c"]]    # v's session shrinks to 1


def test_positions_and_ids_are_contiguous():
    df = log([("u", "a", 0), ("u", "b", 1), ("u", "c", 99_999), ("u", "d", 100_000)])
    ev = sessionize(df)
    assert ev["session_id"].tolist() == [0, 0, 1, 1]
    assert ev["position"].tolist() == [0, 1, 0, 1]


def test_empty_log_gives_no_sessions():
    assert sessionize(log([])).empty


def test_integral_float_timestamps_are_accepted():
    df = log([("u", "a", 1.0), ("u", "b", 2.0)])
    assert items(sessionize(df)) == [["a", "b"]]


@pytest.mark.parametrize("bad, row, field", [
    ([("u", "a", 0), ("u", "b", "noon")], 2, "timestamp"),
    ([("u", "a", 0), ("u", "b", 1.5)], 2, "timestamp"),
    ([("u", "a", 0), ("u", "", 1)], 2, "item_id"),
    ([("u", "a", None)], 1, "timestamp"),
])
def test_bad_rows_raise_input_error_naming_row_and_field(bad, row, field):
    with pytest.raises(InputError) as e:
        sessionize(log(bad))
    assert e.value.row == row and e.value.field == field


def test_missing_column_raises():
    with pytest.raises(InputError) as e:
        sessionize(pd.DataFrame({"user_id": ["u"], "item_id": ["a"]}))
    assert e.value.field == "timestamp"


def test_bad_parameters_raise():
    df = log([("u", "a", 0), ("u", "b", 1)])
    with pytest.raises(InputError):
        sessionize(df, gap_seconds=-1)
    with pytest.raises(InputError):
        sessionize(df, min_length=0)
