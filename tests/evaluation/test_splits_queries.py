"""Leakage rules (splits) and the tag-set query generator."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from talkrec.evaluation.queries import (MUSIC_TEMPLATES, generate_queries, item_tag_sets, load_queries,
                                        relevant_items, save_queries, word_query)
from talkrec.evaluation.splits import (positives_by_user, query_target_halves, split_val_test, train_interactions,
                                       user_folds)


def test_user_folds_cover_every_user_once() -> None:
    users = [str(u) for u in range(103)]
    f = user_folds(users, n_folds=10, random_state=0)
    assert set(f) == set(users)
    sizes = np.bincount(list(f.values()))
    assert len(sizes) == 10 and sizes.max() - sizes.min() <= 1
    assert f == user_folds(list(reversed(users)), n_folds=10, random_state=0)
    assert f != user_folds(users, n_folds=10, random_state=1)


def test_train_interactions_drop_held_out_users() -> None:
    df = pd.DataFrame({"user_id": ["1", "1", "2", "3"], "item_id": ["a", "b", "a", "c"], "weight": [5, 4, 3, 1.0]})
    tr = train_interactions(df, ["1"])
    assert set(tr["user_id"]) == {"2", "3"}


def test_halves_disjoint_and_seeded() -> None:
    pos = {"u1": [str(i) for i in range(10)], "u2": ["a", "b", "c"], "u3": ["x"]}
    h = query_target_halves(pos, random_state=0)
    assert "u3" not in h                     # a single positive cannot be split
    for u, (q, t) in h.items():
        assert not set(q) & set(t)
        assert sorted(q + t) == sorted(pos[u])
        assert q and t
    assert len(h["u1"][0]) == 5
    assert h == query_target_halves(pos, random_state=0)
    assert h["u1"] != query_target_halves(pos, random_state=7)["u1"]


def test_positives_threshold_is_strict() -> None:
    df = pd.DataFrame({"user_id": ["1", "1", "1"], "item_id": ["a", "b", "c"], "weight": [3.0, 3.5, 5.0]})
    assert positives_by_user(df, threshold=3.0) == {"1": ["b", "c"]}


def test_val_test_split_is_stable_per_key() -> None:
    keys = [f"k{i}" for i in range(400)]
    s = split_val_test(keys, val_fraction=0.25, random_state=0)
    share = sum(v == "val" for v in s.values()) / len(keys)
    assert 0.18 < share < 0.32
    s2 = split_val_test(keys[:200], val_fraction=0.25, random_state=0)
    assert all(s[k] == s2[k] for k in s2)     # adding keys does not move existing ones


def _toy_tags() -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(0)
    tags = ["rock", "pop", "jazz", "80s", "female vocalists", "seen live"]
    for i in range(200):
        for t in tags:
            if rng.random() < 0.5:
                rows.append((str(i), "decade" if t == "80s" else "genre", t, float(rng.integers(1, 4))))
    return pd.DataFrame(rows, columns=["item_id", "category", "tag", "weight"])


def test_generate_queries_support_and_seed(tmp_path) -> None:
    tags = _toy_tags()
    qs = generate_queries(tags, n_sets=12, min_support=15, min_weight=2, random_state=0)
    assert len(qs) == 12
    it = item_tag_sets(tags, min_weight=2)
    for q in qs:
        assert 1 <= len(q.tags) <= 3
        assert "seen live" not in q.tags
        assert len(relevant_items(q.tags, it)) == q.n_relevant >= 15
        assert q.split in ("val", "test")
    assert len({tuple(q.tags) for q in qs}) == 12
    again = generate_queries(tags, n_sets=12, min_support=15, min_weight=2, random_state=0)
    assert [q.text for q in again] == [q.text for q in qs]
    p = tmp_path / "toy-v1.jsonl"
    meta = save_queries(qs, p, {"dataset": "toy"})
    back, meta2 = load_queries(p)
    assert [q.tags for q in back] == [q.tags for q in qs] and meta2["sha256"] == meta["sha256"]
    p.write_text(p.read_text().replace("rock", "rokk"))
    with pytest.raises(ValueError):
        load_queries(p)


def test_word_query_puts_decades_last() -> None:
    t = word_query(["rock", "80s"], {"rock": "genre", "80s": "decade"}, MUSIC_TEMPLATES[0])
    assert t == "Find me some rock music from the 80s."
    assert word_query(["a", "b", "c"], {}, "{tags}{decade}") == "A, b and c"


def test_committed_querysets_are_valid() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "evaluation" / "querysets"
    files = sorted(root.glob("*.jsonl"))
    if not files:
        pytest.skip("no committed query sets")
    for f in files:
        qs, meta = load_queries(f)
        assert len(qs) == meta["n_queries"]
        assert all(q.n_relevant >= meta["min_support"] for q in qs)
        assert len({q.qid for q in qs}) == len(qs)


def test_held_out_users_own_tags_leave_the_fold_catalog():
    """A held-out user's tags on the movies they rated were in their targets' descriptions
    (2026-12-03): the fold's catalog counts the user tags without theirs, keeps every other
    tag in its place, and leaves the full catalog as it was."""
    import pandas as pd

    from talkrec.data.catalog import Catalog
    from talkrec.evaluation.splits import without_users_tags

    items = pd.DataFrame({"item_id": ["a", "b"], "name": ["A", "B"], "tags": [["funny"], ["dark"]]})
    tags = pd.DataFrame({"item_id": ["a", "a", "b", "b"], "category": ["genre", "tag", "tag", "keyword"],
                         "tag": ["comedy", "funny", "dark", "noir"], "weight": [1000.0, 2.0, 1.0, 1.0]})
    apps = pd.DataFrame({"user_id": ["1", "2", "2"], "item_id": ["a", "a", "b"], "tag": ["funny", "funny", "dark"]})
    cat = Catalog(items=items, tags=tags)
    fold = without_users_tags(cat, apps, ["2"])
    assert fold.tags.to_dict("records") == [
        {"item_id": "a", "category": "genre", "tag": "comedy", "weight": 1000.0},
        {"item_id": "a", "category": "tag", "tag": "funny", "weight": 1.0},        # user 1's alone
        {"item_id": "b", "category": "keyword", "tag": "noir", "weight": 1.0}]     # user 2's 'dark' is gone
    assert fold.items["tags"].tolist() == [["funny"], []]
    assert cat.tags.equals(tags) and cat.items["tags"].tolist() == [["funny"], ["dark"]]
    same = without_users_tags(cat, apps, [])
    assert same.tags.equals(cat.tags) and same.items["tags"].tolist() == cat.items["tags"].tolist()
