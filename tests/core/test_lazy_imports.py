"""Start-up cost: ``import talkrec``, ``talkrec --help`` and every query on a built space
must not import the heavy training stack (torch, sentence-transformers, ...)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "sentence_transformers", "transformers", "implicit", "sklearn", "matplotlib", "bm25s", "numba",
         "scipy", "tqdm")
SRC = str(Path(__file__).resolve().parents[2] / "src")


def heavy_modules_after(code: str, also: tuple[str, ...] = ()) -> list[str]:
    """Run ``code`` in a fresh interpreter; the heavy modules (and ``also``) it left in ``sys.modules``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY + also!r} if m in sys.modules)))"
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_talkrec_and_the_cli_stays_light():
    assert heavy_modules_after("import talkrec, talkrec.cli\nfrom talkrec import Space") == []


def test_cli_help_stays_light_and_keeps_its_text():
    code = ("import contextlib, io\nfrom talkrec.cli import app\nbuf = io.StringIO()\n"
            "with contextlib.redirect_stdout(buf):\n"
            "    try:\n        app(['--help'])\n    except SystemExit:\n        pass\n"
            "assert 'one embedding space for recommendation' in buf.getvalue(), buf.getvalue()")
    assert heavy_modules_after(code) == []


def test_public_names_still_import():
    import talkrec

    for name in talkrec.__all__:
        assert getattr(talkrec, name).__name__ == name
    with pytest.raises(AttributeError):
        talkrec.NoSuchThing  # noqa: B018


def test_queries_on_a_built_space_load_no_torch(tiny_space_dir):
    assert (tiny_space_dir / "text_model" / "model.opt.onnx").is_file()
    code = f"""
from talkrec import Space
s = Space.load({str(tiny_space_dir)!r})
for mode in ("hybrid", "multi", "text", "lexical"):
    assert s.search("heavy metal band", k=5, mode=mode), mode
assert s.similar("metal1", k=5)
assert s.recommend(items=["metal1", "metal2"], k=5)
assert s.recommend(user=s.users(1)[0][0], k=5)
assert s.search("jazz", k=3, where="tag=jazz")
"""
    assert heavy_modules_after(code) == []


def test_cli_queries_load_no_pydantic(tiny_space_dir):
    """A cold ``talkrec search | similar | recommend`` imports neither the training stack nor
    pydantic (the service's models; typer 0.29 coerces every option through it: ~0.1-0.2 s
    of a cold query, docs/building.md, so the set-up pins typer 0.28)."""
    code = f"""
import contextlib, io
from talkrec.cli import app
for args in (["search", "heavy metal band"], ["similar", "metal1"], ["recommend", "--items", "metal1,metal2"]):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            app([*args, "--space", {str(tiny_space_dir)!r}, "--json"])
        except SystemExit as e:
            assert e.code in (0, None), (args, e.code, buf.getvalue())
    assert buf.getvalue().strip().endswith("]"), (args, buf.getvalue())
"""
    assert heavy_modules_after(code, also=("pydantic",)) == []


def test_serving_loads_no_torch(tiny_space_dir):
    code = f"""
import os
from fastapi.testclient import TestClient
from talkrec.service.app import create_app
c = TestClient(create_app({str(tiny_space_dir)!r}))
for mode in ("hybrid", "multi", "text", "lexical"):
    assert c.get("/api/search", params={{"q": "heavy metal band", "mode": mode}}).status_code == 200, mode
assert os.environ["OMP_NUM_THREADS"] == "1"         # what torch will take if a media encoder loads it
"""
    assert heavy_modules_after(code) == []
