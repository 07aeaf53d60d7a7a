"""Warm, in-process latency of one text query: the space's encoder next to its floor (the
model's own forward pass on the already tokenized query), and search on top of it.

For ``--n`` distinct queries (the versioned Last.fm query set; no query repeats, so the
query-vector cache never answers) prints the median and p90 of:

* floor: one forward pass of the model (ONNX Runtime ``session.run`` on token ids, or
  sentence-transformers' ``encode`` when the space has no ONNX export);
* ``TextEncoder.encode(q, kind="query")``: tokenizer + forward + normalization;
* ``Space.search(q, mode="multi")`` and ``Space.search(q)`` (hybrid: + text model space + BM25).

    PYTHONPATH=src OPENBLAS_NUM_THREADS=1 python benchmarks/query_latency.py --space spaces/lastfm
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _stats(fn, queries: list[str]) -> tuple[float, float]:
    ts = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        ts.append(1000 * (time.perf_counter() - t0))
    ts.sort()
    return statistics.median(ts), ts[int(0.9 * (len(ts) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", required=True, type=Path)
    ap.add_argument("--n", type=int, default=100)
    a = ap.parse_args()
    from talkrec.space import Space

    lines = (REPO / "evaluation" / "querysets" / "lastfm-v1.jsonl").read_text().splitlines()
    base = list(dict.fromkeys(json.loads(x)["text"] for x in lines))
    texts = [base[i % len(base)] + ("" if i < len(base) else f" ({i // len(base)})") for i in range(4 * a.n)]
    space = Space.load(a.space)
    enc = space.text_encoder().encoder
    enc.encode("warm up", kind="query")
    backend = enc._get()
    if hasattr(backend, "feeds"):      # ONNX Runtime
        session = backend._get(backend.path.joinpath("model.opt.onnx").name
                               if (backend.path / "model.opt.onnx").is_file() else "model.onnx")
        floor = lambda q: session.run(None, backend.feeds([q]))          # noqa: E731
        floor_name = "floor: ONNX Runtime forward (tokens in)"
    else:                                 # sentence-transformers before this change
        st = backend.st if hasattr(backend, "st") else backend
        floor = lambda q: st.encode([q], convert_to_numpy=True, show_progress_bar=False)   # noqa: E731
        floor_name = "floor: sentence-transformers encode"
    qs = [texts[i * a.n:(i + 1) * a.n] for i in range(4)]
    space.search("warm up")
    rows = [(floor_name, _stats(floor, qs[0])),
            ("TextEncoder.encode(kind='query')", _stats(lambda q: enc.encode(q, kind="query"), qs[1])),
            ("Space.search(mode='multi')", _stats(lambda q: space.search(q, mode="multi"), qs[2])),
            ("Space.search() (hybrid)", _stats(lambda q: space.search(q), qs[3]))]
    runtime = f"{enc.runtime} x{enc.threads}" if hasattr(enc, "runtime") else "torch (before)"
    print(f"space {a.space}, {a.n} distinct queries each, {runtime}, "
          f"load average {[round(x, 2) for x in os.getloadavg()]}")
    for name, (p50, p90) in rows:
        print(f"  {name:<42} p50 {p50:7.2f} ms   p90 {p90:7.2f} ms")


if __name__ == "__main__":
    main()
