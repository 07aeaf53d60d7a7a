"""``Space.attach_session_model`` checks a model before it copies it: a folder that is not a
model, a truncated weights file or a model of another catalog is refused and the attached model
is kept (the folder was copied over it first, then refused, and every default continuation
crashed after that)."""
from __future__ import annotations

import hashlib

import pytest
from tiny_data import copy_space, tiny_session_model

from talkrec import Space
from talkrec.errors import TalkrecError


def _digest(folder):
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_bad_model_is_refused_and_the_attached_one_kept(tiny_space_dir, tmp_path):
    s = Space.load(copy_space(tiny_space_dir, tmp_path / "space"))
    try:
        s.attach_session_model(tiny_session_model(tmp_path / "good", [f"metal{j}" for j in range(10)]))
        kept = _digest(s.path / "session_model")
        junk = tmp_path / "junk"
        junk.mkdir()
        (junk / "x.txt").write_text("not a model")
        other = tiny_session_model(tmp_path / "other", [f"i{j}" for j in range(10)])
        torn = tiny_session_model(tmp_path / "torn", [f"metal{j}" for j in range(10)])
        w = torn / "model.safetensors"
        w.write_bytes(w.read_bytes()[:50])
        for bad, message in ((junk, "junk"), (other, "knows none"), (torn, "model.safetensors")):
            with pytest.raises(TalkrecError, match=message):
                s.attach_session_model(bad)
            assert _digest(s.path / "session_model") == kept, bad
        assert s.continue_playlist(["metal3", "metal4"], k=3)       # the kept model still serves
        s.attach_session_model(tmp_path / "good")                   # attaching the same model again is fine
        assert _digest(s.path / "session_model") == kept
    finally:
        s.close()
