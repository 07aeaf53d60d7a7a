"""The whole runner on a small slice of the real data (``--small``)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"


@pytest.mark.skipif(not (DATA / "lastfm-hetrec2011-2k").exists(), reason="public data not found at ../shared/data")
def test_small_mode_end_to_end(tmp_path: Path) -> None:
    from talkrec.evaluation.runner import run_evaluation

    from talkrec.evaluation.runner import load_config

    cfg = load_config(ROOT / "configs" / "eval-full.yaml", small=True)
    assert cfg["text_models"] == ["minilm"] and cfg["music"]["max_items"] <= 600   # the slice really applies
    rep = run_evaluation(ROOT / "configs" / "eval-full.yaml", tmp_path, small=True)
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
    movies = rep["tasks"]["movies/recommendation"]
    assert "ALS recommend (recalculate_user)" in movies and "MULTI TEMPLATE+OVERVIEW" in movies
    # every evaluated user appears once over the folds
    users = rep["details"]["movies"]["per_query"]["recommendation"]["query_ids"]
    assert len(users) == len(set(users)) > 0
    assert "BM25" in rep["tasks"]["music/retrieval"]
    # CF must beat popularity on item-to-item music similarity even on a slice
    assert music["CF (ALS)"]["ndcg"]["mean"] > music["Popularity"]["ndcg"]["mean"]
    md = (tmp_path / "report.md").read_text()
    assert "0.5196" in md and "Modality-group entropy" in md
    assert not math.isnan(rep["details"]["music"]["analyses"]["ecl"]["mean_all_items"])
