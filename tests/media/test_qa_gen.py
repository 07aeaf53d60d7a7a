"""GEN against a local mock OpenAI-compatible server, through the paths users call
(``talkrec build`` with ``descriptions.second: gen``, ``generate_descriptions``): an endpoint
that is down or refuses the key stops the batch with a clear error (it used to build a space
without any GEN text, exit 0), ``Retry-After`` is honoured, odd answers are named, the API
key never reaches a file, and the cache neither pays twice nor reuses stale texts.
No network: the server listens on 127.0.0.1, on a free port."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from talkrec.descriptions.gen import (BackendError, EndpointError, GenCache, GenReport, OpenAICompatibleBackend,
                                      backend_from_config, build_prompt, generate_descriptions)
from talkrec.descriptions.gen.backends import retry_after
from talkrec.errors import InputError, TalkrecError

SECRET = "sk-qa-SECRET-0123456789"


def _tags_of(body: dict[str, Any]) -> str:
    return body["messages"][-1]["content"].split("own words: ")[1].split(". Do not add")[0]


def _ok(body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    data = {"choices": [{"message": {"role": "assistant", "content": f"About: {_tags_of(body)}."}}]}
    return 200, {"Content-Type": "application/json"}, json.dumps(data).encode()


Answer = Callable[[int, dict[str, Any]], tuple[int, dict[str, str], bytes]]


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, *a: Any) -> None:
        pass

    def do_POST(self) -> None:
        st = self.server.state
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with st["lock"]:
            n = len(st["requests"])
            st["requests"].append({"auth": self.headers.get("Authorization"), "body": body, "t": time.monotonic()})
        code, headers, data = st["answer"](n, body)
        try:
            self.send_response(code)
            for k, v in {"Content-Length": str(len(data)), **headers}.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out first
            pass


@pytest.fixture()
def mock():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.state = {"lock": threading.Lock(), "requests": [], "answer": lambda n, body: _ok(body)}
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _templates(n: int) -> tuple[dict[str, str], dict[str, list[str]]]:
    tpl = {f"a{i}": f"The name of this artist is Band {i} and is described by the following tags: "
                    f"Genre: rock{i}, pop. Mood: calm." for i in range(n)}
    return tpl, {k: [f"rock{k[1:]}", "pop", "calm"] for k in tpl}


def _backend(url: str, **kw: Any) -> OpenAICompatibleBackend:
    return OpenAICompatibleBackend(url, "mock", **{"concurrency": 2, "timeout": 5, "backoff": 0.01,
                                                   "max_retries": 1, **kw})


# ---------------------------------------------------------------- the build, as users run it
def _catalog(tmp: Path) -> Path:
    rows = ["item_id,name,tags"] + [f"{g}{j},{g.title()} Band {j},{g}|band" for g in ("metal", "jazz", "pop")
                                    for j in range(8)]
    (tmp / "items.csv").write_text("\n".join(rows) + "\n")
    plays = ["user_id,item_id,weight"] + [f"u{g}{u},{g}{(u + k) % 8},{1 + k}" for g in ("metal", "jazz", "pop")
                                          for u in range(6) for k in range(4)]
    (tmp / "plays.csv").write_text("\n".join(plays) + "\n")
    return tmp


def _config(tmp: Path, url: str, **gen: Any) -> Path:
    cfg = {"name": "qa", "dataset": "generic", "output": str(tmp / "space"), "seed": 0,
           "catalog": {"items": {"path": str(tmp / "items.csv"), "tags_column": "tags"},
                       "interactions": {"path": str(tmp / "plays.csv")}},
           "descriptions": {"template": {"header": "artist"}, "second": "gen",
                            "gen": {"backend": "openai", "base_url": url, "model": "mock", "concurrency": 2,
                                    "max_retries": 1, "backoff": 0.01, "timeout": 5, **gen}},
           "cf": {"tune": False, "params": {"factors": 4, "iterations": 5}},
           "fusion": {"max_epochs": 3, "batch_size": 16, "hidden_dim": 16, "out_dim": 8}}
    path = tmp / "build.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _cli(*args: str) -> Any:
    from typer.testing import CliRunner

    from talkrec.cli import app
    return CliRunner().invoke(app, list(args))


def test_build_with_gen_keeps_the_key_out_of_every_file_and_resumes(mock: Any, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_GEN_KEY", SECRET)
    cfg = _config(_catalog(tmp_path), mock.url, api_key_env="QA_GEN_KEY")
    res = _cli("build", str(cfg), "--no-progress", "--quiet")
    assert res.exit_code == 0, res.output
    reqs = mock.state["requests"]
    assert len(reqs) == 24 and all(r["auth"] == f"Bearer {SECRET}" for r in reqs)
    for f in tmp_path.rglob("*"):  # the space, its build cache (gen-cache.jsonl), the config
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f
    assert SECRET not in res.output
    space = json.loads((tmp_path / "space" / "space.json").read_text())
    assert space["descriptions"]["views"] == ["template", "gen"]
    # a rerun pays nothing; another model generates everything again
    assert _cli("build", str(cfg), "--no-progress", "--quiet").exit_code == 0
    assert len(reqs) == 24
    cfg2 = _config(tmp_path, mock.url, api_key_env="QA_GEN_KEY", model="mock-2")
    assert _cli("build", str(cfg2), "--no-progress", "--quiet").exit_code == 0
    assert len(reqs) == 48 and reqs[-1]["body"]["model"] == "mock-2"


def test_build_with_the_endpoint_down_fails_fast_and_leaves_the_space(tmp_path: Path, mock: Any) -> None:
    """Before: every item failed after its retries, the build wrote a space without a single
    GEN text and exited 0. Now it stops after a few items, exit 2, naming an item."""
    _catalog(tmp_path)
    assert _cli("build", str(_config(tmp_path, mock.url)), "--no-progress", "--quiet").exit_code == 0
    before = (tmp_path / "space" / "space.json").read_bytes()
    mock.shutdown()
    mock.server_close()
    t0 = time.monotonic()
    res = _cli("build", str(_config(tmp_path, mock.url, model="other")), "--no-progress", "--quiet")
    assert res.exit_code == 2, res.output
    assert "GEN stopped" in res.output and "failed in a row" in res.output and "item '" in res.output
    assert time.monotonic() - t0 < 60
    assert (tmp_path / "space" / "space.json").read_bytes() == before


def test_build_refuses_a_key_in_the_config_and_an_unset_key_variable(tmp_path: Path, mock: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _catalog(tmp_path)
    res = _cli("build", str(_config(tmp_path, mock.url, api_key=SECRET)), "--no-progress", "--quiet")
    assert res.exit_code == 2 and "api_key_env" in res.output and SECRET not in res.output
    # an unset variable used to send $OPENAI_API_KEY to this base_url instead
    monkeypatch.delenv("QA_UNSET_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-not-for-this-server")
    res = _cli("build", str(_config(tmp_path, mock.url, api_key_env="QA_UNSET_KEY")), "--no-progress", "--quiet")
    assert res.exit_code == 2 and "QA_UNSET_KEY" in res.output and "not set" in res.output
    assert mock.state["requests"] == [] and not (tmp_path / "space").exists()


# ---------------------------------------------------------------- answers of every kind
def test_unauthorized_stops_the_batch_at_once(mock: Any, tmp_path: Path) -> None:
    mock.state["answer"] = lambda n, body: (401, {}, b'{"error": "invalid api key"}')
    tpl, tags = _templates(20)
    with pytest.raises(EndpointError, match="401.*API key") as e:
        generate_descriptions(tpl, tags, _backend(mock.url), tmp_path / "g.jsonl")
    assert isinstance(e.value, TalkrecError) and "api_key_env" in str(e.value)
    assert len(mock.state["requests"]) <= 4  # those in flight (2) and started meanwhile (2), not 20


def test_not_found_names_base_url_and_model(mock: Any, tmp_path: Path) -> None:
    mock.state["answer"] = lambda n, body: (404, {}, b"no such route")
    with pytest.raises(EndpointError, match="base_url.*'mock'"):
        generate_descriptions(*_templates(3), _backend(mock.url), tmp_path / "g.jsonl")


def test_retry_after_is_honoured(mock: Any) -> None:
    mock.state["answer"] = lambda n, body: (429, {"Retry-After": "1"}, b"slow down") if n == 0 else _ok(body)
    b = _backend(mock.url, concurrency=1)
    assert b.generate(build_prompt("Band. Genre: rock.", ["rock"])) == "About: rock."
    t = [r["t"] for r in mock.state["requests"]]
    assert t[1] - t[0] >= 0.9  # not the 0.01 s backoff
    assert retry_after("3") == 3.0 and retry_after(None) is None and retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: now


def test_server_errors_are_retried_then_named(mock: Any, tmp_path: Path) -> None:
    mock.state["answer"] = lambda n, body: (503, {"Retry-After": "0"}, b"busy") if n < 2 else _ok(body)
    rep = GenReport()
    out = generate_descriptions(*_templates(2), _backend(mock.url, concurrency=1, max_retries=2), tmp_path / "g.jsonl",
                                report=rep)
    assert len(out) == 2 and not rep.failed
    mock.state["answer"] = lambda n, body: (500, {}, b"oops")
    rep = GenReport()
    tpl, _tags = _templates(3)
    tpl = {f"b{i}": t.replace("Band", "Other") for i, t in enumerate(tpl.values())}
    assert generate_descriptions(tpl, None, _backend(mock.url), tmp_path / "g.jsonl", report=rep) == {}
    assert set(rep.failed) == set(tpl) and all("HTTP 500: oops" in v for v in rep.failed.values())


@pytest.mark.parametrize("payload, message", [
    (b"{not json", "not JSON"),
    (b'{"error": {"message": "model overloaded"}}', "no choices"),
    (b'{"choices": []}', "no choices"),
    (b'{"choices": [{"message": {"content": ["a", "list"]}}]}', "not text"),
])
def test_malformed_answers_are_named(mock: Any, payload: bytes, message: str) -> None:
    mock.state["answer"] = lambda n, body: (200, {"Content-Type": "application/json"}, payload)
    with pytest.raises(BackendError, match=f"2 attempts: .*{message}"):
        _backend(mock.url).generate(build_prompt("Band. Genre: rock.", ["rock"]))
    assert len(mock.state["requests"]) == 2


def test_timeout_is_named(mock: Any) -> None:
    def slow(n: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        time.sleep(1.5)
        return _ok(body)
    mock.state["answer"] = slow
    with pytest.raises(BackendError, match="1 attempts: ReadTimeout: "):
        _backend(mock.url, timeout=0.3, max_retries=0).generate(build_prompt("Band. Genre: rock.", ["rock"]))


def test_empty_echoed_long_and_foreign_answers(mock: Any, tmp_path: Path) -> None:
    tpl, tags = _templates(4)
    kinds = {"rock0": "", "rock1": None, "rock2": ("lorem ipsum " * 400), "rock3": "Un groupe de musique connu."}

    def answer(n: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        tag = _tags_of(body).split(";")[0]
        content = kinds[tag] if kinds[tag] is not None else body["messages"][-1]["content"]  # an echo
        return 200, {}, json.dumps({"choices": [{"message": {"content": content}}]}).encode()
    mock.state["answer"] = answer
    rep = GenReport()
    out = generate_descriptions(tpl, tags, _backend(mock.url), tmp_path / "g.jsonl", report=rep, on_flagged="drop")
    assert out == {} and set(rep.failed) == {"a0"} and "empty output" in rep.failed["a0"]
    assert "copies_template" in rep.flagged["a1"]
    assert "repetitive" in rep.flagged["a2"] and "low_coverage" in rep.flagged["a3"]


# ---------------------------------------------------------------- the cache
def test_an_interrupted_run_resumes_without_paying_twice(mock: Any, tmp_path: Path) -> None:
    """The endpoint dies after 5 answers: the batch stops; the rerun asks only for the rest."""
    mock.state["answer"] = lambda n, body: _ok(body) if n < 5 else (502, {}, b"bad gateway")
    tpl, tags = _templates(30)
    with pytest.raises(BackendError, match="in a row.*5 text"):
        generate_descriptions(tpl, tags, _backend(mock.url, concurrency=1), tmp_path / "g.jsonl",
                              max_failures_in_a_row=3)
    assert len(GenCache(tmp_path / "g.jsonl").entries) == 5
    asked = len(mock.state["requests"])
    assert asked <= 5 + (3 + 1) * 2               # (+ the one item started meanwhile), not 30 x 2 attempts
    mock.state["answer"] = lambda n, body: _ok(body)
    rep = GenReport()
    out = generate_descriptions(tpl, tags, _backend(mock.url), tmp_path / "g.jsonl", report=rep)
    assert len(out) == 30 and rep.cached == 5 and rep.generated == 25
    assert len(mock.state["requests"]) == asked + 25
    # another prompt (max_words) or model: nothing stale is reused
    rep = GenReport()
    generate_descriptions(tpl, tags, _backend(mock.url), tmp_path / "g.jsonl", report=rep, max_words=40)
    assert rep.cached == 0 and rep.generated == 30
    rep = GenReport()
    generate_descriptions(tpl, tags, _backend(mock.url, temperature=0.7), tmp_path / "g.jsonl", report=rep)
    assert rep.cached == 0 and rep.generated == 30


def test_a_cache_line_without_text_is_generated_again(mock: Any, tmp_path: Path) -> None:
    tpl, tags = _templates(2)
    generate_descriptions(tpl, tags, _backend(mock.url), tmp_path / "g.jsonl")
    lines = (tmp_path / "g.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    lines[0] = json.dumps({**rec, "text": None})   # before: a None text was served from the cache
    (tmp_path / "g.jsonl").write_text("\n".join(lines) + "\n")
    rep = GenReport()
    out = generate_descriptions(tpl, tags, _backend(mock.url), tmp_path / "g.jsonl", report=rep)
    assert rep.cached == 1 and rep.generated == 1 and all(isinstance(t, str) and t for t in out.values())


def test_concurrency_is_respected_and_checked(mock: Any, tmp_path: Path) -> None:
    state = {"now": 0, "max": 0}
    lock = threading.Lock()

    def answer(n: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        return _ok(body)
    mock.state["answer"] = answer
    generate_descriptions(*_templates(12), _backend(mock.url, concurrency=3), tmp_path / "g.jsonl")
    assert 2 <= state["max"] <= 3
    for bad in (0, -1, "4", 2.5, True):
        with pytest.raises(InputError, match="concurrency"):
            backend_from_config({"backend": "openai", "base_url": mock.url, "model": "m", "concurrency": bad})
    for field, bad in (("timeout", 0), ("max_retries", -1), ("backoff", "x")):
        with pytest.raises(InputError, match=field):
            backend_from_config({"backend": "openai", "base_url": mock.url, "model": "m", field: bad})


def test_batch_options_and_config_keys_are_checked(mock: Any, tmp_path: Path) -> None:
    tpl, tags = _templates(2)
    b = _backend(mock.url)
    for kw, field in (({"on_flagged": "templte"}, "on_flagged"), ({"on_error": "ignore"}, "on_error"),
                      ({"min_coverage": 80}, "min_coverage"), ({"max_words": 0}, "max_words")):
        with pytest.raises(InputError, match=field) as e:   # a typo in on_flagged used to keep every flagged text
            generate_descriptions(tpl, tags, b, tmp_path / "g.jsonl", **kw)
        assert e.value.field == f"descriptions.gen.{field}"
    assert mock.state["requests"] == []
    with pytest.raises(InputError, match="did you mean 'concurrency'") as e:
        backend_from_config({"backend": "openai", "base_url": mock.url, "model": "m", "concurrncy": 4})
    assert e.value.field == "descriptions.gen.concurrncy"


def test_a_text_far_longer_than_asked_is_flagged(mock: Any, tmp_path: Path) -> None:
    """A server that ignores max_tokens: 400 distinct words for a 120-word paragraph."""
    words = " ".join(f"w{i}" for i in range(400))
    mock.state["answer"] = lambda n, body: (200, {}, json.dumps(
        {"choices": [{"message": {"content": f"About {_tags_of(body)}. {words}"}}]}).encode())
    rep = GenReport()
    tpl, tags = _templates(1)
    out = generate_descriptions(tpl, tags, _backend(mock.url), tmp_path / "g.jsonl", report=rep, on_flagged="template")
    assert rep.flagged["a0"] == ["too_long"] and out["a0"] == tpl["a0"]


def test_a_config_without_api_key_env_sends_no_key(mock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$OPENAI_API_KEY used to go to whatever base_url a config named."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-not-for-this-server")
    b = backend_from_config({"backend": "openai", "base_url": mock.url, "model": "m", "max_retries": 0})
    generate_descriptions(*_templates(1), b, tmp_path / "g.jsonl")
    assert [r["auth"] for r in mock.state["requests"]] == [None]
    mock.state["answer"] = lambda n, body: (401, {}, b"key please")
    with pytest.raises(EndpointError, match="none was sent"):
        b.generate(build_prompt("Band. Genre: rock.", ["rock"]))


def test_a_base_url_with_credentials_or_no_scheme_is_refused() -> None:
    for bad in ("http://user:sk-123@127.0.0.1:9/v1", "127.0.0.1:8000/v1", None):
        with pytest.raises(InputError, match="URL|user or password") as e:
            backend_from_config({"backend": "openai", "base_url": bad, "model": "m"})
        assert e.value.field == "descriptions.gen.base_url" and "sk-123" not in str(e.value)


def test_the_evaluations_gen_view_through_the_mock(mock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``music.gen`` of ``talkrec evaluate``: the texts, the info for the report (no key), and a
    clear stop when the endpoint is down (it used to report a MULTI TEMPLATE+GEN row built
    without a single GEN text)."""
    import numpy as np

    from talkrec.evaluation.gen_view import gen_view
    monkeypatch.setenv("QA_GEN_KEY", SECRET)
    tpl, _ = _templates(12)
    ids = list(tpl)
    gcfg = {"backend": "openai", "base_url": mock.url, "model": "mock", "api_key_env": "QA_GEN_KEY", "limit": 5,
            "max_retries": 0, "cache": "unused"}
    out, info = gen_view(gcfg, ids, tpl, np.arange(12.0), tmp_path / "g.jsonl")
    assert sorted(out) == ["a10", "a11", "a7", "a8", "a9"] and info["generated"] == 5 and info["failed"] == 0
    assert SECRET not in json.dumps(info) and SECRET.encode() not in (tmp_path / "g.jsonl").read_bytes()
    mock.shutdown()
    mock.server_close()
    with pytest.raises(BackendError, match="GEN stopped"):
        gen_view({**gcfg, "limit": None, "model": "other"}, ids, tpl, np.arange(12.0), tmp_path / "g.jsonl")


def test_a_build_lists_the_items_gen_could_not_write_and_on_error_raise_stops_it(mock: Any, tmp_path: Path) -> None:
    """A few items failing (not a whole endpoint down): the build goes on without their GEN
    text, as before, and its report now names them (``gen.failed_items``); ``on_error: raise``
    in the config stops the build on the first (the build did not pass the setting on)."""
    def answer(n: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if "Jazz Band 3" in json.dumps(body):
            return 500, {}, b'{"error": "boom"}'
        return _ok(body)
    mock.state["answer"] = answer
    _catalog(tmp_path)
    res = _cli("build", str(_config(tmp_path, mock.url)), "--no-progress", "--quiet")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "space" / "build_report.json").read_text())
    gen = next(s for s in report["stages"] if "gen" in s)["gen"]
    assert gen["failed"] == 1 and gen["failed_items"][0].startswith("jazz3: "), gen
    res = _cli("build", str(_config(tmp_path, mock.url, model="other", on_error="raise")), "--no-progress", "--quiet")
    assert res.exit_code == 2 and "jazz3" in res.output, res.output
