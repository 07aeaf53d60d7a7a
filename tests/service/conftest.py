"""Fixtures for the HTTP service: an app over a private copy of the tiny pipeline-built
space and a TestClient (helpers for a real uvicorn server live in svc_helpers.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
from tiny_data import copy_space


@pytest.fixture(scope="module")
def space_dir(tiny_space_dir, tmp_path_factory) -> Path:
    return copy_space(tiny_space_dir, tmp_path_factory.mktemp("svc") / "space")


@pytest.fixture(scope="module")
def app(space_dir):
    from talkrec.service.app import create_app
    return create_app(space_dir)


@pytest.fixture(scope="module")
def client(app):
    from fastapi.testclient import TestClient
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
