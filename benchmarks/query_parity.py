"""On a fixed space, does a change of the query path keep the results?

Default: loads one built space twice, as served now (text queries through the ONNX export in
``text_model/``, the fusion model in numpy) and through the old path (sentence-transformers
on torch, :class:`~talkrec.fusion.ContrastiveFusion` on torch). ``--against-src DIR``: the
same space under another checkout's code instead (``DIR`` = its ``src``, run in a
subprocess that writes its lists with ``--dump``), e.g. main's before a speed change.

For ``--n`` queries of the versioned Last.fm query set (plus the space's example queries) it
compares the top 10 of every search mode, and of ``similar`` / ``recommend`` for as many
items; two lists agree when they are equal or differ only where the two scores at a position
are within ``--tol`` (a tie). Prints the share of agreeing lists per mode.

    PYTHONPATH=src OPENBLAS_NUM_THREADS=1 python benchmarks/query_parity.py --space spaces/lastfm
    PYTHONPATH=src python benchmarks/query_parity.py --space SPACE --against-src <another checkout>/src
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def agree(a: list, b: list, tol: float) -> int:
    """2: the same ids in the same order; 1: the same except at positions where both scores
    tie within ``tol``; 0: different."""
    if [x.item_id for x in a] == [y.item_id for y in b]:
        return 2
    ok = len(a) == len(b) and all(x.item_id == y.item_id or abs(x.score - y.score) <= tol for x, y in zip(a, b))
    return int(ok)


def workload(space, n: int) -> tuple[list[str], list[str]]:
    """The queries (the space's examples, then the versioned query set) and ``n`` items."""
    queries = list(space.config.get("build_config", {}).get("examples", {}).get("search", []))
    for line in (REPO / "evaluation" / "querysets" / "lastfm-v1.jsonl").read_text().splitlines():
        if len(queries) >= n:
            break
        queries.append(json.loads(line)["text"])
    rng = np.random.default_rng(0)
    return queries, [str(i) for i in rng.choice(space.item_ids, size=n, replace=False)]


def result_lists(space, queries: list[str], items: list[str], k: int) -> dict[str, list[list]]:
    """Every compared list: search per mode, similar, recommend (3 items at a time)."""
    rows = {f"search {m}": [space.search(q, k, mode=m) for q in queries] for m in ("hybrid", "multi", "text", "lexical")}
    rows["similar"] = [space.similar(i, k=k) for i in items]
    rows["recommend --items"] = [space.recommend(items=items[j:j + 3], k=k) for j in range(0, len(items), 3)]
    return rows


def against_src(a: argparse.Namespace, new) -> dict[str, list[int]]:
    queries, items = workload(new, a.n)
    mine = result_lists(new, queries, items, a.k)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(a.against_src)}
        subprocess.run([sys.executable, __file__, "--space", str(a.space), "--n", str(a.n), "--k", str(a.k),
                        "--dump", f"{tmp}/lists.json"], check=True, env=env)
        theirs = json.loads(Path(f"{tmp}/lists.json").read_text())
    same = sum(json.loads(json.dumps([h.to_dict() for h in x])) == y for name in mine
               for x, y in zip(mine[name], theirs[name]))
    print(f"  lists whose hits are equal in every field (id, name, score, metadata): {same}/"
          f"{sum(map(len, mine.values()))}")
    hit = lambda h: SimpleNamespace(item_id=h["item_id"], score=h["score"])   # noqa: E731
    return {name: [agree(x, [hit(h) for h in y], a.tol) for x, y in zip(mine[name], theirs[name])]
            for name in mine}


def against_torch(a: argparse.Namespace, new) -> dict[str, list[int]]:
    from talkrec.fusion import ContrastiveFusion
    from talkrec.space import Space

    old = Space.load(a.space)
    old.config = {**old.config, "text": {**old.config["text"], "backend": "torch"}}
    old.fusion = ContrastiveFusion.load(a.space / "fusion")
    queries, items = workload(new, a.n)
    gap = max(float(np.abs(new.text_query_vector(q) - old.text_query_vector(q)).max()) for q in queries)
    raw = max(float(1 - new.text_encoder().encode(q, kind="query") @ old.text_encoder().encode(q, kind="query"))
              for q in queries)
    print(f"  text query vectors: largest 1 - cosine(onnx, torch) {raw:.2e}; "
          f"projected query vectors: largest |numpy - torch| {gap:.2e}")
    mine, theirs = result_lists(new, queries, items, a.k), result_lists(old, queries, items, a.k)
    return {name: [agree(x, y, a.tol) for x, y in zip(mine[name], theirs[name])] for name in mine}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", required=True, type=Path)
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--against-src", type=Path, help="compare with this checkout's src/ instead of the torch path")
    ap.add_argument("--dump", type=Path, help="only write this code's lists as JSON (used by --against-src)")
    a = ap.parse_args()
    if not os.environ.get("PYTHONPATH"):
        sys.path.insert(0, str(REPO / "src"))
    from talkrec.space import Space

    new = Space.load(a.space)
    new.warm_up()             # as a server runs it (with the int8 copies where the code makes them)
    if a.dump:
        queries, items = workload(new, a.n)
        lists = result_lists(new, queries, items, a.k)
        a.dump.write_text(json.dumps({k: [[h.to_dict() for h in hs] for hs in v] for k, v in lists.items()}))
        return
    print(f"space {a.space}: {a.n} queries, top {a.k}, ties within {a.tol:g}, against "
          f"{a.against_src or 'the torch path'}")
    rows = against_src(a, new) if a.against_src else against_torch(a, new)
    for name, res in rows.items():
        print(f"  {name:<20} same top-{a.k}: {sum(r > 0 for r in res)}/{len(res)} "
              f"(identical order: {sum(r == 2 for r in res)})")
    if any(0 in res for res in rows.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
