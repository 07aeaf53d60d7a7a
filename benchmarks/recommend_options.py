"""Benchmark (not a test): what the recommend options cost on a built space.

    python benchmarks/recommend_options.py --space spaces/lastfm [--n 300] [--only explanations | strategies]

Prints, each next to its floor measured in the same run:

* in-process ``Space.recommend`` from 3 items at k=10: plain (the floor), with ``diversity=0.5``
  (MMR over the top ``pool=100``), with ``novelty=0.3`` (the same pool, less popular items up),
  and with ``max_per_artist=1`` over a list field; ``Space.similar`` at k=10 plain (the floor) and
  with ``novelty=0.3``;
* the explanations, in-process: ``Space.explain`` (a similar item, k=200 served list), ``Space.explain_search``
  (a hybrid search hit) and ``Space.explain_recommend`` (a user's recommendation), each next to the
  served call it makes, at k=200 (its floor: ``similar`` / ``search`` / ``recommend``);
* each ``strategy`` of ``Space.recommend`` (``blend``, ``rrf``, ``knn``, ``best_score``) from 3
  items and from a user's whole history, next to numpy's product of the catalog's vectors with
  the history's (``V @ H.T``, what ``best_score`` must compute: its floor);
* recommendations for 100 users over HTTP (``talkrec serve`` in a subprocess, one client):
  100 ``POST /api/recommend`` one after another (the floor) against one ``POST
  /api/recommend/batch`` of the same 100 bodies; and ``talkrec recommend --users`` for the same
  100 users in a fresh process (an export), next to one ``talkrec recommend --user``.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TALKREC = [sys.executable, "-m", "talkrec.cli"]


def pct(xs: list[float]) -> str:
    a = np.asarray(xs) * 1e3
    return f"p50 {np.percentile(a, 50):7.2f} ms   p99 {np.percentile(a, 99):7.2f} ms"


def in_process(space_dir: str, n: int) -> None:
    from talkrec import Space
    s = Space.load(space_dir)
    s.warm_up()
    rng = np.random.default_rng(0)
    ids = [str(x) for x in s.item_ids]
    seeds = [[ids[i] for i in rng.choice(len(ids), 3, replace=False)] for _ in range(n)]
    listed = [c for c in ("artist", "genre", "tags") if c in s.index.columns]
    rows = {"plain (floor)": {}, "diversity 0.5, pool 100": {"diversity": 0.5},
            "novelty 0.3, pool 100": {"novelty": 0.3}}
    if listed:
        rows[f"max_per_artist 1 ({listed[0]}), pool 100"] = {"max_per_artist": 1, "artist_field": listed[0]}
    times: dict[str, list[float]] = {r: [] for r in rows}
    for q in seeds:                                  # round robin: the machine's load falls on every row alike
        for name, kw in rows.items():
            t = time.perf_counter()
            s.recommend(items=q, k=10, **kw)
            times[name].append(time.perf_counter() - t)
    print(f"== in-process recommend, 3 items, k=10 ({n} queries; load {os.getloadavg()[0]:.2f})")
    for name, ts in times.items():
        print(f"  {name:45s} {pct(ts)}")
    sim: dict[str, list[float]] = {"similar, plain (floor)": [], "similar, novelty 0.3, pool 100": []}
    for q in seeds:
        for name, kw in zip(sim, ({}, {"novelty": 0.3})):
            t = time.perf_counter()
            s.similar(q[0], k=10, **kw)
            sim[name].append(time.perf_counter() - t)
    print(f"== in-process similar, k=10 ({n} queries; load {os.getloadavg()[0]:.2f})")
    for name, ts in sim.items():
        print(f"  {name:45s} {pct(ts)}")


def strategies(space_dir: str, n: int) -> None:
    from talkrec import Space
    from talkrec.space.strategies import RECOMMEND_STRATEGIES
    s = Space.load(space_dir)
    s.warm_up()
    rng = np.random.default_rng(0)
    ids = [str(x) for x in s.item_ids]
    users = [u for u, _ in s.users(200)]                   # the 200 with the most history (the limit)
    users = [users[i] for i in rng.choice(len(users), min(n, len(users)), replace=False)]
    V = s.index.gen.vectors
    for label, hists in (("3 items", [[ids[i] for i in rng.choice(len(ids), 3, replace=False)] for _ in users]),
                         ("a user's history", [s.user_history(u) for u in users])):
        times: dict[str, list[float]] = {"numpy V @ H.T (floor of best_score)": [],
                                         **{st: [] for st in RECOMMEND_STRATEGIES}}
        for h in hists:                              # round robin
            H = np.stack([s.item_vector(i) for i in h])
            t = time.perf_counter()
            (V @ H.T).max(axis=1)
            times["numpy V @ H.T (floor of best_score)"].append(time.perf_counter() - t)
            for st in RECOMMEND_STRATEGIES:
                t = time.perf_counter()
                s.recommend(items=h, k=10, strategy=st)
                times[st].append(time.perf_counter() - t)
        sizes = [len(h) for h in hists]
        print(f"== in-process recommend by strategy, {label} (median {int(np.median(sizes))}, max {max(sizes)} "
              f"items), k=10 ({len(hists)} queries; load {os.getloadavg()[0]:.2f})")
        for name, ts in times.items():
            print(f"  {name:45s} {pct(ts)}")


def explanations(space_dir: str, n: int) -> None:
    """Each explanation next to the served k=200 call inside it (the floor), round robin."""
    from talkrec import Space
    s = Space.load(space_dir)
    s.warm_up()
    rng = np.random.default_rng(1)
    ids = [str(x) for x in s.item_ids]
    users = [u for u, _ in s.users(max(n, 1))]
    words = ["rock", "jazz", "electronic", "female vocalists", "80s", "ambient", "metal", "folk", "hip hop", "indie"]
    rows: dict[str, list[float]] = {k: [] for k in (
        "similar k=200 (floor)", "explain(a, b)", "search k=200 (floor)", "explain_search(text, item)",
        "recommend user k=200 (floor)", "explain_recommend(item, user=)")}
    for i in range(n):
        a, text, u = ids[int(rng.integers(len(ids)))], words[i % len(words)], users[i % len(users)]
        b = s.similar(a, k=5)[-1].item_id
        hit = s.search(text, k=5)[-1].item_id          # the query vector is then cached, as after a search
        rec = s.recommend(user=u, k=5)[-1].item_id
        for name, fn in (("similar k=200 (floor)", lambda: s.similar(a, k=200)), ("explain(a, b)", lambda: s.explain(a, b)),
                         ("search k=200 (floor)", lambda: s.search(text, k=200)),
                         ("explain_search(text, item)", lambda: s.explain_search(text, hit)),
                         ("recommend user k=200 (floor)", lambda: s.recommend(user=u, k=200)),
                         ("explain_recommend(item, user=)", lambda: s.explain_recommend(rec, user=u))):
            t = time.perf_counter()
            fn()
            rows[name].append(time.perf_counter() - t)
    print(f"== in-process explanations ({n} each; load {os.getloadavg()[0]:.2f})")
    for name, ts in rows.items():
        print(f"  {name:45s} {pct(ts)}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def over_http(space_dir: str, users: list[str]) -> None:
    import httpx
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([*TALKREC, "serve", "--space", space_dir, "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=60) as c:
            for _ in range(600):
                try:
                    if c.get("/api/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            bodies = [{"user": u, "k": 10} for u in users]
            c.post("/api/recommend/batch", json={"requests": bodies}).raise_for_status()      # warm
            single, batch = [], []
            for _ in range(5):
                t = time.perf_counter()
                for b in bodies:
                    c.post("/api/recommend", json=b).raise_for_status()
                single.append(time.perf_counter() - t)
                t = time.perf_counter()
                c.post("/api/recommend/batch", json={"requests": bodies}).raise_for_status()
                batch.append(time.perf_counter() - t)
        print(f"== {len(users)} users over HTTP, k=10 (median of 5; load {os.getloadavg()[0]:.2f})")
        print(f"  {len(users)} x POST /api/recommend (floor)          {np.median(single) * 1e3:8.1f} ms")
        print(f"  1 x POST /api/recommend/batch                 {np.median(batch) * 1e3:8.1f} ms")
    finally:
        proc.terminate()
        proc.wait()


def cli(space_dir: str, users: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    t = time.perf_counter()
    subprocess.run([*TALKREC, "recommend", "--user", users[0], "--space", space_dir, "--json"], env=env,
                   check=True, capture_output=True)
    one = time.perf_counter() - t
    t = time.perf_counter()
    out = subprocess.run([*TALKREC, "recommend", "--users", "-", "--space", space_dir], env=env, check=True,
                         capture_output=True, input="\n".join(users).encode())
    many = time.perf_counter() - t
    print(f"== CLI, a fresh process (load {os.getloadavg()[0]:.2f})")
    print(f"  talkrec recommend --user (floor: one user)     {one:8.2f} s")
    print(f"  talkrec recommend --users, {len(users)} users          {many:8.2f} s "
          f"({len(out.stdout.splitlines())} lines)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", required=True)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--only", choices=["explanations", "strategies"], help="run only this part")
    a = ap.parse_args()
    if a.only == "explanations":
        explanations(a.space, min(a.n, 100))
        return
    if a.only == "strategies":
        strategies(a.space, min(a.n, 200))
        return
    in_process(a.space, a.n)
    strategies(a.space, min(a.n, 200))
    explanations(a.space, min(a.n, 100))
    from talkrec import Space
    users = [u for u, _ in Space.load(a.space).users(100)]
    over_http(a.space, users)
    cli(a.space, users)


if __name__ == "__main__":
    main()
