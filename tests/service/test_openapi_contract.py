"""The service's HTTP contract: every route keeps its method, path, documented status codes,
request body schema, query parameters and security, compared with a committed snapshot of
the OpenAPI document (tests/service/openapi_snapshot.json) for an open app, for an app
with an API key (the write routes document 401 only then) and for an app bound beyond
loopback without a key (the write routes document 403: writes refused).

A deliberate API change regenerates the snapshot:
``TALKREC_UPDATE_OPENAPI_SNAPSHOT=1 python -m pytest tests/service/test_openapi_contract.py``
(the test then writes the file and skips); review the diff before committing it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from svc_helpers import API_KEY

SNAPSHOT = Path(__file__).with_name("openapi_snapshot.json")
METHODS = ("get", "post", "put", "patch", "delete")


def _schema_name(body: dict[str, Any] | None) -> str | None:
    if not body:
        return None
    for media in body.get("content", {}).values():
        ref = media.get("schema", {}).get("$ref")
        if ref:
            return ref.rsplit("/", 1)[-1]
    return "inline"


def contract(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"METHOD /path": {responses, request_body, query, path, security}}`` of an OpenAPI document."""
    out: dict[str, dict[str, Any]] = {}
    for path, ops in spec["paths"].items():
        for method in METHODS:
            op = ops.get(method)
            if op is None:
                continue
            params = op.get("parameters", [])
            out[f"{method.upper()} {path}"] = {
                "responses": sorted(op.get("responses", {})),
                "request_body": _schema_name(op.get("requestBody")),
                "query": sorted(p["name"] for p in params if p["in"] == "query"),
                "path": sorted(p["name"] for p in params if p["in"] == "path"),
                "security": sorted(k for s in op.get("security", []) for k in s),
            }
    return out


@pytest.fixture(scope="module")
def keyed_app(space_dir):
    from talkrec.service.app import create_app
    return create_app(space_dir, api_key=API_KEY)


@pytest.fixture(scope="module")
def refusing_app(space_dir):
    from talkrec.service.app import create_app
    return create_app(space_dir, host="0.0.0.0")


def test_openapi_keeps_every_route_status_and_parameter(app, keyed_app, refusing_app):
    got = {"open": contract(app.openapi()), "with_api_key": contract(keyed_app.openapi()),
           "writes_refused": contract(refusing_app.openapi())}
    if os.environ.get("TALKREC_UPDATE_OPENAPI_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"wrote {SNAPSHOT.name}")
    want = json.loads(SNAPSHOT.read_text())
    for variant in ("open", "with_api_key", "writes_refused"):
        assert sorted(got[variant]) == sorted(want[variant]), variant      # no route added or lost
        for route, c in want[variant].items():
            assert got[variant][route] == c, (variant, route)
    assert len(want["open"]) == 20  # GET /api/explain/search and /recommend are new; the page at / is not in the schema
