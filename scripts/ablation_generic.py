"""The gain through the generic catalog format (issue 12, point 5; docs/evaluation.md).

Writes Last.fm out as a user would give their own catalog -- ``items.csv`` (item_id, name,
listeners, plays and a ``tags`` column of ``category:tag|...``, most applied first),
``interactions.csv`` (user_id, item_id, weight) and ``audio.npz`` (ids + X) -- with a generic
build config that has the settings of configs/lastfm.yaml, then runs the music half of
``talkrec evaluate`` with that config as the product (baselines as usual):

    python scripts/ablation_generic.py --out runs/eval-generic [--workdir runs/lastfm-generic]
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import yaml

from talkrec.config import resolve_path
from talkrec.data.datasets import load_lastfm
from talkrec.evaluation.runner import load_config, run_evaluation
from talkrec.pipeline import load_config as load_build_config


def write_generic(cat, folder: Path) -> None:
    """Items (with a tags column), interactions and audio vectors in the generic format."""
    folder.mkdir(parents=True, exist_ok=True)
    clean = (lambda t: str(t).replace("|", "/").replace(":", " "))
    tags = cat.tags.sort_values(["item_id", "weight"], ascending=[True, False], kind="stable")
    col = tags.groupby("item_id").apply(lambda g: "|".join(f"{c}:{clean(t)}" for c, t in zip(g["category"], g["tag"])))
    items = cat.items[["item_id", "name", "listeners", "plays"]].copy()
    items["tags"] = items["item_id"].map(col).fillna("")
    items.to_csv(folder / "items.csv", index=False)
    cat.interactions[["user_id", "item_id", "weight"]].to_csv(folder / "interactions.csv", index=False)
    vt = cat.vectors["audio"]
    np.savez(folder / "audio.npz", ids=np.asarray(vt.ids, dtype=str), X=np.asarray(vt.X, dtype=np.float32))


def generic_build_config(folder: Path, dim: int) -> Path:
    """configs/lastfm.yaml's settings over the generic files."""
    lastfm = load_build_config(resolve_path("configs/lastfm.yaml"))
    keep = ("descriptions", "text", "cf", "fusion", "ease", "modality_weights", "similar", "recommend", "search",
            "content")
    cfg = {"name": "lastfm-generic", "dataset": "generic", "output": str(folder / "space"),
           **{k: lastfm[k] for k in keep},
           "catalog": {"items": {"path": "items.csv", "tags_column": "tags"},
                       "interactions": {"path": "interactions.csv"},
                       "vectors": {"audio": {"path": "audio.npz", "dim": dim}}}}
    # BM25 fields: the generic items carry the tag categories (genre, decade) but no Spotify genres
    fields = cfg["search"].get("bm25_fields")
    if fields:
        cfg["search"] = {**cfg["search"], "bm25_fields": [f for f in fields if f != "spotify_genres"]}
    path = folder / "lastfm-generic.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/eval-minilm.yaml")
    ap.add_argument("--workdir", default="runs/lastfm-generic")
    ap.add_argument("--out", default="runs/eval-generic")
    ap.add_argument("--cold", action="store_true", help="also the cold-start comparison (one more build)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    cfg = load_config(args.config)
    cat = load_lastfm(resolve_path(cfg["data_root"], cfg) / "lastfm-hetrec2011-2k")
    work = Path(args.workdir)
    write_generic(cat, work)
    bpath = generic_build_config(work, int(cat.vectors["audio"].X.shape[1]))
    raw = {**{k: v for k, v in cfg.items() if not k.startswith("_") and k != "small_mode"},
           "name": "eval-generic-lastfm", "movies": {**cfg["movies"], "enabled": False},
           "music": {**cfg["music"], "build_config": str(bpath), "cold_start": {"enabled": bool(args.cold)}}}
    rep = run_evaluation(raw, args.out)
    rows = rep["tasks"]["music/recommendation"]
    for n in ("MULTI talkrec (Space.similar)", "BM25 more-like-this (similar.lexical_* terms)", "PCA-200 CF+TEXT+AUDIO",
              "EASE"):
        print(n, rows[n]["ndcg"], "val", rows[n]["val_ndcg"])


if __name__ == "__main__":
    main()
