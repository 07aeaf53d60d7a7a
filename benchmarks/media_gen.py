"""GEN speed and tag coverage on Last.fm artists (issue 5 closing note).

    nice -n 10 .venv/bin/python benchmarks/media_gen.py --n 50               # offline, bundled SmolLM2
                                                         through TransformersBackend (in-process)
    nice -n 10 .venv/bin/python benchmarks/media_gen.py --n 50 --server      # same model behind
                                                         `transformers serve` (OpenAI-compatible)

The artists are a seeded random sample (``--seed``) of the Last.fm-2k artists with at least
``--min-tags`` tags; TEMPLATE texts come from :class:`talkrec.descriptions.TemplateDescriber`
(``--max-per-category`` tags per category). Writes a JSON summary (``--out``) with seconds per
artist, mean/median tag coverage, the share flagged below ``--min-coverage`` and examples.
With ``--server`` the bundled model is first saved as a transformers folder (``transformers
serve`` cannot load a GGUF chat model in transformers 5.23), then served on a free loopback
port with ``--threads`` CPU threads and asked for the same decoding (greedy, repetition
penalty 1.1). The data root is ``--data-root`` (default ``../shared/data`` relative to the
repository).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("media_gen")


def lastfm_templates(data_root: Path, n: int, *, seed: int, min_tags: int, max_per_category: int,
                     min_tag_users: int) -> tuple[dict[str, str], dict[str, list[str]], dict[str, str]]:
    from talkrec.data.datasets.lastfm import load_lastfm
    from talkrec.descriptions.template import TemplateDescriber

    cat = load_lastfm(data_root / "lastfm-hetrec2011-2k", with_audio=False, min_tag_users=min_tag_users)
    by_item = cat.tags_by_item()
    eligible = sorted(i for i, d in by_item.items() if sum(len(v) for v in d.values()) >= min_tags)
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(eligible, size=min(n, len(eligible)), replace=False).tolist(), key=int)
    describer = TemplateDescriber(max_per_category=max_per_category)
    items = cat.items.set_index("item_id")
    templates, tags, names = {}, {}, {}
    for iid in chosen:
        row = {"name": items.loc[iid, "name"]}
        cats = {c: v[:max_per_category] for c, v in by_item[iid].items()}
        templates[iid] = describer.describe_one(row, cats)
        tags[iid] = [t for v in cats.values() for t in v]
        names[iid] = str(row["name"])
    return templates, tags, names


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(folder: Path, threads: int) -> tuple[subprocess.Popen, str]:
    """``transformers serve FOLDER`` on a free loopback port; ``(process, base URL)`` once it
    answers ``/health``."""
    port = _free_port()
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"media_gen_server_{port}.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1", "OMP_NUM_THREADS": str(threads)}
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "transformers.cli.transformers", "serve", str(folder),
                                 "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                                stdout=log_file, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    import httpx

    for _ in range(1200):
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, f"{url}/v1"
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError("server did not start in 600 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-tags", type=int, default=5)
    ap.add_argument("--min-tag-users", type=int, default=1)
    ap.add_argument("--max-per-category", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=150)
    ap.add_argument("--max-words", type=int, default=80)
    ap.add_argument("--min-coverage", type=float, default=0.8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--server", action="store_true", help="go through `transformers serve` + OpenAICompatibleBackend")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--cache", default=None, help="JSONL cache (default: a fresh temporary file)")
    ap.add_argument("--out", default=None, help="write the JSON summary here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from talkrec.descriptions.gen import GenReport, OpenAICompatibleBackend, TransformersBackend, generate_descriptions

    t0 = time.perf_counter()
    templates, tags, names = lastfm_templates(Path(args.data_root), args.n, seed=args.seed, min_tags=args.min_tags,
                                              max_per_category=args.max_per_category, min_tag_users=args.min_tag_users)
    t_load = time.perf_counter() - t0
    proc = None
    local = TransformersBackend(max_tokens=args.max_tokens, n_threads=args.threads)
    t1 = time.perf_counter()
    local._get()  # load outside the timing
    t_model = time.perf_counter() - t1
    if args.server:
        folder = Path(tempfile.mkdtemp(prefix="media_gen_smollm2_"))
        local.save_pretrained(folder)
        t1 = time.perf_counter()
        proc, url = start_server(folder, args.threads)
        t_model = time.perf_counter() - t1
        same_decoding = {"generation_config": json.dumps({"do_sample": False,
                                                          "repetition_penalty": local.repetition_penalty})}
        backend: Any = OpenAICompatibleBackend(url, str(folder), concurrency=args.concurrency, temperature=0.0,
                                               max_tokens=args.max_tokens, extra_body=same_decoding)
        del local  # the server holds its own copy
    else:
        backend = local
    cache = Path(args.cache) if args.cache else Path(os.environ.get("TMPDIR", "/tmp")) / f"media_gen_{os.getpid()}.jsonl"
    rep = GenReport()
    c0 = time.process_time()
    try:
        out = generate_descriptions(templates, tags, backend, cache, min_coverage=args.min_coverage, report=rep, max_words=args.max_words,
                                    show_progress_bar=True)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
            shutil.rmtree(folder, ignore_errors=True)
    cpu = time.process_time() - c0  # in-process backend only (the server's CPU is not counted)
    covs = list(rep.coverage.values())
    n_tags = [len(tags[i]) for i in templates]
    summary = {
        "backend": backend.config(), "artists": len(templates), "generated": rep.generated, "cached": rep.cached,
        "failed": len(rep.failed), "seconds_total": round(rep.seconds, 2),
        "seconds_per_artist": round(rep.seconds / max(1, rep.generated), 3),
        "cpu_seconds_per_artist": None if args.server else round(cpu / max(1, rep.generated), 3),
        "loadavg_end": os.getloadavg(),
        "tags_per_artist_mean": round(statistics.mean(n_tags), 2),
        "coverage_mean": round(statistics.mean(covs), 4) if covs else None,
        "coverage_median": round(statistics.median(covs), 4) if covs else None,
        "flagged_below_min_coverage": len(rep.low_coverage), "min_coverage": args.min_coverage,
        "flagged_any": len(rep.flagged),
        "flag_counts": {f: sum(f in v for v in rep.flagged.values())
                        for f in ("low_coverage", "copies_template", "repetitive", "empty")},
        "words_per_output_mean": round(statistics.mean(len(t.split()) for t in out.values()), 1) if out else None,
        "data_load_seconds": round(t_load, 2), "model_load_seconds": round(t_model, 2), "settings": vars(args),
        "examples": [{"artist": names[i], "template": templates[i], "gen": out.get(i),
                      "coverage": rep.coverage.get(i)} for i in list(templates)[:3]],
    }
    text = json.dumps(summary, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
