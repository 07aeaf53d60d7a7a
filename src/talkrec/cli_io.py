"""What the ``talkrec`` command reads and prints besides its options: the consoles (results on
stdout, errors on stderr), hit tables, the records file of ``talkrec add`` and the item lists
of ``--items`` / ``--seeds``.

Data (item names, ids, tags, a user's own values in an error) is printed as written: rich
parses markup (``[b]``) and emoji codes (``:a:``) only in the command's own text, never in
data, so data goes to rich as :class:`rich.text.Text`. Imports of rich happen on first use
(``--json`` output needs none of its tables).
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import typer

from .errors import InputError

__all__ = ["console", "err_console", "print_error", "print_hits", "read_records", "read_user_ids", "resolve_ids",
           "text"]



@functools.lru_cache(maxsize=None)
def console() -> Any:
    """rich's console for results (stdout), imported on first use."""
    from rich.console import Console
    return Console(emoji=False)


@functools.lru_cache(maxsize=None)
def err_console() -> Any:
    """rich's console for errors: stderr (stdout carries only results: ``--json`` output
    stays JSON), and no wrapping at the terminal's width (a long path stays one line)."""
    from rich.console import Console
    return Console(stderr=True, soft_wrap=True, emoji=False, highlight=False)


def text(value: Any, style: str = "") -> Any:
    """``value`` as rich text shown exactly as written (no markup, no emoji codes)."""
    from rich.text import Text
    return Text(str(value), style=style)


def print_error(error: Exception) -> None:
    """``error: MESSAGE`` on stderr, the message as written."""
    from rich.text import Text
    err_console().print(Text.assemble(("error:", "red"), " ", str(error)))


def print_hits(hits: list[Any], as_json: bool, title: str, space: Any = None, where: Any = None) -> None:
    """Hits as a JSON list (``as_json``) or a table titled ``title``, on stdout; an empty table
    says why under it (:func:`talkrec.space.browse.empty_reason` of ``space`` and its filter ``where``)."""
    if as_json:
        typer.echo(json.dumps([h.to_dict() for h in hits], ensure_ascii=False))
        return
    from rich.table import Table
    from rich.text import Text
    t = Table(title=text(title), show_lines=False)
    t.add_column("#", justify="right")
    t.add_column("item")
    t.add_column("score", justify="right")
    t.add_column("tags / metadata", overflow="fold")
    for i, h in enumerate(hits, start=1):
        md = h.metadata
        extra = ", ".join(map(str, (md.get("tags") or md.get("genres") or [])[:6]))
        t.add_row(str(i), Text.assemble(str(h.name), (f" ({h.item_id})", "dim")), f"{h.score:.3f}", text(extra))
    console().print(t)
    if not hits:
        from .space.browse import empty_reason
        console().print(text(empty_reason(space, where) if space is not None else "no results"))


def read_user_ids(file: Path) -> list[tuple[int, str]]:
    """``(line number, user id)`` of each non-blank line of ``file`` (``-``: stdin), the id
    with its surrounding whitespace removed."""
    import sys
    if str(file) == "-":
        lines = sys.stdin.read().splitlines()
    else:
        if not file.is_file():
            raise InputError("not found, or not a file; expected user ids, one a line", path=str(file))
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read it as UTF-8 text ({e})", path=str(file)) from None
    ids = [(n, line.strip()) for n, line in enumerate(lines, start=1) if line.strip()]
    if not ids:
        raise InputError("no user ids in it (one a line)", path=str(file))
    return ids


def read_records(file: Path) -> list[dict[str, Any]]:
    """The item records of ``talkrec add``'s file: a ``.json`` file holding a list of records
    (JSON objects) or one record, or any other file holding JSONL, one record a line."""
    from .data.tables import json_kind, jsonl_objects      # pandas: only for this command

    if not file.exists():
        raise InputError("file not found", path=str(file))
    if not file.is_file():
        raise InputError("not a file; expected a JSON or JSONL file of item records", path=str(file))
    try:
        body = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read it as UTF-8 text ({e})", path=str(file)) from None
    if file.suffix == ".json":
        try:
            recs = json.loads(body)
        except json.JSONDecodeError as e:
            raise InputError(f"invalid JSON: {e.msg} (line {e.lineno})", path=str(file)) from None
        if isinstance(recs, dict):
            return [recs]
        if not isinstance(recs, list):
            raise InputError(f"expected a JSON list of item records (objects such as {{\"item_id\": ..., "
                             f"\"name\": ...}}) or one record, got a {json_kind(recs)}", path=str(file))
        for i, r in enumerate(recs, start=1):
            if not isinstance(r, dict):
                raise InputError(f"record {i} of the list is a {json_kind(r)}; expected an item record (a JSON object)",
                                 path=str(file))
        return recs
    return jsonl_objects(body.splitlines(), str(file))


def resolve_ids(space: Any, value: str) -> list[str]:
    """The item ids of a comma-separated list of ids or names (``--items``, ``--seeds``).

    An id or name that holds commas is found too: where a piece is not an item, it is joined
    with the pieces after it, comma by comma, until the joined text is one (``AC,DC,x``: the
    items ``AC,DC`` and ``x``). A piece that is an item on its own is taken alone, as before;
    when that leaves a piece that is no item, the whole text is tried as one id or name
    before the piece is reported unknown."""
    from .errors import NotFoundError

    parts = value.split(",")
    out: list[str] = []
    i = 0
    try:
        while i < len(parts):
            if not parts[i].strip():
                i += 1
                continue
            for j in range(i + 1, len(parts) + 1):
                iid = _item(space, ",".join(parts[i:j]).strip())
                if iid is not None:
                    out.append(iid)
                    i = j
                    break
            else:
                space.resolve(parts[i].strip())            # raises: the piece that is no item
                i += 1
    except NotFoundError:
        whole = _item(space, value.strip()) if len(parts) > 1 else None
        if whole is None:
            raise
        return [whole]
    return out


def _item(space: Any, ref: str) -> str | None:
    """The id of item ``ref`` (as :meth:`~talkrec.space.Space.resolve` finds it), ``None`` for
    none: without the error's suggestions, which cost ~40 ms a piece on Last.fm."""
    from .space.browse import lookup
    return lookup(space.index, ref)
