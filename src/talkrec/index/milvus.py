"""The Milvus backend: a space's kNN in a Milvus collection, Milvus Lite or a cluster.

One client for both (STACK.md): ``uri`` is a local ``.db`` path (Milvus Lite: a folder
that one process opens at a time) or ``http(s)://host:19530`` (a Milvus server or cluster,
shared by every process that serves the space). The ``index`` block::

    index:
      backend: milvus
      uri: spaces/music-milvus.db          # or http://milvus.internal:19530
      collection: talkrec_music             # default: talkrec_<space name>
      index_type: FLAT                      # exact (default); HNSW, IVF_FLAT, AUTOINDEX... for 10M items
      index_params: {}                      # e.g. {M: 32, efConstruction: 200}
      search_params: {}                     # e.g. {ef: 128}
      metric: COSINE                        # or IP (the vectors are unit length)
      timeout: 10                           # seconds per call
      token_env: MILVUS_TOKEN               # credentials come from the environment only:
      user_env: MILVUS_USER                 #   a token, or a user and a password
      password_env: MILVUS_PASSWORD

Settings that cannot work raise :class:`~talkrec.errors.InputError` naming the setting
(``index.uri``, ``index.collection``...), before anything is written.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .filters import Where
from .milvus_filters import ids_expr, milvus_expr
from .milvus_schema import PK, StagedCollection, fields_of, milvus_rows

log = logging.getLogger(__name__)

__all__ = ["MilvusBackend", "MilvusSettings", "check_answers", "connect", "default_collection", "release",
           "staged_collection"]

_COLLECTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")
_SERVER = ("http://", "https://", "tcp://", "unix:")
_SECRETS = ("token", "password", "user")
#: the settings an ``index`` block of a Milvus space may hold (beside ``backend``; a secret
#: itself is refused by :meth:`MilvusSettings.from_config`, which says where it goes)
CONFIG_KEYS = ("uri", "collection", "metric", "timeout", "index_type", "index_params", "search_params",
               *_SECRETS, *(f"{k}_env" for k in _SECRETS))
#: the most results one search may ask a Milvus server for (its default topK limit)
MAX_FETCH = 16384
WRITE_BATCH = 2000


@dataclass(frozen=True)
class MilvusSettings:
    """The checked ``index`` block of a Milvus-backed space (see the module docstring)."""

    uri: str
    collection: str
    index_type: str = "FLAT"
    metric: str = "COSINE"
    index_params: Mapping[str, Any] = field(default_factory=dict)
    search_params: Mapping[str, Any] = field(default_factory=dict)
    timeout: float = 10.0
    env: Mapping[str, str] = field(default_factory=dict)    # credential -> environment variable

    @classmethod
    def from_config(cls, index: Mapping[str, Any], *, default_collection: str | None = None,
                    base: Path | None = None) -> "MilvusSettings":
        """Check an ``index`` block; a relative Lite path is taken relative to ``base``."""
        for key in _SECRETS:
            if key in index:
                raise InputError(f"put the Milvus {key} in an environment variable and name it with "
                                 f"index.{key}_env; a space's settings are stored in plain text", field=f"index.{key}")
        uri = index.get("uri")
        if not isinstance(uri, str) or not uri.strip():
            raise InputError("a milvus index needs a uri: a local path ending in .db (Milvus Lite) or "
                             "http://host:19530", field="index.uri")
        uri = uri.strip()
        if not uri.startswith(_SERVER):
            uri = _lite_path(uri, base)
        name = index.get("collection") or default_collection
        if not isinstance(name, str) or not _COLLECTION.match(name):
            raise InputError(f"collection must be a name of letters, digits and _ (not starting with a digit, at "
                             f"most 200 characters), got {name!r}", field="index.collection")
        metric = str(index.get("metric", "COSINE")).upper()
        if metric not in ("COSINE", "IP"):
            raise InputError(f"metric must be COSINE or IP, got {metric!r}", field="index.metric")
        try:
            timeout = float(index.get("timeout", 10.0))
        except (TypeError, ValueError):
            timeout = -1.0
        if not 0 < timeout < float("inf"):
            raise InputError(f"timeout must be a positive number of seconds, got {index.get('timeout')!r}",
                             field="index.timeout")
        env = {k: str(index.get(f"{k}_env", f"MILVUS_{k.upper()}")) for k in _SECRETS}
        return cls(uri, name, str(index.get("index_type", "FLAT")).upper(), metric,
                   dict(index.get("index_params") or {}), dict(index.get("search_params") or {}), timeout, env)

    @property
    def is_lite(self) -> bool:
        return not self.uri.startswith(_SERVER)

    def to_config(self) -> dict[str, Any]:
        """The block as a built space stores it (the uri resolved, no secrets)."""
        return {"backend": "milvus", "uri": self.uri, "collection": self.collection, "index_type": self.index_type,
                "metric": self.metric, "index_params": dict(self.index_params),
                "search_params": dict(self.search_params), "timeout": self.timeout,
                **{f"{k}_env": v for k, v in self.env.items()}}

    def credentials(self) -> dict[str, str]:
        got = {k: os.environ.get(v, "") for k, v in self.env.items()}
        return {k: v for k, v in got.items() if v}


def _lite_path(uri: str, base: Path | None) -> str:
    p = Path(os.path.expanduser(uri))
    if not p.is_absolute():
        p = (base or Path.cwd()) / p
    if p.suffix != ".db":
        raise InputError(f"{uri!r} is neither a Milvus Lite file (a path ending in .db) nor a server address "
                         "(http://host:19530)", field="index.uri")
    if not p.parent.is_dir():
        raise InputError(f"the folder of the Milvus Lite file {p} does not exist", field="index.uri")
    if p.exists() and not p.is_dir():
        raise InputError(f"{p} exists and is not a Milvus Lite database (a folder)", field="index.uri")
    if not os.access(p.parent, os.W_OK):
        raise InputError(f"cannot write to {p.parent} (for the Milvus Lite file {p.name})", field="index.uri")
    return str(p.resolve())


# ------------------------------------------------------------------------ connections
_lite_users: dict[str, int] = {}
_lite_lock = threading.Lock()


def connect(s: MilvusSettings) -> Any:
    """A client connected to ``s.uri`` (answering: it listed its collections), or
    :class:`InputError` naming ``index.uri``. Every client is given back with :func:`release`."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    try:
        client = MilvusClient(uri=s.uri, timeout=s.timeout, dedicated=True, **s.credentials())
    except MilvusException as e:
        hint = (" (Milvus Lite opens a .db folder in one process at a time: is another process using it? "
                "Use a Milvus server, http://host:19530, to serve a space from several processes)") if s.is_lite else ""
        raise InputError(f"cannot open Milvus at {s.uri}: {e.message}{hint}", field="index.uri") from None
    if s.is_lite:
        with _lite_lock:
            _lite_users[s.uri] = _lite_users.get(s.uri, 0) + 1
    try:
        client.list_collections(timeout=s.timeout)
    except MilvusException as e:
        release(s, client)
        raise InputError(f"Milvus at {s.uri} does not answer: {e.message}", field="index.uri") from None
    return client


def release(s: MilvusSettings, client: Any) -> None:
    """Close a client of :func:`connect`; the last one of a Milvus Lite file stops its
    in-process server (so that another process may open the file)."""
    client.close()
    if not s.is_lite:
        return
    with _lite_lock:
        n = _lite_users.get(s.uri, 0) - 1
        if n > 0:
            _lite_users[s.uri] = n
            return
        _lite_users.pop(s.uri, None)
    from milvus_lite.server_manager import server_manager_instance
    server_manager_instance.release_server(s.uri)


def check_answers(s: MilvusSettings) -> None:
    """:class:`InputError` naming ``index.uri`` unless the database answers (a Lite file
    not made yet is not made here: the build makes it when it fills the collection)."""
    if not s.is_lite or Path(s.uri).exists():
        release(s, connect(s))


def default_collection(space: str) -> str:
    """The collection a space named ``space`` gets when its config names none."""
    return "talkrec_" + (re.sub(r"[^A-Za-z0-9_]", "_", space)[:180] or "space")


@contextmanager
def staged_collection(s: MilvusSettings | None, ids: Sequence[str], vectors: np.ndarray, meta: Any,
                      info: dict[str, Any]) -> Iterator[Callable[[], None]]:
    """Fill the collection of ``s`` (if any) with the items under a staging name
    (:class:`~talkrec.index.milvus_schema.StagedCollection`); the body calls the function
    it gets as its last step to put the collection in place. A failure in the body puts
    the old collection back; success drops it."""
    if s is None:
        yield lambda: None
        return
    client = connect(s)
    try:
        staged = StagedCollection(client, s)
        t0 = time.perf_counter()
        info["milvus_fields"] = staged.fill(ids, vectors, meta)
        info["milvus_fill_s"] = round(time.perf_counter() - t0, 2)
        try:
            yield staged.swap_in
        except BaseException:
            staged.abort()
            raise
        staged.finish()
    finally:
        release(s, client)


# ------------------------------------------------------------------------ the backend
class MilvusBackend:
    """A space's items in a Milvus collection (:class:`~talkrec.index.backend.VectorBackend`).

    ``fields``: the collection's metadata fields and how they compare (``list``,
    ``number``, ``text``, ``decade``; :mod:`talkrec.index.milvus_schema`). The client
    connects on first use after :meth:`close`."""

    max_fetch = MAX_FETCH
    max_id_filter = 1024

    def __init__(self, settings: MilvusSettings, fields: Mapping[str, str], client: Any = None) -> None:
        self.settings, self.fields = settings, dict(fields)
        self.exact = settings.index_type in ("FLAT", "BRUTE_FORCE")
        self._client_obj = client
        self._lock = threading.Lock()

    @classmethod
    def open(cls, s: MilvusSettings) -> "MilvusBackend":
        """The backend of a built space: its collection must exist (else :class:`InputError`
        naming ``index.collection``); it is loaded for search."""
        client = connect(s)
        try:
            if not client.has_collection(s.collection, timeout=s.timeout):
                raise InputError(f"Milvus at {s.uri} has no collection {s.collection!r}; build the space again "
                                 "(talkrec build), or name its collection", field="index.collection")
            fields = fields_of(client.describe_collection(s.collection, timeout=s.timeout))
            client.load_collection(s.collection, timeout=s.timeout)
        except BaseException:
            release(s, client)
            raise
        return cls(s, fields, client)

    def _client(self) -> Any:
        with self._lock:
            if self._client_obj is None:
                self._client_obj = connect(self.settings)
                self._client_obj.load_collection(self.settings.collection, timeout=self.settings.timeout)
            return self._client_obj

    def filter_expr(self, where: Where, columns: Sequence[str]) -> tuple[str, bool]:
        return milvus_expr(where, columns, self.fields)

    def ids_filter(self, ids: Sequence[str]) -> str | None:
        return ids_expr(ids, PK)

    def knn(self, q: np.ndarray, limit: int, expr: str) -> list[tuple[str, float]]:
        s = self.settings
        res = self._client().search(s.collection, [np.asarray(q, dtype=np.float32).tolist()], limit=int(limit),
                                    filter=expr, output_fields=[PK], timeout=s.timeout,
                                    search_params={"metric_type": s.metric, "params": dict(s.search_params)})
        return [(str(h[PK]), float(h["distance"])) for h in res[0]]

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, meta: Sequence[Mapping[str, Any]]) -> None:
        rows = milvus_rows(ids, vectors, meta, self.fields)
        client = self._client()
        for b in range(0, len(rows), WRITE_BATCH):
            client.upsert(self.settings.collection, rows[b:b + WRITE_BATCH], timeout=self.settings.timeout)

    def delete(self, ids: Sequence[str]) -> None:
        client = self._client()
        for b in range(0, len(ids), WRITE_BATCH):
            client.delete(self.settings.collection, ids=[str(i) for i in ids[b:b + WRITE_BATCH]],
                          timeout=self.settings.timeout)

    def count(self) -> int:
        res = self._client().query(self.settings.collection, filter="", output_fields=["count(*)"],
                                   timeout=self.settings.timeout)
        return int(res[0]["count(*)"])

    def close(self) -> None:
        with self._lock:
            if self._client_obj is not None:
                release(self.settings, self._client_obj)
                self._client_obj = None
