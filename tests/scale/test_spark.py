"""``engine: spark`` on a real Spark in local mode (local[2], 127.0.0.1, the machine's Java):
the tiny three-cluster catalog built on Spark answers like the embedded build, the ALS
confidences and search match the embedded ones, and bad settings fail cleanly before
anything is written. One Spark session for the module (its start costs ~10 s)."""
from __future__ import annotations

import hashlib
import json
import os
import sys
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from talkrec import Space
from talkrec.encoders.cf import SEARCH_SPACE, confidence, tune_als
from talkrec.errors import InputError
from talkrec.pipeline import build
from tiny_data import copy_space

pyspark = pytest.importorskip("pyspark", reason="the spark extra is not installed (pip install 'talkrec[spark]')")
if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
    pytest.skip("Spark needs Java 17+ (none on the PATH, JAVA_HOME unset)", allow_module_level=True)

SPARK = {"master": "local[2]", "conf": {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "4"}}


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(SPARK["master"]).appName("talkrec-tests")
    for k, v in {**SPARK["conf"], "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}.items():
        builder = builder.config(k, v)
    session = builder.getOrCreate()
    session.sparkContext.setCheckpointDir(str(tmp_path_factory.mktemp("checkpoints")))
    yield session
    session.stop()


@pytest.fixture()
def spark_config(tiny_space_dir, tmp_path):
    """The embedded tiny space's own build config, with ``engine: spark``."""
    cfg = json.loads((tiny_space_dir / "space.json").read_text())["build_config"]
    return {**cfg, "output": str(tmp_path / "space"), "engine": "spark", "spark": SPARK}


@pytest.fixture(scope="module")
def _built() -> dict[str, Path]:
    return {}


@pytest.fixture()
def spark_space_dir(spark, _built, spark_config, tiny_catalog, tmp_path_factory):
    """The tiny catalog built on Spark, once per module."""
    if "dir" not in _built:
        out = tmp_path_factory.mktemp("spark") / "tiny"
        summary = build({**spark_config, "output": str(out)}, show_progress=False, catalog=tiny_catalog)
        assert summary["engine"] == "spark"
        _built["dir"] = out
    return _built["dir"]


def _cluster(i: str) -> str:
    return i.rstrip("0123456789")


def test_the_spark_space_answers_like_the_embedded_one(spark_space_dir, tiny_space_dir):
    sp, emb = Space.load(spark_space_dir), Space.load(tiny_space_dir)
    ids = [f"{g}{j}" for g in ("metal", "jazz", "pop") for j in range(20)]
    in_cluster, overlap = [], []
    for i in ids:
        a = [h.item_id for h in sp.similar(i, k=10)]
        b = [h.item_id for h in emb.similar(i, k=10)]
        in_cluster.append(np.mean([_cluster(x) == _cluster(i) for x in a]))
        overlap.append(len(set(a) & set(b)) / 10)
    assert np.mean(in_cluster) >= 0.95
    assert np.mean(overlap) >= 0.65     # the same 10 of the cluster's 19 (chance: 0.53; measured 0.73)
    for q, g in (("metal", "metal"), ("jazz music", "jazz"), ("pop", "pop")):
        hits = sp.search(q, k=10)
        assert sum(_cluster(h.item_id) == g for h in hits) >= 9
        assert len({h.item_id for h in hits} & {h.item_id for h in emb.search(q, k=10)}) >= 8
    rec = sp.recommend(items=["jazz1", "jazz2"], k=10)
    assert sum(_cluster(h.item_id) == "jazz" for h in rec) >= 9
    user = sp.interactions["user_id"].iloc[0]
    assert set(sp.user_history(user)).isdisjoint(h.item_id for h in sp.recommend(user=user, k=10))


def test_the_spark_space_has_the_embedded_layout_and_text_vectors(spark_space_dir, tiny_space_dir):
    def files(d: Path) -> set[str]:
        return {str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()}

    def inputs(d: Path, name: str) -> np.ndarray:          # the current generation's raw inputs
        return np.load(d / json.loads((d / "MANIFEST.json").read_text())["generation"] / "inputs" / f"{name}.npy")

    assert files(spark_space_dir) == files(tiny_space_dir)                  # EASE lists included (issue 12)
    cfg_s, cfg_e = (json.loads((d / "space.json").read_text()) for d in (spark_space_dir, tiny_space_dir))
    assert {k: cfg_s[k] for k in ("similar", "recommend", "modality_weights")} == \
        {k: cfg_e[k] for k in ("similar", "recommend", "modality_weights")}   # served the same way
    a, b = inputs(spark_space_dir, "text"), inputs(tiny_space_dir, "text")
    assert a.shape == b.shape and np.abs(a - b).max() < 1e-4      # the same text model, run by Spark
    a, b = inputs(spark_space_dir, "audio"), inputs(tiny_space_dir, "audio")
    np.testing.assert_allclose(a, b, rtol=1e-6, equal_nan=True)
    sp = Space.load(spark_space_dir)
    assert sp.cf() is not None and sp.cf().item_factors_.shape == (60, 8)
    assert sp.user_vector(sp.interactions["user_id"].iloc[0], source="cf").shape == (16,)


def test_parquet_outputs_hold_every_modality_and_the_fused_vectors(spark, spark_space_dir):
    root = Path(str(spark_space_dir) + ".build") / "spark"
    tables = {p.name.rsplit("-", 1)[0]: p for p in root.iterdir()}
    assert set(tables) == {"text-template", "cf-items", "cf-users", "audio", "fused"}
    assert spark.read.parquet(str(tables["fused"])).count() == 60
    assert spark.read.parquet(str(tables["audio"])).count() == 45          # items without audio have no row
    fused = spark.read.parquet(str(tables["fused"])).toPandas().set_index("item_id")["fused"]
    np.testing.assert_allclose(np.asarray(fused["pop3"]), Space.load(spark_space_dir).item_vector("pop3"), atol=1e-6)


def test_a_rebuild_reads_the_finished_tables(spark, spark_space_dir, spark_config, tiny_catalog, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(str(spark_space_dir) + ".build", str(out) + ".build")
    summary = build({**spark_config, "output": str(out)},
                    show_progress=False, catalog=tiny_catalog)
    cached = {s["stage"] for s in summary["stages"] if s.get("cached")}
    assert {"text", "cf", "fusion", "project"} <= cached


def test_spark_ratings_give_the_embedded_confidences(spark):
    from talkrec.pipeline.spark.als import rating_frame, ratings, user_index

    inter = pd.DataFrame({"user_id": ["a", "a", "a", "b", "b"], "item_id": ["x", "x", "y", "y", "z"],
                          "weight": [3.0, 10.0, 0.0, 1.0, 7.0]})
    ids = np.array(["x", "y", "z"])
    users = user_index(inter, ids)
    got = ratings(rating_frame(spark, inter, ids, users), 5.0).toPandas()
    got = {(users[u], ids[i]): r for u, i, r in got.itertuples(index=False)}
    for (u, i), grp in inter.groupby(["user_id", "item_id"]):
        want = confidence(grp["weight"].to_numpy(), 5.0).sum()   # implicit sums duplicate confidences
        assert 1 + 5.0 * got[(u, i)] == pytest.approx(want, rel=1e-5, abs=1e-5)
    assert got[("a", "y")] > 0                                    # w = 0 stays a positive of confidence 1


def test_spark_search_draws_the_embedded_split_and_trials(spark, tiny_catalog):
    from talkrec.pipeline.spark.als import tune_als_spark

    cat = tiny_catalog
    space = {k: v for k, v in SEARCH_SPACE.items() if k != "factors"} | {"factors": [4, 8]}
    best, trials = tune_als_spark(spark, cat.interactions, cat.item_ids, n_trials=2, seed=3, space=space)
    _, ref = tune_als(cat.interactions, cat.item_ids, n_trials=2, random_state=3, space=space)
    strip = [{k: v for k, v in t.items() if k != "ndcg@50"} for t in trials]
    assert strip == [{k: v for k, v in t.items() if k != "ndcg@50"} for t in ref]
    assert best in strip
    for t, r in zip(trials, ref):                     # held-out items of the same users, ranked well by both
        assert t["ndcg@50"] > 0.2 and abs(t["ndcg@50"] - r["ndcg@50"]) < 0.25


# --------------------------------------------------------------------------- bad settings
def _snapshot(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture()
def existing_space(tiny_space_dir, tmp_path):
    out = tmp_path / "space"
    copy_space(tiny_space_dir, out)
    return out


@pytest.mark.parametrize("spark_cfg, field", [
    ({"master": "spark://127.0.0.1:1"}, "spark.master"),         # nothing listening
    ({"master": "locl[2]"}, "spark.master"),                     # not a master URL
    ({"master": "yarn"}, "spark.master"),                        # no HADOOP_CONF_DIR
    ({"remote": "sc://127.0.0.1:1"}, "spark.remote"),
    ({"mastr": "local[2]"}, "spark.mastr"),
    ({"fusion_sample": 0}, "spark.fusion_sample"),
    ({**SPARK, "output": "s3a://talkrec-no-such-bucket/x"}, "spark.output"),   # no S3 file system here
])
def test_a_bad_setting_names_itself_and_leaves_the_space_whole(spark, spark_config, tiny_catalog, existing_space,
                                                              monkeypatch, spark_cfg, field):
    monkeypatch.delenv("HADOOP_CONF_DIR", raising=False)
    monkeypatch.delenv("YARN_CONF_DIR", raising=False)
    before = _snapshot(existing_space)
    with pytest.raises(InputError) as e:
        build({**spark_config, "output": str(existing_space), "spark": spark_cfg}, show_progress=False,
              catalog=tiny_catalog)
    assert e.value.field == field, str(e.value)
    assert _snapshot(existing_space) == before
    assert Space.load(existing_space).similar("jazz3", k=3)
    assert not Path(str(existing_space) + ".build").exists()      # nothing written before the check


@pytest.mark.parametrize("java_home", ["missing", None])
def test_no_java_is_a_clean_error(spark_config, tiny_catalog, existing_space, tmp_path, monkeypatch, java_home):
    if java_home:
        monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    else:
        monkeypatch.delenv("JAVA_HOME", raising=False)
        monkeypatch.setenv("PATH", str(tmp_path))                # no java on the PATH
    before = _snapshot(existing_space)
    with pytest.raises(InputError, match="Java") as e:
        build({**spark_config, "output": str(existing_space), "spark": {"master": "local[2]"}}, show_progress=False,
              catalog=tiny_catalog)
    assert e.value.field == "JAVA_HOME"
    assert _snapshot(existing_space) == before


def test_an_unknown_engine_is_refused(spark_config, tiny_catalog):
    with pytest.raises(InputError) as e:
        build({**spark_config, "engine": "dask"}, catalog=tiny_catalog)
    assert e.value.field == "engine"
