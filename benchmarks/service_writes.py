"""Benchmark (not a test): writes and reads of a space under load (issue 10).

    python benchmarks/service_writes.py --space /work/spaces/lastfm-d1 [--writes 100] [--json out.json]

Prints, on a copy of the space (the original is not changed):

* the floors a write cannot beat, measured in the same run: the text encoder's time for one
  item description, and an fsync of a small file;
* single-item upsert p50 / p99 through ``Space.add_items`` (text embedding included), and
  single-item delete p50 / p99 (``Space.remove``, where the code has it);
* HTTP writes/s with concurrent clients against a live uvicorn server (a subprocess);
* HTTP read p50 / p99 (``GET /api/items/{id}/similar`` and ``GET /api/search`` over a fixed,
  warmed set of queries) under 0, 1 and 2 clients writing continuously.

It runs against the code before issue 10 as well (``PYTHONPATH=<checkout of 8db121d>/src``):
there is no delete there.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

QUERIES = ["heavy metal", "female singer-songwriter", "80s synth pop", "relaxing ambient electronic music",
           "brazilian music", "dark gothic rock", "jazz piano trio", "indie folk", "hip hop from the 90s",
           "melancholic post-rock", "german electronic", "punk rock", "classical piano", "reggae", "blues guitar",
           "dream pop shoegaze", "country", "techno", "soul diva", "french chanson"]


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1e3, q)) if xs else float("nan")


def records(space: Any, n: int, prefix: str, seed: int = 0) -> list[dict[str, Any]]:
    """Single-item records with the tags of real items (realistic TEMPLATE descriptions)."""
    meta = space.index.meta
    rnd = random.Random(seed)
    rows = [t for t in meta["tags"].tolist() if isinstance(t, list) and t]
    return [{"item_id": f"{prefix}{i}", "name": f"Bench Artist {prefix}{i}", "tags": list(rnd.choice(rows))[:10]}
            for i in range(n)]


def floors(space: Any, recs: list[dict[str, Any]]) -> dict[str, float]:
    """The text encoder's time for one description, and an fsync of a small file."""
    from talkrec.descriptions.template import TemplateDescriber

    describer = TemplateDescriber(**space.config["descriptions"]["template"])
    texts = [describer.describe_one({"item_id": r["item_id"], "name": r["name"]}, {"other": r["tags"]}) for r in recs]
    enc = space.text_encoder()
    enc.encode([texts[0]], kind="passage")
    t_enc = []
    for t in texts[:30]:
        t0 = time.perf_counter()
        enc.encode([t], kind="passage")
        t_enc.append(time.perf_counter() - t0)
    t_sync = []
    fd, name = tempfile.mkstemp(dir=space.path)
    try:
        for _ in range(50):
            os.write(fd, b"x" * 600)
            t0 = time.perf_counter()
            os.fsync(fd)
            t_sync.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(name)
    return {"encode_one_p50_ms": pct(t_enc, 50), "encode_one_p99_ms": pct(t_enc, 99),
            "fsync_p50_ms": pct(t_sync, 50), "fsync_p99_ms": pct(t_sync, 99)}


def python_writes(space: Any, recs: list[dict[str, Any]]) -> dict[str, float]:
    """Single-item upserts (the first one, which may migrate a legacy space, timed apart),
    then single-item deletes of half of them."""
    t0 = time.perf_counter()
    space.add_items([recs[0]])
    out = {"first_write_ms": (time.perf_counter() - t0) * 1e3}
    ts = []
    for r in recs[1:]:
        t0 = time.perf_counter()
        space.add_items([r])
        ts.append(time.perf_counter() - t0)
    out.update(upsert_p50_ms=pct(ts, 50), upsert_p99_ms=pct(ts, 99), upserts=len(ts))
    if hasattr(space, "remove"):
        ds = []
        for r in recs[1::2]:
            t0 = time.perf_counter()
            space.remove([r["item_id"]])
            ds.append(time.perf_counter() - t0)
        out.update(delete_p50_ms=pct(ds, 50), delete_p99_ms=pct(ds, 99))
    return out


def start_server(path: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = ("import uvicorn\nfrom talkrec.service.app import create_app\n"
            f"uvicorn.run(create_app({str(path)!r}), host='127.0.0.1', port={port}, log_level='warning')\n")
    proc = subprocess.Popen([sys.executable, "-c", code])
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 600
    while time.time() < deadline:
        try:
            if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the server did not start")


class Load:
    """Client threads doing one kind of request in a loop until stopped; latencies kept."""

    def __init__(self, url: str, n: int, kind: str, ids: list[str], prefix: str = "") -> None:
        self.url, self.kind, self.ids, self.prefix = url, kind, ids, prefix
        self.lat: list[float] = []
        self.errors = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(n)]

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def _run(self, t: int) -> None:
        rnd = random.Random(t)
        with httpx.Client(base_url=self.url, timeout=120) as c:
            i = 0
            while not self.stop.is_set():
                t0 = time.perf_counter()
                if self.kind == "write":
                    tags = rnd.choice(self.ids)
                    r = c.post("/api/items", json={"items": [{"item_id": f"{self.prefix}{t}-{i}",
                                                              "name": f"Http Artist {t}-{i}", "tags": tags}]})
                elif self.kind == "similar":
                    r = c.get(f"/api/items/{rnd.choice(self.ids)}/similar", params={"k": 10})
                else:
                    r = c.get("/api/search", params={"q": rnd.choice(QUERIES), "k": 10})
                if r.status_code == 200:
                    self.lat.append(time.perf_counter() - t0)
                else:
                    self.errors += 1
                i += 1


def http_bench(path: Path, item_ids: list[str], tag_rows: list[list[str]], clients: int, seconds: float
               ) -> dict[str, Any]:
    proc, url = start_server(path)
    try:
        with httpx.Client(base_url=url, timeout=120) as c:           # warm the query cache and the routes
            for q in QUERIES:
                c.get("/api/search", params={"q": q})
        out: dict[str, Any] = {}
        with Load(url, clients, "write", tag_rows, prefix="w") as w:
            time.sleep(seconds)
        out["http_writes_per_s"] = len(w.lat) / seconds
        out.update(http_clients=clients, http_write_p50_ms=pct(w.lat, 50), http_write_p99_ms=pct(w.lat, 99),
                   http_write_errors=w.errors)
        for n_writers in (0, 1, 2):
            with Load(url, n_writers, "write", tag_rows, prefix=f"r{n_writers}-") as w, \
                    Load(url, 1, "similar", item_ids) as sim, Load(url, 1, "search", item_ids) as srch:
                time.sleep(seconds)
            out[f"writers_{n_writers}"] = {
                "similar_p50_ms": pct(sim.lat, 50), "similar_p99_ms": pct(sim.lat, 99),
                "search_p50_ms": pct(srch.lat, 50), "search_p99_ms": pct(srch.lat, 99),
                "reads_per_s": (len(sim.lat) + len(srch.lat)) / seconds, "writes_per_s": len(w.lat) / seconds}
        return out
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", required=True, help="a built space (copied first)")
    ap.add_argument("--writes", type=int, default=100, help="single-item upserts through Space.add_items")
    ap.add_argument("--clients", type=int, default=8, help="concurrent HTTP writers for writes/s")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each HTTP phase")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from talkrec import Space

    work = Path(tempfile.mkdtemp(prefix="bench-writes-")) / "space"
    shutil.copytree(args.space, work)
    try:
        space = Space.load(work)
        recs = records(space, args.writes + 1, "py")
        res: dict[str, Any] = {"items": len(space.index), "code": "issue-10" if hasattr(space, "remove") else "before"}
        res.update(floors(space, recs))
        res.update(python_writes(space, recs))
        base = [str(i) for i in space.index.meta["item_id"] if not str(i).startswith("py")]
        ids = random.Random(1).sample(base, min(200, len(base)))
        tags = [r["tags"] for r in records(space, 200, "t", seed=2)]
        if hasattr(space, "close"):
            space.close()                          # the server process writes next
        del space
        res.update(http_bench(work, ids, tags, args.clients, args.seconds))
    finally:
        shutil.rmtree(work.parent, ignore_errors=True)
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
