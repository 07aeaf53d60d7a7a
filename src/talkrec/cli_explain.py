"""``talkrec explain``: why B is next to A in ``similar``, why A is a hit for a search
(``--query``), or why A is recommended from a history (``--user`` / ``--items``), printed as text
(``--json``: as the HTTP API's ``/api/explain`` routes return it; :mod:`talkrec.space.explain`)."""
from __future__ import annotations

import json
from typing import Any, Optional

import typer

from .cli_common import JsonOpt, SpaceOpt, load, not_with, run
from .cli_io import console, resolve_ids, text
from .errors import TalkrecError

__all__ = ["explain"]

#: what each list ``similar`` or hybrid search fuses is, in words (:mod:`talkrec.space.explain`)
LIST_NAMES = {"fused": "fused space (cosine)", "cf": "interactions (EASE)", "content": "content (a cold item's own)",
              "lexical": "words (BM25)", "text": "text model (cosine)", "name": "names (BM25)"}
#: the terms of a recommendation's score, in words (:func:`talkrec.space.explain.explain_recommend`)
PART_NAMES = {"fused": "fused space (z-score)", "ease": "EASE (z-score)", "als": "ALS (z-score)",
              "cold": "cold item's boost and prior", "cf": "interactions (EASE list)"}


def explain(a: str = typer.Argument(..., metavar="A", help="Item id or exact name (with --query / --user / --items: "
                                                                  "the item explained)."),
            b: Optional[str] = typer.Argument(None, metavar="[B]", help="Item id or exact name: why it is next to A."),
            query: Optional[str] = typer.Option(None, "--query", "-q", help="Why A is a hit for this search instead."),
            mode: Optional[str] = typer.Option(None, help="With --query: multi | text | lexical | hybrid "
                                                           "(default: the space's)."),
            user: Optional[str] = typer.Option(None, "--user", help="Why A is recommended to this user instead."),
            items: Optional[str] = typer.Option(None, "--items", help="Why A is recommended from these items instead "
                                                                       "(comma-separated ids or names)."),
            negative: Optional[str] = typer.Option(None, "--negative", help="With --user / --items: items not wanted, "
                                                                              "as in talkrec recommend."),
            negative_weight: Optional[float] = typer.Option(None, "--negative-weight", min=0.0,
                                                            help="With --negative: their weight (default: the "
                                                                 "space's)."),
            strategy: Optional[str] = typer.Option(None, help="With --user / --items: as in talkrec recommend."),
            space: str = SpaceOpt, as_json: bool = JsonOpt) -> None:
    """Why B is next to A: its place in A's similar list (each fused list's part), the fused
    cosine by modality pair, the shared tags. With --query: why A is a hit for that search; with
    --user or --items: why A is recommended from that history."""
    def go() -> None:
        given = [o for o, v in (("B", b), ("--query", query), ("--user", user), ("--items", items)) if v is not None]
        if len(given) != 1:
            raise TalkrecError("give one of B (why B is next to A), --query TEXT (why A is a hit for it), "
                               "--user or --items (why A is recommended from that history)"
                               + (f"; got {' and '.join(given)}" if given else ""))
        not_with({"--mode": mode is not None}, query is None, "applies only with --query")
        not_with({"--negative": negative is not None}, user is None and items is None, "applies only with --user or --items")
        not_with({"--negative-weight": negative_weight is not None}, negative is None, "applies only with --negative")
        not_with({"--strategy": strategy is not None}, user is None and items is None, "applies only with --user or --items")
        s = load(space)
        if b is not None:
            ex = s.explain(s.resolve(a), s.resolve(b))
        elif query is not None:
            ex = s.explain_search(query, s.resolve(a), mode=mode)
        else:
            ex = s.explain_recommend(s.resolve(a), user=user, items=resolve_ids(s, items) if items is not None else None,
                                     negative=resolve_ids(s, negative) if negative is not None else None,
                                     negative_weight=negative_weight, strategy=strategy)
        if as_json:
            typer.echo(json.dumps(ex, indent=2, ensure_ascii=False))
        else:
            (print_explanation if b is not None else print_search_explanation if query is not None
             else print_recommend_explanation)(ex)
    run(go)


def print_explanation(ex: dict[str, Any]) -> None:
    """:meth:`Space.explain`'s answer as text: where ``b`` stands in ``a``'s similar list as
    served (each fused list's rank and part), the fused cosine by modality pair, the shared tags."""
    from rich.table import Table
    from rich.text import Text
    a, b, served = ex["names"]["a"], ex["names"]["b"], ex["similar"]
    out = console()
    out.print(Text.assemble((b, "bold"), (f" ({ex['b']})", "dim"), " next to ", (a, "bold"), (f" ({ex['a']})", "dim")))
    place = (f"#{served['rank']} of {a}'s similar items, score {served['score']:.4f}" if served["rank"]
             else f"not in {a}'s first 200 similar items")
    how = "reciprocal rank fusion of the lists below" if served["strategy"] == "rrf" else "the fused space's cosine"
    novelty = f", novelty {served['novelty']:g}" if served["novelty"] else ""
    out.print(text(f"served: {place} ({how}{novelty})"))
    _print_lists(served["lists"])
    out.print(text(f"fused-space cosine {ex['cosine']:.3f}" + (", by modality pair:" if ex["modality_contributions"] else "")))
    if ex["modality_contributions"]:
        t = Table(show_header=False, box=None, padding=(0, 2, 0, 2))
        t.add_column()
        t.add_column(justify="right")
        t.add_column(justify="right")
        cos = ex["cosine"]        # shares as percentages only of a clearly positive cosine
        for pair, v in ex["modality_contributions"].items():
            t.add_row(text(pair.replace("~", " ~ ")), f"{v:.3f}", f"{100 * v / cos:.0f}%" if cos > 0.1 else "")
        out.print(t)
    tags = ex["shared_tags"]
    out.print(text(f"shared tags ({len(tags)}): {', '.join(tags)}" if tags else "no shared tags"))


def print_search_explanation(ex: dict[str, Any]) -> None:
    """:meth:`Space.explain_search`'s answer as text: the item's place in the search as served
    (each hybrid list's rank and part), the query's BM25 terms it matches, the fused cosine."""
    from rich.text import Text
    out = console()
    out.print(Text.assemble((ex["name"], "bold"), (f" ({ex['item']})", "dim"), " for ", (repr(ex["query"]), "bold")))
    place = (f"#{ex['rank']} of the search's results, score {ex['score']:.4f}" if ex["rank"]
             else "not in the search's first 200 results")
    out.print(text(f"served: {place} (mode {ex['mode']}, scores: {ex['score_kind']})"))
    _print_lists(ex["lists"])
    terms = ", ".join(f"{t['term']} {t['score']:.2f}" if t["score"] >= 0.005 else f"{t['term']} {t['score']:.1e}"
                      for t in ex["terms"])             # a word most items have: its part is next to nothing
    out.print(text(f"query words it has (BM25): {terms}" if terms else "it has none of the query's words (BM25)"))
    out.print(text(f"fused-space cosine to the query {ex['cosine']:.3f}"))


def print_recommend_explanation(ex: dict[str, Any]) -> None:
    """:meth:`Space.explain_recommend`'s answer as text: the item's place in the recommendations
    as served, each term of its score, and the history items most like it."""
    from rich.table import Table
    from rich.text import Text
    out = console()
    out.print(Text.assemble((ex["name"], "bold"), (f" ({ex['item']})", "dim"), " recommended"))
    place = (f"#{ex['rank']} of the recommendations, score {ex['score']:.4f}" if ex["rank"] else
             "in the history (left out of the recommendations)" if ex["in_history"] else
             "a negative example (never recommended)" if ex["in_negative"] else "not in the first 200 recommendations")
    novelty = f", novelty {ex['novelty']:g}" if ex["novelty"] else ""
    out.print(text(f"served: {place} (strategy {ex['strategy']}{novelty})"))
    parts = [pt for pt in ex["parts"] if pt["part"] != "cold" or pt["value"]]      # a cold term only where it acts
    if parts:
        ranked = ex["strategy"] == "rrf"
        t = Table(show_header=True, box=None, padding=(0, 2, 0, 2))
        for col in ("term", "rank", "weight", "value") if ranked else ("term", "weight", "value"):
            t.add_column(col, justify="left" if col == "term" else "right")
        for pt in parts:
            row = [PART_NAMES.get(pt["part"], pt["part"]), "" if pt["weight"] is None else f"{pt['weight']:g}",
                   f"{pt['value']:.4f}"]
            t.add_row(*(row[:1] + [str(pt["rank"]) if pt["rank"] else "-"] + row[1:] if ranked else row))
        out.print(t)
    if not ex["because"]:
        return
    out.print(text("because of (the history items most like it):"))
    t = Table(show_header=True, box=None, padding=(0, 2, 0, 2))
    for col, just in (("item", "left"), ("cosine", "right"), ("EASE", "right"), ("ALS", "right")):
        t.add_column(col, justify=just)          # type: ignore[arg-type]
    num = lambda v: "-" if v is None else f"{v:.3f}"                                    # noqa: E731
    for r in ex["because"]:
        t.add_row(Text.assemble(str(r["name"]), (f" ({r['item_id']})", "dim")), num(r["cosine"]), num(r["ease"]),
                  num(r["als"]))
    out.print(t)


def _print_lists(lists: list[dict[str, Any]]) -> None:
    """The lists an RRF score fuses: each one's rank of the item, weight and part of the score."""
    if not lists:
        return
    from rich.table import Table
    t = Table(show_header=True, box=None, padding=(0, 2, 0, 2))
    for col, just in (("list", "left"), ("rank", "right"), ("weight", "right"), ("part", "right")):
        t.add_column(col, justify=just)      # type: ignore[arg-type]
    for li in lists:
        t.add_row(LIST_NAMES.get(li["list"], li["list"]), str(li["rank"]) if li["rank"] else "-",
                  f"{li['weight']:g}", f"{li['part']:.4f}")
    console().print(t)
