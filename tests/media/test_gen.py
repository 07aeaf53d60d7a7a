"""GEN descriptions: prompt builder, tag-coverage check, cache/resume, the HTTP backend
against a real loopback HTTP server, and (slow) real generation with the bundled model,
in-process through transformers and through ``transformers serve``."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from talkrec.descriptions.gen import (GenCache, GenReport, OpenAICompatibleBackend, TransformersBackend, build_prompt,
                                      cache_key, check_tags, clean_output, generate_descriptions, quality_flags,
                                      tags_from_template)
from talkrec.errors import InputError

METALLICA = ("The name of this artist is Metallica and is described by the following tags: "
             "Genre: thrash metal, heavy metal, hard rock. Decade: 80s. Place: san francisco. "
             "Mood: aggressive. Other: seen live, guitar solos.")
METALLICA_TAGS = ["thrash metal", "heavy metal", "hard rock", "80s", "san francisco", "aggressive", "seen live",
                  "guitar solos"]


# ------------------------------------------------------------------------------ prompt
def test_prompt_lists_every_tag_and_forbids_inventions() -> None:
    msgs = build_prompt(METALLICA, METALLICA_TAGS)
    assert [m["role"] for m in msgs] == ["system", "user"]
    user = msgs[1]["content"]
    assert METALLICA in user
    assert all(t in user.split("own words:")[1] for t in METALLICA_TAGS)
    assert "every one of these tags" in user and "Do not add any fact" in user
    assert "artist" in msgs[0]["content"] and "movie" in build_prompt(METALLICA, kind="movie")[0]["content"]
    assert build_prompt(METALLICA, METALLICA_TAGS, system=None)[0]["role"] == "user"
    assert "120 words" in user and "60 words" in build_prompt(METALLICA, METALLICA_TAGS, max_words=60)[1]["content"]
    with pytest.raises(InputError):
        build_prompt("   ", [])


def test_tags_parsed_from_template() -> None:
    assert tags_from_template(METALLICA) == METALLICA_TAGS
    assert tags_from_template("The name of this artist is X and is described by the following tags:") == []
    # the default tags of the prompt come from the template
    assert build_prompt(METALLICA) == build_prompt(METALLICA, METALLICA_TAGS)


# ------------------------------------------------------------------------- tag check
GOOD = ("Metallica is an aggressive thrash-metal band from San Francisco whose heavy metal and hard rock "
        "sound defined the 1980s; fans who have seen them live remember the guitar solos.")
BAD = "Metallica is a famous band from California that released many albums."


def test_tag_coverage_on_fixed_outputs() -> None:
    good = check_tags(GOOD, METALLICA_TAGS)
    assert good.coverage == 1.0 and good.ok and good.missing == ()
    bad = check_tags(BAD, METALLICA_TAGS)
    assert bad.coverage == 0.0 and not bad.ok and set(bad.missing) == set(METALLICA_TAGS)
    partial = check_tags("A thrash metal band, aggressive, from the eighties.", METALLICA_TAGS)
    assert set(partial.kept) == {"thrash metal", "aggressive", "80s"}
    assert partial.coverage == pytest.approx(3 / 8) and not partial.ok
    assert check_tags("anything", []).coverage == 1.0
    # matching is by whole words, case/accent/punctuation-insensitive
    assert check_tags("Beyonce sings R&B", ["r and b", "beyoncé"]).coverage == 1.0
    assert check_tags("metalcore", ["metal"]).coverage == 0.0
    assert check_tags("hiphop and female vocalist", ["hip-hop", "female vocalists"]).coverage == 1.0
    assert check_tags("x", ["a", "b", "c", "d", "e"], min_coverage=0.0).ok
    assert check_tags("music of the 2000s and 2010s, a 1960s feel", ["00s", "10s", "60s", "70s"]).kept == \
        ("00s", "10s", "60s")
    # a multi-word tag may be split by a couple of words, not by a whole sentence
    assert check_tags("we have seen them live", ["seen live"]).ok
    assert not check_tags("seen by many people over the years, live", ["seen live"]).ok
    assert not check_tags("live, then seen", ["seen live"]).ok


def test_quality_flags() -> None:
    assert quality_flags("", METALLICA) == ["empty"]
    assert quality_flags(GOOD, METALLICA) == []
    assert quality_flags(METALLICA + " Also loud.", METALLICA) == ["copies_template"]
    loop = "Genre: rnb; " + "Christian; " * 40
    assert quality_flags(loop, None) == ["repetitive"]


def test_clean_output() -> None:
    assert clean_output('Here is the rewritten description:\n\n"Metallica plays metal."') == "Metallica plays metal."
    assert clean_output("  Sure! Here's a paragraph:  A  b ") == "A b"
    assert clean_output("Plain text.") == "Plain text."
    assert clean_output("Emperor plays black metal. Rewrite this as one short paragraph: Emperor ...") == \
        "Emperor plays black metal."


# --------------------------------------------------------------------- batch + cache
class FakeBackend:
    """Deterministic backend: echoes the tags it is asked to keep (optionally only some)."""

    concurrency = 2

    def __init__(self, keep: int = 99, fail_on: set[str] | None = None, model: str = "fake-1") -> None:
        self.keep, self.fail_on, self.model = keep, fail_on or set(), model
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def config(self) -> dict[str, Any]:
        return {"backend": "fake", "model": self.model, "keep": self.keep}

    def generate(self, messages: list[dict[str, str]]) -> str:
        user = messages[-1]["content"]
        name = user.split("artist is ")[1].split(" and")[0]
        with self._lock:
            self.calls.append(name)
        if name in self.fail_on:
            raise RuntimeError(f"backend down for {name}")
        tags = user.split("own words: ")[1].split(". Do not add")[0].split("; ")
        return f"Here is the description: {name} is known for {', '.join(tags[:self.keep])}."


def _templates(n: int) -> tuple[dict[str, str], dict[str, list[str]]]:
    tpl, tags = {}, {}
    for i in range(n):
        t = [f"genre{i}", "rock", f"mood {i}"]
        tpl[f"a{i}"] = (f"The name of this artist is Artist{i} and is described by the following tags: "
                        f"Genre: {t[0]}, {t[1]}. Mood: {t[2]}.")
        tags[f"a{i}"] = t
    return tpl, tags


def test_generate_is_cached_and_resumable(tmp_path: Path) -> None:
    tpl, tags = _templates(6)
    cache = tmp_path / "gen.jsonl"
    b1 = FakeBackend(fail_on={"Artist2", "Artist4"})
    rep = GenReport()
    out = generate_descriptions(tpl, tags, b1, cache, report=rep)
    assert list(out) == ["a0", "a1", "a3", "a5"]  # input order, failures left out
    assert out["a0"] == "Artist0 is known for genre0, rock, mood 0."
    assert set(rep.failed) == {"a2", "a4"} and rep.generated == 4 and rep.cached == 0
    assert rep.mean_coverage == 1.0
    assert len(cache.read_text().splitlines()) == 4
    # rerun: only the two failed items are generated
    b2 = FakeBackend()
    rep2 = GenReport()
    out2 = generate_descriptions(tpl, tags, b2, cache, report=rep2)
    assert sorted(b2.calls) == ["Artist2", "Artist4"]
    assert list(out2) == list(tpl) and rep2.cached == 4 and rep2.generated == 2
    # a third run calls nothing
    b3 = FakeBackend()
    assert generate_descriptions(tpl, tags, b3, cache) == out2 and b3.calls == []
    # another model (or prompt) -> other keys, nothing reused
    b4 = FakeBackend(model="fake-2")
    generate_descriptions(tpl, tags, b4, cache)
    assert len(b4.calls) == 6
    with pytest.raises(RuntimeError, match="backend down"):
        generate_descriptions({"x": tpl["a1"].replace("Artist1", "Other")}, None,
                              FakeBackend(fail_on={"Other"}), None, on_error="raise")


def test_truncated_cache_line_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tpl, tags = _templates(3)
    cache = tmp_path / "gen.jsonl"
    generate_descriptions(tpl, tags, FakeBackend(), cache)
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])  # a crash mid-write
    b = FakeBackend()
    with caplog.at_level("WARNING"):
        out = generate_descriptions(tpl, tags, b, cache)
    assert "unreadable line" in caplog.text
    assert len(b.calls) == 1 and len(out) == 3
    assert len(GenCache(cache).entries) == 3


def test_low_coverage_is_flagged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tpl, tags = _templates(2)
    rep = GenReport()
    with caplog.at_level("WARNING"):
        out = generate_descriptions(tpl, tags, FakeBackend(keep=1), None, report=rep)
    assert set(rep.low_coverage) == {"a0", "a1"} and rep.coverage["a0"] == pytest.approx(1 / 3)
    assert "keeps 33% of its tags" in caplog.text and out["a0"].startswith("Artist0")
    assert rep.flagged["a0"] == ["low_coverage"]
    assert generate_descriptions(tpl, tags, FakeBackend(keep=1), None, on_flagged="template") == tpl
    assert generate_descriptions(tpl, tags, FakeBackend(keep=1), None, on_flagged="drop") == {}


def test_untagged_items_keep_their_template() -> None:
    tpl = {"x": "The name of this artist is Nobody and is described by the following tags:"}
    b = FakeBackend()
    rep = GenReport()
    assert generate_descriptions(tpl, {"x": []}, b, None, report=rep) == tpl
    assert b.calls == [] and rep.untagged == 1 and rep.coverage == {} and rep.flagged == {}


def test_cache_key_depends_on_prompt_and_params() -> None:
    m = build_prompt(METALLICA, METALLICA_TAGS)
    k = cache_key(m, {"model": "a", "temperature": 0.2})
    assert k == cache_key(m, {"temperature": 0.2, "model": "a"})
    assert k == cache_key(m, {"model": "a", "temperature": 0.2, "base_url": "http://elsewhere/v1"})
    assert k != cache_key(m, {"model": "a", "temperature": 0.3})
    assert k != cache_key(build_prompt(METALLICA, METALLICA_TAGS[:-1]), {"model": "a", "temperature": 0.2})


# ------------------------------------------------------------ HTTP backend, real server
class _Handler(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, *a: Any) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:  # noqa: N802
        st = self.server.state
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with st["lock"]:
            st["requests"].append((self.path, self.headers.get("Authorization"), body))
            st["inflight"] += 1
            st["max_inflight"] = max(st["max_inflight"], st["inflight"])
            fail = st["fail_first"] > 0
            if fail:
                st["fail_first"] -= 1
        if not fail:
            threading.Event().wait(0.05)  # let requests overlap
        # The request stops counting as in flight before its answer is sent: once the client
        # reads the answer it may send its next request, possibly before this thread runs again
        # (counting after the write made 4 of 3 allowed requests look concurrent).
        with st["lock"]:
            st["inflight"] -= 1
        if fail:
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b"busy")
            return
        user = body["messages"][-1]["content"]
        tags = user.split("own words: ")[1].split(". Do not add")[0]
        payload = {"choices": [{"message": {"role": "assistant", "content": f"About: {tags}."}}]}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture()
def fake_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.state = {"lock": threading.Lock(), "requests": [], "inflight": 0, "max_inflight": 0, "fail_first": 0}
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_openai_backend_concurrency_retries_auth(fake_server: Any, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{fake_server.server_address[1]}/v1"
    fake_server.state["fail_first"] = 2
    b = OpenAICompatibleBackend(url, "tiny", api_key="sk-test", concurrency=3, timeout=10, backoff=0.01)
    tpl, tags = _templates(9)
    rep = GenReport()
    out = generate_descriptions(tpl, tags, b, tmp_path / "g.jsonl", report=rep)
    assert len(out) == 9 and not rep.failed and rep.mean_coverage == 1.0
    reqs = fake_server.state["requests"]
    assert len(reqs) == 9 + 2  # two 503s were retried
    assert all(p == "/v1/chat/completions" and auth == "Bearer sk-test" for p, auth, _ in reqs)
    body = reqs[-1][2]
    assert body["model"] == "tiny" and body["temperature"] == 0.2 and body["seed"] == 0
    assert 2 <= fake_server.state["max_inflight"] <= 3
    # base_url may also be given with /chat/completions
    b1 = OpenAICompatibleBackend(url + "/chat/completions", "tiny", concurrency=1)
    assert b1.base_url == url and b1.generate(build_prompt(METALLICA, ["x"])) == "About: x."


def test_openai_backend_gives_up(tmp_path: Path) -> None:
    b = OpenAICompatibleBackend("http://127.0.0.1:9/v1", "m", concurrency=1, timeout=1, max_retries=1, backoff=0.01)
    rep = GenReport()
    out = generate_descriptions({"a": METALLICA}, None, b, tmp_path / "g.jsonl", report=rep)
    assert out == {} and "no answer after 2 attempts" in rep.failed["a"]
    with pytest.raises(ValueError):
        OpenAICompatibleBackend("http://x/v1", "m", concurrency=0)


# ------------------------------------------------------------ real model (slow, llm extra)
@pytest.fixture(scope="module")
def smollm2() -> TransformersBackend:
    """The bundled SmolLM2-135M through transformers (the set-up installs the llm extra),
    loaded once for the tests of this module that need it (on the CPU, as the server below)."""
    return TransformersBackend(max_tokens=40, n_threads=1, device="cpu")


@pytest.mark.slow
def test_real_generation_with_bundled_model(smollm2: TransformersBackend, tmp_path: Path) -> None:
    tpl = {"m": METALLICA}
    rep = GenReport()
    out = generate_descriptions(tpl, {"m": METALLICA_TAGS}, smollm2, tmp_path / "g.jsonl", report=rep)
    text = out["m"]
    assert isinstance(text, str) and len(text.split()) >= 5 and not rep.failed
    assert 0.0 <= rep.coverage["m"] <= 1.0
    # greedy decoding: same prompt -> same text; and the cache answers a second run (no model load)
    assert clean_output(smollm2.generate(build_prompt(METALLICA, METALLICA_TAGS, max_words=120))) == text
    again = TransformersBackend(max_tokens=40, n_threads=1, device="cpu")
    assert generate_descriptions(tpl, {"m": METALLICA_TAGS}, again, tmp_path / "g.jsonl") == out
    assert again._loaded is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_openai_backend_against_transformers_serve(smollm2: TransformersBackend, tmp_path: Path) -> None:
    """``transformers serve`` on loopback, serving the bundled model (saved as a transformers
    folder: transformers 5.23 cannot serve a GGUF chat model itself)."""
    folder = smollm2.save_pretrained(tmp_path / "smollm2")
    msgs = build_prompt(METALLICA, METALLICA_TAGS)
    expected = smollm2.generate(msgs)
    # the folder is the same model: the in-process backend reads it and answers alike
    assert TransformersBackend(folder, max_tokens=40, n_threads=1, device="cpu").generate(msgs) == expected
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1", "OMP_NUM_THREADS": "1"}
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log_file:  # (a PIPE could fill up and block the server)
        proc = subprocess.Popen([sys.executable, "-m", "transformers.cli.transformers", "serve", str(folder),
                                 "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                                stdout=log_file, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600  # ~20 s on an idle machine; allow for a busy one
        while True:
            assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "transformers serve did not come up in 600 s"
            time.sleep(0.5)
        b = OpenAICompatibleBackend(f"{url}/v1", str(folder), concurrency=2, timeout=300, max_tokens=30)
        tpl, tags = _templates(2)
        rep = GenReport()
        out = generate_descriptions(tpl, tags, b, tmp_path / "g.jsonl", report=rep)
        assert set(out) == {"a0", "a1"} and not rep.failed, rep.failed
        assert all(len(t.split()) >= 3 for t in out.values())
        assert rep.generated == 2 and set(rep.coverage) == {"a0", "a1"}
        # asked for the same decoding, the server answers what the in-process backend does
        same = {"generation_config": json.dumps({"do_sample": False, "repetition_penalty": smollm2.repetition_penalty})}
        b1 = OpenAICompatibleBackend(f"{url}/v1", str(folder), concurrency=1, timeout=300, temperature=0.0,
                                     max_tokens=40, extra_body=same)
        assert b1.generate(msgs) == expected
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)  # 540 MB of float32 weights


def test_check_tags_never_crashes_on_odd_tags() -> None:
    odd = ["10s", "00s", "90s", "<3", "???", "-", "a", "é", "c++", "r&b", "2 many djs", "s", "  ", "ss", "20s"]
    for tag in odd:
        chk = check_tags("some text about the 2010s, <3 and r&b", [tag])
        assert 0.0 <= chk.coverage <= 1.0


# ------------------------------------------------------------ config + evaluation view
def test_backend_from_config_names_the_field_on_bad_input() -> None:
    from talkrec.descriptions.gen import backend_from_config

    b = backend_from_config({"backend": "local", "n_threads": 1, "max_tokens": 50, "limit": 10})
    assert isinstance(b, TransformersBackend) and b.max_tokens == 50 and b.n_threads == 1
    assert isinstance(backend_from_config({}), TransformersBackend)
    b2 = backend_from_config({"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"})
    assert isinstance(b2, OpenAICompatibleBackend)
    with pytest.raises(InputError, match="must be local or openai"):
        backend_from_config({"backend": "gpt"})
    with pytest.raises(InputError, match="needs base_url and model"):
        backend_from_config({"backend": "openai", "model": "m"})
    with pytest.raises(InputError, match="descriptions.gen.*max_token"):
        backend_from_config({"backend": "local", "max_token": 5})
    # the old llama-cpp-python backend is gone: the error says what replaced it
    with pytest.raises(InputError, match="replaced by 'local'.*backend: openai") as e:
        backend_from_config({"backend": "llama", "n_ctx": 1024})
    assert e.value.field == "descriptions.gen.backend"


def test_transformers_backend_checks_before_loading(tmp_path: Path) -> None:
    msgs = build_prompt(METALLICA)
    with pytest.raises(InputError, match="neither a .gguf file nor a model folder") as e:
        TransformersBackend(tmp_path / "missing.gguf").generate(msgs)
    assert e.value.field == "model_path"
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="neither"):
        TransformersBackend(tmp_path / "notes.txt").generate(msgs)
    for bad in ({"temperature": -0.1}, {"max_tokens": 0}, {"n_threads": 0}, {"repetition_penalty": 0}):
        with pytest.raises(InputError) as e:
            TransformersBackend(tmp_path, **bad).generate(msgs)
        assert e.value.field == next(iter(bad))
    b = TransformersBackend(tmp_path / "m.gguf", temperature=0, max_tokens=7)
    assert b.config() == {"backend": "transformers", "model": "m.gguf", "temperature": 0.0, "max_tokens": 7,
                          "seed": 0, "repetition_penalty": 1.1}
    assert b.concurrency == 1 and b.get_params()["model_path"] == tmp_path / "m.gguf"  # stored unchanged


def test_seeded_sampler_is_reproducible_and_leaves_one_token() -> None:
    import torch

    from talkrec.descriptions.gen.local import _SeededSampler

    scores = torch.randn(1, 50, generator=torch.Generator().manual_seed(3))
    state = torch.get_rng_state()

    def draws(seed: int) -> list[int]:
        s = _SeededSampler(1.0, seed)
        out = [s(None, scores) for _ in range(20)]
        assert all(int(torch.isfinite(o).sum()) == 1 for o in out)
        return [int(o.argmax()) for o in out]

    assert draws(0) == draws(0) and draws(0) != draws(1)
    assert len(set(draws(0))) > 1                              # a sample, not the argmax every time
    assert torch.equal(state, torch.get_rng_state())         # torch's global random state untouched
    cold = _SeededSampler(1e-4, 0)                             # temperature -> 0: the argmax
    assert int(cold(None, scores).argmax()) == int(scores.argmax())


def test_gen_view_asks_the_most_popular_and_drops_flagged_and_untagged(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    import numpy as np

    import talkrec.descriptions.gen as gen_mod
    from talkrec.evaluation.gen_view import gen_view

    tpl, _ = _templates(5)
    tpl["a4"] = "The name of this artist is Artist4."            # no tags: nothing to rewrite
    fake = FakeBackend(fail_on={"Artist1"})
    monkeypatch.setattr(gen_mod, "backend_from_config", lambda cfg: fake)
    ids = [f"a{i}" for i in range(5)]
    plays = np.array([5.0, 40.0, 30.0, 1.0, 50.0])           # order: a4, a1, a2, a0, a3
    out, info = gen_view({"backend": "fake", "limit": 4}, ids, tpl, plays, tmp_path / "gen.jsonl")
    # a3 is the least played and was not asked; a1 failed; a4 has no tags (its TEMPLATE is no view)
    assert sorted(out) == ["a0", "a2"]
    assert sorted(fake.calls) == ["Artist0", "Artist1", "Artist2"]
    assert out["a2"] == "Artist2 is known for genre2, rock, mood 2."
    assert info["asked"] == 4 and info["with_gen"] == 2 and info["failed"] == 1 and info["untagged"] == 1
    # a rerun reads the cache: no new calls
    fake.calls.clear()
    out2, info2 = gen_view({"backend": "fake", "limit": 4}, ids, tpl, plays, tmp_path / "gen.jsonl")
    assert out2 == out and fake.calls == ["Artist1"] and info2["cached"] == 2
