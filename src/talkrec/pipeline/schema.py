"""The settings a build config may hold, checked before any stage runs.

A misspelt key (``serch:``, ``fusion.learning_rat``) used to be ignored: the build ran for
minutes with the default in its place, or failed with a raw ``TypeError`` at the stage that
finally passed it on. :func:`check_build_config` names it, with the nearest known key, the
file and the block, before anything is read or written.

The blocks handed whole to an estimator (``text``, ``descriptions.template``, ``cf.params``,
``ease``, ``fusion``) accept exactly that estimator's keyword parameters, read from its
signature; the others list their keys here, where the code that reads them is named.
Open blocks whose keys are the user's own names (``content`` and ``modality_weights``:
modality names, ``tag_categories``: categories, ``descriptions.gen``: an LLM backend's
settings) are checked where they are used, ``spark`` by :mod:`talkrec.pipeline.spark`; ``catalog``
by :func:`talkrec.data.io.check_catalog_spec`, which :func:`~talkrec.data.io.load_catalog` calls too.

The values of the settings that stages and queries read as they are (``search.mode``,
``cf.n_trials``, ``index.ann``, ``max_items``... :data:`VALUES`, and ``cf.params`` by
ALSEncoder's own parameter checks) are checked here too: a bad one failed after the build (every default
search), deep in a stage, or not at all. :func:`output_folder` refuses an output that a build
would destroy (a folder holding other files than a space's).
"""
from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import check_keys
from ..errors import InputError
from ..estimator import Constraint, Interval, Options, Predicate

__all__ = ["SECTIONS", "TOP_LEVEL", "VALUES", "check_build_config", "output_folder"]

#: the top-level keys of a build config (``DEFAULTS`` in :mod:`talkrec.pipeline` and the rest)
TOP_LEVEL = frozenset({
    "name", "output", "dataset", "data_root", "engine", "build_cache", "seed", "max_items",
    "catalog", "tag_categories", "min_tag_users", "positive_threshold",
    "descriptions", "text", "cf", "content", "ease", "fusion", "modality_weights",
    "similar", "recommend", "search", "index", "examples", "spark", "profile",
})

#: blocks with a fixed set of keys, by dotted name
SECTIONS: dict[str, frozenset[str]] = {
    # stages.descriptions_stage
    "descriptions": frozenset({"template", "second", "gen"}),
    # stages.cf_stage (``params``: ALSEncoder's, below)
    "cf": frozenset({"enabled", "tune", "n_trials", "params", "min_weight"}),
    # space.search, index.lexical.bm25_params
    "search": frozenset({"mode", "hybrid_text_weight", "hybrid_bm25_weight", "rrf_depth", "rrf_c",
                         "bm25_k1", "bm25_b", "bm25_fields", "bm25_pairs"}),
    # space.strategies.similar_rows
    "similar": frozenset({"strategy", "cf_weight", "rrf_c", "depth", "cold_neighbors", "cold_weight", "cold_match",
                          "cold_content_weight", "lexical_weight", "lexical_max_df",
                          "lexical_max_terms"}),
    # space.strategies.recommend_rows
    "recommend": frozenset({"strategy", "weights", "rrf_c", "depth", "cold_neighbors", "cold_match", "cold_boost",
                            "cold_prior", "cold_prior_weight"}),
    "recommend.weights": frozenset({"fused", "ease", "als"}),
    # cli._examples
    "examples": frozenset({"search", "similar", "recommend_items"}),
}


def _search_modes() -> Options:
    from ..space.search import SEARCH_MODES
    return Options(*SEARCH_MODES)


_BOOL = Predicate(lambda v: isinstance(v, bool), "true or false")

#: what the values of the settings read as they are may be, by dotted name (``search.mode``:
#: :func:`_search_modes`; ``cf.params``: ALSEncoder's own checks)
VALUES: dict[str, Constraint] = {
    "max_items": Interval(int, 1, none=True),                                   # stages.catalog_stage
    "cf.enabled": _BOOL, "cf.tune": _BOOL,                                      # stages.cf_stage
    "cf.n_trials": Interval(int, 1), "cf.min_weight": Interval(float),
    "search.hybrid_text_weight": Interval(float, 0), "search.hybrid_bm25_weight": Interval(float, 0),
    "search.rrf_depth": Interval(int, 1), "search.rrf_c": Interval(float, 0),   # space.search
    "index.ann": _BOOL, "index.M": Interval(int, 2),                            # index.store.VectorIndex
    "index.ef_construction": Interval(int, 1), "index.ef_search": Interval(int, 1),
}


def _check_values(cfg: Mapping[str, Any], path: str | None) -> None:
    """:data:`VALUES`, ``search.mode`` and ALSEncoder's checks of ``cf.params`` on the values given."""
    from ..encoders.cf import ALSEncoder

    checks = {**VALUES, "search.mode": _search_modes(),
              **{f"cf.params.{k}": c for k, c in ALSEncoder._constraints.items()}}
    for dotted, constraint in checks.items():
        parent, _, key = dotted.rpartition(".")
        block = _block(cfg, parent) if parent else cfg
        if not isinstance(block, Mapping) or key not in block:
            continue
        value = block[key]
        if not constraint.accepts(value):
            raise InputError(f"{dotted} must be {constraint}, got {value!r}", path=path, field=dotted)


def output_folder(cfg: Mapping[str, Any]) -> Path:
    """The absolute path of the build's ``output``, refused when a build cannot or must not
    replace what is there: a file, or a folder that holds files and is not a space (a build
    swaps its output folder whole: whatever else it held would be deleted). A talkrec space
    is a folder with a ``space.json`` (what ``Space.load`` and ``talkrec doctor`` read)."""
    given = cfg.get("output")
    if not isinstance(given, (str, os.PathLike)) or not str(given).strip():
        raise InputError(f"output must be a folder path, got {given!r}", path=cfg.get("_config_path"), field="output")
    out = Path(os.path.abspath(os.path.expanduser(os.fspath(given))))
    if not out.name:
        raise InputError(f"{out} cannot be a build's output (a build replaces its output folder whole); "
                         "give a new folder or an existing space", field="output")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file, not a folder; give a new folder or an existing space", field="output")
    if out.is_dir() and not (out / "space.json").is_file():
        held = sorted(p.name for p in out.iterdir() if p.name != "LOCK")      # LOCK: a failed build's
        if held:
            shown = ", ".join(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "")
            raise InputError(f"{out} exists, is not empty ({shown}) and is not a talkrec space (no space.json): "
                             "a build replaces its output folder whole and would delete what it holds; give a new "
                             "or empty folder, or an existing space to rebuild", field="output")
    return out


def _params(cls: type) -> frozenset[str]:
    """The hyperparameters of ``cls``: an :class:`~talkrec.estimator.Estimator`'s own list, else
    its constructor's keyword parameters."""
    names = getattr(cls, "_get_param_names", None)
    if names is not None:
        return frozenset(names())
    sig = inspect.signature(cls.__init__)            # type: ignore[misc]
    return frozenset(n for n, p in sig.parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
                     and n != "self")


def _estimator_sections() -> dict[str, frozenset[str]]:
    from ..descriptions.template import TemplateDescriber
    from ..encoders.cf import ALSEncoder
    from ..encoders.ease import EASE
    from ..encoders.text import TextEncoder
    from ..fusion.model import ContrastiveFusion

    return {"text": _params(TextEncoder), "descriptions.template": _params(TemplateDescriber),
            "cf.params": _params(ALSEncoder), "ease": _params(EASE) | {"enabled"},
            "fusion": _params(ContrastiveFusion)}


def _index_keys(index: Mapping[str, Any]) -> frozenset[str]:
    from ..index.backend import EMBEDDED_KEYS, backend_name

    keys = {"backend", *EMBEDDED_KEYS}
    if backend_name(index) == "milvus":
        from ..index.milvus import CONFIG_KEYS
        keys.update(CONFIG_KEYS)
    return frozenset(keys)


def _block(cfg: Mapping[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def check_build_config(cfg: Mapping[str, Any]) -> None:
    """:class:`~talkrec.errors.InputError` naming the first setting of ``cfg`` that no stage
    reads (the file, ``block.key``, and the nearest known key)."""
    path = cfg.get("_config_path")
    check_keys(cfg, TOP_LEVEL, path=path)
    sections = {**SECTIONS, **_estimator_sections()}
    for dotted, known in sections.items():
        block = _block(cfg, dotted)
        if isinstance(block, Mapping):
            check_keys(block, known, where=dotted, path=path)
    index = cfg.get("index")
    if isinstance(index, Mapping):
        check_keys(index, _index_keys(index), where="index", path=path)
    if isinstance(cfg.get("catalog"), Mapping):
        from ..data.io import check_catalog_spec
        check_catalog_spec(cfg["catalog"], path=path)
    _check_values(cfg, path)
