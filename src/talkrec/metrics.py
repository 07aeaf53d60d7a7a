"""The project's metrics (evaluation, sessions, ALS tuning): pure functions over
(ground truth, ranking, k), ranx style, plus bootstrap intervals and the paper-004 analyses.

Conventions: a *ranking* is a sequence of item ids, best first (only its first ``k``
entries count; an id repeated in it counts once, at its first place); *relevant* is a
collection of item ids, all of relevance 1 (binary). An empty relevant set scores 0 in
every ranking metric (nothing can be found; the caller decides whether such a query
counts). ``k`` must be a positive integer. Nothing here reads files, draws unseeded
randomness, or depends on a model.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Hashable

import numpy as np

__all__ = ["average_precision_at_k", "bootstrap_ci", "coverage_at_k", "dcg_at_k", "entropy", "expected_contrastive_loss",
           "gini_at_k", "gini_index", "modality_group_entropy", "ndcg_at_k", "novelty_at_k", "paired_bootstrap_pvalue",
           "popularity_buckets", "recall_at_k", "relative_to_reference_by_bucket"]


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))


def dcg_at_k(relevant: Collection[Hashable], ranking: Sequence[Hashable], k: int) -> float:
    r"""Discounted cumulative gain with binary relevance.

    .. math:: \mathrm{DCG@k} = \sum_{i=1}^{\min(k, |L|)} \frac{\mathrm{rel}_i}{\log_2(i + 1)},
       \qquad \mathrm{rel}_i = [L_i \in R \text{ and } L_i \notin \{L_1..L_{i-1}\}]

    where :math:`L` is the ranking and :math:`R` the relevant set: a repeated id gains
    once, at its first place (so DCG@k never exceeds IDCG@k).
    """
    _check_k(k)
    gains = np.array(_gains(_relevant_set(relevant), ranking, k))
    return float((gains * _discounts(len(gains))).sum()) if len(gains) else 0.0


def ndcg_at_k(relevant: Collection[Hashable], ranking: Sequence[Hashable], k: int) -> float:
    r"""Normalized DCG with binary relevance (Järvelin & Kekäläinen; as in ranx / trec_eval).

    .. math::
        \mathrm{nDCG@k} = \frac{\mathrm{DCG@k}}{\mathrm{IDCG@k}}, \qquad
        \mathrm{IDCG@k} = \sum_{i=1}^{\min(k, |R|)} \frac{1}{\log_2(i + 1)}

    An empty relevant set gives 0. Duplicate ids in the ranking count once (first place).

    >>> round(ndcg_at_k({"a", "c"}, ["a", "b", "c"], 3), 4)   # (1 + 1/2) / (1 + 1/log2 3)
    0.9197
    """
    _check_k(k)
    rel = _relevant_set(relevant)
    if not rel:
        return 0.0
    idcg = float(_discounts(min(k, len(rel))).sum())
    return dcg_at_k(rel, ranking, k) / idcg


def recall_at_k(relevant: Collection[Hashable], ranking: Sequence[Hashable], k: int) -> float:
    r"""Share of the relevant items found in the top k.

    .. math:: \mathrm{Recall@k} = \frac{|\{L_1..L_k\} \cap R|}{|R|}

    (ranx's definition; paper 002 eq. 2.4.5). With one relevant item this is the hit rate
    HR@k. 0 for an empty relevant set.
    """
    _check_k(k)
    rel = _relevant_set(relevant)
    if not rel:
        return 0.0
    return len(set(ranking[:k]) & rel) / len(rel)


def average_precision_at_k(relevant: Collection[Hashable], ranking: Sequence[Hashable], k: int) -> float:
    r"""Average precision at k, normalised by the number of relevant items that fit in k.

    .. math::
        \mathrm{AP@k} = \frac{1}{\min(|R|, k)} \sum_{i=1}^{\min(k, |L|)} P(i)\, \mathrm{rel}_i, \qquad
        P(i) = \frac{|\{L_1..L_i\} \cap R|}{i}

    with :math:`\mathrm{rel}_i` as in :func:`dcg_at_k` (a repeated id is a hit once, at its first
    place) (paper 002 eq. 2.4.8 divides by :math:`|R|`; :math:`\min(|R|, k)` lets a perfect top k
    score 1 when :math:`|R| > k`, the usual AP@k). With one relevant item this is the
    reciprocal rank, MRR@k. 0 for an empty relevant set.

    >>> average_precision_at_k({"b", "d", "z"}, ["a", "b", "c", "d"], 4)   # (1/2 + 2/4) / 3
    0.3333333333333333
    """
    _check_k(k)
    rel = _relevant_set(relevant)
    if not rel:
        return 0.0
    hits, s = 0, 0.0
    for i, g in enumerate(_gains(rel, ranking, k), start=1):
        if g:
            hits += 1
            s += hits / i
    return s / min(len(rel), k)


def gini_index(counts: Iterable[float]) -> float:
    r"""Gini coefficient of non-negative counts (0 = all equal, -> 1 = all on one).

    With the counts sorted ascending :math:`c_{(1)} \le \dots \le c_{(n)}`:

    .. math:: G = \frac{\sum_{i=1}^{n} (2i - n - 1)\, c_{(i)}}{n \sum_{i=1}^{n} c_{(i)}}

    >>> gini_index([0, 0, 0, 4])
    0.75
    """
    c = np.sort(np.asarray(list(counts), dtype=np.float64))
    n = len(c)
    if (c < 0).any() or np.isnan(c).any():
        raise ValueError("gini_index needs non-negative counts (no NaN)")
    if n == 0 or c.sum() <= 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * c).sum() / (n * c.sum()))


def gini_at_k(rankings: Iterable[Sequence[Hashable]], catalog: Collection[Hashable], k: int) -> float:
    r"""Gini@k (paper 004 section 2.6): how unequally the catalog is exposed in the top k.

    :math:`c_j` = number of rankings whose top k contains item :math:`j`, for every item
    :math:`j` of ``catalog`` (items never retrieved count 0); the result is
    :func:`gini_index` of these counts. Lower means recommendations spread over more items.
    """
    _check_k(k)
    cnt = Counter(x for r in rankings for x in set(r[:k]))
    return gini_index([cnt.get(j, 0) for j in catalog])


def coverage_at_k(rankings: Iterable[Sequence[Hashable]], catalog: Collection[Hashable], k: int) -> float:
    r"""Catalog coverage: share of ``catalog`` retrieved in at least one top k.

    .. math:: \mathrm{Cov@k} = \frac{|\bigcup_q \{L^q_1..L^q_k\} \cap C|}{|C|}
    """
    _check_k(k)
    cat = set(catalog)
    if not cat:
        return 0.0
    seen = {x for r in rankings for x in r[:k]}
    return len(seen & cat) / len(cat)


def novelty_at_k(rankings: Iterable[Sequence[Hashable]], popularity: Mapping[Hashable, float], n_users: int,
                 k: int) -> float:
    r"""Novelty@k: the mean self-information of what is recommended (Zhou et al. 2010; Vargas
    & Castells 2011), in bits; higher means less popular items.

    :math:`c_i` = ``popularity[i]``, the number of users who consumed item :math:`i` (0 for an
    item ``popularity`` lacks), :math:`U` = ``n_users``; add-one smoothing keeps an item no
    one consumed finite (it scores :math:`\log_2 (U+1)`, the most):

    .. math:: \mathrm{Nov@k} = \frac{1}{|Q|} \sum_{q} \frac{1}{|L^q_{1..k}|}
        \sum_{i \in L^q_{1..k}} \log_2 \frac{U + 1}{c_i + 1}

    over the distinct items of each ranking's top k; an empty ranking is left out (0.0 when
    every ranking is empty).
    """
    _check_k(k)
    if not isinstance(n_users, (int, np.integer)) or isinstance(n_users, bool) or n_users < 1:
        raise ValueError(f"n_users must be a positive integer, got {n_users!r}")
    per_query = []
    for r in rankings:
        top = list(dict.fromkeys(r[:k]))
        if not top:
            continue
        c = np.array([float(popularity.get(i, 0.0)) for i in top])
        if (c < 0).any() or np.isnan(c).any() or (c > n_users).any():
            raise ValueError(f"popularity counts must lie in [0, n_users={n_users}], got {c.min()}..{c.max()}")
        per_query.append(float(np.mean(np.log2((n_users + 1) / (c + 1)))))
    return float(np.mean(per_query)) if per_query else 0.0


def entropy(counts: Iterable[float]) -> float:
    r"""Shannon entropy in nats of the distribution proportional to ``counts``.

    .. math:: H = -\sum_g p_g \ln p_g, \qquad p_g = c_g / \sum c

    >>> round(entropy([1, 1]), 4)
    0.6931
    """
    c = np.asarray(list(counts), dtype=np.float64)
    c = c[c > 0]
    if not len(c):
        return 0.0
    p = c / c.sum()
    return float(-(p * np.log(p)).sum())


def modality_group_entropy(rankings: Mapping[Hashable, Sequence[Hashable]], group: Mapping[Hashable, Hashable],
                           k: int = 5) -> tuple[float, dict[Hashable, dict[Hashable, int]]]:
    r"""Modality-group entropy (paper 004 section 2.4, Table 2).

    Items are assigned at random to groups that keep only some modalities. For each
    query group :math:`g`, :math:`n_{gh}` counts the items of group :math:`h` in the top
    ``k`` of the queries of group :math:`g`; the score is the mean row entropy

    .. math:: \bar H = \frac{1}{|G_q|} \sum_{g} H\big(n_{g\cdot}\big)

    in nats (:func:`entropy`; 7 equal groups give at most :math:`\ln 7 \approx 1.95`).
    Higher = retrieval less confined to the query's own modality group.
    Returns the score and the count matrix ``{g: {h: n}}``.
    """
    mat: dict[Hashable, Counter] = {}
    for q, r in rankings.items():
        g = group[q]
        row = mat.setdefault(g, Counter())
        for x in list(r)[:k]:
            if x in group:
                row[group[x]] += 1
    rows = [entropy(c.values()) for c in mat.values() if sum(c.values()) > 0]
    return (float(np.mean(rows)) if rows else 0.0), {g: dict(c) for g, c in mat.items()}


def expected_contrastive_loss(outputs: Mapping[str, np.ndarray]) -> np.ndarray:
    r"""Expected Contrastive Loss per item (paper 004 section 2.6).

    With :math:`d^{uv}_{ij} = 1 - \cos(z^u_i, z^v_j)` the cosine distance between item
    :math:`i` in modality :math:`u` and item :math:`j` in modality :math:`v`:

    .. math::
        \mathrm{ECL}(i, u, v) = d^{uv}_{ii} - \mathbb{E}_{j \ne i}\big[d^{uv}_{ij}\big], \qquad
        \mathrm{ECL}(i) = \mathbb{E}_{(u, v),\, v \ne u}\big[\mathrm{ECL}(i, u, v)\big]

    over ordered modality pairs both present for :math:`i`; the expectation over
    :math:`j` runs over the other items that have modality :math:`v`. Lower (more
    negative) = the item's modality views agree more with each other than with others.
    ``outputs`` maps modality -> (n, d) matrix (NaN rows = missing). Items with fewer than
    two modalities get NaN.
    """
    names = list(outputs)
    if not names:
        raise ValueError("expected_contrastive_loss needs at least one modality's outputs")
    n = next(iter(outputs.values())).shape[0]
    Z, ok = {}, {}
    for m in names:
        X = np.asarray(outputs[m], dtype=np.float64)
        ok[m] = ~np.isnan(X).any(axis=1)
        Xn = np.where(ok[m][:, None], np.nan_to_num(X), 0.0)
        Z[m] = Xn / np.maximum(np.linalg.norm(Xn, axis=1, keepdims=True), 1e-12)
    tot, cnt = np.zeros(n), np.zeros(n)
    for u in names:
        for v in names:
            if u == v:
                continue
            nv = ok[v].sum()
            if nv < 2:
                continue
            sum_v = Z[v][ok[v]].sum(axis=0)
            self_cos = (Z[u] * Z[v]).sum(axis=1)                     # cos(z^u_i, z^v_i)
            sum_cos = Z[u] @ sum_v                                     # sum_j cos(z^u_i, z^v_j), j with v
            # E_{j != i}[1 - cos] over items that have v (exclude i itself when it has v)
            others = nv - ok[v].astype(float)
            mean_other = 1.0 - (sum_cos - np.where(ok[v], self_cos, 0.0)) / others
            ecl = (1.0 - self_cos) - mean_other
            both = ok[u] & ok[v]
            tot[both] += ecl[both]
            cnt[both] += 1
    out = np.full(n, np.nan)
    out[cnt > 0] = tot[cnt > 0] / cnt[cnt > 0]
    return out


def bootstrap_ci(values: Sequence[float] | np.ndarray, *, n_resamples: int = 1000, confidence: float = 0.95,
                 random_state: int | None = 0) -> tuple[float, float, float]:
    r"""Mean and percentile-bootstrap confidence interval over queries (Efron).

    Draw ``n_resamples`` samples of the per-query values with replacement (seeded), take
    each sample's mean :math:`\bar x^{*b}`; the interval is the
    :math:`(\alpha/2, 1-\alpha/2)` percentiles of :math:`\{\bar x^{*b}\}`,
    :math:`\alpha = 1 - \text{confidence}`. Returns ``(mean, low, high)``; NaN values are
    dropped first, and an empty input gives NaNs.
    """
    _check_resamples(n_resamples)
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a number in (0, 1), e.g. 0.95, got {confidence!r}")
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if not len(x):
        return (math.nan, math.nan, math.nan)
    rng = np.random.default_rng(random_state)
    means = np.empty(n_resamples)
    for s in range(0, n_resamples, 100):
        b = min(100, n_resamples - s)
        idx = rng.integers(0, len(x), size=(b, len(x)))
        means[s:s + b] = x[idx].mean(axis=1)
    a = (1.0 - confidence) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return float(x.mean()), float(lo), float(hi)


def paired_bootstrap_pvalue(a: Sequence[float], b: Sequence[float], *, n_resamples: int = 1000,
                            random_state: int | None = 0) -> float:
    r"""One-sided paired bootstrap p-value for "system a is not better than b".

    Over per-query differences :math:`d_q = a_q - b_q`: the share of resampled means
    :math:`\bar d^{*}` that are :math:`\le 0` (with the +1 correction
    :math:`(1 + \#\{\bar d^{*} \le 0\}) / (1 + B)`). ``a`` and ``b`` hold one value per query
    each, in the same order.
    """
    _check_resamples(n_resamples)
    xa, xb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if xa.shape != xb.shape or xa.ndim != 1:
        raise ValueError(f"a and b must hold one value per query each, in the same order; got shapes {xa.shape} "
                         f"and {xb.shape}")
    d = xa - xb
    d = d[~np.isnan(d)]
    if not len(d):
        return math.nan
    rng = np.random.default_rng(random_state)
    le = 0
    for s in range(0, n_resamples, 100):
        nb = min(100, n_resamples - s)
        idx = rng.integers(0, len(d), size=(nb, len(d)))
        le += int((d[idx].mean(axis=1) <= 0).sum())
    return (1 + le) / (1 + n_resamples)


def popularity_buckets(popularity: Sequence[float], n_buckets: int) -> np.ndarray:
    """Quantile bucket (0 = least popular .. n_buckets-1) of each value: bucket =
    floor(rank * n_buckets / n), ranks 0..n-1 by value with ties in input order (a stable
    sort), so every bucket holds n / n_buckets values (+-1) and equal values may straddle two
    buckets (paper 004 Figure 4's equal-size quantiles)."""
    if isinstance(n_buckets, bool) or not isinstance(n_buckets, (int, np.integer)) or n_buckets < 1:
        raise ValueError(f"n_buckets must be a positive integer, got {n_buckets!r}")
    p = np.asarray(popularity, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    ranks = np.empty(len(p), dtype=np.int64)
    ranks[order] = np.arange(len(p))
    return (ranks * n_buckets // max(len(p), 1)).astype(np.int64)


def relative_to_reference_by_bucket(values: Sequence[float], reference: Sequence[float],
                                    buckets: Sequence[int]) -> dict[int, float]:
    r"""Per bucket :math:`b`: :math:`\bar x_b / \bar r_b - 1` (paper 004 Figure 4: relative nDCG
    improvement over the CF model per popularity quantile); NaN where :math:`\bar r_b = 0`."""
    v, r, b = (np.asarray(x, dtype=np.float64) for x in (values, reference, buckets))
    out = {}
    for g in sorted(set(b.astype(int).tolist())):
        m = b == g
        rm = r[m].mean()
        out[int(g)] = float(v[m].mean() / rm - 1.0) if rm > 0 else math.nan
    return out


def _gains(rel: set, ranking: Sequence[Hashable], k: int) -> list[float]:
    """rel_i of :func:`dcg_at_k` for the first ``k`` entries: 1 where an entry is relevant
    and not seen before in the ranking, else 0."""
    seen: set = set()
    out = []
    for x in list(ranking[:k]):
        out.append(1.0 if x in rel and x not in seen else 0.0)
        seen.add(x)
    return out


def _check_resamples(n_resamples: int) -> None:
    if not isinstance(n_resamples, (int, np.integer)) or isinstance(n_resamples, bool) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")


def _check_k(k: int) -> None:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def _relevant_set(relevant: Collection[Hashable]) -> set[Hashable]:
    """``relevant`` as a set of ids; one bare string is refused (it would be its characters)."""
    if isinstance(relevant, (str, bytes)):
        raise ValueError(f"relevant must be a collection of ids, not one string: {{{relevant!r}}}, not {relevant!r}")
    return set(relevant)
