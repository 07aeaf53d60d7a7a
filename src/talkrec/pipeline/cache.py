"""Build bookkeeping: content hashes for cache keys, the stage cache, the stage timer."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .._atomic import write_json

log = logging.getLogger(__name__)

__all__ = ["Cache", "StageTimer", "content_hash"]


def content_hash(*parts: Any) -> str:
    """16 hex digits of SHA-256 over arrays (bytes), data frames (pandas row hashes) and
    anything else as sorted-key JSON."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(np.ascontiguousarray(p).tobytes())
        elif isinstance(p, pd.DataFrame):
            h.update(pd.util.hash_pandas_object(p, index=False).to_numpy().tobytes())
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class StageTimer:
    """Records wall time, CPU time (every thread of the process: ``cpu_s / seconds`` is how
    many cores the stage kept busy) and peak resident memory after each stage."""

    def __init__(self) -> None:
        self.stages: list[dict[str, Any]] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        t0, c0 = time.perf_counter(), time.process_time()
        info: dict[str, Any] = {"stage": name}
        log.info("stage %s ...", name)
        yield info
        info["seconds"] = round(time.perf_counter() - t0, 2)
        info["cpu_s"] = round(time.process_time() - c0, 2)
        info["peak_rss_mb"] = round(_peak_rss_mb(), 1)
        self.stages.append(info)
        log.info("stage %s done in %.1fs (cpu %.1fs, peak RSS %.0f MB)%s", name, info["seconds"], info["cpu_s"],
                 info["peak_rss_mb"], " [cached]" if info.get("cached") else "")


class Cache:
    """npz/json files under a build folder, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, stage: str, key: str, ext: str) -> Path:
        return self.root / f"{stage}-{key}.{ext}"

    def arrays(self, stage: str, key: str, fn: Callable[[], dict[str, np.ndarray]], info: dict[str, Any]) -> dict[str, np.ndarray]:
        p = self.path(stage, key, "npz")
        if p.exists():
            info["cached"] = True
            with np.load(p, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        out = fn()
        tmp = p.with_name(f".{p.name}.{os.getpid()}.npz")
        np.savez(tmp, **out)
        os.replace(tmp, p)
        return out

    def json(self, stage: str, key: str, fn: Callable[[], Any], info: dict[str, Any]) -> Any:
        p = self.path(stage, key, "json")
        if p.exists():
            info["cached"] = True
            return json.loads(p.read_text())
        out = fn()
        write_json(p, out)
        return out
