"""Every endpoint of the HTTP API on the tiny three-cluster space (metal / jazz / pop),
the bad-input cases included: each must be a 4xx with a clear message, never a 500."""
from __future__ import annotations

import re

import pytest


def _cluster(i: str) -> str:
    return i.rstrip("0123456789")


def _ids(r) -> list[str]:
    return [h["item_id"] for h in r.json()["items"]]


def assert_error(r, status: int, *needles: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) >= {"error", "detail"}, body
    for n in needles:
        assert n.lower() in body["detail"].lower(), (n, body["detail"])


# ----------------------------------------------------------------------------- meta
def test_health_version_facets_and_page(client):
    h = client.get("/api/health").json()
    assert h["status"] == "ok" and h["items"] == 60
    v = client.get("/api/version").json()
    assert v["talkrec"] and v["space"]["modalities"] == ["text", "cf", "audio"] and v["space"]["items"] == 60
    assert v["space"]["recommend_strategy"] == "blend"                    # what the page's ranking menu names
    f = client.get("/api/facets").json()
    assert {"name": "year", "type": "numeric", "min": 1980.0, "max": 2009.0} in f["fields"]
    assert {t["tag"] for t in f["top_tags"]} >= {"metal", "jazz", "pop", "band"}
    page = client.get("/")
    assert page.status_code == 200 and "search-box" in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/api/search", "/api/recommend", "/api/playlists/generate", "/api/items"} <= set(spec["paths"])


# ----------------------------------------------------------------------------- search
def test_search_and_filters(client):
    r = client.get("/api/search", params={"q": "jazz", "k": 5})
    assert r.status_code == 200, r.text
    assert sum(_cluster(i) == "jazz" for i in _ids(r)) >= 4
    assert r.json()["k"] == 5 and r.json()["took_ms"] >= 0
    # offset pages through the same ranking
    full = _ids(client.get("/api/search", params={"q": "jazz", "k": 6}))
    assert _ids(client.get("/api/search", params={"q": "jazz", "k": 3, "offset": 3})) == full[3:6]
    # tag filter, decade (mapped to a year range on this space), numeric range, free expression
    hits = client.get("/api/search", params={"q": "music", "k": 10, "tag": "pop"}).json()["items"]
    assert hits and all("pop" in h["metadata"]["tags"] for h in hits)
    hits = client.get("/api/search", params={"q": "music", "k": 10, "decade": "90s"}).json()["items"]
    assert hits and all(1990 <= h["metadata"]["year"] <= 1999 for h in hits)
    hits = client.get("/api/search", params={"q": "music", "k": 10, "range": "year:2003:2005"}).json()["items"]
    assert hits and all(2003 <= h["metadata"]["year"] <= 2005 for h in hits)
    hits = client.get("/api/search", params={"q": "music", "k": 10, "where": "year<1983"}).json()["items"]
    assert hits and all(h["metadata"]["year"] < 1983 for h in hits)
    quoted = client.get("/api/search", params={"q": "music", "k": 10, "where": '"year"<1983'}).json()["items"]
    assert [h["item_id"] for h in quoted] == [h["item_id"] for h in hits]       # a quoted field name
    for mode in ("multi", "text", "hybrid"):
        assert client.get("/api/search", params={"q": "metal", "mode": mode}).status_code == 200


@pytest.mark.parametrize("params,status,needle", [
    ({"q": ""}, 422, "q"),
    ({"q": "   "}, 422, "empty"),
    ({}, 422, "q"),
    ({"q": "jazz", "k": 0}, 422, "k"),
    ({"q": "jazz", "k": 100000}, 422, "k"),
    ({"q": "jazz", "k": "ten"}, 422, "k"),
    ({"q": "jazz", "offset": -1}, 422, "offset"),
    ({"q": "x" * 600}, 422, "q"),
    ({"q": "jazz", "mode": "bogus"}, 422, "mode"),
    ({"q": "jazz", "where": "nosuchfield=1"}, 422, "unknown filter field"),
    ({"q": "jazz", "where": "year>>1"}, 422, "filter"),
    ({"q": "jazz", "range": "year:abc:"}, 422, "range"),
    ({"q": "jazz", "range": "year:1990:1980"}, 422, "min"),
    ({"q": "jazz", "range": "nosuch:1:2"}, 422, "unknown range field"),
    ({"q": "jazz", "decade": "nineties"}, 422, "decade"),
    ({"q": "jazz", "decade": "19th century"}, 422, "decade"),
    ({"q": "jazz", "where": "year>=nan"}, 422, "finite"),
    ({"q": "jazz", "where": "year<inf"}, 422, "finite"),
    ({"q": "jazz", "range": "year:nan:"}, 422, "finite"),
    ({"q": "jazz", "k": 201}, 422, "k"),
])
def test_search_bad_input(client, params, status, needle):
    assert_error(client.get("/api/search", params=params), status, needle)


@pytest.mark.parametrize("path, params, needle", [
    ("/api/search", {"q": "jazz", "mdoe": "text"}, "unknown query parameter 'mdoe'; did you mean 'mode'?"),
    ("/api/search", {"q": "jazz", "K": "50"}, "unknown query parameter 'K'; did you mean 'k'?"),
    ("/api/items/metal3/similar", {"tags": "metal"}, "did you mean 'tag'?"),           # filters are params too
    ("/api/health", {"verbose": "1"}, "this endpoint takes: none"),
])
def test_a_misspelt_query_parameter_is_refused_not_ignored(client, path, params, needle):
    """``?mdoe=text`` was ignored: the search ran in the default mode and said nothing."""
    r = client.get(path, params=params)
    assert_error(r, 422, needle)
    assert r.json()["field"] == next(k for k in params if k not in ("q",))
    assert client.get("/api/search", params={"q": "jazz", "mode": "text", "k": 5, "tag": "jazz"}).status_code == 200


def test_every_api_route_refuses_an_unknown_query_parameter(app, client):
    """The check runs in ``get_state``, which every route depends on: a route that did not
    would take any parameter silently."""
    routes = [(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops if p.startswith("/api")]
    assert len(routes) >= 15
    for method, p in routes:
        path = re.sub(r"\{[a-z_]+\}", "metal3", p)
        resp = client.request(method, path, params={"zzz_unknown": "1"})
        assert resp.status_code == 422 and resp.json()["error"] == "unknown_parameter", (method, path, resp.text)


def test_personalized_search_alpha_moves_towards_user(client):
    body = {"query": "band", "items": ["pop1", "pop2", "pop3"], "k": 10}
    plain = client.post("/api/search/personalized", json={**body, "alpha": 0.0}).json()
    pers = client.post("/api/search/personalized", json={**body, "alpha": 0.8})
    assert pers.status_code == 200 and pers.json()["alpha"] == 0.8
    n_pop = lambda r: sum(_cluster(h["item_id"]) == "pop" for h in r["items"])  # noqa: E731
    assert n_pop(pers.json()) > n_pop(plain) or n_pop(plain) == 10
    user = client.get("/api/users", params={"limit": 3}).json()["users"][0]["user_id"]
    r = client.post("/api/search/personalized", json={"query": "band", "user": user, "alpha": 0.5, "exclude_seen": True})
    assert r.status_code == 200 and r.json()["items"]
    assert_error(client.post("/api/search/personalized", json={"query": "band", "alpha": 1.5, "items": ["pop1"]}),
                 422, "alpha")
    assert_error(client.post("/api/search/personalized", json={"query": "band"}), 422, "exactly one")
    assert_error(client.post("/api/search/personalized", json={"query": "band", "user": "ghost"}), 404, "ghost")


# ----------------------------------------------------------------------------- items
def test_item_similar_lookup_explain(client):
    it = client.get("/api/items/jazz3").json()
    assert it["name"] == "Jazz Band 3" and "jazz" in it["description"].lower()
    assert it["modalities"] == ["text", "cf", "audio"] and it["space_modalities"] == ["text", "cf", "audio"]
    assert client.get("/api/items/jazz0").json()["modalities"] == ["text", "cf"]  # j % 4 == 0: no audio vector
    sim = client.get("/api/items/jazz3/similar", params={"k": 5})
    assert sim.status_code == 200 and "jazz3" not in _ids(sim) and sum(_cluster(i) == "jazz" for i in _ids(sim)) >= 4
    sim = client.get("/api/items/jazz3/similar", params={"k": 5, "tag": "metal"})
    assert _ids(sim) and all(_cluster(i) == "metal" for i in _ids(sim))
    # names resolve as well as ids
    assert client.get("/api/items/Jazz Band 3").json()["item_id"] == "jazz3"
    found = client.get("/api/items", params={"name": "metal band 1"}).json()["items"]
    assert found[0]["item_id"] == "metal1"
    ex = client.get("/api/explain", params={"a": "jazz1", "b": "jazz2"}).json()
    assert "jazz" in ex["shared_tags"] and ex["cosine"] > 0.5
    # where jazz2 stands in what /api/items/jazz1/similar serves, and each list's part of its score
    served = client.get("/api/items/jazz1/similar", params={"k": 200}).json()["items"]
    rank = [h["item_id"] for h in served].index("jazz2")
    assert ex["names"] == {"a": "Jazz Band 1", "b": "Jazz Band 2"} and ex["similar"]["rank"] == rank + 1
    assert abs(sum(li["part"] for li in ex["similar"]["lists"]) - served[rank]["score"]) < 1e-9
    # why a hit is a hit: its place in what /api/search serves, each hybrid list's part, the query's words it has
    hits = client.get("/api/search", params={"q": "smooth jazz", "k": 200}).json()["items"]
    why = client.get("/api/explain/search", params={"q": "smooth jazz", "item": hits[1]["name"]})
    assert why.status_code == 200, why.text
    why = why.json()
    assert (why["item"], why["rank"], why["mode"], why["score_kind"]) == (hits[1]["item_id"], 2, "hybrid", "rrf")
    assert abs(sum(li["part"] for li in why["lists"]) - hits[1]["score"]) < 1e-9 and why["terms"]
    assert_error(client.get("/api/explain/search", params={"q": "jazz", "item": "nope"}), 404, "nope")
    assert_error(client.get("/api/explain/search", params={"q": "jazz", "item": "jazz1", "mode": "fuzzy"}), 422, "mode")
    # why a recommendation: its place in what /api/recommend serves, each term, the history items that bring it
    recs = client.post("/api/recommend", json={"items": ["jazz1", "jazz2"], "k": 5}).json()["items"]
    why = client.get("/api/explain/recommend", params={"item": recs[1]["item_id"], "items": ["jazz1", "Jazz Band 2"]})
    assert why.status_code == 200, why.text
    why = why.json()
    assert why["rank"] == 2 and abs(sum(p["value"] for p in why["parts"]) - recs[1]["score"]) < 1e-9
    assert {b["item_id"] for b in why["because"]} == {"jazz1", "jazz2"}
    u = client.get("/api/users", params={"limit": 1}).json()["users"][0]["user_id"]
    first = client.post("/api/recommend", json={"user": u, "k": 1}).json()["items"][0]
    assert client.get("/api/explain/recommend", params={"item": first["item_id"], "user": u}).json()["rank"] == 1
    assert_error(client.get("/api/explain/recommend", params={"item": "jazz1"}), 422, "exactly one of user or items")
    away = client.post("/api/recommend", json={"items": ["jazz1"], "negative": ["jazz2"], "k": 3}).json()["items"]
    why = client.get("/api/explain/recommend", params={"item": away[2]["item_id"], "items": ["jazz1"],
                                                       "negative": ["jazz2"]}).json()
    assert why["rank"] == 3 and abs(sum(p["value"] for p in why["parts"]) - away[2]["score"]) < 1e-9
    assert_error(client.get("/api/explain/recommend", params={"item": "nope", "items": ["jazz1"]}), 404, "nope")
    assert_error(client.get("/api/items/nope"), 404, "unknown item")
    assert_error(client.get("/api/items/nope/similar"), 404, "unknown item")
    assert_error(client.get("/api/items/jazz3/similar", params={"k": 0}), 422, "k")
    assert_error(client.get("/api/explain", params={"a": "jazz1", "b": "nope"}), 404, "nope")
    assert_error(client.get("/api/items", params={"name": ""}), 422, "name")


# ----------------------------------------------------------------------------- recommend
def test_recommend_from_items_and_user(client):
    r = client.post("/api/recommend", json={"items": ["metal1", "metal2"], "k": 5})
    assert r.status_code == 200
    assert {"metal1", "metal2"}.isdisjoint(_ids(r)) and sum(_cluster(i) == "metal" for i in _ids(r)) >= 4
    kept = client.post("/api/recommend", json={"items": ["metal1"], "k": 3, "exclude_seen": False})
    assert _ids(kept)[0] == "metal1"
    users = client.get("/api/users", params={"limit": 5}).json()["users"]
    assert len(users) == 5 and users[0]["n_items"] >= users[-1]["n_items"]
    u = users[0]["user_id"]
    hist = client.post("/api/recommend", json={"user": u, "k": 50, "exclude_seen": False})
    r = client.post("/api/recommend", json={"user": u, "k": 10})
    assert r.status_code == 200 and r.json()["items"]
    # the user's cluster dominates and nothing already seen comes back
    top_cluster = _cluster(_ids(hist)[0])
    assert sum(_cluster(i) == top_cluster for i in _ids(r)) >= 5
    r2 = client.post("/api/recommend", json={"user": u, "k": 10, "filters": {"ranges": {"year": {"min": 2005}}}})
    assert all(h["metadata"]["year"] >= 2005 for h in r2.json()["items"])


@pytest.mark.parametrize("body,status,needle", [
    ({"user": "ghost"}, 404, "ghost"),
    ({"items": ["metal1", "nope"]}, 404, "nope"),
    ({"items": []}, 422, "items"),
    ({}, 422, "exactly one"),
    ({"user": "x", "items": ["metal1"]}, 422, "exactly one"),
    ({"items": ["metal1"], "k": 0}, 422, "k"),
    ({"items": ["metal1"], "k": 201}, 422, "k"),
    ({"items": ["metal1"], "surprise": 1}, 422, "surprise"),
    ({"items": ["metal1"], "filters": {"ranges": {"year": {"min": "old"}}}}, 422, "min"),
    ({"items": "metal1"}, 422, "items"),
])
def test_recommend_bad_input(client, body, status, needle):
    assert_error(client.post("/api/recommend", json=body), status, needle)


def test_malformed_json_wrong_type_and_oversized(client):
    r = client.post("/api/recommend", content=b'{"items": ["metal1",', headers={"content-type": "application/json"})
    assert_error(r, 422, "malformed json")
    assert_error(client.post("/api/recommend", content=b"[1, 2]", headers={"content-type": "application/json"}), 422)
    big = b'{"items": ["' + b"a" * (3 * 1024 * 1024) + b'"]}'
    assert_error(client.post("/api/recommend", content=big, headers={"content-type": "application/json"}), 413, "larger")

    def chunks():  # no Content-Length: the streamed size is enforced too
        for _ in range(40):
            yield b"x" * 100_000
    assert_error(client.post("/api/recommend", content=chunks(), headers={"content-type": "application/json"}), 413)
    assert_error(client.delete("/api/search"), 405)
    assert_error(client.get("/api/nothing-here"), 404)


# ----------------------------------------------------------------------------- playlists
def test_playlist_continue(client):
    r = client.post("/api/playlists/continue", json={"items": ["pop1", "pop2", "pop1"], "k": 8})
    assert r.status_code == 200, r.text
    ids = _ids(r)
    assert len(ids) == 8 and len(set(ids)) == 8 and {"pop1", "pop2"}.isdisjoint(ids)
    assert r.json()["seeds"] == ["pop1", "pop2"]
    assert r.json()["coherence"] > 0.5 and r.json()["coherence_seeds"] > 0.5
    assert sum(_cluster(i) == "pop" for i in ids) >= 6
    # artist diversity: this catalog has no artist field, items are artists -> a note, no duplicates
    r = client.post("/api/playlists/continue", json={"items": ["pop1"], "k": 5, "max_per_artist": 1, "diversity": 0.5})
    assert r.status_code == 200 and len(set(_ids(r))) == 5 and r.json()["notes"]
    # a metadata field works as the artist: at most one item per genre value
    r = client.post("/api/playlists/continue", json={"items": ["pop1"], "k": 5, "max_per_artist": 1,
                                                     "artist_field": "genre"})
    genres = [tuple(h["metadata"]["genre"]) for h in r.json()["items"]]
    assert len(genres) == len(set(genres)) <= 3
    assert_error(client.post("/api/playlists/continue", json={"items": []}), 422, "items")
    assert_error(client.post("/api/playlists/continue", json={"items": ["nope"]}), 404, "nope")
    assert_error(client.post("/api/playlists/continue", json={"items": ["pop1"], "diversity": 1.0}), 422, "diversity")


def test_playlist_continue_takes_the_method_the_cli_and_python_take(client):
    # knn is what auto does without a session model; session needs one (this space has none)
    knn = client.post("/api/playlists/continue", json={"items": ["pop1", "pop2"], "k": 5, "method": "knn"})
    auto = client.post("/api/playlists/continue", json={"items": ["pop1", "pop2"], "k": 5})
    assert knn.status_code == 200 and _ids(knn) == _ids(auto) and knn.json()["score_kind"] == "cosine", knn.text
    assert_error(client.post("/api/playlists/continue", json={"items": ["pop1"], "method": "session"}), 422,
                 "no session model is attached")
    assert_error(client.post("/api/playlists/continue", json={"items": ["pop1"], "method": "mmr"}), 422, "method")


def test_playlist_generation_reports_coherence(client):
    r = client.post("/api/playlists/generate", json={"query": "jazz", "n": 6, "coherence": 0.5})
    assert r.status_code == 200, r.text
    body = r.json()
    ids = _ids(r)
    assert len(ids) == 6 and len(set(ids)) == 6
    st = body["stats"]
    assert -1 <= st["coherence"] <= 1 and st["coherence_plain_topn"] is not None and st["relevance"] is not None
    assert "mean pairwise cosine" in body["coherence_measure"]
    one = client.post("/api/playlists/generate", json={"query": "jazz", "n": 1}).json()
    assert len(one["items"]) == 1 and one["stats"]["coherence"] is None  # undefined for one item: null, not NaN
    none = client.post("/api/playlists/generate", json={"query": "jazz", "filters": {"tags": ["no-such-tag"]}})
    assert none.status_code == 200 and none.json()["items"] == []
    assert_error(client.post("/api/playlists/generate", json={"query": "  "}), 422, "empty")
    assert_error(client.post("/api/playlists/generate", json={"query": "jazz", "n": 0}), 422, "n")
    assert_error(client.post("/api/playlists/generate", json={"query": "jazz", "n": 1000}), 422, "n")


@pytest.mark.parametrize("body,needle", [
    ({"n": 10, "pool": 5}, "pool"),
    ({"coherence": False}, "coherence"),
    ({"coherence": True}, "coherence"),
    ({"coherence": "0.5"}, "coherence"),
    ({"coherence": 1.5}, "coherence"),
    ({"n": True}, "n"),
])
def test_playlist_generation_bad_input(client, body, needle):
    assert_error(client.post("/api/playlists/generate", json={"query": "jazz", **body}), 422, needle)


def test_playlist_generation_coherence_range_is_closed(client):
    r = client.post("/api/playlists/generate", json={"query": "jazz", "n": 5, "pool": 5, "coherence": 1})
    assert r.status_code == 200, r.text
    assert len(_ids(r)) == 5


def test_results_say_what_their_scores_are(client):
    kinds = {"multi": "cosine", "text": "text_cosine", "lexical": "bm25", "hybrid": "rrf", None: "rrf"}
    for mode, kind in kinds.items():
        params = {"q": "jazz", "k": 3, **({"mode": mode} if mode else {})}
        r = client.get("/api/search", params=params)
        assert r.status_code == 200 and r.json()["score_kind"] == kind, (mode, r.json())
    # the space's strategies: similar's RRF (fused, EASE and BM25 lists), recommend's z-scored blend
    assert client.post("/api/recommend", json={"items": ["jazz1"], "k": 3}).json()["score_kind"] == "blend"
    sim = client.get("/api/items/jazz1/similar", params={"k": 3}).json()
    assert sim["score_kind"] == "rrf" and all(0 < h["score"] < 3.5 / 61 for h in sim["items"])   # 3 lists, c = 60
    r = client.post("/api/query/vector", json={"modality": "audio", "vector": [0, 1.0, 0, 0], "k": 3})
    assert r.json()["score_kind"] == "cosine"
    r = client.post("/api/search/personalized", json={"query": "jazz", "items": ["jazz1"], "k": 3})
    assert r.json()["score_kind"] == "cosine"
    assert client.post("/api/playlists/generate", json={"query": "jazz", "n": 3}).json()["score_kind"] == "rrf"
    assert client.post("/api/playlists/continue", json={"items": ["jazz1"], "k": 3}).json()["score_kind"] == "cosine"


# ----------------------------------------------------------------------------- query by example
def test_query_by_vector(client):
    r = client.post("/api/query/vector", json={"modality": "audio", "vector": [0, 1.0, 0, 0], "k": 5})
    assert r.status_code == 200, r.text
    assert sum(_cluster(i) == "jazz" for i in _ids(r)) >= 4
    assert_error(client.post("/api/query/vector", json={"modality": "audio", "vector": [1, 2, 3]}), 422, "dimension 4")
    assert_error(client.post("/api/query/vector", json={"modality": "smell", "vector": [1, 2, 3, 4]}), 422,
                 "unknown modality")
    assert_error(client.post("/api/query/vector", json={"modality": "audio", "vector": []}), 422, "vector")
    r = client.post("/api/query/vector", content=b'{"modality": "audio", "vector": [NaN, 1, 0, 0]}',
                    headers={"content-type": "application/json"})
    assert_error(r, 422, "vector")


def test_query_by_media_file(client):
    """The tiny space's audio modality comes from precomputed vectors: a file cannot be
    encoded into it, and the service says so (409). Bad uploads are 4xx."""
    files = {"file": ("clip.wav", b"RIFF0000WAVEfmt ", "audio/wav")}
    assert_error(client.post("/api/query/media", data={"modality": "audio"}, files=files), 409, "/api/query/vector")
    assert_error(client.post("/api/query/media", data={"modality": "smell"}, files=files), 422, "unknown modality")
    assert_error(client.post("/api/query/media", data={"modality": "audio"}), 422, "file")


def test_media_uploaded_to_the_text_modality_says_to_send_text(client):
    files = {"file": ("clip.wav", b"RIFF0000WAVEfmt ", "audio/wav")}
    r = client.post("/api/query/media", data={"modality": "text"}, files=files)
    assert_error(r, 422, "text modality", "encoded from text", "send the text as q")
    assert "query/vector" not in r.json()["detail"] and "precomputed" not in r.json()["detail"]
    r = client.post("/api/query/media", data={"modality": "cf"}, files=files)
    assert_error(r, 409, "interactions", "/api/query/vector")
    assert "precomputed" not in r.json()["detail"]


def test_query_by_media_file_with_an_encoder(client, app, monkeypatch):
    """With a space whose audio modality was built from audio files, the upload is saved to
    a temp file, encoded by the matching encoder and projected (encoder faked here: the real
    MusiCNN is an optional extra)."""
    import numpy as np

    import talkrec.encoders.audio as audio_mod
    space = app.state.service.space
    seen = {}

    class FakeEncoder:
        dim = 4
        last_failures: list = []

        def __init__(self, **kw):
            seen["kw"] = kw

        def encode(self, paths, **kw):
            seen["bytes"] = open(paths[0], "rb").read()
            return np.array([[0, 0, 1.0, 0]], dtype=np.float32)

    monkeypatch.setattr(audio_mod, "AudioEncoder", FakeEncoder)
    monkeypatch.setitem(space.config, "build_config",
                        {**space.config.get("build_config", {}), "content": {"audio": {"source": "audio_files"}}})
    r = client.post("/api/query/media", data={"modality": "audio", "k": "5"},
                    files={"file": ("clip.wav", b"fake-wav-bytes", "audio/wav")})
    assert r.status_code == 200, r.text
    assert seen["bytes"] == b"fake-wav-bytes" and seen["kw"]["cache"] is False
    assert sum(_cluster(i) == "pop" for i in _ids(r)) >= 4
    assert_error(client.post("/api/query/media", data={"modality": "audio"},
                             files={"file": ("clip.exe", b"x", "application/octet-stream")}), 422, ".wav")
    assert_error(client.post("/api/query/media", data={"modality": "audio"},
                             files={"file": ("clip.wav", b"", "audio/wav")}), 422, "empty")


def test_decade_spellings_are_normalized():
    from talkrec.index.filters import canonical_decade
    for raw in ("80s", "80's", "1980s", "1980's", "1985"):
        assert canonical_decade(raw) == "1980s", raw
    assert canonical_decade("00s") == "2000s" and canonical_decade("60s") == "1960s"
    assert canonical_decade("seen live") is None and canonical_decade("1337 h4x") is None


def test_query_encoder_batches_concurrent_queries_correctly(app):
    import concurrent.futures as cf

    import numpy as np
    enc = app.state.service.space.text_encoder()
    texts = [f"query number {i} about {'jazz' if i % 2 else 'metal'}" for i in range(24)]
    with cf.ThreadPoolExecutor(8) as ex:
        got = list(ex.map(lambda t: enc.encode(t, kind="query"), texts))
    ref = enc.encoder.encode(texts, kind="query")
    assert np.allclose(np.stack(got), ref, atol=1e-4)
    assert np.allclose(enc.encode(texts[3], kind="query"), ref[3], atol=1e-4)  # cached path


def test_hit_lists_are_the_documented_model_encoded_once(client, app):
    """Hit lists are encoded from the hits directly (no pydantic pass): the body is exactly
    what the ``HitsResponse`` model validates and serializes to, for search, similar and
    recommend, and values a catalog may hold that JSON has no type for still encode."""
    import json

    import numpy as np
    import pandas as pd

    from talkrec.service import schemas as S
    from talkrec.service.convert import hits_response
    from talkrec.space.hits import Hit, jsonable

    for r in (client.get("/api/search", params={"q": "jazz", "k": 40}),
              client.get("/api/items/jazz1/similar", params={"k": 7, "offset": 2}),
              client.post("/api/recommend", json={"items": ["metal1", "metal2"], "k": 5})):
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        body = r.json()
        assert json.loads(S.HitsResponse(**body).model_dump_json()) == body and body["items"]
    odd = {"when": pd.Timestamp("2020-01-02"), "n": np.int64(3), "x": np.float32(0.5), "nan": float("nan"),
           "na": pd.NA, "pair": (1, "a"), "nested": {1: np.float64(2.0)}, "ok": True}
    md = {k: jsonable(v) for k, v in odd.items()}
    assert md == {"when": "2020-01-02 00:00:00", "n": 3, "x": 0.5, "nan": None, "na": None, "pair": [1, "a"],
                  "nested": {"1": 2.0}, "ok": True}
    raw = {"n": np.int64(3), 7: np.float32(0.25), "obj": object.__name__}       # not from jsonable: encoded anyway
    resp = hits_response([Hit("a", "A", float("nan"), md), Hit("b", "B", 0.5, raw)], k=2, offset=0, t0=0.0)
    out = json.loads(resp.body)
    assert out["items"][0] == {"item_id": "a", "name": "A", "score": 0.0, "metadata": md}
    assert out["items"][1]["metadata"] == {"n": 3, "7": 0.25, "obj": "object"}
    assert S.HitsResponse(**out).k == 2


def test_an_empty_list_says_why_as_the_cli_does(client):
    """An empty list of search, similar or recommend has a ``note``: no item passes the filter
    (with the numeric fields' ranges), or how many do; a list with hits has none."""
    r = client.get("/api/search", params={"q": "metal band", "where": "year>=2100"}).json()
    assert r["items"] == [] and r["note"].startswith("no results: no item passes the filter (the items have year 1980 to")
    r = client.get("/api/search", params={"q": "zzzqqq", "mode": "lexical", "tag": "metal"}).json()
    assert r["items"] == [] and r["note"] == "no results among the 20 items that pass the filter"
    r = client.get("/api/search", params={"q": "zzzqqq", "mode": "lexical"}).json()
    assert r["items"] == [] and r["note"] == "no results"
    r = client.get("/api/items/metal1/similar", params={"where": "year<1900"}).json()
    assert r["items"] == [] and "no item passes the filter" in r["note"]
    r = client.post("/api/recommend", json={"items": ["metal1"], "filters": {"tags": ["nosuchtag"]}}).json()
    assert r["items"] == [] and r["note"] == "no results: no item passes the filter"
    r = client.post("/api/recommend/batch", json={"requests": [{"items": ["metal1"], "filters": {"tags": ["nosuchtag"]}},
                                                               {"items": ["metal1"]}]}).json()
    assert r["results"][0]["note"] == "no results: no item passes the filter" and r["results"][1]["note"] is None
    assert client.get("/api/search", params={"q": "metal band"}).json()["note"] is None
