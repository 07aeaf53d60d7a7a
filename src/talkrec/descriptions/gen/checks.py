"""How faithful a GEN text is: the share of the item's tags it kept, and flags for echoes
of the TEMPLATE and loops."""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


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
