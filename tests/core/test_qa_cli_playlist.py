"""``talkrec playlist`` takes the options of the HTTP API's playlist routes and, with
``--json``, prints what they return: the items and how coherent the playlist is (before, the
JSON was the items alone, and ``--pool``, ``--recency``, ``--max-per-artist`` and
``--artist-field`` did not exist). ``--n`` is capped as the API caps it."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from talkrec.cli import app
from talkrec.limits import PLAYLIST_MAX
from talkrec.space import Space


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_generate_json_carries_the_items_and_the_coherence_figures(tiny_space_dir):
    r = run("playlist", "--query", "jazz", "--n", "3", "--json", "--space", str(tiny_space_dir))
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    hits, stats = Space.load(tiny_space_dir).generate_playlist("jazz", 3)
    assert [h["item_id"] for h in body["items"]] == [h.item_id for h in hits]
    assert body["stats"] == pytest.approx(stats)
    assert set(body["stats"]) >= {"coherence", "relevance", "coherence_plain_topn"}
    assert body["score_kind"] in {"cosine", "rrf", "text_cosine", "bm25"}


def test_the_text_may_come_first_as_in_search(tiny_space_dir):
    """``talkrec playlist "rainy day jazz"`` is ``--query "rainy day jazz"`` (it was refused as
    an unexpected extra argument)."""
    a = run("playlist", "jazz band", "--n", "4", "--json", "--space", str(tiny_space_dir))
    b = run("playlist", "--query", "jazz band", "--n", "4", "--json", "--space", str(tiny_space_dir))
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert json.loads(a.stdout)["items"] == json.loads(b.stdout)["items"]


def test_continue_json_carries_seeds_coherence_and_notes(tiny_space_dir):
    r = run("playlist", "--seeds", "jazz1,jazz2", "--n", "3", "--max-per-artist", "1", "--recency", "0.5",
            "--json", "--space", str(tiny_space_dir))
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    c = Space.load(tiny_space_dir).continuation(["jazz1", "jazz2"], 3, recency=0.5, max_per_artist=1)
    assert [h["item_id"] for h in body["items"]] == [h.item_id for h in c.items]
    assert body["seeds"] == ["jazz1", "jazz2"] and body["score_kind"] == "cosine"
    assert body["coherence"] == pytest.approx(c.coherence) and body["coherence_seeds"] == pytest.approx(c.coherence_seeds)
    assert body["notes"] == c.notes and any("artist" in n for n in body["notes"])   # the tiny space has no artist


def test_recency_changes_the_continuation_as_in_the_api(tiny_space_dir):
    def ids(recency: str) -> list[str]:
        r = run("playlist", "--seeds", "jazz1,pop1", "--n", "8", "--recency", recency, "--json",
                "--space", str(tiny_space_dir))
        assert r.exit_code == 0, r.output
        return [h["item_id"] for h in json.loads(r.stdout)["items"]]
    s = Space.load(tiny_space_dir)
    for rec in ("0.1", "1"):
        assert ids(rec) == [h.item_id for h in s.continue_playlist(["jazz1", "pop1"], 8, recency=float(rec))]


def test_the_table_output_says_how_coherent_the_continuation_is(tiny_space_dir):
    r = run("playlist", "--seeds", "jazz1,jazz2", "--n", "3", "--method", "knn", "--space", str(tiny_space_dir))
    assert r.exit_code == 0 and "coherence" in r.stdout and "seeds alone" in r.stdout and "knn" in r.stdout, r.output


@pytest.mark.parametrize("args, message", [
    (["--query", "jazz", "--n", "5", "--pool", "3"], "--pool (3) must be at least --n (5)"),
    (["--query", "jazz", "--recency", "0.5"], "--recency: continue a playlist"),
    (["--query", "jazz", "--max-per-artist", "1"], "--max-per-artist: continue a playlist"),
    (["--seeds", "jazz1", "--pool", "50"], "--pool: applies only with --query"),
    (["--seeds", "jazz1", "--recency", "0"], "recency must be a number in (0, 1]"),
    (["jazz", "--query", "jazz"], "give the text once: as TEXT or as --query"),
    (["jazz", "--seeds", "jazz1"], "give exactly one of TEXT (or --query) or --seeds"),
    ([], "give exactly one of TEXT (or --query) or --seeds"),
    (["jazz", "--recency", "0.5"], "--recency: continue a playlist"),
])
def test_bad_playlist_options_are_refused_with_the_reason(tiny_space_dir, args, message):
    r = run("playlist", *args, "--space", str(tiny_space_dir))
    assert r.exit_code != 0 and message in r.output, r.output


def test_n_is_capped_as_in_the_api(tiny_space_dir):
    r = run("playlist", "--query", "jazz", "--n", str(PLAYLIST_MAX + 1), "--space", str(tiny_space_dir))
    assert r.exit_code != 0 and str(PLAYLIST_MAX) in r.output, r.output


def test_the_api_and_the_cli_share_one_playlist_cap():
    from talkrec.service import schemas as S
    assert S.GenerateRequest.model_fields["n"].metadata[-1].le == PLAYLIST_MAX
    assert S.ContinueRequest.model_fields["k"].metadata[-1].le == PLAYLIST_MAX
