"""``Space.explain`` says where ``b`` stands in what ``Space.similar(a)`` serves - its rank,
its score and, under ``similar.strategy: rrf``, each fused list's rank of it and part of the
score - besides the fused cosine's modality shares; ``talkrec explain`` prints it as text
(``--json``: as the API gives it)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from talkrec.cli import app
from talkrec.space import Space
from tiny_data import TINY_NOVELTY


@pytest.fixture(scope="module")
def space(tiny_space_dir):
    return Space.load(tiny_space_dir)


def test_the_rank_and_score_are_those_similar_serves_and_the_parts_add_up(space):
    a = "jazz3"
    hits = space.similar(a, k=200)
    q = space.item_vector(a)
    cos = {space.index.id_at(p): float(v) for p, v in enumerate(space.index.scores(q))}
    for i, h in enumerate(hits[:4]):
        ex = space.explain(a, h.item_id)
        served = ex["similar"]
        assert ex["names"] == {"a": space.item(a)["name"], "b": h.name}
        assert (served["strategy"], served["rank"], served["novelty"]) == ("rrf", i + 1, 0.0)
        assert served["score"] == pytest.approx(h.score, abs=1e-12)
        assert sum(li["part"] for li in served["lists"]) == pytest.approx(h.score, abs=1e-12)
        by = {li["list"]: li for li in served["lists"]}
        # the fused list's rank: 1 + the items other than a with a higher cosine to a
        higher = sum(1 for j, v in cos.items() if j not in (a, h.item_id) and v > cos[h.item_id])
        assert by["fused"]["rank"] == higher + 1
        assert by["fused"]["part"] == pytest.approx(1.0 / (60 + higher + 1))
        assert all(li["weight"] > 0 and (li["rank"] is None) == (li["part"] == 0) for li in served["lists"])


def test_an_item_next_to_itself_has_no_place(space):
    served = space.explain("jazz3", "jazz3")["similar"]
    assert (served["rank"], served["score"], served["lists"]) == (None, None, [])


def test_under_knn_the_place_is_the_cosine_order(tiny_space_dir):
    sp = Space.load(tiny_space_dir)
    sp.config["similar"] = {"strategy": "knn"}
    hits = sp.similar("metal1", k=200)
    served = sp.explain("metal1", hits[2].item_id)["similar"]
    assert (served["strategy"], served["rank"], served["lists"]) == ("cosine", 3, [])
    assert served["score"] == pytest.approx(hits[2].score)


def test_a_default_novelty_is_said_and_the_rank_is_the_reranked_one(tiny_novelty_space_dir):
    sp = Space.load(tiny_novelty_space_dir)
    hits = sp.similar("jazz3", k=200)
    plain = sp.similar("jazz3", k=200, novelty=0.0)
    moved = next(i for i, (h, g) in enumerate(zip(hits, plain)) if h.item_id != g.item_id)
    served = sp.explain("jazz3", hits[moved].item_id)["similar"]
    assert served["novelty"] == TINY_NOVELTY[1] and served["rank"] == moved + 1
    assert served["score"] == pytest.approx(hits[moved].score)


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_the_cli_prints_the_place_the_lists_and_the_shares(tiny_space_dir, space):
    first = space.similar("jazz3", k=1)[0]
    r = run("explain", "jazz3", first.item_id, "--space", str(tiny_space_dir))
    assert r.exit_code == 0, r.output
    name_a = space.item("jazz3")["name"]
    assert f"{first.name} ({first.item_id}) next to {name_a} (jazz3)" in r.output
    assert f"served: #1 of {name_a}'s similar items, score {first.score:.4f}" in r.output
    assert "fused space (cosine)" in r.output and "interactions (EASE)" in r.output
    assert "by modality pair" in r.output and "shared tags" in r.output
    r = run("explain", "jazz3", first.item_id, "--space", str(tiny_space_dir), "--json")
    assert r.exit_code == 0, r.output
    ex = json.loads(r.output)
    assert ex["similar"]["rank"] == 1 and np.isclose(ex["cosine"], space.explain("jazz3", first.item_id)["cosine"])


def test_the_cli_names_an_unknown_item(tiny_space_dir):
    r = run("explain", "jazz3", "Jazz Quartet 9", "--space", str(tiny_space_dir))
    assert r.exit_code != 0 and "unknown item 'Jazz Quartet 9'" in r.output, r.output
