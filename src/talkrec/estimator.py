"""One estimator contract for every talkrec model and encoder, in the manner of scikit-learn.

* Hyperparameters are the parameters of ``__init__``; each is stored unchanged on the
  attribute of the same name. :meth:`Estimator.get_params` and :meth:`Estimator.set_params`
  read the names from the signature (a ``**kwargs`` in a subclass's ``__init__`` stands for
  its parent's parameters), :func:`clone` gives an unfitted copy with the same parameters.
* Parameters are checked when the estimator is first used (``fit``, or the first
  ``encode`` of a pretrained encoder), against the class's ``_constraints``
  (``{name: Interval | Options | Instance | Predicate}``). Every bad parameter, and every
  unknown name given to ``set_params``, raises :class:`~talkrec.errors.InputError` with
  ``field`` set to the parameter's name.
* Learned state ends in ``_``; using a model that needs it before ``fit`` / ``load`` raises
  :class:`~talkrec.errors.NotFittedError`.
* A saved model that cannot be loaded raises :class:`UnreadableModelFile` naming the file
  (:class:`MissingModelFile`, a ``FileNotFoundError`` too, when it is not there):
  :func:`read_model_file`, :func:`saved_params`.
"""
from __future__ import annotations

import copy
import inspect
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from .errors import InputError, NotFittedError, TalkrecError

__all__ = ["Estimator", "Instance", "Interval", "MissingModelFile", "Options", "Predicate", "UnreadableModelFile",
           "check_param", "clone", "read_model_file", "read_npz", "saved_params"]

E = TypeVar("E", bound="Estimator")
T = TypeVar("T")


@dataclass(frozen=True)
class Interval:
    """An integer (``kind=int``) or real number (``kind=float``) between ``low`` and
    ``high``; ``closed`` says which ends belong to it. Booleans and NaN never count."""

    kind: type
    low: float | None = None
    high: float | None = None
    closed: Literal["both", "left", "right", "neither"] = "both"
    none: bool = False  # None is accepted too

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.none
        number = numbers.Integral if self.kind is int else numbers.Real
        if isinstance(value, bool) or not isinstance(value, number) or math.isnan(value):
            return False
        low_ok = self.low is None or (value >= self.low if self.closed in ("both", "left") else value > self.low)
        high_ok = self.high is None or (value <= self.high if self.closed in ("both", "right") else value < self.high)
        return low_ok and high_ok

    def __str__(self) -> str:
        what = "an integer" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            left = "[" if self.closed in ("both", "left") else "("
            right = "]" if self.closed in ("both", "right") else ")"
            what += f" in {left}{self.low}, {self.high}{right}"
        elif self.low is not None:
            what += f" {'>=' if self.closed in ('both', 'left') else '>'} {self.low}"
        elif self.high is not None:
            what += f" {'<=' if self.closed in ('both', 'right') else '<'} {self.high}"
        return what + (" or None" if self.none else "")


class Options:
    """One of a fixed set of values."""

    def __init__(self, *values: Any) -> None:
        self.values = values

    def accepts(self, value: Any) -> bool:
        return any(value is v or (type(value) is type(v) and value == v) for v in self.values)

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True)
class Instance:
    """An instance of ``types`` (``none=True``: or None)."""

    types: type | tuple[type, ...]
    none: bool = False

    def accepts(self, value: Any) -> bool:
        return (value is None and self.none) or isinstance(value, self.types)

    def __str__(self) -> str:
        ts = self.types if isinstance(self.types, tuple) else (self.types,)
        return " or ".join([f"a {t.__name__}" for t in ts] + (["None"] if self.none else []))


@dataclass(frozen=True)
class Predicate:
    """Any value for which ``test`` is true; ``description`` says what that means."""

    test: Callable[[Any], bool]
    description: str

    def accepts(self, value: Any) -> bool:
        try:
            return bool(self.test(value))
        except (TypeError, ValueError):
            return False

    def __str__(self) -> str:
        return self.description


Constraint = Interval | Options | Instance | Predicate


def check_param(name: str, value: Any, constraint: Constraint) -> None:
    """Raise :class:`InputError` (``field=name``) unless ``constraint`` accepts ``value``."""
    if not constraint.accepts(value):
        raise InputError(f"{name} must be {constraint}, got {value!r}", field=name)


def _signature(cls: type) -> dict[str, inspect.Parameter]:
    """The hyperparameters of ``cls``: its ``__init__`` parameters, and its parents' where
    an ``__init__`` passes ``**kwargs`` on (the most derived class first)."""
    out: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if klass in (Estimator, object) or "__init__" not in vars(klass):
            continue
        params = list(inspect.signature(vars(klass)["__init__"]).parameters.values())[1:]
        if any(p.kind is p.VAR_POSITIONAL for p in params):
            raise TypeError(f"{klass.__name__}.__init__ must name its parameters (no *args)")
        for p in params:
            if p.kind is not p.VAR_KEYWORD:
                out.setdefault(p.name, p)
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return out


def _same(a: Any, b: Any) -> bool:
    try:
        return a is b or (type(a) is type(b) and bool(a == b))
    except (TypeError, ValueError):
        return False


class Estimator:
    """Base class of talkrec's models and encoders (see the module docstring)."""

    #: ``{parameter: constraint}`` checked by :meth:`_check_params`.
    _constraints: Mapping[str, Constraint] = {}

    @classmethod
    def _get_param_names(cls) -> list[str]:
        return list(_signature(cls))

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameter names -> values; ``deep`` adds ``name__sub`` for nested estimators."""
        out: dict[str, Any] = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            out[name] = value
            if deep and isinstance(value, Estimator):
                out.update({f"{name}__{k}": v for k, v in value.get_params().items()})
        return out

    def set_params(self: E, **params: Any) -> E:
        """Set parameters (``name__sub`` reaches into a nested estimator); returns self."""
        names = self._get_param_names()
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in names:
                raise InputError(f"unknown parameter {name!r} for {type(self).__name__} "
                                 f"(its parameters: {', '.join(names)})", field=name)
            if sub:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            inner = getattr(self, name)
            if not isinstance(inner, Estimator):
                raise InputError(f"parameter {name!r} holds no estimator to set {sorted(sub_params)} on", field=name)
            inner.set_params(**sub_params)
        self._params_changed()
        return self

    def _params_changed(self) -> None:
        """Called by :meth:`set_params`; drop state derived from the parameters (a loaded
        pretrained model, a cache handle). Learned state is the caller's business."""

    def _check_params(self) -> None:
        """Check every parameter against ``_constraints`` (InputError naming the first bad one)."""
        for name, constraint in self._constraints.items():
            check_param(name, getattr(self, name), constraint)

    def _is_fitted(self) -> bool:
        return any(k.endswith("_") and not k.startswith("__") for k in vars(self))

    def _check_fitted(self) -> None:
        if not self._is_fitted():
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit() or load() first")

    def __repr__(self) -> str:
        sig = _signature(type(self))
        changed = [f"{k}={v!r}" for k, v in self.get_params(deep=False).items()
                   if sig[k].default is inspect.Parameter.empty or not _same(v, sig[k].default)]
        return f"{type(self).__name__}({', '.join(changed)})"


def clone(estimator: E) -> E:
    """A new, unfitted estimator of the same class with (copies of) the same parameters."""
    params = {k: clone(v) if isinstance(v, Estimator) else copy.deepcopy(v)
              for k, v in estimator.get_params(deep=False).items()}
    return type(estimator)(**params)


class UnreadableModelFile(InputError):
    """A file of a saved model or encoder is missing or cannot be read (truncated, corrupt,
    not what ``save`` writes); ``path`` names the file."""


class MissingModelFile(UnreadableModelFile, FileNotFoundError):
    """A file of a saved model or encoder is not there (a ``FileNotFoundError`` too)."""


def read_model_file(path: str | Path, reader: Callable[[Path], T], what: str) -> T:
    """``reader(path)``; a missing file raises :class:`MissingModelFile`, any failure to read
    it (JSON, npz, safetensors, tokenizer or ONNX errors, a missing key)
    :class:`UnreadableModelFile`, each naming ``path`` and ``what`` it was to hold."""
    path = Path(path)
    try:
        return reader(path)
    except TalkrecError:
        raise
    except Exception as e:  # noqa: BLE001 - every reader's own error type (json, numpy, safetensors, ...)
        if isinstance(e, FileNotFoundError) or not path.exists():      # tokenizers' is a plain Exception
            where = "" if path.parent.is_dir() else f" (no folder {path.parent})"
            raise MissingModelFile(f"missing{where}: not a saved {what}", path=str(path)) from None
        raise UnreadableModelFile(f"cannot be read ({type(e).__name__}: {e}); expected a file of a saved {what}",
                                  path=str(path)) from None


def saved_params(cls: type[Estimator], cfg: Any, path: str | Path, *, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """The hyperparameters of ``cls`` in a saved ``config.json`` (``cfg``, read from ``path``):
    :class:`UnreadableModelFile` unless it is a JSON object whose keys are parameters of
    ``cls`` (or in ``extra``)."""
    if not isinstance(cfg, dict):
        raise UnreadableModelFile(f"not a saved {cls.__name__}'s config (a JSON {type(cfg).__name__}, expected "
                                  "an object)", path=str(path))
    unknown = sorted(set(cfg) - set(cls._get_param_names()) - set(extra))
    if unknown:
        raise UnreadableModelFile(f"unknown parameter(s) {', '.join(map(repr, unknown))} for {cls.__name__}",
                                  path=str(path))
    return dict(cfg)


def read_npz(path: str | Path, keys: tuple[str, ...], what: str) -> dict[str, Any]:
    """The arrays ``keys`` of a saved ``.npz`` (no pickles), through :func:`read_model_file`: a
    file that is not an npz archive (numpy would call it pickled data) or lacks a key is
    :class:`UnreadableModelFile`."""
    import zipfile

    import numpy as np

    def read(f: Path) -> dict[str, Any]:
        if f.is_file() and not zipfile.is_zipfile(f):
            raise UnreadableModelFile("not an .npz archive (truncated or overwritten?)", path=str(f))
        with np.load(f, allow_pickle=False) as z:
            lacking = [k for k in keys if k not in z.files]
            if lacking:
                raise UnreadableModelFile(f"lacks the arrays {lacking} of a saved {what}", path=str(f))
            return {k: z[k] for k in keys}

    return read_model_file(path, read, what)
