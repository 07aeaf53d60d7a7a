"""Replaying logged writes onto a snapshot, and compaction: the next generation made from a
sealed snapshot, and the snapshot that carries the writes made since the seal over to it.

Compaction never changes a served HNSW graph (hnswlib is not safe when one thread searches
while another inserts: nmslib/hnswlib #562, #29): the next graph is a private copy of the
saved one, with the dead rows marked deleted and the new rows added (or a new graph when
too many are deleted), swapped in with the generation.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .analysis import BM25Settings
from .lexical import LexicalIndex
from .segments import DeltaRows, Generation, lexical_texts
from .snapshot import Snapshot
from .store import GRAPH_FILE, VectorIndex, build_graph, load_graph
from .wal import LogRecord

__all__ = ["apply_record", "compacted", "rebase"]

#: above this fraction of deleted graph nodes compaction builds a new graph
MAX_DELETED_FRACTION = 0.3


def apply_record(snap: Snapshot, rec: LogRecord) -> Snapshot:
    """The snapshot after one logged write (a delete of an unknown id is skipped)."""
    if rec.op == "delete":
        return snap.with_delete(rec.ids)
    return snap.with_upsert(rec.ids, rec.vectors, rec.meta, rec.inputs, snap.gen.lexical_tokens(rec.meta))


def compacted(sealed: Snapshot, graph_file: Path | None,
              settings: BM25Settings = BM25Settings()) -> tuple[VectorIndex, dict[str, np.ndarray], LexicalIndex]:
    """The next generation's index, raw inputs and BM25: the live rows of ``sealed`` in row
    order (base rows first, then delta rows). ``graph_file``: the saved graph of
    ``sealed``'s generation, copied and updated rather than rebuilt. ``settings``: the BM25
    settings (those not given: as ``sealed``'s generation)."""
    base = sealed.gen.index
    meta = sealed.meta.reset_index(drop=True)
    vectors = sealed.vectors
    graph, labels = next_graph(sealed, vectors, graph_file) if base.ann else (None, None)
    index = VectorIndex(sealed.ids, vectors, meta, ann=base.ann, M=base.M, ef_construction=base.ef_construction,
                        ef_search=base.ef_search, graph=graph, graph_labels=labels, unit=True)
    inputs = {key: sealed.inputs(key) for key in sealed.gen.inputs}
    return index, inputs, next_lexical(sealed, meta, settings)


def next_lexical(sealed: Snapshot, meta: Any, settings: BM25Settings = BM25Settings()) -> LexicalIndex:
    """BM25 over the compacted rows: the generation's index with the dead rows dropped and the
    delta rows' tokens (counted when they were written) added, without tokenizing a text
    (:meth:`LexicalIndex.merged`: to the bit what tokenizing gives; tokenizing the 17,632
    Last.fm descriptions held the GIL ~0.75 s while the server answered reads). From the texts
    when the fields or the tokenization changed, or the generation's index was saved without
    its term counts."""
    saved = sealed.gen.lexical()
    want = settings.given_over(saved.settings)
    if want.fields != saved.fields or want.tokenization() != saved.settings.tokenization() \
            or not saved.has_counts:
        return LexicalIndex(lexical_texts(meta, want.fields), **want._asdict())
    k1, b = want.k1, want.b
    kept, n0, m, delta = sealed.live_rows, sealed.n0, sealed.m, sealed.delta
    delta_kept = kept[kept >= n0] - n0
    position = np.full(m, -1, dtype=np.int64)
    position[delta_kept] = np.arange(len(delta_kept))
    added = {}
    for token in list(delta.postings):            # a writer may add tokens meanwhile (rows >= m)
        rows, tf = delta.posting(token, m)
        at = position[rows]
        live = at >= 0
        if live.any():
            added[token] = (at[live], tf[live])
    lens = np.asarray(delta.doc_len[:m], dtype=np.int64)[delta_kept]
    return LexicalIndex.merged(saved, kept[kept < n0], added, lens, k1=k1, b=b)


def next_graph(sealed: Snapshot, vectors: np.ndarray, graph_file: Path | None) -> tuple[Any, np.ndarray | None]:
    """The HNSW graph of the compacted rows: a copy of the generation's saved graph, dead
    rows marked deleted, delta rows added; a new graph without a saved one or when more
    than :data:`MAX_DELETED_FRACTION` of its nodes would be deleted."""
    base = sealed.gen.index
    kept = sealed.live_rows
    n0 = sealed.n0
    base_kept, delta_kept = kept[kept < n0], kept[kept >= n0]
    old_rows = base.graph_labels if base.graph_labels is not None else np.arange(n0)
    new_of_old = np.full(n0, -1, dtype=np.int64)
    new_of_old[base_kept] = np.arange(len(base_kept))
    labels = np.where(old_rows >= 0, new_of_old[np.clip(old_rows, 0, max(n0 - 1, 0))], -1) if n0 else old_rows
    n_total = len(labels) + len(delta_kept)
    if graph_file is None or not graph_file.exists() or (labels < 0).sum() > MAX_DELETED_FRACTION * n_total:
        return build_graph(vectors, M=base.M, ef_construction=base.ef_construction, ef_search=base.ef_search), None
    graph = load_graph(graph_file, base.dim, ef_search=base.ef_search, max_elements=max(2 * n_total, 1024))
    for lab in np.flatnonzero((labels < 0) & (old_rows >= 0)):
        graph.mark_deleted(int(lab))
    new_rows = np.arange(len(base_kept), len(kept))
    if len(new_rows):
        graph.add_items(vectors[new_rows], np.arange(len(labels), n_total))
    return graph, np.concatenate([labels, new_rows]).astype(np.int64)


def graph_file_of(gen: Generation, space: Path) -> Path | None:
    """Where the generation's graph is saved (``None`` for a legacy space's)."""
    return space / gen.name / "index" / GRAPH_FILE if gen.name else None


def rebase(new_gen: Generation, sealed: Snapshot, current: Snapshot) -> Snapshot:
    """``current`` (``sealed`` plus the writes since) on top of ``new_gen``, the compaction
    of ``sealed``: its rows that died since the seal are dead, the rows written since the
    seal are its delta rows."""
    kept = sealed.live_rows
    live_base = current.live[kept]
    first, last = sealed.n0 + sealed.m, current.n0 + current.m
    rows = np.arange(first, last)
    delta = DeltaRows(new_gen.index.dim, {k: X.shape[1:] for k, X in new_gen.inputs.items()})
    if len(rows):
        d = current.delta
        rel = rows - current.n0
        meta = [d.meta[r] for r in rel]
        delta.append([d.ids[r] for r in rel], d.vectors[rel], meta, {k: X[rel] for k, X in d.inputs.items()},
                     new_gen.lexical_tokens(meta))
    delta_pos = {iid: len(new_gen) + j for j, iid in enumerate(delta.ids)}
    live = np.concatenate([live_base, current.live[first:last]])
    return Snapshot(new_gen, delta, len(rows), live, delta_pos, current.n_live, int((~live_base).sum()),
                    current.backend)
