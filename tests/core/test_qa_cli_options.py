"""CLI options given where they do nothing are refused, not ignored: ``--alpha`` without
``--user``; ``--method`` / ``--diversity`` with ``playlist --query``; ``--coherence`` with
``playlist --seeds``. ``--user ''`` is a user (unknown), not "no user" (it ran a plain search)."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from talkrec.cli import app


def run(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("args, message", [
    (["search", "jazz", "--alpha", "0.5"], "--alpha: apply only with --user"),
    (["playlist", "--query", "jazz", "--method", "knn"], "--method: continue a playlist"),
    (["playlist", "--query", "jazz", "--diversity", "0.3"], "--diversity: continue a playlist"),
    (["playlist", "--seeds", "jazz1", "--coherence", "0.9"], "--coherence: applies only with --query"),
])
def test_an_option_that_does_nothing_here_is_refused(tiny_space_dir, args, message):
    r = run(*args, "--space", str(tiny_space_dir))
    assert r.exit_code != 0 and message in r.output, r.output


def test_an_empty_user_is_an_unknown_user_not_a_plain_search(tiny_space_dir):
    r = run("search", "jazz", "--user", "", "--space", str(tiny_space_dir))
    assert r.exit_code != 0 and "user" in r.output.lower(), r.output


def test_the_options_still_work_where_they_apply(tiny_space_dir):
    assert run("playlist", "--query", "jazz", "--coherence", "0.9", "--n", "3", "--space", str(tiny_space_dir)).exit_code == 0
    r = run("playlist", "--seeds", "jazz1", "--method", "knn", "--diversity", "0.2", "--n", "3",
            "--space", str(tiny_space_dir))
    assert r.exit_code == 0 and "knn" in r.output, r.output
    assert run("search", "jazz", "--space", str(tiny_space_dir), "--k", "3").exit_code == 0


def test_an_empty_list_says_why(tiny_space_dir):
    """An empty table says why under it: no item passes the filter (with the range of each
    numeric field the filter names), or how many items did pass; ``--json`` stays a bare list."""
    sp = ("--space", str(tiny_space_dir))
    r = run("search", "metal band", "--where", "year>=2100", *sp)
    assert r.exit_code == 0 and "no results: no item passes the filter (the items have year 1980 to" in r.output, \
        r.output
    r = run("similar", "metal1", "--where", "year<1900", "--tag", "metal", *sp)
    assert r.exit_code == 0 and "no item passes the filter (the items have year 1980 to" in r.output, r.output
    r = run("recommend", "--items", "metal1", "--tag", "nosuchtag", *sp)
    assert r.exit_code == 0 and r.output.rstrip().endswith("no results: no item passes the filter"), r.output
    r = run("search", "zzzqqq", "--mode", "lexical", "--tag", "metal", *sp)
    from tiny_data import make_tiny_catalog
    n = int(make_tiny_catalog().items["tags"].map(lambda t: "metal" in t).sum())     # 20 of its 60 items
    assert r.exit_code == 0 and f"no results among the {n} items that pass the filter" in r.output, r.output
    r = run("search", "metal band", "--where", "year>=2100", "--json", *sp)
    assert r.exit_code == 0 and r.output.strip() == "[]", r.output
