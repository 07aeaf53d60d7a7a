"""``--api-key ""`` is no key: beyond loopback, writes stay refused (it used to open them,
while ``/api/version`` said the server was write-protected)."""
from __future__ import annotations

from fastapi.testclient import TestClient

from talkrec.service.app import create_app
from tiny_data import copy_space


def test_an_empty_api_key_does_not_open_writes_beyond_loopback(tiny_space_dir, tmp_path, caplog):
    d = copy_space(tiny_space_dir, tmp_path / "space")
    with caplog.at_level("WARNING", logger="talkrec.service.app"):
        app = create_app(d, host="0.0.0.0", api_key="")
    assert "without an API key" in caplog.text
    with TestClient(app) as c:
        r = c.post("/api/items", json={"items": [{"item_id": "o", "name": "O", "tags": ["x"]}]})
        assert r.status_code == 403 and r.json()["error"] == "writes_refused"
        assert c.delete("/api/items/jazz1").status_code == 403
        assert c.get("/api/items/o").status_code == 404
    app.state.service.space.close()
