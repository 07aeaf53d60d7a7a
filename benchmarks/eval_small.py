"""Time the evaluation pipeline in small mode (seconds per stage).

    python benchmarks/eval_small.py [configs/eval-full.yaml] [--out runs/eval-bench]

Prints the stage timings of :func:`talkrec.evaluation.runner.run_evaluation` with
``small=True`` (wall clock and process CPU time). The full run's timings are in its
report (``report.json`` -> ``seconds``).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("config", nargs="?", default="configs/eval-full.yaml")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from talkrec.evaluation.runner import run_evaluation

    out = a.out or tempfile.mkdtemp(prefix="talkrec-eval-bench-")
    rep = run_evaluation(a.config, out, small=True)
    print(json.dumps(rep["seconds"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
