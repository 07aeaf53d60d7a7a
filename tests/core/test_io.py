"""Ingest: readers, schema checks and the errors users see."""
from __future__ import annotations

import json

import numpy as np
import pytest

from talkrec.data.io import load_catalog, read_table, read_vectors
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
