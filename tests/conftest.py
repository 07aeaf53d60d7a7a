"""Shared fixtures: paths to the shared data, tiny synthetic catalogs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from tiny_data import TINY_NOVELTY, TINY_SPACE_CONFIG, make_tiny_catalog

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TALKREC_DATA", REPO.parent / "shared" / "data"))


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA / "lastfm-hetrec2011-2k").exists():
        pytest.skip(f"shared data not found at {DATA} (set TALKREC_DATA)")
    return DATA


@pytest.fixture()
def tiny_catalog():
    return make_tiny_catalog()


@pytest.fixture(scope="session")
def tiny_space_dir(tmp_path_factory):
    """A real space built by the pipeline from the tiny three-cluster catalog (text + CF +
    audio); session-scoped, so tests that write to it should copy it first."""
    from talkrec.pipeline import build

    out = tmp_path_factory.mktemp("spaces") / "tiny"
    build({**TINY_SPACE_CONFIG, "output": str(out)}, show_progress=False, catalog=make_tiny_catalog())
    return out


@pytest.fixture(scope="session")
def tiny_novelty_space_dir(tmp_path_factory):
    """The tiny space built with a default ``recommend.novelty`` and ``similar.novelty``
    (:data:`TINY_NOVELTY`); session-scoped and read-only, as ``tiny_space_dir``."""
    from talkrec.pipeline import build

    out = tmp_path_factory.mktemp("spaces") / "tiny-novelty"
    rec, sim = TINY_NOVELTY
    build({**TINY_SPACE_CONFIG, "output": str(out), "recommend": {"novelty": rec}, "similar": {"novelty": sim}},
          show_progress=False, catalog=make_tiny_catalog())
    return out
