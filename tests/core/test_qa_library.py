"""QA of talkrec as a library: the encoders' ``encode`` contract (sentence-transformers'
shapes and inputs), the estimators with scikit-learn's ``clone``, loading a saved model that
is missing or damaged, and the Python API's input errors."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from contract import same_cluster_share

from talkrec.encoders.cf import ALSEncoder
from talkrec.encoders.ease import EASE
from talkrec.encoders.onnx_text import OnnxTextModel
from talkrec.encoders.text import TextEncoder
from talkrec.encoders.vectors import PrecomputedEncoder
from talkrec.errors import InputError
from talkrec.estimator import MissingModelFile, UnreadableModelFile
from talkrec.fusion.model import ContrastiveFusion
from talkrec.fusion.projector import FusionProjector

TEXTS = ["heavy metal band", "a female singer-songwriter with an acoustic guitar and a melancholic voice",
         "jazz", "thrash metal group from the bay area", "x"]


@pytest.fixture(scope="module")
def text_encoder() -> TextEncoder:
    return TextEncoder(n_threads=1, bf16_passages=False)


# ------------------------------------------------------------------ encode(): shapes and inputs
def test_text_encode_gives_a_vector_for_one_text_and_a_matrix_for_any_sequence(text_encoder):
    enc, d = text_encoder, text_encoder.dim
    M = enc.encode(TEXTS, batch_size=2)
    assert M.shape == (len(TEXTS), d) and M.dtype == np.float32
    for i, t in enumerate(TEXTS):                                   # alone == in a batch, order kept
        v = enc.encode(t)
        assert v.shape == (d,) and v.dtype == np.float32
        np.testing.assert_allclose(v, M[i], atol=1e-5)
    empty = enc.encode([])
    assert empty.shape == (0, d) and empty.dtype == np.float32
    for same in (tuple(TEXTS), np.array(TEXTS), (t for t in TEXTS)):
        np.testing.assert_allclose(enc.encode(same, batch_size=3), M, atol=1e-5)
    np.testing.assert_allclose(enc.encode(np.array(TEXTS[0])), M[0], atol=1e-5)   # a 0-d array is one text
    np.testing.assert_allclose(enc.encode(TEXTS, show_progress_bar=True), M, atol=1e-5)
    long = enc.encode("metal " * 5000)                              # truncated to the model's limit
    assert long.shape == (d,) and np.isfinite(long).all()


def test_text_items_that_are_not_str_raise_an_input_error_naming_their_position(text_encoder):
    for bad, pos in ((["a", None], 1), ([3, "a"], 0), (None, 0), (5, 0), (["a", "b", b"c"], 2),
                     (["a", float("nan")], 1)):
        with pytest.raises(InputError) as e:
            text_encoder.encode(bad)
        assert e.value.field == "inputs" and f"text #{pos} " in str(e.value), str(e.value)
        assert isinstance(e.value, TypeError)                       # what it raised before


def test_batch_size_must_be_a_positive_integer(text_encoder, tiny_catalog):
    als = ALSEncoder(factors=4, iterations=2).fit(tiny_catalog.interactions, tiny_catalog.items["item_id"])
    pre = PrecomputedEncoder(modality="audio").fit(tiny_catalog.vectors["audio"])
    for enc in (text_encoder, als, pre):
        for bad in (0, -1, True, 2.5, "8", None):
            with pytest.raises(InputError) as e:
                enc.encode(["metal1"], batch_size=bad)
            assert e.value.field == "batch_size", (type(enc).__name__, bad)
        assert enc.encode(["metal1"], batch_size=np.int64(1)).shape[0] == 1


# ------------------------------------------------------------------ estimators with scikit-learn
def _tiny_fusion_inputs(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(40, 5)).astype(np.float32)
    B = (A @ rng.normal(size=(5, 3))).astype(np.float32)
    B[:4] = np.nan                                                  # items missing a modality
    return {"a": A, "b": B}


FUSION = {"hidden_dim": 8, "out_dim": 4, "max_epochs": 3, "batch_size": 16}


def test_sklearn_clone_gives_unfitted_copies_with_the_same_params(tiny_catalog):
    from sklearn.base import clone as sk_clone

    ids = tiny_catalog.items["item_id"]
    fitted = [ALSEncoder(factors=4, iterations=2).fit(tiny_catalog.interactions, ids),
              EASE(regularization=10.0, n_neighbors=5).fit(tiny_catalog.interactions, ids),
              PrecomputedEncoder(modality="audio").fit(tiny_catalog.vectors["audio"]),
              ContrastiveFusion(**FUSION).fit(_tiny_fusion_inputs()),
              TextEncoder(n_threads=1, max_length=16)]
    for est in fitted:
        twin = sk_clone(est)
        assert type(twin) is type(est) and twin.get_params() == est.get_params(), repr(est)
        assert not twin._is_fitted() and twin.set_params(**est.get_params()) is twin


# ------------------------------------------------------------------ loading a saved model
def _damage(folder: Path, name: str, how: str) -> None:
    f = folder / name
    if how == "garbage":
        f.write_bytes(b"garbage")
    elif how == "missing":
        f.unlink()
    elif how == "list":
        f.write_text("[1, 2]")
    elif how == "unknown-key":                                       # a parameter the class does not have
        cfg = json.loads(f.read_text())
        (cfg["params"] if "params" in cfg else cfg)["bogus"] = 1     # the fusion's config nests them
        f.write_text(json.dumps(cfg))


def _check_load_errors(load, saved: Path, tmp: Path, cases: list[tuple[str, str]]) -> None:
    with pytest.raises(MissingModelFile) as e:
        load(tmp / "no-such-model")
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, InputError)
    assert e.value.path == str(tmp / "no-such-model" / "config.json")
    for name, how in cases:
        bad = tmp / f"bad-{name}-{how}"
        shutil.copytree(saved, bad)
        _damage(bad, name, how)
        with pytest.raises(UnreadableModelFile) as e:
            load(bad)
        assert e.value.path == str(bad / name), (name, how, str(e.value))
        assert isinstance(e.value, FileNotFoundError) == (how == "missing")


def test_a_missing_or_damaged_saved_model_names_its_file(tiny_catalog, tmp_path):
    ids = tiny_catalog.items["item_id"]
    als = ALSEncoder(factors=4, iterations=2).fit(tiny_catalog.interactions, ids)
    ease = EASE(regularization=10.0, n_neighbors=5).fit(tiny_catalog.interactions, ids)
    fusion = ContrastiveFusion(**FUSION).fit(_tiny_fusion_inputs())
    cfg = [("config.json", how) for how in ("garbage", "missing", "list", "unknown-key")]
    for est, data in ((als, "factors.npz"), (ease, "ease.npz"), (fusion, "model.safetensors")):
        est.save(tmp_path / type(est).__name__)
        back = type(est).load(tmp_path / type(est).__name__)
        assert back.get_params() == est.get_params()
        loads = [type(est).load] + ([FusionProjector.load] if est is fusion else [])
        for load in loads:
            sub = tmp_path / f"{type(est).__name__}-{load.__qualname__}"
            sub.mkdir()
            lenient = load == FusionProjector.load                   # serves any saved params dict
            _check_load_errors(load, tmp_path / type(est).__name__, sub,
                               [c for c in cfg if not (lenient and c[1] == "unknown-key")]
                               + [(data, "garbage"), (data, "missing")])


def test_npz_without_an_array_or_with_mismatched_rows_is_refused(tiny_catalog, tmp_path):
    als = ALSEncoder(factors=4, iterations=2).fit(tiny_catalog.interactions, tiny_catalog.items["item_id"])
    als.save(tmp_path / "cf")
    np.savez(tmp_path / "cf" / "factors.npz", item_ids=als.item_ids_, item_factors=als.item_factors_)
    with pytest.raises(UnreadableModelFile, match="user_ids"):
        ALSEncoder.load(tmp_path / "cf")
    np.savez(tmp_path / "cf" / "factors.npz", item_ids=als.item_ids_[:3], item_factors=als.item_factors_,
             user_ids=als.user_ids_, user_factors=als.user_factors_)
    with pytest.raises(UnreadableModelFile, match="3 item ids"):
        ALSEncoder.load(tmp_path / "cf")


def test_a_damaged_text_model_export_names_its_file(text_encoder, tmp_path):
    src = text_encoder.exported_dir
    assert src is not None
    folder = tmp_path / "export"
    folder.mkdir()
    for f in os.listdir(src):
        os.symlink(src / f, folder / f)
    OnnxTextModel(folder).encode(["ok"])
    (folder / "tokenizer.json").unlink()
    with pytest.raises(MissingModelFile) as e:
        OnnxTextModel(folder)
    assert e.value.path == str(folder / "tokenizer.json")
    (folder / "tokenizer.json").write_text("garbage")
    with pytest.raises(UnreadableModelFile) as e:
        OnnxTextModel(folder)
    assert e.value.path == str(folder / "tokenizer.json")
    (folder / "tokenizer.json").unlink()
    os.symlink(src / "tokenizer.json", folder / "tokenizer.json")
    graph = OnnxTextModel(folder)._fp32
    (folder / graph).unlink()
    (folder / graph).write_bytes(b"garbage")
    with pytest.raises(UnreadableModelFile) as e:
        TextEncoder(model_dir=str(folder), n_threads=1, bf16_passages=False).encode("x")
    assert e.value.path == str(folder / graph)


def test_fusion_round_trip_and_projector_repr(tmp_path):
    X = _tiny_fusion_inputs()
    f = ContrastiveFusion(**FUSION).fit(X)
    f.save(tmp_path / "f")
    p = FusionProjector.load(tmp_path / "f")
    np.testing.assert_allclose(p.transform(X), f.transform(X), atol=1e-5)
    assert repr(p) == "FusionProjector(out_dim=4, modalities=['a', 'b'])"
    assert same_cluster_share(np.array(["x"] * 40), p.transform(X)) == 1.0


# ------------------------------------------------------------------ the public surface
def test_public_names_include_every_estimator_and_error():
    import talkrec

    for name in ("EASE", "PrecomputedEncoder", "NotFittedError", "UnreadableModelFile"):
        assert name in talkrec.__all__ and getattr(talkrec, name).__name__ == name
        assert getattr(talkrec, name).__doc__


def test_search_names_a_query_that_is_not_text():
    from talkrec.space.search import check_text

    for bad in (5, None, ["metal"], b"metal"):
        with pytest.raises(InputError, match=r"query must be a str, got") as e:
            check_text(bad)  # type: ignore[arg-type]
        assert e.value.field == "query"
    with pytest.raises(InputError, match="query text is empty"):
        check_text("  ")


def test_rrf_refuses_the_padding_of_a_batched_top_k():
    from talkrec.ranking import rrf_scores, top_k

    padded = top_k(np.array([[0.5, np.nan, 0.2]]), 3)[0]            # [0, 2, -1]
    assert padded.tolist() == [0, 2, -1]
    with pytest.raises(ValueError, match="padding"):
        rrf_scores([padded], 3)                                     # -1 would score item 2 again
    np.testing.assert_allclose(rrf_scores([padded[padded >= 0]], 3), [1 / 61, 0, 1 / 62])


def test_fusion_inputs_that_are_not_numbers_raise_input_errors_naming_the_modality():
    X = _tiny_fusion_inputs()
    f = ContrastiveFusion(**FUSION).fit(X)
    inf = np.zeros(5)
    inf[2] = np.inf
    for call in (lambda: f.project("a", "abc"), lambda: f.project("a", [["x"] * 5]), lambda: f.project("a", None),
                 lambda: f.project("a", inf), lambda: f.project("a", np.full(5, 1e39)),   # inf as float32
                 lambda: f.transform({"a": "abc", "b": X["b"]}), lambda: f.transform({"a": None, "b": X["b"]})):
        with pytest.raises(InputError) as e:
            call()
        assert e.value.field == "X[a]", str(e.value)
    with pytest.raises(InputError) as e:
        f.transform(X["a"])                                         # not a mapping
    assert e.value.field == "X"
    with pytest.raises(InputError, match="expected numbers") as e:
        ContrastiveFusion(**FUSION).fit({"a": np.full((40, 5), "x"), "b": X["b"]})
    assert e.value.field == "X[a]"
    assert f.project("a", X["a"][0]).shape == (4,) and f.project("a", X["a"][:0]).shape == (0, 4)


def test_cf_histories_refuse_one_string_nan_weights_and_rows_out_of_range(tiny_catalog):
    ids = tiny_catalog.items["item_id"]
    als = ALSEncoder(factors=4, iterations=2).fit(tiny_catalog.interactions, ids)
    ease = EASE(regularization=10.0, n_neighbors=5).fit(tiny_catalog.interactions, ids)
    for call, field in ((lambda: als.user_vector("metal1"), "item_ids"),      # not its characters
                        (lambda: ease.score("metal1"), "item_ids"),
                        (lambda: als.user_vector(["metal1"], weights=[np.nan]), "weights"),
                        (lambda: ease.score(["metal1"], weights=[np.inf]), "weights"),
                        (lambda: ease.score(["metal1"], weights=["a"]), "weights"),
                        (lambda: als.user_vector(["metal1"], weights=[1, 2]), "weights"),
                        (lambda: ease.score_rows(np.array([-1])), "rows"),                 # not the last row
                        (lambda: ease.score_rows(np.array([len(ids)])), "rows")):
        with pytest.raises(InputError) as e:
            call()
        assert e.value.field == field, str(e.value)
    np.testing.assert_allclose(ease.score(["metal1", "metal2"], weights=[1.0, 2.0]),
                               ease.score_rows(ease.positions(["metal1", "metal2"]), [1.0, 2.0]))
    assert np.isfinite(als.user_vector(("metal1", "metal2"), weights=np.array([1.0, 2.0]))).all()


def test_query_encoder_settings_must_be_integers(text_encoder):
    from talkrec.encoders.query import QueryEncoder

    for name, bad in (("cache_size", "a"), ("cache_size", True), ("max_batch", 2.5), ("nice", None),
                      ("workers", 1.5), ("lanes", "2"), ("nice", 20), ("max_batch", 0)):
        with pytest.raises(InputError) as e:
            QueryEncoder(text_encoder, **{name: bad})
        assert e.value.field == name
    assert QueryEncoder(text_encoder, cache_size=np.int64(4)).encode("jazz", kind="query").shape == (text_encoder.dim,)


def test_als_user_vector_with_items_without_interactions_matches_the_saved_model(tiny_catalog, tmp_path):
    ids = [*tiny_catalog.items["item_id"], "cold1", "cold2"]             # in the catalog, never played
    als = ALSEncoder(factors=4, iterations=3).fit(tiny_catalog.interactions, ids)
    assert np.isnan(als.encode("cold1")).all() and np.isfinite(als.encode("metal1")).all()
    u = als.user_vector(["metal1", "metal2"])
    assert np.isfinite(u).all()                                     # NaN before: the model shared the NaN rows
    assert np.isfinite(als.recommend_scores(u)[:-2]).all()
    als.save(tmp_path / "cf")
    np.testing.assert_allclose(ALSEncoder.load(tmp_path / "cf").user_vector(["metal1", "metal2"]), u, atol=1e-5)


def test_a_weight_of_zero_is_no_interaction_for_als_and_ease():
    """A 0-weight row was a play of confidence 1 for ALS and a 1 in EASE's binary matrix,
    while a user's history (Space) ignores it (found by the catalog QA pass)."""
    import pandas as pd

    from talkrec.encoders.cf import ALSEncoder
    from talkrec.encoders.ease import EASE
    base = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2", "u3"], "item_id": ["a", "b", "a", "c", "b"],
                         "weight": [3.0, 1.0, 2.0, 5.0, 1.0]})
    zero = pd.concat([base, pd.DataFrame({"user_id": ["u3", "u4"], "item_id": ["c", "a"], "weight": [0.0, 0.0]})])
    ids = ["a", "b", "c"]
    m0, u0 = ALSEncoder(factors=2)._matrix(base, np.array(ids))
    m1, u1 = ALSEncoder(factors=2)._matrix(zero, np.array(ids))
    assert (m0 != m1).nnz == 0 and list(u0) == list(u1)          # u4 (only a 0) is no user at all
    e0, e1 = EASE(regularization=1.0)._matrix(base, np.array(ids)), EASE(regularization=1.0)._matrix(zero, np.array(ids))
    assert (e0 != e1).nnz == 0
