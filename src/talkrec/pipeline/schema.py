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
import re
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
    # space.search, index.analysis.bm25_params
    "search": frozenset({"mode", "hybrid_text_weight", "hybrid_bm25_weight", "hybrid_name_weight", "rrf_depth", "rrf_c",
                         "bm25_k1", "bm25_b", "bm25_fields", "bm25_pairs", "bm25_stemmer",
                         "bm25_stopwords"}),
    # space.strategies.similar_rows
    "similar": frozenset({"strategy", "cf_weight", "rrf_c", "depth", "cold_neighbors", "cold_weight", "cold_match",
                          "cold_content_weight", "lexical_weight", "lexical_max_df",
                          "lexical_max_terms", "novelty"}),
    # space.strategies.recommend_rows
    "recommend": frozenset({"strategy", "weights", "rrf_c", "depth", "cold_neighbors", "cold_match", "cold_boost",
                            "cold_prior", "cold_prior_weight", "negative_weight", "novelty"}),
    "recommend.weights": frozenset({"fused", "ease", "als"}),
    # cli._examples
    "examples": frozenset({"search", "similar", "recommend_items"}),
}


def _search_modes() -> Options:
    from ..space.search import SEARCH_MODES
    return Options(*SEARCH_MODES)


_BOOL = Predicate(lambda v: isinstance(v, bool), "true or false")
_TEXT = Predicate(lambda v: isinstance(v, str) and bool(v.strip()), "a non-empty string")
_WORDS = Predicate(lambda v: isinstance(v, list) and all(isinstance(w, str) for w in v), "a list of strings")
_MAPPING = Predicate(lambda v: v is None or isinstance(v, Mapping), "a mapping of settings")

#: what the values of the settings read as they are may be, by dotted name (``search.mode``:
#: :func:`_search_modes`; ``cf.params``: ALSEncoder's own checks)
VALUES: dict[str, Constraint] = {
    "max_items": Interval(int, 1, none=True),                                   # stages.catalog_stage
    "cf.enabled": _BOOL, "cf.tune": _BOOL,                                      # stages.cf_stage
    "cf.n_trials": Interval(int, 1), "cf.min_weight": Interval(float),
    "search.hybrid_text_weight": Interval(float, 0), "search.hybrid_bm25_weight": Interval(float, 0),
    "search.hybrid_name_weight": Interval(float, 0),
    "search.rrf_depth": Interval(int, 1), "search.rrf_c": Interval(float, 0),   # space.search
    "index.ann": _BOOL, "index.M": Interval(int, 2),                            # index.store.VectorIndex
    "index.ef_construction": Interval(int, 1), "index.ef_search": Interval(int, 1),
    "name": _TEXT, "seed": Interval(int, 0, 2**32 - 1),                         # pipeline.build
    "build_cache": Predicate(lambda v: v is None or isinstance(v, str) and bool(v.strip()), "a folder path"),
    "min_tag_users": Interval(int, 1), "positive_threshold": Interval(float),   # lastfm adapter, space config
    "descriptions.template.header": _TEXT,                                      # descriptions.template
    "recommend.weights.fused": Interval(float, 0), "recommend.weights.ease": Interval(float, 0),
    "recommend.weights.als": Interval(float, 0),                                # space.strategies
    "recommend.negative_weight": Interval(float, 0),                            # space.strategies.negative_weight
    "recommend.novelty": Interval(float, 0, 1, closed="left"),                  # space.popularity.novelty_setting
    "similar.novelty": Interval(float, 0, 1, closed="left"),
    "examples.search": _WORDS, "examples.similar": _WORDS,                      # cli._examples
    "index.index_params": _MAPPING, "index.search_params": _MAPPING,            # index.milvus
}

#: the index types of float vectors a Milvus server builds (``index.index_type``)
MILVUS_INDEX_TYPES = ("FLAT", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "IVF_RABITQ", "HNSW", "HNSW_SQ", "HNSW_PQ",
                      "HNSW_PRQ", "DISKANN", "SCANN", "AUTOINDEX", "BRUTE_FORCE", "GPU_CAGRA", "GPU_IVF_FLAT",
                      "GPU_IVF_PQ", "GPU_BRUTE_FORCE")


#: index and search parameters that Milvus reads as whole numbers
MILVUS_INT_PARAMS = frozenset({"M", "efConstruction", "ef", "nlist", "nprobe", "m", "nbits", "search_list",
                               "search_list_size", "reorder_k", "max_degree"})


def _milvus_lite_types() -> tuple[str, ...]:
    """The index types Milvus Lite builds here (its HNSW and IVF indexes need faiss)."""
    try:
        from milvus_lite.index.factory import is_faiss_available
    except ImportError:                      # another milvus-lite: its own error at the index stage
        return MILVUS_INDEX_TYPES
    return ("FLAT", "BRUTE_FORCE", "AUTOINDEX") + (("HNSW", "HNSW_SQ", "IVF_FLAT", "IVF_SQ8")
                                                   if is_faiss_available() else ())


def _check_index_type(cfg: Mapping[str, Any], path: str | None) -> None:
    """``index.index_type`` of a Milvus index, known to the database it names: Milvus only
    refused a bad one when the collection was loaded, after every stage of the build."""
    index = cfg.get("index")
    if not isinstance(index, Mapping) or str(index.get("backend") or "").lower() != "milvus":
        return
    value = index.get("index_type", "FLAT")
    uri = str(index.get("uri") or "")
    server = uri.startswith(("http://", "https://", "tcp://", "unix:"))
    known = MILVUS_INDEX_TYPES if server else _milvus_lite_types()
    if not isinstance(value, str) or value.upper() not in known:
        what = "a Milvus server" if server else "Milvus Lite (a .db uri) on this machine"
        raise InputError(f"index.index_type must be one of {', '.join(known)} for {what}, got {value!r}",
                         path=path, field="index.index_type")
    for block in ("index_params", "search_params"):       # Milvus' own integer settings
        for key, v in (index.get(block) or {}).items() if isinstance(index.get(block), Mapping) else ():
            if key in MILVUS_INT_PARAMS and not Interval(int, 1).accepts(v):
                raise InputError(f"index.{block}.{key} must be an integer >= 1, got {v!r}", path=path,
                                 field=f"index.{block}.{key}")


#: what a ``content`` block of each source takes (stages.content_stage, encoders.media)
CONTENT_KEYS = {"vectors": frozenset({"source", "standardize"}), "audio_files": frozenset({"source", "params"}),
                "image_files": frozenset({"source", "params"})}


def _check_content(cfg: Mapping[str, Any], path: str | None) -> None:
    """``content``: modality -> ``{source, ...}``, the media encoder's ``params`` its own (a
    bad one failed with a raw ``TypeError`` at the content stage, after the text and CF stages)."""
    content = cfg.get("content")
    if content is None:
        return
    if not isinstance(content, Mapping):
        raise InputError(f"content must map a modality name to its block, e.g. {{audio: {{source: vectors}}}}, "
                         f"got {content!r}", path=path, field="content")
    for m, spec in content.items():
        if m in ("text", "cf") or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,63}", str(m)):
            # content.text replaced the text embeddings without a word; a name is a file name in the space
            raise InputError(f"content.{m}: a content modality needs its own name (a letter, then letters, digits, _ "
                             "or -; not text or cf, the built-in modalities), the same in catalog.vectors / "
                             "catalog.media", path=path, field=f"content.{m}")
        if spec is None:
            continue
        if not isinstance(spec, Mapping):
            example = spec if isinstance(spec, str) else "vectors"
            raise InputError(f"content.{m} must be a mapping such as {{source: {example}}}, got {spec!r}", path=path,
                             field=f"content.{m}")
        source = spec.get("source", "vectors")
        if source not in CONTENT_KEYS:
            raise InputError(f"content.{m}.source must be vectors, audio_files or image_files, got {source!r}",
                             path=path, field=f"content.{m}.source")
        check_keys(spec, CONTENT_KEYS[source], where=f"content.{m}", path=path)
        if "standardize" in spec and not _BOOL.accepts(spec["standardize"]):
            raise InputError(f"content.{m}.standardize must be true or false, got {spec['standardize']!r}",
                             path=path, field=f"content.{m}.standardize")
        if source != "vectors":
            _check_media_params(spec.get("params"), source, f"content.{m}.params", path)


def _check_media_params(params: Any, source: str, where: str, path: str | None) -> None:
    from ..encoders.audio import AudioEncoder
    from ..encoders.image import ImageEncoder

    if params is None:
        return
    if not isinstance(params, Mapping):
        raise InputError(f"{where} must be a mapping of the encoder's settings, got {params!r}", path=path, field=where)
    cls = AudioEncoder if source == "audio_files" else ImageEncoder
    check_keys(params, _params(cls), where=where, path=path)
    for key, value in params.items():
        constraint = getattr(cls, "_constraints", {}).get(key)
        if constraint is not None and not constraint.accepts(value):
            raise InputError(f"{where}.{key} must be {constraint}, got {value!r}", path=path, field=f"{where}.{key}")


def _check_tag_categories(cfg: Mapping[str, Any], path: str | None) -> None:
    """``tag_categories``: category -> list of words (a string was read letter by letter)."""
    cats = cfg.get("tag_categories")
    if cats is None:
        return
    if not isinstance(cats, Mapping):
        raise InputError(f"tag_categories must map a category to a list of words, got {cats!r}", path=path,
                         field="tag_categories")
    for cat, words in cats.items():
        if not _WORDS.accepts(words):
            raise InputError(f"tag_categories.{cat} must be a list of words (e.g. [{words!r}]), got {words!r}",
                             path=path, field=f"tag_categories.{cat}")


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
    _check_index_type(cfg, path)
    _check_tag_categories(cfg, path)
    _check_content(cfg, path)
    _check_header(cfg, path)


def _check_header(cfg: Mapping[str, Any], path: str | None) -> None:
    """``descriptions.template.header``: a format string over item fields (``"{name}, a
    band"``); an unbalanced brace failed with a raw ValueError at the descriptions stage."""
    import string

    header = _block(cfg, "descriptions.template.header")
    if not isinstance(header, str):
        return
    try:
        list(string.Formatter().parse(header))
    except ValueError as e:
        raise InputError(f"descriptions.template.header {header!r} is not a format string over item fields ({e}; "
                         "write {name} for a field, {{ and }} for a brace)", path=path,
                         field="descriptions.template.header") from None


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
    if cfg.get("catalog") is not None:
        dataset = cfg.get("dataset", "generic")
        if dataset != "generic":         # the block was ignored: the build read the adapter's data instead
            raise InputError(f"a catalog: block is read with dataset: generic only; this config says dataset: "
                             f"{dataset} (its adapter reads data_root), so the block would be ignored",
                             path=path, field="catalog")
        from ..data.io import check_catalog_spec
        check_catalog_spec(cfg["catalog"], path=path)
    _check_values(cfg, path)
