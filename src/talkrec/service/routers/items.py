"""Items: find by name, one item's details, and writes (cold-start upserts, deletes)."""
from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from ...space.hits import jsonable
from .. import schemas as S
from ..convert import took_ms
from ..deps import ServiceState, get_state
from ..errors import responses

router = APIRouter(tags=["items"])
#: the write routes; create_app adds the API key check (and the refusal of open writes)
write_router = APIRouter(tags=["items"])

#: item columns that are not shown as metadata
NOT_METADATA = ("item_id", "name", "description", "modalities", "cold_start", "norm_name", "join_name")


@router.get("/api/items", response_model=S.LookupResponse, responses=responses(422))
def lookup(name: str = Query(..., min_length=1, max_length=200, description="case-insensitive name substring"),
           limit: int = Query(10, ge=1, le=100), state: ServiceState = Depends(get_state)) -> S.LookupResponse:
    """Find items by name (for pickers)."""
    found = state.space.find(name, limit)
    return S.LookupResponse(items=[S.ItemRef(item_id=i, name=n) for i, n in found])


@router.get("/api/items/{item_id:path}", response_model=S.ItemDetail, responses=responses(404, 422))
def item(item_id: str, state: ServiceState = Depends(get_state)) -> S.ItemDetail:
    """Everything about one item: description, which modalities it has, metadata."""
    space = state.space.pinned()
    iid = space.resolve(item_id)
    row = space.item(iid)
    meta = {k: jsonable(v) for k, v in row.items() if k not in NOT_METADATA and not k.startswith("_")}
    return S.ItemDetail(item_id=iid, name=str(row.get("name", iid)), description=row.get("description"),
                        modalities=[str(m) for m in row.get("modalities") or []], space_modalities=space.modalities,
                        cold_start=bool(row.get("cold_start") or False), metadata=meta)


def record(it: S.ItemIn) -> dict[str, Any]:
    """An API item -> a :meth:`talkrec.Space.add_items` record (which validates it)."""
    rec: dict[str, Any] = {"item_id": it.item_id, "name": it.name}
    for key in ("tags", "description", "vectors", "metadata"):
        value = getattr(it, key)
        if value is not None:
            rec[key] = value
    return rec


@write_router.post("/api/items", response_model=S.AddItemsResponse, responses=responses(400, 409, 413, 422))
def add_items(req: S.AddItemsRequest, state: ServiceState = Depends(get_state)) -> S.AddItemsResponse:
    """Add or update items without retraining (cold start): any subset of modalities (tags /
    description -> text; raw vectors for the others) is projected through the trained
    encoders; the item is searchable and recommendable at once and survives a restart and
    a power loss (the write is logged and fsync'ed before this returns). Reads never wait
    for a write."""
    t0 = time.perf_counter()
    out = state.run_write(state.space.add_items, [record(it) for it in req.items])
    return S.AddItemsResponse(added=[S.AddedItem(**jsonable(o)) for o in out], items_total=len(state.space.index),
                              took_ms=took_ms(t0))


class DeleteItemResponse(BaseModel):
    deleted: str
    items_total: int
    took_ms: float


@write_router.delete("/api/items/{item_id:path}", response_model=DeleteItemResponse, responses=responses(404, 409, 422))
def delete_item(item_id: str = Path(..., min_length=1, max_length=200, description="the id of the item to delete"),
                state: ServiceState = Depends(get_state)) -> DeleteItemResponse:
    """Delete an item (a cold-start item or one from the build): it is no longer served, at
    once and after a restart (durable before this returns); an unknown id is a 404."""
    t0 = time.perf_counter()
    total = state.run_write(state.space.remove, [item_id])
    return DeleteItemResponse(deleted=item_id, items_total=total, took_ms=took_ms(t0))
