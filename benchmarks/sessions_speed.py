"""Speed of the session models on synthetic data: training throughput and serving latency.

    python benchmarks/sessions_speed.py [--items 5000] [--sessions 3000] [--device cpu]

Prints seconds per epoch (masked and next-item, d_model 64, 2 layers, the study's
settings) and the latency of ``SessionRecommender.continue_session`` for a 10-item
playlist. Speed targets live here and in docs/sessions.md, not in the tests.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--sessions", type=int, default=3000)
    ap.add_argument("--mean-length", type=float, default=20.0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    from talkrec.sessions import MaskedSessionModel, NextItemSessionModel, SessionRecommender

    rng = np.random.default_rng(0)
    pop = 1.0 / np.arange(1, a.items + 1) ** 0.8
    pop /= pop.sum()
    ids = np.array([f"i{j}" for j in range(a.items)])
    sess = [ids[rng.choice(a.items, size=max(2, int(rng.geometric(1 / a.mean_length))), p=pop)].tolist()
            for _ in range(a.sessions)]
    events = sum(len(s) for s in sess)
    print(f"{a.sessions} sessions, {events} events, {a.items} items")
    for klass in (MaskedSessionModel, NextItemSessionModel):
        m = klass(d_model=64, n_layers=2, n_heads=2, max_epochs=2, device=a.device, random_state=0)
        t = time.perf_counter()
        m.fit(sess, item_ids=ids.tolist())
        dt = (time.perf_counter() - t) / 2
        print(f"{klass.__name__}: {dt:.1f} s/epoch ({events / dt:.0f} events/s, device {m.device_})")
        with tempfile.TemporaryDirectory() as d:
            m.save(Path(d) / "m")
            rec = SessionRecommender.load(Path(d) / "m")
            q = ids[:10].tolist()
            rec.continue_session(q, k=10)
            t = time.perf_counter()
            for _ in range(50):
                rec.continue_session(q, k=10)
            print(f"  continue_session(10 items, k=10): {(time.perf_counter() - t) / 50 * 1000:.1f} ms")


if __name__ == "__main__":
    main()
