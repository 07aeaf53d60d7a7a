"""Request and response models of the HTTP API, with the limits every input is held to.

Limits are deliberately explicit (and visible in the OpenAPI description) so that bad input
is rejected with a 422 and a clear message before it reaches the space.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..limits import K_MAX, NEGATIVE_WEIGHT_MAX, OFFSET_MAX, PLAYLIST_MAX

QUERY_MAX_CHARS = 500
SEEDS_MAX = 500
BATCH_MAX = 100                # requests in one POST /api/recommend/batch
ADD_MAX_ITEMS = 200
VECTOR_MAX_DIM = 65_536
TAGS_MAX = 100
#: one tag's length: real catalogs have long free-text tags (Last.fm's longest is 124 characters),
#: and an item read from a space must be writable back
TAG_MAX_CHARS = 300
DECADE_PATTERN = r"^\s*((1[89]|20)?\d0'?s?)?\s*$"

ItemId = str  # ids are strings; numeric ids are sent as strings ("289")


#: what a result's ``score`` is: ``cosine`` in the fused space, ``text_cosine`` in the text
#: model's own space, ``bm25`` (BM25 over the descriptions), ``rrf`` (reciprocal rank fusion of
#: several rankings: only the order means something) or ``session`` (a session model's score)
ScoreKind = Literal["cosine", "text_cosine", "bm25", "rrf", "blend", "session"]
#: ``talkrec.space.strategies.RECOMMEND_STRATEGIES`` (a test checks they are the same)
RecommendStrategy = Literal["blend", "rrf", "knn", "best_score"]
SCORE_KIND_DESCRIPTION = ("what the scores are: cosine (fused space), text_cosine (the text model's own space), "
                          "bm25 (BM25 over the descriptions), rrf (reciprocal rank fusion: compare ranks, not values), "
                          "blend (recommend's sum of z-scored fused / EASE / ALS scores) or session (a session model's "
                          "score)")


class _Strict(BaseModel):
    """Request bodies: no unknown fields, finite numbers, and no coercion (``true`` is not a
    number, ``"5"`` is not an integer)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class Range(_Strict):
    """A numeric range on one metadata field; either bound may be left out."""

    min: float | None = Field(None, description="inclusive lower bound")
    max: float | None = Field(None, description="inclusive upper bound")


class Filters(_Strict):
    """Metadata filters, AND-ed. ``where`` takes the filter language of the Python API
    (``"tag=metal,listeners>=1000"``; operators ``= != > >= < <= ~``)."""

    tags: list[str] = Field(default_factory=list, max_length=20,
                            description="items must carry all of these tags (case-insensitive)")
    decade: str | None = Field(None, max_length=16, pattern=DECADE_PATTERN, description="e.g. '80s' or '1980s'")
    ranges: dict[str, Range] = Field(default_factory=dict, max_length=10,
                                     description="numeric ranges, e.g. {\"listeners\": {\"min\": 1000}}")
    where: str | None = Field(None, max_length=500, description="free filter expression")


class Hit(BaseModel):
    item_id: str
    name: str
    score: float = Field(description="higher is better; what it is: the response's score_kind")
    metadata: dict[str, Any] = Field(default_factory=dict)


class HitsResponse(BaseModel):
    items: list[Hit]
    score_kind: ScoreKind = Field("cosine", description=SCORE_KIND_DESCRIPTION)
    k: int
    offset: int = 0
    took_ms: float
    note: str | None = Field(None, description="an empty list of a search, similar or recommend: why (no item passes "
                                               "the filter, with the numeric fields' ranges, or how many do)")


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(default_factory=list)
    msg: str
    type: str | None = None


class ErrorResponse(BaseModel):
    """Every 4xx/5xx: a short code, a human-readable message, and for validation errors the
    individual problems."""

    error: str
    detail: str
    field: str | None = None
    errors: list[ErrorItem] | None = None


class _UserOrItems(_Strict):
    """A request that names its source as exactly one of ``user`` or ``items``."""

    user: str | None = Field(None, min_length=1, max_length=200, description="a user id with a history")
    items: list[ItemId] | None = Field(None, min_length=1, max_length=SEEDS_MAX,
                                       description="item ids (or exact names)")

    @model_validator(mode="after")
    def _one_source(self) -> "_UserOrItems":
        if (self.user is None) == (self.items is None):
            raise ValueError("give exactly one of 'user' or 'items'")
        return self


class RecommendRequest(_UserOrItems):
    items: list[ItemId] | None = Field(None, max_length=SEEDS_MAX,
                                       description="item ids (or exact names); [] with `negative` alone")
    negative: list[ItemId] | None = Field(None, min_length=1, max_length=SEEDS_MAX,
                                          description="items not wanted: never recommended, and weighed against the "
                                                      "history in every term of the ranking")
    negative_weight: float | None = Field(None, ge=0.0, le=NEGATIVE_WEIGHT_MAX,
                                          description="the negatives' weight against the history (default: the "
                                                      "space's recommend.negative_weight)")
    k: int = Field(10, ge=1, le=K_MAX)
    offset: int = Field(0, ge=0, le=OFFSET_MAX)
    filters: Filters = Field(default_factory=Filters)
    exclude_seen: bool = Field(True, description="leave out the user's / given items")
    diversity: float = Field(0.0, ge=0.0, lt=1.0, description="MMR trade-off over the top `pool`; 0 = the ranking as is")
    novelty: float | None = Field(None, ge=0.0, lt=1.0,
                                  description="weight of an item's novelty (how few of the space's users have it) "
                                              "against its score in the top `pool`; 0 = the ranking as is (default: "
                                              "the space's recommend.novelty, else 0)")
    max_per_artist: int | None = Field(None, ge=1, le=50, description="at most this many items per artist")
    artist_field: str = Field("artist", max_length=64,
                              description="metadata field naming the artist; when the space has none, each item is "
                                          "its own artist")
    pool: int | None = Field(None, ge=1, le=2000,
                             description="with diversity, novelty or max_per_artist: the candidates re-ranked, the "
                                         "top of the plain ranking; at least offset + k (default: 100, or offset + k "
                                         "when more)")
    strategy: RecommendStrategy | None = Field(
        None, description="how items are ranked: blend (z-scored fused cosine + EASE + ALS), rrf (RRF of the fused "
                          "and EASE lists), knn (the fused space's nearest to the history's mean), best_score (each "
                          "item by its largest cosine to a history item: every taste of a mixed history served); "
                          "default: the space's recommend.strategy")

    @model_validator(mode="after")
    def _some_example(self) -> "RecommendRequest":
        if self.items == [] and not self.negative:
            raise ValueError("items: give at least one item (or negative examples)")
        if self.negative_weight is not None and self.negative is None:
            raise ValueError("negative_weight applies only with negative")
        return self

    @model_validator(mode="after")
    def _pool_holds_the_page(self) -> "RecommendRequest":
        reranked = self.diversity > 0 or (self.novelty or 0) > 0 or self.max_per_artist is not None
        if reranked and self.pool is not None and self.pool < self.offset + self.k:
            raise ValueError(f"pool ({self.pool}) must be at least offset + k ({self.offset + self.k}): the list is "
                             "chosen from the pool")
        return self


class RecommendBatchRequest(_Strict):
    requests: list[RecommendRequest] = Field(min_length=1, max_length=BATCH_MAX,
                                             description="each as the body of POST /api/recommend")


class RecommendBatchResponse(BaseModel):
    results: list[HitsResponse] = Field(description="one per request, in order")
    took_ms: float


class PersonalizedSearchRequest(_UserOrItems):
    query: str = Field(min_length=1, max_length=QUERY_MAX_CHARS)
    alpha: float = Field(0.3, ge=0.0, le=1.0,
                         description="mixing weight: query = normalize((1-alpha)*text + alpha*user profile)")
    k: int = Field(10, ge=1, le=K_MAX)
    offset: int = Field(0, ge=0, le=OFFSET_MAX)
    filters: Filters = Field(default_factory=Filters)
    exclude_seen: bool = False


class PersonalizedSearchResponse(HitsResponse):
    alpha: float


class ContinueRequest(_Strict):
    items: list[ItemId] = Field(min_length=1, max_length=SEEDS_MAX, description="the playlist so far, in order")
    k: int = Field(10, ge=1, le=PLAYLIST_MAX)
    recency: float = Field(0.7, gt=0.0, le=1.0, description="seed i weighs recency**(n-1-i): later seeds count more")
    diversity: float = Field(0.0, ge=0.0, lt=1.0, description="MMR trade-off; 0 = pure similarity")
    max_per_artist: int | None = Field(None, ge=1, le=50,
                                       description="at most this many items per artist (artist diversity)")
    artist_field: str = Field("artist", max_length=64,
                              description="metadata field naming the artist; when the space has none, each item is "
                                          "its own artist (catalogs of artists)")
    method: Literal["auto", "knn", "session"] = Field(
        "auto", description="knn: the seeds' recency-weighted mean vector; session: the attached session model "
                            "(kNN for seeds it does not know); auto: session where one is attached")
    filters: Filters = Field(default_factory=Filters)


class ContinueResponse(BaseModel):
    items: list[Hit]
    score_kind: ScoreKind = Field("cosine", description=SCORE_KIND_DESCRIPTION)
    seeds: list[str]
    coherence: float | None = Field(None, description="mean pairwise cosine of seeds + continuation (fused space)")
    coherence_seeds: float | None = Field(None, description="the same for the seeds alone")
    notes: list[str] = Field(default_factory=list)
    took_ms: float


class GenerateRequest(_Strict):
    query: str = Field(min_length=1, max_length=QUERY_MAX_CHARS)
    n: int = Field(20, ge=1, le=PLAYLIST_MAX)
    coherence: float = Field(0.5, ge=0.0, le=1.0,
                             description="weight of coherence vs relevance in the greedy walk, a number in [0, 1] "
                                         "(0 = plain top-n)")
    pool: int = Field(200, ge=1, le=2000, description="candidates: the query's nearest items; at least n")
    filters: Filters = Field(default_factory=Filters)

    @model_validator(mode="after")
    def _pool_holds_n(self) -> "GenerateRequest":
        if self.pool < self.n:
            raise ValueError(f"pool ({self.pool}) must be at least n ({self.n}): the playlist is chosen from the pool")
        return self


class PlaylistStats(BaseModel):
    coherence: float | None = Field(None, description="mean pairwise cosine of the playlist's items (fused space)")
    relevance: float | None = Field(None, description="mean cosine of the playlist's items to the query")
    coherence_plain_topn: float | None = Field(None, description="coherence of the plain top-n search results")
    relevance_plain_topn: float | None = Field(None, description="relevance of the plain top-n search results")


class GenerateResponse(BaseModel):
    items: list[Hit]
    score_kind: ScoreKind = Field(description=SCORE_KIND_DESCRIPTION)
    stats: PlaylistStats
    coherence_measure: str
    took_ms: float


class VectorQuery(_Strict):
    modality: str = Field(min_length=1, max_length=64)
    vector: list[float] = Field(min_length=1, max_length=VECTOR_MAX_DIM,
                                description="a raw vector in the modality's input space (as in the catalog); the "
                                            "build's standardization is applied by the service")
    k: int = Field(10, ge=1, le=K_MAX)
    offset: int = Field(0, ge=0, le=OFFSET_MAX)
    filters: Filters = Field(default_factory=Filters)


MetaValue = str | int | float | bool | list[str] | None


class ItemIn(_Strict):
    item_id: str = Field(min_length=1, max_length=200, pattern=r"^\S",
                         description="new id (insert) or existing id (update); not '.' or '..'")
    name: str = Field(min_length=1, max_length=300)
    tags: list[str] | dict[str, list[str]] | None = Field(
        None, description="tags, or {category: [tags]} (categories: genre, decade, place, mood, other)")
    description: str | None = Field(None, max_length=10_000, description="your own text; default: TEMPLATE from tags")
    vectors: dict[str, list[float] | None] | None = Field(
        None, description="{modality: raw vector} for non-text modalities; null clears the modality")
    metadata: dict[str, MetaValue] | None = Field(None, max_length=30, description="filterable fields, e.g. year")

    @model_validator(mode="after")
    def _sizes(self) -> "ItemIn":
        tags = self.tags if isinstance(self.tags, list) else [t for v in (self.tags or {}).values() for t in v]
        if len(tags) > TAGS_MAX:
            raise ValueError(f"at most {TAGS_MAX} tags per item")
        if any(len(t) > TAG_MAX_CHARS or not t.strip() for t in tags):
            raise ValueError(f"tags must be non-empty strings of at most {TAG_MAX_CHARS} characters")
        for m, v in (self.vectors or {}).items():
            if v is not None and len(v) > VECTOR_MAX_DIM:
                raise ValueError(f"vectors.{m}: at most {VECTOR_MAX_DIM} numbers")
        return self


class AddItemsRequest(_Strict):
    items: list[ItemIn] = Field(min_length=1, max_length=ADD_MAX_ITEMS)


class AddedItem(BaseModel):
    item_id: str
    modalities: list[str]
    description: str


class AddItemsResponse(BaseModel):
    added: list[AddedItem]
    items_total: int
    took_ms: float


class ItemDetail(BaseModel):
    item_id: str
    name: str
    description: str | None = None
    modalities: list[str] = Field(description="modalities this item has")
    space_modalities: list[str] = Field(description="modalities of the space")
    cold_start: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)


class ItemRef(BaseModel):
    item_id: str
    name: str


class LookupResponse(BaseModel):
    items: list[ItemRef]


class UserRef(BaseModel):
    user_id: str
    n_items: int


class UsersResponse(BaseModel):
    users: list[UserRef]


class FieldInfo(BaseModel):
    name: str
    type: Literal["numeric", "list", "text"]
    min: float | None = None
    max: float | None = None


class TagCount(BaseModel):
    tag: str
    count: int


class FacetsResponse(BaseModel):
    fields: list[FieldInfo]
    top_tags: list[TagCount]
    decades: list[str]


class FollowStatus(BaseModel):
    """A follower's state (``talkrec serve --follow``)."""

    generation: str | None = Field(description="the generation served")
    records_applied: int = Field(description="log records applied since it started")
    generations_loaded: int = Field(description="compactions followed since it started")
    last_load_s: float = Field(description="seconds the last generation took to load (0: none yet)")
    recent_loads: list[tuple[float, float]] = Field(
        description="the last 16 generation loads: [started at (Unix time), seconds], oldest first")
    behind_s: float = Field(description="seconds since it last read the writer's files")
    error: str | None = Field(description="why the last catch-up failed (retried), or null")


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"] = Field(description="'degraded': the space answers reads, and `problems` says "
                                                          "what is wrong (the status code stays 200: it is alive)")
    problems: list[str] = Field(default_factory=list, description="log damage recovered at load, writes refused "
                                                                  "since one could not be made durable, the last "
                                                                  "background compaction's failure")
    items: int
    uptime_s: float
    follows: FollowStatus | None = Field(None, description="on a read-only follower: what it has applied")


class VersionResponse(BaseModel):
    talkrec: str
    api: str
    space: dict[str, Any]
