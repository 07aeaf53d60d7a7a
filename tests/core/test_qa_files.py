"""The space's files as a database would treat them: a log the manifest names that is gone, or
a record with a valid checksum that cannot be applied, is an error naming the file (they were
taken as empty or cut, and the acknowledged writes in them silently dropped, the log then
reused); a load that races another process's compaction loads again; an unreadable
``space.json`` or ``inputs/*.npy`` is named; a write refused because another process writes
is a ``WriteConflict`` (HTTP 409, not 500); a follower that cannot follow says so on health;
``talkrec reindex --backend embedded`` refuses Milvus options instead of ignoring them."""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tiny_data import copy_space
from typer.testing import CliRunner

import talkrec.space.writer as writer
from talkrec import Space
from talkrec.cli import app
from talkrec.errors import TalkrecError
from talkrec.space import WriteConflict
from talkrec.space.files import CorruptSpace, MissingLog


@pytest.fixture()
def d(tiny_space_dir, tmp_path):
    return copy_space(tiny_space_dir, tmp_path / "space")


def _manifest(d: Path) -> dict:
    return json.loads((d / "MANIFEST.json").read_text())


def _write_two(d: Path) -> Path:
    s = Space.load(d, auto_compact=False)
    s.add_items([{"item_id": "f1", "name": "Files One", "tags": ["jazz"]}])
    s.add_items([{"item_id": "f2", "name": "Files Two", "tags": ["jazz"]}])
    s.close()
    return d / _manifest(d)["logs"][-1]


def test_a_missing_log_is_an_error_not_an_empty_log(d):
    log = _write_two(d)
    log.unlink()
    with pytest.raises(MissingLog, match="named by MANIFEST.json but missing"):
        Space.load(d)                       # before: loaded without f1, f2 and wrote new ones into a new file
    assert not log.exists()


def test_a_record_with_a_valid_checksum_that_cannot_be_applied_cuts_nothing(d):
    log = _write_two(d)
    data = log.read_bytes()
    (n,) = struct.unpack_from("<I", data, 0)
    junk = b"\x02\x00\x00\x00{}" + b"x" * (n - 6)          # a header {} with no "op": undecodable
    bad = struct.pack("<II", len(junk), zlib.crc32(junk)) + junk + data[8 + n:]
    log.write_bytes(bad)
    with pytest.raises(CorruptSpace, match="valid checksum but cannot be applied"):
        Space.load(d)                       # before: the record and every later one cut off the file
    assert log.read_bytes() == bad


def test_a_load_that_races_a_compaction_elsewhere_loads_again(d, monkeypatch):
    _write_two(d)
    real, calls = writer.read_space, []

    def read_then_compact(path):
        files = real(path)
        if not calls:                       # another process compacts after this one read the manifest
            calls.append(1)
            w = Space.load(d, auto_compact=False)
            w.compact()
            w.close()
        return files

    monkeypatch.setattr(writer, "read_space", read_then_compact)
    s = Space.load(d)
    try:
        assert {"f1", "f2"} <= set(s.index.ids.tolist())
    finally:
        s.close()


@pytest.mark.parametrize("damage", ["not json", "[1, 2]"])
def test_an_unreadable_space_json_is_named(d, damage):
    (d / "space.json").write_text(damage)
    with pytest.raises(CorruptSpace, match="space.json"):
        Space.load(d)
    r = CliRunner().invoke(app, ["info", "--space", str(d)])
    assert r.exit_code != 0 and "space.json" in r.output and "Traceback" not in r.output


def test_a_truncated_inputs_file_is_named(d):
    f = next((d / _manifest(d)["generation"] / "inputs").glob("*.npy"))
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(TalkrecError, match=f.name):
        Space.load(d)


def test_a_write_while_another_process_writes_is_a_conflict_409(d):
    from talkrec.service.app import create_app
    other = Space.load(d)
    other.add_items([{"item_id": "o1", "name": "Other One", "tags": ["jazz"]}])     # it holds the LOCK now
    app_ = create_app(d)
    try:
        with TestClient(app_) as c:
            r = c.post("/api/items", json={"items": [{"item_id": "s1", "name": "S One", "tags": ["jazz"]}]})
            assert r.status_code == 409 and r.json()["error"] == "write_conflict", r.text
            assert "one writer at a time" in r.json()["detail"]
            assert c.delete("/api/items/jazz1").status_code == 409
            assert "409" in app_.openapi()["paths"]["/api/items"]["post"]["responses"]
    finally:
        app_.state.service.space.close()
        other.close()
    with pytest.raises(WriteConflict):
        s = Space.load(d)
        try:
            other2 = Space.load(d)
            other2.remove(["jazz2"])
            s.remove(["jazz3"])
        finally:
            other2.close()
            s.close()


def test_health_is_degraded_while_a_follower_cannot_follow(d):
    import shutil
    import time

    from talkrec.service.app import create_app
    app_ = create_app(d, follow=True, follow_interval=0.05)
    moved = d.with_name("moved")
    try:
        with TestClient(app_) as c:
            assert c.get("/api/health").json()["status"] == "ok"
            shutil.move(str(d), str(moved))                 # the writer's space deleted or moved
            deadline = time.monotonic() + 60
            while (h := c.get("/api/health").json())["status"] == "ok" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert h["status"] == "degraded" and any("MANIFEST.json" in p for p in h["problems"]), h
            assert h["follows"]["error"]
            shutil.move(str(moved), str(d))
            deadline = time.monotonic() + 60
            while (h := c.get("/api/health").json())["status"] != "ok" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert h["status"] == "ok" and h["problems"] == [], h
    finally:
        if moved.exists():
            shutil.move(str(moved), str(d))
        app_.state.service.space.close()


@pytest.mark.parametrize("opts", [["--uri", "x.db"], ["--collection", "c"], ["--index-type", "HNSW"]])
def test_reindex_embedded_refuses_milvus_options(d, opts):
    before = (d / "space.json").read_bytes()
    r = CliRunner().invoke(app, ["reindex", str(d), "--backend", "embedded", *opts])
    assert r.exit_code != 0 and opts[0] in r.output and "not for --backend embedded" in r.output
    assert (d / "space.json").read_bytes() == before
