"""talkrec: one shared embedding space for recommendation and natural-language search.

>>> from talkrec import Space                       # doctest: +SKIP
>>> space = Space.load("spaces/lastfm")             # doctest: +SKIP
>>> space.search("melancholic post-rock", k=5)      # doctest: +SKIP
"""
from __future__ import annotations

from .data.catalog import Catalog, VectorTable
from .descriptions.template import TemplateDescriber
from .encoders.cf import ALSEncoder
from .encoders.text import TextEncoder
from .errors import InputError, NotFoundError, TalkrecError
from .fusion.model import ContrastiveFusion
from .index.store import VectorIndex
from .space import Hit, Space

__all__ = ["ALSEncoder", "Catalog", "ContrastiveFusion", "Hit", "InputError", "NotFoundError", "Space",
           "TalkrecError", "TemplateDescriber", "TextEncoder", "VectorIndex", "VectorTable"]
__version__ = "0.1.0"
