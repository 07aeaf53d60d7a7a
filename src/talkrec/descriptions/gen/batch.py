"""A resumable batch of GEN texts: :func:`generate_descriptions` and its :class:`GenReport`."""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Literal

from ...encoders.base import progress_bar
from ...errors import InputError
from .backends import BackendError, EndpointError, GenBackend
from .cache import GenCache, cache_key
from .checks import TagCheck, check_tags, quality_flags
from .prompts import Messages, build_prompt, clean_output, tags_from_template

log = logging.getLogger(__name__)

#: ``{item_id: (messages, cache key, tags)}`` of the items to generate
Jobs = dict[str, tuple[Messages, str, list[str]]]


@dataclass
class GenReport:
    """What a :func:`generate_descriptions` run did."""

    generated: int = 0
    cached: int = 0
    untagged: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    low_coverage: dict[str, TagCheck] = field(default_factory=dict)
    flagged: dict[str, list[str]] = field(default_factory=dict)
    coverage: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def mean_coverage(self) -> float:
        return sum(self.coverage.values()) / len(self.coverage) if self.coverage else float("nan")


def _item_tags(item_id: str, template: str, tags: Mapping[str, Sequence[str]] | None) -> list[str]:
    """The item's tags from ``tags``, else the ones parsed from its TEMPLATE."""
    return list(tags[item_id]) if tags is not None and item_id in tags else tags_from_template(template)


def _plan(templates: Mapping[str, str], tags: Mapping[str, Sequence[str]] | None, bcfg: Mapping[str, Any],
          cache: GenCache | None, rep: GenReport, *, kind: str, max_words: int, untagged: str,
          ) -> tuple[dict[str, str], Jobs, set[str]]:
    """``(texts known already, jobs to run, untagged ids)``: untagged items keep their
    TEMPLATE (``untagged="template"``), cached ones their cached text."""
    out: dict[str, str] = {}
    jobs: Jobs = {}
    untagged_ids: set[str] = set()
    for item_id, template in templates.items():
        item_id = str(item_id)
        if not isinstance(template, str) or not template.strip():
            raise InputError("empty TEMPLATE text", row=None, field=f"templates[{item_id!r}]")
        item_tags = _item_tags(item_id, template, tags)
        if not item_tags and untagged == "template":
            out[item_id] = template
            untagged_ids.add(item_id)
            rep.untagged += 1
            continue
        msgs = build_prompt(template, item_tags, kind=kind, max_words=max_words)
        key = cache_key(msgs, bcfg)
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            out[item_id] = hit["text"]
            rep.cached += 1
        else:
            jobs[item_id] = (msgs, key, item_tags)
    return out, jobs, untagged_ids


#: failures in a row (no text in between) after which a batch stops: the endpoint is down or broken
MAX_FAILURES_IN_A_ROW = 8


def _stop(item_id: str, e: Exception, streak: int, cache: GenCache | None, rep: GenReport) -> BackendError:
    """The error that ends a batch whose endpoint is down or refuses every item."""
    why = (str(e) if isinstance(e, EndpointError) else
           f"{streak} items failed in a row, the last, item {item_id!r}: {type(e).__name__}: {e}")
    return _like(e, f"GEN stopped: {why}{_cached(cache, rep)}; fix the endpoint (descriptions.gen) and rerun: "
                    "only the missing items are generated")


def _cached(cache: GenCache | None, rep: GenReport) -> str:
    return f"; the {rep.generated} text(s) finished now are cached in {cache.path}" if cache is not None else ""


def _like(e: Exception, message: str) -> BackendError:
    """A :class:`BackendError` saying ``message``, an :class:`EndpointError` when ``e`` is one."""
    return (EndpointError if isinstance(e, EndpointError) else BackendError)(message)


def _run(jobs: Jobs, backend: GenBackend, bcfg: Mapping[str, Any], cache: GenCache | None, rep: GenReport,
         out: dict[str, str], *, min_coverage: float, on_error: str, show_progress_bar: bool,
         max_failures_in_a_row: int | None = MAX_FAILURES_IN_A_ROW) -> None:
    """Generate the jobs on ``backend.concurrency`` threads; each text goes to ``out`` and,
    as soon as it arrives (in its worker thread, so also while the batch stops), to the cache.
    Failures are recorded in ``rep`` or re-raised; an :class:`EndpointError` (a refused key,
    a wrong URL) or ``max_failures_in_a_row`` failures with no text in between stop the
    batch with a :class:`BackendError` either way."""
    lock, stopping = threading.Lock(), threading.Event()

    def one(item_id: str) -> None:
        if stopping.is_set():  # the batch is stopping: ask for nothing more
            return
        try:
            text = clean_output(backend.generate(jobs[item_id][0]))
        except EndpointError:
            stopping.set()
            raise
        if not text:
            raise BackendError("empty output")
        with lock:  # cached in the worker: an answer paid for is kept even if the batch stops now
            _keep(item_id, text, jobs, bcfg, cache, rep, out, min_coverage)

    bar = progress_bar(total=len(jobs), desc=f"GEN[{bcfg.get('model', '?')}]", disable=not show_progress_bar,
                       unit="item")
    workers = max(1, int(getattr(backend, "concurrency", 1)))
    streak = 0
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futs = {pool.submit(one, i): i for i in jobs}
            try:
                for fut in as_completed(futs):
                    item_id = futs[fut]
                    bar.update(1)
                    try:
                        fut.result()
                    except Exception as e:  # noqa: BLE001 - report per item, keep the batch going
                        streak += 1
                        if on_error == "raise":     # named: which item, and that finished ones are cached
                            raise _like(e, f"GEN failed for item {item_id!r} (on_error: raise): {e}"
                                           f"{_cached(cache, rep)}") from e
                        rep.failed[item_id] = f"{type(e).__name__}: {e}"
                        log.warning("GEN failed for item %s: %s", item_id, e)
                        if isinstance(e, EndpointError) or (max_failures_in_a_row and streak >= max_failures_in_a_row):
                            raise _stop(item_id, e, streak, cache, rep) from e
                        continue
                    streak = 0
            finally:
                stopping.set()   # on an error, leave the items not started yet
                for f in futs:
                    f.cancel()
    finally:
        bar.close()


def _keep(item_id: str, text: str, jobs: Jobs, bcfg: Mapping[str, Any], cache: GenCache | None, rep: GenReport,
          out: dict[str, str], min_coverage: float) -> None:
    """A finished text: into ``out`` and, at once, into the cache."""
    _, key, item_tags = jobs[item_id]
    chk = check_tags(text, item_tags, min_coverage=min_coverage)
    rep.generated += 1
    if cache is not None:
        cache.append({"key": key, "item_id": item_id, "text": text, "coverage": round(chk.coverage, 4),
                      "missing": list(chk.missing), "model": bcfg.get("model"),
                      "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    out[item_id] = text


#: a text over this many times ``max_words`` words is flagged ``too_long``
TOO_LONG = 3


def _review(templates: Mapping[str, str], tags: Mapping[str, Sequence[str]] | None, out: Mapping[str, str],
            untagged_ids: set[str], rep: GenReport, *, min_coverage: float, on_flagged: str,
            max_words: int = 120) -> dict[str, str]:
    """Coverage and flags of every text returned (cached ones included), in input order;
    flagged texts are kept, replaced by their TEMPLATE or dropped (``on_flagged``)."""
    final: dict[str, str] = {}
    for item_id, template in templates.items():
        item_id = str(item_id)
        if item_id not in out:
            continue
        text = out[item_id]
        if item_id in untagged_ids:  # TEMPLATE kept as is: not part of the coverage figures
            final[item_id] = text
            continue
        chk = check_tags(text, _item_tags(item_id, template, tags), min_coverage=min_coverage)
        rep.coverage[item_id] = chk.coverage
        flags = ([] if chk.ok else ["low_coverage"]) + quality_flags(text, template)
        if len(text.split()) > TOO_LONG * max_words:  # a server that ignores max_tokens, or a ramble
            flags.append("too_long")
        if not chk.ok:
            rep.low_coverage[item_id] = chk
            log.warning("GEN for item %s keeps %.0f%% of its tags (missing: %s)", item_id, 100 * chk.coverage,
                        ", ".join(chk.missing[:8]) + (" ..." if len(chk.missing) > 8 else ""))
        if flags:
            rep.flagged[item_id] = flags
            if chk.ok:
                log.warning("GEN for item %s flagged: %s", item_id, ", ".join(flags))
            if on_flagged == "template":
                text = template
            elif on_flagged == "drop":
                continue
        final[item_id] = text
    return final


def _check_options(**given: Any) -> None:
    """Refuse a value a batch would misread (an ``on_flagged`` typo used to keep every flagged
    text), naming it as the config does (``descriptions.gen.<name>``)."""
    choices = {"on_flagged": ("keep", "template", "drop"), "on_error": ("skip", "raise"),
               "untagged": ("template", "generate")}
    for name, allowed in choices.items():
        if given[name] not in allowed:
            raise InputError(f"must be one of {', '.join(allowed)}; got {given[name]!r}",
                             field=f"descriptions.gen.{name}")
    mc, mw = given["min_coverage"], given["max_words"]
    if isinstance(mc, bool) or not isinstance(mc, (int, float)) or not 0 <= mc <= 1:
        raise InputError(f"must be a number in [0, 1], got {mc!r}", field="descriptions.gen.min_coverage")
    if isinstance(mw, bool) or not isinstance(mw, int) or mw < 1:
        raise InputError(f"must be a whole number >= 1, got {mw!r}", field="descriptions.gen.max_words")


def generate_descriptions(templates: Mapping[str, str], tags: Mapping[str, Sequence[str]] | None,
                          backend: GenBackend, cache_path: str | os.PathLike[str] | None, *,
                          kind: str = "artist", max_words: int = 120, min_coverage: float = 0.8,
                          on_flagged: Literal["keep", "template", "drop"] = "keep",
                          on_error: Literal["skip", "raise"] = "skip", untagged: Literal["template", "generate"] = "template",
                          show_progress_bar: bool = False, report: GenReport | None = None,
                          max_failures_in_a_row: int | None = MAX_FAILURES_IN_A_ROW) -> dict[str, str]:
    """GEN texts for ``templates`` (``{item_id: TEMPLATE}``), in the order of ``templates``.

    ``tags`` (``{item_id: [tag, ...]}``; missing ids fall back to tags parsed from the
    TEMPLATE) drive the prompt and the coverage check. Outputs are flagged when their tag
    coverage is below ``min_coverage`` (``"low_coverage"``) or :func:`quality_flags` finds an
    echo of the TEMPLATE or a loop, or when it runs past :data:`TOO_LONG` x ``max_words`` words
    (``"too_long"``); flagged outputs are logged, listed in ``report.flagged``
    (and ``report.low_coverage``), and then kept (``on_flagged="keep"``), replaced by the
    TEMPLATE (``"template"``) or left out (``"drop"``). Items without
    tags get their TEMPLATE back unchanged (``untagged="template"``: nothing to rewrite,
    and an LLM would only invent) unless ``untagged="generate"``.

    Every finished output is appended to ``cache_path`` (JSONL) as soon as it arrives, so an
    interrupted run resumes where it stopped. ``cache_path=None`` disables the cache.
    Backend failures are logged and the item left out (``on_error="skip"``), or re-raised.
    Either way a refused API key or a wrong URL (:class:`EndpointError`), or
    ``max_failures_in_a_row`` failures with no text in between (an endpoint that is down;
    ``None``: never), stop the batch with a :class:`BackendError`: what finished is cached,
    a rerun resumes.
    Pass a :class:`GenReport` as ``report`` to get counts, failures and coverage per item.
    """
    _check_options(on_flagged=on_flagged, on_error=on_error, untagged=untagged, min_coverage=min_coverage,
                   max_words=max_words)
    rep = report if report is not None else GenReport()
    t0 = time.perf_counter()
    cache = GenCache(cache_path) if cache_path is not None else None
    bcfg = backend.config()
    out, jobs, untagged_ids = _plan(templates, tags, bcfg, cache, rep, kind=kind, max_words=max_words,
                                    untagged=untagged)
    _run(jobs, backend, bcfg, cache, rep, out, min_coverage=min_coverage, on_error=on_error,
         show_progress_bar=show_progress_bar, max_failures_in_a_row=max_failures_in_a_row)
    final = _review(templates, tags, out, untagged_ids, rep, min_coverage=min_coverage, on_flagged=on_flagged,
                    max_words=max_words)
    rep.seconds = time.perf_counter() - t0
    if rep.failed:
        log.warning("GEN: %d item(s) failed; rerun to retry them (finished ones are cached)", len(rep.failed))
    return final
