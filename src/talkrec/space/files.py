"""A space on disk (format 2; written by :mod:`talkrec.pipeline`, updated by the Space)::

    space.json            what was built, with which models and settings
    MANIFEST.json         the only source of truth: {"format": 2, "generation": "gen-000003",
                          "logs": ["wal-000007.log", ...], "next_log": 8, "space_id": "<new per build>"}
    gen-000003/           what compaction rewrites:
      index/              VectorIndex: vectors, filterable metadata (+ descriptions), HNSW graph
      inputs/<key>.npy    raw modality vectors aligned with the index (NaN rows = missing)
      bm25/               BM25 over the descriptions (bm25s files + corpus statistics)
      int8/               int8 copies of the vectors that a compaction saved (optional)
    wal-000007.log        the writes since the generation (talkrec.index.wal), replayed on load
    LOCK                  held (flock) by the one process that writes
    fusion/               the fusion model (safetensors + config.json), loaded as FusionProjector
    cf/                   ALS factors (item + user), for personalization
    interactions.parquet  user histories (user_id, item_id, weight)
    session_model/        an attached session model (optional)

A format-1 (legacy) space (``index/`` and ``inputs/`` at the top, no manifest) loads as it is and
is migrated on its first write (or ``talkrec doctor --repair``). Every file the manifest names is
written to a temporary name, fsync'ed and renamed (folder fsync'ed) before the manifest is."""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._atomic import fsync_dir, fsync_tree, recover_dir, write_json
from ..errors import InputError, NotFoundError, TalkrecError
from ..fusion.projector import FusionProjector
from ..index import wal
from ..index.compaction import apply_record
from ..index.lexical import LexicalIndex
from ..index.segments import Generation
from ..index.snapshot import Snapshot
from ..index.store import VectorIndex, read_index_file

log = logging.getLogger(__name__)

MANIFEST, LOCK, FORMAT = "MANIFEST.json", "LOCK", 2
_GEN, _LOG = re.compile(r"^gen-(\d{6})$"), re.compile(r"^wal-(\d{6})\.log$")


class WriteError(TalkrecError):
    """A write that could not be persisted; the space, in memory and on disk, is unchanged
    (unless the message says the space must be reloaded)."""


class WriteConflict(WriteError):
    """A write refused because another process writes the space or changed it since this one
    loaded it, or because this one only follows it; nothing was changed (HTTP 409)."""


class CorruptSpace(TalkrecError):
    """A space whose manifest or a file it names cannot be read (``talkrec doctor`` says more)."""


class ManifestChanged(TalkrecError):
    """Another process changed the manifest while this one loaded the space (load again)."""


class MissingLog(CorruptSpace, FileNotFoundError):
    """A log the manifest names is missing (a ``FileNotFoundError``: a compaction in another
    process may have removed it after this one read the manifest; loading again tells)."""


@dataclass
class Manifest:
    """``MANIFEST.json``: the generation and the logs (in replay order) that make the space."""

    generation: str
    logs: list[str] = field(default_factory=list)
    next_log: int = 1
    format: int = FORMAT
    #: made once per build (kept by writes and compactions): a process that loaded the space
    #: before a rebuild replaced it sees another space, not the same manifest ("" before it existed)
    space_id: str = ""

    @classmethod
    def first(cls) -> "Manifest":
        """The manifest of a space just written: generation 1, log 1, a new ``space_id``."""
        return cls(gen_name(1), [log_name(1)], 2, space_id=uuid.uuid4().hex)

    def to_json(self) -> dict[str, Any]:
        out = {"format": self.format, "generation": self.generation, "logs": list(self.logs),
               "next_log": self.next_log}
        return {**out, "space_id": self.space_id} if self.space_id else out


def gen_name(n: int) -> str:
    return f"gen-{n:06d}"


def log_name(n: int) -> str:
    return f"wal-{n:06d}.log"


def gen_number(name: str) -> int:
    m = _GEN.match(name)
    return int(m.group(1)) if m else 0


def log_number(name: str) -> int:
    m = _LOG.match(name)
    return int(m.group(1)) if m else 0


def is_generation(name: str) -> bool:
    return bool(_GEN.match(name))


def is_log(name: str) -> bool:
    return bool(_LOG.match(name))


def read_manifest(path: Path) -> Manifest | None:
    """The manifest of the space at ``path`` (``None``: a legacy, format-1 space)."""
    f = path / MANIFEST
    if not f.exists():
        return None
    try:
        d = json.loads(f.read_text())
        m = Manifest(str(d["generation"]), [str(x) for x in d["logs"]], int(d["next_log"]), int(d["format"]),
                     str(d.get("space_id", "")))
    except (ValueError, KeyError, TypeError) as e:
        raise CorruptSpace(f"{f}: unreadable manifest ({e}); run `talkrec doctor {path}`") from None
    if m.format != FORMAT or not is_generation(m.generation) or not all(is_log(x) for x in m.logs):
        raise CorruptSpace(f"{f}: not a format-{FORMAT} manifest: {d}")
    return m


def unreferenced(path: Path, manifest: Manifest) -> list[Path]:
    """Generations and logs the manifest does not name, and the legacy ``index/`` and
    ``inputs/`` of a migrated space: what a crash (or a migration) left behind."""
    return [p for p in sorted(path.iterdir())
            if (is_generation(p.name) and p.name != manifest.generation)
            or (is_log(p.name) and p.name not in manifest.logs) or p.name in ("index", "inputs")]


def write_manifest(path: Path, manifest: Manifest) -> None:
    """Write ``MANIFEST.json`` durably (temp file, fsync, rename, fsync folder)."""
    write_json(path / MANIFEST, manifest.to_json())


# ---------------------------------------------------------------------------- generations
def write_generation(folder: Path, index: VectorIndex, inputs: dict[str, np.ndarray], lexical: LexicalIndex) -> None:
    """The files of a generation, into the existing (temporary) folder ``folder``."""
    (folder / "index").mkdir()
    index.write_files(folder / "index")
    (folder / "inputs").mkdir()
    for key, X in inputs.items():
        np.save(folder / "inputs" / f"{key}.npy", X)
    lexical.save(folder / "bm25")


def publish_generation(path: Path, name: str, index: VectorIndex, inputs: dict[str, np.ndarray],
                       lexical: LexicalIndex, extra: Callable[[Path], None] | None = None) -> None:
    """Write generation ``name`` of the space at ``path`` as ``name.tmp`` (and ``extra(tmp)``:
    its saved int8 copies), fsync it and rename it into place (the manifest comes after)."""
    tmp, final = path / f"{name}.tmp", path / name
    for stale in (tmp, final):
        if stale.exists():
            shutil.rmtree(stale)
    tmp.mkdir()
    try:
        write_generation(tmp, index, inputs, lexical)
        if extra is not None:
            extra(tmp)
        fsync_tree(tmp)
        os.replace(tmp, final)
        fsync_dir(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def storage_setting(name: str, value: Any, lo: int, hi: int) -> int:
    """``value`` of the ``storage.<name>`` setting, an integer in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InputError(f"storage.{name} must be an integer in [{lo}, {hi}], got {value!r}", field=f"storage.{name}")
    return value


def write_new_space(folder: Path, index: VectorIndex, inputs: dict[str, np.ndarray],
                    search: dict[str, Any] | None = None, *, text_key: str | None = None) -> None:
    """The storage files of a new space into the (temporary) space folder ``folder``: generation 1
    (BM25 over the ``search`` settings' ``bm25_*`` fields, parameters and tokenization; the int8 copies of
    the fused vectors and of input ``text_key``'s text matrix), an empty log and the manifest."""
    from ..index.analysis import DEFAULT_FIELDS, bm25_params, check_fields
    from ..index.segments import lexical_texts

    settings = bm25_params(search)
    fields = settings.fields or DEFAULT_FIELDS
    check_fields(fields, set(index.meta.columns))
    manifest = Manifest.first()
    name = manifest.generation
    (folder / name).mkdir()
    write_generation(folder / name, index, inputs, LexicalIndex(lexical_texts(index.meta, fields),
                                                                **settings._replace(fields=fields)._asdict()))
    gen = Generation(name, index, inputs)               # the matrices a serving process reads (checked there)
    gen.warm_int8(text_key)
    gen.save_int8(folder / name)
    (folder / log_name(1)).touch()
    write_manifest(folder, manifest)


def read_generation(folder: Path, *, ann: bool) -> Generation:
    """A generation folder written by :func:`write_generation`."""
    index = VectorIndex.load(folder / "index", ann=ann)
    inputs = {f.stem: read_index_file(f, partial(np.load, allow_pickle=False))
              for f in sorted((folder / "inputs").glob("*.npy")) if not f.name.startswith(".")}
    for key, X in inputs.items():
        if len(X) != len(index):
            raise CorruptSpace(f"{folder}: inputs/{key}.npy has {len(X)} rows for {len(index)} index rows")
    lexical = LexicalIndex.load(folder / "bm25") if (folder / "bm25").is_dir() else None
    return Generation(folder.name, index, inputs, lexical, folder=folder)


def read_legacy(path: Path, *, ann: bool) -> Generation:
    """The ``index/`` and ``inputs/`` of a format-1 space (recovered from ``.index.old-*``
    when a write died between its two renames); raw inputs realigned with the index."""
    recover_dir(path / "index")
    if not (path / "index").is_dir():
        raise CorruptSpace(f"{path}: no index/ folder and no MANIFEST.json")
    index = VectorIndex.load(path / "index", ann=ann)
    inputs = {}
    n = len(index)
    for f in sorted(p for p in (path / "inputs").glob("*.npy") if not p.name.startswith(".")):
        X = np.load(f, allow_pickle=False)
        # The index is the source of truth: a crash between the two atomic writes of a
        # format-1 upsert can leave the inputs one write ahead (or behind); realign them.
        if len(X) > n:
            X = X[:n]
        elif len(X) < n:
            X = np.concatenate([X, np.full((n - len(X),) + X.shape[1:], np.nan, dtype=np.float32)])
        inputs[f.stem] = X
    return Generation("", index, inputs, None)


def migrate_legacy(path: Path, gen: Generation) -> Manifest:
    """Write the legacy space at ``path`` (its loaded index ``gen``) as format 2: ``gen`` as
    generation 1 with an empty log, then the manifest, then delete ``index/`` and
    ``inputs/``. A crash before the manifest leaves the legacy space as it was."""
    from .._atomic import remove_paths

    manifest = Manifest.first()
    name = manifest.generation
    publish_generation(path, name, gen.index, gen.inputs, gen.lexical())
    (path / log_name(1)).touch()
    fsync_dir(path)
    write_manifest(path, manifest)
    gen.name = name
    remove_paths([p for p in (path / "index", path / "inputs") if p.exists()])
    log.info("migrated %s to space format %d (%s)", path, FORMAT, name)
    return manifest


# ---------------------------------------------------------------------------- logs
@dataclass
class Replayed:
    """What :func:`replay_logs` made: the snapshot, each log's valid bytes, what was wrong
    (in words) and the records applied, in order."""

    snap: Snapshot
    sizes: dict[str, int]
    problems: list[str]
    records: list[wal.LogRecord]


def replay_logs(path: Path, logs: list[str], snap: Snapshot, *, truncate: bool) -> Replayed:
    """Apply the logs ``logs`` of the space at ``path`` to ``snap``; a torn tail (a write never
    acknowledged) is dropped, and cut off the file when ``truncate`` (this process may write).
    Acknowledged writes are never dropped: a log the manifest names that is missing is
    :class:`MissingLog`, a record with a valid checksum that does not decode :class:`CorruptSpace`."""
    done = Replayed(snap, {}, [], [])
    for name in logs:
        f = path / name
        if not f.exists():
            raise MissingLog(f"{f} is named by {MANIFEST} but missing: the writes it held are lost "
                             f"(`talkrec doctor {path}` says more)")
        scan = wal.read_log(f)
        for i, payload in enumerate(scan.payloads):
            try:
                rec = wal.decode(payload)
                done.snap = apply_record(done.snap, rec)
            except (ValueError, KeyError, TypeError) as e:   # a valid checksum over a bad payload: no torn write
                raise CorruptSpace(f"{f}: record #{i + 1} has a valid checksum but cannot be applied ({e}); nothing "
                                   f"was cut (`talkrec doctor {path}` says more)") from None
            done.records.append(rec)
        done.sizes[name] = scan.valid_bytes
        if scan.problem:
            cut = truncate and scan.size > scan.valid_bytes
            done.problems.append(f"{name}: {scan.problem}; {scan.size - scan.valid_bytes} byte(s) after the last "
                                 f"complete record {'truncated' if cut else 'ignored'} (that write was never "
                                 "acknowledged)")
            if cut:
                wal.truncate_log(f, scan.valid_bytes)
    return done


# ---------------------------------------------------------------------------- the space
@dataclass
class SpaceFiles:
    """What :func:`read_space` loads (the generation without the logs' writes)."""

    config: dict[str, Any]
    fusion: FusionProjector
    interactions: pd.DataFrame | None
    generation: Generation
    manifest: Manifest | None


def read_config(path: Path) -> dict[str, Any]:
    if not (path / "space.json").exists():
        raise NotFoundError(f"no talkrec space at {path} (space.json missing); build one with `talkrec build CONFIG`")
    try:
        cfg = json.loads((path / "space.json").read_text())
    except (OSError, ValueError) as e:
        raise CorruptSpace(f"{path / 'space.json'} cannot be read ({type(e).__name__}: {e})") from None
    if not isinstance(cfg, dict):
        raise CorruptSpace(f"{path / 'space.json'} is not a space's config (a JSON {type(cfg).__name__})")
    return cfg


def read_space(path: Path) -> SpaceFiles:
    """Load the space at ``path``: its manifest's generation (or a legacy space's index).

    A writer in another process may replace the generation while this reads it: the
    manifest is read again and the load retried."""
    config = read_config(path)
    ann = bool(config.get("index", {}).get("ann", False))
    fusion = FusionProjector.load(path / "fusion")  # numpy: serving never imports torch
    inter = pd.read_parquet(path / "interactions.parquet") if (path / "interactions.parquet").exists() else None
    for attempt in range(5):
        manifest = read_manifest(path)
        try:
            gen = read_legacy(path, ann=ann) if manifest is None else read_generation(path / manifest.generation, ann=ann)
            return SpaceFiles(config, fusion, inter, gen, manifest)
        except FileNotFoundError:
            if attempt == 4 or read_manifest(path) == manifest:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
