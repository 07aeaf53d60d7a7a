"""Benchmark (not a test): reads in a follower while it takes on a new generation (issue 10).

    python benchmarks/follower_load.py --space spaces/lastfm [--rounds 4] [--writes 300] [--json out.json]

On a copy of the space (the original is not changed), in one process: a writer ``Space`` and a
follower (``Space.load(..., follow=True)`` + :class:`talkrec.space.Follower`, frozen after its
loads as ``talkrec serve --follow`` does), ``--writes`` single-item writes the follower applies,
then ``--rounds`` times: the writer compacts and writes one more item, and a thread reads from the
follower (``similar`` then ``search``, sleeping 3 ms between pairs) for 0.4 s with nothing else
running (the floor: what the reads take alone), then again while the follower's ``catch_up``
takes on the new generation. Prints the load's time and the reads' p50 / p90 / max in both
windows (a read counts in the load's window when it started during it). What it shows is the
load's cost to the reads of its own process, on the GIL: with ``--pace 0`` the load runs
unpaced, with ``--read-wait 0`` it only hands the GIL over every ``pace`` seconds (the code
before it made way for reads in flight).
"""
from __future__ import annotations

import argparse
import gc
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from service_writes import QUERIES, records  # noqa: E402

from talkrec import Space  # noqa: E402
from talkrec.space import Follower  # noqa: E402


def window(space: Space, ids: list[str], fn: Callable[[], object], rnd: random.Random) -> tuple[float, list[float]]:
    """Run ``fn`` while a thread reads ``space``; its seconds, and the ms of the reads started meanwhile."""
    stop, lat = threading.Event(), []

    def reader() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            space.similar(rnd.choice(ids), k=10)
            space.search(rnd.choice(QUERIES), k=10)
            lat.append((t, time.perf_counter() - t))
            time.sleep(0.003)
    th = threading.Thread(target=reader)
    th.start()
    time.sleep(0.3)
    t0 = time.perf_counter()
    fn()
    t1 = time.perf_counter()
    time.sleep(0.3)
    stop.set()
    th.join()
    return t1 - t0, [d * 1e3 for t, d in lat if t0 - 0.02 <= t <= t1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--space", type=Path, default=Path("spaces/lastfm"))
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--writes", type=int, default=300)
    ap.add_argument("--pace", type=float, default=0.002)
    ap.add_argument("--read-wait", type=float, default=0.01)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="talkrec-follow-")) / "space"
    shutil.copytree(args.space, work)
    try:
        writer = Space.load(work, auto_compact=False)
        writer.warm_up()                     # its int8 copies are saved with each generation
        follower = Space.load(work, follow=True)
        follower.warm_up()
        gc.collect()
        gc.freeze()
        fol = Follower(follower, freeze=True, pace=args.pace, read_wait=args.read_wait)
        recs = records(writer, args.writes + args.rounds, "fl")
        for r in recs[:args.writes]:
            writer.add_items([r])
        fol.catch_up()
        ids, rnd, rounds = [str(x) for x in follower.item_ids[:2000]], random.Random(0), []
        for i in range(args.rounds):
            writer.compact()
            writer.add_items([recs[args.writes + i]])
            _, alone = window(follower, ids, lambda: time.sleep(0.4), rnd)
            load_s, during = window(follower, ids, fol.catch_up, rnd)
            row: dict[str, Any] = {"load_s": round(load_s, 3)}
            for name, lat in (("alone", alone), ("during_load", during)):
                row[name] = {"n": len(lat), "p50_ms": round(float(np.median(lat)), 2),
                             "p90_ms": round(float(np.percentile(lat, 90)), 2), "max_ms": round(max(lat), 2)}
            rounds.append(row)
            a, d = row["alone"], row["during_load"]
            print(f"round {i}: load {load_s * 1e3:.0f} ms | reads alone (the floor) p50 {a['p50_ms']:.1f} / p90 "
                  f"{a['p90_ms']:.1f} / max {a['max_ms']:.1f} ms | during the load p50 {d['p50_ms']:.1f} / p90 "
                  f"{d['p90_ms']:.1f} / max {d['max_ms']:.1f} ms ({d['n']} reads)", flush=True)
        writer.close()
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"pace": args.pace, "read_wait": args.read_wait, "rounds": rounds},
                                            indent=2))
    finally:
        shutil.rmtree(work.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
