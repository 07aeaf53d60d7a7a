"""Research (issue 12): does a learned reranker over EASE's candidates reach 1.10x EASE on MovieLens?

Every linear blend tried so far (docs/evaluation.md, `scripts/research_movies_cf.py`) lands
within 1% of EASE. A learned second stage is the route left: each user's top-``C`` movies by
EASE are rescored by a model of features EASE does not weigh against each other - its own
score and rank, EASE on positives only, UserKNN and RP3beta, the movie's popularity and its
share of positive ratings among the training users, TMDB's vote count, popularity and the
release year, the user's activity, the genre and decade match with the user's query movies.

The protocol is the evaluation's (`research_movies_cf.Protocol`: 10 user folds, each fold's
users out of every fit; query half of a user's positives in, the other half as targets).
The reranker learns from **validation users only**: their rows in fold ``f`` come from fits
that never saw them. Its validation figure is cross-validated over the folds (trained on the
validation users of the other nine folds); its test figure comes from a model trained on
every validation user. Test users are never seen before they are scored. A second pair of
rows is cross-fitted: fold ``f``'s users are scored by a model trained on the candidate rows
of every user of the other nine folds (validation and test alike, ten times the data; the
same users whose ratings every fit of fold ``f`` already learns from), never on their own.

A third question (``--within-build SHARE``): can a build fit such a model on its own data and
models? Inside each fold's training users a seeded ``SHARE`` of users gives the reranker its
rows, either keeping only their query half in the one fit (their target half leaves it) or
wholly out of a second fit (a build that fits twice); the fold's users are scored with it on
the fit without those halves and on the full fit.
``--drop`` leaves features out (``--drop uknn_z,rp3_z,ease_pos_z``: only what the product's
space has at query time: its EASE, popularity, ratings and catalog columns).

    python scripts/research_movies_rerank.py [--candidates 300] [--drop F,...] [--within-build 0.2]
        [--out runs/research-movies-rerank.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from research_movies_cf import ClosedForm, Protocol, rp3_beta, user_knn, zscore  # noqa: E402

from talkrec.metrics import ndcg_at_k  # noqa: E402

K = 200
FEATURES = ["ease", "ease_z", "ease_rank", "ease_pos_z", "uknn_z", "rp3_z", "log_pop", "quality",
            "log_tmdb_votes", "has_tmdb", "log_tmdb_pop", "year", "year_gap", "genre_cos", "decade_match",
            "log_n_query"]


def item_side(pr: Protocol) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Genre indicator matrix (movies x genres), decade codes and the catalog's numeric columns."""
    genres = sorted({g for gs in pr.items["genres"] for g in gs})
    gi = {g: i for i, g in enumerate(genres)}
    G = np.zeros((pr.n, len(genres)))
    for j, gs in enumerate(pr.items["genres"]):
        G[j, [gi[g] for g in gs]] = 1.0
    year = pd.to_numeric(pr.items["year"], errors="coerce").to_numpy(dtype=float)
    votes = pd.to_numeric(pr.items["tmdb_votes"], errors="coerce").to_numpy(dtype=float)
    tpop = pd.to_numeric(pr.items["tmdb_popularity"], errors="coerce").to_numpy(dtype=float)
    return G, np.nan_to_num(year, nan=np.nanmedian(year)), {"votes": votes, "tpop": tpop}


def queries(pr: Protocol, users: list[str]) -> np.ndarray:
    """Users x movies: 1 on each user's query half."""
    Q = np.zeros((len(users), pr.n))
    for r, u in enumerate(users):
        Q[r, [pr.idx[i] for i in pr.halves[u][0]]] = 1.0
    return Q


def fold_rows(pr: Protocol, f: int, C: int, side: tuple, tr: pd.DataFrame | None = None,
              us: list[str] | None = None) -> tuple[pd.DataFrame, list[tuple[str, str, set[int]]]]:
    """Candidate rows of fold ``f``'s users (or of ``us``): one row per (user, top-``C`` EASE
    movie), every model fitted on ``tr`` (default: every user but fold ``f``'s)."""
    if us is None:
        us = [u for u in pr.users if pr.folds[u] == f and u in pr.halves]
    if tr is None:
        tr = pr.inter[~pr.inter["user_id"].isin(set(us))]
    Q = queries(pr, us)
    X_all, X_pos = pr.matrix(tr, "all"), pr.matrix(tr, "pos")
    S = ClosedForm(X_all, 400.0).score(Q)
    parts = {"ease_z": zscore(S), "ease_pos_z": zscore(ClosedForm(X_pos, 400.0).score(Q)),
             "uknn_z": zscore(user_knn(X_all, Q, 50, 2.0)), "rp3_z": zscore(rp3_beta(X_all, Q, 0.3))}
    G, year, num = side
    pop = np.asarray(X_all.sum(0)).ravel()
    quality = pr.quality(tr, 5.0)
    rows, meta = [], []
    for r, u in enumerate(us):
        s = np.where(Q[r] > 0, -np.inf, S[r])
        cand = np.argpartition(-s, C)[:C]
        cand = cand[np.argsort(-s[cand], kind="stable")]
        q_idx = np.flatnonzero(Q[r])
        gprof = G[q_idx].sum(0)
        gcos = (G[cand] @ gprof) / (np.linalg.norm(G[cand], axis=1) * np.linalg.norm(gprof) + 1e-12)
        qyear = year[q_idx].mean()
        dec_q = np.bincount(np.clip((year[q_idx] // 10).astype(int) - 190, 0, 19), minlength=20) / len(q_idx)
        dec = np.clip((year[cand] // 10).astype(int) - 190, 0, 19)
        want = {pr.idx[i] for i in pr.halves[u][1]}
        d = {"user": np.full(len(cand), r), "item": cand, "label": np.isin(cand, list(want)).astype(int),
             "ease": S[r, cand], "ease_rank": np.log1p(np.arange(len(cand))),
             "log_pop": np.log1p(pop[cand]), "quality": quality[cand],
             "log_tmdb_votes": np.log1p(np.nan_to_num(num["votes"][cand])), "has_tmdb": np.isfinite(num["votes"][cand]).astype(float),
             "log_tmdb_pop": np.log1p(np.nan_to_num(num["tpop"][cand])), "year": year[cand],
             "year_gap": np.abs(year[cand] - qyear), "genre_cos": gcos, "decade_match": dec_q[dec],
             "log_n_query": np.full(len(cand), np.log(len(q_idx)))}
        d.update({k: v[r, cand] for k, v in parts.items()})
        rows.append(pd.DataFrame(d))
        meta.append((u, pr.usplit[u], want))
    df = pd.concat(rows, ignore_index=True)
    df["fold"] = f
    return df, meta


def ndcg_of(df: pd.DataFrame, meta: list, score: np.ndarray) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"val": [], "test": []}
    df = df.assign(s=score)
    for (f, r), g in df.groupby(["fold", "user"], sort=False):
        u, split, want = meta[(f, r)]
        top = g["item"].to_numpy()[np.argsort(-g["s"].to_numpy(), kind="stable")][:K]
        out[split].append(ndcg_at_k(want, top.tolist(), K))
    return out


def models() -> dict[str, object]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    out: dict[str, object] = {"logistic": make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))}
    for lr, leaves, it in ((0.05, 15, 200), (0.05, 7, 300), (0.03, 31, 300)):
        out[f"gbdt lr {lr} leaves {leaves} iters {it}"] = HistGradientBoostingClassifier(
            learning_rate=lr, max_leaf_nodes=leaves, max_iter=it, min_samples_leaf=50, l2_regularization=1.0,
            random_state=0)
    return out


def within_build(pr: Protocol, side: tuple, C: int, share: float, features: list[str]) -> list[dict[str, object]]:
    """``--within-build``: per fold, a seeded ``share`` of the training users gives the reranker
    its rows, either with their target halves out of the fit (``halves``: one fit serves both
    the reranker's rows and the fold's users) or wholly out of it (``users``: the rows from a
    fit without them, the fold's users scored by the full fit, as a build that fits twice)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    rng = np.random.default_rng(0)
    scores: dict[str, dict[str, list[float]]] = {}

    def add(name: str, df: pd.DataFrame, meta: list, s: np.ndarray) -> None:
        got = ndcg_of(df.assign(fold=0), {(0, r): m for r, m in enumerate(meta)}, s)
        for k, v in got.items():
            scores.setdefault(name, {"val": [], "test": []})[k].extend(v)

    for f in range(10):
        us = [u for u in pr.users if pr.folds[u] == f and u in pr.halves]
        tr = pr.inter[~pr.inter["user_id"].isin(set(us))]
        pool = [u for u in pr.users if pr.folds[u] != f and u in pr.halves]
        R = sorted(rng.choice(pool, size=int(round(share * len(pool))), replace=False).tolist())
        drop = {(u, i) for u in R for i in pr.halves[u][1]}
        tr_halves = tr[[k not in drop for k in zip(tr["user_id"], tr["item_id"])]]
        tr_users = tr[~tr["user_id"].isin(set(R))]
        full, mf = fold_rows(pr, f, C, side, tr=tr, us=us)
        add("EASE, every training user", full, mf, full["ease"].to_numpy())
        for mode, fit in (("halves", tr_halves), ("users", tr_users)):
            train, _ = fold_rows(pr, f, C, side, tr=fit, us=R)
            model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
            model.fit(train[features].to_numpy(), train["label"].to_numpy())
            if mode == "halves":
                own, mo = fold_rows(pr, f, C, side, tr=fit, us=us)
                add("EASE without the share's target halves", own, mo, own["ease"].to_numpy())
                add("reranker, the share's target halves out of the one fit", own, mo,
                    model.predict_proba(own[features].to_numpy())[:, 1])
            add(f"reranker, the share's {'target halves' if mode == 'halves' else 'users'} out, on the full fit",
                full, mf, model.predict_proba(full[features].to_numpy())[:, 1])
        print(f"fold {f}: {len(R)} users give the reranker its rows", flush=True)
    res = []
    for name, v in scores.items():
        r = {k: round(float(np.mean(x)), 4) for k, x in v.items()}
        res.append({"variant": f"within-build {share}: {name}", **r})
        print(f"{name:64s} val {r['val']:.4f}  test {r['test']:.4f}", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/movielens-ml-latest-small"))
    ap.add_argument("--candidates", type=int, default=300)
    ap.add_argument("--drop", default="", help="features left out, comma-separated")
    ap.add_argument("--within-build", type=float, default=0.0, metavar="SHARE",
                    help="the reranker from a share of each fold's training users (see the docstring)")
    ap.add_argument("--out", type=Path, default=Path("runs/research-movies-rerank.json"))
    a = ap.parse_args()
    t0 = time.perf_counter()
    dropped = {x for x in a.drop.split(",") if x}
    if dropped - set(FEATURES):
        ap.error(f"--drop: unknown features {sorted(dropped - set(FEATURES))}; the features are {FEATURES}")
    features = [x for x in FEATURES if x not in dropped]
    pr = Protocol(a.data)
    side = item_side(pr)
    if a.within_build > 0:
        res = within_build(pr, side, a.candidates, a.within_build, features)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=2))
        print(f"{time.perf_counter() - t0:.0f} s")
        return
    frames, meta = [], {}
    for f in range(10):
        df, m = fold_rows(pr, f, a.candidates, side)
        frames.append(df)
        meta.update({(f, r): x for r, x in enumerate(m)})
    df = pd.concat(frames, ignore_index=True)
    split = np.array([meta[(f, r)][1] for f, r in zip(df["fold"], df["user"])])
    print(f"{len(df)} candidate rows, {df['label'].mean():.4f} positive, {time.perf_counter() - t0:.0f} s", flush=True)
    res = []

    def report(name: str, score: np.ndarray) -> None:
        r = {k: round(float(np.mean(v)), 4) for k, v in ndcg_of(df, meta, score).items()}
        res.append({"variant": name, **r})
        print(f"{name:48s} val {r['val']:.4f}  test {r['test']:.4f}", flush=True)

    report("EASE (the candidates' order)", df["ease"].to_numpy())
    report("z(EASE) + z(EASE pos) + 0.25 z(UserKNN)", (df["ease_z"] + df["ease_pos_z"] + 0.25 * df["uknn_z"]).to_numpy())
    X, y = df[features].to_numpy(), df["label"].to_numpy()
    val = split == "val"
    for name, model in models().items():
        score = np.zeros(len(df))
        for f in range(10):                           # validation: trained on the other folds' validation users
            tr_rows, te_rows = val & (df["fold"] != f).to_numpy(), val & (df["fold"] == f).to_numpy()
            score[te_rows] = model.fit(X[tr_rows], y[tr_rows]).predict_proba(X[te_rows])[:, 1]
        score[~val] = model.fit(X[val], y[val]).predict_proba(X[~val])[:, 1]   # test: every validation user
        report(name, score)
    for name, model in list(models().items())[:2]:   # cross-fitted: fold f scored by a model of the other folds' users
        score = np.zeros(len(df))
        for f in range(10):
            tr_rows, te_rows = (df["fold"] != f).to_numpy(), (df["fold"] == f).to_numpy()
            score[te_rows] = model.fit(X[tr_rows], y[tr_rows]).predict_proba(X[te_rows])[:, 1]
        report(f"{name}, cross-fitted on every other fold's user", score)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2))
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
