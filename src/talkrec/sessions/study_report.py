"""The sessions study's report: a Markdown table per model family and learning-curve plots."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_path
from .evaluate import KS, METRICS

__all__ = ["FAMILY_TITLES", "markdown_report"]

FAMILY_TITLES = {"masked": "Masked-item model (T4Rec / BERT4Rec style), last-item task, user-disjoint split "
                           "(shape of paper 002 Table 5.2)",
                 "next_item": "Causal next-item model (RTA style), continuation task from 1-10 items, "
                              "sampled-long-session split (shape of paper 002 Table 5.3)"}


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
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)


def markdown_report(cfg: Mapping[str, Any], meta: Mapping[str, Any], results: list[dict[str, Any]],
                    timing: Mapping[str, Any], out: Path) -> str:
    """The report's Markdown; writes ``curves-<family>.png`` into ``out`` on the way."""
    md = [f"# Session study: {cfg['dataset']}", ""]
    for family, m in meta["families"].items():
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
    return "\n".join(md) + "\n"
