"""talkrec: one shared embedding space for recommendation and natural-language search.

>>> from talkrec import Space                       # doctest: +SKIP
>>> space = Space.load("spaces/lastfm")             # doctest: +SKIP
>>> space.search("melancholic post-rock", k=5)      # doctest: +SKIP

The public names are imported on first use (PEP 562): ``import talkrec`` and the
``talkrec`` command's start-up stay free of torch, sentence-transformers, implicit,
scikit-learn and matplotlib.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_names

__all__ = ["ALSEncoder", "Catalog", "ContrastiveFusion", "Hit", "InputError", "NotFoundError", "Space",
           "TalkrecError", "TemplateDescriber", "TextEncoder", "VectorIndex", "VectorTable"]
__version__ = "0.1.0"

#: public name -> the module that defines it
_WHERE = {"ALSEncoder": ".encoders.cf", "Catalog": ".data.catalog", "ContrastiveFusion": ".fusion.model",
          "Hit": ".space", "InputError": ".errors", "NotFoundError": ".errors", "Space": ".space",
          "TalkrecError": ".errors", "TemplateDescriber": ".descriptions.template", "TextEncoder": ".encoders.text",
          "VectorIndex": ".index.store", "VectorTable": ".data.catalog"}

if TYPE_CHECKING:
    from .data.catalog import Catalog, VectorTable
    from .descriptions.template import TemplateDescriber
    from .encoders.cf import ALSEncoder
    from .encoders.text import TextEncoder
    from .errors import InputError, NotFoundError, TalkrecError
    from .fusion.model import ContrastiveFusion
    from .index.store import VectorIndex
    from .space import Hit, Space


__getattr__, __dir__ = lazy_names(__name__, _WHERE, globals())
