"""GEN descriptions as a second text view for the evaluation (paper 001's MULTI_TEMPLATE+GEN).

The Last.fm data has no second human-written text per artist, so the music row
``MULTI TEMPLATE+GEN`` needs an LLM: :func:`gen_view` asks the configured backend
(:func:`talkrec.descriptions.gen.backend_from_config`: the bundled SmolLM2 in-process through
transformers, or any OpenAI-compatible endpoint) to rewrite the TEMPLATE of the ``limit`` most-played
artists, caching every answer in a JSONL file so a rerun (or an interrupted run) reuses it.
Outputs flagged by the tag-coverage / echo / loop checks are dropped: the item then simply
has no GEN view, which the fusion model handles as a missing view.

Config block (``music.gen`` in an evaluation config)::

    gen: {backend: local, n_threads: 1, max_tokens: 120, max_words: 60,
          limit: 1500, cache: cache/eval/gen-lastfm.jsonl}
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: keys of the ``gen`` block used here rather than by the backend
RUN_KEYS = ("limit", "cache", "max_words", "min_coverage")


def gen_view(gcfg: Mapping[str, Any], ids: Sequence[str], templates: Mapping[str, str],
             popularity: np.ndarray, cache_path: str | Path) -> tuple[dict[str, str], dict[str, Any]]:
    """GEN texts for the ``gcfg["limit"]`` most popular of ``ids`` (all when no limit).

    The prompt's tags (kept by the coverage check) are the ones the TEMPLATE lists.
    Returns ``({item_id: text}, info)``; ``info`` records the backend, the number asked,
    generated, cached, dropped and the wall time, for the report.
    """
    from ..descriptions.gen import GenReport, backend_from_config, generate_descriptions

    bcfg = {k: v for k, v in gcfg.items() if k not in RUN_KEYS}
    backend = backend_from_config(bcfg)
    order = np.argsort(-np.asarray(popularity, dtype=np.float64), kind="stable")
    limit = int(gcfg.get("limit") or len(ids))
    chosen = [str(ids[i]) for i in order[:limit]]
    rep = GenReport()
    t0 = time.perf_counter()
    out = generate_descriptions({i: templates[i] for i in chosen}, None,
                                backend, cache_path, kind="artist", max_words=int(gcfg.get("max_words", 60)),
                                min_coverage=float(gcfg.get("min_coverage", 0.5)), on_flagged="drop",
                                show_progress_bar=False, report=rep)
    # untagged items come back as their TEMPLATE: that is not a second view, leave them out
    out = {i: t for i, t in out.items() if t != templates[i]}
    info = {"backend": dict(backend.config()), "asked": len(chosen),
            "with_gen": len(out), "generated": rep.generated, "cached": rep.cached,
            "dropped_flagged": len(rep.flagged), "failed": len(rep.failed), "untagged": rep.untagged,
            "mean_tag_coverage": round(rep.mean_coverage, 3), "seconds": round(time.perf_counter() - t0, 1)}
    log.info("GEN view: %d of %d asked artists (%d generated now, %d cached, %d dropped)", len(out), len(chosen),
             rep.generated, rep.cached, len(rep.flagged))
    return out, info
