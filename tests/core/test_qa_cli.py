"""QA findings on the command line and the build's checks: an output folder a build would
destroy, config values checked before any stage, an evaluation against a catalog without its
ids, data printed as written, errors on stderr, --max-items, a one-modality catalog, --mode
with --user, the records file of ``talkrec add``, ids holding commas."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_data import copy_space
from typer.testing import CliRunner

from talkrec.cli import app
from talkrec.errors import InputError

REPO = Path(__file__).resolve().parents[2]


def run(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture()
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")


@pytest.fixture(scope="module")
def odd_space(tiny_space_dir, tmp_path_factory):
    """The tiny space with items whose name, tags and id look like markup, or hold commas."""
    from talkrec import Space

    d = copy_space(tiny_space_dir, tmp_path_factory.mktemp("odd") / "space")
    s = Space.load(d)
    s.add_items([{"item_id": "live1", "name": "[Live] at [b]W[/b]", "tags": ["[live]", "metal"]},
                 {"item_id": "AC,DC", "name": "Thunder Band", "tags": ["metal"]},
                 {"item_id": "emoji", "name": "Song :a: b", "tags": ["metal"]}])
    s.close()
    return d


# ------------------------------------------------------------------ 1: the output folder
def test_a_build_refuses_a_folder_that_is_not_a_space_and_deletes_nothing(tmp_path, tiny_catalog):
    from talkrec.pipeline import build

    mine = tmp_path / "mydata"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    with pytest.raises(InputError, match=r"mydata exists, is not empty \(notes.txt\) and is not a talkrec space") as e:
        build({"name": "x", "output": str(mine)}, show_progress=False, catalog=tiny_catalog)
    assert e.value.field == "output"
    holder = tmp_path / "spaces"
    (holder / "one").mkdir(parents=True)
    (holder / "one" / "space.json").write_text("{}")
    with pytest.raises(InputError, match="is not a talkrec space"):
        build({"name": "x", "output": str(holder)}, show_progress=False, catalog=tiny_catalog)
    assert (mine / "notes.txt").read_text() == "precious" and (holder / "one" / "space.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mydata", "spaces"]      # no .build, no LOCK


def test_the_output_folder_may_be_new_empty_or_a_space(tmp_path):
    from talkrec.pipeline.schema import output_folder

    assert output_folder({"output": str(tmp_path / "new")}) == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    assert output_folder({"output": str(tmp_path / "empty")}) == tmp_path / "empty"
    (tmp_path / "space").mkdir()
    for name in ("space.json", "notes.txt"):
        (tmp_path / "space" / name).write_text("{}")
    assert output_folder({"output": str(tmp_path / "space")}) == tmp_path / "space"
    (tmp_path / "failed").mkdir()
    (tmp_path / "failed" / "LOCK").write_text("")                          # what a failed build leaves
    assert output_folder({"output": str(tmp_path / "failed")}) == tmp_path / "failed"
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        output_folder({"output": str(tmp_path / "file")})
    with pytest.raises(InputError, match="cannot be a build's output"):
        output_folder({"output": "/"})


def test_output_dot_is_resolved_and_refused_cleanly(tmp_path, monkeypatch, wide):
    work = tmp_path / "work"
    work.mkdir()
    (work / "build.yaml").write_text("name: r\noutput: out\n")
    monkeypatch.chdir(work)
    r = run("build", "build.yaml", "--output", ".", "--no-progress", "--quiet")
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and "ValueError" not in r.output
    assert f"{work} exists, is not empty (build.yaml)" in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"] and sorted(p.name for p in work.iterdir()) == [
        "build.yaml"]


# ------------------------------------------------------------------ 2: config values
@pytest.mark.parametrize("block, field, allowed", [
    ({"search": {"mode": "txt"}}, "search.mode", "one of 'hybrid', 'multi', 'text', 'lexical'"),
    ({"cf": {"tune": True, "n_trials": -3}}, "cf.n_trials", "an integer >= 1"),
    ({"cf": {"tune": "yes"}}, "cf.tune", "true or false"),
    ({"cf": {"params": {"factors": 0}}}, "cf.params.factors", "an integer >= 1"),
    ({"index": {"ann": "maybe"}}, "index.ann", "true or false"),
    ({"index": {"ef_search": 0}}, "index.ef_search", "an integer >= 1"),
    ({"search": {"rrf_depth": 0}}, "search.rrf_depth", "an integer >= 1"),
    ({"search": {"hybrid_bm25_weight": -1}}, "search.hybrid_bm25_weight", "a number >= 0"),
    ({"max_items": 0}, "max_items", "an integer >= 1"),
    ({"max_items": -5}, "max_items", "an integer >= 1"),
])
def test_config_values_are_checked_before_any_stage(block, field, allowed, tmp_path):
    from talkrec.pipeline import DEFAULTS
    from talkrec.pipeline.schema import check_build_config
    from talkrec.config import merge

    with pytest.raises(InputError, match=f"{field} must be {allowed}") as e:
        check_build_config(merge(DEFAULTS, {"name": "x", "output": str(tmp_path / "s"), **block}))
    assert e.value.field == field


def test_the_repository_build_configs_pass_the_value_checks():
    from talkrec.pipeline import load_config
    from talkrec.pipeline.serving import resolve_profile

    paths = sorted((REPO / "configs").glob("lastfm*.yaml")) + sorted((REPO / "configs").glob("movielens*.yaml"))
    assert paths
    for p in paths:
        resolve_profile(load_config(p))


# ------------------------------------------------------------------ 3: evaluation vs the catalog's ids
def _product_builder(tmp_path: Path, ids: list[str]):
    from talkrec.evaluation.product import ProductBuilder

    pd.DataFrame({"item_id": ids, "name": [f"N {i}" for i in ids]}).to_csv(tmp_path / "items.csv", index=False)
    (tmp_path / "mine.yaml").write_text(f"name: mine\ndataset: generic\noutput: {tmp_path / 'space'}\n"
                                        "catalog:\n  items: {path: items.csv}\n")
    cfg = {"music": {"build_config": str(tmp_path / "mine.yaml")}, "data_root": str(tmp_path), "seed": 0,
           "cache_dir": str(tmp_path / "cache")}
    return ProductBuilder(cfg, "music")


class _EvalCatalog:
    item_ids = np.array(["100", "101", "102", "103"])


def test_an_evaluation_against_a_catalog_without_its_ids_is_an_error(tmp_path):
    pb = _product_builder(tmp_path, ["a1", "a2"])
    with pytest.raises(InputError, match="shares no item ids with the evaluation data") as e:
        pb.catalog(_EvalCatalog())
    assert e.value.field == "music.build_config" and "mine.yaml" in str(e.value)


def test_an_evaluation_with_some_ids_warns_how_many_queries_match(tmp_path, caplog):
    pb = _product_builder(tmp_path, ["a1", "101", "103"])
    with caplog.at_level(logging.WARNING, logger="talkrec.evaluation.product"):
        own = pb.catalog(_EvalCatalog(), query_ids=["100", "101", "103"])
    assert len(own.item_ids) == 3
    assert "has 2 of the evaluation's 3 query items" in caplog.text and "other 1 get no ranking" in caplog.text


def test_an_evaluation_of_its_own_dataset_is_not_checked(tmp_path):
    from talkrec.evaluation.product import ProductBuilder

    cfg = {"music": {"build_config": str(REPO / "configs" / "lastfm.yaml")}, "data_root": str(tmp_path), "seed": 0,
           "cache_dir": str(tmp_path / "cache")}
    cat = _EvalCatalog()
    assert ProductBuilder(cfg, "music").catalog(cat) is cat


# ------------------------------------------------------------------ 4 and 5: data as written, errors on stderr
def test_errors_show_user_values_as_written_on_stderr(tiny_space_dir, wide):
    r = run("similar", "[bold]x", "-s", str(tiny_space_dir))
    assert r.exit_code == 2 and "unknown item '[bold]x'" in r.stderr and r.stdout == "", r.output
    r = run("search", "metal", "-s", str(tiny_space_dir), "--range", "year:a:b")
    assert r.exit_code == 2 and "got 'year:a:b'" in r.stderr and r.stdout == "", r.output


def test_json_stdout_holds_no_error_and_errors_are_not_wrapped(tiny_space_dir, wide):
    r = run("search", "jazz", "-s", str(tiny_space_dir), "--json", "--where", "bogus=1")
    assert r.exit_code == 2 and r.stdout == ""
    line = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert len(line) == 1 and len(line[0]) > 80 and "unknown filter field 'bogus'" in line[0], r.stderr
    assert line[0].rstrip().endswith("]"), r.stderr                    # the list of fields on the same line
    r = run("search", "jazz", "-s", str(tiny_space_dir), "--json", "-k", "3")
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 3


def test_tables_show_names_and_tags_as_written(odd_space, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    r = run("similar", "metal1", "-s", str(odd_space), "-k", "63")
    assert r.exit_code == 0, r.output
    assert "[Live] at [b]W[/b] (live1)" in r.stdout and "[live], metal" in r.stdout, r.stdout
    assert "Song :a: b (emoji)" in r.stdout, r.stdout
    r = run("similar", "[Live] at [b]W[/b]", "-s", str(odd_space), "-k", "2")
    assert r.exit_code == 0 and "similar to [Live] at [b]W[/b]" in r.stdout, r.stdout


# ------------------------------------------------------------------ 6: --max-items
@pytest.mark.parametrize("n", ["0", "-5"])
def test_max_items_must_be_positive(n, tmp_path):
    (tmp_path / "b.yaml").write_text(f"name: r\noutput: {tmp_path / 'out'}\n")
    r = run("build", str(tmp_path / "b.yaml"), "--max-items", n, "--no-progress", "--quiet")
    assert r.exit_code == 2 and "'--max-items'" in r.output, r.output
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ 7: one modality
def test_a_catalog_of_items_only_says_what_to_add(tmp_path, tiny_catalog):
    from talkrec.pipeline import build

    tiny_catalog.interactions = None
    with pytest.raises(InputError, match=r"only text \(the catalog has no interactions and the config has no "
                                         r"content: block; the catalog's vectors \['audio'\]") as e:
        build({"name": "x", "output": str(tmp_path / "s")}, show_progress=False, catalog=tiny_catalog)
    assert "Add interactions" in str(e.value) and "content: {audio: {source: vectors}}" in str(e.value)
    assert not (tmp_path / "s").exists() and not [p for p in (tmp_path / "s.build").rglob("*") if p.is_file()]


def test_the_one_modality_error_names_the_config_file(tmp_path, wide):
    pd.DataFrame({"item_id": ["a1", "a2"], "name": ["A", "B"]}).to_csv(tmp_path / "items.csv", index=False)
    (tmp_path / "only.yaml").write_text(f"name: r\ndataset: generic\noutput: {tmp_path / 'only'}\n"
                                        "catalog:\n  items: {path: items.csv}\n")
    r = run("build", str(tmp_path / "only.yaml"), "--no-progress", "--quiet")
    assert r.exit_code == 2 and f"{tmp_path / 'only.yaml'}: field 'catalog': fusion needs" in r.stderr, r.output


# ------------------------------------------------------------------ 8: --mode with --user
def test_mode_is_checked_with_user(tiny_space_dir, wide):
    s = str(tiny_space_dir)
    r = run("search", "metal", "-s", s, "--user", "umetal0", "--mode", "bogus")
    assert r.exit_code == 2 and "mode must be one of hybrid, multi, text, lexical, got 'bogus'" in r.stderr, r.output
    r = run("search", "metal", "-s", s, "--user", "umetal0", "--mode", "text")
    assert r.exit_code == 2 and "--mode text cannot be used with --user" in r.stderr, r.output
    r = run("search", "metal", "-s", s, "--user", "umetal0", "--mode", "multi", "--json", "-k", "3")
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 3, r.output


# ------------------------------------------------------------------ 9: the records file of add
@pytest.mark.parametrize("name, body, message", [
    ("n.json", "42", "expected a JSON list of item records"),
    ("l.json", "[1, 2]", "record 1 of the list is a number (1)"),
    ("r.jsonl", '{"item_id": "z", "name": "Z"}\n7\n', "line 2 holds a number (7)"),
])
def test_add_refuses_a_file_that_holds_no_records(name, body, message, tmp_path, wide):
    f = tmp_path / name
    f.write_text(body)
    r = run("add", str(f), "-s", str(tmp_path / "no-space"))
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert f"{f}: {message}" in r.stderr, r.output


# ------------------------------------------------------------------ 10: ids with commas
def test_ids_holding_commas_are_found(odd_space):
    s = str(odd_space)
    r = run("recommend", "--items", "AC,DC", "-s", s, "--json", "-k", "3")
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 3, r.output
    r = run("recommend", "--items", "metal1,AC,DC,metal2", "-s", s, "--json", "-k", "70")
    hits = {h["item_id"] for h in json.loads(r.stdout)}
    assert r.exit_code == 0 and not hits & {"metal1", "AC,DC", "metal2"} and hits, r.output   # all three seen
    r = run("playlist", "--seeds", "AC,DC", "-s", s, "--json", "--n", "3")
    assert r.exit_code == 0 and len(json.loads(r.stdout)["items"]) == 3, r.output
    assert json.loads(r.stdout)["seeds"] == ["AC,DC"], r.output
    r = run("recommend", "--items", "metal1,nope", "-s", s, "--json")
    assert r.exit_code == 2 and "unknown item 'nope'" in r.stderr, r.output
