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

from ..config import check_keys, resolve_path
from ..errors import InputError, did_you_mean
from . import data as D
from .sessionize import SessionSet, session_lists, sessionize
from .sources import cf_vectors, multi_vectors, pca_reduce, space_vectors, text_vectors
from .splits import Split, rta_split, user_split
from .tuning import SessionContrastiveTuner

log = logging.getLogger(__name__)

__all__ = ["FamilyData", "base_sources", "check_runnable", "check_settings", "family_data", "family_sources",
           "load_log", "make_init", "parse_init"]


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
                          item_col=lc.get("item_col", "item_id"), time_col=lc.get("time_col", "timestamp"),
                          sep=lc.get("sep")), str(root)
    raise InputError(f"unknown dataset {ds!r} (movielens, lastfm or log)", field="dataset")


def _log_name(cfg: dict[str, Any]) -> str:
    return str((cfg.get("log") or {}).get("path")) if cfg["dataset"] == "log" else f"the {cfg['dataset']} log"


def family_data(family: str, fcfg: dict[str, Any], log_df: pd.DataFrame, cfg: dict[str, Any]) -> FamilyData:
    sc = cfg["sessions"]
    ev = sessionize(log_df, gap_seconds=int(round(float(sc["gap_minutes"]) * 60)), min_length=int(sc["min_length"]),
                    remove_repeats=bool(fcfg.get("remove_repeats", False)))
    if ev.empty:
        raise InputError(f"no session has at least {sc['min_length']} items ({len(log_df)} events of "
                         f"{log_df['user_id'].nunique()} users, a new session after a gap of more than "
                         f"{sc['gap_minutes']} minutes{', repeats removed' if fcfg.get('remove_repeats') else ''}): "
                         "raise sessions.gap_minutes or lower sessions.min_length", path=_log_name(cfg),
                         field="sessions.min_length")
    ss = session_lists(ev)
    rs = cfg["random_state"]
    try:
        if fcfg["split"] == "user":
            sp = user_split(ss, fractions=tuple(fcfg.get("fractions", (0.7, 0.15, 0.15))),
                            shuffle=bool(fcfg.get("shuffle", True)), random_state=rs)
        else:
            sp = rta_split(ss, n_validation=int(fcfg["n_validation"]), n_test=int(fcfg["n_test"]),
                           min_length=int(fcfg.get("min_length", 21)), random_state=rs)
    except InputError as e:   # name the family's setting (and the log) instead of the function's argument
        msg = str(e).removeprefix(f"field '{e.field}': ")
        raise InputError(f"{msg} ({len(ss)} sessions of {_log_name(cfg)})", path=cfg.get("_config_path"),
                         field=f"families.{family}.{e.field}" if e.field != "user_id" else f"families.{family}.split"
                         ) from None
    counts = pd.Series([x for s in sp.train.items for x in s]).value_counts()
    vocab = np.sort(counts.index[counts >= int(cfg["min_item_count"])].to_numpy(dtype=str))
    keep = set(vocab.tolist())
    train = [[x for x in s if x in keep] for s in sp.train.items]
    train = [s for s in train if len(s) >= 2]
    if not train:
        raise InputError(f"no training session of family {family!r} has two items that occur at least "
                         f"{cfg['min_item_count']} times in its {len(sp.train)} training sessions: lower min_item_count",
                         path=cfg.get("_config_path"), field="min_item_count")
    return FamilyData(family, fcfg, ev, ss, sp, vocab, train)


def heldout_events(fd: FamilyData) -> pd.DataFrame:
    held = set(fd.split.validation.ids.tolist()) | set(fd.split.test.ids.tolist())
    return fd.events[fd.events["session_id"].isin(held)][["user_id", "item_id", "timestamp"]]


# ------------------------------------------------------------------------------ settings
#: a ``dataset: log`` block's keys
LOG_KEYS = frozenset({"path", "user_col", "item_col", "time_col", "texts", "sep"})
#: built-in embedding sources (besides ``embeddings.files`` names and ``space:<kind>``)
SOURCES = ("cf", "text", "audio", "multi")


def _integer(value: Any, lo: int, *, none: bool = False) -> bool:
    return (none and value is None) or (isinstance(value, (int, np.integer)) and not isinstance(value, bool)
                                        and value >= lo)


def check_settings(cfg: dict[str, Any], path: str | None = None) -> None:
    """The study's values, before any work: :class:`InputError` naming the setting (dotted)
    and the config file for a wrong type or range, an unknown family, split, task or
    initialization source, and the models' hyperparameters (checked by their classes)."""
    def bad(field: str, expected: str) -> None:
        value = cfg
        for k in field.split("."):
            value = value.get(k) if isinstance(value, dict) else None
        raise InputError(f"must be {expected}, got {value!r}", path=path, field=field)

    for block in ("sessions", "model", "masked", "next_item", "embeddings", "families"):
        if not isinstance(cfg.get(block), dict):
            bad(block, "a mapping of settings")
    for key, lo, none in (("jobs", 1, False), ("threads_per_job", 1, False), ("bootstrap", 1, False),
                          ("min_item_count", 0, False), ("random_state", 0, True), ("sessions.min_length", 1, False),
                          ("embeddings.dim", 1, True)):
        block, _, name = key.rpartition(".")
        if not _integer((cfg[block] if block else cfg).get(name), lo, none=none):
            bad(key, f"an integer >= {lo}" + (" or null" if none else ""))
    if cfg["embeddings"].get("dim") is None and cfg["model"].get("d_model") is None:
        bad("embeddings.dim", "an integer >= 1 when model.d_model is null (the random baseline's size)")
    if not isinstance(cfg["embeddings"].get("files") or {}, dict):
        bad("embeddings.files", "a mapping of initialization names to .npz files")
    g = cfg["sessions"].get("gap_minutes")
    if isinstance(g, bool) or not isinstance(g, (int, float)) or not np.isfinite(g) or g < 0:
        bad("sessions.gap_minutes", "a number of minutes >= 0")
    for key, options in (("save_models", ("best", "all", "none")), ("dataset", ("movielens", "lastfm", "log"))):
        if cfg.get(key) not in options:
            bad(key, " or ".join(options))
    if cfg["dataset"] == "log":
        if not isinstance(cfg.get("log"), dict) or not cfg["log"].get("path"):
            raise InputError("dataset 'log' needs log.path (the log file)", path=path, field="log.path")
        check_keys(cfg["log"], LOG_KEYS, where="log", path=path)
    _check_inits(cfg, path, bad)
    _check_families(cfg, path, bad)


def _check_inits(cfg: dict[str, Any], path: str | None, bad: Any) -> None:
    inits = cfg.get("inits")
    if isinstance(inits, str) or not isinstance(inits, list) or not inits or \
            not all(isinstance(x, str) for x in inits):
        bad("inits", "a non-empty list of initialization names (e.g. [random, cf, text-tuned])")
    files = cfg["embeddings"].get("files") or {}
    known = [*SOURCES, *map(str, files)]
    for name in inits:
        src = parse_init(name)["source"]
        if src != "random" and not src.startswith("space:") and src not in known:
            raise InputError(f"unknown initialization source {src!r} in {name!r}{did_you_mean(src, known)} "
                             f"(known: random, {', '.join(known)}, space:<kind>; a file's name is listed under "
                             "embeddings.files)", path=path, field="inits")


def _check_families(cfg: dict[str, Any], path: str | None, bad: Any) -> None:
    """Each family's settings that are given; :func:`check_runnable` adds what a run needs."""
    from .models import FAMILIES
    for name, fc in cfg["families"].items():
        where = f"families.{name}"
        if not isinstance(fc, dict):
            bad(where, "a mapping of the family's settings")
        if fc.get("split") not in ("user", "rta"):
            bad(f"{where}.split", "user or rta")
        if fc.get("task", "last_item") not in ("last_item", "continuation"):
            bad(f"{where}.task", "last_item or continuation")
        for key, lo in (("n_validation", 1), ("n_test", 1), ("min_length", 2)):
            if key in fc and not _integer(fc[key], lo):
                bad(f"{where}.{key}", f"an integer >= {lo}")
        if name not in FAMILIES:
            continue
        params = {**cfg["model"], **cfg[name], "random_state": cfg["random_state"]}
        try:
            FAMILIES[name](**params)._check_params()
        except InputError as e:
            raise InputError(str(e).removeprefix(f"field '{e.field}': "), path=path,
                             field=f"{name if e.field in cfg[name] else 'model'}.{e.field}") from None


def check_runnable(cfg: dict[str, Any]) -> None:
    """What running the study needs beyond :func:`check_settings`: at least one family, each
    one of the model families, an ``rta`` split with its counts."""
    from .models import FAMILIES
    path = cfg.get("_config_path")
    if not cfg["families"]:
        raise InputError(f"no family to run (give at least one of {', '.join(FAMILIES)})", path=path,
                         field="families")
    for name, fc in cfg["families"].items():
        if name not in FAMILIES:
            raise InputError(f"unknown family{did_you_mean(str(name), FAMILIES)} (known: {', '.join(FAMILIES)})",
                             path=path, field=f"families.{name}")
        for key in ("n_validation", "n_test") if fc["split"] == "rta" else ():
            if key not in fc:
                raise InputError(f"an rta split needs {key} (an integer >= 1)", path=path,
                                 field=f"families.{name}.{key}")


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
            texts = _texts_csv(resolve_path(tp, cfg))
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
            out[name] = _npz_vectors(resolve_path(path, cfg), f"embeddings.files.{name}")
    for src in needed:
        if src.startswith("space:"):
            if not ec.get("space"):
                raise InputError(f"{src} needs embeddings.space (a built Space folder)", field="embeddings.space")
            out[src] = space_vectors(resolve_path(ec["space"], cfg), src.split(":", 1)[1])
    files = ec.get("files") or {}
    for name, v in out.items():
        if not name.startswith("_"):
            _check_overlap(name, v[0], all_vocab, user_given=ds == "log" or name not in SOURCES,
                           path=str(resolve_path(files[name], cfg)) if name in files else None)
    return out


def _npz_vectors(path: Path, field: str) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, X)`` of an ``.npz`` embedding file; :class:`InputError` naming it when it is not one."""
    if not path.is_file():
        raise InputError("embedding file not found", path=str(path), field=field)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("ids", "X") if k not in z.files]
            if missing:
                raise InputError(f"an embedding file needs arrays 'ids' and 'X'; it has {', '.join(z.files) or 'none'}",
                                 path=str(path), field=field)
            raw, X = np.asarray(z["ids"]), np.asarray(z["X"], dtype=np.float32)
            whole = raw.dtype.kind == "f" and bool(np.isfinite(raw).all()) and bool((raw == np.floor(raw)).all())
            ids = (raw.astype(np.int64) if whole else raw).astype(str)   # 7.0 -> '7', as the log's ids
    except InputError:
        raise
    except (ValueError, OSError, TypeError) as e:
        why = "" if "pickle" in str(e) else f": {e}"      # never suggest loading pickles
        raise InputError(f"not a readable .npz embedding file (np.savez(path, ids=..., X=...)){why}", path=str(path),
                         field=field) from None
    if X.ndim != 2 or len(ids) != len(X):
        raise InputError(f"'X' must be a matrix with one row per id: {len(ids)} ids, X of shape {X.shape}",
                         path=str(path), field=field)
    return ids, X


def _texts_csv(path: Path) -> pd.Series:
    """``item_id -> text`` from a CSV with columns ``item_id`` and ``text``."""
    if not path.is_file():
        raise InputError("texts file not found", path=str(path), field="log.texts")
    try:
        t = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError) as e:
        raise InputError(f"cannot be read as CSV: {e}", path=str(path), field="log.texts") from None
    for c in ("item_id", "text"):
        if c not in t.columns:
            raise InputError(f"missing column '{c}' (a texts file has item_id,text); it has {', '.join(t.columns)}",
                             path=str(path), field="log.texts")
    return pd.Series(t["text"].to_numpy(), index=t["item_id"].astype(str).str.strip().to_numpy())


def _check_overlap(name: str, ids: np.ndarray, vocab: list[str], *, user_given: bool, path: str | None) -> None:
    """An embedding that covers none of the log's items would silently be a second random
    baseline: an error for the user's own sources (ids written differently, e.g. '7' / '7.0'
    / 'i7'), a warning below half of the vocabulary."""
    if not vocab:
        return
    have = set(np.asarray(ids).astype(str).tolist())
    n = sum(1 for v in vocab if v in have)
    if n == 0 and user_given:
        raise InputError(f"the embedding {name!r} has a vector for none of the log's {len(vocab)} items (its ids look "
                         f"like {', '.join(map(repr, sorted(have)[:3]))}; the log's like "
                         f"{', '.join(map(repr, vocab[:3]))})", path=path, field=f"inits.{name}")
    if n < len(vocab) / 2:
        log.warning("embedding %r covers %d of %d vocabulary items (%.0f%%): the rest start random", name, n,
                    len(vocab), 100.0 * n / len(vocab))


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
