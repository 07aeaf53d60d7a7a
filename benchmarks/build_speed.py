"""Stage-by-stage time and peak memory of ``talkrec build``, with the text stage as the floor.

Runs ``talkrec build CONFIG --output OUT`` in a fresh process with an empty build cache
(``OUT.build`` is removed first unless ``--keep-cache``), then prints every stage's seconds,
the cores it kept busy (its CPU seconds / wall seconds) and peak RSS from
``OUT/build_report.json``, the whole build next to its floor (the text
stage: the build target is at most 1.3x it, and at most 240 s in all), the process's wall
time, CPU time and peak RSS, and the load average before and after (the machine is shared).

    PYTHONPATH=src OPENBLAS_NUM_THREADS=1 nice python benchmarks/build_speed.py configs/lastfm.yaml \\
        --output spaces/lastfm

``--src DIR`` builds with another checkout's sources (e.g. the code before this change).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

TARGET_TOTAL_S = 240.0
TARGET_RATIO = 1.3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--output", required=True, type=Path)
    ap.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"))
    ap.add_argument("--keep-cache", action="store_true", help="reuse OUT.build (cached stages)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    cache = Path(str(a.output) + ".build")
    if not a.keep_cache:
        shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": a.src, "OPENBLAS_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    script = Path(sys.executable).with_name("talkrec")
    cmd = ([str(script)] if script.exists() else [sys.executable, "-m", "talkrec.cli"]) + [
        "build", str(a.config), "--output", str(a.output), "--no-progress", "--quiet"]
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"build failed ({p.returncode}):\n{p.stderr[-3000:]}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
    stages = json.loads((a.output / "build_report.json").read_text())["stages"]
    total = sum(s["seconds"] for s in stages)
    text = next(s for s in stages if s["stage"] == "text")
    out = {"config": str(a.config), "src": a.src, "load_before": [round(x, 2) for x in load0],
           "load_after": [round(x, 2) for x in os.getloadavg()], "process_wall_s": round(wall, 1),
           "process_peak_rss_mb": round(rss, 1), "process_cpu_s": round(cpu, 1), "stages": stages,
           "stages_total_s": round(total, 1), "text_stage_s": text["seconds"],
           "ratio_build_to_text": round(wall / max(text["seconds"], 1e-9), 2)}
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{a.config} -> {a.output}  sources {a.src}")
    print(f"load average before {out['load_before']}, after {out['load_after']}")
    for s in stages:
        extra = {k: v for k, v in s.items() if k in ("backend", "threads", "epochs", "best_epoch", "cached")}
        cores = f"  cores {s['cpu_s'] / s['seconds']:.2f}" if "cpu_s" in s and s["seconds"] > 0 else ""
        print(f"  {s['stage']:<13} {s['seconds']:>8.1f} s{cores}  peak RSS {s['peak_rss_mb']:>7.0f} MB  {extra or ''}")
    print(f"  stages total  {total:>8.1f} s   (the report is written inside the index stage, so without it)")
    print(f"  whole build   {wall:>8.1f} s   (process wall; target <= {TARGET_TOTAL_S:.0f} s)  "
          f"CPU {cpu:.0f} s  peak RSS {rss:.0f} MB")
    print(f"  floor: text   {text['seconds']:>8.1f} s   whole build / text stage = {out['ratio_build_to_text']:.2f} "
          f"(target <= {TARGET_RATIO})")


if __name__ == "__main__":
    main()
