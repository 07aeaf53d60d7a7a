"""The whole runner on a small slice of the real data (``--small``)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"


class TagEchoBackend:
    """Stands in for an LLM: writes a sentence from the tags it is asked to keep."""

    def config(self) -> dict[str, Any]:
        return {"backend": "tag-echo", "model": "tag-echo"}

    def generate(self, messages: list[dict[str, str]]) -> str:
        tags = messages[-1]["content"].split("own words: ")[1].split(". Do not add")[0]
        return f"An artist known for {tags.replace('; ', ', ')}."


@pytest.mark.skipif(not (DATA / "lastfm-hetrec2011-2k").exists(), reason="public data not found at ../shared/data")
def test_small_mode_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    import talkrec.descriptions.gen as gen_mod
    from talkrec.evaluation.runner import load_config, run_evaluation

    raw = yaml.safe_load((ROOT / "configs" / "eval-full.yaml").read_text())
    # the GEN view through the runner, with a stand-in backend (the real one is an LLM)
    raw["small"]["music"]["gen"] = {"backend": "tag-echo", "limit": 120, "cache": str(tmp_path / "gen.jsonl")}
    monkeypatch.setattr(gen_mod, "backend_from_config", lambda cfg: TagEchoBackend())
    cfg = load_config(raw, small=True)
    assert cfg["text_models"] == ["minilm"] and cfg["music"]["max_items"] <= 600   # the slice really applies
    rep = run_evaluation(raw, tmp_path, small=True)
    assert rep["details"]["music"]["n_items"] <= 600
    for f in ("report.md", "report.json", "ndcg_music_recommendation.png", "ndcg_movies_recommendation.png"):
        assert (tmp_path / f).exists(), f
    back = json.loads((tmp_path / "report.json").read_text())
    assert set(back["tasks"]) == {"music/recommendation", "music/retrieval", "movies/recommendation",
                                  "movies/retrieval"}
    music = rep["tasks"]["music/recommendation"]
    for name in ("MULTI TEMPLATE", "CF (ALS)", "TEXT minilm", "AUDIO (Spotify)", "PCA-200 CF+TEXT+AUDIO",
                 "RP-200 CF+TEXT+AUDIO", "CONCAT CF+TEXT", "Popularity"):
        row = music[name]
        assert 0.0 <= row["ndcg"]["lo"] <= row["ndcg"]["mean"] <= row["ndcg"]["hi"] <= 1.0
        assert 0.0 <= row["gini"] <= 1.0
    # the product's rows: spaces built by the pipeline, queried through the Space methods
    assert "MULTI talkrec (Space.similar)" in music and "EASE" in music
    movies = rep["tasks"]["movies/recommendation"]
    assert "ALS recommend (recalculate_user)" in movies and "MULTI TEMPLATE+OVERVIEW" in movies
    assert "MULTI talkrec (Space.recommend)" in movies and "EASE" in movies
    for ds in ("music", "movies"):
        assert "HYBRID talkrec (Space.search)" in rep["tasks"][f"{ds}/retrieval"]
        prod = rep["details"][ds]["fusion"]["chosen"]      # the build's settings, as served
        assert prod["fusion"]["max_epochs"] == 3 and prod["similar"]["strategy"] == "rrf"
        cold = rep["details"][ds]["cold_start"]
        assert cold["items"] > 0 and cold["cold"]["test"]["n"] > 0 and cold["ratio"]["test"] is not None
    assert rep["details"]["music"]["fusion"]["chosen"]["modality_weights"]["audio"] == 0.5
    assert {"fold0", "fold1", "full", "cold0", "cold1"} <= set(rep["details"]["movies"]["fusion"]["chosen"]["builds"])
    assert rep["seconds"]["total"] > 0 and "music/product-build" in rep["seconds"]
    # every evaluated user appears once over the folds
    users = rep["details"]["movies"]["per_query"]["recommendation"]["query_ids"]
    assert len(users) == len(set(users)) > 0
    assert "BM25" in rep["tasks"]["music/retrieval"]
    for name in ("HYBRID MULTI TEMPLATE + TEXT minilm", "HYBRID MULTI TEMPLATE + TEXT minilm + BM25",
                 "MULTI TEMPLATE+GEN", "HYBRID MULTI TEMPLATE+GEN + TEXT minilm"):
        assert name in rep["tasks"]["music/retrieval"], name
    gen = rep["details"]["music"]["gen"]
    assert gen["asked"] == 120 and 0 < gen["with_gen_view"] <= 120
    assert "MULTI TEMPLATE+GEN" in music and "tag-echo" in music["MULTI TEMPLATE+GEN"]["note"]
    # novelty@200 (bits of self-information): on music the popularity ranking recommends the least
    # novel artists; the movies slice is so small that every system's top 200 is most of it
    for ds in ("music", "movies"):
        assert all(0 < r["novelty"] < 12 for r in rep["tasks"][f"{ds}/recommendation"].values()), ds
    rows = rep["tasks"]["music/recommendation"]
    assert rows["Popularity"]["novelty"] == min(r["novelty"] for r in rows.values())
    assert rows["Popularity"]["novelty"] + 1 < rows["EASE"]["novelty"]
    assert "novelty@200 (bits)" in (tmp_path / "report.md").read_text()
    # CF must beat popularity on item-to-item music similarity even on a slice
    assert music["CF (ALS)"]["ndcg"]["mean"] > music["Popularity"]["ndcg"]["mean"]
    md = (tmp_path / "report.md").read_text()
    # the report renders again from its own JSON (where the bucket keys have become strings)
    from talkrec.evaluation.report import write_report

    (tmp_path / "again").mkdir()
    write_report(back, tmp_path / "again")
    assert (tmp_path / "again" / "report.md").read_text().count("| MULTI TEMPLATE |") == md.count("| MULTI TEMPLATE |")
    assert "0.5196" in md and "Modality-group entropy" in md
    assert not math.isnan(rep["details"]["music"]["analyses"]["ecl"]["mean_all_items"])
