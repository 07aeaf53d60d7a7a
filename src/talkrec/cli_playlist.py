"""``talkrec playlist``: generate a playlist from text, or continue one from seed items, with
the options of the HTTP API's ``/api/playlists/generate`` and ``/api/playlists/continue``.
``--json`` prints what those routes return (less ``took_ms``): the items and how coherent
the playlist is, not only the items."""
from __future__ import annotations

import json
from typing import Any, Optional

import typer

from ._atomic import strict_json
from .cli_common import DecadeOpt, JsonOpt, RangeOpt, SpaceOpt, TagOpt, WhereOpt, load, not_with, run, where_of
from .cli_io import console, print_hits, resolve_ids, text
from .errors import TalkrecError
from .limits import PLAYLIST_MAX

__all__ = ["playlist"]


def playlist(words: Optional[str] = typer.Argument(None, metavar="[TEXT]", help="Generate from this text (as "
                                                                                "--query)."),
             query: Optional[str] = typer.Option(None, "--query", "-q", help="Generate from text."),
             seeds: Optional[str] = typer.Option(None, "--seeds", help="Continue these comma-separated items."),
             n: int = typer.Option(20, min=1, max=PLAYLIST_MAX, help=f"Playlist length (at most {PLAYLIST_MAX}, "
                                                                     "as in the API)."),
             space: str = SpaceOpt, where: Optional[str] = WhereOpt, tag: Optional[list[str]] = TagOpt,
             decade: Optional[str] = DecadeOpt, range_: Optional[list[str]] = RangeOpt,
             coherence: Optional[float] = typer.Option(None, help="With --query: 0 = pure relevance, towards 1 = more "
                                                                  "coherent (default 0.5)."),
             pool: Optional[int] = typer.Option(None, help="With --query: candidates, the query's nearest items; at "
                                                           "least --n (default 200)."),
             method: Optional[str] = typer.Option(None, help="With --seeds: auto | knn | session (attached session "
                                                             "model; default auto)."),
             diversity: Optional[float] = typer.Option(None, help="With --seeds: MMR diversity in [0, 1) (default 0)."),
             recency: Optional[float] = typer.Option(None, help="With --seeds: seed i weighs recency**(n-1-i), in "
                                                                "(0, 1] (default 0.7)."),
             max_per_artist: Optional[int] = typer.Option(None, help="With --seeds: at most this many items per "
                                                                     "artist."),
             artist_field: Optional[str] = typer.Option(None, help="With --seeds: the field naming the artist "
                                                                   "(default artist)."),
             as_json: bool = JsonOpt) -> None:
    """Generate a playlist from text, or continue one from seed items."""
    def go() -> None:
        if words is not None and query is not None:
            raise TalkrecError("give the text once: as TEXT or as --query")
        query_ = query if words is None else words
        if (query_ is None) == (seeds is None):
            raise TalkrecError("give exactly one of TEXT (or --query) or --seeds")
        not_with({"--method": method is not None, "--diversity": diversity is not None,
                  "--recency": recency is not None, "--max-per-artist": max_per_artist is not None,
                  "--artist-field": artist_field is not None}, query_ is not None,
                 "continue a playlist: they apply only with --seeds")
        not_with({"--coherence": coherence is not None, "--pool": pool is not None}, seeds is not None,
                 "applies only with --query")
        s = load(space)
        w = where_of(s, where, tag, decade, range_)
        if query_ is not None:
            _generate(s, query_, n, w, coherence, pool, as_json)
        else:
            c = s.continuation(resolve_ids(s, seeds or ""), n, where=w, method=method or "auto",
                               diversity=0.0 if diversity is None else diversity,
                               recency=0.7 if recency is None else recency, max_per_artist=max_per_artist,
                               artist_field=artist_field or "artist")
            _print_continuation(c, method or "auto", as_json)
    run(go)


def _generate(s: Any, query: str, n: int, w: Any, coherence: Optional[float], pool: Optional[int],
              as_json: bool) -> None:
    """A playlist for ``query``: its items, then its coherence and relevance next to the plain
    top-n's."""
    from .space.search import search_score_kind
    if pool is not None and pool < n:           # as the HTTP API: the playlist is chosen from the pool
        raise TalkrecError(f"--pool ({pool}) must be at least --n ({n}): the playlist is chosen from the pool")
    hits, stats = s.generate_playlist(query, n, where=w, coherence=0.5 if coherence is None else coherence,
                                      pool=200 if pool is None else pool)
    if as_json:
        body = {"items": [h.to_dict() for h in hits], "score_kind": search_score_kind(s, None), "stats": stats}
        typer.echo(json.dumps(strict_json(body), ensure_ascii=False))
        return
    nan = float("nan")
    console().print(f"coherence {stats.get('coherence', nan):.3f} (plain top-{n}: "
                    f"{stats.get('coherence_plain_topn', nan):.3f}), relevance {stats.get('relevance', nan):.3f}")
    print_hits(hits, False, f'playlist: "{query}"')


def _print_continuation(c: Any, method: str, as_json: bool) -> None:
    """A continuation: its items, the coherence before and after, and its notes."""
    if as_json:
        body = {"items": [h.to_dict() for h in c.items], "score_kind": c.score_kind, "seeds": c.seeds,
                "coherence": c.coherence, "coherence_seeds": c.coherence_seeds, "notes": c.notes}
        typer.echo(json.dumps(strict_json(body), ensure_ascii=False))
        return
    fmt = (lambda v: "-" if v is None else f"{v:.3f}")
    console().print(f"coherence {fmt(c.coherence)} (seeds alone: {fmt(c.coherence_seeds)})")
    for note in c.notes:
        console().print(text(f"note: {note}", "dim"))
    print_hits(c.items, False, f"playlist continuation ({method}; scores: {c.score_kind})")
