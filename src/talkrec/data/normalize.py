"""Artist-name normalization used to join Last.fm, Spotify and OLGA (data README)."""
from __future__ import annotations

import re
import unicodedata

_PUNCT = re.compile(r"[^\w\s]", flags=re.UNICODE)
_SPACE = re.compile(r"\s+")


def normalize_name(name: str) -> str:
    """Lower case, accents stripped, leading "the " dropped, "&" read as "and",
    punctuation and private-use characters removed, whitespace collapsed.

    >>> normalize_name("The Beatles")
    'beatles'
    >>> normalize_name("Simon & Garfunkel")
    'simon and garfunkel'
    >>> normalize_name("Beyoncé")
    'beyonce'
    """
    s = unicodedata.normalize("NFKD", str(name))
    s = "".join(c for c in s if not unicodedata.combining(c) and unicodedata.category(c) != "Co")
    s = s.lower().replace("&", " and ")
    s = _PUNCT.sub(" ", s).replace("_", " ")
    s = _SPACE.sub(" ", s).strip()
    if s.startswith("the "):
        s = s[4:]
    return s
