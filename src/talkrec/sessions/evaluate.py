"""Session tasks and ranking metrics (paper 002 sections 2.4.2, 4.2.3 and 4.3.3).

Tasks
-----
``last_item_task`` (T4Rec)
    For every test session, the context is every item but the last and the single
    relevant item is the last one. Nothing is excluded from the ranking (repeats are
    legitimate next items).
``continuation_task`` (RTA)
    Session ``i`` (in the given order) shows its first ``n_i = (i mod max_visible) + 1``
    items, so the sessions fall into ``max_visible`` equal groups with 1..10 visible items
    (paper 002: 10 x 1,000 sessions). The relevant set is the distinct remaining items not
    already visible; the visible items are excluded from the ranking.

Items of a relevant set that are outside the model's vocabulary stay in the relevant set
(they count in the denominators and can never be hit); unknown context items are dropped.

The metrics are the project's (:mod:`talkrec.metrics`: nDCG, MAP and Recall
at k, binary relevance); a table reports the mean over queries and a percentile bootstrap
95% interval over queries (:func:`talkrec.metrics.bootstrap_ci`).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..metrics import average_precision_at_k, bootstrap_ci, ndcg_at_k, recall_at_k
from ..ranking import top_k
from .sessionize import SessionSet

log = logging.getLogger(__name__)

KS = (10, 20)
METRICS = ("ndcg", "map", "recall")


@dataclass
class SessionTask:
    """Queries over a vocabulary: contexts and relevant sets as vocabulary indices (-1: unknown)."""

    name: str
    contexts: list[list[int]]
    relevant: list[set[int]]
    exclude_context: bool
    n_visible: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.contexts)


def _index(items: Sequence[str], pos: dict[str, int]) -> list[int]:
    return [pos.get(i, -1) for i in items]


def last_item_task(sessions: SessionSet, item_ids: Sequence[str]) -> SessionTask:
    """The T4Rec task: predict each session's last item from all the items before it."""
    pos = {str(k): i for i, k in enumerate(item_ids)}
    ctx, rel = [], []
    for s in sessions.items:
        if len(s) < 2:
            continue
        c = [i for i in _index(s[:-1], pos) if i >= 0]
        if not c:
            continue
        ctx.append(c)
        rel.append({pos.get(s[-1], -1)})
    if not ctx:
        raise InputError("no session with at least two known items to evaluate", field="sessions")
    return SessionTask("last_item", ctx, rel, exclude_context=False,
                       n_visible=np.array([len(c) for c in ctx], dtype=np.int64))


def continuation_task(sessions: SessionSet, item_ids: Sequence[str], *, max_visible: int = 10) -> SessionTask:
    """The RTA task: from the first 1..``max_visible`` items, retrieve the rest of the session."""
    pos = {str(k): i for i, k in enumerate(item_ids)}
    ctx, rel, nvis = [], [], []
    for j, s in enumerate(sessions.items):
        n = (j % max_visible) + 1
        if len(s) <= n:
            continue
        c = [i for i in _index(s[:n], pos) if i >= 0]
        seen = set(s[:n])
        rest = [x for x in dict.fromkeys(s[n:]) if x not in seen]
        if not c or not rest:
            continue
        ctx.append(c)
        rel.append({pos.get(x, -1) if x in pos else -(k + 2) for k, x in enumerate(rest)})
        nvis.append(n)
    if not ctx:
        raise InputError("no session long enough for the continuation task", field="sessions")
    return SessionTask("continuation", ctx, rel, exclude_context=True, n_visible=np.array(nvis, dtype=np.int64))


def rank_task(score_fn: Callable[[list[list[int]]], np.ndarray], task: SessionTask, *, k: int = 20,
              batch_size: int = 256) -> np.ndarray:
    """Top-``k`` vocabulary indices per query from ``score_fn(contexts) -> (n, n_items)``, shape
    ``(n_queries, k)``, ``-1`` after the last finite score (:func:`talkrec.ranking.top_k`)."""
    out = []
    for a in range(0, len(task), batch_size):
        ctx = task.contexts[a:a + batch_size]
        S = np.asarray(score_fn(ctx), dtype=np.float32)
        out.append(top_k(S, k, exclude=ctx if task.exclude_context else None))
    return np.concatenate(out, axis=0) if out else np.zeros((0, k), np.int64)


def per_query_metrics(ranked: np.ndarray, task: SessionTask, ks: Sequence[int] = KS) -> dict[str, np.ndarray]:
    """``{"ndcg@10": array over queries, ...}`` for every metric and k."""
    fns = {"ndcg": ndcg_at_k, "map": average_precision_at_k, "recall": recall_at_k}
    rows = [[i for i in r.tolist() if i >= 0] for r in ranked]
    out: dict[str, np.ndarray] = {}
    for m in METRICS:
        for k in ks:
            out[f"{m}@{k}"] = np.array([fns[m](task.relevant[q], rows[q], k) for q in range(len(task))])
    return out


def summarize(per_query: dict[str, np.ndarray], *, n_boot: int = 1000, random_state: int | None = 0) -> dict[str, dict[str, float]]:
    """Mean and bootstrap 95% interval for every metric."""
    out = {}
    for name, v in per_query.items():
        mean, lo, hi = bootstrap_ci(v, n_resamples=n_boot, random_state=random_state)
        out[name] = {"mean": mean, "lo": lo, "hi": hi, "n": int(len(v))}
    return out


def evaluate_scores(score_fn: Callable[[list[list[int]]], np.ndarray], task: SessionTask, *,
                    ks: Sequence[int] = KS) -> dict[str, np.ndarray]:
    """Rank with ``score_fn`` and return per-query metrics."""
    ranked = rank_task(score_fn, task, k=max(ks))
    return per_query_metrics(ranked, task, ks)
