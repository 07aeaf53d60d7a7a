"""On a fixed space, does the torch-free query path give the results of the torch one?

Loads one built space twice: as served now (text queries through the ONNX export in
``text_model/``, the fusion model in numpy) and through the old path (sentence-transformers
on torch, :class:`~talkrec.fusion.ContrastiveFusion` on torch). For ``--n`` queries of the
versioned Last.fm query set (plus the space's example queries) it compares the top 10 of
every search mode, and of ``similar`` / ``recommend`` for as many items; two lists agree when
they are equal or differ only where the two scores at a position are within ``--tol``
(a tie). Prints the share of agreeing lists per mode and the largest query-vector gap.

    PYTHONPATH=src OPENBLAS_NUM_THREADS=1 python benchmarks/query_parity.py --space /work/spaces/lastfm-e1
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def agree(a: list, b: list, tol: float) -> int:
    """2: the same ids in the same order; 1: the same except at positions where both scores
    tie within ``tol``; 0: different."""
    if [x.item_id for x in a] == [y.item_id for y in b]:
        return 2
    ok = len(a) == len(b) and all(x.item_id == y.item_id or abs(x.score - y.score) <= tol for x, y in zip(a, b))
    return int(ok)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", required=True, type=Path)
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--tol", type=float, default=1e-6)
    a = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from talkrec.fusion import ContrastiveFusion
    from talkrec.space import Space
    from talkrec.space.files import read_space

    new = Space.load(a.space)
    f = read_space(a.space)
    cfg = {**f.config, "text": {**f.config["text"], "backend": "torch"}}
    old = Space(a.space, cfg, f.index, ContrastiveFusion.load(a.space / "fusion"), f.inputs, f.interactions)
    queries = list(f.config.get("build_config", {}).get("examples", {}).get("search", []))
    for line in (REPO / "evaluation" / "querysets" / "lastfm-v1.jsonl").read_text().splitlines():
        if len(queries) >= a.n:
            break
        queries.append(json.loads(line)["text"])
    gap = max(float(np.abs(new.text_query_vector(q) - old.text_query_vector(q)).max()) for q in queries)
    raw = max(float(1 - new.text_encoder().encode(q, kind="query") @ old.text_encoder().encode(q, kind="query"))
              for q in queries)
    rows = {}
    for mode in ("hybrid", "multi", "text", "lexical"):
        rows[f"search {mode}"] = [agree(new.search(q, a.k, mode=mode), old.search(q, a.k, mode=mode), a.tol)
                                  for q in queries]
    rng = np.random.default_rng(0)
    items = [str(i) for i in rng.choice(new.item_ids, size=a.n, replace=False)]
    rows["similar"] = [agree(new.similar(i, k=a.k), old.similar(i, k=a.k), a.tol) for i in items]
    rows["recommend --items"] = [agree(new.recommend(items=items[j:j + 3], k=a.k),
                                       old.recommend(items=items[j:j + 3], k=a.k), a.tol)
                                 for j in range(0, len(items), 3)]
    print(f"space {a.space}: {len(queries)} queries, top {a.k}, ties within {a.tol:g}")
    print(f"  text query vectors: largest 1 - cosine(onnx, torch) {raw:.2e}; "
          f"projected query vectors: largest |numpy - torch| {gap:.2e}")
    for name, res in rows.items():
        print(f"  {name:<20} same top-{a.k}: {sum(r > 0 for r in res)}/{len(res)} "
              f"(identical order: {sum(r == 2 for r in res)})")
    if any(0 in res for res in rows.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
