"""The one-command study on a tiny synthetic log (1 epoch, no text model)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from talkrec.errors import InputError
from talkrec.sessions import SessionRecommender
from talkrec.sessions.study import run_study
from talkrec.sessions.study_inputs import parse_init


def test_parse_init_names():
    assert parse_init("text@native-tuned-frozen") == {"name": "text@native-tuned-frozen", "source": "text",
                                                       "dim": "native", "tuned": True, "frozen": True}
    assert parse_init("random@384")["dim"] == "384"
    assert parse_init("space:multi")["source"] == "space:multi"
    with pytest.raises(InputError):
        parse_init("random-tuned")
    with pytest.raises(InputError):
        parse_init("text@@3")


def test_run_study_on_a_tiny_log(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for u in range(30):
        t = 0
        for s in range(4):
            t += 10_000
            start = int(rng.integers(0, 20))
            for j in range(int(rng.integers(3, 25))):
                rows.append((f"u{u}", f"i{(start + j) % 20}", t + 60 * j))
    pd.DataFrame(rows, columns=["user", "item", "ts"]).to_csv(tmp_path / "log.csv", index=False)
    ids = np.array([f"i{j}" for j in range(20)])
    np.savez(tmp_path / "emb.npz", ids=ids, X=rng.standard_normal((20, 6)).astype(np.float32))
    cfg = {"dataset": "log", "log": {"path": str(tmp_path / "log.csv"), "user_col": "user", "item_col": "item",
                                     "time_col": "ts"},
           "output": str(tmp_path / "out"), "jobs": 1, "bootstrap": 50, "min_item_count": 1,
           "families": {"masked": {"split": "user", "fractions": [0.6, 0.2, 0.2], "task": "last_item"},
                        "next_item": {"split": "rta", "n_validation": 8, "n_test": 8, "min_length": 12,
                                      "remove_repeats": True, "task": "continuation"}},
           "model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "max_length": 10, "max_epochs": 1,
                     "batch_size": 32, "device": "cpu"},
           "next_item": {"n_negatives": 5},
           "embeddings": {"dim": 4, "files": {"mine": str(tmp_path / "emb.npz")}, "tuning": {"epochs": 1}},
           "inits": ["random", "mine", "mine@native-tuned", "audio"]}
    rep = run_study(cfg)
    out = tmp_path / "out"
    assert (out / "report.md").exists() and (out / "curves-masked.png").exists()
    assert (out / "curves-next_item.png").stat().st_size > 1000
    res = json.loads((out / "results.json").read_text())
    runs = {(r["family"], r["init"], r["dim"]) for r in res["results"]}
    # random at 4 (explicit) and 6 (matched to mine@native) are both there
    assert ("masked", "random", 4) in runs and ("masked", "random", 6) in runs
    assert ("next_item", "mine@native-tuned", 6) in runs and ("masked", "mine", 4) in runs
    assert rep["meta"]["families"]["masked"]["skipped_inits"] == ["audio"]
    s = res["results"][0]["summary"]["ndcg@20"]
    assert s["lo"] <= s["mean"] <= s["hi"]
    md = (out / "report.md").read_text()
    assert "NDCG@10" in md and "MAP@20" in md and "Recall@20" in md
    rec = SessionRecommender.load(out / "models" / "next_item")
    assert len(rec.continue_session(["i1", "i2"], k=3)) == 3
