"""Issue 13's serving targets in one run, every figure next to its floor measured in the same run.

* **In-process** (``Space``): search in every mode at k=10 and k=200 with distinct, uncached
  queries; the same with the query vector cached (the cost above the encoder); ``similar``
  and ``recommend``. Floors: the text encoder on one query (``TextEncoder.encode``, uncached;
  and ONNX Runtime's forward pass alone on token ids), numpy matrix-vector products over the
  fused matrix and the text model's matrix. All rows are timed round-robin (query i of every
  row, then query i+1...), so that the machine's load falls on all of them alike.
* **Service** (``talkrec serve`` in a subprocess, one client): the same searches, ``similar``
  and ``recommend`` over HTTP next to ``GET /api/health`` (HTTP's own floor); then
  ``--clients`` concurrent clients searching for ``--seconds``, from Python (httpx) and from
  ``wrk`` (Debian's ``wrk``, a load generator in C: the Python client costs the 2 shared
  cores ~1 ms of CPU per request, wrk 0.06), next to the encoder's own throughput (its
  best over 1 and 2 ONNX Runtime threads per pass, one query or a batch per pass, one pass
  or two at once: the floor); the server's peak RSS.
* **CLI cold** (``cli_cold.py``): fresh ``talkrec`` processes, next to the import floors.
* ``--ann-n N``: the 1M-item section (``service_ann.py``; give ``--graph-cache``).

Targets: search p99 <= the encoder's single-text p99 + 3 ms; similar / recommend p99 <= 2
ms; service search throughput at ``--clients`` clients within 1.5x of the encoder's own; CLI
<= 1.5 s. The load average is recorded with every section (the machine is shared).

    PYTHONPATH=src OPENBLAS_NUM_THREADS=1 python benchmarks/speed.py --space SPACE --out runs/bench/speed.json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import cli_cold  # noqa: E402
import service_load  # noqa: E402

MODES = ("hybrid", "multi", "text", "lexical")
Row = tuple[str, Callable[[int], Any], Callable[[Any], Any]]      # name, prepare(i) (untimed), run(prepared)


def load() -> float:
    return round(os.getloadavg()[0], 2)


def stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2),
            "n": len(ms)}


def texts() -> list[str]:
    lines = (REPO / "evaluation" / "querysets" / "lastfm-v1.jsonl").read_text().splitlines()
    return list(dict.fromkeys(json.loads(x)["text"] for x in lines))


def round_robin(rows: list[Row], n: int) -> dict[str, dict[str, float]]:
    """Time every row's ``run`` on its own prepared input ``i``, for ``i`` in 0..n-1, row by row
    within each ``i``."""
    ms: dict[str, list[float]] = {name: [] for name, _, _ in rows}
    for i in range(n):
        for name, prep, run in rows:
            x = prep(i)
            t = time.perf_counter()
            run(x)
            ms[name].append(1000 * (time.perf_counter() - t))
    return {name: stats(v) for name, v in ms.items()}


def query(base: list[str], tag: str, i: int) -> str:
    """A query text no other row or round uses (the query cache never answers)."""
    return f"{base[i % len(base)]} #{tag}{i}"


# --------------------------------------------------------------------------- in-process
def onnx_forward(enc: Any) -> Callable[[str], Any] | None:
    """The forward pass of the graph the encoder runs queries through (the int8 one with
    ``text.int8_queries``), token ids in: the encoder's floor without tokenizing or pooling."""
    backend = enc._get()
    if not hasattr(backend, "feeds"):
        return None
    session = backend._get(backend.graph("query"))
    return lambda q: session.run(None, backend.feeds([q]))


def in_process(space: Any, n: int) -> dict[str, Any]:
    """The rows on ``space`` set up as ``talkrec serve`` sets up its own: ``warm_up`` (text
    model, BM25, hit fields, int8 copies), then ``gc.freeze`` of what is loaded."""
    import gc

    base = texts()
    space.warm_up()
    gc.collect()
    gc.freeze()
    qenc = space.text_encoder()
    enc = qenc.encoder
    enc.encode("warm up", kind="query")
    snap = space.index
    V = snap.gen.vectors
    T, _ = snap.gen.text(space.config["input_files"]["text"])
    items = [str(x) for x in np.random.default_rng(0).choice(space.item_ids, size=n + 3, replace=False)]
    for m in MODES:
        space.search("warm up", 200, mode=m)
    space.similar(items[0])
    rows: list[Row] = [("floor: TextEncoder.encode (one query, uncached)",
                        lambda i: query(base, "e", i), lambda q: enc.encode(q, kind="query"))]
    fwd = onnx_forward(enc)
    if fwd is not None:
        rows.append(("floor: ONNX Runtime forward (token ids in)", lambda i: query(base, "f", i), fwd))
    rows += [(f"floor: numpy matvec, fused {V.shape[0]} x {V.shape[1]}",
              lambda i: space.text_query_vector(base[i % len(base)]), lambda q: V @ q),
             (f"floor: numpy matvec, text model {T.shape[0]} x {T.shape[1]}",
              lambda i: qenc.encode(base[i % len(base)], kind="query"), lambda q: T @ q)]
    for m in MODES:
        for k in (10, 200):
            rows.append((f"search {m} k={k}", lambda i, t=f"{m}{k}": query(base, t, i),
                         lambda q, m=m, k=k: space.search(q, k, mode=m)))
    for m in MODES:
        for k in (10, 200):
            def cached(i: int) -> str:
                q = base[i % len(base)]
                qenc.encode(q, kind="query")
                return q
            rows.append((f"search {m} k={k}, query vector cached", cached, lambda q, m=m, k=k: space.search(q, k, mode=m)))
    for k in (10, 200):
        rows.append((f"similar k={k}", lambda i: items[i], lambda iid, k=k: space.similar(iid, k=k)))
        rows.append((f"recommend 3 items k={k}", lambda i: items[i:i + 3], lambda its, k=k: space.recommend(items=its, k=k)))
    load0 = load()
    res = round_robin(rows, n)
    return {"load_average": [load0, load()], "encoder_threads": enc.threads, "rows": res}


# --------------------------------------------------------------------------- service
def http_rows(client: Any, base: list[str], items: list[str]) -> list[Row]:
    def get(path: str, **params: Any) -> Any:
        r = client.get(path, params=params)
        r.raise_for_status()
        return r

    rows: list[Row] = [("HTTP floor: GET /api/health", lambda i: None, lambda _: get("/api/health"))]
    for m in MODES:
        for k in (10, 200):
            rows.append((f"HTTP search {m} k={k}", lambda i, t=f"h{m}{k}": query(base, t, i),
                         lambda q, m=m, k=k: get("/api/search", q=q, mode=m, k=k)))
    for k in (10, 200):
        rows.append((f"HTTP similar k={k}", lambda i: items[i], lambda iid, k=k: get(f"/api/items/{iid}/similar", k=k)))
        rows.append((f"HTTP recommend 3 items k={k}", lambda i: items[i:i + 3],
                     lambda its, k=k: client.post("/api/recommend", json={"items": its, "k": k}).raise_for_status()))
    return rows


async def concurrent_search(url: str, base: list[str], clients: int, seconds: float, mode: str) -> dict[str, Any]:
    import httpx

    lat: list[float] = []
    counter = iter(range(10**9))
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:
        async def worker() -> None:
            while time.perf_counter() < stop:
                q = query(base, f"c{mode}", next(counter))
                t = time.perf_counter()
                (await c.get("/api/search", params={"q": q, "mode": mode})).raise_for_status()
                lat.append(1000 * (time.perf_counter() - t))
        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(clients)])
        wall = time.perf_counter() - t0
    return {"mode": mode, "clients": clients, "requests": len(lat), "throughput_rps": round(len(lat) / wall, 1),
            **stats(lat)}


WRK_LUA = """
local paths, i = {%s}, 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i - 1) %% #paths + 1])
end
done = function(summary, latency, requests)
  io.write(string.format('WRK {"requests": %%d, "errors": %%d, "seconds": %%.3f, "p50_ms": %%.2f, "p99_ms": %%.2f}\\n',
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout, summary.duration / 1e6,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
"""


def wrk_search(url: str, base: list[str], clients: int, seconds: float, mode: str) -> dict[str, Any] | None:
    """The same load from ``wrk`` (one thread, ``clients`` connections, each request a query no
    other has used): a load generator in C costs the 2 shared cores ~1/20 of what the Python
    client does, so the server gets the machine as a remote client would leave it.
    ``client_cpu_ms_per_request``: wrk's own CPU. None without ``wrk`` on PATH."""
    import resource
    import shutil
    import subprocess
    import tempfile
    from urllib.parse import urlencode

    if shutil.which("wrk") is None:
        print("wrk is not on PATH (apt-get install wrk): no wrk rows", file=sys.stderr)
        return None
    n = min(int(seconds * 2000), 50_000)          # more distinct queries than the run can send (a Lua
                                                  # table literal holds at most 65,536 constants)
    paths = ",".join(json.dumps("/api/search?" + urlencode({"q": query(base, f"w{mode}", i), "mode": mode}))
                     for i in range(n))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_LUA % paths)
    try:
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        run = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "60s",
                              "-s", f.name, url], capture_output=True, text=True)
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        os.unlink(f.name)
    out = run.stdout
    if run.returncode or "WRK " not in out:
        raise RuntimeError(f"wrk exited {run.returncode}:\n{out}{run.stderr}")
    r = json.loads(next(x for x in out.splitlines() if x.startswith("WRK "))[4:])
    if r["errors"]:
        raise RuntimeError(f"wrk: {r['errors']} failed requests:\n{out}")
    cpu = (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)
    return {"mode": mode, "clients": clients, "client": "wrk", "requests": r["requests"],
            "throughput_rps": round(r["requests"] / r["seconds"], 1), "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"],
            "n": r["requests"], "client_cpu_ms_per_request": round(1000 * cpu / max(r["requests"], 1), 3)}


def encoder_throughput(enc: Any, base: list[str], seconds: float, batch: int, lanes: int = 1) -> dict[str, Any]:
    """Queries/s of the text encoder alone, back to back, ``batch`` distinct queries per call
    from each of ``lanes`` threads at once (as a served space's ``QueryEncoder`` runs its
    micro-batches), and its CPU time per query (what a busy machine changes least)."""
    import threading

    done = [0] * lanes
    t0, c0 = time.perf_counter(), time.process_time()

    def lane(j: int) -> None:
        i = j
        while time.perf_counter() - t0 < seconds:
            qs = [query(base, f"t{batch}", i * batch + q) for q in range(batch)]
            enc.encode(qs if batch > 1 else qs[0], kind="query")
            done[j], i = done[j] + batch, i + lanes
    threads = [threading.Thread(target=lane, args=(j,)) for j in range(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    n = sum(done)
    return {"batch": batch, "lanes": lanes, "queries_per_s": round(n / (time.perf_counter() - t0), 1),
            "cpu_ms_per_query": round(1000 * (time.process_time() - c0) / n, 2)}


def service(space_dir: Path, space: Any, n: int, clients: int, seconds: float) -> dict[str, Any]:
    import httpx

    base = texts()
    items = [str(x) for x in np.random.default_rng(1).choice(space.item_ids, size=n + 3, replace=False)]
    port = service_load.free_port()
    url = f"http://127.0.0.1:{port}"
    t = time.perf_counter()
    proc = service_load.start_server(str(space_dir), port)
    try:
        service_load.wait_ready(url, proc)
        out: dict[str, Any] = {"ready_s": round(time.perf_counter() - t, 2)}
        with httpx.Client(base_url=url, timeout=60) as client:
            for m in MODES:
                client.get("/api/search", params={"q": "warm up", "mode": m, "k": 200}).raise_for_status()
            load0 = load()
            out["sequential"] = round_robin(http_rows(client, base, items), n)
            out["load_average_sequential"] = [load0, load()]
        from talkrec.encoders.text import TextEncoder

        load0 = load()
        # the floor is the model's best on this machine, whatever the served encoder's threads:
        # 1 and 2 ONNX Runtime threads per pass, one pass or two at once, 1 to ``clients`` per pass
        out["encoder_throughput"] = []
        for threads in (1, 2):
            enc = TextEncoder.for_space({**space.config["text"], "n_threads": threads}, space_dir)
            enc.encode("warm up", kind="query")                    # the session loaded outside the timing
            out["encoder_throughput"] += [{"threads": threads, **encoder_throughput(enc, base, seconds / 2, b, lanes)}
                                          for b, lanes in ((1, 1), (1, 2), (clients // 2, 2), (clients, 2))]
        out["concurrent"] = []
        for m in ("hybrid", "multi"):
            for gen in ("httpx", "wrk"):
                c0, p0 = service_load.cpu_s(proc.pid), time.process_time()
                if gen == "wrk":
                    row = wrk_search(url, base, clients, seconds, m)
                    if row is None:
                        continue
                else:
                    row = {**asyncio.run(concurrent_search(url, base, clients, seconds, m)), "client": "httpx"}
                    row["client_cpu_ms_per_request"] = round(1000 * (time.process_time() - p0) / max(row["requests"], 1), 3)
                row["server_cpu_ms_per_request"] = round(
                    1000 * (service_load.cpu_s(proc.pid) - c0) / max(row["requests"], 1), 2)
                out["concurrent"].append(row)
        out["load_average_concurrent"] = [load0, load()]
        out["serve_peak_rss_mb"] = round(cli_cold._status_kb(proc.pid, "VmHWM") / 1024, 1)
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# --------------------------------------------------------------------------- report
def verdicts(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its figure, floor and whether it is met."""
    out = []
    ip = res.get("in_process", {}).get("rows", {})
    enc = ip.get("floor: TextEncoder.encode (one query, uncached)")
    if enc:
        for m in MODES:
            for k in (10, 200):
                for where, rows in (("API", ip), ("HTTP", res.get("service", {}).get("sequential", {}))):
                    r = rows.get(f"search {m} k={k}") or rows.get(f"HTTP search {m} k={k}")
                    if r:
                        lim = enc["p99_ms"] + 3
                        out.append({"target": f"{where} search {m} k={k} p99 <= encoder p99 + 3 ms",
                                    "p99_ms": r["p99_ms"], "limit_ms": round(lim, 2), "met": r["p99_ms"] <= lim})
    for name in ("similar k=10", "recommend 3 items k=10", "similar k=200", "recommend 3 items k=200"):
        if name in ip:
            out.append({"target": f"API {name} p99 <= 2 ms", "p99_ms": ip[name]["p99_ms"], "limit_ms": 2.0,
                        "met": ip[name]["p99_ms"] <= 2.0})
    svc = res.get("service")
    if svc:
        best = max(e["queries_per_s"] for e in svc["encoder_throughput"])
        cpu = min(e["cpu_ms_per_query"] for e in svc["encoder_throughput"])
        for c in svc["concurrent"]:
            out.append({"target": f"HTTP search {c['mode']}, {c['clients']} clients ({c.get('client', 'httpx')}): "
                                  "throughput >= encoder's / 1.5",
                        "rps": c["throughput_rps"], "encoder_qps": best, "met": c["throughput_rps"] * 1.5 >= best})
            out.append({"target": "same, in CPU: server CPU per request <= 1.5 x encoder CPU per query",
                        "server_cpu_ms": c["server_cpu_ms_per_request"], "encoder_cpu_ms": cpu,
                        "met": c["server_cpu_ms_per_request"] <= 1.5 * cpu})
    for r in res.get("cli", []):
        if "meets_target" in r:
            out.append({"target": f"CLI {r['what']} <= 1.5 s", "median_s": r["median_s"], "cpu_s": r["cpu_s"],
                        "met": r["meets_target"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", required=True, type=Path)
    ap.add_argument("--n", type=int, default=200, help="queries per row")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=5, help="fresh processes per CLI command")
    ap.add_argument("--skip", nargs="*", default=[], choices=["api", "service", "cli"])
    ap.add_argument("--ann-n", type=int, default=0, help="also the ANN section at this many items")
    ap.add_argument("--graph-cache", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/bench/speed.json"))
    a = ap.parse_args()
    from talkrec.space import Space

    space = Space.load(a.space)
    res: dict[str, Any] = {"space": str(a.space), "cpu_count": os.cpu_count(), "nice": os.nice(0)}
    if "api" not in a.skip:
        res["in_process"] = in_process(space, a.n)
    if "service" not in a.skip:
        res["service"] = service(a.space, space, min(a.n, 100), a.clients, a.seconds)
    if "cli" not in a.skip:
        res["cli"] = cli_cold.cold_cli(a.space, str(REPO / "src"), a.repeats)
        res["cli_load_average"] = load()
        res["cli_src_bytecode"] = cli_cold.src_bytecode(str(REPO / "src"))
    if a.ann_n:
        import service_ann
        res["ann"] = service_ann.run(service_ann.parser().parse_args(
            ["--n", str(a.ann_n), *(["--graph-cache", str(a.graph_cache)] if a.graph_cache else [])]))
    res["verdicts"] = verdicts(res)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2))
    for section in ("in_process", "service"):
        if section in res:
            print(f"== {section}: " + json.dumps({k: v for k, v in res[section].items()
                                                  if k not in ("rows", "sequential")}))
            for name, r in (res[section].get("rows") or res[section].get("sequential")).items():
                print(f"  {name:<58} p50 {r['p50_ms']:8.2f} ms   p99 {r['p99_ms']:8.2f} ms")
    if "cli" in res:
        print(f"== cli: bytecode cached for {res['cli_src_bytecode']} under src/")
    for r in res.get("cli", []):
        print(f"  CLI {r['what']:<54} {r['median_s']:.3f} s (cpu {r['cpu_s']})")
    print("== targets")
    for v in res["verdicts"]:
        print(f"  {'MET ' if v['met'] else 'NOT '} {json.dumps(v)}")


if __name__ == "__main__":
    main()
