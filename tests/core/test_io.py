"""Ingest: readers, schema checks and the errors users see."""
from __future__ import annotations

import json

import numpy as np
import pytest

from talkrec.data.io import load_catalog
from talkrec.data.tables import read_table
from talkrec.data.vector_files import read_vectors
from talkrec.errors import InputError


def test_csv_roundtrip_and_types(tmp_path):
    p = tmp_path / "items.csv"
    p.write_text("item_id,name,year,genres\n1,A,1990,rock|pop\n2,B,,jazz\n")
    df = read_table(p, {"item_id": "str", "name": "str"}, optional={"year": "int", "genres": "list"})
    assert df["item_id"].tolist() == ["1", "2"]
    assert df["year"].tolist()[0] == 1990 and df["year"].tolist()[1] is None
    assert df["genres"].tolist() == [["rock", "pop"], ["jazz"]]


def test_error_names_file_row_and_field(tmp_path):
    p = tmp_path / "items.csv"
    p.write_text("item_id,name\n1,A\n2,\n")
    with pytest.raises(InputError) as e:
        read_table(p, {"item_id": "str", "name": "str"})
    msg = str(e.value)
    assert "items.csv" in msg and "row 2" in msg and "'name'" in msg
    assert e.value.row == 2 and e.value.field == "name"


def test_bad_number_and_missing_column(tmp_path):
    p = tmp_path / "plays.csv"
    p.write_text("user_id,item_id,weight\nu,1,3\nu,2,lots\n")
    with pytest.raises(InputError, match=r"row 2.*'weight'.*'lots'"):
        read_table(p, {"user_id": "str", "item_id": "str", "weight": "float"})
    q = tmp_path / "x.csv"
    q.write_text("id,name\n1,A\n")
    with pytest.raises(InputError, match="missing column 'item_id'"):
        read_table(q, {"item_id": "str"})


def test_jsonl_bad_line(tmp_path):
    p = tmp_path / "items.jsonl"
    p.write_text(json.dumps({"item_id": "1", "name": "A"}) + "\n{not json}\n")
    with pytest.raises(InputError, match=r"items.jsonl: row 2: invalid JSON"):
        read_table(p, {"item_id": "str", "name": "str"})


def test_parquet_and_catalog_refs(tmp_path):
    import pandas as pd
    pd.DataFrame({"item_id": ["a", "b"], "name": ["A", "B"], "tags": ["genre:rock|mood:sad", ""]}).to_parquet(tmp_path / "items.parquet")
    (tmp_path / "plays.csv").write_text("user_id,item_id,weight\nu1,a,2\nu1,zzz,1\n")
    spec = {"items": {"path": "items.parquet", "tags_column": "tags"}, "interactions": {"path": "plays.csv"}}
    with pytest.raises(InputError, match=r"plays.csv: row 2: field 'item_id': unknown item_id 'zzz'"):
        load_catalog(spec, base=tmp_path)
    (tmp_path / "plays.csv").write_text("user_id,item_id,weight\nu1,a,2\n")
    c = load_catalog(spec, base=tmp_path)
    assert c.tags_by_item()["a"] == {"genre": ["rock"], "mood": ["sad"]}


def test_duplicate_ids_rejected(tmp_path):
    (tmp_path / "items.csv").write_text("item_id,name\n1,A\n1,B\n")
    with pytest.raises(InputError, match=r"row 2.*duplicate"):
        load_catalog({"items": {"path": "items.csv"}}, base=tmp_path)


def test_read_vectors_formats(tmp_path):
    np.savez(tmp_path / "v.npz", ids=np.array(["a", "b"]), X=np.eye(2, dtype=np.float32))
    assert read_vectors(tmp_path / "v.npz").dim == 2
    (tmp_path / "v.csv").write_text("item_id,f1,f2\na,1,2\nb,3,x\n")
    with pytest.raises(InputError, match=r"v.csv: row 2: field 'f2'"):
        read_vectors(tmp_path / "v.csv")
    np.save(tmp_path / "m.npy", np.ones((2, 3)))
    with pytest.raises(InputError, match="ids"):
        read_vectors(tmp_path / "m.npy")
    (tmp_path / "m.ids.txt").write_text("a\nb\n")
    assert read_vectors(tmp_path / "m.npy").X.shape == (2, 3)


def test_ragged_and_non_numeric_vector_rows_name_file_row_and_field(tmp_path):
    import pandas as pd
    (tmp_path / "v.jsonl").write_text('{"item_id": "a", "vector": [1, 2]}\n{"item_id": "b", "vector": [1, 2, 3]}\n')
    with pytest.raises(InputError, match=r"v.jsonl: row 2: field 'vector': expected 2 numbers \(as in row 1\), got 3"):
        read_vectors(tmp_path / "v.jsonl")
    (tmp_path / "w.jsonl").write_text('{"item_id": "a", "vector": [1, true]}\n')
    with pytest.raises(InputError, match=r"w.jsonl: row 1: field 'vector': element 2: cannot read True"):
        read_vectors(tmp_path / "w.jsonl")
    (tmp_path / "x.csv").write_text("item_id,f1,f2\na,1,2\nb,3,4,5\n")
    with pytest.raises(InputError, match=r"x.csv: row 2: expected 3 fields \(as in the header\), got 4"):
        read_vectors(tmp_path / "x.csv")
    (tmp_path / "y.csv").write_text('item_id,vector\na,"1 2 3"\nb,"[1, 2, 3]"\n')
    assert read_vectors(tmp_path / "y.csv").X.tolist() == [[1, 2, 3], [1, 2, 3]]
    pd.DataFrame({"item_id": ["a", "b"], "vector": [[1.0, 2.0], [3.0, float("inf")]]}).to_parquet(
        tmp_path / "z.parquet")
    with pytest.raises(InputError, match=r"z.parquet: row 2: field 'vector': element 2: not a finite number"):
        read_vectors(tmp_path / "z.parquet")
    pd.DataFrame({"item_id": ["a", ""], "f1": [1.0, 2.0]}).to_parquet(tmp_path / "ids.parquet")
    with pytest.raises(InputError, match=r"ids.parquet: row 2: field 'item_id': empty value"):
        read_vectors(tmp_path / "ids.parquet")
    np.savez(tmp_path / "two.npz", ids=np.array(["a", "b"]), X=np.eye(2, dtype=np.float32))
    with pytest.raises(InputError, match=r"expected 3 numbers per vector \(the declared dim\), got 2"):
        read_vectors(tmp_path / "two.npz", dim=3)


def test_unknown_ids_and_negative_weights_can_be_dropped_and_are_counted(tmp_path):
    (tmp_path / "items.csv").write_text("item_id,name\na,A\nb,B\n")
    (tmp_path / "plays.csv").write_text("user_id,item_id,weight\nu,a,2\nu,b,-1\nv,zz,3\nv,b,0\n")
    (tmp_path / "audio.csv").write_text("item_id,f1\na,1\nghost,2\nb,3\n")
    spec = {"items": {"path": "items.csv"},
            "interactions": {"path": "plays.csv", "negative_weights": "drop", "on_unknown_ids": "drop"},
            "vectors": {"audio": {"path": "audio.csv", "on_unknown_ids": "drop"}}}
    c = load_catalog(spec, base=tmp_path)
    assert c.interactions[["item_id", "weight"]].values.tolist() == [["a", 2.0], ["b", 0.0]]
    assert c.vectors["audio"].ids.tolist() == ["a", "b"]
    assert c.report == {"interactions_negative_weights_dropped": 1, "interactions_unknown_ids_dropped": 1,
                        "vectors[audio]_unknown_ids_dropped": 1}
    with pytest.raises(InputError, match=r"negative_weights must be one of error, drop, got 'clamp'"):
        load_catalog({**spec, "interactions": {"path": "plays.csv", "negative_weights": "clamp"}}, base=tmp_path)
    with pytest.raises(InputError, match=r"plays.csv: row 2: field 'weight': negative weight -1.0"):
        load_catalog({"items": spec["items"], "interactions": {"path": "plays.csv"}}, base=tmp_path)


def test_python_catalogs_are_checked_by_the_build(tmp_path, tiny_catalog):
    from talkrec.data.catalog import VectorTable
    from talkrec.pipeline import build
    c = tiny_catalog
    good = c.interactions.copy()
    c.interactions.loc[3, "weight"] = -5.0
    with pytest.raises(InputError, match=r"catalog.interactions: row 4: field 'weight': negative weight -5.0"):
        build({"name": "x", "output": str(tmp_path / "s")}, show_progress=False, catalog=c)
    c.interactions = good
    c.vectors["audio"] = VectorTable(np.array(["metal1", "nope"]), np.ones((2, 4)))
    with pytest.raises(InputError, match=r"catalog.vectors\['audio'\]: row 2: field 'item_id': unknown item_id 'nope'"):
        build({"name": "x", "output": str(tmp_path / "s")}, show_progress=False, catalog=c)
    assert not (tmp_path / "s").exists()


def test_a_content_modality_no_item_has_is_an_error(tmp_path, tiny_catalog, monkeypatch):
    """Every media file failing (here: a fake encoder) leaves no item with the modality."""
    import pandas as pd

    import talkrec.encoders.media as media
    from talkrec.pipeline import build
    monkeypatch.setattr(media, "encode_media_files", lambda spec, paths, **kw: (np.full((len(paths), 3), np.nan), []))
    ids = tiny_catalog.item_ids[:5]
    tiny_catalog.media = {"image": pd.Series([f"/nowhere/{i}.png" for i in ids], index=ids)}
    with pytest.raises(InputError, match=r"content.image: no item has a image vector \(image_files\)"):
        build({"name": "x", "output": str(tmp_path / "s"), "content": {"image": {"source": "image_files"}}},
              show_progress=False, catalog=tiny_catalog)
    assert not (tmp_path / "s").exists()
