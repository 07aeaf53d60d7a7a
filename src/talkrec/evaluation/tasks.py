"""The three evaluation tasks (paper 001 section 3, paper 004 sections 2.3-3.4).

* :func:`olga_ground_truth` + :func:`item_to_item` - music, artist-to-artist: a query is
  a Last.fm artist with at least one AllMusic related artist; candidates are all Last.fm
  artists except the query; relevant = its related artists.
* :func:`user_recommendation` - movies: held-out users, query half -> mean embedding ->
  top k excluding the query items; relevant = the other half.
* :func:`text_retrieval` - tag-set queries worded in natural language; relevant = items
  that carry all the tags.

Each function returns per-query arrays (``{system: {metric: array}}``) plus the rankings
needed for distribution metrics; the runner computes confidence intervals.
Systems are given as item-embedding matrices (``{name: (n_items, d)}``, NaN rows not
retrievable) or as callables returning rankings, so the tasks never know how a system
was built.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.normalize import normalize_name
from .baselines import knn
from ..metrics import ndcg_at_k, recall_at_k

log = logging.getLogger(__name__)

RankFn = Callable[[np.ndarray, list[list[int]]], np.ndarray]


@dataclass
class TaskResult:
    """Per-query scores of several systems on one task."""

    task: str
    query_ids: list[str]
    split: np.ndarray                                   # "val" | "test" per query
    scores: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # system -> metric -> (n_q,)
    rankings: dict[str, np.ndarray] = field(default_factory=dict)            # system -> (n_q, k) item indices
    mask: dict[str, np.ndarray] = field(default_factory=dict)               # system -> queries it is scored on
    notes: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, rankings: np.ndarray, relevant: Sequence[set[int]], k: int,
            mask: np.ndarray | None = None, note: str | None = None) -> None:
        nd = np.array([ndcg_at_k(r, [i for i in row if i >= 0], k) for r, row in zip(relevant, rankings)])
        rc = np.array([recall_at_k(r, [i for i in row if i >= 0], k) for r, row in zip(relevant, rankings)])
        m = np.ones(len(nd), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        nd[~m] = np.nan
        rc[~m] = np.nan
        self.scores[name] = {"ndcg": nd, "recall": rc}
        self.rankings[name] = rankings
        self.mask[name] = m
        if note:
            self.notes[name] = note


# --------------------------------------------------------------------------- music
def olga_ground_truth(items: pd.DataFrame, olga_root: str | Path) -> tuple[dict[str, set[str]], dict[str, int]]:
    """AllMusic related artists of Last.fm artists, joined by normalized name.

    Last.fm side: ``items['join_name']`` (collisions already resolved to the most-played
    artist; empty = not joinable). OLGA side: artists whose normalized names collide are
    merged (their links united). Links are undirected; self links are dropped.
    Returns ``({item_id: {related item_id}}, report)``.
    """
    root = Path(olga_root)
    arts = pd.read_csv(root / "olga_partial_artists.csv", dtype=str, keep_default_na=False)
    edges = pd.read_csv(root / "olga_partial_allmusic_edges.csv", dtype=str, keep_default_na=False)
    arts["norm"] = arts["name"].map(normalize_name)
    lf = items[items["join_name"].astype(str) != ""]
    by_name = dict(zip(lf["join_name"].astype(str), lf["item_id"].astype(str)))
    olga_to_item = {o: by_name[n] for o, n in zip(arts["olga_index"], arts["norm"]) if n in by_name}
    rel: dict[str, set[str]] = {}
    for s, d in zip(edges["src_olga_index"], edges["dst_olga_index"]):
        a, b = olga_to_item.get(s), olga_to_item.get(d)
        if a is None or b is None or a == b:
            continue
        rel.setdefault(a, set()).add(b)
        rel.setdefault(b, set()).add(a)
    rep = {"olga_artists": len(arts), "olga_edges": len(edges), "olga_matched_artists": len(set(olga_to_item.values())),
           "query_artists": len(rel), "undirected_links": sum(len(v) for v in rel.values()) // 2}
    return rel, rep


def item_to_item(item_ids: Sequence[str], related: Mapping[str, set[str]], split: Mapping[str, str],
                 embeddings: Mapping[str, np.ndarray], *, k: int = 200,
                 rankers: Mapping[str, RankFn] | None = None,
                 restricted: Mapping[str, np.ndarray] | None = None) -> TaskResult:
    """Artist-to-artist kNN for every query artist (``related`` keys), excluding itself.

    ``restricted[name]`` is a boolean item mask for a system that covers only some items
    (audio): its queries, candidates and relevant sets are limited to those items, and
    queries left with no relevant item are not scored for it.
    """
    idx = {k_: i for i, k_ in enumerate(map(str, item_ids))}
    qids = sorted((q for q in related if q in idx), key=lambda x: int(x) if x.isdigit() else x)
    qi = np.array([idx[q] for q in qids])
    rel = [{idx[r] for r in related[q] if r in idx} for q in qids]
    res = TaskResult("music-item2item", qids, np.array([split[q] for q in qids]))
    excl = [[i] for i in qi]
    for name, E in embeddings.items():
        cand = restricted.get(name) if restricted else None
        R = knn(E[qi], E, k, exclude=excl, candidates=cand)
        if cand is not None:
            rel_s = [{r for r in rs if cand[r]} for rs in rel]
            m = cand[qi] & np.array([len(r) > 0 for r in rel_s])
            res.add(name, R, rel_s, k, mask=m, note=f"on the {int(cand.sum())} items that have it "
                                                  f"({int(m.sum())} queries)")
        else:
            res.add(name, R, rel, k)
    for name, fn in (rankers or {}).items():
        res.add(name, fn(qi, excl), rel, k)
    return res


# --------------------------------------------------------------------------- movies
@dataclass
class UserQueries:
    """Held-out users of one fold: query items and relevant items as item indices."""

    users: list[str]
    query: list[list[int]]
    target: list[set[int]]
    split: list[str]


def user_recommendation(uq: UserQueries, embeddings: Mapping[str, np.ndarray], *, k: int = 200,
                        rankers: Mapping[str, RankFn] | None = None, task: str = "movies-users",
                        dot: Sequence[str] = ()) -> TaskResult:
    """Mean of the query items' (L2-normalized) embeddings (items without a vector skipped)
    -> top ``k`` by cosine, query items excluded; relevant = the target half. Systems named
    in ``dot`` average the raw rows and score by inner product (ALS's own scoring)."""
    res = TaskResult(task, list(uq.users), np.array(uq.split))
    for name, E in embeddings.items():
        Q = np.full((len(uq.users), E.shape[1]), np.nan, dtype=np.float32)
        for j, items in enumerate(uq.query):
            V = E[items]
            V = V[~np.isnan(V).any(axis=1)]
            if len(V):
                Vn = V if name in dot else V / np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-12)
                Q[j] = Vn.mean(axis=0)
        res.add(name, knn(Q, E, k, exclude=uq.query, dot=name in dot), uq.target, k)
    for name, fn in (rankers or {}).items():
        res.add(name, fn(np.arange(len(uq.users)), uq.query), uq.target, k)
    return res


def concat_results(parts: Sequence[TaskResult]) -> TaskResult:
    """Stack the per-fold results of the same systems (every user appears once)."""
    first = parts[0]
    out = TaskResult(first.task, [q for p in parts for q in p.query_ids], np.concatenate([p.split for p in parts]))
    for name in first.scores:
        out.scores[name] = {m: np.concatenate([p.scores[name][m] for p in parts]) for m in first.scores[name]}
        out.rankings[name] = np.concatenate([p.rankings[name] for p in parts])
        out.mask[name] = np.concatenate([p.mask[name] for p in parts])
    out.notes = dict(first.notes)
    return out


# --------------------------------------------------------------------------- retrieval
def text_retrieval(query_ids: Sequence[str], split: Sequence[str], relevant: Sequence[set[int]],
                   rankers: Mapping[str, RankFn], *, k: int = 200, task: str = "retrieval") -> TaskResult:
    """Score ranking functions (``fn(query_positions, exclude) -> (n_q, k)``) on tag queries."""
    res = TaskResult(task, list(query_ids), np.array(split))
    qpos = np.arange(len(query_ids))
    empty: list[list[int]] = [[] for _ in query_ids]
    for name, fn in rankers.items():
        res.add(name, fn(qpos, empty), relevant, k)
    return res
