"""One ranking whatever ``k``: reciprocal rank fusion reads each list to a fixed depth, so the
top ``k`` of hybrid search, ``similar`` and ``recommend`` (rrf) never depends on how many are
asked for and pages never overlap; and the page arguments and id lists are checked the same
way everywhere (``InputError`` naming the field)."""
from __future__ import annotations

import numpy as np
import pytest

from talkrec.errors import InputError
from talkrec.limits import check_page
from talkrec.ranking import top_then
from talkrec.space import Space
from tiny_data import copy_space


@pytest.fixture(scope="module")
def shallow(tiny_space_dir):
    """The tiny space with every fused list read to depth 3 (of 60 items): most of a ranking
    of 20 lies past the lists."""
    sp = Space.load(tiny_space_dir)
    sp.config["search"] = {**sp.config.get("search", {}), "mode": "hybrid", "rrf_depth": 3}
    sp.config["similar"] = {**sp.config["similar"], "depth": 3, "lexical_weight": 0.0}
    return sp


def _ids(hits):
    return [h.item_id for h in hits]


def test_top_then_continues_past_the_fused_rows_in_the_fallback_order():
    scores = np.array([0.0, 0.5, 0.0, 0.9, 0.0])
    calls = []

    def then(k):
        calls.append(k)
        return np.array([3, 4, 2, 1, 0])[:k]

    assert top_then(scores, np.array([1, 3]), 2, then).tolist() == [3, 1] and calls == []   # enough: no fallback
    assert top_then(scores, np.array([1, 3]), 4, then).tolist() == [3, 1, 4, 2] and calls == [4]
    assert top_then(scores, np.array([1, 3]), 9, then).tolist() == [3, 1, 4, 2, 0]          # all there is


@pytest.mark.parametrize("call", [
    lambda sp, k, o: sp.search("jazz trumpet", k, offset=o),
    lambda sp, k, o: sp.similar("jazz3", k, offset=o),
])
def test_a_page_never_depends_on_k(shallow, call):
    full = _ids(call(shallow, 42, 0))
    assert len(full) == len(set(full)) == 42
    assert _ids(call(shallow, 2, 0)) == full[:2] and _ids(call(shallow, 10, 0)) == full[:10]
    pages = [i for o in range(0, 42, 7) for i in _ids(call(shallow, 7, o))]
    assert pages == full                                       # disjoint pages, the same order
    scores = [h.score for h in call(shallow, 42, 0)]
    assert scores == sorted(scores, reverse=True) and scores[-1] == 0.0    # past the lists: RRF 0


def test_recommend_rrf_is_one_ranking_whatever_k(tiny_space_dir):
    sp = Space.load(tiny_space_dir)
    sp.config["recommend"] = {"strategy": "rrf", "depth": 3}
    full = _ids(sp.recommend(items=["jazz1", "jazz2"], k=30))
    assert len(full) == len(set(full)) == 30 and not {"jazz1", "jazz2"} & set(full)
    assert _ids(sp.recommend(items=["jazz1", "jazz2"], k=5)) == full[:5]
    assert _ids(sp.recommend(items=["jazz1", "jazz2"], k=10, offset=10)) == full[10:20]


@pytest.mark.parametrize("kw", [dict(k=0), dict(k=-1), dict(k=2.5), dict(k=True), dict(k=5, offset=-1),
                                dict(k=5, offset=2.5), dict(k="3")])
@pytest.mark.parametrize("mode", ["hybrid", "text", "lexical", "multi"])
def test_every_search_mode_checks_k_and_offset(shallow, mode, kw):
    with pytest.raises(InputError) as e:
        shallow.search("jazz", mode=mode, **kw)
    assert e.value.field in ("k", "offset")


def test_similar_recommend_and_playlists_check_k(shallow):
    for call in (lambda: shallow.similar("jazz3", k=2.5), lambda: shallow.recommend(items=["jazz1"], k=0),
                 lambda: shallow.continue_playlist(["jazz1", "jazz2"], k=2.5),
                 lambda: shallow.continue_playlist(["jazz1", "jazz2"], k=-1)):
        with pytest.raises(InputError) as e:
            call()
        assert e.value.field == "k"
    assert check_page(np.int64(3), np.int32(0)) is None                 # numpy integers are counts


def test_a_bare_string_is_not_a_list_of_ids(shallow):
    """``"jazz1"`` would be the ids j, a, z, z, 1: refused, as Space.remove refuses it."""
    for call in (lambda: shallow.recommend(items="jazz1"), lambda: shallow.personalized_search("x", items="jazz1"),
                 lambda: shallow.continue_playlist("jazz1", k=3), lambda: shallow.items_vector("jazz1")):
        with pytest.raises(InputError, match="not one string") as e:
            call()
        assert e.value.field == "items"


def test_find_and_users_refuse_a_limit_below_one(shallow):
    for call in (lambda: shallow.find("a", limit=-1), lambda: shallow.users(-1), lambda: shallow.users(0)):
        with pytest.raises(InputError) as e:
            call()
        assert e.value.field == "limit"
    assert len(shallow.users(2)) == 2


def test_a_user_whose_items_were_all_removed_gets_a_message_about_the_user(tiny_space_dir, tmp_path):
    sp = Space.load(copy_space(tiny_space_dir, tmp_path / "space"))
    user = sp.users(1)[0][0]
    sp.remove(sp.user_history(user))
    for call in (lambda: sp.recommend(user=user), lambda: sp.personalized_search("jazz", user=user)):
        with pytest.raises(InputError, match="no items left") as e:
            call()
        assert e.value.field == "user"
    sp.close()
