"""The sessions study's inputs: the interaction log, each family's sessions, split and
vocabulary, and the initial item embeddings named by the config's ``inits``.

Initialization names: ``random`` (at ``embeddings.dim``), ``random@D``, a source ``cf``,
``text``, ``audio``, ``multi``, any name listed under ``embeddings.files`` (``.npz`` with
``ids`` and ``X``) or ``space:<kind>`` (a built Space's embedding), optionally followed by
``@native`` (keep the source dimension, projected to the model dimension) and by ``-tuned``
and/or ``-frozen`` (:func:`parse_init`). Relative paths are resolved by
:func:`talkrec.config.resolve_path`.
"""
from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import resolve_path
from ..errors import InputError
from . import data as D
from .sessionize import SessionSet, session_lists, sessionize
from .sources import cf_vectors, multi_vectors, pca_reduce, space_vectors, text_vectors
from .splits import Split, rta_split, user_split
from .tuning import SessionContrastiveTuner

log = logging.getLogger(__name__)

__all__ = ["FamilyData", "base_sources", "family_data", "family_sources", "load_log", "make_init", "parse_init"]


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


def load_log(cfg: dict[str, Any]) -> tuple[pd.DataFrame, str]:
    ds = cfg["dataset"]
    env_root = os.environ.get("TALKREC_DATA")
    root = Path(env_root) if env_root else resolve_path(cfg["data_root"], cfg)
    if ds == "movielens":
        return D.movielens_log(root / "movielens-ml-latest-small"), str(root)
    if ds == "lastfm":
        return D.lastfm_tag_log(root / "lastfm-hetrec2011-2k"), str(root)
    if ds == "log":
        lc = cfg.get("log") or {}
        if "path" not in lc:
            raise InputError("dataset 'log' needs log.path", field="log.path")
        return D.read_log(resolve_path(lc["path"], cfg), user_col=lc.get("user_col", "user_id"),
                          item_col=lc.get("item_col", "item_id"), time_col=lc.get("time_col", "timestamp")), str(root)
    raise InputError(f"unknown dataset {ds!r} (movielens, lastfm or log)", field="dataset")


def family_data(family: str, fcfg: dict[str, Any], log_df: pd.DataFrame, cfg: dict[str, Any]) -> FamilyData:
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


def heldout_events(fd: FamilyData) -> pd.DataFrame:
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


def base_sources(cfg: dict[str, Any], fam: dict[str, FamilyData], log_df: pd.DataFrame, root: str,
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
            held = pd.concat([heldout_events(f) for f in fam.values()], ignore_index=True)
            texts = D.lastfm_texts(Path(root) / "lastfm-hetrec2011-2k", log_df, exclude_events=held)
        else:
            tp = (cfg.get("log") or {}).get("texts")
            if not tp:
                raise InputError("a text initialization needs log.texts (CSV with item_id,text)", field="log.texts")
            t = pd.read_csv(resolve_path(tp, cfg), dtype=str, keep_default_na=False)
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
            z = np.load(resolve_path(path, cfg), allow_pickle=False)
            out[name] = (np.asarray(z["ids"]).astype(str), np.asarray(z["X"], dtype=np.float32))
    for src in needed:
        if src.startswith("space:"):
            if not ec.get("space"):
                raise InputError(f"{src} needs embeddings.space (a built Space folder)", field="embeddings.space")
            out[src] = space_vectors(resolve_path(ec["space"], cfg), src.split(":", 1)[1])
    return out


def family_sources(cfg: dict[str, Any], fd: FamilyData, base: dict[str, Any], needed: set[str]) -> dict[str, Any]:
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
            out["multi"] = space_vectors(resolve_path(mc["space"], cfg), "multi")
        else:
            mods = {m: out[m] for m in mc["modalities"] if m in out}
            out["multi"] = multi_vectors(mods, fd.vocab, out_dim=int(mc["out_dim"]), max_epochs=int(mc["max_epochs"]),
                                         random_state=rs)
    return out


def make_init(spec: dict[str, Any], sources: dict[str, Any], fd: FamilyData, cfg: dict[str, Any],
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
