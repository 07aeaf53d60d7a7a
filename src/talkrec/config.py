"""The one configuration loader behind ``talkrec build``, ``talkrec evaluate`` and the sessions study.

A configuration is built in layers, each a deep copy (nothing returned shares a nested
dict with the caller's defaults or source)::

    defaults  <-  the YAML file (with its ``extends:`` chain underneath)  <-  dotted overrides

* ``extends: other.yaml`` names a config file (relative to the file that names it) whose
  values lie underneath; chains are followed, a loop is an error.
* Mappings are merged key by key, recursively; any other value replaces. Top-level keys
  named in ``replace`` are replaced whole (the sessions study's ``families``: a config
  that lists families runs only those).
* Overrides are ``{"model.max_epochs": 2}``: a dotted key walks (and creates) nested
  mappings and sets the last one; the value replaces whatever was there.
* A file source is recorded as ``_config_path`` (absolute); keys starting with ``_`` are
  bookkeeping, not settings.

Bad input raises :class:`talkrec.errors.InputError` naming the file and the field.
:func:`resolve_path` turns a relative path of a config into a real one; :func:`check_keys`
refuses a setting a block does not have (a misspelt key is an error, not a setting ignored).
"""
from __future__ import annotations

import copy
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import InputError, did_you_mean

__all__ = ["check_keys", "check_like", "load_config", "merge", "resolve_path"]

#: The repository (source checkout) root: a last place to look for relative paths.
REPO_ROOT = Path(__file__).resolve().parents[2]


def load_config(source: str | os.PathLike[str] | Mapping[str, Any] | None, *,
                defaults: Mapping[str, Any] | None = None, overrides: Mapping[str, Any] | None = None,
                required: Sequence[str] = (), replace: Collection[str] = ()) -> dict[str, Any]:
    """``defaults`` <- ``source`` (a YAML file or a mapping; ``None``: nothing) <- ``overrides``.

    ``required`` top-level keys must be present (and not ``None``) in the result.
    """
    path: Path | None = None
    if source is None:
        raw: dict[str, Any] = {}
    elif isinstance(source, Mapping):
        raw = _with_parents(dict(source), Path.cwd(), None, replace, set())
    else:
        path = Path(source)
        raw = _read_chain(path, replace, set())
    cfg = merge(defaults or {}, raw, replace=replace)
    for key, value in (overrides or {}).items():
        _set_dotted(cfg, key, value, path)
    if path is not None:
        cfg["_config_path"] = str(path.resolve())
    for key in required:
        if cfg.get(key) is None:
            raise InputError(f"missing required key '{key}'", path=None if path is None else str(path), field=key)
    return cfg


def check_keys(block: Mapping[str, Any], known: Collection[str], *, where: str = "", path: str | None = None) -> None:
    """:class:`InputError` for the first key of ``block`` that is not in ``known`` (keys
    starting with ``_`` are bookkeeping), naming it as ``where.key``, the nearest known key
    and all of them: a misspelt setting fails before any work, not after it, ignored."""
    for key in block:
        if str(key).startswith("_") or key in known:
            continue
        names = ", ".join(sorted(map(str, known)))
        raise InputError(f"unknown setting{did_you_mean(str(key), known)} (known: {names})", path=path,
                         field=f"{where}.{key}" if where else str(key))


def check_like(block: Mapping[str, Any], defaults: Mapping[str, Any], *, open_keys: Collection[str] = (),
               where: str = "", path: str | None = None) -> None:
    """:func:`check_keys` of ``block`` against the keys of ``defaults``, and of each nested
    mapping against the defaults' own (non-empty) mapping at that key; the blocks under
    ``open_keys`` (their keys are the user's names, or another loader's) are not looked into."""
    check_keys(block, defaults, where=where, path=path)
    for key, value in block.items():
        sub = defaults.get(key)
        if key in open_keys or not (isinstance(value, Mapping) and isinstance(sub, Mapping) and sub):
            continue
        check_like(value, sub, open_keys=open_keys, where=f"{where}.{key}" if where else str(key), path=path)


def merge(base: Mapping[str, Any], over: Mapping[str, Any], *, replace: Collection[str] = ()) -> dict[str, Any]:
    """A new dict: ``base`` with ``over`` merged in (mappings recursively, other values
    replaced; top-level keys in ``replace`` replaced whole). Shares nothing with either."""
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) and k not in replace:
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def resolve_path(value: str | os.PathLike[str], cfg: Mapping[str, Any] | None = None) -> Path:
    """The file or folder a relative path of config ``cfg`` means.

    ``~`` is expanded; an absolute path, or one that exists relative to the working
    directory, is returned as is. Otherwise it is looked up, in order, relative to the
    project folder (the folder above the config file's: configs live in ``configs/`` and
    their data paths are written from the repository), the config file's own folder, and
    the repository root; the first place where it exists wins. A path that exists nowhere
    (a cache folder still to be created) is taken relative to the project folder, which is
    the repository root for a config given as a mapping.
    """
    p = Path(os.path.expanduser(os.fspath(value)))
    if p.is_absolute() or p.exists():
        return p
    folder = Path(cfg["_config_path"]).parent if cfg is not None and cfg.get("_config_path") else None
    project = folder.parent if folder is not None else REPO_ROOT
    for base in (project, folder, REPO_ROOT):
        if base is not None and (base / p).exists():
            return base / p
    return project / p


# ---------------------------------------------------------------------------------- helpers
def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise InputError("config file not found", path=str(path))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise InputError(f"not valid YAML: {e}", path=str(path)) from None
    if not isinstance(raw, dict):
        raise InputError("a config must be a mapping of keys to values", path=str(path))
    return raw


def _read_chain(path: Path, replace: Collection[str], seen: set[Path]) -> dict[str, Any]:
    """The file's values over those of the files it ``extends``."""
    seen.add(path.resolve())
    return _with_parents(_read_yaml(path), path.parent, path, replace, seen)


def _with_parents(raw: dict[str, Any], folder: Path, path: Path | None, replace: Collection[str],
                  seen: set[Path]) -> dict[str, Any]:
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    where = None if path is None else str(path)
    if not isinstance(parent, (str, os.PathLike)):
        raise InputError(f"extends must name a config file, got {parent!r}", path=where, field="extends")
    ppath = folder / parent
    if ppath.resolve() in seen:
        raise InputError(f"extends loops back to {ppath}", path=where, field="extends")
    return merge(_read_chain(ppath, replace, seen), raw, replace=replace)


def _set_dotted(cfg: dict[str, Any], key: str, value: Any, path: Path | None) -> None:
    parts = str(key).split(".")
    node = cfg
    for i, name in enumerate(parts[:-1]):
        if node.get(name) is None:
            node[name] = {}
        node = node[name]
        if not isinstance(node, dict):
            raise InputError(f"cannot set '{key}': '{'.'.join(parts[:i + 1])}' is not a mapping",
                             path=None if path is None else str(path), field=key)
    node[parts[-1]] = copy.deepcopy(value)
