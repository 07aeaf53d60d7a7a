"""The bad-catalog corpus (tests/data/bad_catalogs/): every case is a small generic catalog
with one thing wrong and, in its case.yaml, the message `talkrec build` must print (file,
row, field). The build runs with its output on an existing space, and a failed build must
leave that space exactly as it was."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from talkrec.cli import app
from tiny_data import copy_space

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_catalogs"
CASES = sorted(p.parent.name for p in CORPUS.glob("*/case.yaml"))
FAST = {"cf": {"params": {"factors": 4, "iterations": 2}},
        "fusion": {"max_epochs": 2, "batch_size": 8, "hidden_dim": 8, "out_dim": 4}}


def _absolute(spec: Any, base: Path) -> Any:
    """The catalog block with every ``path`` made absolute (the config is written elsewhere)."""
    if isinstance(spec, dict):
        return {k: str((base / v).resolve()) if k == "path" else _absolute(v, base) for k, v in spec.items()}
    return spec


def _fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def expected_message(expect: dict[str, Any]) -> str:
    """The regular expression of the message: ``<file>: row N: field 'F': ...message...``."""
    where = re.escape(expect["file"])
    if "row" in expect:
        where += rf": row {expect['row']}"
    if "field" in expect:
        where += re.escape(f": field '{expect['field']}'")
    return rf"(^|/){where}: [^\n]*{re.escape(expect['message'])}"


def test_the_corpus_is_there():
    assert len(CASES) >= 15, CASES


@pytest.mark.parametrize("case", CASES)
def test_bad_catalog_is_refused_and_the_old_space_survives(case, tiny_space_dir, tmp_path, monkeypatch):
    spec = yaml.safe_load((CORPUS / case / "case.yaml").read_text())
    expect = spec.pop("expect")
    space = tmp_path / "space"
    copy_space(tiny_space_dir, space)
    before = _fingerprint(space)
    cfg = {"name": f"bad-{case}", "dataset": "generic", "output": str(space), **FAST, **spec,
           "catalog": _absolute(spec["catalog"], CORPUS / case)}
    (tmp_path / "build.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv("COLUMNS", "1000")  # one line per message
    r = CliRunner().invoke(app, ["build", str(tmp_path / "build.yaml"), "--no-progress", "--quiet"])
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    assert "Traceback" not in r.output
    assert re.search(expected_message(expect), r.output, re.M), (expected_message(expect), r.output)
    assert _fingerprint(space) == before
    from talkrec import Space
    assert len(Space.load(space).item_ids) == 60


def test_dropping_is_a_documented_option_counted_in_the_build_report(tmp_path, monkeypatch):
    import json
    spec = yaml.safe_load((CORPUS / "vectors_unknown_ids" / "case.yaml").read_text())
    spec.pop("expect")
    catalog = _absolute(spec["catalog"], CORPUS / "vectors_unknown_ids")
    catalog["vectors"]["audio"]["on_unknown_ids"] = "drop"
    cfg = {"name": "dropped", "dataset": "generic", "output": str(tmp_path / "space"), **FAST, **spec,
           "catalog": catalog}
    (tmp_path / "build.yaml").write_text(yaml.safe_dump(cfg))
    r = CliRunner().invoke(app, ["build", str(tmp_path / "build.yaml"), "--no-progress", "--quiet"])
    assert r.exit_code == 0, (r.output, r.exception)
    report = json.loads((tmp_path / "space" / "build_report.json").read_text())
    assert report["catalog_report"] == {"vectors[audio]_unknown_ids_dropped": 1}
    catalog_stage = next(s for s in report["stages"] if s["stage"] == "catalog")
    assert catalog_stage["vectors[audio]_unknown_ids_dropped"] == 1 and catalog_stage["vectors[audio]"] == 3
