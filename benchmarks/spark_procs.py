"""Measuring helpers of the Spark benchmarks (not a benchmark itself): wall time and the
peak resident memory of a whole process tree (the Python driver, Spark's JVM and its Python
workers), sampled from /proc every half second."""
from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    return kids


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MB."""
    kids, total, todo = _children(), 0, [pid]
    while todo:
        p = todo.pop()
        todo += kids.get(p, [])
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
        except OSError:
            pass
    return total / 1024.0


class PeakRSS:
    """A thread that records the peak :func:`tree_rss_mb` of ``pid`` while it runs."""

    def __init__(self, pid: int, every_s: float = 0.5) -> None:
        self.pid, self.every_s, self.peak_mb = pid, every_s, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pid))
            self._stop.wait(self.every_s)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def run_measured(cmd: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` (output to ``log``); its wall seconds, peak tree RSS and exit status."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        with PeakRSS(proc.pid) as peak:
            rc = proc.wait()
    return {"cmd": " ".join(cmd), "seconds": round(time.perf_counter() - t0, 1),
            "peak_tree_rss_mb": round(peak.peak_mb), "returncode": rc}
