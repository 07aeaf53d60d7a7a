"""End to end on slices of the real data: build through the CLI config path, then check
answers a person would expect (metal for "heavy metal", neighbours sharing tags)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from talkrec import Space
from talkrec.cli import app
from talkrec.pipeline import build, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FAST = {"fusion.learning_rate": 1e-3, "fusion.max_epochs": 40, "fusion.patience": 5,
        "cf.tune": False, "cf.params": {"factors": 32, "regularization": 0.5, "alpha": 2.0, "iterations": 10}}


@pytest.fixture(scope="module")
def lastfm_space(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "lastfm"
    cfg = load_config(CONFIGS / "lastfm.yaml", {"output": str(out), "data_root": str(data_root), "max_items": 1000, **FAST})
    build(cfg, show_progress=False)
    return Space.load(out)


def _has(tags, word: str) -> bool:
    return any(word in t for t in tags)


def test_heavy_metal_search_finds_metal(lastfm_space):
    for mode in ("multi", "hybrid"):
        hits = lastfm_space.search("heavy metal", k=10, mode=mode)
        metal = sum(_has(lastfm_space.item(h.item_id)["tags"], "metal") for h in hits)
        assert metal >= 7, (mode, [h.name for h in hits])


def test_neighbours_share_tags(lastfm_space):
    meta = lastfm_space.index.meta
    rng = np.random.default_rng(0)
    tagged = [i for i, t in zip(meta["item_id"], meta["tags"]) if isinstance(t, list) and len(t) >= 5]
    sample = rng.choice(tagged, size=40, replace=False)
    share, rand = [], []
    all_ids = meta["item_id"].tolist()
    for iid in sample:
        top = set(lastfm_space.item(iid)["tags"][:3])
        nb = lastfm_space.similar(iid, k=10)
        share.append(np.mean([bool(top & set(lastfm_space.item(h.item_id)["tags"])) for h in nb]))
        rand.append(np.mean([bool(top & set(lastfm_space.item(j)["tags"])) for j in rng.choice(all_ids, 10)]))
    assert np.mean(share) > 0.6
    assert np.mean(share) > np.mean(rand) + 0.2


def test_audio_modality_and_cold_start_on_real_space(lastfm_space, tmp_path):
    assert set(lastfm_space.modalities) == {"text", "cf", "audio"}
    meta = lastfm_space.index.meta
    with_audio = meta[meta["modalities"].apply(lambda m: "audio" in list(m))]
    assert 0 < len(with_audio) < len(meta)  # a real missing-modality case
    hits = lastfm_space.search("filter check", k=5, where="tag=metal,listeners>=5")
    assert all("metal" in lastfm_space.item(h.item_id)["tags"] and h.metadata["listeners"] >= 5 for h in hits)


def test_cli_json_answers(lastfm_space):
    runner = CliRunner()
    r = runner.invoke(app, ["search", "heavy metal", "--space", str(lastfm_space.path), "--k", "3", "--json"])
    assert r.exit_code == 0, r.output
    hits = json.loads(r.output)
    assert len(hits) == 3 and {"item_id", "name", "score", "metadata"} <= set(hits[0])
    r = runner.invoke(app, ["similar", "Metallica", "--space", str(lastfm_space.path), "--json", "--where", "tag=metal"])
    assert r.exit_code == 0, r.output
    assert all("Metallica" != h["name"] for h in json.loads(r.output))
    r = runner.invoke(app, ["recommend", "--user", "2", "--space", str(lastfm_space.path), "--json", "--k", "5"])
    assert r.exit_code == 0 and len(json.loads(r.output)) == 5
    r = runner.invoke(app, ["similar", "No Such Artist 123", "--space", str(lastfm_space.path)])
    assert r.exit_code == 2 and "unknown item" in r.output
    r = runner.invoke(app, ["search", "x", "--space", str(lastfm_space.path), "--where", "year>>3"])
    assert r.exit_code == 2 and "filter" in r.output


def test_movielens_slice_builds(data_root, tmp_path):
    out = tmp_path / "ml"
    cfg = load_config(CONFIGS / "movielens.yaml", {"output": str(out), "data_root": str(data_root), "max_items": 600, **FAST})
    build(cfg, show_progress=False)
    s = Space.load(out)
    assert s.config["descriptions"]["views"] == ["template", "overview"]
    hits = s.search("animated movie for children", k=10)
    assert sum("Animation" in (h.metadata.get("genres") or []) for h in hits) >= 5, [h.name for h in hits]
    assert all(h.metadata["year"] < 2000 for h in s.search("comedy", k=5, where="year<2000"))
    # TMDB's numbers are numeric metadata: a filter on them, and the prior of movies without ratings
    popular = s.search("comedy", k=5, where="tmdb_votes>=1000")
    assert popular and all(s.item(h.item_id)["tmdb_votes"] >= 1000 for h in popular)
    assert s.config["recommend"].get("cold_prior") == ["tmdb_votes"]
