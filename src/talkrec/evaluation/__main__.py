"""``python -m talkrec.evaluation CONFIG --out DIR [--small]``."""
from __future__ import annotations

import argparse
import logging
import sys
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m talkrec.evaluation",
                                 description="Reproduce paper 001 Table 4 on public data (see docs/evaluation.md).")
    ap.add_argument("config", help="YAML config, e.g. configs/eval-full.yaml")
    ap.add_argument("--out", required=True, help="output folder for report.md / report.json / plots")
    ap.add_argument("--small", action="store_true", help="small mode: a slice of the data, for tests")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("talkrec.evaluation").setLevel(logging.INFO)
    from .runner import run_evaluation

    t0 = time.perf_counter()
    rep = run_evaluation(a.config, a.out, small=a.small)
    print(f"report written to {a.out}/report.md in {time.perf_counter() - t0:.0f}s")
    from .report import headline_table

    print(headline_table(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
