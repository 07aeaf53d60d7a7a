"""The Last.fm tag-day reader on a tiny synthetic copy of the HetRec files."""
from __future__ import annotations

import pytest

from talkrec.errors import InputError
from talkrec.sessions.data import lastfm_tag_log, lastfm_texts
from talkrec.sessions.sessionize import session_lists, sessionize


@pytest.fixture
def root(tmp_path):
    (tmp_path / "user_taggedartists.dat").write_text(
        "userID\tartistID\ttagID\tday\tmonth\tyear\n"
        "1\t30\t1\t1\t4\t2009\n"
        "1\t10\t2\t1\t4\t2009\n"
        "1\t30\t2\t1\t4\t2009\n"      # repeat of artist 30 on the same day
        "1\t20\t1\t1\t5\t2009\n"      # next month: a new session (alone -> dropped)
        "1\t40\t1\t2\t4\t2009\n"      # the day after: another session
        "1\t50\t1\t2\t4\t2009\n"
        "2\t10\t1\t1\t4\t2009\n"
        "2\t20\t1\t1\t4\t2009\n"
        "2\t99\t1\t31\t2\t2009\n",    # impossible date: dropped with a warning
        encoding="utf-8")
    (tmp_path / "artists.dat").write_text("id\tname\turl\tpictureURL\n10\tA\tu\tp\n20\tB\tu\tp\n30\tC\tu\tp\n"
                                          "40\tD\tu\tp\n50\tE\tu\tp\n", encoding="utf-8")
    (tmp_path / "tags.dat").write_text("tagID\ttagValue\n1\trock\n2\tjazz\n", encoding="latin-1")
    return tmp_path


def test_one_session_per_user_and_day_in_first_appearance_order(root):
    lg = lastfm_tag_log(root)
    s = session_lists(sessionize(lg, remove_repeats=True))
    assert sorted(zip(s.users.tolist(), map(tuple, s.items))) == [
        ("1", ("30", "10")), ("1", ("40", "50")), ("2", ("10", "20"))]


def test_texts_exclude_held_out_events(root):
    lg = lastfm_tag_log(root)
    full = lastfm_texts(root, lg)
    assert "jazz" in full["30"]
    held = lg[(lg.user_id == "1") & (lg.item_id == "30")]
    assert "jazz" not in lastfm_texts(root, lg, exclude_events=held)["30"]


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputError) as e:
        lastfm_tag_log(tmp_path)
    assert "user_taggedartists.dat" in str(e.value)
