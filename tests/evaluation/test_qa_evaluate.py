"""``talkrec evaluate`` with a user's own config: bad values fail before any data is read
(they used to fail minutes in, after the text embeddings, or crash with a traceback), a
user set too small for the folds or the validation split is refused (tuning used to compare
NaNs and keep the first candidate); the metrics against hand-worked examples; the splits do
not leak a held-out user's targets into the training data of that fold. Fast: no model."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from talkrec.errors import InputError
from talkrec.evaluation.runner import load_config
from talkrec.evaluation.splits import (check_both_splits, check_user_protocol, positives_by_user, query_target_halves,
                                       split_val_test, train_interactions, user_folds)
from talkrec.metrics import (average_precision_at_k, coverage_at_k, dcg_at_k, gini_at_k, gini_index, ndcg_at_k,
                             recall_at_k)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
L2, L3, L4 = 1.0, 1 / math.log2(3), 0.5   # 1/log2(i+1) for i = 1, 2, 3


# ------------------------------------------------------------------------- config values
@pytest.mark.parametrize("over, field", [
    ({"seed": "abc"}, "seed"), ({"seed": -1}, "seed"), ({"k": 0}, "k"), ({"k": 2.5}, "k"),
    ({"n_bootstrap": 0}, "n_bootstrap"), ({"text_models": []}, "text_models"),
    ({"fusion_text_model": "mpnet", "text_models": ["minilm"]}, "fusion_text_model"),
    ({"movies": {"n_folds": 1}}, "movies.n_folds"), ({"movies": {"tune_folds": 11}}, "movies.tune_folds"),
    ({"movies": {"val_fraction": 1.5}}, "movies.val_fraction"), ({"music": {"val_fraction": 0}}, "music.val_fraction"),
    ({"movies": {"max_users": 0}}, "movies.max_users"), ({"movies": {"cf_ratings": "some"}}, "movies.cf_ratings"),
    ({"music": {"retrieval": {"val_fraction": 1.0}}}, "music.retrieval.val_fraction"),
    ({"music": {"cold_start": {"fraction": 1.0}}}, "music.cold_start.fraction"),
    ({"movies": {"enabled": "yes"}}, "movies.enabled"),
])
def test_bad_values_fail_when_the_config_is_read(over: dict, field: str) -> None:
    with pytest.raises(InputError) as e:
        load_config(over)
    assert e.value.field == field, str(e.value)


def test_a_disabled_dataset_is_not_checked_and_the_shipped_configs_pass() -> None:
    load_config({"movies": {"enabled": False, "n_folds": 1}})
    for name in ("eval-full.yaml", "eval-minilm.yaml"):
        for small in (False, True):
            load_config(ROOT / "configs" / name, small=small)


def test_cli_names_the_file_and_setting(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from talkrec.cli import app
    res = CliRunner().invoke(app, ["evaluate", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "missing.yaml" in res.output and "not found" in res.output
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("music: {enabld: false}\n")
    res = CliRunner().invoke(app, ["evaluate", str(cfg), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "music.enabld" in res.output and "enabled" in res.output
    cfg.write_text("seed: abc\n")   # was a ValueError traceback (exit 1) after the Last.fm data was read
    res = CliRunner().invoke(app, ["evaluate", str(cfg), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "mine.yaml" in res.output and "'seed'" in res.output


@pytest.mark.skipif(not (DATA / "movielens-ml-latest-small").exists(), reason="public data not found")
def test_too_few_users_for_the_folds_fail_before_the_embeddings(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from talkrec.cli import app
    cfg = tmp_path / "few.yaml"
    cfg.write_text(f"data_root: {DATA}\ncache_dir: {tmp_path / 'cache'}\nmusic: {{enabled: false}}\n"
                   "movies: {max_users: 5, n_folds: 10}\n")
    res = CliRunner().invoke(app, ["evaluate", str(cfg), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "movies.n_folds" in res.output and "no user to evaluate" in res.output
    assert not (tmp_path / "cache").exists()   # refused before any text was embedded


# ------------------------------------------------------------------------- user protocol
def test_user_protocol_checks() -> None:
    users = [f"u{i}" for i in range(6)]
    folds = user_folds(users, n_folds=3, random_state=0)
    split = {u: ("val" if i % 2 else "test") for i, u in enumerate(users)}
    check_user_protocol(folds, split, users, n_folds=3, tune_folds=3)
    with pytest.raises(InputError, match="fold.*no user to evaluate") as e:
        check_user_protocol(folds, split, users[:2], n_folds=3, tune_folds=1)
    assert e.value.field == "movies.n_folds"
    with pytest.raises(InputError, match="no validation user") as e:
        check_user_protocol(folds, {u: "test" for u in users}, users, n_folds=3, tune_folds=2)
    assert e.value.field == "movies.val_fraction"
    with pytest.raises(InputError, match="no evaluated user is a test user"):
        check_user_protocol(folds, {u: "val" for u in users}, users, n_folds=3, tune_folds=3)
    check_both_splits({"a": "val", "b": "test"}, what="artists", where="music")
    with pytest.raises(InputError, match="0 of them for validation") as e:
        check_both_splits({"a": "test", "b": "test"}, what="artists", where="music")
    assert e.value.field == "music.val_fraction"


# ------------------------------------------------------------------------- no leakage
def _ratings(n_users: int = 40, n_items: int = 30, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(f"u{u}", f"i{i}", float(rng.integers(1, 6))) for u in range(n_users)
            for i in rng.choice(n_items, size=int(rng.integers(1, 12)), replace=False)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "weight"])


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_a_held_out_users_targets_never_reach_the_training_data_of_its_fold(seed: int) -> None:
    inter = _ratings()
    users = sorted(inter["user_id"].unique(), key=str)
    folds = user_folds(users, n_folds=4, random_state=seed)
    assert sorted(folds) == users and set(folds.values()) == {0, 1, 2, 3}
    sizes = np.bincount(list(folds.values()))
    assert sizes.max() - sizes.min() <= 1
    halves = query_target_halves(positives_by_user(inter, threshold=3.0), random_state=seed)
    for f in range(4):
        held = [u for u in users if folds[u] == f and u in halves]   # as MovieData.fold_queries
        train = train_interactions(inter, held)
        pairs = set(zip(train["user_id"], train["item_id"]))
        for u in held:
            query, target = halves[u]
            assert not set(query) & set(target) and query and target
            assert not any((u, i) in pairs for i in target + query)
            assert u not in set(train["user_id"])
        assert len(train) + inter["user_id"].isin(held).sum() == len(inter)


def test_halves_and_splits_are_seeded_and_stable() -> None:
    pos = positives_by_user(_ratings(), threshold=3.0)
    a = query_target_halves(pos, random_state=3)
    assert a == query_target_halves(pos, random_state=3) and a != query_target_halves(pos, random_state=4)
    for u, (q, t) in a.items():
        assert sorted(q + t) == sorted(pos[u]) and len(q) == min(max(round(len(pos[u]) / 2), 1), len(pos[u]) - 1)
    assert all(len(pos[u]) >= 2 for u in a) and all(u in a for u in pos if len(pos[u]) >= 2)
    # a query's side depends on its id and the seed only: adding queries moves none
    s1 = split_val_test([f"q{i}" for i in range(50)], val_fraction=0.3, random_state=0)
    s2 = split_val_test([f"q{i}" for i in range(80)], val_fraction=0.3, random_state=0)
    assert all(s2[k] == v for k, v in s1.items())
    assert 0.15 < sum(v == "val" for v in s2.values()) / 80 < 0.45


# ------------------------------------------------------------------------- metrics by hand
def test_ndcg_by_hand() -> None:
    assert ndcg_at_k({"a", "c"}, ["a", "b", "c"], 3) == pytest.approx((L2 + L4) / (L2 + L3))
    # k larger than the ranking: DCG over the list, IDCG over min(k, |R|)
    assert ndcg_at_k({"a", "z"}, ["a"], 10) == pytest.approx(L2 / (L2 + L3))
    # k smaller than |R|: a perfect top k scores 1
    assert ndcg_at_k({"a", "b", "c"}, ["a", "b"], 2) == pytest.approx(1.0)
    # a repeated id gains once, at its first place; the repeat takes a place
    assert ndcg_at_k({"a", "b"}, ["a", "a", "b"], 3) == pytest.approx((L2 + L4) / (L2 + L3))
    assert dcg_at_k({"a"}, ["a", "a", "a"], 3) == pytest.approx(1.0)
    assert ndcg_at_k(set(), ["a"], 5) == 0.0 and ndcg_at_k({"a"}, [], 5) == 0.0
    # duplicates in the ground truth count once
    assert ndcg_at_k(["a", "a"], ["a"], 5) == pytest.approx(1.0)
    # numpy rankings (what the runner passes) and tied scores: the order given is the order scored
    assert ndcg_at_k({1, 3}, np.array([3, 2, 1]), 3) == pytest.approx((L2 + L4) / (L2 + L3))
    for bad in (0, -1, 2.0, "3"):
        with pytest.raises(ValueError):
            ndcg_at_k({"a"}, ["a"], bad)


def test_recall_and_average_precision_by_hand() -> None:
    assert recall_at_k({"a", "b", "c", "d"}, ["x", "a", "a", "b"], 3) == pytest.approx(1 / 4)
    assert recall_at_k({"a"}, ["b", "a"], 1) == 0.0 and recall_at_k({"a"}, ["b", "a"], 50) == 1.0
    assert recall_at_k(set(), ["a"], 3) == 0.0
    # AP@k = sum of P(i) at the hits / min(|R|, k)
    assert average_precision_at_k({"b", "d", "z"}, ["a", "b", "c", "d"], 4) == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert average_precision_at_k({"a", "b", "c"}, ["a", "b"], 2) == pytest.approx(1.0)
    assert average_precision_at_k({"b"}, ["a", "b"], 10) == pytest.approx(0.5)          # MRR
    assert average_precision_at_k({"a", "b"}, ["a", "a", "b"], 3) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision_at_k(set(), ["a"], 3) == 0.0


def test_gini_and_coverage_by_hand() -> None:
    assert gini_index([0, 0, 0, 4]) == pytest.approx(0.75)
    assert gini_index([2, 2, 2]) == 0.0 and gini_index([]) == 0.0 and gini_index([0, 0]) == 0.0
    # counts c = (2, 1, 0, 0) over items 0..3 (a repeat in one list counts once): sorted (0, 0, 1, 2),
    # G = ((-3)*0 + (-1)*0 + 1*1 + 3*2) / (4 * 3) = 7/12
    assert gini_at_k([[0, 1, 0], [0]], range(4), 3) == pytest.approx(7 / 12)
    assert coverage_at_k([[0, 1, 9], [0]], range(4), 3) == pytest.approx(2 / 4)
    assert coverage_at_k([[0, 1, 2]], range(4), 2) == pytest.approx(2 / 4)
    with pytest.raises(ValueError):
        gini_index([1, -1])


def test_out_is_a_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from talkrec.cli import app
    (tmp_path / "report").write_text("not a folder")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("music: {enabled: false}\nmovies: {enabled: false}\n")
    res = CliRunner().invoke(app, ["evaluate", str(cfg), "--out", str(tmp_path / "report")])
    assert res.exit_code == 2 and "--out" in res.output and "is a file" in res.output   # was a FileExistsError


def test_a_crash_while_writing_leaves_the_previous_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from talkrec.evaluation import report as R

    (tmp_path / "report.json").write_text('{"old": true}')
    real = Path.write_text

    def half_then_crash(self: Path, text: str, *a, **kw) -> int:
        real(self, text[: len(text) // 2], *a, **kw)
        raise OSError("disk full")
    monkeypatch.setattr(Path, "write_text", half_then_crash)
    monkeypatch.setattr(R, "_plots", lambda report, out: [])
    with pytest.raises(OSError):
        R.write_report({"tasks": {}, "details": {}, "config": {}}, tmp_path)
    monkeypatch.setattr(Path, "write_text", real)
    assert (tmp_path / "report.json").read_text() == '{"old": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]   # no temp file left behind


def test_the_paper_004_metrics_by_hand() -> None:
    from talkrec.metrics import (bootstrap_ci, entropy, expected_contrastive_loss, modality_group_entropy,
                                 paired_bootstrap_pvalue, popularity_buckets)
    # ECL: item 0, (u, v): d00 = 0, mean over j != 0 of 1 - cos(u0, vj) = (1 + 1) / 2 -> -1;
    # (v, u): d00 = 0, mean of (1 - cos(e1, e2), 1 - cos(e1, e1)) = 0.5 -> -0.5; ECL(0) = -0.75
    u = np.array([[1.0, 0], [0, 1], [1, 0]])
    v = np.array([[1.0, 0], [0, 1], [0, 1]])
    ecl = expected_contrastive_loss({"u": u, "v": v})
    assert ecl[0] == pytest.approx(-0.75)
    v_missing = v.copy()
    v_missing[2] = np.nan
    assert np.isnan(expected_contrastive_loss({"u": u, "v": v_missing})[2])
    assert entropy([1, 1, 2]) == pytest.approx(-(2 * 0.25 * math.log(0.25) + 0.5 * math.log(0.5)))
    assert entropy([0, 0]) == 0.0
    # equal values may straddle two buckets; ranks by a stable sort
    assert popularity_buckets([5, 1, 3, 3], 2).tolist() == [1, 0, 0, 1]
    score, mat = modality_group_entropy({"q1": ["a", "b"], "q2": ["a", "a"]}, {"q1": 0, "q2": 0, "a": 0, "b": 1}, k=2)
    assert mat == {0: {0: 3, 1: 1}} and score == pytest.approx(entropy([3, 1]))
    assert bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)
    assert all(math.isnan(x) for x in bootstrap_ci([math.nan]))
    assert bootstrap_ci([0.0, 1.0], random_state=1) == bootstrap_ci([0.0, 1.0], random_state=1)
    assert paired_bootstrap_pvalue([1, 1, 1], [0, 0, 0], n_resamples=99) == pytest.approx(1 / 100)
