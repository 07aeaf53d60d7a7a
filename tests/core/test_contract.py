"""The shared contract every encoder and model passes on a tiny dataset with a known answer:
fit, encode/transform, save/load round trip, same output for the same random_state."""
from __future__ import annotations

import numpy as np
import pytest

from talkrec.encoders.base import Encoder
from talkrec.encoders.cf import ALSEncoder
from talkrec.encoders.text import TextEncoder
from talkrec.encoders.vectors import PrecomputedEncoder
from talkrec.fusion import ContrastiveFusion


def _cluster_of(i: str) -> str:
    return i.rstrip("0123456789")


def test_als_contract(tiny_catalog, tmp_path):
    ids = tiny_catalog.item_ids
    a = ALSEncoder(factors=8, iterations=10, random_state=1).fit(tiny_catalog.interactions, ids)
    b = ALSEncoder(factors=8, iterations=10, random_state=1).fit(tiny_catalog.interactions, ids)
    assert np.allclose(np.nan_to_num(a.item_factors_), np.nan_to_num(b.item_factors_))
    assert a.encode("metal0").shape == (8,) and a.encode(["metal0", "jazz1"]).shape == (2, 8)
    assert np.isnan(a.encode(["nope"])).all()
    # known answer: an item's nearest neighbour by CF is in its own cluster
    F = np.nan_to_num(a.item_factors_)
    F = F / np.maximum(np.linalg.norm(F, axis=1, keepdims=True), 1e-9)
    S = F @ F.T
    np.fill_diagonal(S, -1)
    same = np.mean([_cluster_of(ids[i]) == _cluster_of(ids[j]) for i, j in enumerate(S.argmax(axis=1))])
    assert same > 0.9
    # a new user from their items gets recommendations in the same cluster
    u = a.user_vector(["jazz1", "jazz2", "jazz3"])
    top = np.argsort(-a.recommend_scores(u))[:5]
    assert all(_cluster_of(ids[t]) == "jazz" for t in top)
    a.save(tmp_path / "cf")
    c = ALSEncoder.load(tmp_path / "cf")
    assert np.allclose(np.nan_to_num(c.encode(list(ids))), np.nan_to_num(a.encode(list(ids))))
    assert np.allclose(c.user_vector(["jazz1", "jazz2"]), a.user_vector(["jazz1", "jazz2"]), atol=1e-4)


def test_precomputed_contract(tiny_catalog):
    t = tiny_catalog.vectors["audio"]
    e = PrecomputedEncoder(modality="audio").fit(t)
    X = e.encode(list(t.ids))
    assert np.allclose(X.mean(axis=0), 0, atol=1e-5)
    assert e.encode(t.ids[0]).shape == (4,)
    assert np.isnan(e.encode(["metal0"])).all()  # metal0 has no audio in the fixture
    assert np.allclose(e.transform_raw(t.X), X, atol=1e-5)


@pytest.mark.parametrize("model", ["minilm"])
def test_text_encoder_contract(model):
    enc = TextEncoder(model)
    assert isinstance(enc, Encoder)
    v = enc.encode("heavy metal band")
    M = enc.encode(["heavy metal band", "smooth jazz trio", "thrash metal group"], batch_size=2)
    assert v.shape == (enc.dim,) and M.shape == (3, enc.dim)
    assert np.allclose(v, M[0], atol=1e-5)               # order kept across batches
    assert np.allclose(np.linalg.norm(M, axis=1), 1, atol=1e-5)
    assert M[0] @ M[2] > M[0] @ M[1]                       # known answer: metal ~ metal
    with pytest.raises(TypeError):
        enc.encode([1, 2])


def test_fusion_contract(tiny_catalog, tmp_path):
    ids = tiny_catalog.item_ids
    cf = ALSEncoder(factors=8, iterations=10).fit(tiny_catalog.interactions, ids)
    audio = PrecomputedEncoder().fit(tiny_catalog.vectors["audio"]).encode(list(ids))
    X = {"cf": cf.item_factors_, "audio": audio}
    m = ContrastiveFusion(max_epochs=40, batch_size=16, learning_rate=3e-3, hidden_dim=16, out_dim=8, random_state=0).fit(X)
    E = m.transform(X)
    S = E @ E.T
    np.fill_diagonal(S, -1)
    same = np.mean([_cluster_of(ids[i]) == _cluster_of(ids[j]) for i, j in enumerate(S.argmax(axis=1))])
    assert same > 0.9
    m.save(tmp_path / "m")
    assert np.allclose(ContrastiveFusion.load(tmp_path / "m").transform(X), E, atol=1e-6)
    again = ContrastiveFusion(max_epochs=40, batch_size=16, learning_rate=3e-3, hidden_dim=16, out_dim=8,
                              random_state=0).fit(X)
    assert np.allclose(again.transform(X), E, atol=1e-6)
