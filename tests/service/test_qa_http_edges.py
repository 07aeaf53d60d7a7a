"""HTTP edges a client meets before any route's own logic: every status a route answers is in
its OpenAPI document (an unknown query name 422, a body over the limit 413, a broken
Content-Length 400 were answered by routes that did not declare them); ``HEAD /api/health``
answers as ``GET`` does (it was 405, what load balancers and ``curl -I`` send); and with an API
key set, a write whose body is not JSON answers 401 to a client without the key, as a
well-formed body does (it answered 422, describing the body to a client that may not write)."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from talkrec.service.app import create_app
from tiny_data import copy_space

METHODS = ("get", "post", "put", "patch", "delete")


def _concrete(path: str) -> str:
    return path.replace("{item_id}", "jazz1")


def test_every_status_a_route_answers_before_its_logic_is_documented(app, client):
    spec = app.openapi()
    seen = 0
    for path, ops in spec["paths"].items():
        for method in METHODS:
            if method not in ops:
                continue
            declared = set(ops[method]["responses"])
            url = _concrete(path)
            r = client.request(method.upper(), url + "?no_such_name=1")
            assert r.status_code == 422 and "422" in declared, (method, path, r.status_code, declared)
            r = client.request(method.upper(), url, headers={"content-length": "99999999999"})
            assert r.status_code == 413 and "413" in declared, (method, path, r.status_code, declared)
            r = client.request(method.upper(), url, headers={"content-length": "many"})
            assert r.status_code == 400 and "400" in declared, (method, path, r.status_code, declared)
            seen += 1
    assert seen == 20                    # GET /api/explain/search and /api/explain/recommend since 2026-12-03


def test_head_on_health_answers_like_get(client):
    r = client.head("/api/health")
    assert r.status_code == 200 and r.content == b""
    assert client.get("/api/health").json()["status"] == "ok"


@pytest.mark.parametrize("host,api_key,status,error", [
    ("127.0.0.1", "k3y", 401, "unauthorized"),
    ("0.0.0.0", None, 403, "writes_refused"),
])
def test_a_write_refused_by_its_guard_is_refused_whatever_its_body(tiny_space_dir, tmp_path, host, api_key,
                                                                      status, error):
    d = copy_space(tiny_space_dir, tmp_path / "space")
    app = create_app(d, host=host, api_key=api_key)
    try:
        with TestClient(app) as c:
            for body in (b"{not json", b"[1, 2", b"\xff\xfe", b'{"items": 5}'):
                r = c.post("/api/items", content=body, headers={"content-type": "application/json"})
                assert r.status_code == status and r.json()["error"] == error, (body, r.text)
            # a reader's malformed body is still described to it, and the key-holder's too
            r = c.post("/api/recommend", content=b"{not json", headers={"content-type": "application/json"})
            assert r.status_code == 422 and "malformed JSON" in r.json()["detail"]
            if api_key:
                r = c.post("/api/items", content=b"{not json",
                           headers={"content-type": "application/json", "X-API-Key": api_key})
                assert r.status_code == 422 and "malformed JSON" in r.json()["detail"]
    finally:
        app.state.service.space.close()


def test_health_says_degraded_while_background_compaction_fails(tiny_space_dir, tmp_path, monkeypatch):
    """A background compaction that failed was only logged: health answered ``ok`` while every
    compaction kept failing (the log grows, loads get slower). Now ``degraded`` with the reason,
    still 200 (the space answers reads), and ``ok`` again once a compaction succeeds."""
    import json

    import talkrec.space.writer as writer

    d = copy_space(tiny_space_dir, tmp_path / "space")
    cfg = json.loads((d / "space.json").read_text())
    cfg["storage"] = {"compact_min_rows": 1, "compact_fraction": 0.0}
    (d / "space.json").write_text(json.dumps(cfg))
    real = writer.compacted

    def disk_full(*a, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "compacted", disk_full)
    app = create_app(d)
    store = app.state.service.space.store
    try:
        with TestClient(app) as c:
            assert c.get("/api/health").json()["status"] == "ok"
            r = c.post("/api/items", json={"items": [{"item_id": "n1", "name": "New One", "tags": ["jazz"]}]})
            assert r.status_code == 200
            store._compactor.join(60)
            h = c.get("/api/health")
            assert h.status_code == 200 and h.json()["status"] == "degraded", h.text
            assert any("No space left on device" in p for p in h.json()["problems"])
            assert c.get("/api/items/n1").status_code == 200       # the write is served all the same
            monkeypatch.setattr(writer, "compacted", real)
            r = c.post("/api/items", json={"items": [{"item_id": "n2", "name": "New Two", "tags": ["jazz"]}]})
            assert r.status_code == 200
            store._compactor.join(60)
            h = c.get("/api/health").json()
            assert h["status"] == "ok" and h["problems"] == [], h
    finally:
        app.state.service.space.close()


def test_an_item_whose_id_holds_a_slash_is_reachable_and_dot_ids_are_refused(tiny_space_dir, tmp_path):
    """``Space.add_items`` and ``talkrec add`` took ids with ``/`` (URL-like ids) that HTTP
    refused to add, and no route could open, list the neighbours of or delete; ``.`` and ``..``
    were taken everywhere and are unreachable by any URL (clients drop dot segments)."""
    from talkrec import Space
    from talkrec.errors import InputError

    d = copy_space(tiny_space_dir, tmp_path / "space")
    s = Space.load(d)
    s.add_items([{"item_id": "https://ex.org/a/b", "name": "Slash Item", "tags": ["jazz"]}])
    for bad in (".", ".."):
        with pytest.raises(InputError, match="dot segments"):
            s.add_items([{"item_id": bad, "name": "Dot", "tags": ["jazz"]}])
    s.close()
    app = create_app(d)
    try:
        with TestClient(app) as c:
            r = c.post("/api/items", json={"items": [{"item_id": "x/y", "name": "X Y", "tags": ["jazz"]}]})
            assert r.status_code == 200, r.text
            for iid in ("x/y", "https://ex.org/a/b"):
                enc = iid.replace("/", "%2F").replace(":", "%3A")
                for url in (f"/api/items/{enc}", f"/api/items/{iid}"):
                    r = c.get(url)
                    assert r.status_code == 200 and r.json()["item_id"] == iid, (url, r.text)
                r = c.get(f"/api/items/{enc}/similar?k=3")
                assert r.status_code == 200 and len(r.json()["items"]) == 3, r.text
                assert iid not in [h["item_id"] for h in r.json()["items"]]
            assert c.get("/api/items/jazz1/similar?k=2").status_code == 200
            assert c.get("/api/items/jazz1").json()["item_id"] == "jazz1"
            r = c.post("/api/items", json={"items": [{"item_id": "..", "name": "Dots", "tags": ["jazz"]}]})
            assert r.status_code == 422 and "dot segments" in r.json()["detail"]
            assert c.delete("/api/items/x%2Fy").status_code == 200
            assert c.get("/api/items/x%2Fy").status_code == 404
    finally:
        app.state.service.space.close()
