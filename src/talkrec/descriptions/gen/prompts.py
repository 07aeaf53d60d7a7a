"""The GEN prompt, the tags it lists, and the clean-up of what a chat model answers."""
from __future__ import annotations

import re
from collections.abc import Sequence

from ...errors import InputError

Messages = list[dict[str, str]]

PROMPT_VERSION = 2

SYSTEM_PROMPT = "You write short, factual descriptions of {kind}s from catalog tags. You only use the facts you are given."

#: Kept short on purpose: small local models follow short instructions better than long rule lists.
USER_PROMPT = """{template}

Rewrite this as one short paragraph of fluent prose about this {kind} (at most {max_words} words). Use every one of these tags, in their own words: {tag_list}. Do not add any fact that is not in the description: no dates, places, members, albums, songs or history unless they are tags. Write only the paragraph."""


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
