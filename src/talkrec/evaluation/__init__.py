"""Evaluation of talkrec spaces against the baselines of papers 001 and 004.

Modules (cornac-style separation): :mod:`talkrec.metrics` (pure metric functions, shared
with the sessions study), :mod:`.splits` (every leakage rule), :mod:`.queries` (tag-set text queries),
:mod:`.baselines` (BM25, PCA / random projection, concatenation, popularity, ALS, RRF),
:mod:`.tasks` (the three tasks), :mod:`.runner` (:func:`run_evaluation`),
:mod:`.report` (Markdown / JSON / PNG).
"""
from __future__ import annotations

from typing import Any


def run_evaluation(config_path_or_dict: Any, out_dir: Any, small: bool = False) -> dict:
    """See :func:`talkrec.evaluation.runner.run_evaluation`."""
    from .runner import run_evaluation as _run

    return _run(config_path_or_dict, out_dir, small=small)


__all__ = ["run_evaluation"]
