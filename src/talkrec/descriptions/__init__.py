"""Item descriptions: TEMPLATE texts from tags, GEN texts from an LLM."""
from __future__ import annotations

from .categories import TagCategorizer
from .template import TemplateDescriber

__all__ = ["TagCategorizer", "TemplateDescriber"]
