"""Benchmark (not a test): the Spark stages of ``engine: spark`` at 1M items x 10M
interactions on Spark local: ALS (MLlib, the build's confidences), a content modality,
fusion trained on the driver from a sample, and the projection of every item on Spark,
each written as Parquet. Reports wall time and peak memory of the whole process tree
(driver, JVM, Python workers) per step.

    nice -n 10 .venv/bin/python benchmarks/spark_synthetic.py --out runs/bench/spark-synthetic

Data: items belong to ``--genres`` genres; each user listens mostly (80%) inside one genre,
popular items more (a squared uniform draw); 30% of items carry a 32-d "audio" vector near
their genre's centre. No text modality: embedding 1M descriptions with MiniLM is measured
per item on Last.fm instead (docs/scale.md). A final check: the share of fused
nearest neighbours (on 2,000 sampled items) that share the query's genre.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spark_procs import PeakRSS  # noqa: E402


def session(master: str, driver_memory: str, partitions: int, tmp: Path) -> Any:
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (SparkSession.builder.master(master).appName("talkrec-synthetic")
             .config("spark.driver.memory", driver_memory).config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", str(partitions)).config("spark.driver.host", "127.0.0.1")
             .config("spark.sql.execution.arrow.pyspark.enabled", "true")
             .config("spark.local.dir", str(tmp / "spark-local")).getOrCreate())
    spark.sparkContext.setCheckpointDir(str(tmp / "checkpoints"))
    return spark


def interactions(spark: Any, a: argparse.Namespace) -> Any:
    from pyspark.sql import functions as F

    n_per = a.items // a.genres
    r = F.rand(a.seed)
    user = (F.abs(F.xxhash64("id", F.lit(a.seed))) % a.users).cast("int")
    in_genre = (user % a.genres) * n_per + F.floor(F.pow(r, 2) * n_per)
    anywhere = F.floor(F.pow(F.rand(a.seed + 1), 2) * a.items)
    item = F.when(F.rand(a.seed + 2) < 0.8, in_genre).otherwise(anywhere).cast("int")
    weight = F.floor(F.exp(F.rand(a.seed + 3) * 5)).cast("float")
    return spark.range(a.interactions, numPartitions=a.partitions).select(user.alias("user"), item.alias("item"),
                                                                          weight.alias("weight"))


def audio(spark: Any, a: argparse.Namespace, dim: int = 32) -> Any:
    import pandas as pd

    rng = np.random.default_rng(a.seed)
    centres = rng.normal(size=(a.genres, dim)).astype(np.float32)
    n_per = a.items // a.genres

    def vectors(batches):
        for pdf in batches:
            g = (pdf["id"].to_numpy() // n_per).clip(max=a.genres - 1)
            noise = np.random.default_rng(int(pdf["id"].iloc[0])).normal(scale=0.7, size=(len(pdf), dim))
            X = (centres[g] + noise).astype(np.float32)
            yield pd.DataFrame({"item_id": "i" + pdf["id"].astype(str), "audio": list(X)})

    from pyspark.sql import functions as F
    have = spark.range(a.items, numPartitions=a.partitions).where(F.abs(F.xxhash64("id", F.lit(7))) % 10 < 3)
    return have.mapInPandas(vectors, schema="item_id string, audio array<float>")


def genre_purity(fused: Any, a: argparse.Namespace, n: int = 2000) -> float:
    """Share of the 10 nearest fused neighbours (within a sample of 50k items) in the query's genre."""
    pdf = fused.sample(fraction=min(1.0, 50_000 / a.items), seed=a.seed).toPandas()
    X = np.stack(pdf["fused"].to_numpy()).astype(np.float32)
    g = pdf["item_id"].str[1:].astype(int).to_numpy() // (a.items // a.genres)
    q = np.random.default_rng(a.seed).choice(len(X), size=min(n, len(X)), replace=False)
    S = X[q] @ X.T
    S[np.arange(len(q)), q] = -np.inf
    top = np.argpartition(-S, 10, axis=1)[:, :10]
    return float((g[top] == g[q][:, None]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--interactions", type=int, default=10_000_000)
    ap.add_argument("--users", type=int, default=500_000)
    ap.add_argument("--genres", type=int, default=1000)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--fusion-sample", type=int, default=100_000)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--driver-memory", default="6g")
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/bench/spark-synthetic"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    with PeakRSS(os.getpid()) as peak:
        report = run(a, peak)
    report["peak_tree_rss_mb"] = round(peak.peak_mb)
    (a.out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


def run(a: argparse.Namespace, peak: PeakRSS) -> dict[str, Any]:
    from talkrec.fusion.model import ContrastiveFusion
    from talkrec.pipeline.spark.als import keyed_factors, fit_als, pair_frame
    from talkrec.pipeline.spark.project import join_tables, project, sample_inputs

    steps: dict[str, Any] = {}
    t_all = time.perf_counter()

    def step(name: str, t0: float) -> None:
        steps[name] = {"seconds": round(time.perf_counter() - t0, 1), "peak_tree_rss_mb_so_far": round(peak.peak_mb)}
        print(name, steps[name], flush=True)

    t0 = time.perf_counter()
    spark = session(a.master, a.driver_memory, a.partitions, a.out)
    step("session", t0)
    root = str(a.out / "parquet")
    t0 = time.perf_counter()
    interactions(spark, a).write.mode("overwrite").parquet(f"{root}/interactions")
    step("generate interactions", t0)
    t0 = time.perf_counter()
    params = {"factors": a.factors, "regularization": 0.01, "alpha": 2.0, "iterations": a.iterations}
    model = fit_als(pair_frame(spark.read.parquet(f"{root}/interactions")), params, seed=a.seed)
    ids = np.char.add("i", np.arange(a.items).astype(str))
    keyed_factors(spark, model.itemFactors, ids, "item_id").write.mode("overwrite").parquet(f"{root}/cf-items")
    step("als (fit + item factors to Parquet)", t0)
    t0 = time.perf_counter()
    audio(spark, a).write.mode("overwrite").parquet(f"{root}/audio")
    step("audio to Parquet", t0)
    t0 = time.perf_counter()
    wide, layout = join_tables(spark, ids, {"cf": {"cf": spark.read.parquet(f"{root}/cf-items")},
                                            "audio": {"audio": spark.read.parquet(f"{root}/audio")}})
    dims = {"cf": a.factors, "audio": 32}
    sample = sample_inputs(wide, layout, dims, a.fusion_sample, a.seed)
    step("fusion sample to the driver", t0)
    t0 = time.perf_counter()
    fusion = ContrastiveFusion(hidden_dim=256, out_dim=200, learning_rate=1e-3, max_epochs=30, patience=4,
                               random_state=a.seed).fit(sample)
    step(f"fusion training ({len(fusion.history_)} epochs)", t0)
    t0 = time.perf_counter()
    project(wide, fusion, layout, dims, a.partitions).write.mode("overwrite").parquet(f"{root}/fused")
    step("projection of every item to Parquet", t0)
    fused = spark.read.parquet(f"{root}/fused")
    out = {"items": a.items, "interactions": a.interactions, "users": a.users, "master": a.master,
           "driver_memory": a.driver_memory, "partitions": a.partitions, "als": params,
           "fusion_sample": a.fusion_sample, "steps": steps, "total_seconds": round(time.perf_counter() - t_all, 1),
           "fused_rows": fused.count(), "items_with_cf": spark.read.parquet(f"{root}/cf-items").count(),
           "fused_genre_purity@10": round(genre_purity(fused, a), 3)}
    spark.stop()
    return out


if __name__ == "__main__":
    main()
