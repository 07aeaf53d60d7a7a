"""The ``talkrec`` command line."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional

import typer

from .cli_common import (DecadeOpt, JsonOpt, KOpt, OffsetOpt, RangeOpt, SpaceOpt, TagOpt, WhereOpt,
                         load as _load, not_with as _not_with, run as _run, where_of as _where)
from .cli_explain import explain
from .cli_playlist import playlist
from .cli_io import console as _console, print_hits as _print_hits, read_records, read_user_ids, resolve_ids, text
from .errors import TalkrecError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="talkrec: one embedding space for recommendation and natural-language search.")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def _write(space: str, fn: Any) -> Any:
    """``fn(space)`` on a loaded space, then close it (its writer lock is released at once,
    also when the CLI runs inside another process, as in tests)."""
    s = _load(space)
    try:
        return fn(s)
    finally:
        s.close()


@app.command()
def build(config: Path = typer.Argument(..., help="YAML config (see configs/)."),
          output: Optional[str] = typer.Option(None, help="Override the output folder."),
          data_root: Optional[str] = typer.Option(None, help="Override the data root."),
          max_items: Optional[int] = typer.Option(None, min=1,
                                                 help="Keep only the N most-interacted items (quick builds)."),
          examples: bool = typer.Option(False, "--examples", help="Print the config's example queries afterwards."),
          progress: bool = typer.Option(True, help="Progress bars."),
          verbose: bool = typer.Option(True, "--verbose/--quiet")) -> None:
    """Build a space: catalog -> descriptions -> text/CF/content embeddings -> fusion -> index."""
    _setup_logging(verbose)

    def go() -> None:
        from .pipeline import build as run_build, load_config
        cfg = load_config(config, {"output": output, "data_root": data_root, "max_items": max_items})
        summary = run_build(cfg, show_progress=progress)
        from rich.table import Table
        t = Table(title=text(f"built {summary['output']}"))
        for c in ("stage", "seconds", "peak_rss_mb", "cached"):
            t.add_column(c)
        for s in summary["stages"]:
            t.add_row(s["stage"], str(s["seconds"]), str(s["peak_rss_mb"]), "yes" if s.get("cached") else "")
        _console().print(t)
        if examples:
            _examples(summary["output"], cfg.get("examples", {}))
    _run(go)


def _examples(space_dir: str, ex: dict[str, Any]) -> None:
    space = _load(space_dir)
    for q in ex.get("search", []):
        _print_hits(space.search(q, k=5), False, f'search: "{q}"')
    for name in ex.get("similar", []):
        try:
            iid = space.resolve(name)
        except TalkrecError:
            continue
        _print_hits(space.similar(iid, k=5), False, f"similar to {name}")
    for names in ex.get("recommend_items", []):
        ids = []
        for n in names:
            try:
                ids.append(space.resolve(n))
            except TalkrecError:
                pass
        if ids:
            _print_hits(space.recommend(items=ids, k=5), False, f"recommend from {', '.join(names)}")


@app.command()
def search(query: Optional[str] = typer.Argument(None, help="Natural-language query (or use --audio / --image)."),
           space: str = SpaceOpt, k: int = KOpt,
           where: Optional[str] = WhereOpt, tag: Optional[list[str]] = TagOpt, decade: Optional[str] = DecadeOpt,
           range_: Optional[list[str]] = RangeOpt, offset: int = OffsetOpt,
           mode: Optional[str] = typer.Option(None, help="multi | text | lexical | hybrid (default: the space's)."),
           user: Optional[str] = typer.Option(None, help="Personalize for this user id."),
           alpha: Optional[float] = typer.Option(None, help="Weight of the user profile (with --user; default 0.3)."),
           audio: Optional[Path] = typer.Option(None, help="Query by an audio file instead of text."),
           image: Optional[Path] = typer.Option(None, help="Query by an image file instead of text."),
           as_json: bool = JsonOpt) -> None:
    """Search the space with plain language (or an audio/image file)."""
    def go() -> None:
        _check_mode(mode, "--user" if user is not None else "--audio / --image" if audio or image else None)
        _not_with({"--alpha": alpha is not None}, user is None, "apply only with --user")
        s = _load(space)
        w = _where(s, where, tag, decade, range_)
        if audio or image:
            modality = "audio" if audio else "image"
            hits = s.search_by_media(modality, str(audio or image), k, where=w, offset=offset)
            _print_hits(hits, as_json, f"{modality} query: {audio or image}", s, w)
            return
        if not query:
            raise TalkrecError("give a query text, or --audio FILE / --image FILE")
        if user is not None:
            hits = s.personalized_search(query, user, alpha=0.3 if alpha is None else alpha, k=k, where=w, offset=offset)
        else:
            hits = s.search(query, k=k, where=w, offset=offset, mode=mode)
        _print_hits(hits, as_json, f'search: "{query}"', s, w)
    _run(go)


def _check_mode(mode: Optional[str], fused_only: Optional[str]) -> None:
    """``--mode`` is a search mode; with ``fused_only`` (the option of a search that ranks in
    the fused space only: personalized, or by an audio / image file) it can only be multi."""
    from .errors import InputError
    from .space.search import check_mode
    if mode is not None:
        check_mode(mode)
    if mode not in (None, "multi") and fused_only:
        raise InputError(f"--mode {mode} cannot be used with {fused_only}: that search ranks in the fused space "
                         "only (mode multi); leave --mode out or give --mode multi", field="mode")


@app.command()
def similar(item: str = typer.Argument(..., help="Item id or exact name."), space: str = SpaceOpt, k: int = KOpt,
            where: Optional[str] = WhereOpt, tag: Optional[list[str]] = TagOpt, decade: Optional[str] = DecadeOpt,
            range_: Optional[list[str]] = RangeOpt, offset: int = OffsetOpt,
            novelty: Optional[float] = typer.Option(None, help="Weight in [0, 1) of an item's novelty (how few users "
                                                    "have it) against its score in the top --pool (default: the "
                                                    "space's similar.novelty, else 0)."),
            pool: Optional[int] = typer.Option(None, min=1, help="With novelty: the candidates re-ranked "
                                                                 "(default 100, at least --offset + --k)."),
            as_json: bool = JsonOpt) -> None:
    """Items similar to ITEM (--novelty: less popular ones up)."""
    def go() -> None:
        from .space.popularity import novelty_setting
        s = _load(space)
        _not_with({"--pool": pool is not None}, not novelty_setting(s, "similar", novelty),
                  "applies only with --novelty (or the space's similar.novelty)")
        iid, w = s.resolve(item), _where(s, where, tag, decade, range_)
        _print_hits(s.similar(iid, k=k, where=w, offset=offset, novelty=novelty, pool=pool), as_json,
                    f"similar to {item}", s, w)
    _run(go)


@app.command()
def recommend(items: Optional[str] = typer.Option(None, "--items", help="Comma-separated item ids or names."),
              user: Optional[str] = typer.Option(None, "--user", help="A user id from the interactions."),
              users: Optional[Path] = typer.Option(None, "--users", help="A file of user ids, one a line ('-': "
                                                   "stdin): one JSON line per user, {\"user\", \"items\"}."),
              space: str = SpaceOpt, k: int = KOpt, where: Optional[str] = WhereOpt,
              tag: Optional[list[str]] = TagOpt, decade: Optional[str] = DecadeOpt,
              range_: Optional[list[str]] = RangeOpt, offset: int = OffsetOpt,
              include_seen: bool = typer.Option(False, "--include-seen", help="Keep the user's / given items."),
              diversity: float = typer.Option(0.0, help="MMR diversity in [0, 1) over the top --pool (default 0)."),
              novelty: Optional[float] = typer.Option(None, help="Weight in [0, 1) of an item's novelty (how few "
                                                      "users have it) against its score in the top --pool (default: "
                                                      "the space's recommend.novelty, else 0)."),
              max_per_artist: Optional[int] = typer.Option(None, help="At most this many items per artist."),
              artist_field: str = typer.Option("artist", help="The field naming the artist (none: each item is its "
                                                              "own)."),
              pool: Optional[int] = typer.Option(None, min=1, help="With --diversity / --novelty / --max-per-artist: "
                                                            "the candidates re-ranked (default 100, at least --offset + "
                                                            "--k)."),
              negative: Optional[str] = typer.Option(None, "--negative", help="Comma-separated items not wanted: "
                                                     "left out and weighed against the rest (--items '' for them alone)."),
              negative_weight: Optional[float] = typer.Option(None, help="Their weight (default: the space's "
                                                              "recommend.negative_weight)."),
              strategy: Optional[str] = typer.Option(None, help="blend, rrf, knn or best_score: each item by the "
                                                     "given item nearest to it (default: the space's "
                                                     "recommend.strategy)."),
              as_json: bool = JsonOpt) -> None:
    """Recommend from a list of items or a user's history (seen items excluded), away from
    --negative items; --users recommends for many users at once (an export), on one snapshot."""
    def go() -> None:
        if sum(x is not None for x in (items, user, users)) != 1:
            raise TalkrecError("give exactly one of --items, --user or --users")
        _not_with({"--negative-weight": negative_weight is not None}, negative is None, "applies only with --negative")
        from .space.popularity import novelty_setting
        s = _load(space)
        _not_with({"--pool": pool is not None}, not diversity and not novelty_setting(s, "recommend", novelty)
                  and max_per_artist is None,
                  "applies only with --diversity, --novelty (or the space's recommend.novelty) or --max-per-artist")
        opts = {"k": k, "where": _where(s, where, tag, decade, range_), "offset": offset,
                "exclude_seen": not include_seen, "diversity": diversity, "novelty": novelty,
                "max_per_artist": max_per_artist, "artist_field": artist_field, "pool": pool,
                "negative": None if negative is None else resolve_ids(s, negative), "negative_weight": negative_weight,
                "strategy": strategy}
        if users is not None:
            _recommend_users(s.pinned(), read_user_ids(users), opts)
            return
        if items is not None:
            hits = s.recommend(items=resolve_ids(s, items) if items.strip() or negative is None else [], **opts)
        else:
            hits = s.recommend(user=user, **opts)
        _print_hits(hits, as_json, f"recommendations for {items or 'user ' + str(user)}", s, opts["where"])
    _run(go)


def _recommend_users(s: Any, ids: list[tuple[int, str]], opts: dict[str, Any]) -> None:
    """One JSON line per user; an unknown user (named with its line) stops the run before
    anything is printed."""
    from .errors import NotFoundError
    lines = []
    for line, u in ids:
        try:
            hits = s.recommend(user=u, **opts)
        except NotFoundError as e:
            raise TalkrecError(f"line {line}: {e}") from None
        lines.append(json.dumps({"user": u, "items": [h.to_dict() for h in hits]}, ensure_ascii=False))
    typer.echo("\n".join(lines))


app.command()(playlist)


app.command()(explain)


@app.command()
def add(file: Path = typer.Argument(..., help="JSON or JSONL file of item records."), space: str = SpaceOpt) -> None:
    """Add or update items without retraining (cold start)."""
    def go() -> None:
        recs = read_records(file)
        out = _write(space, lambda s: s.add_items(recs))
        typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
    _run(go)


@app.command()
def remove(items: list[str] = typer.Argument(..., help="Item ids to delete."), space: str = SpaceOpt) -> None:
    """Delete items (all or none: an unknown id deletes nothing); durable when this returns."""
    def go() -> None:
        left = _write(space, lambda s: s.remove(items))
        typer.echo(json.dumps({"deleted": items, "items_total": left}))
    _run(go)


@app.command()
def compact(space: str = SpaceOpt) -> None:
    """Fold the writes logged since the last generation into a new generation."""
    _run(lambda: typer.echo(json.dumps(_write(space, lambda s: s.compact()))))


@app.command()
def reindex(space_dir: str = typer.Argument(..., metavar="SPACE", help="A built space folder."),
            backend: str = typer.Option("milvus", "--backend", help="milvus, or embedded (back to the space's own index)."),
            uri: Optional[str] = typer.Option(None, "--uri", help="Milvus: a Milvus Lite file (items.db) or http://host:19530."),
            collection: Optional[str] = typer.Option(None, "--collection", help="Milvus collection (default: from the space's name)."),
            index_type: str = typer.Option("FLAT", "--index-type", help="Milvus index: FLAT (exact), HNSW, IVF_FLAT, AUTOINDEX.")) -> None:
    """Rebuild only the index of a built space: fill a Milvus collection from it, or go back to
    the embedded index. Nothing is trained or encoded again; a failure leaves the space as it was."""
    from .errors import InputError
    from .pipeline.reindex import reindex as run_reindex

    def go() -> None:
        if backend == "embedded":
            given = [o for o, v in (("--uri", uri), ("--collection", collection), ("--index-type", index_type != "FLAT")) if v]
            if given:
                raise InputError(f"{', '.join(given)}: Milvus options, not for --backend embedded", field="index.backend")
            block: dict[str, Any] = {"ann": False}
        elif backend == "milvus":
            if not uri:
                raise InputError("--backend milvus needs --uri (a Milvus Lite file or http://host:19530)", field="index.uri")
            block = {"backend": "milvus", "uri": uri, "index_type": index_type,
                     **({"collection": collection} if collection else {})}
        else:
            raise InputError(f"expected milvus or embedded, got {backend!r}", field="index.backend")
        typer.echo(json.dumps(run_reindex(space_dir, block), indent=2, default=str))
    _run(go)


@app.command()
def doctor(space_dir: str = typer.Argument(..., metavar="SPACE", help="The space folder to check."),
           repair: bool = typer.Option(False, "--repair", help="Repair what can be repaired."),
           as_json: bool = JsonOpt) -> None:
    """Check a space (manifest, files, logs, duplicate ids, temporary leftovers); exit 1 when
    problems remain."""
    from .space.doctor import doctor as run_doctor
    _setup_logging(False)
    report = run_doctor(space_dir, repair=repair)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        for f in report.findings:
            state = "repaired" if f.repaired else "note" if f.note else "can be repaired" if f.repairable else "problem"
            _console().print(f"[{'green' if f.repaired or f.note else 'red'}]{state}[/]: ",
                             text(f"{f.kind}: {f.path}: {f.detail}"), sep="")
        _console().print(text(f"{space_dir}: format {report.format}, {report.items} items, "
                              f"{'healthy' if report.healthy else 'problems remain'}"))
    raise typer.Exit(0 if report.healthy else 1)


@app.command("attach-session")
def attach_session(model_dir: Path = typer.Argument(..., help="A trained session model folder (talkrec sessions)."),
                   space: str = SpaceOpt) -> None:
    """Let a trained session model (paper 002) back playlist continuation in this space."""
    _run(lambda: (_write(space, lambda s: s.attach_session_model(model_dir)),
                  typer.echo(f"attached {model_dir} to {space}")))


@app.command()
def info(space: str = SpaceOpt) -> None:
    """What a space holds, and the settings it serves with (search, similar, recommend)."""
    def go() -> None:
        s = _load(space)
        cfg = s.config
        typer.echo(json.dumps({"name": cfg["name"], "items": len(s.index), "modalities": s.modalities,
                               "text_model": cfg["text"]["model"], "created": cfg["created"],
                               "filter_fields": [c for c in s.index.columns if c not in ("description",)],
                               "serving": {part: cfg.get(part, {}) for part in ("search", "similar", "recommend")}},
                              indent=2))
    _run(go)


@app.command()
def serve(space: str = SpaceOpt, host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8000),
          api_key: Optional[str] = typer.Option(None, envvar="TALKREC_API_KEY", help="Protects write endpoints."),
          allow_open_writes: bool = typer.Option(False, "--allow-open-writes",
                                                 help="Accept writes without an API key on a non-loopback host."),
          body_timeout: float = typer.Option(15.0, min=0.1, help="Seconds a request body may take to arrive (408)."),
          follow: bool = typer.Option(False, "--follow", help="Read-only: serve what another process writes to the "
                                      "space (a read replica; writes answer 409)."),
          follow_interval: float = typer.Option(0.05, min=0.001, help="With --follow: seconds between catch-ups.")
          ) -> None:
    """Serve the HTTP API and the web page (beyond loopback, writes need an API key)."""
    _setup_logging(True)

    def go() -> None:
        import uvicorn
        from .service.app import create_app
        uvicorn.run(create_app(space, api_key=api_key, host=host, allow_open_writes=allow_open_writes,
                               body_timeout=body_timeout, follow=follow, follow_interval=follow_interval),
                    host=host, port=port, log_level="info")
    _run(go)


@app.command()
def evaluate(config: Path = typer.Argument(..., help="Evaluation config (configs/eval-*.yaml)."),
             out: Path = typer.Option(Path("reports"), help="Report folder."),
             small: bool = typer.Option(False, help="Small, fast mode.")) -> None:
    """Reproduce Table 4 of paper 001: recommendation and retrieval with baselines and CIs."""
    _setup_logging(True)

    def go() -> None:
        from .evaluation.runner import run_evaluation
        res = run_evaluation(str(config), str(out), small=small)
        typer.echo(json.dumps({"markdown": str(out / "report.md"), "json": str(out / "report.json"),
                               "seconds": res.get("seconds")}, indent=2, default=str))
    _run(go)


@app.command()
def sessions(config: Path = typer.Argument(..., help="Session study config (configs/sessions-*.yaml)."),
             set_: Optional[list[str]] = typer.Option(None, "--set", metavar="KEY=VALUE",
                                                     help="Override a setting (YAML value), e.g. model.max_epochs=2."),
             output: Optional[str] = typer.Option(None, "--output", help="Output folder (default: the config's).")) -> None:
    """Session-based next-item models initialised from talkrec embeddings (paper 002)."""
    _setup_logging(True)

    def go() -> None:
        from .sessions.study import load_config, overrides, run_study
        res = run_study(load_config(str(config), overrides(set_ or [], output)))
        out = Path(res["config"].get("output") or f"runs/sessions/{res['dataset']}")
        typer.echo(json.dumps({"dataset": res["dataset"], "output": str(out), "report": str(out / "report.md"),
                               "results": str(out / "results.json")}, indent=2))
    _run(go)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
