"""Input limits shared by the CLI and the HTTP API (kept free of imports, so that the CLI
reads them without loading the service's models)."""
from __future__ import annotations

__all__ = ["K_MAX"]

#: the most results one query returns, in the API and the CLI alike
K_MAX = 200
