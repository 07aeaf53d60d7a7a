"""Bad inputs to the CF encoders, the fusion model and a generic catalog's items file are
InputErrors that say what is wrong (QA findings), and numeric item columns get one type
whatever the file format."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from talkrec.data.io import load_catalog
from talkrec.encoders.cf import ALSEncoder
from talkrec.encoders.ease import EASE
from talkrec.errors import InputError
from talkrec.fusion import ContrastiveFusion

INTER = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2"], "item_id": ["i1", "i2", "i1", "i3"],
                      "weight": [1.0, 2.0, 3.0, 1.0]})


# ------------------------------------------------------------------ ALS / EASE
@pytest.mark.parametrize("make", [lambda: ALSEncoder(factors=4, iterations=2), lambda: EASE()])
def test_cf_refuses_duplicate_item_ids(make):
    with pytest.raises(InputError, match=r"field 'item_ids': duplicate item id 'i1'"):
        make().fit(INTER, ["i1", "i1", "i2"])


@pytest.mark.parametrize("make", [lambda: ALSEncoder(factors=4, iterations=2), lambda: EASE(binary=False),
                                  lambda: EASE(min_weight=0.5)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, "lots"])
def test_cf_refuses_weights_that_are_not_finite_numbers(make, bad):
    inter = INTER.astype({"weight": object})
    inter.loc[2, "weight"] = bad
    with pytest.raises(InputError, match=r"row 3: field 'weight': weight .* is not a finite number"):
        make().fit(inter)


def test_binary_ease_without_min_weight_does_not_read_the_weights():
    a = EASE().fit(INTER)
    b = EASE().fit(INTER.assign(weight=np.nan))
    assert np.array_equal(a.neighbors_, b.neighbors_) and np.array_equal(a.weights_, b.weights_)


def test_als_encode_takes_a_non_str_id_as_fit_does():
    inter = INTER.assign(item_id=[1, 2, 1, 3])
    a = ALSEncoder(factors=4, iterations=2).fit(inter)
    assert a.item_ids_.tolist() == ["1", "2", "3"]
    v = a.encode(1)
    assert v.shape == (4,) and np.array_equal(v, a.encode("1"))
    assert np.array_equal(a.encode(np.int64(2)), a.encode("2"))
    assert a.encode([1, "3"]).shape == (2, 4)


# ------------------------------------------------------------------ fusion
def _fusion() -> ContrastiveFusion:
    return ContrastiveFusion(hidden_dim=16, out_dim=8, max_epochs=2, batch_size=32)


def _inputs(n: int = 120) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"text": rng.normal(size=(n, 16)).astype(np.float32), "cf": rng.normal(size=(n, 8)).astype(np.float32)}


@pytest.fixture(scope="module")
def fitted() -> ContrastiveFusion:
    return _fusion().fit(_inputs())


def test_fusion_refuses_infinite_inputs_naming_the_modality():
    X = _inputs()
    X["text"][5, 3] = np.inf
    with pytest.raises(InputError, match=r"field 'X\[text\]': modality 'text': infinite value in row 6"):
        _fusion().fit(X)
    X = _inputs()
    X["cf"] = [X["cf"], np.full_like(X["cf"], -np.inf)]             # a second view
    with pytest.raises(InputError, match=r"modality 'cf': infinite value in row 1"):
        _fusion().fit(X)


def test_fusion_fit_on_a_matrix_names_the_type_not_the_values():
    with pytest.raises(InputError, match=r"fusion needs at least two modalities") as e:
        _fusion().fit(np.zeros((50, 3)))
    assert "ndarray" in str(e.value) and "0." not in str(e.value) and len(str(e.value)) < 200
    with pytest.raises(InputError, match=r"fusion needs at least two modalities, got \['text'\]"):
        _fusion().fit({"text": np.zeros((5, 3))})


def test_fusion_transform_checks_rows_and_modalities(fitted):
    X = _inputs()
    with pytest.raises(InputError, match=r"one row per item; got row counts \{'text': 10, 'cf': 5\}"):
        fitted.transform({"text": X["text"][:10], "cf": X["cf"][:5]})
    with pytest.raises(InputError, match=r"field 'modality': unknown modality 'txt'; the model has \['text', 'cf'\]"):
        fitted.transform({"txt": X["text"]})
    with pytest.raises(InputError, match=r"unknown modality 'image'; the model has \['text', 'cf'\]"):
        fitted.project("image", X["text"])
    with pytest.raises(KeyError):                                   # what it raised before, still caught
        fitted.project("image", X["text"])
    with pytest.raises(InputError, match="infinite value in row 2"):
        fitted.transform({"text": np.where(np.arange(120)[:, None] == 1, np.inf, X["text"]), "cf": X["cf"]})
    assert fitted.transform(X).shape == (120, 8)


# ------------------------------------------------------------------ generic catalog items
def _items(tmp_path, name: str, text: str, **block) -> pd.DataFrame:
    (tmp_path / name).write_text(text)
    return load_catalog({"items": {"path": name, **block}}, base=tmp_path).items.set_index("item_id")


def test_a_whole_number_column_with_a_missing_value_is_nullable_int_in_every_format(tmp_path):
    rows = [{"item_id": "1", "name": "A", "year": 1984, "score": 2.5}, {"item_id": "2", "name": "B", "score": 3.0},
            {"item_id": "3", "name": "C", "year": 2001, "score": 1.0}]
    jsonl = _items(tmp_path, "items.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    csv = _items(tmp_path, "items.csv", "item_id,name,year,score\n1,A,1984,2.5\n2,B,,3.0\n3,C,2001,1.0\n")
    pq.write_table(pa.table({"item_id": ["1", "2", "3"], "name": ["A", "B", "C"],       # int64 with a null,
                             "year": pa.array([1984, None, 2001], pa.int64()),           # no pandas metadata
                             "score": [2.5, 3.0, 1.0]}), tmp_path / "items.parquet")
    parquet = load_catalog({"items": {"path": "items.parquet"}}, base=tmp_path).items.set_index("item_id")
    for items in (csv, jsonl, parquet):
        assert items["year"].dtype == "Int64"
        assert items["year"].tolist()[0] == 1984 and pd.isna(items.loc["2", "year"])
        assert items["score"].dtype == np.float64                   # decimals stay float
        assert items.loc["1", "decade"] == ["1980s"] and items.loc["2", "decade"] == []
    # with no value missing, a column of whole numbers stays int64, as before
    full = _items(tmp_path, "full.jsonl", '{"item_id": "1", "name": "A", "year": 1984}\n')
    assert full["year"].dtype == np.int64


def test_a_nan_cell_is_a_missing_number_and_ids_stay_text(tmp_path):
    text = "item_id,name,year,score\n1,A,1984,2.5\n2,B,NaN,nan\nNaN,C,1990,\nnull,D,,1.5\n"
    items = _items(tmp_path, "items.csv", text)
    assert items.index.tolist() == ["1", "2", "NaN", "null"]
    assert items["year"].dtype == "Int64" and pd.isna(items.loc["2", "year"]) and items.loc["NaN", "year"] == 1990
    assert items["score"].dtype == np.float64 and np.isnan(items.loc["2", "score"])
    assert items.loc["1", "decade"] == ["1980s"] and items.loc["2", "decade"] == []
    assert items.loc["NaN", "name"] == "C"
    # a text column stays text, 'NaN' included
    words = _items(tmp_path, "words.csv", "item_id,name,note\n1,A,NaN\n2,B,fine\n")
    assert words["note"].tolist() == ["NaN", "fine"]


def test_declared_number_types_read_nan_as_missing_like_an_empty_cell(tmp_path):
    text = "item_id,name,year,score\n1,A,1984,2.5\n2,B,NaN,NaN\n3,C,,\n"
    items = _items(tmp_path, "items.csv", text, types={"year": "int", "score": "float"})
    assert items["year"].dtype == "Int64" and items["year"].isna().tolist() == [False, True, True]
    assert items["score"].dtype == np.float64 and items["score"].isna().tolist() == [False, True, True]
    with pytest.raises(InputError, match=r"row 2: field 'year': cannot read 'x' as int"):
        _items(tmp_path, "bad.csv", "item_id,name,year\n1,A,1984\n2,B,x\n", types={"year": "int"})
