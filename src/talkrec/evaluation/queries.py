"""Natural-language retrieval queries from tag sets (paper 001 section 3.1, Table 2).

A query is a set of 1 to 3 tags that at least ``min_support`` items carry together,
worded through one of many templates ("Find me some {tags} music from the {decade}").
Relevant items = the items that carry *all* the tags (a tag counts on an item when its
weight, e.g. the number of users who applied it, is at least ``min_weight``).

Query sets are generated with a seed and stored as versioned JSONL files
(``evaluation/querysets/<dataset>-v<N>.jsonl`` plus ``.meta.json``), so that every run
and every system sees the same queries. The LLM paraphrasing of the paper is optional and
not applied by default (the templates are varied instead).
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .splits import split_val_test

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1

#: Tags that describe the listener, not the item; never used in queries.
STOP_TAGS = frozenset({
    "seen live", "favorite", "favorites", "favourite", "favourites", "my favorite", "my favorites",
    "albums i own", "love", "loved", "awesome", "amazing", "beautiful", "cool", "good", "great", "best",
    "check out", "to listen", "spotify", "under 2000 listeners", "in netflix queue", "owned", "dvd",
    "watched", "seen", "to see", "bd-r", "clv", "fun", "favorite artists", "favourite artists",
})

MUSIC_TEMPLATES: tuple[str, ...] = (
    "Find me some {tags} music{decade}.",
    "I want to listen to {tags} artists{decade}.",
    "Can you recommend {tags} bands{decade}?",
    "Play something {tags}{decade}.",
    "Looking for artists that are {tags}{decade}.",
    "Who are some good {tags} musicians{decade}?",
    "Suggest {tags} music for tonight{decade}.",
    "I'm in the mood for {tags} songs{decade}.",
    "Give me a list of {tags} acts{decade}.",
    "Any {tags} artists{decade} you would suggest?",
    "Show me artists described as {tags}{decade}.",
    "What should I put on if I like {tags} music{decade}?",
    "Recommend me a few {tags} artists{decade}, please.",
    "Music that sounds {tags}{decade}.",
    "I need a playlist of {tags} artists{decade}.",
    "Artists tagged {tags}{decade}.",
    "Discover {tags} music{decade}.",
    "Help me find {tags} bands{decade} I might like.",
    "Which artists make {tags} music{decade}?",
    "Something {tags}{decade} for a long drive.",
    "Find musicians known for {tags}{decade}.",
    "Can you list some {tags} performers{decade}?",
    "I love {tags} music{decade}. What else is there?",
    "Top {tags} artists{decade}",
    "{tags} music{decade}",
)

MOVIE_TEMPLATES: tuple[str, ...] = (
    "Find me some {tags} movies{decade}.",
    "Can you list films that are {tags}{decade}?",
    "I'm in the mood for a {tags} film{decade}. What do you suggest?",
    "Recommend a {tags} movie{decade} for tonight.",
    "Show me {tags} films{decade}.",
    "What are good {tags} movies{decade}?",
    "Looking for movies described as {tags}{decade}.",
    "Any {tags} films{decade} worth watching?",
    "Suggest some {tags} cinema{decade}.",
    "I want to watch something {tags}{decade}.",
    "Give me a list of {tags} movies{decade}.",
    "Movies tagged {tags}{decade}.",
    "Which films are {tags}{decade}?",
    "Help me find a {tags} movie{decade} for movie night.",
    "Films about {tags}{decade}.",
    "Can you find me {tags} pictures{decade}?",
    "Top {tags} movies{decade}",
    "A good {tags} film{decade}, please.",
    "I loved a {tags} movie{decade}; what else is like that?",
    "{tags} movies{decade}",
)

DECADE_CATEGORIES = frozenset({"decade"})


@dataclass
class Query:
    qid: str
    text: str
    tags: list[str]
    split: str
    template: int
    n_relevant: int
    categories: list[str] = field(default_factory=list)


def item_tag_sets(tags: pd.DataFrame, *, min_weight: float, categories: Sequence[str] | None = None
                  ) -> dict[str, set[str]]:
    """``{item_id: {tag}}`` with tags of weight >= ``min_weight`` (and in ``categories``)."""
    t = tags[tags["weight"] >= min_weight]
    if categories is not None:
        t = t[t["category"].isin(list(categories))]
    return {str(k): set(v) for k, v in t.groupby("item_id")["tag"]}


def relevant_items(tag_set: Sequence[str], item_tags: Mapping[str, set[str]]) -> list[str]:
    """Items carrying every tag of ``tag_set`` (sorted ids)."""
    need = set(tag_set)
    return sorted(i for i, ts in item_tags.items() if need <= ts)


def _join(words: Sequence[str]) -> str:
    words = list(words)
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def word_query(tag_set: Sequence[str], tag_category: Mapping[str, str], template: str) -> str:
    """Fill ``template``: decade tags go to ``{decade}`` ("from the 80s"), others to ``{tags}``."""
    dec = [t for t in tag_set if tag_category.get(t) in DECADE_CATEGORIES]
    rest = [t for t in tag_set if t not in dec]
    if not rest:  # only decades: they become the descriptors
        rest, dec = dec, []
    decade = f" from the {_join(dec)}" if dec else ""
    text = template.format(tags=_join(rest), decade=decade)
    text = re.sub(r"\b([Aa]) ([aeiouAEIOU])", r"\1n \2", text)   # "a action movie" -> "an action movie"
    return text[0].upper() + text[1:]


def generate_queries(tags: pd.DataFrame, *, n_sets: int, min_support: int = 30, min_weight: float = 1.0,
                     categories: Sequence[str] | None = None, templates: Sequence[str] = MUSIC_TEMPLATES,
                     max_size: int = 3, val_fraction: float = 0.25, random_state: int = 0,
                     item_ids: Sequence[str] | None = None) -> list[Query]:
    """Draw ``n_sets`` distinct tag sets (sizes 1..``max_size`` uniformly, where feasible)
    with at least ``min_support`` items carrying all their tags, and word each with a
    seeded random template. Splits val/test by tag set (:func:`split_val_test`)."""
    if item_ids is not None:
        keep = set(map(str, item_ids))
        tags = tags[tags["item_id"].astype(str).isin(keep)]
    it = item_tag_sets(tags, min_weight=min_weight, categories=categories)
    tag_cat = (tags.sort_values("weight", ascending=False).drop_duplicates("tag")
               .set_index("tag")["category"].astype(str).to_dict())
    by_tag: dict[str, set[str]] = {}
    for i, ts in it.items():
        for t in ts:
            if t not in STOP_TAGS and len(t) > 1:
                by_tag.setdefault(t, set()).add(i)
    cands = sorted(t for t, s in by_tag.items() if len(s) >= min_support)
    if not cands:
        raise ValueError(f"no tag has {min_support} items; lower min_support")
    rng = np.random.default_rng(random_state)
    seen: set[tuple[str, ...]] = set()
    out: list[Query] = []
    attempts = 0
    while len(out) < n_sets and attempts < n_sets * 200:
        attempts += 1
        size = int(rng.integers(1, max_size + 1))
        chosen = [cands[int(rng.integers(len(cands)))]]
        items = set(by_tag[chosen[0]])
        ok = True
        while len(chosen) < size:
            has_decade = any(tag_cat.get(c) in DECADE_CATEGORIES for c in chosen)
            co = [t for t in cands if t not in chosen and len(items & by_tag[t]) >= min_support
                  and not (has_decade and tag_cat.get(t) in DECADE_CATEGORIES)]
            if not co:
                ok = False
                break
            t = co[int(rng.integers(len(co)))]
            chosen.append(t)
            items &= by_tag[t]
        if not ok or len(items) < min_support:
            continue
        key = tuple(sorted(chosen))
        if key in seen:
            continue
        seen.add(key)
        ti = int(rng.integers(len(templates)))
        out.append(Query(qid="", text=word_query(chosen, tag_cat, templates[ti]), tags=list(key), split="",
                         template=ti, n_relevant=len(items), categories=[tag_cat.get(t, "") for t in key]))
    splits = split_val_test(["|".join(q.tags) for q in out], val_fraction=val_fraction, random_state=random_state)
    for n, q in enumerate(out):
        q.qid = f"q{n:04d}"
        q.split = splits["|".join(q.tags)]
    log.info("generated %d queries (%d val) from %d candidate tags", len(out),
             sum(q.split == "val" for q in out), len(cands))
    return out


def save_queries(queries: Sequence[Query], path: str | Path, meta: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``path`` (JSONL, one query a line) and ``path.meta.json`` (recipe + sha256)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(json.dumps(asdict(q), ensure_ascii=False, sort_keys=True) + "\n" for q in queries)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(path)
    m = dict(meta)
    m.update({"generator_version": GENERATOR_VERSION, "n_queries": len(queries),
              "n_val": sum(q.split == "val" for q in queries), "sha256": hashlib.sha256(body.encode()).hexdigest()})
    Path(str(path) + ".meta.json").write_text(json.dumps(m, indent=2, sort_keys=True), encoding="utf-8")
    return m


def load_queries(path: str | Path) -> tuple[list[Query], dict[str, Any]]:
    """Read a query set and its metadata; checks the stored sha256."""
    path = Path(path)
    body = path.read_text(encoding="utf-8")
    meta_p = Path(str(path) + ".meta.json")
    meta = json.loads(meta_p.read_text(encoding="utf-8")) if meta_p.exists() else {}
    if meta.get("sha256") and meta["sha256"] != hashlib.sha256(body.encode()).hexdigest():
        raise ValueError(f"{path}: content does not match the sha256 in {meta_p.name}")
    qs = [Query(**json.loads(line)) for line in body.splitlines() if line.strip()]
    return qs, meta
