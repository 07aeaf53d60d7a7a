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
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from ..config import check_keys

__all__ = ["SECTIONS", "TOP_LEVEL", "check_build_config"]

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
