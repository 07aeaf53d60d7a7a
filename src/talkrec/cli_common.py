"""What every ``talkrec`` command module shares: the common options (space, k, filters,
``--json``), loading a space, the filter options as the service takes them, and the runner
that turns a :class:`~talkrec.errors.TalkrecError` into ``error: ...`` on stderr and exit
status 2. Kept free of heavy imports: ``talkrec --help`` loads no model."""
from __future__ import annotations

import os
from typing import Any, Callable, Optional

import typer

from .cli_io import print_error
from .errors import TalkrecError
from .limits import K_MAX, OFFSET_MAX

__all__ = ["DEFAULT_SPACE", "DecadeOpt", "JsonOpt", "KOpt", "OffsetOpt", "RangeOpt", "SpaceOpt", "TagOpt", "WhereOpt",
           "load", "not_with", "run", "where_of"]

DEFAULT_SPACE = os.environ.get("TALKREC_SPACE", "spaces/lastfm")

SpaceOpt = typer.Option(DEFAULT_SPACE, "--space", "-s", help="Built space folder (env TALKREC_SPACE).")
KOpt = typer.Option(10, "--k", "-k", min=1, max=K_MAX, help=f"Number of results (at most {K_MAX}, as in the API).")
WhereOpt = typer.Option(None, "--where", "-w", help="Filters, e.g. 'tag=metal,year>=1990'.")
TagOpt = typer.Option(None, "--tag", help="Repeatable: items must carry all these tags.")
DecadeOpt = typer.Option(None, "--decade", help="A decade, e.g. 80s or 1980s.")
RangeOpt = typer.Option(None, "--range", help="Repeatable numeric range FIELD:MIN:MAX (a bound may be empty).")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON.")
OffsetOpt = typer.Option(0, "--offset", min=0, max=OFFSET_MAX,
                         help=f"Skip this many results first: the next page (at most {OFFSET_MAX}, as in the API).")


def load(space: str) -> Any:
    """The built space in folder ``space``."""
    from .space import Space
    return Space.load(space)


def where_of(space: Any, where: Optional[str], tags: Optional[list[str]] = None, decade: Optional[str] = None,
             ranges: Optional[list[str]] = None) -> Any:
    """The filter options as the service takes them, translated for this space."""
    from .index.filters import FilterSpec, parse_range
    bounds = {f: (lo, hi) for f, lo, hi in map(parse_range, ranges or [])}
    return space.filter_where(FilterSpec(tags=tags or [], decade=decade, ranges=bounds, where=where))


def run(fn: Callable[[], None]) -> None:
    """``fn()``; a talkrec error is printed on stderr as written (stdout carries only
    results) and the command exits with status 2."""
    try:
        fn()
    except TalkrecError as e:
        print_error(e)
        raise typer.Exit(2) from None


def not_with(given: dict[str, bool], refused: bool, why: str) -> None:
    """A clear error for options given where they do nothing (they were ignored)."""
    names = [o for o, on in given.items() if on]
    if names and refused:
        raise TalkrecError(f"{', '.join(names)}: {why}")
