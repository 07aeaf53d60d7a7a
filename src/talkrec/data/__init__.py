"""Catalog data model, readers and dataset adapters."""
from __future__ import annotations

from .catalog import Catalog, VectorTable
from .io import load_catalog
from .tables import read_table
from .vector_files import read_vectors

__all__ = ["Catalog", "VectorTable", "load_catalog", "read_table", "read_vectors"]
