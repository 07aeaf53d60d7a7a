"""Cold start: add or update items in a built space without retraining.

A new item is described with the space's TEMPLATE settings (unless a description is
given), embedded with the space's text model, and each raw modality vector it has is
projected through the trained encoders; the fused vector is upserted into the index.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .descriptions.categories import TagCategorizer
from .descriptions.template import TemplateDescriber
from .errors import InputError
from .fusion.model import combine

if TYPE_CHECKING:
    from .space import Space

MAX_ITEMS_PER_CALL = 1000


def _tags(rec: Mapping[str, Any], i: int) -> dict[str, list[str]]:
    t = rec.get("tags")
    if t is None:
        return {}
    if isinstance(t, Mapping):
        out = {}
        for c, v in t.items():
            if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
                raise InputError(f"tags[{c!r}] must be a list of strings", row=i, field="tags")
            out[str(c)] = list(v)
        return out
    if isinstance(t, (list, tuple)) and all(isinstance(x, str) for x in t):
        cat = TagCategorizer()
        out: dict[str, list[str]] = {}
        for x in t:
            out.setdefault(cat(x), []).append(x)
        return out
    raise InputError("tags must be a list of strings or an object {category: [tags]}", row=i, field="tags")


def add_items(space: "Space", records: Sequence[Mapping[str, Any]]
              ) -> tuple[Any, dict[str, np.ndarray], list[dict[str, Any]]]:
    """Returns a new index with the records upserted, the new raw-input matrices aligned
    with it (the space's own index and inputs are not touched) and a summary per record."""
    if not records:
        raise InputError("no items given", field="items")
    if len(records) > MAX_ITEMS_PER_CALL:
        raise InputError(f"at most {MAX_ITEMS_PER_CALL} items per call, got {len(records)}", field="items")
    describer = TemplateDescriber(**space.config["descriptions"]["template"])
    ids, names, texts, metas = [], [], [], []
    per_mod: dict[str, list[np.ndarray | None]] = {m: [] for m in space.modalities}
    first_row: dict[str, int] = {}
    for i, rec in enumerate(records, start=1):
        if not isinstance(rec, Mapping):
            raise InputError("each item must be an object", row=i)
        iid = rec.get("item_id")
        if not isinstance(iid, (str, int)) or str(iid).strip() == "":
            raise InputError("missing or empty item_id", row=i, field="item_id")
        if str(iid).strip() in first_row:
            raise InputError(f"item_id {str(iid).strip()!r} already appears in row {first_row[str(iid).strip()]} of "
                             "this batch; give each item once per call (nothing was written)", row=i, field="item_id")
        first_row[str(iid).strip()] = i
        name = rec.get("name")
        if not isinstance(name, str) or not name.strip():
            raise InputError("missing or empty name", row=i, field="name")
        tags = _tags(rec, i)
        desc = rec.get("description")
        if desc is not None and not isinstance(desc, str):
            raise InputError("description must be a string", row=i, field="description")
        fields = {k: v for k, v in rec.items() if k not in ("vectors", "tags", "description", "media")}
        text = desc if desc and desc.strip() else describer.describe_one(fields, tags)
        vectors = dict(rec.get("vectors") or {})
        if not isinstance(rec.get("vectors") or {}, Mapping):
            raise InputError("vectors must be an object {modality: [numbers]}", row=i, field="vectors")
        media = rec.get("media") or {}
        if not isinstance(media, Mapping):
            raise InputError("media must be an object {modality: file path}", row=i, field="media")
        for m, path in media.items():
            from .media_query import encode_media
            try:
                vectors[m] = encode_media(space, str(m), str(path)).tolist()
            except InputError as e:
                raise InputError(str(e), row=i, field=f"media.{m}") from None
        for m in vectors:
            if m not in space.fusion.input_dims_ or m == "text":
                raise InputError(f"unknown modality {m!r}; raw vectors can be given for "
                                 f"{[x for x in space.modalities if x != 'text']}", row=i, field=f"vectors.{m}")
        for m in space.modalities:
            if m == "text":
                continue
            v = vectors.get(m)
            if v is None:
                per_mod[m].append(None)
                continue
            try:
                arr = np.asarray(v, dtype=np.float32)
            except (TypeError, ValueError):
                raise InputError("vector must be a list of numbers", row=i, field=f"vectors.{m}") from None
            want = space.fusion.input_dims_[m]
            if arr.shape != (want,) or not np.isfinite(arr).all():
                raise InputError(f"expected {want} finite numbers, got shape {list(arr.shape)}", row=i,
                                 field=f"vectors.{m}")
            if m not in media:
                arr = space.standardize(m, arr)
            per_mod[m].append(arr)
        flat = sorted({t for ts in tags.values() for t in ts}, key=lambda t: [x for ts in tags.values() for x in ts].index(t))
        meta = {k: v for k, v in fields.items() if k not in ("item_id", "name")}
        meta["tags"] = flat
        for c in ("genre", "decade", "place", "mood"):
            if c in tags and c not in meta:
                meta[c] = tags[c]
        ids.append(str(iid).strip())
        names.append(name.strip())
        texts.append(text)
        metas.append(meta)
    outputs: dict[str, np.ndarray] = {}
    raw: dict[str, np.ndarray] = {}
    if "text" in space.modalities:
        raw["text"] = space.text_encoder().encode(texts, kind="passage")
        outputs["text"] = space.fusion.project("text", raw["text"])
    for m, vs in per_mod.items():
        if m == "text" or not vs:
            continue
        X = np.full((len(ids), space.fusion.input_dims_[m]), np.nan, dtype=np.float32)
        for j, v in enumerate(vs):
            if v is not None:
                X[j] = v
        raw[m] = X
        outputs[m] = space.fusion.project(m, X)
    fused = combine(outputs)
    modalities = [[m for m, o in outputs.items() if not np.isnan(o[j]).any()] for j in range(len(ids))]
    meta_df = pd.DataFrame(metas)
    meta_df.insert(0, "name", names)
    meta_df.insert(0, "item_id", ids)
    meta_df["description"] = texts
    meta_df["modalities"] = modalities
    meta_df["cold_start"] = True
    new_index = space.index.copy()
    new_index.upsert(ids, fused, meta_df)
    new_inputs = {}
    pos = [new_index.position(i) for i in ids]
    for m, key in space.config["input_files"].items():
        old = space.inputs[key]
        X = np.full((len(new_index),) + old.shape[1:], np.nan, dtype=np.float32)
        X[: len(old)] = old
        rows = raw.get(m)
        if rows is not None:
            if X.ndim == 3:       # several text views: the new text is view 0
                X[pos] = np.nan
                X[pos, 0] = rows
            else:
                X[pos] = rows
        else:
            X[pos] = np.nan
        new_inputs[key] = X
    return new_index, new_inputs, [{"item_id": i, "modalities": m, "description": t} for i, m, t in zip(ids, modalities, texts)]
