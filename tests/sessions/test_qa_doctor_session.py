"""``talkrec doctor`` checks the attached session model: a model whose files were damaged
after it was attached made every default playlist continuation fail, and ``doctor`` called
the space healthy. Now it reports ``corrupt_session_model``; ``--repair`` moves the model
aside (kept as ``session_model.corrupt``) so that continuations fall back to kNN."""
from __future__ import annotations

import pytest
from tiny_data import copy_space, tiny_session_model
from typer.testing import CliRunner

from talkrec import Space
from talkrec.cli import app
from talkrec.errors import TalkrecError
from talkrec.space.doctor import doctor


@pytest.fixture()
def damaged(tiny_space_dir, tmp_path):
    d = copy_space(tiny_space_dir, tmp_path / "space")
    s = Space.load(d)
    try:
        s.attach_session_model(tiny_session_model(tmp_path / "model", [f"metal{j}" for j in range(10)]))
    finally:
        s.close()
    assert doctor(d).healthy
    w = d / "session_model" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:50])
    return d


def test_doctor_reports_a_damaged_session_model_and_repair_sets_it_aside(damaged):
    s = Space.load(damaged)
    try:
        with pytest.raises(TalkrecError):            # what a continuation meets before the repair
            s.continue_playlist(["metal3", "metal4"], k=3)
    finally:
        s.close()
    rep = doctor(damaged)
    assert not rep.healthy and [f.kind for f in rep.findings] == ["corrupt_session_model"], rep.to_json()
    assert "model.safetensors" in rep.findings[0].detail or "session" in rep.findings[0].detail
    rep = doctor(damaged, repair=True)
    assert rep.findings[0].repaired and (damaged / "session_model.corrupt" / "model.safetensors").is_file()
    assert not (damaged / "session_model").exists() and doctor(damaged).healthy
    s = Space.load(damaged)
    try:
        c = s.continuation(["metal3", "metal4"], k=3)     # kNN now, no session model
        assert len(c.items) == 3 and c.score_kind == "cosine"
    finally:
        s.close()


def test_the_cli_doctor_names_the_session_model(damaged):
    r = CliRunner().invoke(app, ["doctor", str(damaged)])
    assert r.exit_code != 0 and "corrupt_session_model" in r.output and "session_model" in r.output, r.output
