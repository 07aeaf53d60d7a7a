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


def test_a_search_hit_s_place_lists_and_words_are_those_search_serves(space):
    text = "smooth jazz saxophone"
    hits = space.search(text, k=200)
    for i, h in enumerate(hits[:3]):
        ex = space.explain_search(text, h.item_id)
        assert (ex["mode"], ex["score_kind"], ex["rank"], ex["name"]) == ("hybrid", "rrf", i + 1, h.name)
        assert ex["score"] == pytest.approx(h.score, abs=1e-12)
        assert sum(li["part"] for li in ex["lists"]) == pytest.approx(h.score, abs=1e-12)
        assert [li["list"] for li in ex["lists"]] == ["fused", "text", "lexical", "name"]   # the defaults
        q = space.text_query_vector(text)
        assert ex["cosine"] == pytest.approx(float(space.item_vector(h.item_id) @ q), abs=1e-6)
    # BM25 alone: the words' parts add up to the served score, largest first
    lex = space.search(text, k=200, mode="lexical")
    ex = space.explain_search(text, lex[0].item_id, mode="lexical")
    assert (ex["score_kind"], ex["rank"], ex["lists"]) == ("bm25", 1, [])
    parts = [t["score"] for t in ex["terms"]]
    assert parts == sorted(parts, reverse=True) and {t["term"] for t in ex["terms"]} <= {"smooth", "jazz", "saxophone",
                                                                                          "smooth jazz", "jazz saxophone"}
    assert sum(parts) == pytest.approx(lex[0].score, rel=1e-9)


def test_a_search_explanation_refuses_what_search_refuses(space):
    from talkrec.errors import InputError, NotFoundError

    with pytest.raises(NotFoundError):
        space.explain_search("jazz", "nope")
    with pytest.raises(InputError, match="query text is empty"):
        space.explain_search("  ", "jazz1")
    with pytest.raises(InputError, match="mode must be one of"):
        space.explain_search("jazz", "jazz1", mode="fuzzy")
    ex = space.explain_search("jazz", "jazz1", mode="text")
    assert ex["score_kind"] == "text_cosine" and ex["lists"] == []


def test_the_cli_explains_a_search_hit(tiny_space_dir, space):
    first = space.search("smooth jazz saxophone", k=1)[0]
    r = run("explain", first.item_id, "--query", "smooth jazz saxophone", "--space", str(tiny_space_dir))
    assert r.exit_code == 0, r.output
    assert f"{first.name} ({first.item_id}) for 'smooth jazz saxophone'" in r.output
    assert f"served: #1 of the search's results, score {first.score:.4f} (mode hybrid, scores: rrf)" in r.output
    assert "text model (cosine)" in r.output and "query words it has (BM25): " in r.output
    r = run("explain", first.item_id, "--query", "smooth jazz saxophone", "--mode", "lexical", "--json",
            "--space", str(tiny_space_dir))
    assert r.exit_code == 0 and json.loads(r.output)["score_kind"] == "bm25", r.output


@pytest.mark.parametrize("args, message", [
    (["jazz1"], "give one of B (why B is next to A), --query TEXT (why A is a hit for it), --user or --items"),
    (["jazz1", "jazz2", "--query", "jazz"], "got B and --query"),
    (["jazz1", "jazz2", "--mode", "text"], "--mode: applies only with --query"),
])
def test_the_cli_says_what_explain_needs(tiny_space_dir, args, message):
    r = run("explain", *args, "--space", str(tiny_space_dir))
    assert r.exit_code == 2 and message in r.output, r.output


def test_a_recommendation_s_place_terms_and_history_items(space, tiny_space_dir):
    from talkrec.encoders.ease import EASE

    hist = ["jazz1", "jazz2", "metal1"]
    hits = space.recommend(items=hist, k=200)
    ease = EASE.load(tiny_space_dir / "ease")
    z = np.load(tiny_space_dir / "cf" / "factors.npz", allow_pickle=False)
    F = dict(zip(z["item_ids"].astype(str), z["item_factors"]))
    for i, h in enumerate(hits[:3]):
        ex = space.explain_recommend(h.item_id, items=hist)
        assert (ex["strategy"], ex["rank"], ex["in_history"], ex["name"]) == ("blend", i + 1, False, h.name)
        assert ex["score"] == pytest.approx(h.score, abs=1e-9)
        assert [p["part"] for p in ex["parts"]] == ["fused", "ease", "als", "cold"]
        assert sum(p["value"] for p in ex["parts"]) == pytest.approx(h.score, abs=1e-9)
        because = ex["because"]
        assert sorted(b["item_id"] for b in because) == sorted(hist)
        assert [b["cosine"] for b in because] == sorted((b["cosine"] for b in because), reverse=True)
        for b in because:       # EASE's B[h, item] and the ALS dot, read from the space's own files
            assert b["cosine"] == pytest.approx(float(space.item_vector(b["item_id"]) @ space.item_vector(h.item_id)))
            assert b["ease"] == pytest.approx(float(ease.score([b["item_id"]])[ease._pos[h.item_id]]), abs=1e-7)
            assert b["als"] == pytest.approx(float(F[b["item_id"]] @ F[h.item_id]), rel=1e-5)
    ex = space.explain_recommend("jazz1", items=hist)
    assert (ex["rank"], ex["in_history"], ex["parts"]) == (None, True, [])
    assert "jazz1" not in [b["item_id"] for b in ex["because"]]


def test_a_user_s_recommendation_and_the_rrf_strategy(tiny_space_dir):
    sp = Space.load(tiny_space_dir)
    user = sp.users(limit=1)[0][0]
    top = sp.recommend(user=user, k=2)[1]
    ex = sp.explain_recommend(top.item_id, user=user)
    assert ex["rank"] == 2 and {b["item_id"] for b in ex["because"]} <= set(sp.user_history(user))
    sp.config["recommend"] = {**sp.config["recommend"], "strategy": "rrf"}
    hits = sp.recommend(items=["jazz1", "jazz2"], k=3)
    ex = sp.explain_recommend(hits[2].item_id, items=["jazz1", "jazz2"])
    assert (ex["strategy"], ex["rank"]) == ("rrf", 3) and [p["part"] for p in ex["parts"]] == ["fused", "cf"]
    assert sum(p["value"] for p in ex["parts"]) == pytest.approx(hits[2].score, abs=1e-12)
    assert all((p["rank"] is None) == (p["value"] == 0) for p in ex["parts"])


def test_a_recommendation_explanation_needs_one_history(space):
    from talkrec.errors import InputError, NotFoundError

    with pytest.raises(InputError, match="exactly one of items or user"):
        space.explain_recommend("jazz1")
    with pytest.raises(InputError, match="exactly one of items or user"):
        space.explain_recommend("jazz1", items=["jazz2"], user="u1")
    with pytest.raises(NotFoundError):
        space.explain_recommend("nope", items=["jazz2"])


def test_the_cli_explains_a_recommendation(tiny_space_dir, space):
    top = space.recommend(items=["jazz1", "jazz2"], k=1)[0]
    r = run("explain", top.item_id, "--items", "jazz1,Jazz Band 2", "--space", str(tiny_space_dir))
    assert r.exit_code == 0, r.output
    assert f"{top.name} ({top.item_id}) recommended" in r.output
    assert f"served: #1 of the recommendations, score {top.score:.4f} (strategy blend)" in r.output
    assert "EASE (z-score)" in r.output and "because of" in r.output and "Jazz Band 2 (jazz2)" in r.output
    r = run("explain", top.item_id, "--items", "jazz1,jazz2", "--json", "--space", str(tiny_space_dir))
    assert json.loads(r.output)["rank"] == 1
    r = run("explain", top.item_id, "--items", "jazz1", "--user", "u1", "--space", str(tiny_space_dir))
    assert r.exit_code == 2 and "got --user and --items" in r.output, r.output


def test_a_recommendation_away_from_negative_examples(space):
    hist, neg = ["jazz1", "jazz2"], ["jazz3"]
    hits = space.recommend(items=hist, negative=neg, negative_weight=0.5, k=200)
    plain = space.recommend(items=hist, k=200)
    assert [h.item_id for h in hits] != [h.item_id for h in plain]          # the negatives change the list
    ex = space.explain_recommend(hits[1].item_id, items=hist, negative=neg, negative_weight=0.5)
    assert (ex["rank"], ex["in_negative"]) == (2, False)
    assert sum(p["value"] for p in ex["parts"]) == pytest.approx(hits[1].score, abs=1e-9)
    ex = space.explain_recommend("jazz3", items=hist, negative=neg)
    assert (ex["rank"], ex["in_negative"], ex["in_history"], ex["parts"]) == (None, True, False, [])


def test_the_cli_takes_negative_examples_only_with_a_history(tiny_space_dir, space):
    top = space.recommend(items=["jazz1"], negative=["jazz2"], k=1)[0]
    r = run("explain", top.item_id, "--items", "jazz1", "--negative", "jazz2", "--json", "--space", str(tiny_space_dir))
    assert r.exit_code == 0 and json.loads(r.output)["rank"] == 1, r.output
    r = run("explain", "jazz1", "jazz2", "--negative", "jazz3", "--space", str(tiny_space_dir))
    assert r.exit_code == 2 and "--negative: applies only with --user or --items" in r.output, r.output
