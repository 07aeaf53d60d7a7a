"""``index: {backend: milvus}`` (issue 14, part 2) against a real Milvus Lite in a tmp folder:
the same answers as the embedded index, filters translated as the embedded filter means them,
cold-start writes mirrored (and re-applied from the log), clean errors for bad settings, and
an existing space (with its collection) that survives a failed build."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_data import TINY_SPACE_CONFIG, copy_space, make_tiny_catalog

from talkrec import Space
from talkrec.errors import InputError
from talkrec.index.filters import FilterEngine
from talkrec.index.milvus import MilvusSettings, connect, release
from talkrec.index.milvus_filters import literal, milvus_expr
from talkrec.index.milvus_schema import StagedCollection, mirrored_fields
from talkrec.pipeline import build
from talkrec.space.files import WriteError

SRC = Path(__file__).resolve().parents[2] / "src"


def _ids(hits):
    return [h.item_id for h in hits]


def _build(out, uri, **over):
    cfg = {**TINY_SPACE_CONFIG, "output": str(out), "index": {"backend": "milvus", "uri": str(uri)}, **over}
    build(cfg, show_progress=False, catalog=make_tiny_catalog())
    return out


def _collections(uri):
    s = MilvusSettings.from_config({"uri": str(uri), "collection": "x"})
    client = connect(s)
    try:
        return {n: client.get_collection_stats(n)["row_count"] for n in client.list_collections()}
    finally:
        release(s, client)


@pytest.fixture(scope="module")
def milvus_space(tmp_path_factory):
    """The tiny space built with ``index: {backend: milvus}`` (Milvus Lite under tmp)."""
    root = tmp_path_factory.mktemp("milvus")
    return _build(root / "tiny", root / "items.db")


@pytest.fixture()
def fresh(tmp_path):
    """A milvus-backed tiny space of its own (for tests that write)."""
    return _build(tmp_path / "space", tmp_path / "items.db")


# ---------------------------------------------------------------------------- same answers
QUERIES = [
    lambda s: s.similar("metal3", k=10),
    lambda s: s.similar("jazz2", k=10, where="tag=jazz"),
    lambda s: s.similar("pop4", k=10, where="year>=1985,tags!=metal"),
    lambda s: s.similar("metal3", k=10, where={"year": {">=": 1982, "<=": 1995}}),
    lambda s: s.similar("metal3", k=10, where="name~band 1"),                 # like on text
    lambda s: s.similar("metal3", k=10, where="tags~jaz"),                    # not expressible: local
    lambda s: s.similar("metal3", k=5, offset=5),
    lambda s: s.recommend(items=["pop1", "pop2"], k=10),
    lambda s: s.recommend(user="umetal1", k=10, where="genre=metal"),
    lambda s: s.recommend(items=["pop1", "metal2"], k=10, strategy="best_score"),
    lambda s: s.recommend(items=["pop1", "metal2"], negative=["metal3"], k=10, strategy="best_score", where="tag=metal"),
    lambda s: s.search("metal band", k=10, mode="multi"),
    lambda s: s.search("metal band", k=10, mode="hybrid"),
    lambda s: s.search("jazz band", k=10, mode="text", where="tag=jazz"),
    lambda s: s.search("jazz band", k=10, mode="lexical"),
    lambda s: s.personalized_search("band", user="ujazz2", k=10),
    lambda s: s.search_by_vector("audio", np.array([0, 0, 1.0, 0]), k=10),
    lambda s: s.continue_playlist(["metal1", "metal2"], k=10),
]


def test_a_milvus_space_answers_like_the_embedded_one(milvus_space, tiny_space_dir):
    emb, mil = Space.load(tiny_space_dir), Space.load(milvus_space)
    assert emb.index.backend is None and type(mil.index.backend).__name__ == "MilvusBackend"
    cfg = json.loads((milvus_space / "space.json").read_text())["index"]
    assert cfg["collection"] == "talkrec_tiny" and cfg["uri"].endswith("items.db") and "token" not in cfg
    for i, query in enumerate(QUERIES):
        want, got = _ids(query(emb)), _ids(query(mil))
        assert got == want and got, (i, got, want)
    snap = mil.index                                 # the kNN itself: Milvus vs this snapshot's exact search
    for iid in ("metal3", "jazz7", "pop12"):
        q = snap.vector(iid)
        got, exact = snap.search(q, 10), snap.search(q, 10, exact=True)
        assert [i for i, _ in got] == [i for i, _ in exact]
        assert np.allclose([s for _, s in got], [s for _, s in exact], atol=1e-5)
    mil.close()


def test_reindex_points_a_built_space_at_milvus_and_back(tiny_space_dir, tmp_path):
    from typer.testing import CliRunner

    from talkrec.cli import app
    from talkrec.pipeline.reindex import reindex

    d = tmp_path / "space"
    copy_space(tiny_space_dir, d)
    emb = Space.load(tiny_space_dir)
    bad = CliRunner().invoke(app, ["reindex", str(d), "--backend", "milvus"])
    assert bad.exit_code != 0 and "index.uri" in bad.output
    res = CliRunner().invoke(app, ["reindex", str(d), "--uri", str(tmp_path / "r.db"), "--collection", "again"])
    assert res.exit_code == 0, res.output
    done = json.loads(res.output)
    assert done["items"] == 60 and done["index"]["collection"] == "again"
    s = Space.load(d)
    assert s.index.backend is not None and s.index.backend.count() == 60
    for query in QUERIES[:9]:
        assert _ids(query(s)) == _ids(query(emb))
    s.close()
    reindex(d, {"ann": False})
    assert Space.load(d).index.backend is None and json.loads((d / "space.json").read_text())["index"] == {"ann": False}


# ---------------------------------------------------------------------------- filters
def _tricky_meta() -> pd.DataFrame:
    names = ['He said "hi"', "back\\slash", "Motörhead", "50% off_", None, "it's", "none", "Band 1"]
    rows = []
    for i in range(40):
        rows.append({
            "item_id": f"i{i}", "name": names[i % len(names)],
            "tags": [["Rock", "metal"], [], ["rock"], ["Jazz", "Free Jazz"], ["pop"]][i % 5],
            "decade": [["80s"], ["1990s"], ["90's"], [], ["1980s", "2000s"]][i % 5],
            "year": [1985.0, 1990.0, np.nan, 1999.5, 2001.0][i % 5],
            "listeners": i * 10,
            "country": ["UK", "uk", None, "Brazil", "none", "U.S."][i % 6],
            "has_audio": bool(i % 3),
            "code": ["1990", "01", "x"][i % 3],
            "description": f"text {i}",
        })
    return pd.DataFrame(rows)


WHERES = [  # (where, pushed down whole to Milvus)
    ("tag=rock", True), ("tags=ROCK", True), ("tags!=metal", True), ("tags~ro", False), ("tag=free jazz", True),
    ("decade=80s", True), ("decade=1990s", True), ("decade!=80s", True), ("decade=2000s", True),
    ("year>=1990", True), ("year<1990.5", True), ("year=1990", True), ("year!=1990", True), ("year=abc", False),
    ("listeners>100", True), ("listeners<=55", True), ("year~99", False),
    ("country=uk", True), ("country!=UK", True), ("country~u", True), ("country=none", False), ("country~n", False),
    ("name~MOT", True), ("name~50%", False), ("name~back\\", False), ("name~ack", True),
    ("has_audio=true", True), ("has_audio!=false", True),
    ("code=1990", False), ("code~9", True), ("description~text 1", False),
    ({"name": 'He said "hi"'}, True), ({"name": "it's"}, True), ({"year": {">=": 1980, "<=": 1995}}, True),
    ("tag=rock,year>=1990", True), ("tag=rock,country~n", False),
]


def test_filters_in_milvus_select_what_the_embedded_filter_selects(tmp_path):
    meta = _tricky_meta()
    s = MilvusSettings.from_config({"uri": str(tmp_path / "f.db"), "collection": "filters"})
    client = connect(s)
    try:
        V = np.random.default_rng(0).normal(size=(len(meta), 8)).astype(np.float32)
        staged = StagedCollection(client, s)
        fields = staged.fill(meta["item_id"].tolist(), V, meta)
        staged.swap_in()
        assert fields == mirrored_fields(meta) and "description" not in fields
        assert fields["year"] == "number" and fields["tags"] == "list" and fields["decade_canonical"] == "decade"
        engine = FilterEngine(meta)
        for where, whole in WHERES:
            want = set(meta["item_id"][engine.mask(where)])
            expr, complete = milvus_expr(where, list(meta.columns), fields)
            got = {r["item_id"] for r in client.query("filters", filter=expr, output_fields=["item_id"], limit=100)}
            assert complete == whole, (where, expr)
            assert (got == want) if complete else (got >= want), (where, expr, sorted(got ^ want))
        with pytest.raises(InputError, match="unknown filter field 'nope'"):
            milvus_expr("nope=1", list(meta.columns), fields)
    finally:
        release(s, client)


def test_string_values_are_escaped():
    assert literal('a "b" \\ c') == '"a \\"b\\" \\\\ c"'
    assert literal("x\ny") == '"x\\ny"' and literal("bell\x07") is None
    expr, complete = milvus_expr({"name": 'x" or item_id != "'}, ["name"], {"name": "text"})
    assert complete and expr == 'name == "x\\" or item_id != \\""'


# ---------------------------------------------------------------------------- writes
def test_cold_start_upserts_and_deletes_are_visible_at_once_and_after_a_reload(fresh, caplog):
    s = Space.load(fresh)
    backend = s.index.backend
    assert backend.count() == 60
    s.add_items([{"item_id": "cold1", "name": "Cold Metal", "tags": ["metal", "band"], "year": 1977},
                 {"item_id": "cold2", "name": "Cold Jazz", "tags": ["jazz"], "vectors": {"audio": [0, 1.0, 0, 0]}}])
    assert backend.count() == 62
    assert "cold1" in _ids(s.similar("metal3", k=60, where="tag=metal"))
    assert "cold1" not in _ids(s.similar("metal3", k=60, where="tag=jazz"))
    assert _ids(s.similar("metal3", k=5, where="year<1980")) == ["cold1"]    # the built items start in 1980
    s.add_items([{"item_id": "cold1", "name": "Cold Metal", "tags": ["pop"]}])    # an update: whole row again
    assert "cold1" in _ids(s.similar("pop3", k=60, where="tag=pop")) and backend.count() == 62
    s.remove(["cold2", "jazz3"])
    assert backend.count() == 60 and not {"cold2", "jazz3"} & set(_ids(s.similar("jazz4", k=60)))
    s.close()
    again = Space.load(fresh)
    assert again.index.backend.count() == 60 and len(again.index) == 60
    assert "cold1" in _ids(again.similar("pop3", k=60, where="tag=pop"))
    assert not {"cold2", "jazz3"} & set(_ids(again.similar("jazz4", k=60)))
    again.warm_up()                                    # its compactions' generations warmed before served
    again.compact()                                    # a new generation; the collection goes on
    assert "warming" not in caplog.text
    assert again.index.gen.name == "gen-000002" and again.index.backend is not None
    q = again.index.vector("pop3")
    assert [i for i, _ in again.index.search(q, 10)] == [i for i, _ in again.index.search(q, 10, exact=True)]
    again.close()


def test_a_write_milvus_refuses_is_logged_and_applied_on_the_next_load(fresh, monkeypatch):
    from talkrec.index.milvus import MilvusBackend

    s = Space.load(fresh)

    def refuse(self, *a, **kw):
        raise RuntimeError("database unavailable")
    monkeypatch.setattr(MilvusBackend, "upsert", refuse)
    with pytest.raises(WriteError, match="vector database refused it.*database unavailable"):
        s.add_items([{"item_id": "late1", "name": "Late Metal", "tags": ["metal"]}])
    with pytest.raises(WriteError, match="reload"):
        s.remove(["metal1"])
    monkeypatch.undo()
    s.close()
    again = Space.load(fresh)                           # the log has the write: replayed into Milvus
    assert again.index.position("late1") is not None and again.index.backend.count() == 61
    assert "late1" in _ids(again.similar("metal3", k=61, where="tag=metal"))
    again.close()


# ---------------------------------------------------------------------------- bad settings
@pytest.mark.parametrize("uri, field, message", [
    ("http://127.0.0.1:1", "index.uri", "127.0.0.1:1"),
    ("{tmp}/no/such/folder/items.db", "index.uri", "does not exist"),
    ("{tmp}/items.txt", "index.uri", "ending in .db"),
])
def test_bad_settings_fail_cleanly_before_anything_is_written(tmp_path, uri, field, message):
    out = tmp_path / "space"
    with pytest.raises(InputError, match=message) as e:
        _build(out, uri.format(tmp=tmp_path))
    assert e.value.field == field and f"field '{field}'" in str(e.value)
    assert not out.exists() and not (tmp_path / "space.build").exists()


def test_secrets_in_the_config_and_bad_collection_names_are_refused(tmp_path):
    with pytest.raises(InputError, match="environment variable") as e:
        _build(tmp_path / "s", tmp_path / "a.db", index={"backend": "milvus", "uri": str(tmp_path / "a.db"),
                                                       "token": "secret"})
    assert e.value.field == "index.token"
    with pytest.raises(InputError) as e:
        _build(tmp_path / "s", tmp_path / "a.db", index={"backend": "milvus", "uri": str(tmp_path / "a.db"),
                                                       "collection": "1-bad name"})
    assert e.value.field == "index.collection"
    with pytest.raises(InputError) as e:
        _build(tmp_path / "s", tmp_path / "a.db", index={"backend": "qdrant"})
    assert e.value.field == "index.backend"


def test_a_missing_collection_names_the_setting(fresh, tmp_path):
    s = MilvusSettings.from_config({"uri": str(tmp_path / "items.db"), "collection": "talkrec_tiny"})
    client = connect(s)
    client.drop_collection("talkrec_tiny")
    release(s, client)
    with pytest.raises(InputError, match="no collection 'talkrec_tiny'") as e:
        Space.load(fresh)
    assert e.value.field == "index.collection"


def test_a_milvus_lite_file_open_in_another_process_gives_a_clear_error(milvus_space):
    s = Space.load(milvus_space)                        # this process holds the Lite file
    uri = json.loads((milvus_space / "space.json").read_text())["index"]["uri"]
    code = ("from talkrec.index.backend import open_backend\n"
            f"try:\n    open_backend({{'backend': 'milvus', 'uri': {uri!r}, 'collection': 'talkrec_tiny'}})\n"
            "except Exception as e:\n    print(type(e).__name__, getattr(e, 'field', None), e)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert "InputError index.uri" in r.stdout and "another process" in r.stdout, r.stdout + r.stderr[-2000:]
    s.close()


# ---------------------------------------------------------------------------- failed builds
@pytest.mark.parametrize("fail", ["before_swap", "after_swap"])
def test_an_existing_space_and_its_collection_survive_a_failed_build(fresh, tmp_path, monkeypatch, fail):
    import talkrec.pipeline.stages as stages

    old = Space.load(fresh)
    before = _ids(old.similar("metal3", k=10))
    old.close()

    if fail == "before_swap":                        # the folder's last file fails: the staged collection is dropped
        real = stages.write_json

        def broken(path, obj):
            if path.name == "build_report.json":
                raise OSError("disk full")
            return real(path, obj)
        monkeypatch.setattr(stages, "write_json", broken)
    else:                                            # the swap done, then a failure: it is undone
        real_swap = StagedCollection.swap_in

        def swap_then_fail(self):
            real_swap(self)
            raise OSError("rename failed")
        monkeypatch.setattr(StagedCollection, "swap_in", swap_then_fail)
    with pytest.raises(OSError):
        _build(fresh, tmp_path / "items.db", max_items=30)
    monkeypatch.undo()
    assert _collections(tmp_path / "items.db") == {"talkrec_tiny": 60}
    s = Space.load(fresh)
    assert len(s.index) == 60 and _ids(s.similar("metal3", k=10)) == before
    s.close()
    _build(fresh, tmp_path / "items.db", max_items=30)     # and a build that works replaces both
    assert _collections(tmp_path / "items.db") == {"talkrec_tiny": 30}
    assert len(Space.load(fresh).index) == 30


def test_selective_filters_go_by_key_and_broad_ones_by_expression(milvus_space, tiny_space_dir, monkeypatch):
    """A filter that leaves few items is sent as ``item_id in [...]`` (Milvus answers it from
    its key index; ``array_contains`` is a scan in Milvus Lite), a broader one as the
    translated expression: both give the embedded answer."""
    from talkrec.index.milvus import MilvusBackend

    sent: list[str] = []
    knn = MilvusBackend.knn
    monkeypatch.setattr(MilvusBackend, "knn", lambda self, q, limit, expr: sent.append(expr) or knn(self, q, limit, expr))
    emb, mil = Space.load(tiny_space_dir), Space.load(milvus_space)
    query = lambda s: _ids(s.similar("jazz2", k=10, where="tag=jazz,year>=1980"))  # noqa: E731
    want = query(emb)
    assert query(mil) == want and want
    assert sent[-1].startswith('item_id in ["') and "array_contains" not in sent[-1]
    monkeypatch.setattr(MilvusBackend, "max_id_filter", 0)
    assert query(mil) == want
    assert "array_contains" in sent[-1] and "item_id in" not in sent[-1]
    local = lambda s: _ids(s.similar("metal3", k=10, where="tags~jaz"))  # noqa: E731  (Milvus cannot say it)
    assert local(mil) == local(emb) and sent[-1] == ""
    monkeypatch.setattr(MilvusBackend, "max_id_filter", 1024)
    assert local(mil) == local(emb) and sent[-1].startswith('item_id in ["')
    monkeypatch.setattr(MilvusBackend, "max_id_filter", 0)
    q, n = mil.index.vector("jazz2"), len(sent)
    assert mil.index.search(q, 10, where="tag=no-such-tag") == []
    n = len(sent)
    monkeypatch.setattr(MilvusBackend, "max_id_filter", 1024)
    assert mil.index.search(q, 10, where="tag=no-such-tag") == [] and len(sent) == n      # nothing passes: no call
    mil.close()
