"""``talkrec doctor SPACE [--repair]``: check a space folder and repair what can be repaired.

Checks: the manifest and every file it names; the logs, replayed (a torn or corrupt tail is
reported; ``--repair`` truncates it: that write was never acknowledged); duplicate item ids
(a format-1 space written by the old duplicate-id bug: ``--repair`` keeps the last row of
each id); raw-input and index row counts that disagree; a ``.index.old-*`` folder that an
interrupted format-1 write left instead of ``index/`` (``--repair`` renames it back);
orphaned temporary files and folders, and generations and logs the manifest does not name
(``--repair`` deletes them); int8 copies saved with the generation that are not its matrices'
(``--repair`` deletes them, but never while the manifest's generation cannot be read: they
may be all that is left); a format-1 space (``--repair`` migrates it to format 2); an attached
session model that cannot be loaded (every default playlist continuation would fail;
``--repair`` detaches it, kept as ``session_model.corrupt``: continuations use kNN until a
model is attached again).
Repairs need the space's ``LOCK``: not while another process writes to the space.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._atomic import atomic_path, orphans, recover_dir, remove_paths, save_with
from ..index import wal
from ..index.compaction import apply_record
from ..index.quantized import Int8TopK
from ..index.segments import INT8_DIR, int8_file
from ..index.snapshot import Snapshot
from ..index.store import VectorIndex
from .files import (CorruptSpace, migrate_legacy, read_config, read_generation, read_legacy, read_manifest,
                    unreferenced)
from .lock import WriterLock

__all__ = ["Finding", "Report", "doctor"]


@dataclass
class Finding:
    """One problem: what (``kind``), where, in words, and whether ``--repair`` fixed it."""

    kind: str
    path: str
    detail: str
    repairable: bool
    repaired: bool = False
    note: bool = False          # not a problem (a format-1 space), only something --repair would do


@dataclass
class Report:
    """What :func:`doctor` found; ``healthy`` when nothing is left unrepaired."""

    space: str
    format: int | None = None
    items: int | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return all(f.repaired or f.note for f in self.findings)

    def add(self, kind: str, path: Path | str, detail: str, repairable: bool = True, note: bool = False) -> Finding:
        f = Finding(kind, str(path), detail, repairable, note=note)
        self.findings.append(f)
        return f

    def to_json(self) -> dict[str, Any]:
        return {"space": self.space, "format": self.format, "items": self.items, "healthy": self.healthy,
                "findings": [asdict(f) for f in self.findings]}


def doctor(path: str | Path, *, repair: bool = False) -> Report:
    """Check the space at ``path`` (and repair it with ``repair``); see the module docstring."""
    path = Path(path)
    report = Report(str(path))
    try:
        read_config(path)
    except Exception as e:  # noqa: BLE001 - reported, not raised
        f = path / "space.json"
        if f.is_file():                  # there, but not JSON a space was built with
            report.add("corrupt_config", f, f"unreadable ({type(e).__name__}: {e})", repairable=False)
        else:
            report.add("not_a_space", path, str(e), repairable=False)
        return report
    lock = WriterLock(path)
    taken = not repair or lock.acquire()
    why = (f"cannot take the writer's lock to repair ({lock.unusable}); checked only" if lock.unusable
           else "another process writes to this space: stop it before repairing")
    if not taken:
        report.add("locked", path / "LOCK", why, repairable=False)
        repair = False
    try:
        _check_files(path, report, repair)
        _check_session_model(path, report, repair)
    except Exception as e:  # noqa: BLE001 - a check that fails is a finding, not a traceback
        report.add("check_failed", path, f"{type(e).__name__}: {e}", repairable=False)
    finally:
        lock.release()
    if repair and report.format == 1 and all(f.repaired for f in report.findings if f.kind != "legacy_format"):
        _migrate(path, report)
    return report


def _check_files(path: Path, report: Report, repair: bool) -> None:
    try:
        manifest = read_manifest(path)
    except CorruptSpace as e:
        report.add("corrupt_manifest", path / "MANIFEST.json", str(e), repairable=False)
        return
    report.format = 1 if manifest is None else 2
    if manifest is None:
        _check_legacy(path, report, repair)
    else:
        _check_format2(path, manifest, report, repair)
    temps = [p for p in orphans(path) + orphans(path / "inputs")        # a .index.old to recover is no orphan
             if not (p.name.startswith(".index.old-") and not (path / "index").exists())]
    for p in temps:
        report.add("orphan", p, "temporary file or folder a killed writer left behind").repaired = repair
    stale = unreferenced(path, manifest) if manifest is not None else []
    keep = any(f.kind == "unreadable_generation" for f in report.findings)
    for p in stale:
        if keep:                                          # perhaps all that is left of the space: never deleted
            report.add("unreferenced", p, "not named by MANIFEST.json; kept while the manifest's generation cannot "
                                          "be read (it may be what is left of the space)", repairable=False)
        else:
            report.add("unreferenced", p, "not named by MANIFEST.json (left by a crash or a migration)").repaired = \
                repair
    stale = [] if keep else stale
    if repair and (temps or stale):
        remove_paths(temps + stale)


def _check_session_model(path: Path, report: Report, repair: bool) -> None:
    """The attached session model loads (``Space.session_model`` reads it on the first
    continuation); ``repair`` moves one that does not aside, to a name no load reads."""
    folder = path / "session_model"
    if not folder.exists():
        return
    from ..sessions.recommender import SessionRecommender      # torch: only for a space with a model
    try:
        SessionRecommender.load(folder)
    except Exception as e:  # noqa: BLE001 - reported, not raised
        finding = report.add("corrupt_session_model", folder,
                             f"the attached session model cannot be loaded ({type(e).__name__}: {e}); playlist "
                             "continuations (method auto or session) fail until it is detached or attached again")
        if repair:
            aside = path / "session_model.corrupt"
            n = 1
            while aside.exists():
                aside, n = path / f"session_model.corrupt-{n}", n + 1
            os.replace(folder, aside)
            finding.repaired = True


def _check_format2(path: Path, manifest: Any, report: Report, repair: bool) -> None:
    gen_dir = path / manifest.generation
    ann = bool(read_config(path).get("index", {}).get("ann", False))
    try:
        snap = Snapshot.of(read_generation(gen_dir, ann=ann))
    except (OSError, ValueError, KeyError, CorruptSpace) as e:
        report.add("unreadable_generation", gen_dir, f"{type(e).__name__}: {e}", repairable=False)
        return
    _check_int8(gen_dir, snap, report, repair)
    for key in sorted(set(read_config(path).get("input_files", {}).values()) - set(snap.gen.inputs)):
        report.add("missing_inputs", gen_dir / "inputs" / f"{key}.npy", "named by space.json (input_files) but not in "
                   "the generation: writes cannot store that modality's raw inputs", repairable=False)
    for name in manifest.logs:
        f = path / name
        if not f.exists():
            report.add("missing_log", f, "named by MANIFEST.json but missing", repairable=False)
            continue
        snap = _check_log(f, snap, report, repair)
    report.items = len(snap)


def _check_log(f: Path, snap: Snapshot, report: Report, repair: bool) -> Snapshot:
    """Replay log ``f`` onto ``snap``: a torn tail (``--repair`` truncates it), corrupt bytes that
    complete records follow (``--repair`` drops those bytes only, keeping the original file as
    ``NAME.corrupt``), a record that does not decode."""
    try:
        scan = wal.read_log(f)
    except wal.CorruptLog as e:
        return _salvage_log(f, snap, report, repair, str(e))
    for i, payload in enumerate(scan.payloads):
        try:
            snap = apply_record(snap, wal.decode(payload))
        except (ValueError, KeyError, TypeError) as e:
            report.add("bad_record", f, f"record #{i + 1} does not decode ({e})", repairable=False)
            return snap
    if scan.problem:
        finding = report.add("torn_log", f, f"{scan.problem}: {scan.size - scan.valid_bytes} byte(s) after the "
                                            f"last complete record (a write that was never acknowledged)")
        if repair:
            wal.truncate_log(f, scan.valid_bytes)
            finding.repaired = True
    return snap


def _salvage_log(f: Path, snap: Snapshot, report: Report, repair: bool, why: str) -> Snapshot:
    """A log damaged in the middle: its complete records replayed, and with ``repair`` the log
    written again without the corrupt bytes (the damaged file kept as ``NAME.corrupt``)."""
    got = wal.salvage(f)
    spans = ", ".join(f"bytes {a}-{b}" for a, b in got.dropped)
    try:
        for payload in got.payloads:
            snap = apply_record(snap, wal.decode(payload))
    except (ValueError, KeyError, TypeError) as e:
        report.add("corrupt_log", f, f"{why}; the records around the damage do not replay ({e})", repairable=False)
        return snap
    finding = report.add("corrupt_log", f, f"{why}. --repair keeps the {len(got.payloads)} complete record(s), drops "
                                           f"{spans} (the write(s) there are lost) and keeps the damaged file as "
                                           f"{f.name}.corrupt")
    if repair:
        backup = f.with_name(f.name + ".corrupt")
        if backup.exists():
            backup.unlink()
        os.link(f, backup)
        with atomic_path(f) as tmp:
            tmp.write_bytes(b"".join(wal.frame(p) for p in got.payloads))
            tmp.chmod(0o644)
        finding.repaired = True
    return snap


def _check_int8(gen_dir: Path, snap: Snapshot, report: Report, repair: bool) -> None:
    """The int8 copies a compaction saved with the generation are its matrices' (``--repair``
    deletes one that is not: a process loading the generation makes it again)."""
    for key in [None, *snap.gen.inputs]:
        f = gen_dir / INT8_DIR / int8_file(key)
        if not f.is_file():
            continue
        try:
            Int8TopK.load(snap.gen.vectors if key is None else snap.gen.text(key)[0], f)
        except (OSError, ValueError, KeyError) as e:
            finding = report.add("bad_int8_copy", f, f"{e} (loading the generation makes it again)")
            if repair:
                f.unlink()
                finding.repaired = True


def _check_legacy(path: Path, report: Report, repair: bool) -> None:
    """A format-1 space: ``index/`` (or a ``.index.old-*`` to recover), duplicate ids, row counts."""
    if not (path / "index").exists():
        olds = sorted(p.name for p in path.glob(".index.old-*"))
        if not olds:
            report.add("missing_index", path / "index", "no index/ folder and no MANIFEST.json", repairable=False)
            return
        f = report.add("recover_old", path / olds[-1], "index/ is missing: a write died between its two renames; "
                                                       "this folder holds the index before it")
        if not repair:
            return
        f.repaired = recover_dir(path / "index")
    meta = pd.read_parquet(path / "index" / "meta.parquet")
    ids = meta["item_id"].astype(str).to_numpy()
    report.items = len(set(ids.tolist()))
    dup = pd.Series(ids).duplicated(keep=False).to_numpy()
    inputs = {p.stem: np.load(p, allow_pickle=False) for p in sorted((path / "inputs").glob("*.npy"))
              if not p.name.startswith(".")}
    bad_rows = {k: len(X) for k, X in inputs.items() if len(X) != len(ids)}
    for k, n in bad_rows.items():
        report.add("row_mismatch", path / "inputs" / f"{k}.npy",
                   f"{n} rows for {len(ids)} index rows (realigned on load; --repair writes them aligned)").repaired = \
            repair
    if dup.any():
        names = sorted(set(ids[dup].tolist()))
        f = report.add("duplicate_ids", path / "index", f"{len(names)} id(s) stored on more than one row "
                                                        f"(e.g. {names[:5]}); --repair keeps the last row of each")
        if repair:
            _dedupe_legacy(path, meta, ids, inputs)
            f.repaired = True
    elif repair and bad_rows:
        _dedupe_legacy(path, meta, ids, inputs)
    report.add("legacy_format", path, "a format-1 space (no MANIFEST.json): it loads as it is; its first write "
                                      "or --repair migrates it to format 2", note=True)


def _dedupe_legacy(path: Path, meta: pd.DataFrame, ids: np.ndarray, inputs: dict[str, np.ndarray]) -> None:
    """Rewrite a format-1 index and its inputs with the last row of each id, rows aligned."""
    keep = np.flatnonzero(~pd.Series(ids).duplicated(keep="last").to_numpy())
    cfg = json.loads((path / "index" / "config.json").read_text())
    V = np.load(path / "index" / "vectors.npy", allow_pickle=False)
    index = VectorIndex(ids[keep], V[keep], meta.iloc[keep].reset_index(drop=True), ann=bool(cfg["ann"]), M=cfg["M"],
                        ef_construction=cfg["ef_construction"], ef_search=cfg["ef_search"], unit=True)
    for key, X in inputs.items():
        n = len(ids)
        X = X[:n] if len(X) >= n else np.concatenate([X, np.full((n - len(X),) + X.shape[1:], np.nan, np.float32)])
        save_with(path / "inputs" / f"{key}.npy", lambda p, X=X[keep]: np.save(p, X), suffix=".npy")
    index.save(path / "index")


def _migrate(path: Path, report: Report) -> None:
    lock = WriterLock(path)
    if not lock.acquire():
        return
    try:
        ann = bool(read_config(path).get("index", {}).get("ann", False))
        migrate_legacy(path, read_legacy(path, ann=ann))
    finally:
        lock.release()
    for f in report.findings:
        if f.kind == "legacy_format":
            f.repaired = True
    report.format = 2
