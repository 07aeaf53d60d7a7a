"""``POST /api/recommend/batch``: several recommendations in one request (Qdrant's batch
recommend, which its users asked for), each answered as ``POST /api/recommend`` answers it
alone; the first that fails fails the batch, named by its position."""
from __future__ import annotations

from talkrec.service.schemas import BATCH_MAX


def _single(client, body: dict) -> dict:
    r = client.post("/api/recommend", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_each_result_is_what_the_single_route_answers(client):
    users = [u["user_id"] for u in client.get("/api/users", params={"limit": 3}).json()["users"]]
    bodies = [{"user": users[0], "k": 5}, {"items": ["jazz1", "jazz2"], "k": 4},
              {"user": users[1], "k": 3, "offset": 2, "filters": {"tags": ["metal"]}},
              {"items": ["pop1"], "k": 6, "exclude_seen": False}, {"user": users[2]}]
    r = client.post("/api/recommend/batch", json={"requests": bodies})
    assert r.status_code == 200, r.text
    got = r.json()
    assert len(got["results"]) == len(bodies) and got["took_ms"] >= 0
    for body, res in zip(bodies, got["results"]):
        want = _single(client, body)
        assert [h["item_id"] for h in res["items"]] == [h["item_id"] for h in want["items"]], body
        assert [h["score"] for h in res["items"]] == [h["score"] for h in want["items"]], body
        assert (res["score_kind"], res["k"], res["offset"]) == (want["score_kind"], want["k"], want["offset"])
    assert len(got["results"][4]["items"]) == 10                  # the single route's default k


def test_the_first_failing_request_fails_the_batch_and_is_named(client):
    ok = {"items": ["jazz1"], "k": 3}
    r = client.post("/api/recommend/batch", json={"requests": [ok, {"user": "no-such-user"}]})
    assert r.status_code == 404 and r.json()["detail"].startswith("requests[1]: ") and "no-such-user" in r.text, r.text
    r = client.post("/api/recommend/batch", json={"requests": [ok, ok, {"items": ["nope"]}]})
    assert r.status_code == 404 and r.json()["detail"].startswith("requests[2]: "), r.text
    r = client.post("/api/recommend/batch", json={"requests": [{"items": ["jazz1"], "filters": {"where": "zz>1"}}]})
    assert r.status_code == 422 and r.json()["detail"].startswith("requests[0]: ") and "zz" in r.text, r.text


def test_malformed_batches_are_refused_by_the_schema(client):
    for body, needle in (({"requests": []}, "requests"), ({"requests": [{"items": ["jazz1"], "k": 0}]}, "k"),
                         ({"requests": [{"items": ["jazz1"]}] * (BATCH_MAX + 1)}, "requests"),
                         ({"requests": [{"items": ["jazz1"], "user": "1"}]}, "exactly one"), ({}, "requests")):
        r = client.post("/api/recommend/batch", json=body)
        assert r.status_code == 422 and needle in r.text, (body, r.text)
