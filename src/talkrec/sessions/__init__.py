"""Session-based recommendation with content-initialized item embeddings (paper 002).

See docs/sessions.md. Main entry points: :func:`sessionize`, :func:`user_split`,
:func:`rta_split`, :class:`MaskedSessionModel`, :class:`NextItemSessionModel`,
:class:`SessionContrastiveTuner`, :class:`SessionRecommender` and
:func:`talkrec.sessions.study.run_study` (``python -m talkrec.sessions.study --config ...``).
The ranking metrics are the project's, in :mod:`talkrec.metrics`.
"""
from __future__ import annotations

from .evaluate import continuation_task, last_item_task
from .init import init_table, random_table
from .models import MaskedSessionModel, NextItemSessionModel
from .recommender import SessionRecommender
from .sessionize import SessionSet, session_lists, sessionize
from .splits import Split, rta_split, user_split
from .tuning import SessionContrastiveTuner


def run_study(config):  # type: ignore[no-untyped-def]
    """See :func:`talkrec.sessions.study.run_study` (imported lazily)."""
    from .study import run_study as _run
    return _run(config)


__all__ = ["MaskedSessionModel", "NextItemSessionModel", "SessionContrastiveTuner", "SessionRecommender",
           "SessionSet", "Split", "continuation_task", "init_table", "last_item_task", "random_table", "rta_split",
           "run_study", "session_lists", "sessionize", "user_split"]
