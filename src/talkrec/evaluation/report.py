"""Write the evaluation report: ``report.md``, ``report.json`` and PNG plots."""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Paper 001, Table 4 (nDCG@200), quoted as published.
PAPER_TABLE4: dict[str, dict[str, float | None]] = {
    "MULTI_TEMPLATE": {"music/recommendation": 0.5196, "music/retrieval": 0.0759,
                       "movies/recommendation": 0.2362, "movies/retrieval": 0.0881},
    "MULTI_GEN": {"music/recommendation": 0.5198, "music/retrieval": 0.0815,
                  "movies/recommendation": 0.2320, "movies/retrieval": 0.0611},
    "MULTI_TEMPLATE+GEN": {"music/recommendation": 0.5251, "music/retrieval": 0.1102,
                           "movies/recommendation": 0.2461, "movies/retrieval": 0.0925},
    "TEXT intfloat/e5-large-v2": {"music/recommendation": 0.3053, "music/retrieval": 0.1348,
                                  "movies/recommendation": 0.1833, "movies/retrieval": 0.1116},
    "TEXT WhereIsAI/UAE-Large-V1": {"music/recommendation": 0.3271, "music/retrieval": 0.1310,
                                    "movies/recommendation": 0.1226, "movies/retrieval": 0.1551},
    "CF": {"music/recommendation": 0.5082, "music/retrieval": None,
           "movies/recommendation": 0.1545, "movies/retrieval": None},
    "IMG/AUDIO": {"music/recommendation": 0.4439, "music/retrieval": None,
                  "movies/recommendation": 0.1563, "movies/retrieval": None},
    "BM25": {"music/recommendation": None, "music/retrieval": 0.0890,
             "movies/recommendation": None, "movies/retrieval": 0.0632},
}

#: Reference figures of an independent run of standard tools on this protocol (issue 3).
REFERENCE = {
    "music/recommendation": {"CF (ALS)": 0.172, "TEXT minilm": 0.156, "AUDIO (Spotify)": 0.141,
                             "CONCAT CF+TEXT": 0.229, "PCA-200 CF+TEXT+AUDIO": 0.233},
    "music/retrieval": {"BM25": 0.356, "TEXT minilm": 0.317},
    "movies/recommendation": {"CF (ALS item-factor mean, dot)": "0.45-0.47",
                              "ALS recommend (recalculate_user)": "0.48-0.49", "Popularity": 0.31,
                              "TEXT minilm": 0.05},
}

COLUMNS = ["music/recommendation", "music/retrieval", "movies/recommendation", "movies/retrieval"]

#: Which of our rows corresponds to which row of the paper.
PAPER_ROW = {"MULTI TEMPLATE": "MULTI_TEMPLATE", "MULTI TEMPLATE+OVERVIEW": "MULTI_TEMPLATE+GEN",
             "MULTI TEMPLATE+GEN": "MULTI_TEMPLATE+GEN",
             "CF (ALS)": "CF", "CF (ALS, cosine kNN)": "CF", "AUDIO (Spotify)": "IMG/AUDIO", "BM25": "BM25"}


def _fmt(cell: Mapping[str, Any] | None, metric: str = "ndcg") -> str:
    if not cell or metric not in cell or cell[metric]["mean"] is None or \
            (isinstance(cell[metric]["mean"], float) and math.isnan(cell[metric]["mean"])):
        return "n/a"
    c = cell[metric]
    return f"{c['mean']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}]"


def _row_order(tasks: Mapping[str, Mapping[str, Any]]) -> list[str]:
    names: list[str] = []
    for t in COLUMNS:
        for n in tasks.get(t, {}):
            if n not in names:
                names.append(n)
    key = {"MULT": 0, "HYBR": 1, "TEXT": 2, "CF (": 3, "ALS ": 4, "AUDI": 5, "BM25": 6, "PCA-": 7, "RP-2": 8,
           "CONC": 9, "Popu": 10}
    return sorted(names, key=lambda n: (key.get(n[:4], 11), n))


def headline_table(report: Mapping[str, Any]) -> str:
    """Markdown: our nDCG@200 [95% CI] per task, beside the paper's Table 4 row."""
    tasks = report["tasks"]
    lines = ["| system | " + " | ".join(c.replace("/", " ") for c in COLUMNS) + " | paper row (Table 4) |",
             "|---" * (len(COLUMNS) + 2) + "|"]
    for n in _row_order(tasks):
        cells = [_fmt(tasks.get(c, {}).get(n)) for c in COLUMNS]
        pr = PAPER_ROW.get(n) or ("TEXT (UAE/e5-large)" if n.startswith("TEXT ") and "OVERVIEW" not in n else "")
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {pr} |")
    return "\n".join(lines)


def paper_table() -> str:
    lines = ["| paper 001 Table 4 | " + " | ".join(c.replace("/", " ") for c in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for n, row in PAPER_TABLE4.items():
        lines.append(f"| {n} | " + " | ".join("n/a" if row[c] is None else f"{row[c]:.4f}" for c in COLUMNS) + " |")
    return "\n".join(lines)


def task_table(rows: Mapping[str, Mapping[str, Any]], reference: Mapping[str, Any] | None = None) -> str:
    lines = ["| system | nDCG@200 [95% CI] | Recall@200 [95% CI] | Gini@200 | coverage | novelty@200 (bits) | queries "
             "| val nDCG | reference | note |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    order = sorted(rows, key=lambda n: -(rows[n]["ndcg"]["mean"] if rows[n]["ndcg"]["mean"] == rows[n]["ndcg"]["mean"]
                                         else -1))
    for n in order:
        r = rows[n]
        ref = (reference or {}).get(n, "")
        vn = r.get("val_ndcg")
        nov = "n/a" if r.get("novelty") is None else f"{r['novelty']:.2f}"
        lines.append(f"| {n} | {_fmt(r, 'ndcg')} | {_fmt(r, 'recall')} | {r['gini']:.3f} | {r['coverage']:.3f} | "
                     f"{nov} | {r['n_queries']} | {'' if vn is None else f'{vn:.3f}'} | {ref} | {r.get('note', '')} |")
    return "\n".join(lines)


def _plots(report: Mapping[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for task, rows in report["tasks"].items():
        names = sorted(rows, key=lambda n: rows[n]["ndcg"]["mean"] if rows[n]["ndcg"]["mean"] == rows[n]["ndcg"]["mean"]
                       else -1)
        means = [rows[n]["ndcg"]["mean"] for n in names]
        lo = [rows[n]["ndcg"]["mean"] - rows[n]["ndcg"]["lo"] for n in names]
        hi = [rows[n]["ndcg"]["hi"] - rows[n]["ndcg"]["mean"] for n in names]
        fig, ax = plt.subplots(figsize=(8, 0.35 * len(names) + 1.2))
        ax.barh(range(len(names)), means, xerr=[lo, hi], color=["#c44" if n.startswith(("MULTI", "HYBRID")) else "#888"
                                                               for n in names], capsize=2)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_xlabel("nDCG@200 (test queries, 95% bootstrap CI)")
        ax.set_title(task)
        fig.tight_layout()
        fn = f"ndcg_{task.replace('/', '_')}.png"
        fig.savefig(out / fn, dpi=110)
        plt.close(fig)
        files.append(fn)
    pb = report.get("details", {}).get("music", {}).get("analyses", {}).get("popularity_buckets")
    if pb:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for name, rel in pb["relative"].items():
            if name.startswith(("MULTI", "TEXT minilm", "PCA", "RP", "CONCAT CF+TEXT+", "Popularity")):
                xs = sorted(int(b) for b in rel)
                ax.plot(xs, [rel[b] if b in rel else rel[str(b)] for b in xs], marker="o", label=name)
        ax.axhline(0, ls=":", color="k", label="CF (ALS)")
        ax.set_xlabel(f"query popularity quantile (log(plays+1)), {pb['n_buckets']} groups, least popular first")
        ax.set_ylabel("nDCG@200 relative to CF")
        ax.set_title("Music: relative nDCG vs CF by popularity (004 Figure 4)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "music_popularity_vs_cf.png", dpi=110)
        plt.close(fig)
        files.append("music_popularity_vs_cf.png")
    for ds in ("music", "movies"):
        h = report.get("details", {}).get(ds, {}).get("fusion", {}).get("history")
        if h:
            fig, ax = plt.subplots(figsize=(6, 3.5))
            ax.plot([e["epoch"] for e in h], [e["train_loss"] for e in h], label="train")
            ax.plot([e["epoch"] for e in h], [e["val_loss"] for e in h], label="held-out items")
            ax.set_xlabel("epoch")
            ax.set_ylabel("sum of pairwise InfoNCE")
            ax.set_title(f"{ds}: fusion training (chosen settings)")
            ax.legend()
            fig.tight_layout()
            fig.savefig(out / f"fusion_curve_{ds}.png", dpi=110)
            plt.close(fig)
            files.append(f"fusion_curve_{ds}.png")
    return files


def render_markdown(report: Mapping[str, Any], plots: list[str]) -> str:
    cfg = report["config"]
    d = report.get("details", {})
    s: list[str] = []
    s.append(f"# talkrec evaluation: paper 001 Table 4 on public data ({cfg.get('name')}"
             f"{', SMALL MODE' if cfg.get('small_mode') else ''})\n")
    s.append("nDCG@200 on **test** queries, binary relevance, 95% percentile-bootstrap CI over queries "
             f"({cfg['n_bootstrap']} resamples, seed {cfg['seed']}). Hyperparameters were chosen on the "
             "validation queries only.\n")
    sec = report.get("seconds") or {}
    builds = {ds: (d.get(ds, {}).get("fusion", {}).get("chosen", {}) or {}).get("build_config") for ds in d}
    s.append(f"Wall time **{sec.get('total', 0) / 60:.1f} min**. The MULTI rows are the product: spaces built by "
             f"`talkrec build` from {json.dumps(builds)} (their fusion settings, EASE, modality weights and "
             "strategies, listed per dataset below) and queried through `Space.similar` / `Space.recommend` / "
             "`Space.search`; `MULTI TEMPLATE*` rows are the same spaces' fused vectors by plain kNN.\n")
    s.append("## Headline (shape of Table 4)\n")
    s.append(headline_table(report) + "\n")
    s.append("### Paper 001 Table 4, as published (nDCG@200)\n")
    s.append(paper_table() + "\n")
    s.append("The paper's music data (industry CF/audio embeddings, curator tags, 31,605 artists) and movie data "
             "(MovieLens-25M, Tag Genome, CLIP poster embeddings) are not public; here: Last.fm-2k plays + user "
             "tags + Spotify descriptors with AllMusic (OLGA) links, and ml-latest-small + TMDB overviews. Absolute "
             "values are therefore not comparable; the comparison is about the ordering of systems.\n")
    for task, rows in report["tasks"].items():
        s.append(f"## {task}\n")
        s.append(task_table(rows, REFERENCE.get(task)) + "\n")
    for ds in ("music", "movies"):
        if ds in d:
            s += _dataset_section(ds, d[ds])
    an = d.get("music", {}).get("analyses")
    if an:
        s += _analyses_section(an)
    s.append("## Plots\n")
    for p in plots:
        s.append(f"![{p}]({p})")
    s.append("")
    s.append("## Run\n")
    s.append("Seconds per stage:\n\n```json\n" + json.dumps(report.get("seconds"), indent=1) + "\n```\n")
    s.append("Environment:\n\n```json\n" + json.dumps(report.get("environment"), indent=1) + "\n```\n")
    s.append("Data hashes (sha256, first 16 hex):\n\n```json\n" + json.dumps(report.get("data_hashes"), indent=1)
             + "\n```\n")
    s.append("Config:\n\n```json\n" + json.dumps(cfg, indent=1, default=str) + "\n```\n")
    return "\n".join(s)


def _dataset_section(ds: str, dd: Mapping[str, Any]) -> list[str]:
    """Data, splits and the choices made on validation for one dataset."""
    s: list[str] = []
    s.append(f"## {ds}: data, splits and choices\n")
    s.append("```json\n" + json.dumps(dd.get("dataset"), indent=1)[:3000] + "\n```\n")
    s.append(f"ALS chosen on validation queries: `{json.dumps(dd['als']['chosen'])}`\n")
    s.append("| ALS trial | " + " | ".join(k for k in dd["als"]["trials"][0] if k != "iterations") + " |")
    s.append("|---" * (len(dd["als"]["trials"][0])) + "|")
    for i, t in enumerate(dd["als"]["trials"]):
        s.append(f"| {i} | " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v)
                                          for kk, v in t.items() if kk != "iterations") + " |")
    s.append("")
    prod = dd.get("fusion", {}).get("chosen", {})
    s.append("The product's settings (from its build config; the MULTI rows are its spaces):\n")
    s.append("```json\n" + json.dumps({k: v for k, v in prod.items() if k != "builds"}, indent=1, default=str)
             + "\n```\n")
    if prod.get("builds"):
        s.append("Product builds (seconds, stages): `" + json.dumps(prod["builds"], default=str)[:3000] + "`\n")
    if dd.get("ease"):
        s.append("EASE baseline, lambda on validation: " + ", ".join(
            f"{t['regularization']:g} -> {t['val_ndcg']:.4f}" for t in dd["ease"]) + "\n")
    s += _cold_section(dd.get("cold_start"))
    if dd.get("ret_info", {}).get("hybrid_weight"):
        s.append(f"Hybrid RRF text weights chosen on validation: `{json.dumps(dd['ret_info']['hybrid_weight'])}`\n")
    if dd.get("ret_info", {}).get("hybrid_bm25_weights"):
        s.append("Hybrid with BM25, RRF (text, BM25) weights chosen on validation: "
                 f"`{json.dumps(dd['ret_info']['hybrid_bm25_weights'])}`\n")
    if dd.get("gen"):
        s.append(f"GEN view (second text view of MULTI TEMPLATE+GEN): `{json.dumps(dd['gen'])}`\n")
    s.append(f"Query set: `{json.dumps({k: v for k, v in (dd.get('queryset_meta') or {}).items()})}`\n")
    return s


def _cold_section(cold: Mapping[str, Any] | None) -> list[str]:
    """Cold items (held out of CF, re-added by Space.add_items) against the same items warm."""
    if not cold:
        return []
    s = [f"**Cold start**: {cold['items']} items ({cold['fraction']:.0%}) held out of CF training and written "
         "through Space.add_items; nDCG@200 of the same queries (music) / targets (movies):\n",
         "| variant | val | test [95% CI] | n val / test |", "|---|---|---|---|"]
    for name in ["cold", "cold_build_views", "warm"] + sorted(n for n in cold if n.startswith(("cold ", "all "))):
        r = cold.get(name)
        if isinstance(r, Mapping) and "test" in r:
            t = r["test"]
            s.append(f"| {name} | {r['val']['mean'] or 0:.4f} | {t['mean'] or 0:.4f} [{t['lo'] or 0:.4f}, "
                     f"{t['hi'] or 0:.4f}] | {r['val']['n']} / {t['n']} |")
    rat = cold.get("ratio") or {}
    s.append(f"\ncold / warm: val {rat.get('val') or 0:.3f}, test {rat.get('test') or 0:.3f}\n")
    return s


def _analyses_section(an: Mapping[str, Any]) -> list[str]:
    """Paper 004's analyses on the music data: modality groups, ECL, popularity buckets."""
    s: list[str] = []
    s.append("## Music: analyses of paper 004\n")
    mg = an["modality_groups"]
    s.append(f"**Modality-group entropy** (004 section 2.4, Table 2): {mg['items']} artists with CF, audio and "
             f"tags, split at random into 7 groups keeping {', '.join(mg['groups'])}; top {mg['k']} among them; "
             f"mean row entropy in nats (max ln 7 = {mg['max_entropy']:.2f}).\n")
    s.append("| system | entropy | queries |")
    s.append("|---|---|---|")
    for n, e in sorted(mg["systems"].items(), key=lambda t: -t[1]["entropy"]):
        s.append(f"| {n} | {e['entropy']:.3f} | {e['queries']} |")
    s.append("")
    e = an["ecl"]

    def tau(x: float | None) -> str:
        return "n/a" if x is None else f"{x:+.3f}"

    s.append(f"**Expected Contrastive Loss** (004 section 2.6) of the MULTI model: mean {e['mean_all_items']:.4f} "
             f"over all items; Kendall tau(ECL, nDCG) = {tau(e['kendall_tau_ecl_ndcg'])}, tau(POP, nDCG) = "
             f"{tau(e['kendall_tau_pop_ndcg'])}, tau(POP, ECL) = {tau(e['kendall_tau_pop_ecl'])} on test queries "
             "(POP = log(plays+1)). Per-item ECL is in report.json.\n")
    pb = an["popularity_buckets"]
    s.append(f"**nDCG by popularity quantile relative to CF** (004 Figure 4), {pb['n_buckets']} groups of test "
             "queries, least popular first:\n")
    bs = sorted(int(b) for b in pb["bucket_cf_ndcg"])

    def at(d: Any, b: int) -> float:  # bucket keys are ints in memory, strings after a JSON round trip
        return float(d[b] if not isinstance(d, Mapping) or b in d else d[str(b)])

    s.append("| system | " + " | ".join(str(b) for b in bs) + " |")
    s.append("|---" * (len(bs) + 1) + "|")
    s.append("| CF nDCG (absolute) | " + " | ".join(f"{at(pb['bucket_cf_ndcg'], b):.3f}" for b in bs) + " |")
    for n, rel in pb["relative"].items():
        s.append(f"| {n} | " + " | ".join(f"{at(rel, b):+.2f}" if at(rel, b) == at(rel, b) else "n/a" for b in bs)
                 + " |")
    s.append("")
    return s


def write_report(report: Mapping[str, Any], out: Path) -> None:
    """``report.json`` (everything, per-query scores included), ``report.md``, PNG plots."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        plots = _plots(report, out)
    except Exception as e:  # plotting must never lose the numbers
        log.warning("plots failed: %s", e)
        plots = []
    from .._atomic import write_text  # temp file + rename: a crash never leaves half a report
    write_text(out / "report.json", dumps(report))
    write_text(out / "report.md", render_markdown(report, plots))


def dumps(report: Mapping[str, Any]) -> str:
    """The report as JSON (arrays as lists, anything else unknown as its string)."""
    return json.dumps(report, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
