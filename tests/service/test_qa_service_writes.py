"""Writes over HTTP that used to be acknowledged and then broke reads or compaction, or were
refused though documented (QA defects 1, 4 and 5), on a private copy of the tiny space."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from talkrec.service.app import create_app
from tiny_data import copy_space


@pytest.fixture(scope="module")
def qclient(tiny_space_dir, tmp_path_factory):
    with TestClient(create_app(copy_space(tiny_space_dir, tmp_path_factory.mktemp("qaw") / "space")),
                    raise_server_exceptions=False) as c:
        yield c


def _post(client: TestClient, item: dict, content: str | None = None):
    if content is not None:
        return client.post("/api/items", content=content, headers={"content-type": "application/json"})
    return client.post("/api/items", json={"items": [item]})


@pytest.mark.parametrize("metadata, field, needle", [
    ({"year": 18446744073709551616}, "metadata.year", "integer out of the 64-bit range"),
    ({"year": -9223372036854775809}, "metadata.year", "integer out of the 64-bit range"),
    ({"bignum": 99999999999999999999999}, "metadata.bignum", "integer out of the 64-bit range"),
])
def test_an_integer_beyond_64_bits_is_refused_and_reads_go_on(qclient, metadata, field, needle):
    r = _post(qclient, {"item_id": "huge", "name": "Huge Plays", "tags": ["rock"], "metadata": metadata})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and needle in r.json()["detail"]
    assert qclient.get("/api/items/huge").status_code == 404
    assert qclient.get("/api/search", params={"q": "Huge Plays", "k": 3}).status_code == 200


def test_nan_and_infinity_in_metadata_are_refused(qclient):
    """(The request schema refuses them already; Space.add_items too: tests/core/test_qa_writes.py.)"""
    for literal in ("NaN", "Infinity", "-Infinity"):
        body = '{"items":[{"item_id":"nan1","name":"NaN","metadata":{"score":%s}}]}' % literal
        r = _post(qclient, {}, content=body)
        assert r.status_code == 422 and "finite number" in r.json()["detail"], r.text
    assert qclient.get("/api/items/nan1").status_code == 404


def test_a_null_vector_clears_the_modality(qclient):
    item = {"item_id": "aud1", "name": "Audio Act", "tags": ["jazz"], "vectors": {"audio": [0, 0, 1.0, 0]}}
    assert _post(qclient, item).json()["added"][0]["modalities"] == ["text", "audio"]
    r = _post(qclient, {**item, "vectors": {"audio": None}})
    assert r.status_code == 200, r.text
    assert r.json()["added"][0]["modalities"] == ["text"]
    assert qclient.get("/api/items/aud1").json()["modalities"] == ["text"]


def test_retagging_over_http_clears_the_fields_of_the_old_tags(qclient):
    assert _post(qclient, {"item_id": "q1", "name": "QA Band", "tags": ["shoegaze", "dream pop"]}).status_code == 200
    assert qclient.get("/api/items/q1").json()["metadata"]["genre"] == ["shoegaze", "dream pop"]
    assert _post(qclient, {"item_id": "q1", "name": "QA Band", "tags": []}).status_code == 200
    meta = qclient.get("/api/items/q1").json()["metadata"]
    assert meta["tags"] == [] and meta["genre"] == []
