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
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import os
import re
import shutil
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._atomic import write_json, write_text
from ..errors import InputError
from . import data as D
from .evaluate import KS, METRICS, continuation_task, evaluate_scores, last_item_task, summarize
from .models import FAMILIES
from .sessionize import SessionSet, session_lists, sessionize
from .sources import cf_vectors, multi_vectors, pca_reduce, space_vectors, text_vectors
from .splits import Split, rta_split, user_split
from .tuning import SessionContrastiveTuner

log = logging.getLogger(__name__)

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


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict) and k != "families":
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then the YAML file, then ``overrides`` (dotted keys allowed: ``"model.max_epochs"``)."""
    import yaml
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise InputError("config file not found", path=str(p))
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise InputError(f"not valid YAML: {e}", path=str(p)) from e
        if not isinstance(raw, dict):
            raise InputError("a config must be a mapping", path=str(p))
        cfg = _merge(cfg, raw)
        cfg["_config_dir"] = str(p.resolve().parent)
    for k, v in (overrides or {}).items():
        node = cfg
        parts = k.split(".")
        for q in parts[:-1]:
            node = node.setdefault(q, {})
        node[parts[-1]] = v
    return cfg


def _resolve(path: str | Path, cfg: Mapping[str, Any]) -> Path:
    """A relative path is taken from the working directory, else from the repository root
    (the folder above the config file's folder)."""
    p = Path(os.path.expanduser(str(path)))
    if p.is_absolute() or p.exists() or "_config_dir" not in cfg:
        return p
    alt = Path(cfg["_config_dir"]).parent / p
    return alt if alt.exists() else p


# ---------------------------------------------------------------------------------- data
@dataclass
class FamilyData:
    family: str
    cfg: dict[str, Any]
    events: pd.DataFrame          # sessionize output
    sessions: SessionSet
    split: Split
    vocab: np.ndarray
    train: list[list[str]]


def _load_log(cfg: dict[str, Any]) -> tuple[pd.DataFrame, str]:
    ds = cfg["dataset"]
    env_root = os.environ.get("TALKREC_DATA")
    root = Path(env_root) if env_root else _resolve(cfg["data_root"], cfg)
    if ds == "movielens":
        return D.movielens_log(root / "movielens-ml-latest-small"), str(root)
    if ds == "lastfm":
        return D.lastfm_tag_log(root / "lastfm-hetrec2011-2k"), str(root)
    if ds == "log":
        lc = cfg.get("log") or {}
        if "path" not in lc:
            raise InputError("dataset 'log' needs log.path", field="log.path")
        return D.read_log(_resolve(lc["path"], cfg), user_col=lc.get("user_col", "user_id"),
                          item_col=lc.get("item_col", "item_id"), time_col=lc.get("time_col", "timestamp")), str(root)
    raise InputError(f"unknown dataset {ds!r} (movielens, lastfm or log)", field="dataset")


def _family_data(family: str, fcfg: dict[str, Any], log_df: pd.DataFrame, cfg: dict[str, Any]) -> FamilyData:
    sc = cfg["sessions"]
    ev = sessionize(log_df, gap_seconds=int(round(float(sc["gap_minutes"]) * 60)), min_length=int(sc["min_length"]),
                    remove_repeats=bool(fcfg.get("remove_repeats", False)))
    ss = session_lists(ev)
    rs = cfg["random_state"]
    if fcfg["split"] == "user":
        sp = user_split(ss, fractions=tuple(fcfg.get("fractions", (0.7, 0.15, 0.15))),
                        shuffle=bool(fcfg.get("shuffle", True)), random_state=rs)
    elif fcfg["split"] == "rta":
        sp = rta_split(ss, n_validation=int(fcfg["n_validation"]), n_test=int(fcfg["n_test"]),
                       min_length=int(fcfg.get("min_length", 21)), random_state=rs)
    else:
        raise InputError(f"unknown split {fcfg['split']!r} (user or rta)", field=f"families.{family}.split")
    counts = pd.Series([x for s in sp.train.items for x in s]).value_counts()
    vocab = np.sort(counts.index[counts >= int(cfg["min_item_count"])].to_numpy(dtype=str))
    keep = set(vocab.tolist())
    train = [[x for x in s if x in keep] for s in sp.train.items]
    train = [s for s in train if len(s) >= 2]
    return FamilyData(family, fcfg, ev, ss, sp, vocab, train)


def _heldout_events(fd: FamilyData) -> pd.DataFrame:
    held = set(fd.split.validation.ids.tolist()) | set(fd.split.test.ids.tolist())
    return fd.events[fd.events["session_id"].isin(held)][["user_id", "item_id", "timestamp"]]


# --------------------------------------------------------------------------- init specs
_SPEC = re.compile(r"^(?P<src>random|space:[\w.-]+|[A-Za-z_][\w.]*?)(?:@(?P<dim>native|\d+))?"
                   r"(?P<tuned>-tuned)?(?P<frozen>-frozen)?$")


def parse_init(name: str) -> dict[str, Any]:
    m = _SPEC.match(name.strip())
    if not m:
        raise InputError(f"bad initialization name {name!r} (e.g. random, random@384, text, text-tuned, "
                         "text@native-frozen, space:multi)", field="inits")
    d = m.group("dim")
    if m.group("src") == "random" and (m.group("tuned") or d == "native"):
        raise InputError(f"{name!r}: random cannot be tuned or native", field="inits")
    return {"name": name.strip(), "source": m.group("src"), "dim": d, "tuned": bool(m.group("tuned")),
            "frozen": bool(m.group("frozen"))}


def _base_sources(cfg: dict[str, Any], fam: dict[str, FamilyData], log_df: pd.DataFrame, root: str,
                  needed: set[str], cache_dir: Path) -> dict[str, Any]:
    """Family-independent sources: text and audio (and files / space kinds)."""
    ec = cfg["embeddings"]
    out: dict[str, Any] = {}
    ds = cfg["dataset"]
    all_vocab = sorted(set().union(*[set(f.vocab.tolist()) for f in fam.values()]))
    if "text" in needed:
        t0 = time.perf_counter()
        if ds == "movielens":
            texts = D.movielens_texts(Path(root) / "movielens-ml-latest-small")
        elif ds == "lastfm":
            held = pd.concat([_heldout_events(f) for f in fam.values()], ignore_index=True)
            texts = D.lastfm_texts(Path(root) / "lastfm-hetrec2011-2k", log_df, exclude_events=held)
        else:
            tp = (cfg.get("log") or {}).get("texts")
            if not tp:
                raise InputError("a text initialization needs log.texts (CSV with item_id,text)", field="log.texts")
            t = pd.read_csv(_resolve(tp, cfg), dtype=str, keep_default_na=False)
            texts = pd.Series(t["text"].to_numpy(), index=t["item_id"].astype(str).to_numpy())
        out["text"] = text_vectors(texts, all_vocab, model=ec["text"]["model"], cache_dir=cache_dir)
        out["_seconds_text"] = time.perf_counter() - t0
        log.info("text vectors: %d items in %.1fs", len(out["text"][0]), out["_seconds_text"])
    if "audio" in needed:
        if ds == "lastfm" and ec.get("audio"):
            a = D.lastfm_audio(Path(root) / "lastfm-hetrec2011-2k", Path(root) / "spotify-artist-audio-features")
            if a is not None:
                out["audio"] = a
        if "audio" not in out:
            log.warning("no audio vectors for dataset %r: audio initializations are skipped", ds)
    for name, path in (ec.get("files") or {}).items():
        if name in needed:
            z = np.load(_resolve(path, cfg), allow_pickle=False)
            out[name] = (np.asarray(z["ids"]).astype(str), np.asarray(z["X"], dtype=np.float32))
    for src in needed:
        if src.startswith("space:"):
            if not ec.get("space"):
                raise InputError(f"{src} needs embeddings.space (a built Space folder)", field="embeddings.space")
            out[src] = space_vectors(_resolve(ec["space"], cfg), src.split(":", 1)[1])
    return out


def _family_sources(cfg: dict[str, Any], fd: FamilyData, base: dict[str, Any], needed: set[str]) -> dict[str, Any]:
    ec = cfg["embeddings"]
    rs = cfg["random_state"]
    out = {k: v for k, v in base.items() if not k.startswith("_")}
    if "cf" in needed or ("multi" in needed and "cf" in ec["multi"]["modalities"]):
        c = ec["cf"]
        out["cf"] = cf_vectors(fd.train, fd.vocab, factors=int(c["factors"]), regularization=float(c["regularization"]),
                               alpha=float(c["alpha"]), iterations=int(c["iterations"]), random_state=rs)
    if "multi" in needed:
        mc = ec["multi"]
        if mc.get("space"):
            out["multi"] = space_vectors(_resolve(mc["space"], cfg), "multi")
        else:
            mods = {m: out[m] for m in mc["modalities"] if m in out}
            out["multi"] = multi_vectors(mods, fd.vocab, out_dim=int(mc["out_dim"]), max_epochs=int(mc["max_epochs"]),
                                         random_state=rs)
    return out


def _make_init(spec: dict[str, Any], sources: dict[str, Any], fd: FamilyData, cfg: dict[str, Any],
               cache: dict[str, Any]) -> tuple[tuple[np.ndarray, np.ndarray] | None, int] | None:
    """``(ids, matrix)`` or None for random, and the embedding dimension; None if unavailable."""
    dim_default = int(cfg["embeddings"]["dim"] or cfg["model"]["d_model"])
    if spec["source"] == "random":
        return None, int(spec["dim"]) if spec["dim"] else dim_default
    src = spec["source"]
    if src not in sources:
        return None
    key = f"{src}@{spec['dim']}{'-tuned' if spec['tuned'] else ''}"
    if key not in cache:
        v = sources[src]
        if spec["dim"] != "native":
            v = pca_reduce(v, int(spec["dim"]) if spec["dim"] else dim_default, random_state=cfg["random_state"])
        if spec["tuned"]:
            tc = cfg["embeddings"]["tuning"]
            tuner = SessionContrastiveTuner(epochs=int(tc["epochs"]), hidden_dim=int(tc["hidden_dim"]),
                                            random_state=cfg["random_state"]).fit(v[0], v[1], fd.train)
            v = (v[0], tuner.transform(v[1]))
        cache[key] = v
    v = cache[key]
    return v, int(v[1].shape[1])


# ---------------------------------------------------------------------------- training
def _task(fd: FamilyData, which: str):
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


def _popularity(fd: FamilyData, task) -> dict[str, np.ndarray]:
    cnt = pd.Series([x for s in fd.train for x in s]).value_counts()
    pop = cnt.reindex(fd.vocab).fillna(0).to_numpy(np.float32)
    return evaluate_scores(lambda ctx: np.tile(pop, (len(ctx), 1)), task, ks=KS)


# ------------------------------------------------------------------------------ report
def _fmt(s: dict[str, float]) -> str:
    return f"{s['mean']:.4f} [{s['lo']:.4f}, {s['hi']:.4f}]"


def _table(rows: list[dict[str, Any]]) -> str:
    cols = [f"{m}@{k}" for k in KS for m in METRICS]
    head = "| Initialization | d | " + " | ".join(c.replace("ndcg", "NDCG").replace("map", "MAP")
                                                   .replace("recall", "Recall") for c in cols) + " | best epoch | train s |"
    lines = [head, "|" + "---|" * (len(cols) + 4)]
    for r in rows:
        lines.append(f"| {r['init']} | {r['dim'] if r['dim'] else '-'} | "
                     + " | ".join(_fmt(r["summary"][c]) for c in cols)
                     + f" | {r.get('best_epoch', '-')} | {r['fit_seconds']:.0f} |")
    return "\n".join(lines)


def _curves(results: list[dict[str, Any]], family: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for r in results:
        h = [x for x in r.get("history", []) if "val_ndcg@20" in x]
        if not h:
            continue
        lbl = f"{r['init']} (d={r['dim']})"
        axes[0].plot([x["epoch"] for x in h], [x["val_ndcg@20"] for x in h], marker="o", ms=3, label=lbl)
        tl = [x for x in h if np.isfinite(x.get("train_loss", np.nan))]
        axes[1].plot([x["epoch"] for x in tl], [x["train_loss"] for x in tl], marker="o", ms=3, label=lbl)
    axes[0].set(xlabel="epoch", ylabel="validation NDCG@20", title=f"{family}: validation NDCG@20")
    axes[1].set(xlabel="epoch", ylabel="training loss", title=f"{family}: training loss")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_name("." + path.name)
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    os.replace(tmp, path)


FAMILY_TITLES = {"masked": "Masked-item model (T4Rec / BERT4Rec style), last-item task, user-disjoint split "
                           "(shape of paper 002 Table 5.2)",
                 "next_item": "Causal next-item model (RTA style), continuation task from 1-10 items, "
                              "sampled-long-session split (shape of paper 002 Table 5.3)"}


def run_study(config: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """Run the whole study described by ``config`` (a dict or a YAML path); return the results.

    Torch runs with ``threads_per_job`` intra-op threads while the study runs (restored
    afterwards): on a small shared CPU, oversubscribed threads are much slower than one.
    """
    cfg = load_config(config) if isinstance(config, (str, Path)) else _merge(DEFAULTS, config)
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
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = out / "cache"
    cache_dir.mkdir(exist_ok=True)
    log_df, root = _load_log(cfg)
    specs = [parse_init(n) for n in cfg["inits"]]
    needed = {s["source"] for s in specs if s["source"] != "random"}
    if "multi" in needed and not cfg["embeddings"]["multi"].get("space"):
        needed |= set(cfg["embeddings"]["multi"]["modalities"])
    fam: dict[str, FamilyData] = {}
    for family, fcfg in cfg["families"].items():
        if family not in FAMILIES:
            raise InputError(f"unknown family {family!r} ({', '.join(FAMILIES)})", field="families")
        fam[family] = _family_data(family, fcfg, log_df, cfg)
    t_prep = time.perf_counter()
    base = _base_sources(cfg, fam, log_df, root, needed, cache_dir)
    jobs: list[dict[str, Any]] = []
    meta: dict[str, Any] = {"families": {}}
    level = logging.getLogger("talkrec").getEffectiveLevel()
    for family, fd in fam.items():
        sources = _family_sources(cfg, fd, base, needed)
        val, test = _task(fd, "validation"), _task(fd, "test")
        params = {**cfg["model"], **cfg.get(family, {}), "random_state": cfg["random_state"], "verbose": False}
        cache: dict[str, Any] = {}
        runs: list[tuple[str, Any, int, bool]] = []
        dims_used = set()
        skipped = []
        for s in specs:
            made = _make_init(s, sources, fd, cfg, cache)
            if made is None:
                skipped.append(s["name"])
                continue
            init, dim = made
            dims_used.add(dim)
            runs.append((s["name"] if s["source"] != "random" else f"random", init, dim, s["frozen"]))
        for d in sorted(dims_used):   # a random baseline at every dimension used (paper 002 5.1.1)
            if not any(r[1] is None and r[2] == d for r in runs):
                runs.append(("random", None, d, False))
        runs.sort(key=lambda r: (r[2], r[1] is not None, r[0]))
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
    t_sources = time.perf_counter()
    log.info("%d training runs; data %.0fs, embeddings %.0fs", len(jobs), t_prep - t_start, t_sources - t_prep)
    if int(cfg["jobs"]) > 1 and len(jobs) > 1:
        import multiprocessing as mp
        with ProcessPoolExecutor(max_workers=int(cfg["jobs"]), mp_context=mp.get_context("spawn")) as ex:
            results = list(ex.map(_train_one, jobs))
    else:
        results = [_train_one(j) for j in jobs]
    t_train = time.perf_counter()
    # summaries, best model per family, report
    for r in results:
        r["summary"] = summarize({k: np.asarray(v) for k, v in r.pop("per_query").items()},
                                 n_boot=int(cfg["bootstrap"]), random_state=cfg["random_state"])
    tmp_models = out / ".models-tmp"
    if cfg["save_models"] != "none":
        for family in fam:
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
    timing = {"total_seconds": time.perf_counter() - t_start, "data_seconds": t_prep - t_start,
              "embedding_seconds": t_sources - t_prep, "training_seconds": t_train - t_sources,
              "text_seconds": base.get("_seconds_text")}
    report = {"dataset": cfg["dataset"], "config": {k: v for k, v in cfg.items() if not k.startswith("_")},
              "meta": meta, "timing": timing, "results": results}
    md = [f"# Session study: {cfg['dataset']}", ""]
    for family in fam:
        m = meta["families"][family]
        fr = [r for r in results if r["family"] == family]
        md += [f"## {FAMILY_TITLES.get(family, family)}", "",
               f"Vocabulary {m['vocabulary']} items (>= {cfg['min_item_count']} training occurrences); "
               f"{m['train_sessions_in_vocab']} training sessions; {m['validation_queries']} validation and "
               f"{m['test_queries']} test queries. Mean [95% bootstrap interval] over test queries; best "
               f"checkpoint on validation NDCG@20.", "",
               _table(fr + [{"init": "popularity (no model)", "dim": None, "summary": m["popularity"],
                             "fit_seconds": 0.0, "best_epoch": "-"}]), "",
               f"![learning curves](curves-{family}.png)", ""]
        if m["skipped_inits"]:
            md += [f"Skipped (no such embedding for this dataset): {', '.join(m['skipped_inits'])}", ""]
        _curves(fr, family, out / f"curves-{family}.png")
    md += [f"Total {timing['total_seconds']:.0f} s (data {timing['data_seconds']:.0f} s, embeddings "
           f"{timing['embedding_seconds']:.0f} s, training + evaluation {timing['training_seconds']:.0f} s, "
           f"{cfg['jobs']} parallel job(s))."]
    write_json(out / "results.json", report)
    write_text(out / "report.md", "\n".join(md) + "\n")
    log.info("study %s written to %s in %.0fs", cfg["dataset"], out, timing["total_seconds"])
    return report


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
    import yaml
    ov = {}
    for kv in a.set:
        if "=" not in kv:
            raise SystemExit(f"--set needs KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        ov[k] = yaml.safe_load(v)
    if a.output:
        ov["output"] = a.output
    try:
        rep = run_study(load_config(a.config, ov))
    except InputError as e:
        logging.getLogger(__name__).error("%s", e)
        return 2
    out = Path(rep["config"].get("output") or f"runs/sessions/{rep['dataset']}")
    sys.stdout.write((out / "report.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
