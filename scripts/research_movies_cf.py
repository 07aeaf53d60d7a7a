"""Research (issue 12): is there a collaborative signal on MovieLens that beats EASE by 10%?

The product's `Space.recommend` ties EASE on held-out MovieLens users (docs/evaluation.md);
the issue asks for 1.10x. This script asks whether any *linear item-item* signal that the
ratings carry gets there, before any fusion: EASE variants fitted in closed form on the
evaluation's own protocol (`talkrec.evaluation.splits`: 10 user folds, each fold's users
removed from training; the query half of a user's positives in, the other half as targets;
validation / test users by the seeded hash; `talkrec.metrics.ndcg_at_k` at 200), over all
10 folds (153 validation / 455 test users).

Variants (each a score vector per user, z-scored per user when blended):

* ``all``: EASE (Steck 2019) on every rating, binary (the evaluation's EASE baseline);
* ``pos``: EASE on the positives only (rating > 3: what the query holds);
* ``dlae``: DLAE (Steck 2020), dropout-emphasised closed form with dropout p (the protocol
  hides half of a user's positives: p = 0.5 is its own denoising task), no diagonal constraint;
* ``signed``: input the positives, target +1 for a positive and -1 for a rating <= 3 (learn
  to push watched-but-disliked movies down), diagonal constrained to 0;
* ``quality``: EASE all times / plus the movie's smoothed share of positive ratings
  (training users only; the catalog's ``mean_rating`` includes the held-out users: not used);
* ``session``: EASE over rating sessions (a user's ratings split where more than ``gap``
  seconds pass between two), blended with EASE all;
* ``cease``: collective EASE (Jeunen, Van Balen & Goethals 2020, "Closed-form models for
  collaborative filtering with side-information"): each genre, decade and user tag of the
  catalog is one more row of the input, a pseudo-user who rated the movies that carry it,
  weighted ``alpha``; the same closed form reconstructs both;
* ``userknn``: user-based kNN (the query's cosine to every training user's ratings, the ``K``
  nearest kept, weighted ``cos^a``, their ratings summed), alone and blended with EASE;
* ``rp3``: RP3beta (Paudel et al. 2017; three-step random walk item -> user -> item, divided by
  the target's popularity^beta), alone and blended with EASE.

All the fits use the Woodbury form (users << movies), so a fold costs seconds; the session
variants (~6,000 sessions a fold) take minutes. Not the product: the product's EASE is
`talkrec.encoders.ease.EASEEncoder`; what this script finds is in the issue-12 ablation of
docs/evaluation.md.

    python scripts/research_movies_cf.py [--sessions] [--out runs/research-movies-cf.json]
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from talkrec.data.datasets import load_movielens
from talkrec.evaluation.splits import positives_by_user, query_target_halves, split_val_test, user_folds
from talkrec.metrics import ndcg_at_k

K, THRESHOLD = 200, 3.0


class ClosedForm:
    """``score(Q) = Q B`` with ``B = P X^T Y`` (``P = (X^T X + L)^-1``, ``L`` diagonal), minus
    ``P diag(gamma)`` so that ``diag(B) = 0`` when ``zero_diagonal`` (EASE's constraint);
    computed through the users (Woodbury) without forming the item x item matrices."""

    def __init__(self, X: sp.csr_matrix, lam: float, *, p: float = 0.0, Y: sp.csr_matrix | None = None,
                 zero_diagonal: bool = True) -> None:
        Xd = X.toarray()
        self.Y = Xd if Y is None else Y.toarray()
        L = lam + (p / (1 - p)) * (Xd * Xd).sum(0) if p > 0 else np.full(X.shape[1], lam)
        self.Linv = 1.0 / L
        self.XL = Xd * self.Linv
        self.M = np.linalg.inv(np.eye(X.shape[0]) + self.XL @ Xd.T)
        self.A = self.XL.T - self.XL.T @ (self.M @ (self.XL @ Xd.T))            # P X^T (items x users)
        if zero_diagonal:
            p_diag = self.Linv - ((self.XL.T @ self.M) * self.XL.T).sum(1)
            self.gamma = (self.A * self.Y.T).sum(1) / p_diag
        else:
            self.gamma = np.zeros(X.shape[1])

    def score(self, Q: np.ndarray) -> np.ndarray:
        QP = Q * self.Linv - ((Q @ self.XL.T) @ self.M) @ self.XL
        return (Q @ self.A) @ self.Y - QP * self.gamma


def user_knn(X: sp.csr_matrix, Q: np.ndarray, K: int, a: float) -> np.ndarray:
    """``sum_v cos(q, x_v)^a x_v`` over the ``K`` training users ``v`` nearest to each query row."""
    Xd = X.toarray()
    S = (Q / (np.linalg.norm(Q, axis=1, keepdims=True) + 1e-12)) @ (
        Xd / (np.linalg.norm(Xd, axis=1, keepdims=True) + 1e-12)).T
    if K < S.shape[1]:
        S = np.where(S >= -np.partition(-S, K - 1, axis=1)[:, K - 1:K], S, 0.0)
    return (S ** a) @ Xd


def rp3_beta(X: sp.csr_matrix, Q: np.ndarray, beta: float) -> np.ndarray:
    """``Q W`` with ``W_ij = sum_u P(u | i) P(j | u) / pop_j^beta`` (zero diagonal)."""
    Xd = X.toarray()
    pop = Xd.sum(0) + 1e-12
    W = ((Xd / pop).T @ (Xd / (Xd.sum(1, keepdims=True) + 1e-12))) / pop ** beta
    np.fill_diagonal(W, 0.0)
    return Q @ W


def zscore(S: np.ndarray) -> np.ndarray:
    return (S - S.mean(1, keepdims=True)) / (S.std(1, keepdims=True) + 1e-12)


class Protocol:
    """The evaluation's MovieLens user protocol, and a scorer for any ``(train, queries) ->
    scores`` function."""

    def __init__(self, root: Path, seed: int = 0) -> None:
        cat = load_movielens(root)
        inter = cat.interactions.copy()
        inter["user_id"] = inter["user_id"].astype(str)
        inter["item_id"] = inter["item_id"].astype(str)
        self.ids = cat.item_ids.astype(str)
        self.items = cat.items.set_index(cat.items["item_id"].astype(str)).loc[self.ids]
        self.idx = {x: i for i, x in enumerate(self.ids)}
        self.n = len(self.ids)
        inter["j"] = inter["item_id"].map(self.idx)
        self.inter = inter
        self.users = sorted(inter["user_id"].unique(), key=str)
        self.folds = user_folds(self.users, n_folds=10, random_state=seed)
        self.usplit = split_val_test(self.users, val_fraction=0.3, random_state=seed)
        self.halves = query_target_halves(positives_by_user(inter, threshold=THRESHOLD), query_fraction=0.5,
                                          min_positives=2, random_state=seed)

    def matrix(self, tr: pd.DataFrame, kind: str) -> sp.csr_matrix:
        """Users x movies: ``all`` (1 per rating), ``pos`` (1 per positive), ``signed`` (+1 / -1)."""
        w = tr["weight"].to_numpy()
        u = tr["user_id"].astype("category").cat.codes.to_numpy()     # the same rows for every kind
        keep = w > THRESHOLD if kind == "pos" else np.ones(len(w), dtype=bool)
        v = np.where(w > THRESHOLD, 1.0, -1.0) if kind == "signed" else np.ones(len(w))
        return sp.csr_matrix((v[keep], (u[keep], tr["j"].to_numpy()[keep])), shape=(int(u.max()) + 1, self.n))

    def content(self) -> sp.csr_matrix:
        """Features x movies: 1 where a movie carries a genre, decade or user tag (lowercased)."""
        rows, cols, names = [], [], {}
        for j, (g, d, t) in enumerate(zip(self.items["genres"], self.items["decade"], self.items["tags"])):
            for f in {f"g:{x}".lower() for x in g} | {f"d:{x}" for x in d} | {f"t:{x}".lower() for x in t}:
                rows.append(names.setdefault(f, len(names)))
                cols.append(j)
        return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(names), self.n))

    def sessions(self, tr: pd.DataFrame, gap: float) -> sp.csr_matrix:
        tr = tr.sort_values(["user_id", "timestamp"])
        new = (tr["user_id"] != tr["user_id"].shift()) | (tr["timestamp"].diff() > gap)
        sid = new.cumsum().to_numpy() - 1
        return sp.csr_matrix((np.ones(len(tr)), (sid, tr["j"].to_numpy())), shape=(int(sid.max()) + 1, self.n))

    def quality(self, tr: pd.DataFrame, alpha: float) -> np.ndarray:
        """Each movie's share of positive ratings among the training users, shrunk toward the
        global share with ``alpha`` pseudo-ratings."""
        pos = (tr["weight"] > THRESHOLD)
        prior = float(pos.mean())
        npos, nr = pos.groupby(tr["j"]).sum(), tr.groupby("j").size()
        q = np.full(self.n, prior)
        q[nr.index.to_numpy()] = (npos.to_numpy() + alpha * prior) / (nr.to_numpy() + alpha)
        return q

    def evaluate(self, scores: Callable[[int, pd.DataFrame, np.ndarray], np.ndarray], *,
                 drop: frozenset[str] = frozenset(), only: frozenset[str] | None = None) -> dict[str, float]:
        """Mean nDCG@200 of validation and test users over the 10 folds; ``scores(fold,
        train, Q)`` gets the fold's training ratings and the users' query indicator rows.
        ``drop``: movies whose ratings are removed from training (cold); ``only``: the
        targets counted (users without one are left out)."""
        res: dict[str, list[float]] = {"val": [], "test": []}
        for f in range(10):
            us = [u for u in self.users if self.folds[u] == f and u in self.halves
                  and (only is None or any(i in only for i in self.halves[u][1]))]
            tr = self.inter[~self.inter["user_id"].isin(set(us))]
            tr = tr[~tr["item_id"].isin(drop)] if drop else tr
            Q = np.zeros((len(us), self.n))
            for r, u in enumerate(us):
                Q[r, [self.idx[i] for i in self.halves[u][0]]] = 1.0
            S = scores(f, tr, Q)
            for r, u in enumerate(us):
                s = np.where(Q[r] > 0, -np.inf, S[r])
                top = np.argpartition(-s, K)[:K]
                top = top[np.argsort(-s[top], kind="stable")]
                want = {self.idx[i] for i in self.halves[u][1] if only is None or i in only}
                res[self.usplit[u]].append(ndcg_at_k(want, top.tolist(), K))
        return {k: round(float(np.mean(v)), 4) for k, v in res.items()}


def cold_study(pr: Protocol, cease: Callable[..., Callable]) -> None:
    """A seeded 10% of the movies with positives held out of training (as the product's cold
    start, ``talkrec.evaluation.coldstart.draw_cold``), users' targets restricted to them:
    nDCG@200 with their ratings removed (cold) and kept (warm), EASE and CEASE."""
    from talkrec.evaluation.coldstart import draw_cold

    cold = frozenset(draw_cold(pr.inter.loc[pr.inter["weight"] > THRESHOLD, "item_id"].unique(), 0.1, 0))
    ease = lambda f, tr, Q: ClosedForm(pr.matrix(tr, "all"), 400.0).score(Q)  # noqa: E731
    base: dict[str, float] = {}
    for name, fn in [("EASE", ease)] + [(f"CEASE weight {w}, lambda {lam:g}", cease(w, lam))
                                         for w, lam in ((1.0, 400.0), (1.5, 400.0), (3.0, 400.0), (10.0, 400.0))]:
        warm, cold_r = pr.evaluate(fn, only=cold), pr.evaluate(fn, drop=cold, only=cold)
        base = base or warm
        print(f"{name:34s} warm val {warm['val']:.4f} test {warm['test']:.4f} | cold val {cold_r['val']:.4f} "
              f"test {cold_r['test']:.4f} | cold / warm EASE val {cold_r['val'] / base['val']:.3f} "
              f"test {cold_r['test'] / base['test']:.3f}", flush=True)


def neighbour_rows(pr: Protocol, scored: Callable, blend: Callable, ease: tuple) -> list[tuple[str, Callable]]:
    """UserKNN and RP3beta alone (a small grid) and blended with EASE."""
    variants: list[tuple[str, Callable]] = []
    uknn = scored("uknn", lambda tr, Q: user_knn(pr.matrix(tr, "all"), Q, 50, 2.0))
    rp3 = scored("rp3", lambda tr, Q: rp3_beta(pr.matrix(tr, "all"), Q, 0.3))
    variants += [(f"UserKNN every rating, K {k_}, cos^{a_:g}", blend((1.0, scored(
        f"uknn{k_}{a_}", lambda tr, Q, k_=k_, a_=a_: user_knn(pr.matrix(tr, "all"), Q, k_, a_)))))
        for k_, a_ in ((20, 1.0), (20, 2.0), (50, 1.0), (50, 2.0), (100, 2.0))]
    variants += [(f"RP3beta every rating, beta {b:g}", blend((1.0, scored(
        f"rp3{b}", lambda tr, Q, b=b: rp3_beta(pr.matrix(tr, "all"), Q, b))))) for b in (0.0, 0.3, 0.5)]
    variants += [(f"EASE + {w:g} {n}", blend((1.0, ease), (w, fn)))
                 for n, fn in (("UserKNN (K 50, cos^2)", uknn), ("RP3beta (beta 0.3)", rp3)) for w in (0.25, 0.5, 1.0)]
    return variants


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/movielens-ml-latest-small"))
    ap.add_argument("--sessions", action="store_true", help="also the session variants (minutes per variant)")
    ap.add_argument("--cease-only", action="store_true", help="the baseline and the CEASE variants only")
    ap.add_argument("--cold", action="store_true", help="cold movies: EASE and CEASE with 10%% of the movies "
                                                         "held out of training (the targets restricted to them)")
    ap.add_argument("--out", type=Path, default=Path("runs/research-movies-cf.json"))
    a = ap.parse_args(argv)
    pr = Protocol(a.data)
    memo: dict[tuple, np.ndarray] = {}

    def part(f: int, tr: pd.DataFrame, Q: np.ndarray, key: tuple) -> np.ndarray:
        """Scores of one EASE-form fit on fold ``f`` (memoized): ``key = (input, lambda,
        session gap, target)``."""
        if (f, key) not in memo:
            kind, lam, gap, ykind = key
            X = pr.sessions(tr, gap) if kind == "session" else pr.matrix(tr, kind)
            memo[(f, key)] = ClosedForm(X, lam, Y=None if ykind is None else pr.matrix(tr, ykind)).score(Q)
        return memo[(f, key)]

    def scored(name: str, fn: Callable[[pd.DataFrame, np.ndarray], np.ndarray]) -> Callable:
        def run(f: int, tr: pd.DataFrame, Q: np.ndarray) -> np.ndarray:
            if (f, name) not in memo:
                memo[(f, name)] = fn(tr, Q)
            return memo[(f, name)]
        return run

    def dlae(kind: str, lam: float, p: float) -> Callable:
        return lambda f, tr, Q: ClosedForm(pr.matrix(tr, kind), lam, p=p, zero_diagonal=False).score(Q)

    def blend(*terms: tuple[float, tuple | Callable]) -> Callable:
        return lambda f, tr, Q: sum(w * zscore(key(f, tr, Q) if callable(key) else part(f, tr, Q, key))
                                    for w, key in terms)

    def with_quality(mode: str, a_: float, alpha: float) -> Callable:
        def run(f: int, tr: pd.DataFrame, Q: np.ndarray) -> np.ndarray:
            S, q = part(f, tr, Q, ("all", 400.0, 0.0, None)), pr.quality(tr, alpha)
            return zscore(S) + a_ * np.log(q / (1 - q)) if mode == "logit" else np.maximum(S, 0.0) * q ** a_
        return run

    def cease(alpha: float, lam: float = 400.0) -> Callable:
        C = pr.content()
        return lambda f, tr, Q: ClosedForm(sp.vstack([pr.matrix(tr, "all"), alpha * C]).tocsr(), lam).score(Q)

    EASE = ("all", 400.0, 0.0, None)
    variants: list[tuple[str, Callable]] = [
        ("EASE every rating, lambda 400 (the baseline)", blend((1.0, EASE))),
        ("EASE positives only, lambda 400", blend((1.0, ("pos", 400.0, 0.0, None)))),
        ("EASE positives only, lambda 200", blend((1.0, ("pos", 200.0, 0.0, None)))),
        ("DLAE every rating p 0.5, lambda 10", dlae("all", 10.0, 0.5)),
        ("DLAE positives p 0.5, lambda 10", dlae("pos", 10.0, 0.5)),
        ("DLAE every rating p 0.33, lambda 50", dlae("all", 50.0, 0.33)),
        ("signed target (positives in, +1 / -1 out), lambda 400", blend((1.0, ("pos", 400.0, 0.0, "signed")))),
        ("EASE + 0.2 signed", blend((1.0, EASE), (0.2, ("pos", 400.0, 0.0, "signed")))),
        ("EASE + 0.4 signed", blend((1.0, EASE), (0.4, ("pos", 400.0, 0.0, "signed")))),
        ("EASE + 0.5 EASE positives", blend((1.0, EASE), (0.5, ("pos", 400.0, 0.0, None)))),
        ("EASE + 1 EASE positives", blend((1.0, EASE), (1.0, ("pos", 400.0, 0.0, None)))),
        ("EASE + 0.2 signed + 0.5 EASE positives", blend((1.0, EASE), (0.2, ("pos", 400.0, 0.0, "signed")),
                                                         (0.5, ("pos", 400.0, 0.0, None)))),
        ("EASE + 0.3 logit(quality), alpha 5", with_quality("logit", 0.3, 5.0)),
        ("EASE + 1 logit(quality), alpha 5", with_quality("logit", 1.0, 5.0)),
        ("EASE x quality^0.5, alpha 5", with_quality("mul", 0.5, 5.0)),
        ("EASE x quality, alpha 20", with_quality("mul", 1.0, 20.0)),
    ]
    variants += neighbour_rows(pr, scored, blend, EASE)
    cease_rows = [(f"CEASE: genres, decades, tags as pseudo-users, weight {w}, lambda {lam:g}", cease(w, lam))
                  for w, lam in ((0.3, 400.0), (0.6, 400.0), (1.0, 400.0), (1.5, 400.0), (3.0, 400.0),
                                 (1.0, 200.0), (1.0, 800.0))]
    variants += cease_rows
    if a.cease_only:
        variants = variants[:1] + cease_rows
    if a.cold:
        cold_study(pr, cease)
        return
    if a.sessions:
        variants += [(f"EASE + {w} session EASE (gap {g} s, lambda 200)",
                      blend((1.0, EASE), (w, ("session", 200.0, float(g), None))))
                     for g, w in ((86400, 1.0), (3600, 1.0), (3600, 0.5))]
    out = []
    for name, fn in variants:
        t = time.perf_counter()
        r = pr.evaluate(fn)
        out.append({"variant": name, **r, "seconds": round(time.perf_counter() - t, 1)})
        print(f"{name:58s} val {r['val']:.4f}  test {r['test']:.4f}", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
