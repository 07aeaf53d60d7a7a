"""The estimator base (talkrec.estimator) and the shared contract (tests/contract.py) run by
the CF, precomputed-vector and text encoders on a tiny dataset with a known answer."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from contract import (FitContract, PretrainedContract, RandomStateContract, SaveLoadContract, cluster_of,
                      same_cluster_share)

from talkrec.encoders.base import Encoder
from talkrec.encoders.cf import ALSEncoder
from talkrec.encoders.text import TextEncoder
from talkrec.encoders.vectors import PrecomputedEncoder
from talkrec.errors import InputError, NotFittedError
from talkrec.estimator import Estimator, Instance, Interval, Options, Predicate, check_param, clone


# ------------------------------------------------------------------ the base class itself
class _Inner(Estimator):
    _constraints = {"size": Interval(int, 1)}

    def __init__(self, *, size: int = 3) -> None:
        self.size = size


class _Outer(Estimator):
    _constraints = {"inner": Instance(_Inner, none=True), "rate": Interval(float, 0, 1, "neither")}

    def __init__(self, *, inner: _Inner | None = None, rate: float = 0.5) -> None:
        self.inner = inner
        self.rate = rate

    def fit(self) -> "_Outer":
        self._check_params()
        self.seen_ = True
        return self


class _Child(_Outer):
    _constraints = {**_Outer._constraints, "mode": Options("a", "b")}

    def __init__(self, *, mode: str = "a", **kw: Any) -> None:
        super().__init__(**kw)
        self.mode = mode


def test_params_come_from_the_signatures_and_kwargs_reach_the_parent():
    assert _Child._get_param_names() == ["mode", "inner", "rate"]
    c = _Child(mode="b", rate=0.25)
    assert c.get_params() == {"mode": "b", "inner": None, "rate": 0.25}
    assert repr(c) == "_Child(mode='b', rate=0.25)" and repr(_Child()) == "_Child()"


def test_deep_params_reach_nested_estimators():
    o = _Outer(inner=_Inner(size=5))
    assert o.get_params()["inner__size"] == 5 and "inner__size" not in o.get_params(deep=False)
    assert o.set_params(inner__size=7, rate=0.1) is o and o.inner.size == 7 and o.rate == 0.1
    twin = clone(o)
    assert twin.inner is not o.inner and twin.get_params(deep=False).keys() == o.get_params(deep=False).keys()
    assert twin.inner.size == 7
    with pytest.raises(InputError) as e:
        _Outer().set_params(inner__size=2)            # no estimator inside
    assert e.value.field == "inner"
    with pytest.raises(InputError) as e:
        o.set_params(speed=1)
    assert e.value.field == "speed" and "rate" in str(e.value)


def test_bad_params_are_input_errors_raised_in_fit_and_clone_is_unfitted():
    o = _Child(mode="c")                              # stored, not checked
    with pytest.raises(InputError, match="mode must be one of 'a', 'b', got 'c'") as e:
        o.fit()
    assert e.value.field == "mode" and isinstance(e.value, ValueError)
    fitted = _Child().fit()
    assert fitted._is_fitted() and not clone(fitted)._is_fitted()
    with pytest.raises(NotFittedError, match="_Child is not fitted") as e2:
        clone(fitted)._check_fitted()
    assert isinstance(e2.value, RuntimeError)


@pytest.mark.parametrize(("constraint", "good", "bad", "text"), [
    (Interval(int, 1), [1, np.int64(9)], [0, 1.0, True, None, "2"], "an integer >= 1"),
    (Interval(float, 0, 1, "left"), [0, 0.5, np.float32(0.9)], [1, -0.1, float("nan"), False], "a number in [0, 1)"),
    (Interval(float, 0, closed="neither", none=True), [None, 1e-9], [0.0, -1], "a number > 0 or None"),
    (Interval(float, high=2, closed="neither"), [1.9], [2.0], "a number < 2"),
    (Options("log", "linear"), ["log"], ["sqrt", None, 1], "one of 'log', 'linear'"),
    (Instance(str, none=True), ["x", None], [1, b"x"], "a str or None"),
    (Predicate(lambda v: v % 2 == 0, "an even number"), [2, 4], [3, "x"], "an even number"),
])
def test_constraints_accept_reject_and_say_what_they_want(constraint, good, bad, text):
    assert str(constraint) == text
    for v in good:
        check_param("p", v, constraint)
    for v in bad:
        with pytest.raises(InputError) as e:
            check_param("p", v, constraint)
        assert e.value.field == "p" and text in str(e.value)


# ------------------------------------------------------------------ CF (ALS)
class TestALSEncoder(FitContract, RandomStateContract, SaveLoadContract):
    estimator = ALSEncoder
    params = {"factors": 8, "iterations": 10}
    bad_params = {"factors": 0, "regularization": -1.0, "alpha": 0.0, "confidence_scheme": "sqrt"}

    @pytest.fixture
    def data(self, tiny_catalog):
        return tiny_catalog

    def fit(self, est, data):
        return est.fit(data.interactions, data.item_ids)

    def outputs(self, est, data):
        return est.encode(list(data.item_ids))

    def check_known_answer(self, est, data):
        ids = data.item_ids
        assert est.encode("metal0").shape == (8,) and est.encode(["metal0", "jazz1"]).shape == (2, 8)
        assert np.isnan(est.encode(["nope"])).all()
        # an item's nearest neighbour by CF is in its own cluster
        assert same_cluster_share(ids, est.item_factors_) > 0.9
        # a new user from their items gets recommendations in the same cluster
        top = np.argsort(-est.recommend_scores(est.user_vector(["jazz1", "jazz2", "jazz3"])))[:5]
        assert all(cluster_of(ids[t]) == "jazz" for t in top)

    def bad_inputs(self, est, data):
        return [("weight", lambda: clone(est).fit(data.interactions.drop(columns="weight"))),
                ("interactions", lambda: clone(est).fit(data.interactions, ["nope"])),
                ("interactions", lambda: clone(est).fit(data.interactions.to_dict("records"))),
                ("weights", lambda: est.user_vector(["jazz1", "jazz2"], [1.0]))]

    def test_loaded_model_recomputes_user_vectors(self, data, tmp_path):
        a = self.fitted(data)
        a.save(tmp_path / "cf")
        c = ALSEncoder.load(tmp_path / "cf")
        assert np.allclose(c.user_vector(["jazz1", "jazz2"]), a.user_vector(["jazz1", "jazz2"]), atol=1e-4)


# ------------------------------------------------------------------ precomputed vectors
class TestPrecomputedEncoder(FitContract):
    estimator = PrecomputedEncoder
    params = {"modality": "audio"}
    bad_params = {"modality": "", "standardize": "yes"}

    @pytest.fixture
    def data(self, tiny_catalog):
        return tiny_catalog.vectors["audio"]

    def fit(self, est, data):
        return est.fit(data)

    def outputs(self, est, data):
        return est.encode(list(data.ids))

    def check_known_answer(self, est, data):
        X = est.encode(list(data.ids))
        assert np.allclose(X.mean(axis=0), 0, atol=1e-5)
        assert est.encode(data.ids[0]).shape == (4,) and est.dim == 4
        assert np.isnan(est.encode(["metal0"])).all()  # metal0 has no audio in the fixture
        assert np.allclose(est.transform_raw(data.X), X, atol=1e-5)
        assert same_cluster_share(data.ids, X) == 1.0

    def bad_inputs(self, est, data):
        return [("table", lambda: clone(est).fit(data.X)),
                ("X", lambda: est.transform_raw(np.ones((2, 3))))]


# ------------------------------------------------------------------ text (pretrained MiniLM)
TEXTS = ["heavy metal band", "smooth jazz trio", "thrash metal group"]


class TestTextEncoder(PretrainedContract):
    estimator = TextEncoder
    params = {"model": "minilm", "n_threads": 1}
    bad_params = {"model": "", "query_prefix": 5, "max_length": 0, "n_threads": 0}

    @pytest.fixture
    def data(self):
        return TEXTS

    def outputs(self, est, data):
        return est.encode(data, batch_size=2)

    def check_known_answer(self, est, data):
        assert isinstance(est, Encoder)
        v = est.encode(data[0])
        M = est.encode(data, batch_size=2)
        assert v.shape == (est.dim,) and M.shape == (3, est.dim)
        assert np.allclose(v, M[0], atol=1e-5)               # order kept across batches
        assert np.allclose(np.linalg.norm(M, axis=1), 1, atol=1e-5)
        assert M[0] @ M[2] > M[0] @ M[1]                       # metal ~ metal
        with pytest.raises(TypeError):
            est.encode([1, 2])

    def bad_inputs(self, est, data):
        return [("kind", lambda: est.encode(data, kind="question")),    # type: ignore[arg-type]
                ("batch_size", lambda: est.encode(data, batch_size=0))]

    def test_set_params_reloads_the_model(self, data):
        est = TextEncoder(n_threads=1)
        full = est.encode(data[0])
        short = est.set_params(max_length=2).encode(data[0])
        assert not np.allclose(full, short) and np.allclose(TextEncoder(n_threads=1).encode(data[0]), full)
