"""The text encoder's backends: the ONNX export gives PyTorch's vectors, pooling support and
the fallback to torch, int8 passages, thread settings, one forward pass per batch."""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from talkrec.device import free_cores
from talkrec.encoders.onnx_text import INT8_FILE, OPT_FILE, UnsupportedModel, export_text_model, is_exported
from talkrec.encoders.text import TextEncoder, resolve_model
from talkrec.errors import InputError

WORDS = ["dark", "gothic", "rock", "jazz", "smooth", "female", "singer-songwriter", "acoustic", "guitar", "80s",
         "synth", "pop", "Björk", "Sigur Rós", "déjà", "vu", "hip-hop", "K-pop", "ambient", "drone", "metal!!",
         "lo-fi", "beats", "to", "study", "日本語", "ロック", "música", "brasileira", "1990s", "R&B", "  spaced  "]


def varied_texts(n: int = 240) -> list[str]:
    """Short and long (past the token limit), cased, unicode, punctuation, numbers, empty."""
    rng = np.random.default_rng(7)
    out = ["", " ", "a", "The name of this artist is Joy Division and is described by the following tags: Genre: "
           "post-punk, new wave. Decade: 80s. Place: british, manchester. Mood: dark, melancholic."]
    while len(out) < n:
        k = int(rng.choice([1, 2, 3, 5, 8, 20, 60, 200]))
        words = [WORDS[int(i)] for i in rng.integers(len(WORDS), size=k)]
        text = " ".join(words)
        out.append(text.upper() if rng.random() < 0.1 else text)
    return out


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return varied_texts()


@pytest.mark.parametrize("max_length", [128, None])
def test_onnx_gives_the_torch_vectors(texts, max_length):
    onnx = TextEncoder(max_length=max_length, n_threads=1, backend="onnx")
    torch_ = TextEncoder(max_length=max_length, n_threads=1, backend="torch", bf16_passages=False)
    assert onnx.runtime == "onnx-fp32" and torch_.runtime == "torch"
    for kind in ("query", "passage"):
        a = onnx.encode(texts, kind=kind, batch_size=32)
        b = torch_.encode(texts, kind=kind, batch_size=32)
        cos = (a * b).sum(axis=1)
        assert len(texts) >= 200 and cos.min() >= 0.999, (kind, float(cos.min()), texts[int(cos.argmin())])
    one = onnx.encode(texts[3], kind="query")
    assert one.shape == (384,) and float(one @ torch_.encode(texts[3], kind="query")) >= 0.999


def test_int8_passages_are_close_and_queries_stay_fp32(texts):
    fp32 = TextEncoder(max_length=128, n_threads=1)
    int8 = TextEncoder(max_length=128, n_threads=1, int8_passages=True)
    assert int8.runtime == "onnx-int8" and (int8.exported_dir / INT8_FILE).is_file()
    cos = (int8.encode(texts[:64]) * fp32.encode(texts[:64])).sum(axis=1)
    assert cos.mean() >= 0.98 and cos.min() >= 0.9
    assert np.array_equal(int8.encode(texts[:16], kind="query"), fp32.encode(texts[:16], kind="query"))


def test_int8_queries_run_the_int8_graph_and_passages_stay_fp32(texts):
    fp32 = TextEncoder(max_length=128, n_threads=1, bf16_passages=False)
    q8 = TextEncoder(max_length=128, n_threads=1, int8_queries=True, bf16_passages=False)
    p8 = TextEncoder(max_length=128, n_threads=1, int8_passages=True)
    assert np.array_equal(q8.encode(texts[:16]), fp32.encode(texts[:16]))                # descriptions: fp32
    assert np.array_equal(q8.encode(texts[:16], kind="query"), p8.encode(texts[:16]))     # queries: the int8 graph
    cos = (q8.encode(texts[:64], kind="query") * fp32.encode(texts[:64], kind="query")).sum(axis=1)
    assert 0.98 <= cos.mean() < 1.0 and cos.min() >= 0.9


def test_a_build_with_int8_queries_carries_the_int8_graph_and_its_space_answers_with_it(tmp_path):
    from talkrec.pipeline.stages import export_text_model

    built = tmp_path / "built"
    enc = TextEncoder(max_length=128, n_threads=1, int8_queries=True)
    enc.encode("warm up")
    export_text_model(enc, built / "text_model")
    assert (built / "text_model" / INT8_FILE).is_file()
    served = TextEncoder.for_space({**TextEncoder(max_length=128).config(), "int8_queries": True}, built)
    assert np.array_equal(served.encode("heavy metal band", kind="query"), enc.encode("heavy metal band", kind="query"))


def test_bf16_passages_are_close_and_queries_stay_fp32(texts):
    fp32 = TextEncoder(max_length=128, n_threads=1, bf16_passages=False)
    bf16 = TextEncoder(max_length=128, n_threads=1, bf16_passages=True)
    assert fp32.runtime == "onnx-fp32" and bf16.runtime == "torch-bf16"
    a, b = bf16.encode(texts, batch_size=32), fp32.encode(texts, batch_size=32)
    cos = (a * b).sum(axis=1)
    assert a.dtype == np.float32 and cos.min() >= 0.999, (float(cos.min()), texts[int(cos.argmin())])
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(bf16.encode(texts[:16], kind="query"), fp32.encode(texts[:16], kind="query"))
    assert bf16.encode(texts[3]).shape == (384,) and bf16.exported_dir == fp32.exported_dir   # queries: ONNX


def test_the_torch_bert_pass_is_the_onnx_graph_in_float32_and_refuses_other_models(tmp_path, monkeypatch, texts):
    from talkrec.encoders.torch_bert import TorchBert

    onnx = TextEncoder(max_length=128, n_threads=1, bf16_passages=False)._get()
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    ours = TorchBert(resolve_model("minilm"), onnx, dtype="float32").encode(texts)
    assert len(texts) >= 200 and np.abs(ours - onnx.encode(texts)).max() < 1e-4
    # oneDNN keeps few kernels (device.bound_onednn_cache), unless the environment says otherwise
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "16"
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "512")
    TorchBert(resolve_model("minilm"), onnx)
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "512"
    monkeypatch.setenv("TALKREC_CACHE", str(tmp_path / "cache"))
    path = _copy_model(tmp_path, {"pooling_mode_mean_tokens": True})
    cfg = json.loads((Path(path) / "config.json").read_text())
    (Path(path) / "config.json").write_text(json.dumps({**cfg, "hidden_act": "relu"}))   # not the BERT we run
    assert TextEncoder(path, n_threads=1).runtime == "onnx-fp32"                            # auto: stays fp32
    with pytest.raises(InputError, match="not a BERT model") as e:
        TextEncoder(path, n_threads=1, bf16_passages=True).encode("x")
    assert e.value.field == "bf16_passages"


def test_bf16_passages_by_default_only_on_a_cpu_with_amx_and_never_when_serving(tmp_path, monkeypatch):
    import talkrec.encoders.text as text_mod

    monkeypatch.setattr(text_mod, "has_amx_bf16", lambda: False)
    assert TextEncoder(n_threads=1).runtime == "onnx-fp32"
    monkeypatch.setattr(text_mod, "has_amx_bf16", lambda: True)
    enc = TextEncoder(n_threads=1)
    assert enc.runtime == "torch-bf16"
    assert TextEncoder(n_threads=1, int8_passages=True).runtime == "onnx-int8"
    assert TextEncoder(n_threads=1, backend="onnx").runtime == "onnx-fp32"
    (tmp_path / "space").mkdir()
    shutil.copytree(enc.exported_dir, tmp_path / "space" / "text_model")
    served = TextEncoder.for_space(enc.config(), tmp_path / "space")    # a space's writes: its ONNX export
    assert served.runtime == "onnx-fp32"
    forced = TextEncoder.for_space({**enc.config(), "bf16_passages": True}, tmp_path / "space")   # built with true
    assert forced.runtime == "onnx-fp32" and forced.encode("new description").shape == (384,)
    bad = TextEncoder(n_threads=1, int8_passages=True, bf16_passages=True)
    for _ in range(2):                                  # refused on every call, not only the first
        with pytest.raises(InputError) as e:
            bad.encode("x")
        assert e.value.field == "bf16_passages"


def _copy_model(tmp_path, pooling: dict[str, bool]):
    src = resolve_model("minilm")
    dst = tmp_path / "model"
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "1_Pooling" / "config.json").read_text())
    cfg.update({k: False for k in cfg if k.startswith("pooling_mode_")}, **pooling)
    (dst / "1_Pooling" / "config.json").write_text(json.dumps(cfg))
    return str(dst)


def test_cls_pooling_exports_and_matches_torch(tmp_path, monkeypatch, texts):
    monkeypatch.setenv("TALKREC_CACHE", str(tmp_path / "cache"))
    path = _copy_model(tmp_path, {"pooling_mode_cls_token": True})
    onnx = TextEncoder(path, n_threads=1, backend="onnx")
    a = onnx.encode(texts[:40])
    b = TextEncoder(path, n_threads=1, backend="torch").encode(texts[:40])
    assert onnx.runtime == "onnx-fp32" and (a * b).sum(axis=1).min() >= 0.999
    assert json.loads((onnx.exported_dir / "talkrec_text_model.json").read_text())["pooling"] == "cls"
    assert (onnx.exported_dir / OPT_FILE).is_file()


def test_unsupported_pooling_falls_back_to_torch_with_a_log_line(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TALKREC_CACHE", str(tmp_path / "cache"))
    path = _copy_model(tmp_path, {"pooling_mode_max_tokens": True})
    with pytest.raises(UnsupportedModel, match="pooling"):
        export_text_model(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with caplog.at_level(logging.INFO, logger="talkrec.encoders.text"):
        enc = TextEncoder(path, n_threads=1, bf16_passages=False)
        assert enc.runtime == "torch" and enc.encode("jazz").shape == (384,)
    assert any("using torch" in r.getMessage() for r in caplog.records)
    with pytest.raises(InputError) as e:
        TextEncoder(path, n_threads=1, backend="onnx").encode("jazz")
    assert e.value.field == "backend"


def test_one_forward_pass_per_batch(capsys):
    enc = TextEncoder(n_threads=1)
    backend = enc._passage_backend()
    calls = []
    real = backend.encode
    backend.encode = lambda batch, kind: calls.append(len(batch)) or real(batch, kind)
    texts = ["heavy metal band", "smooth jazz trio", "thrash metal group"]
    plain = enc.encode(texts, batch_size=2)
    assert calls == [2, 1]  # the first text is no longer encoded twice
    with_bar = enc.encode(texts, batch_size=2, show_progress_bar=True)   # tqdm, imported for a bar only
    assert np.array_equal(plain, with_bar) and calls == [2, 1, 2, 1] and "2/2" in capsys.readouterr().err
    enc.encode([])
    assert calls == [2, 1, 2, 1]


def test_for_space_runs_the_exported_folder_without_the_source(tmp_path):
    enc = TextEncoder(max_length=128, n_threads=1)
    src = enc.exported_dir
    space = tmp_path / "space"
    (space / "text_model").mkdir(parents=True)
    for f in src.iterdir():
        if f.name != "model.onnx":
            shutil.copyfile(f, space / "text_model" / f.name)
    cfg = {**enc.config(), "model": "no-such-model"}   # the folder alone is enough
    served = TextEncoder.for_space(cfg, space)
    assert served.model_dir == str(space / "text_model") and is_exported(served.model_dir)
    assert np.allclose(served.encode("dark gothic rock", kind="query"), enc.encode("dark gothic rock", kind="query"),
                       atol=1e-6)
    assert "model_dir" not in served.config()
    assert TextEncoder.for_space(enc.config(), tmp_path / "elsewhere").model_dir is None
    with pytest.raises(InputError) as e:
        TextEncoder(model_dir=str(tmp_path)).encode("x")
    assert e.value.field == "model_dir"


def test_threads(monkeypatch):
    assert free_cores(3) == 3 and free_cores(0) == 1
    monkeypatch.setenv("TALKREC_THREADS", "2")
    assert free_cores() == 2 and TextEncoder().threads == 2
    assert TextEncoder(n_threads=1).threads == 1
    monkeypatch.setenv("TALKREC_THREADS", "many")
    monkeypatch.setattr("talkrec.device._busy_cores", lambda: 0)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2})
    assert free_cores() == 3
    monkeypatch.setattr("talkrec.device._busy_cores", lambda: 5)
    assert free_cores() == 1


def test_an_mpnet_style_model_without_token_types_exports(tmp_path, monkeypatch, texts):
    """A tiny random MPNet (positions from the padding index, no token_type_ids) in a
    sentence-transformers folder: exported and equal to torch."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, MPNetConfig, MPNetModel

    monkeypatch.setenv("TALKREC_CACHE", str(tmp_path / "cache"))
    tok = AutoTokenizer.from_pretrained(resolve_model("minilm"))
    torch.manual_seed(0)
    MPNetModel(MPNetConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=130, pad_token_id=tok.pad_token_id)
               ).save_pretrained(tmp_path / "hf")
    tok.save_pretrained(tmp_path / "hf")
    t = models.Transformer(str(tmp_path / "hf"), max_seq_length=64)
    SentenceTransformer(modules=[t, models.Pooling(32, pooling_mode="mean"), models.Normalize()]).save(
        str(tmp_path / "st"))
    onnx = TextEncoder(str(tmp_path / "st"), n_threads=1, backend="onnx")
    a, b = onnx.encode(texts[:60]), TextEncoder(str(tmp_path / "st"), n_threads=1, backend="torch").encode(texts[:60])
    assert (a * b).sum(axis=1).min() >= 0.999
    meta = json.loads((onnx.exported_dir / "talkrec_text_model.json").read_text())
    assert meta["inputs"] == ["input_ids", "attention_mask"] and meta["max_length"] == 64


def test_release_frees_the_model_and_the_next_use_reloads_it():
    enc = TextEncoder(n_threads=1)
    v = enc.encode("jazz")
    enc.release()
    assert enc._backend is None and np.array_equal(enc.encode("jazz"), v)


def test_copy_exported_shares_the_graph_on_one_file_system(tmp_path):
    from talkrec.encoders.onnx_text import copy_exported

    src = TextEncoder(max_length=128, n_threads=1).exported_dir
    dst = tmp_path / "space" / "text_model"
    copy_exported(src, dst, int8=False)
    assert sorted(p.name for p in dst.iterdir()) == sorted([OPT_FILE, "tokenizer.json", "talkrec_text_model.json"])
    graph, source = (dst / OPT_FILE).stat(), (src / OPT_FILE).stat()
    if graph.st_dev == source.st_dev:   # one file system: one copy on disk
        assert graph.st_ino == source.st_ino
    assert (dst / OPT_FILE).read_bytes() == (src / OPT_FILE).read_bytes()
    assert not (dst / "tokenizer.json").samefile(src / "tokenizer.json")  # small files are copied


@pytest.mark.parametrize("setting, kind", [("int8_passages", "passage"), ("int8_queries", "query")])
def test_int8_on_a_space_built_without_them_is_a_clear_error(tmp_path, setting, kind):
    from talkrec.encoders.onnx_text import copy_exported

    space = tmp_path / "space"
    copy_exported(TextEncoder(max_length=128, n_threads=1).exported_dir, space / "text_model", int8=False)
    cfg = {**TextEncoder(max_length=128).config(), setting: True}
    with pytest.raises(InputError, match=f"rebuild it with text.{setting}: true") as e:
        TextEncoder.for_space(cfg, space).encode("heavy metal band", kind=kind)
    assert e.value.field == f"text.{setting}"


def test_the_export_runs_in_a_child_process_and_its_failures_reach_the_caller(tmp_path):
    """A first build on a machine exports its text model; torch, transformers and the traced
    graph stay out of the building process (its peak RSS ~350 MB lower on Last.fm)."""
    import subprocess
    import sys

    code = ("import sys\nfrom pathlib import Path\nfrom talkrec.encoders.onnx_text import cached_export, is_exported\n"
            "from talkrec.encoders.text import resolve_model\n"
            "out = cached_export(resolve_model('minilm'), Path(sys.argv[1]))\n"
            "assert is_exported(out), out\n"
            "assert not {'torch', 'transformers'} & set(sys.modules), 'imported here'\n")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cache")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    from talkrec.encoders.onnx_text import export_in_child

    with pytest.raises(UnsupportedModel, match="pooling"):            # the fallback to torch follows
        export_in_child(Path(_copy_model(tmp_path, {"pooling_mode_max_tokens": True})), tmp_path / "out")
    broken = Path(_copy_model(tmp_path / "b", {"pooling_mode_mean_tokens": True}))
    (broken / "model.safetensors").write_bytes(b"not a weights file")
    with pytest.raises(RuntimeError, match="exporting .*model to ONNX failed"):
        export_in_child(broken, tmp_path / "out2")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()
