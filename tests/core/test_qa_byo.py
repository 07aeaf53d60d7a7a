"""A new user's own catalog and build config (QA, bring-your-own catalog): every mistake is
an InputError naming the file / row / field before any expensive stage, never a raw
exception or a silently wrong catalog."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from talkrec import config as _config
from talkrec.cli import app
from talkrec.data.io import check_catalog_spec, load_catalog
from talkrec.encoders.media_cache import MediaFailure
from talkrec.errors import InputError
from talkrec.pipeline import DEFAULTS
from talkrec.pipeline.schema import check_build_config

ITEMS = "item_id,name\na,A\nb,B\n"


def _load(tmp_path: Path, files: dict[str, object], spec: dict) -> object:
    for name, content in files.items():
        f = tmp_path / name
        if isinstance(content, bytes):
            f.write_bytes(content)
        elif callable(content):
            content(f)
        else:
            f.write_text(str(content), encoding="utf-8")
    return load_catalog(spec, base=tmp_path)


# ------------------------------------------------------------------------------- tags
def test_null_tags_in_jsonl_are_no_tags_not_the_tag_NA(tmp_path):
    # an all-null 'tags' key became a nullable Int64 column and every item got the tag '<NA>'
    c = _load(tmp_path, {"items.jsonl": '{"item_id": "a", "name": "A", "tags": null}\n{"item_id": "b", "name": "B"}\n'},
              {"items": {"path": "items.jsonl"}})
    assert c.tags_by_item() == {}
    assert c.items["tags"].tolist() == [[], []]


def test_nulls_inside_parquet_tag_lists_are_left_out(tmp_path):
    def write(p):
        pd.DataFrame({"item_id": ["a", "b"], "name": ["A", "B"], "tags": [["rock", None], None]}).to_parquet(p)
    c = _load(tmp_path, {"items.parquet": write}, {"items": {"path": "items.parquet"}})
    assert c.items.set_index("item_id")["tags"].to_dict() == {"a": ["rock"], "b": []}      # not 'None'


def test_comma_separated_tags_with_the_default_separator_warn(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="talkrec.data.tags"):
        _load(tmp_path, {"items.csv": 'item_id,name,tags\na,A,"rock, pop"\n'}, {"items": {"path": "items.csv"}})
    assert "tags_separator: ','" in caplog.text and "items.csv" in caplog.text
    c = load_catalog({"items": {"path": "items.csv", "tags_separator": ","}}, base=tmp_path)
    assert c.items["tags"].tolist() == [["rock", "pop"]]


def test_a_column_a_where_filter_cannot_name_is_warned_of_and_rename_fixes_it(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="talkrec.data.io"):     # a space: quoted in --where, no warning
        _load(tmp_path, {"items.csv": "item_id,name,Release Year\na,A,1999\n"}, {"items": {"path": "items.csv"}})
    assert "--where" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="talkrec.data.io"):
        _load(tmp_path, {"items.csv": 'item_id,name,"Year ""of"" `release`"\na,A,1999\n'},
              {"items": {"path": "items.csv"}})
    assert """['Year "of" `release`'] cannot be named in a --where filter""" in caplog.text
    assert """rename: {'Year "of" `release`': Year_of_release}""" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="talkrec.data.io"):
        c = load_catalog({"items": {"path": "items.csv", "rename": {'Year "of" `release`': "Release_Year"}}},
                         base=tmp_path)
    assert "--where" not in caplog.text and c.items["Release_Year"].tolist() == [1999]


# ------------------------------------------------------------------------- file reading
def test_a_semicolon_csv_says_so(tmp_path):
    with pytest.raises(InputError, match=r"items.csv: the header 'item_id;name' is one column: the file is separated "
                                         r"by semicolons"):
        _load(tmp_path, {"items.csv": "item_id;name\na;A\n"}, {"items": {"path": "items.csv"}})


def test_a_latin1_file_is_named_as_not_utf8(tmp_path):
    with pytest.raises(InputError, match=r"items.csv: row 2: not UTF-8 text \(byte 0xe9\); expected a UTF-8 file"):
        _load(tmp_path, {"items.csv": "item_id,name\na,A\nb,Caf\xe9\n".encode("latin-1")}, {"items": {"path": "items.csv"}})


def test_byte_order_marks_are_read_in_jsonl_and_ids_txt(tmp_path):
    bom = b"\xef\xbb\xbf"
    c = _load(tmp_path, {"items.jsonl": bom + b'{"item_id": "a", "name": "A"}\n{"item_id": "b", "name": "B"}\n',
                         "v.ids.txt": bom + b"a\nb\n", "v.npy": lambda p: np.save(p, np.ones((2, 3)))},
              {"items": {"path": "items.jsonl"}, "vectors": {"audio": {"path": "v.npy"}}})
    assert c.vectors["audio"].ids.tolist() == ["a", "b"]


def test_an_items_file_without_rows_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"items.csv: no items: the file has a header and no rows"):
        _load(tmp_path, {"items.csv": "item_id,name,tags\n"}, {"items": {"path": "items.csv"}})


@pytest.mark.parametrize("block", ["texts", "media"])
def test_two_rows_for_one_item_in_a_texts_or_media_file_are_refused(tmp_path, block):
    spec = {"items": {"path": "items.csv"}, block: {"x": {"path": "t.csv", "column": "v"}}}
    with pytest.raises(InputError, match=rf"t.csv: row 2: field 'item_id': duplicate item id 'a'; {block}.x takes one"):
        _load(tmp_path, {"items.csv": ITEMS, "t.csv": "item_id,v\na,one\na,two\n"}, spec)


def test_ragged_or_corrupt_npz_vectors_name_the_file(tmp_path):
    ragged = np.array([np.ones(3), np.ones(2)], dtype=object)
    spec = {"items": {"path": "items.csv"}, "vectors": {"audio": {"path": "v.npz"}}}
    with pytest.raises(InputError, match=r"v.npz: it holds Python objects \(ragged rows\?\)"):
        _load(tmp_path, {"items.csv": ITEMS, "v.npz": lambda p: np.savez(p, ids=np.array(["a", "b"]), X=ragged)}, spec)
    with pytest.raises(InputError, match=r"v.npz: not a readable .npz file"):
        _load(tmp_path, {"v.npz": b"PK\x03\x04garbage"}, spec)


def test_interaction_timestamps_may_be_iso_dates_and_a_bad_one_names_its_row(tmp_path):
    plays = "user_id,item_id,weight,timestamp\nu,a,1,1600000000\nu,b,2,2020-01-01\nv,a,1,2020-01-01T01:00:00+01:00\n"
    c = _load(tmp_path, {"items.csv": ITEMS, "plays.csv": plays},
              {"items": {"path": "items.csv"}, "interactions": {"path": "plays.csv"}})
    assert c.interactions["timestamp"].tolist() == [1600000000, 1577836800, 1577836800]
    (tmp_path / "plays.csv").write_text(plays + "v,b,1,yesterday\n")
    with pytest.raises(InputError, match=r"plays.csv: row 4: field 'timestamp': cannot read 'yesterday' as a time; "
                                         r"expected Unix seconds"):
        load_catalog({"items": {"path": "items.csv"}, "interactions": {"path": "plays.csv"}}, base=tmp_path)


# -------------------------------------------------------------------- the catalog block
@pytest.mark.parametrize("spec, field", [
    ({"items": "items.csv"}, "catalog.items"),
    ({"items": {"path": "items.csv", "types": ["year"]}}, "catalog.items.types"),
    ({"items": {"path": "items.csv", "tags_separator": ""}}, "catalog.items.tags_separator"),
    ({"items": {"path": "items.csv"}, "texts": "items.csv"}, "catalog.texts"),
    ({"items": {"path": "items.csv"}, "vectors": {"audio": "v.npz"}}, "catalog.vectors.audio"),
    ({"items": {"path": "items.csv"}, "interactions": {"path": 5}}, "catalog.interactions.path"),
    ({"items": {"path": "items.csv"}, "tags": {"path": "t.csv", "on_unknown_ids": "skip"}}, "catalog.tags.on_unknown_ids"),
])
def test_catalog_blocks_of_the_wrong_kind_are_named(spec, field):
    with pytest.raises(InputError, match=rf"field '{field}'"):
        check_catalog_spec(spec)


def test_tags_column_null_still_turns_the_tags_column_off(tmp_path):
    c = _load(tmp_path, {"items.csv": "item_id,name,tags\na,A,x|y\n"},
              {"items": {"path": "items.csv", "tags_column": None}})
    assert c.tags_by_item() == {}


# ---------------------------------------------------------------------- the build config
def _cfg(**over) -> dict:
    raw = {"name": "byo", "output": "spaces/never-built", "dataset": "generic", "catalog": {"items": {"path": "items.csv"}},
           **over}
    return _config.load_config(raw, defaults=DEFAULTS)


@pytest.mark.parametrize("over, field", [
    ({"seed": "abc"}, "seed"),
    ({"build_cache": 5}, "build_cache"),
    ({"name": ["a"]}, "name"),
    ({"min_tag_users": "abc"}, "min_tag_users"),
    ({"positive_threshold": "abc"}, "positive_threshold"),
    ({"descriptions": {"template": {"header": 5}}}, "descriptions.template.header"),
    ({"descriptions": {"template": {"header": "The {name, a band"}}}, "descriptions.template.header"),
    ({"recommend": {"weights": {"fused": "abc"}}}, "recommend.weights.fused"),
    ({"examples": {"search": "abc"}}, "examples.search"),
    ({"tag_categories": ["a"]}, "tag_categories"),
    ({"tag_categories": {"mood": "cozy"}}, "tag_categories.mood"),     # was read letter by letter
    ({"index": {"backend": "milvus", "uri": "x.db", "index_type": "FOO"}}, "index.index_type"),
    ({"index": {"backend": "milvus", "uri": "http://h:19530", "index_type": "NOPE"}}, "index.index_type"),
    ({"index": {"backend": "milvus", "uri": "x.db", "index_params": [1]}}, "index.index_params"),
    ({"index": {"backend": "milvus", "uri": "x.db", "index_type": "HNSW", "index_params": {"M": "abc"}}},
     "index.index_params.M"),
    ({"index": {"backend": "milvus", "uri": "x.db", "index_type": "HNSW", "search_params": {"ef": 0}}},
     "index.search_params.ef"),
    ({"content": ["image"]}, "content"),
    ({"dataset": "lastfm"}, "catalog"),           # the catalog block was ignored: a Last.fm space was built
    ({"content": {"text": {"source": "vectors"}}}, "content.text"),     # replaced the text embeddings
    ({"content": {"cf": {"source": "vectors"}}}, "content.cf"),
    ({"content": {"../x": {"source": "vectors"}}}, "content.../x"),
    ({"content": {"image": "image_files"}}, "content.image"),
    ({"content": {"image": {"source": "image_files", "paramz": {}}}}, "content.image.paramz"),
    ({"content": {"image": {"source": "image_files", "params": {"bogus": 1}}}}, "content.image.params.bogus"),
    ({"content": {"audio": {"source": "audio_files", "params": {"patch_seconds": -1}}}},
     "content.audio.params.patch_seconds"),
    ({"content": {"audio": {"source": "vectors", "standardize": "no"}}}, "content.audio.standardize"),
])
def test_bad_settings_are_refused_before_any_stage(over, field):
    with pytest.raises(InputError, match=rf"field '{field}'"):
        check_build_config(_cfg(**over))


@pytest.mark.parametrize("over", [
    {"index": {"backend": "milvus", "uri": "x.db", "index_type": "hnsw", "index_params": {"M": 16}}},
    {"index": {"backend": "milvus", "uri": "http://h:19530", "index_type": "DISKANN"}},
    {"content": {"audio": {"source": "vectors", "standardize": False}, "image": None}},
    {"content": {"image": {"source": "image_files", "params": {"crop": "none"}}}},
    {"tag_categories": {"mood": ["cozy", "re:^chill"]}, "seed": 3, "build_cache": "cache"},
])
def test_good_settings_pass(over):
    check_build_config(_cfg(**over))


def test_cli_build_refuses_a_bad_milvus_index_type_before_any_stage(tmp_path):
    (tmp_path / "items.csv").write_text(ITEMS)
    cfg = {"name": "byo", "dataset": "generic", "output": str(tmp_path / "out"),
           "catalog": {"items": {"path": "items.csv"}},
           "index": {"backend": "milvus", "uri": str(tmp_path / "m.db"), "index_type": "FOO"}}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(cfg))
    r = CliRunner().invoke(app, ["build", str(tmp_path / "b.yaml"), "--quiet", "--no-progress"])
    assert r.exit_code == 2, r.output
    assert "index.index_type" in r.output and "'FOO'" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.build").exists()


# ------------------------------------------------------------------------- media failures
def test_media_failures_of_a_build_are_named():
    from talkrec.encoders.media import report_failures
    info = report_failures("image", [MediaFailure("/x/miss.png", "file not found")] * 7, 20)
    assert info["image_failed"] == 7
    assert info["image_failed_files"][0] == "/x/miss.png: file not found"
    assert report_failures("image", [], 3) == {"image_failed": 0}


def test_a_text_model_that_cannot_be_loaded_is_an_input_error_naming_text_model(tmp_path, monkeypatch):
    from talkrec.encoders.text import TextEncoder
    from talkrec.pipeline.cache import Cache, StageTimer
    from talkrec.pipeline.stages import text_stage

    def offline(self):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files.\nCheck your connection")
    monkeypatch.setattr(TextEncoder, "runtime", property(offline))
    with pytest.raises(InputError, match=r"field 'text.model': cannot load text model 'no-such-model' .*couldn't "
                                         r"connect"):
        text_stage({"text": {"model": "no-such-model"}}, np.array(["a"]), {"template": {"a": "x"}},
                   Cache(tmp_path / "c"), StageTimer(), False)


def test_jsonl_columns_of_mixed_kinds_are_settled_at_the_catalog_not_at_the_index(tmp_path, caplog):
    # 1990 beside "n/a" reached the index stage, where Arrow failed with a raw ArrowInvalid after every stage
    rows = ['{"item_id": "a", "name": "A", "mixed": 1990, "num": 1, "genres": ["rock", "pop"], "meta": {"x": 1}}',
            '{"item_id": "b", "name": "B", "mixed": "n/a", "num": "2", "genres": "jazz", "meta": "none"}',
            '{"item_id": "c", "name": "C", "mixed": null, "num": null, "genres": null, "meta": null}']
    with caplog.at_level(logging.WARNING, logger="talkrec.data.io"):
        c = _load(tmp_path, {"items.jsonl": "\n".join(rows) + "\n"}, {"items": {"path": "items.jsonl"}})
    items = c.items.set_index("item_id")
    assert items["mixed"].tolist()[:2] == ["1990", "n/a"] and items["mixed"].iloc[2] is None
    assert items["num"].dtype == "Int64" and items["num"].tolist()[:2] == [1, 2]       # numbers all along
    assert items["genres"].tolist()[:2] == [["rock", "pop"], ["jazz"]]
    assert items["meta"].tolist()[:2] == ['{"x": 1}', "none"]
    assert "column 'mixed' mixes number and string values; read as text" in caplog.text
    assert "'num'" not in caplog.text
    import pyarrow as pa
    pa.Table.from_pandas(c.items)          # what the index stage writes


def test_a_tag_given_twice_in_a_tags_file_is_one_tag_of_the_summed_weight(tmp_path):
    # each row of a tagging log is one tagging: 'rock' was in the item's description twice
    c = _load(tmp_path, {"items.csv": ITEMS, "tags.csv": "item_id,tag\na,pop\na,rock\na,rock\nb,jazz\n"},
              {"items": {"path": "items.csv"}, "tags": {"path": "tags.csv"}})
    assert c.tags_by_item() == {"a": {"genre": ["rock", "pop"]}, "b": {"genre": ["jazz"]}}


@pytest.mark.parametrize("column", ["description", "title", "modalities", "cold_start", "description_x"])
def test_an_items_column_the_space_writes_itself_is_refused_with_the_rename_that_keeps_it(tmp_path, column):
    # 'description' was replaced by the TEMPLATE text in the space's fields and 'title' dropped, without a word
    (tmp_path / "items.csv").write_text(f"item_id,name,{column}\na,A,my own text\n")
    with pytest.raises(InputError, match=rf"items.csv: field '{column}': an items column cannot be named '{column}'"):
        load_catalog({"items": {"path": "items.csv"}}, base=tmp_path)
    c = load_catalog({"items": {"path": "items.csv", "rename": {column: "mine"}},
                      "texts": {"mine": {"path": "items.csv", "column": column}}}, base=tmp_path)
    assert c.items["mine"].tolist() == ["my own text"] and c.texts["mine"].to_dict() == {"a": "my own text"}
