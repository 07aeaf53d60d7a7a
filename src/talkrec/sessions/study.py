"""The paper-002 study in one command: both model families x every initialization.

    python -m talkrec.sessions.study --config configs/sessions-movielens.yaml

For each family (``masked``: T4Rec-style model, user-disjoint split, last-item task;
``next_item``: RTA-style model, sampled-long-session split, continuation task) the study
sessionizes the log, splits it, builds the item vocabulary from the training sessions,
computes the initial embeddings from training data (CF), content (text, audio) and their
fusion (MULTI), their session-tuned variants, trains one model per initialization plus a
random baseline at every embedding dimension used, keeps the checkpoint with the best
validation NDCG@20, and evaluates it on the test sessions (NDCG / MAP / Recall at 10 and
20, 95% bootstrap intervals). Outputs under ``output`` (default ``runs/sessions/<dataset>``):
``report.md``, ``results.json``, ``curves-<family>.png`` and the best model per family
in ``models/<family>/`` (loadable by :class:`talkrec.sessions.SessionRecommender`).

Initialization names (``inits`` in the config): ``random`` (at ``embeddings.dim``),
``random@D``, a source ``cf``, ``text``, ``audio``, ``multi``, any name listed under
``embeddings.files`` (``.npz`` with ``ids`` and ``X``) or ``space:<kind>`` (a built
Space's embedding), optionally followed by ``@native`` (keep the source dimension, projected
to the model dimension) and by ``-tuned`` and/or ``-frozen``: e.g. ``text-tuned``,
``text@native-frozen``. Wider sources are reduced to ``embeddings.dim`` by PCA unless
``@native``. A random baseline is added for every dimension that appears.

Modules: this one (config, training jobs, outputs), :mod:`.study_inputs` (log, families,
initial embeddings) and :mod:`.study_report` (Markdown and plots).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import config as _config
from .._atomic import is_temporary, strict_json, write_json, write_text
from ..errors import InputError, TalkrecError
from .evaluate import KS, SessionTask, continuation_task, evaluate_scores, last_item_task, summarize
from .models import FAMILIES
from .study_inputs import (FamilyData, base_sources, check_runnable, check_settings, family_data, family_sources,
                           load_log, make_init, parse_init)
from .study_report import markdown_report

log = logging.getLogger(__name__)

__all__ = ["DEFAULTS", "load_config", "main", "run_study"]

DEFAULTS: dict[str, Any] = {
    "dataset": "movielens",           # movielens | lastfm | log
    "data_root": "../shared/data",    # relative paths: to the working dir, else to the repo root
    "log": None,                      # dataset "log": {path, user_col, item_col, time_col, texts}
    "output": None,                   # default runs/sessions/<dataset>
    "random_state": 0,
    "jobs": 2,                        # parallel training processes (1 torch thread each)
    "threads_per_job": 1,
    "bootstrap": 1000,
    "sessions": {"gap_minutes": 60, "min_length": 2},
    "min_item_count": 3,
    "families": {
        "masked": {"split": "user", "fractions": [0.7, 0.15, 0.15], "remove_repeats": False,
                   "task": "last_item"},
        "next_item": {"split": "rta", "n_validation": 150, "n_test": 150, "min_length": 21,
                      "remove_repeats": True, "task": "continuation"},
    },
    "model": {"d_model": 64, "n_layers": 2, "n_heads": 2, "dropout": 0.1, "max_length": 50,
              "learning_rate": 2e-3, "batch_size": 128, "max_epochs": 8, "patience": 2},
    "masked": {"mask_probability": 0.2},
    "next_item": {"n_negatives": 100},
    "embeddings": {
        "dim": 64,
        "cf": {"factors": 64, "regularization": 0.05, "alpha": 10.0, "iterations": 15},
        "text": {"model": "minilm"},
        "audio": True,
        "multi": {"space": None, "modalities": ["cf", "text", "audio"], "out_dim": 200, "max_epochs": 60},
        "tuning": {"epochs": 3, "hidden_dim": 256},
        "files": {},
        "space": None,
    },
    "inits": ["random", "cf", "text", "text-tuned", "text-frozen", "multi", "audio"],
    "save_models": "best",            # best | all | none
}
#: a family's settings (``study_inputs.family_data``, ``_task``); the families are the user's names
FAMILY_KEYS = frozenset({"split", "fractions", "shuffle", "remove_repeats", "task", "n_validation", "n_test",
                         "min_length"})
#: blocks :func:`talkrec.config.check_like` does not look into: the user's names (families, files),
#: the log's columns, the encoders' settings, and the model's (checked against its constructor)
OPEN_KEYS = frozenset({"families", "log", "files", "model", "masked", "next_item", "cf", "text"})



def load_config(path: str | Path | Mapping[str, Any] | None = None,
                overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:data:`DEFAULTS`, then the YAML file (or mapping), then ``overrides`` (dotted keys
    allowed: ``"model.max_epochs"``). A config's ``families`` replace the default families
    whole. See :func:`talkrec.config.load_config`. A key that is not a setting (nor, in a family,
    one of the default families' settings) is an error naming it."""
    cfg = _config.load_config(path, defaults=DEFAULTS, overrides=overrides, replace=("families",))
    where = cfg.get("_config_path")
    _config.check_like(cfg, DEFAULTS, open_keys=OPEN_KEYS, path=where)
    for name, fam in (cfg.get("families") or {}).items():
        if isinstance(fam, Mapping):
            _config.check_keys(fam, FAMILY_KEYS, where=f"families.{name}", path=where)
    # the model's hyperparameters: ``model`` goes to every family's class, each family's block to its own
    own = {f: set(k._get_param_names()) for f, k in FAMILIES.items()}
    blocks = {"model": set.intersection(*own.values()), **own}
    for block, known in blocks.items():
        if isinstance(cfg.get(block), Mapping):
            _config.check_keys(cfg[block], known, where=block, path=where)
    check_settings(cfg, where)
    return cfg


# ------------------------------------------------------------------------------ output
#: the files of a saved session model (everything under ``models/``)
MODEL_FILES = frozenset({"config.json", "model.safetensors"})


def _is_study(path: Path) -> bool:
    """Whether ``path`` (``results.json``) was written by a study."""
    try:
        rep = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(rep, dict) and {"dataset", "config", "results"} <= rep.keys()


def check_output(out: Path) -> None:
    """Refuse an output that would destroy what the user has, before any work: a file, a
    non-empty folder that holds no earlier study (``results.json``; a crashed run's
    ``cache`` and temporary files are fine), or a ``models/`` folder with files no study
    wrote (the saved models there are replaced)."""
    if out.exists() and not out.is_dir():
        raise InputError("the output is a file, not a folder: give a new or empty folder", path=str(out),
                         field="output")
    if not out.is_dir():
        return
    leftovers = {"cache", ".models-tmp"}
    foreign = sorted(e.name for e in out.iterdir()
                     if not (e.name in leftovers and e.is_dir()) and not is_temporary(e.name))
    if foreign and not _is_study(out / "results.json"):
        shown_names = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise InputError(f"the output folder is not empty ({shown_names}"
                         ") and holds no earlier session study (results.json): give a new or empty folder; "
                         "nothing was changed", path=str(out), field="output")
    if (out / "cache").exists() and not (out / "cache").is_dir():
        raise InputError("is a file, where the study keeps its cache folder: move it or give another output folder",
                         path=str(out / "cache"), field="output")
    models = out / "models"
    if models.exists():
        other = [f for f in ([models] if not models.is_dir() else models.rglob("*"))
                 if not f.is_dir() and f.name not in MODEL_FILES and not is_temporary(f.name)]
        if other:
            raise InputError(f"holds {other[0]} which no study wrote; the saved models there are replaced: move it "
                             "or give another output folder; nothing was changed", path=str(models), field="output")


# ---------------------------------------------------------------------------- training
def _task(fd: FamilyData, which: str) -> SessionTask:
    ss = fd.split.validation if which == "validation" else fd.split.test
    if fd.cfg.get("task", "last_item") == "last_item":
        return last_item_task(ss, fd.vocab)
    return continuation_task(ss, fd.vocab)


def _train_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one (family, init) run; runs in a worker process."""
    import torch
    torch.set_num_threads(int(job["threads"]))
    if job.get("log_level") is not None and not logging.getLogger().handlers:
        logging.basicConfig(level=job["log_level"], format="%(asctime)s %(name)s %(message)s")
    klass = FAMILIES[job["family"]]
    model = klass(**job["params"])
    t0 = time.perf_counter()
    model.fit(job["train"], item_ids=job["vocab"], init=job["init"], validation=job["val"])
    fit_s = time.perf_counter() - t0
    pq = evaluate_scores(model.score_indices, job["test"], ks=KS)
    res = {"run": job["run"], "family": job["family"], "init": job["init_name"], "dim": job["dim"],
           "history": model.history_, "best_epoch": model.best_epoch_, "fit_seconds": fit_s,
           "coverage": model.init_coverage_, "per_query": {k: v.tolist() for k, v in pq.items()},
           "best_val_ndcg@20": max([h.get("val_ndcg@20", float("-inf")) for h in model.history_])}
    if job.get("save_dir"):
        model.save(job["save_dir"])
    log.info("%s done in %.0fs: test ndcg@20 %.4f", job["run"], fit_s, float(np.mean(pq["ndcg@20"])))
    return res


def _popularity(fd: FamilyData, task: SessionTask) -> dict[str, np.ndarray]:
    cnt = pd.Series([x for s in fd.train for x in s]).value_counts()
    pop = cnt.reindex(fd.vocab).fillna(0).to_numpy(np.float32)
    return evaluate_scores(lambda ctx: np.tile(pop, (len(ctx), 1)), task, ks=KS)


def _family_runs(specs: list[dict[str, Any]], sources: dict[str, Any], fd: FamilyData,
                 cfg: dict[str, Any]) -> tuple[list[tuple[str, Any, int, bool]], list[str]]:
    """``(name, init, dim, frozen)`` per run, a random baseline at every dimension used
    (paper 002 5.1.1), and the initializations skipped for lack of a source."""
    cache: dict[str, Any] = {}
    runs: list[tuple[str, Any, int, bool]] = []
    dims_used = set()
    skipped = []
    for s in specs:
        made = make_init(s, sources, fd, cfg, cache)
        if made is None:
            skipped.append(s["name"])
            continue
        init, dim = made
        dims_used.add(dim)
        runs.append((s["name"] if s["source"] != "random" else "random", init, dim, s["frozen"]))
    for d in sorted(dims_used):
        if not any(r[1] is None and r[2] == d for r in runs):
            runs.append(("random", None, d, False))
    runs.sort(key=lambda r: (r[2], r[1] is not None, r[0]))
    return runs, skipped


def _plan_jobs(cfg: dict[str, Any], fam: dict[str, FamilyData], base: dict[str, Any], specs: list[dict[str, Any]],
               needed: set[str], out: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One training job per (family, initialization), and each family's facts for the report."""
    jobs: list[dict[str, Any]] = []
    meta: dict[str, Any] = {"families": {}}
    level = logging.getLogger("talkrec").getEffectiveLevel()
    for family, fd in fam.items():
        sources = family_sources(cfg, fd, base, needed)
        val, test = _task(fd, "validation"), _task(fd, "test")
        params = {**cfg["model"], **cfg.get(family, {}), "random_state": cfg["random_state"], "verbose": False}
        runs, skipped = _family_runs(specs, sources, fd, cfg)
        meta["families"][family] = {"split": fd.split.stats(), "vocabulary": int(len(fd.vocab)),
                                    "train_sessions_in_vocab": len(fd.train), "validation_queries": len(val),
                                    "test_queries": len(test), "skipped_inits": skipped,
                                    "popularity": summarize(_popularity(fd, test), n_boot=int(cfg["bootstrap"]),
                                                            random_state=cfg["random_state"])}
        for name, init, dim, frozen in runs:
            run = f"{family}/{name}" + (f"@{dim}" if name == "random" else "")
            p = dict(params, embedding_dim=dim, freeze_embeddings=frozen)
            jobs.append({"run": run, "family": family, "init_name": name, "dim": dim, "params": p,
                         "train": fd.train, "vocab": fd.vocab.tolist(), "init": init, "val": val, "test": test,
                         "threads": int(cfg["threads_per_job"]), "log_level": level,
                         "save_dir": str(out / ".models-tmp" / run.replace("/", "__").replace("@", "_"))
                         if cfg["save_models"] != "none" else None})
    return jobs, meta


def _run_jobs(jobs: list[dict[str, Any]], n_jobs: int) -> list[dict[str, Any]]:
    if n_jobs > 1 and len(jobs) > 1:
        import multiprocessing as mp
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp.get_context("spawn")) as ex:
            return list(ex.map(_train_one, jobs))
    return [_train_one(j) for j in jobs]


def _keep_models(cfg: dict[str, Any], families: list[str], results: list[dict[str, Any]], out: Path) -> None:
    """Move the best model per family (``save_models: best``) or every model (``all``) from
    the temporary folder to ``out/models``."""
    tmp_models = out / ".models-tmp"
    if cfg["save_models"] == "none":
        return
    for family in families:
        fr = [r for r in results if r["family"] == family]
        keep = fr if cfg["save_models"] == "all" else [max(fr, key=lambda r: r["best_val_ndcg@20"])]
        for r in keep:
            src = tmp_models / r["run"].replace("/", "__").replace("@", "_")
            dst = out / "models" / (family if cfg["save_models"] == "best" else r["run"].replace("@", "_"))
            if dst.exists():
                shutil.rmtree(dst)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            r["saved_to"] = str(dst)
    shutil.rmtree(tmp_models, ignore_errors=True)


# ------------------------------------------------------------------------------ study
def run_study(config: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """Run the whole study described by ``config`` (a dict or a YAML path); return the results.

    Torch runs with ``threads_per_job`` intra-op threads while the study runs (restored
    afterwards): on a small shared CPU, oversubscribed threads are much slower than one.
    """
    cfg = load_config(config)
    import torch
    prev = torch.get_num_threads()
    torch.set_num_threads(int(cfg["threads_per_job"]))
    try:
        return _run_study(cfg)
    finally:
        torch.set_num_threads(prev)


def _run_study(cfg: dict[str, Any]) -> dict[str, Any]:
    t_start = time.perf_counter()
    out = Path(cfg.get("output") or f"runs/sessions/{cfg['dataset']}")
    check_runnable(cfg)
    check_output(out)
    log_df, root = load_log(cfg)
    specs = [parse_init(n) for n in cfg["inits"]]
    needed = {s["source"] for s in specs if s["source"] != "random"}
    if "multi" in needed and not cfg["embeddings"]["multi"].get("space"):
        needed |= set(cfg["embeddings"]["multi"]["modalities"])
    fam: dict[str, FamilyData] = {}
    for family, fcfg in cfg["families"].items():
        if family not in FAMILIES:
            raise InputError(f"unknown family {family!r} ({', '.join(FAMILIES)})", field="families")
        fam[family] = family_data(family, fcfg, log_df, cfg)
    t_prep = time.perf_counter()
    cache_dir = out / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    base = base_sources(cfg, fam, log_df, root, needed, cache_dir)
    jobs, meta = _plan_jobs(cfg, fam, base, specs, needed, out)
    t_sources = time.perf_counter()
    log.info("%d training runs; data %.0fs, embeddings %.0fs", len(jobs), t_prep - t_start, t_sources - t_prep)
    results = _run_jobs(jobs, int(cfg["jobs"]))
    t_train = time.perf_counter()
    for r in results:
        r["summary"] = summarize({k: np.asarray(v) for k, v in r.pop("per_query").items()},
                                 n_boot=int(cfg["bootstrap"]), random_state=cfg["random_state"])
    _keep_models(cfg, list(fam), results, out)
    timing = {"total_seconds": time.perf_counter() - t_start, "data_seconds": t_prep - t_start,
              "embedding_seconds": t_sources - t_prep, "training_seconds": t_train - t_sources,
              "text_seconds": base.get("_seconds_text")}
    report = {"dataset": cfg["dataset"], "config": {k: v for k, v in cfg.items() if not k.startswith("_")},
              "meta": meta, "timing": timing, "results": results}
    write_json(out / "results.json", strict_json(report))
    write_text(out / "report.md", markdown_report(cfg, meta, results, timing, out))
    log.info("study %s written to %s in %.0fs", cfg["dataset"], out, timing["total_seconds"])
    return report


def overrides(sets: list[str], output: str | None = None) -> dict[str, Any]:
    """``--set KEY=VALUE`` options (values read as YAML) and ``--output`` as config overrides."""
    import yaml
    ov: dict[str, Any] = {}
    for kv in sets:
        if "=" not in kv:
            raise InputError(f"--set needs KEY=VALUE, got {kv!r}", field="set")
        k, v = kv.split("=", 1)
        try:
            ov[k] = yaml.safe_load(v)
        except yaml.YAMLError as e:
            raise InputError(f"--set {kv}: the value is not valid YAML ({str(e).splitlines()[0]})",
                             field="set") from None
    if output:
        ov["output"] = output
    return ov


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m talkrec.sessions.study", description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True, help="YAML config, e.g. configs/sessions-movielens.yaml")
    ap.add_argument("--output", help="output folder (default: config's output or runs/sessions/<dataset>)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value (YAML-parsed), e.g. --set model.max_epochs=2")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("talkrec").setLevel(logging.INFO)
    try:
        rep = run_study(load_config(a.config, overrides(a.set, a.output)))
    except TalkrecError as e:      # bad input, a missing space or file: the message, no traceback
        logging.getLogger(__name__).error("%s", e)
        return 2
    out = Path(rep["config"].get("output") or f"runs/sessions/{rep['dataset']}")
    sys.stdout.write((out / "report.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
