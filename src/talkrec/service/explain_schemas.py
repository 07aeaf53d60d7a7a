"""Response models of the explanation routes (:mod:`talkrec.service.routers.explain`): why an
item is next to another in ``similar``, or a hit for a search (:mod:`talkrec.space.explain`)."""
from __future__ import annotations

from pydantic import BaseModel, Field


class ServedList(BaseModel):
    """One list ``similar`` fuses (strategy ``rrf``) and ``b``'s place in it."""

    list: str = Field(description="fused (the fused space), cf (EASE), content (a cold item's list by content), "
                                  "lexical (BM25)")
    weight: float
    rank: int | None = Field(description="b's rank in this list, from 1 (null: not in it)")
    part: float = Field(description="b's part of the RRF score: weight / (c + rank)")


class ServedPlace(BaseModel):
    """Where ``b`` stands in what ``/api/similar`` serves for ``a`` (no filter)."""

    strategy: str = Field(description="rrf, or cosine (the fused space's kNN)")
    rank: int | None = Field(description="b's rank among a's similar items, from 1 (null: past the first 200)")
    score: float | None
    novelty: float = Field(description="the space's default novelty re-ranking (0: none; the parts then add up "
                                       "to the score)")
    lists: list[ServedList]


class ExplainResponse(BaseModel):
    """Why ``b`` is next to ``a``."""

    a: str
    b: str
    names: dict[str, str]
    cosine: float = Field(description="cosine of the two items in the fused space")
    shared_tags: list[str]
    modality_contributions: dict[str, float] = Field(description="each modality pair's exact share of the cosine")
    modalities: dict[str, list[str]]
    similar: ServedPlace


class SearchList(BaseModel):
    """One list hybrid search fuses and the item's place in it."""

    list: str = Field(description="fused (the query in the fused space), text (the text model), lexical (BM25), "
                                  "name (BM25 over the names, search.hybrid_name_weight)")
    weight: float
    rank: int | None = Field(description="the item's rank in this list, from 1 (null: not in it)")
    part: float = Field(description="the item's part of the RRF score: weight / (c + rank)")


class MatchedTerm(BaseModel):
    term: str
    score: float = Field(description="the term's part of the item's BM25 score")


class ExplainSearchResponse(BaseModel):
    """Why ``item`` is a hit for the query ``query``."""

    query: str
    item: str
    name: str
    mode: str = Field(description="the search mode explained (the space's default when none is given)")
    score_kind: str
    rank: int | None = Field(description="the item's rank in what /api/search serves, from 1 (null: past the "
                                         "first 200)")
    score: float | None
    lists: list[SearchList] = Field(description="hybrid mode: each fused list's rank of the item and part of its "
                                                "score (they add up to it)")
    terms: list[MatchedTerm] = Field(description="the query's BM25 terms the item's text has, largest part first")
    cosine: float = Field(description="cosine of the query and the item in the fused space")


class ScorePart(BaseModel):
    """One term of a recommendation's score."""

    part: str = Field(description="blend: fused, ease, als, cold (boost and prior of an item without CF); "
                                  "rrf: fused, cf (EASE)")
    weight: float | None
    rank: int | None = Field(description="rrf: the item's rank in this list, from 1 (null: not in it)")
    value: float = Field(description="blend: weight x the term's z-score; rrf: weight / (c + rank)")


class Because(BaseModel):
    """A history item that brings the recommendation."""

    item_id: str
    name: str
    cosine: float = Field(description="its cosine to the item in the fused space")
    ease: float | None = Field(description="EASE's weight B[h, item]: its share of the EASE term (null: no EASE)")
    als: float | None = Field(description="the dot of their ALS factors (null: either has none)")


class ExplainRecommendResponse(BaseModel):
    """Why ``item`` is recommended from the history."""

    item: str
    name: str
    strategy: str = Field(description="blend, rrf, or cosine (the fused space's kNN)")
    rank: int | None = Field(description="the item's rank in what /api/recommend serves, from 1 (null: past the "
                                         "first 200, or in the history)")
    score: float | None
    in_history: bool
    in_negative: bool = Field(description="the item is one of the negative examples (never recommended)")
    novelty: float = Field(description="the space's default novelty re-ranking (0: none; the parts then add up "
                                       "to the score)")
    parts: list[ScorePart]
    because: list[Because] = Field(description="the history items most like it in the fused space (at most 10)")
