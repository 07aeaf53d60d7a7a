"""The CLI holds queries to the same limits as the HTTP API (one constant, K_MAX)."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from talkrec.cli import app
from talkrec.limits import K_MAX


def test_k_is_capped_like_the_api(tiny_space_dir, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    run = CliRunner().invoke
    for cmd in (["search", "jazz"], ["similar", "jazz1"], ["recommend", "--items", "jazz1"]):
        r = run(app, [*cmd, "--space", str(tiny_space_dir), "--k", str(K_MAX + 1), "--json"])
        # typer 0.28 (click's range check; the pinned one) / 0.29 (pydantic's): both name the limit
        limit = (f"1<=x<={K_MAX}", f"less than or equal to {K_MAX}")
        assert r.exit_code == 2 and "'--k'" in r.output and any(m in r.output for m in limit), (cmd, r.output)
    r = run(app, ["search", "jazz", "--space", str(tiny_space_dir), "--k", str(K_MAX), "--json"])
    assert r.exit_code == 0, r.output
    assert 10 <= len(json.loads(r.output[r.output.index("["):])) <= K_MAX
