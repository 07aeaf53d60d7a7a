"""The stages of ``talkrec build``: catalog, descriptions, text, cf, content, fusion, index.

Each stage function runs under the build's :class:`~.cache.StageTimer`, records what it did
in the stage's info dict, and caches expensive outputs in the build folder
(:class:`~.cache.Cache`, keyed by :func:`~.cache.content_hash` of inputs and settings).
"""
from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._atomic import atomic_dir, write_json
from ..config import resolve_path
from ..data.catalog import Catalog
from ..device import free_cores, give_back_memory
from ..errors import InputError
from .cache import Cache, StageTimer, content_hash
from .reindex import index_settings

log = logging.getLogger(__name__)


def load_dataset(cfg: Mapping[str, Any]) -> Catalog:
    root = Path(os.environ["TALKREC_DATA"]) if os.environ.get("TALKREC_DATA") else resolve_path(cfg["data_root"], cfg)
    ds = cfg.get("dataset", "generic")
    if ds == "lastfm":
        from ..data.datasets.lastfm import load_lastfm
        from ..descriptions.categories import TagCategorizer
        return load_lastfm(root / "lastfm-hetrec2011-2k", min_tag_users=int(cfg.get("min_tag_users", 1)),
                           categorizer=TagCategorizer(cfg.get("tag_categories")))
    if ds == "movielens":
        from ..data.datasets.movielens import load_movielens
        return load_movielens(root / "movielens-ml-latest-small")
    if ds == "generic":
        from ..data.io import load_catalog
        from ..descriptions.categories import TagCategorizer
        if "catalog" not in cfg:
            raise InputError("a generic dataset needs a 'catalog' block (items, tags, interactions, vectors...)",
                             field="catalog")
        base = Path(cfg.get("_config_path", ".")).parent
        return load_catalog(cfg["catalog"], base=base, categorizer=TagCategorizer(cfg.get("tag_categories")))
    raise InputError(f"unknown dataset {ds!r}; expected lastfm, movielens or generic", field="dataset")


def subsample(c: Catalog, n: int, seed: int) -> Catalog:
    """Keep the ``n`` most-interacted items (for quick builds and tests)."""
    if c.interactions is not None and len(c.interactions):
        pop = c.interactions.groupby("item_id").size()
        order = c.items["item_id"].map(pop).fillna(0).to_numpy()
        keep = set(c.items["item_id"].to_numpy()[np.argsort(-order, kind="stable")[:n]])
    else:
        keep = set(c.items["item_id"].sample(n=min(n, len(c.items)), random_state=seed))
    from ..data.catalog import VectorTable
    items = c.items[c.items["item_id"].isin(keep)]
    vectors = {}
    for m, v in c.vectors.items():
        mask = np.isin(v.ids, list(keep))
        vectors[m] = VectorTable(v.ids[mask], v.X[mask])
    inter = c.interactions[c.interactions["item_id"].isin(keep)] if c.interactions is not None else None
    return Catalog(items=items, tags=c.tags[c.tags["item_id"].isin(keep)], interactions=inter,
                   texts={k: s[s.index.isin(keep)] for k, s in c.texts.items()}, vectors=vectors,
                   media={k: s[s.index.isin(keep)] for k, s in c.media.items()}, name=c.name, report=c.report)


@dataclass
class Built:
    """What the stages made, as the index stage writes it into the space folder."""

    catalog: Catalog
    data_key: str
    describer: Any
    views: dict[str, dict[str, str]]
    text_encoder: Any
    cf_encoder: Any
    inputs: dict[str, Any]                       # modality -> item matrix (a list of views for text)
    scalers: dict[str, dict[str, list[float]]]
    ease: Any = None                             # the EASE model (None: no interactions or disabled)
    weights: dict[str, float] | None = None      # modality weights of the fused mean


def catalog_stage(cfg: Mapping[str, Any], catalog: Catalog | None, timer: StageTimer, seed: int) -> Catalog:
    """The catalog (from the config's dataset, or the one given), checked, maybe subsampled."""
    with timer.stage("catalog") as info:
        if catalog is None:
            catalog = load_dataset(cfg)
        check_catalog(catalog)
        if cfg.get("max_items"):
            catalog = subsample(catalog, int(cfg["max_items"]), seed)
        info.update(catalog.summary())
        info.update({k: v for k, v in catalog.report.items() if k.endswith("_dropped")})
    return catalog


def check_catalog(catalog: Catalog) -> None:
    """What every catalog must satisfy, however it was made (files, adapters, Python):
    finite interaction weights of at least 0 and vectors only of the catalog's items."""
    from ..data.io import check_weights, known_rows
    known = set(catalog.item_ids.tolist())
    if catalog.interactions is not None:
        check_weights(catalog.interactions.reset_index(drop=True), path="catalog.interactions")
    for m, vt in catalog.vectors.items():
        known_rows(pd.DataFrame({"item_id": vt.ids}), "item_id", known, path=f"catalog.vectors[{m!r}]", policy="error")


def descriptions_stage(cfg: Mapping[str, Any], catalog: Catalog, cache: Cache, timer: StageTimer,
                       show_progress: bool) -> tuple[Any, dict[str, dict[str, str]]]:
    """The template description of every item, plus an optional second view (GEN or a text column)."""
    from ..descriptions.template import TemplateDescriber

    with timer.stage("descriptions") as info:
        dcfg = cfg["descriptions"]
        describer = TemplateDescriber(**dcfg.get("template", {}))
        template = describer.describe(catalog)
        views: dict[str, dict[str, str]] = {"template": template}
        second = dcfg.get("second")
        if second == "gen":
            views["gen"] = _generate(template, catalog, dcfg.get("gen", {}), cache.root / "gen-cache.jsonl",
                                     dcfg.get("template", {}).get("header", "artist"), show_progress, info)
        elif second:
            if second not in catalog.texts:
                raise InputError(f"descriptions.second is {second!r} but the catalog has texts {list(catalog.texts)}",
                                 field="descriptions.second")
            views[second] = {str(k): str(v) for k, v in catalog.texts[second].items()}
        info["views"] = {k: len(v) for k, v in views.items()}
    return describer, views


def text_stage(cfg: Mapping[str, Any], ids: np.ndarray, views: Mapping[str, Mapping[str, str]], cache: Cache,
               timer: StageTimer, show_progress: bool) -> tuple[Any, np.ndarray | list[np.ndarray]]:
    """The text encoder and one text matrix per description view (NaN rows for items
    without that view; a single view is returned as a matrix, several as a list).

    The encoder runs on ONNX Runtime when the model allows it (exported once; the index
    stage copies the export into the space for torch-free queries), with ``text.n_threads``
    threads (default: every free core)."""
    from ..encoders.text import TextEncoder
    text_cfg = dict(cfg["text"])
    enc = TextEncoder(**text_cfg)
    text_views: list[np.ndarray] = []
    with timer.stage("text") as info:
        try:
            info["backend"], info["threads"] = enc.runtime, enc.threads
        except OSError as e:      # a name neither bundled, a folder nor on the Hub: a raw traceback, exit 1
            raise InputError(f"cannot load text model {enc.model!r} (minilm, mpnet, e5-small, a model folder or a "
                             f"Hugging Face Hub name): {str(e).splitlines()[0]}", field="text.model") from None
        for vname, texts in views.items():
            present = [i for i in ids if texts.get(i)]
            key = content_hash(text_cfg, enc.runtime, [texts[i] for i in present], present)
            arr = cache.arrays(f"text-{vname}", key, lambda: {"X": enc.encode([texts[i] for i in present], batch_size=64,
                                                                              show_progress_bar=show_progress)}, info)["X"]
            full = np.full((len(ids), arr.shape[1]), np.nan, dtype=np.float32)
            pos = {k: j for j, k in enumerate(ids.tolist())}
            full[[pos[i] for i in present]] = arr
            text_views.append(full)
        info["dim"] = int(text_views[0].shape[1])
        enc.release()  # ONNX Runtime keeps its peak buffers while a session lives
        give_back_memory()   # and glibc the torch pass's freed ones
    return enc, (text_views if len(text_views) > 1 else text_views[0])


def export_text_model(enc: Any, folder: Path) -> None:
    """Copy the text encoder's ONNX export (when it has one) into the space's ``folder``."""
    from ..encoders.onnx_text import copy_exported

    if enc.exported_dir is not None:
        copy_exported(enc.exported_dir, folder, int8=bool(enc.int8_passages or enc.int8_queries))


def cf_stage(cfg: Mapping[str, Any], catalog: Catalog, data_key: str, cache: Cache, timer: StageTimer,
             seed: int) -> Any:
    """The fitted ALS encoder (hyperparameters tuned and cached when ``cf.tune``), or None
    without interactions or with ``cf.enabled: false``."""
    ccfg, ids = cfg["cf"], catalog.item_ids
    if catalog.interactions is None or not ccfg.get("enabled", True):
        return None
    from ..encoders.cf import ALSEncoder, tune_als
    with timer.stage("cf") as info:
        min_w = float(ccfg.get("min_weight", 0.0))
        params = dict(ccfg.get("params", {}))
        if ccfg.get("tune"):
            best = cache.json("cf-tune", content_hash(data_key, ccfg, seed),
                              lambda: tune_als(catalog.interactions, ids, n_trials=int(ccfg.get("n_trials", 8)),
                                               min_weight=min_w, random_state=seed)[0], info)
            params.update(best)
            info["tuned"] = best
        cf_enc = ALSEncoder(min_weight=min_w, random_state=seed, **params).fit(catalog.interactions, ids)
        info["items_with_cf"] = int((~np.isnan(cf_enc.item_factors_).any(axis=1)).sum())
    return cf_enc


def content_stage(cfg: Mapping[str, Any], catalog: Catalog, cache: Cache, timer: StageTimer,
                  show_progress: bool) -> tuple[dict[str, np.ndarray], dict[str, dict[str, list[float]]]]:
    """Content modalities (precomputed vectors, standardized, or audio / image files) and
    the scalers of the precomputed ones."""
    ids = catalog.item_ids
    inputs: dict[str, np.ndarray] = {}
    scalers: dict[str, dict[str, list[float]]] = {}
    with timer.stage("content") as info:
        for m, spec in (cfg.get("content") or {}).items():
            spec = spec or {}
            source = spec.get("source", "vectors")
            if source == "vectors":
                if m not in catalog.vectors:
                    raise InputError(f"content.{m}: the catalog has no vectors named {m!r} "
                                     f"(has {list(catalog.vectors)})", field=f"content.{m}")
                from ..encoders.vectors import PrecomputedEncoder
                pe = PrecomputedEncoder(modality=m, standardize=spec.get("standardize", True)).fit(catalog.vectors[m])
                inputs[m] = pe.encode(list(ids))
                scalers[m] = {"mean": pe.mean_.tolist(), "std": pe.std_.tolist()}
            elif source in ("audio_files", "image_files"):
                inputs[m] = _encode_media(catalog, m, spec, info, show_progress)
            else:
                raise InputError(f"content.{m}.source must be vectors, audio_files or image_files, got {source!r}",
                                 field=f"content.{m}.source")
            info[f"items_with_{m}"] = int((~np.isnan(inputs[m]).any(axis=1)).sum())
            if not info[f"items_with_{m}"]:
                raise InputError(f"content.{m}: no item has a {m} vector ({source}), so the modality would be "
                                 "empty; check that the ids match the items' ids", field=f"content.{m}")
    return inputs, scalers


def fusion_stage(cfg: Mapping[str, Any], inputs: Mapping[str, Any], cache: Cache, timer: StageTimer,
                 seed: int, weights: Mapping[str, float] | None = None, ease: Any = None) -> tuple[Any, np.ndarray]:
    """The contrastive fusion model (cached by settings and inputs) and the fused item matrix
    (the ``weights``-weighted mean of the modalities' projections). With
    ``fusion.neighbor_weight > 0`` the items' EASE lists (what each predicts, B > 0) are the
    interaction positives."""
    from ..fusion.model import ContrastiveFusion

    with timer.stage("fusion") as info:
        fparams = {"random_state": seed, "verbose": True, **cfg.get("fusion", {})}
        nb = None
        if float(fparams.get("neighbor_weight", 0.0)) > 0 and ease is not None:
            nb = np.where(ease.weights_ > 0, ease.neighbors_, -1)
        fkey = content_hash(fparams, *[v if isinstance(v, np.ndarray) else np.stack(v) for v in inputs.values()],
                            *([nb] if nb is not None else []))
        fdir = cache.root / f"fusion-{fkey}"
        if (fdir / "config.json").exists():
            fusion = ContrastiveFusion.load(fdir)
            info["cached"] = True
        else:
            # every free core unless the config says (not part of the cache key): on an idle
            # 2-core machine 35 s instead of 55 s for Last.fm, the same epochs and loss (docs/building.md)
            threads = free_cores(fparams.get("n_threads"))
            info["threads"] = threads
            fusion = ContrastiveFusion(**{**fparams, "n_threads": threads}).fit(inputs, neighbors=nb)
            fusion.save(fdir)
        info["epochs"] = len(fusion.history_)
        info["best_epoch"] = fusion.best_epoch_
        info["final_val_loss"] = round(float(fusion.history_[fusion.best_epoch_ - 1]["val_loss"]), 4)
        fused = fusion.transform(inputs, weights)
    return fusion, fused


def index_stage(cfg: Mapping[str, Any], b: Built, fusion: Any, fused: np.ndarray, out_dir: Path,
                timer: StageTimer) -> None:
    """Index the items that have a fused vector and write the space folder atomically;
    with ``index: {backend: milvus}`` also fill the collection (swapped in only with the folder)."""
    from ..index.backend import embedded_params
    from ..index.milvus import staged_collection
    from ..index.store import VectorIndex
    from ..space.files import write_new_space
    from ..space.lock import replacing
    from .schema import output_folder
    from .serving import serving_config

    catalog, inputs, settings = b.catalog, b.inputs, index_settings(cfg)
    with timer.stage("index") as info:
        ok = ~np.isnan(fused).any(axis=1)
        info["items_indexed"] = int(ok.sum())
        info["items_without_any_modality"] = int((~ok).sum())
        meta = _index_meta(catalog, b.views, inputs, ok)
        index = VectorIndex(catalog.item_ids[ok], fused[ok], meta, **embedded_params(cfg.get("index", {})))
        index_cfg = dict(cfg.get("index", {})) if settings is None else {**cfg["index"], **settings.to_config()}
        space_cfg = {
            "name": cfg["name"], "dataset": cfg.get("dataset", "generic"), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "text": b.text_encoder.config(), "descriptions": {"template": b.describer.config(), "views": list(b.views)},
            "fusion": fusion.config(), "index": index_cfg, "search": cfg.get("search", {}),
            "positive_threshold": cfg.get("positive_threshold", 0.0),
            "input_files": {m: m for m in inputs}, "scalers": b.scalers, "modalities": list(inputs),
            "content": cfg.get("content", {}),
            "versions": _versions(), "build_config": {k: v for k, v in cfg.items() if not k.startswith("_")},
            "data_key": b.data_key, **serving_config(cfg, b.weights or {m: 1.0 for m in inputs}, b.ease is not None),
        }
        with replacing(out_dir), staged_collection(settings, index.ids, index.vectors, index.meta, info) as swap_in:
            output_folder({"output": out_dir})    # still no folder a swap would destroy
            with atomic_dir(out_dir) as tmp:
                write_new_space(tmp, index, {m: (np.stack(v, axis=1) if isinstance(v, list) else v)[ok]
                                             for m, v in inputs.items()}, cfg.get("search"),
                                text_key="text" if "text" in inputs else None)
                fusion.save(tmp / "fusion")
                export_text_model(b.text_encoder, tmp / "text_model")
                if b.cf_encoder is not None:
                    b.cf_encoder.save(tmp / "cf")
                if b.ease is not None:
                    b.ease.save(tmp / "ease")
                if catalog.interactions is not None:
                    catalog.interactions[["user_id", "item_id", "weight"]].to_parquet(tmp / "interactions.parquet", index=False)
                write_json(tmp / "space.json", space_cfg)
                write_json(tmp / "build_report.json", {"stages": timer.stages, "catalog_report": getattr(catalog, "report", {}),
                                                       "fusion_history": fusion.history_})
                swap_in()


def _generate(template: Mapping[str, str], catalog: Catalog, gcfg: Mapping[str, Any], cache_path: Path,
              header: str, show_progress: bool, info: dict[str, Any]) -> dict[str, str]:
    """GEN texts through the configured backend: ``{backend: local}`` (in-process through
    transformers: the bundled SmolLM2, or ``model_path``) or ``{backend: openai, base_url,
    model, api_key_env, concurrency}``."""
    from ..descriptions.gen import GenReport, backend_from_config, generate_descriptions
    backend = backend_from_config(gcfg)
    ids = list(template)
    if gcfg.get("limit"):
        ids = ids[: int(gcfg["limit"])]
    tags = {i: [t for ts in v.values() for t in ts] for i, v in catalog.tags_by_item().items()}
    rep = GenReport()
    out = generate_descriptions({i: template[i] for i in ids}, tags, backend, cache_path,
                                kind="movie" if header == "movie" else "artist",
                                min_coverage=float(gcfg.get("min_coverage", 0.8)),
                                on_flagged=gcfg.get("on_flagged", "template"), on_error=gcfg.get("on_error", "skip"),
                                show_progress_bar=show_progress, report=rep)
    info["gen"] = {"generated": rep.generated, "cached": rep.cached, "failed": len(rep.failed), "failed_items":
                   [f"{i}: {r}" for i, r in list(rep.failed.items())[:20]], "mean_tag_coverage": round(rep.mean_coverage, 3)}
    return out


def _encode_media(catalog: Catalog, m: str, spec: Mapping[str, Any], info: dict[str, Any],
                  show_progress: bool) -> np.ndarray:
    if m not in catalog.media:
        raise InputError(f"content.{m}: the catalog has no media files named {m!r} (has {list(catalog.media)})",
                         field=f"content.{m}")
    from ..encoders.media import encode_media_files, report_failures
    paths, ids = catalog.media[m], catalog.item_ids
    have = [i for i in ids if i in paths.index]
    X, failures = encode_media_files(spec, [str(paths[i]) for i in have], modality=m,
                                     show_progress_bar=show_progress)
    full = np.full((len(ids), X.shape[1]), np.nan, dtype=np.float32)
    pos = {k: j for j, k in enumerate(ids.tolist())}
    full[[pos[i] for i in have]] = X
    info.update(report_failures(m, failures, len(have)))
    return full


def _index_meta(catalog: Catalog, views: Mapping[str, Mapping[str, str]], inputs: Mapping[str, Any],
                ok: np.ndarray) -> pd.DataFrame:
    items = catalog.items.copy()
    drop = [c for c in ("join_name", "title") if c in items.columns]
    items = items.drop(columns=drop)
    items["tags"] = items["tags"].apply(lambda v: list(v)[:30] if isinstance(v, (list, np.ndarray)) else []) \
        if "tags" in items.columns else [[] for _ in range(len(items))]
    items["description"] = items["item_id"].map(views["template"])
    for k, v in views.items():
        if k != "template":
            items[f"description_{k}"] = items["item_id"].map(v)
    present = {m: (np.stack([~np.isnan(x).all(axis=1) for x in v], axis=1).any(axis=1) if isinstance(v, list)
                   else ~np.isnan(v).all(axis=1)) for m, v in inputs.items()}
    items["modalities"] = [[m for m in inputs if present[m][j]] for j in range(len(items))]
    items["cold_start"] = False
    return items[ok].reset_index(drop=True)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version
    out = {"python": platform.python_version()}
    for p in ("talkrec", "numpy", "torch", "sentence-transformers", "onnxruntime", "tokenizers", "implicit", "pandas",
              "scikit-learn"):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            pass
    return out


def plot_training_curve(history: list[dict[str, float]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ep = [h["epoch"] for h in history]
    ax.plot(ep, [h["train_loss"] for h in history], label="train")
    ax.plot(ep, [h["val_loss"] for h in history], label="held-out")
    ax.set_xlabel("epoch")
    ax.set_ylabel("sum of pairwise InfoNCE")
    ax.legend()
    ax.set_title("fusion training")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
