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

__all__ = ["ALSEncoder", "Catalog", "ContrastiveFusion", "EASE", "Hit", "InputError", "NotFittedError", "NotFoundError",
           "PrecomputedEncoder", "Space", "TalkrecError", "TemplateDescriber", "TextEncoder", "UnreadableModelFile",
           "VectorIndex", "VectorTable"]
__version__ = "0.1.0"

#: public name -> the module that defines it
_WHERE = {"ALSEncoder": ".encoders.cf", "Catalog": ".data.catalog", "ContrastiveFusion": ".fusion.model",
          "EASE": ".encoders.ease", "Hit": ".space", "InputError": ".errors", "NotFittedError": ".errors",
          "NotFoundError": ".errors", "PrecomputedEncoder": ".encoders.vectors", "Space": ".space",
          "TalkrecError": ".errors", "TemplateDescriber": ".descriptions.template", "TextEncoder": ".encoders.text",
          "UnreadableModelFile": ".estimator", "VectorIndex": ".index.store", "VectorTable": ".data.catalog"}

if TYPE_CHECKING:
    from .data.catalog import Catalog, VectorTable
    from .descriptions.template import TemplateDescriber
    from .encoders.cf import ALSEncoder
    from .encoders.ease import EASE
    from .encoders.text import TextEncoder
    from .encoders.vectors import PrecomputedEncoder
    from .errors import InputError, NotFittedError, NotFoundError, TalkrecError
    from .estimator import UnreadableModelFile
    from .fusion.model import ContrastiveFusion
    from .index.store import VectorIndex
    from .space import Hit, Space


__getattr__, __dir__ = lazy_names(__name__, _WHERE, globals())
