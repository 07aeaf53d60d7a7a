"""Benchmark (not a test): latency and throughput of the HTTP service under concurrent load.

Starts ``talkrec serve`` on a free 127.0.0.1 port over a built space (a subprocess), then
for each workload and concurrency level runs N asyncio httpx clients back to back for a
fixed time and reports client-side p50 / p99 latency and throughput. Search queries are all
distinct (tag pairs from /api/facets), so the service's query-vector cache does not help.

    OPENBLAS_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/service_load.py \\
        --space spaces/lastfm --concurrency 1 8 --seconds 15 --out runs/bench/load_lastfm.json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(space: str, port: int) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("talkrec")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("TALKREC_API_KEY", None)
    return subprocess.Popen([str(exe), "serve", "--space", space, "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    t = time.time()
    while time.time() - t < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        try:
            if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError("server did not become ready")


class Workloads:
    def __init__(self, url: str, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        facets = httpx.get(url + "/api/facets", timeout=30).json()
        self.tags = [t["tag"] for t in facets["top_tags"]][:150]
        self.users = [u["user_id"] for u in httpx.get(url + "/api/users", params={"limit": 1000}, timeout=30).json()["users"]]
        meta = httpx.get(url + "/api/search", params={"q": "music", "k": 200}, timeout=60).json()["items"]
        self.items = [h["item_id"] for h in meta]
        self.templates = ["{a} and {b}", "some {a} with a bit of {b}", "{a} {b} artists", "like {a} but more {b}"]
        self._n = 0

    def request(self, kind: str) -> tuple[str, str, dict[str, Any]]:
        r = self.rng
        self._n += 1
        if kind == "search":
            a, b = r.sample(self.tags, 2)
            q = r.choice(self.templates).format(a=a, b=b) + f" #{self._n}"  # distinct: no cache hits
            return "GET", "/api/search", {"params": {"q": q, "k": 10}}
        if kind == "recommend_user":
            return "POST", "/api/recommend", {"json": {"user": r.choice(self.users), "k": 10}}
        if kind == "recommend_items":
            return "POST", "/api/recommend", {"json": {"items": r.sample(self.items, 3), "k": 10}}
        if kind == "similar":
            return "GET", f"/api/items/{r.choice(self.items)}/similar", {"params": {"k": 10}}
        raise ValueError(kind)


async def run(url: str, wl: Workloads, kind: str, concurrency: int, seconds: float) -> dict[str, Any]:
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:
        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                method, path, kw = wl.request(kind)
                t = time.perf_counter()
                resp = await c.request(method, path, **kw)
                dt = (time.perf_counter() - t) * 1e3
                if resp.status_code != 200:
                    errors += 1
                else:
                    lat.append(dt)
        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        wall = time.perf_counter() - t0
    a = np.asarray(lat) if lat else np.asarray([np.nan])
    return {"workload": kind, "concurrency": concurrency, "requests": len(lat), "errors": errors,
            "seconds": round(wall, 1), "throughput_rps": round(len(lat) / wall, 1),
            "p50_ms": round(float(np.percentile(a, 50)), 1), "p99_ms": round(float(np.percentile(a, 99)), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="spaces/lastfm")
    ap.add_argument("--url", default=None, help="use a running server instead of starting one (127.0.0.1 only)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--workloads", nargs="+", default=["search", "recommend_user", "recommend_items", "similar"])
    ap.add_argument("--out", type=Path, default=Path("runs/bench/load.json"))
    args = ap.parse_args()
    proc = None
    url = args.url
    if url is None:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        t = time.time()
        proc = start_server(args.space, port)
    else:
        if not url.startswith(("http://127.0.0.1", "http://localhost")):
            raise SystemExit("load is only generated against 127.0.0.1")
    try:
        wait_ready(url, proc) if proc else None
        startup = round(time.time() - t, 1) if proc else None
        info = httpx.get(url + "/api/version").json()
        wl = Workloads(url)
        for kind in args.workloads:  # warm up each path
            for _ in range(3):
                m, p, kw = wl.request(kind)
                httpx.request(m, url + p, timeout=60, **kw)
        rows = []
        for kind in args.workloads:
            for c in args.concurrency:
                row = asyncio.run(run(url, wl, kind, c, args.seconds))
                rows.append(row)
                print(json.dumps(row), flush=True)
        out = {"space": info["space"], "server_startup_s": startup, "cpu_count": os.cpu_count(),
               "load_average_1m": round(os.getloadavg()[0], 1), "rows": rows}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2))
        print("| workload | concurrency | p50 ms | p99 ms | req/s | errors |\n|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['workload']} | {r['concurrency']} | {r['p50_ms']} | {r['p99_ms']} | {r['throughput_rps']} | "
                  f"{r['errors']} |")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
