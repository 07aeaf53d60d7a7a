"""The contract every talkrec model and encoder passes, as implicit's RecommenderBaseTestMixin.

A test class subclasses the mixins that apply and defines the hooks; the tests come with
the mixins::

    class TestALSEncoder(FitContract, RandomStateContract, SaveLoadContract):
        estimator = ALSEncoder
        params = {"factors": 8}
        bad_params = {"factors": 0}

        @pytest.fixture
        def data(self, tiny_catalog): ...
        def fit(self, est, data): ...
        ...

EstimatorContract    every model and encoder: a known answer on a tiny dataset, the
                     parameters of the signature stored unchanged, a set_params / clone
                     round trip, InputError naming the field for bad parameters (on first
                     use) and bad input, the same outputs from the same parameters.
PretrainedContract   pretrained encoders: nothing to fit (the ``fit`` hook is given).
FitContract          estimators that learn: fit returns self, NotFittedError before fit,
                     a clone has no learned state.
RandomStateContract  the same random_state gives the same outputs, another one others.
SaveLoadContract     save + load gives the same outputs and parameters, and no pickles.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from talkrec.errors import InputError, NotFittedError
from talkrec.estimator import Estimator, clone


def cluster_of(item_id: str) -> str:
    """The cluster of a tiny-catalog item: its id without the trailing number."""
    return item_id.rstrip("0123456789")


def same_cluster_share(ids: Any, X: np.ndarray) -> float:
    """Share of items whose nearest other item (cosine; NaN rows as zeros) is of their cluster."""
    F = np.nan_to_num(X)
    F = F / np.maximum(np.linalg.norm(F, axis=1, keepdims=True), 1e-9)
    S = F @ F.T
    np.fill_diagonal(S, -1)
    return float(np.mean([cluster_of(ids[i]) == cluster_of(ids[j]) for i, j in enumerate(S.argmax(axis=1))]))


class EstimatorContract:
    """See the module docstring. Subclasses set the attributes and implement the hooks."""

    #: the class under test
    estimator: type[Estimator]
    #: hyperparameters that keep the tests small and fast
    params: dict[str, Any] = {}
    #: ``{parameter: bad value}``; each must raise InputError(field=parameter) on first use
    bad_params: dict[str, Any] = {}
    #: tolerance when outputs are compared
    atol: float = 1e-6

    # -- hooks ------------------------------------------------------------------------------
    @pytest.fixture
    def data(self) -> Any:
        """The tiny dataset the hooks get (a fixture: override it in the test class)."""
        raise NotImplementedError

    def fit(self, est: Any, data: Any) -> Any:
        """Fit ``est`` on ``data`` and return what ``fit`` returns (pretrained: ``est``)."""
        raise NotImplementedError

    def outputs(self, est: Any, data: Any) -> np.ndarray:
        """What ``est`` computes for ``data`` (encode / transform / score)."""
        raise NotImplementedError

    def check_known_answer(self, est: Any, data: Any) -> None:
        """Assert the answer a working ``est`` must give on ``data``."""
        raise NotImplementedError

    def bad_inputs(self, est: Any, data: Any) -> list[tuple[str, Callable[[], Any]]]:
        """``(name, call)`` pairs: each call passes bad input to the fitted ``est`` and must
        raise an InputError whose field (or, for a file, path) is ``name``."""
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------------------
    def make(self, **params: Any) -> Any:
        return self.estimator(**{**self.params, **params})

    def fitted(self, data: Any, **params: Any) -> Any:
        est = self.make(**params)
        self.fit(est, data)
        return est

    def assert_same(self, a: np.ndarray, b: np.ndarray) -> None:
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=self.atol)

    # -- the contract -----------------------------------------------------------------------
    def test_known_answer(self, data: Any) -> None:
        self.check_known_answer(self.fitted(data), data)

    def test_params_come_from_the_signature_and_are_stored_unchanged(self) -> None:
        names = list(self.make().get_params(deep=False))
        assert names and set(self.params) <= set(names)
        marks = {k: object() for k in names}          # not even a type check in __init__
        est = self.estimator(**marks)
        assert all(getattr(est, k) is v for k, v in marks.items())
        assert est.get_params(deep=False) == marks
        assert set(self.estimator._constraints) == set(names), "every parameter has a constraint"

    def test_set_params_clone_and_repr(self, data: Any) -> None:
        est = self.fitted(data)
        p = est.get_params()
        assert est.set_params(**p) is est and est.get_params() == p
        twin = clone(est)
        assert type(twin) is type(est) and twin is not est and twin.get_params() == p
        assert not twin._is_fitted()
        text, defaults = repr(est), self.estimator().get_params()
        assert text.startswith(f"{self.estimator.__name__}(")   # the parameters that differ from the defaults
        assert all((f"{k}={v!r}" in text) == (v != defaults[k]) for k, v in self.params.items()), text
        with pytest.raises(InputError) as e:
            est.set_params(no_such_parameter=1)
        assert e.value.field == "no_such_parameter"

    def test_bad_params_raise_an_input_error_naming_them(self, data: Any) -> None:
        assert self.bad_params and set(self.bad_params) <= set(self.make().get_params())
        for name, value in self.bad_params.items():
            est = self.make(**{name: value})
            assert getattr(est, name) is value       # stored, checked on first use
            with pytest.raises(InputError) as e:
                self.fit(est, data)
                self.outputs(est, data)
            assert e.value.field == name, (name, str(e.value))
            assert name in str(e.value)

    def test_bad_input_raises_an_input_error_naming_the_field(self, data: Any) -> None:
        cases = self.bad_inputs(self.fitted(data), data)
        assert cases
        for name, call in cases:
            with pytest.raises(InputError) as e:
                call()
            assert name in (e.value.field, e.value.path), (name, str(e.value))

    def test_same_parameters_give_the_same_outputs(self, data: Any) -> None:
        self.assert_same(self.outputs(self.fitted(data), data), self.outputs(self.fitted(data), data))


class PretrainedContract(EstimatorContract):
    """Pretrained encoders: nothing to fit; their parameters are checked on first use."""

    def fit(self, est: Any, data: Any) -> Any:
        return est


class FitContract(EstimatorContract):
    """Estimators that learn in ``fit``."""

    def test_fit_returns_self_and_is_needed_first(self, data: Any) -> None:
        est = self.make()
        with pytest.raises(NotFittedError, match="not fitted"):
            self.outputs(est, data)
        assert self.fit(est, data) is est and est._is_fitted()
        with pytest.raises(NotFittedError):
            self.outputs(clone(est), data)


class RandomStateContract(EstimatorContract):
    """Estimators with a ``random_state``."""

    def test_random_state_decides_the_outputs(self, data: Any) -> None:
        a = self.outputs(self.fitted(data, random_state=1), data)
        self.assert_same(a, self.outputs(self.fitted(data, random_state=1), data))
        other = self.outputs(self.fitted(data, random_state=2), data)
        assert not np.allclose(np.nan_to_num(a), np.nan_to_num(other), atol=1e-4)


class SaveLoadContract(EstimatorContract):
    """Estimators with ``save(path)`` and ``Class.load(path)``."""

    def test_save_load_round_trip(self, data: Any, tmp_path: Path) -> None:
        est = self.fitted(data)
        est.save(tmp_path / "model")
        back = self.estimator.load(tmp_path / "model")
        assert type(back) is type(est) and back.get_params() == est.get_params()
        self.assert_same(self.outputs(back, data), self.outputs(est, data))
        assert not [p for p in tmp_path.rglob("*") if p.suffix in (".pkl", ".pickle", ".joblib")]
