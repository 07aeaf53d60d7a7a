"""The one config loader: layers, extends, dotted overrides, errors, path resolution."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from talkrec import config as C
from talkrec.errors import InputError

DEFAULTS = {"a": 1, "fusion": {"lr": 0.1, "sizes": [1, 2]}, "families": {"x": {"n": 1}, "y": {"n": 2}}}


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_layers_merge_deeply_and_share_nothing_with_defaults(tmp_path):
    before = copy.deepcopy(DEFAULTS)
    p = _write(tmp_path / "c.yaml", "a: 2\nfusion: {epochs: 5}\n")
    cfg = C.load_config(p, defaults=DEFAULTS, overrides={"fusion.lr": 0.5, "new.deep.key": "v"})
    assert cfg["a"] == 2 and cfg["fusion"] == {"lr": 0.5, "sizes": [1, 2], "epochs": 5}
    assert cfg["new"] == {"deep": {"key": "v"}}
    assert cfg["_config_path"] == str(p.resolve())
    # a dotted override into a block the file does not set, and in-place edits of the
    # result, leave the defaults as they were
    cfg2 = C.load_config(_write(tmp_path / "d.yaml", "a: 3\n"), defaults=DEFAULTS, overrides={"fusion.lr": 9})
    cfg2["fusion"]["sizes"].append(3)
    cfg["families"]["x"]["n"] = 7
    assert DEFAULTS == before


def test_mapping_source_none_source_and_replace():
    cfg = C.load_config({"families": {"x": {"m": 3}}}, defaults=DEFAULTS)
    assert cfg["families"] == {"x": {"n": 1, "m": 3}, "y": {"n": 2}}
    cfg = C.load_config({"families": {"x": {"m": 3}}}, defaults=DEFAULTS, replace=("families",))
    assert cfg["families"] == {"x": {"m": 3}}
    assert C.load_config(None, defaults=DEFAULTS) == DEFAULTS
    assert "_config_path" not in C.load_config({"a": 5})
    # an override value is copied, and None is a value like any other
    v = {"k": [1]}
    cfg = C.load_config(None, defaults=DEFAULTS, overrides={"fusion": v, "a": None})
    v["k"].append(2)
    assert cfg["fusion"] == {"k": [1]} and cfg["a"] is None


def test_extends_chain_relative_to_the_file(tmp_path):
    _write(tmp_path / "base" / "root.yaml", "a: 1\nfusion: {lr: 0.2, epochs: 3}\nsmall: {a: 0}\n")
    _write(tmp_path / "base" / "mid.yaml", "extends: root.yaml\nfusion: {epochs: 4}\n")
    child = _write(tmp_path / "child.yaml", "extends: base/mid.yaml\na: 9\nsmall: {b: 1}\n")
    cfg = C.load_config(child)
    assert cfg == {"a": 9, "fusion": {"lr": 0.2, "epochs": 4}, "small": {"a": 0, "b": 1},
                   "_config_path": str(child.resolve())}
    _write(tmp_path / "loop1.yaml", "extends: loop2.yaml\n")
    _write(tmp_path / "loop2.yaml", "extends: loop1.yaml\n")
    with pytest.raises(InputError, match="loops back") as e:
        C.load_config(tmp_path / "loop1.yaml")
    assert e.value.field == "extends"
    with pytest.raises(InputError, match="not found"):
        C.load_config(_write(tmp_path / "bad.yaml", "extends: nowhere.yaml\n"))


def test_bad_input_names_the_file_and_field(tmp_path):
    with pytest.raises(InputError, match="not found") as e:
        C.load_config(tmp_path / "missing.yaml")
    assert e.value.path == str(tmp_path / "missing.yaml")
    with pytest.raises(InputError, match="not valid YAML"):
        C.load_config(_write(tmp_path / "x.yaml", "a: [1, 2\n"))
    with pytest.raises(InputError, match="mapping"):
        C.load_config(_write(tmp_path / "y.yaml", "- 1\n- 2\n"))
    p = _write(tmp_path / "z.yaml", "a: 1\n")
    with pytest.raises(InputError, match="missing required key 'output'") as e:
        C.load_config(p, required=("a", "output"))
    assert e.value.field == "output" and e.value.path == str(p)
    with pytest.raises(InputError, match="'a' is not a mapping") as e:
        C.load_config(p, overrides={"a.b": 2})
    assert e.value.field == "a.b"


def test_resolve_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    proj = tmp_path / "proj"
    cfg = C.load_config(_write(proj / "configs" / "c.yaml", "a: 1\n"))
    _write(proj / "data" / "f.csv", "x")
    _write(proj / "configs" / "local.csv", "x")
    _write(tmp_path / "here.csv", "x")
    assert C.resolve_path("here.csv", cfg) == Path("here.csv")                       # working directory first
    assert C.resolve_path("data/f.csv", cfg) == proj / "data" / "f.csv"             # then the project folder
    assert C.resolve_path("local.csv", cfg) == proj / "configs" / "local.csv"       # then the config's folder
    assert C.resolve_path("cache/new", cfg) == proj / "cache" / "new"               # nowhere: the project
    assert C.resolve_path(tmp_path / "abs", cfg) == tmp_path / "abs"
    assert C.resolve_path("cache/new") == C.REPO_ROOT / "cache" / "new"             # a mapping config
    assert C.resolve_path("~/x") == Path.home() / "x"


def test_build_config_dotted_override_leaves_pipeline_defaults_unchanged(tmp_path):
    from talkrec import pipeline

    before = copy.deepcopy(pipeline.DEFAULTS)
    p = _write(tmp_path / "b.yaml", "name: t\noutput: out\n")
    cfg = pipeline.load_config(p, {"fusion.max_epochs": 3, "cf.params.factors": 8, "data_root": None})
    assert cfg["fusion"] == {"max_epochs": 3} and cfg["cf"]["params"] == {"factors": 8}
    assert cfg["data_root"] == "../shared/data"           # None: an option that was not given
    assert pipeline.DEFAULTS == before
    assert pipeline.load_config(p)["fusion"] == {}
    with pytest.raises(InputError, match="'output'"):
        pipeline.load_config(_write(tmp_path / "n.yaml", "name: t\n"))


def test_sessions_and_evaluation_loaders(tmp_path):
    from talkrec.evaluation import runner
    from talkrec.sessions import study

    s = study.load_config(_write(tmp_path / "s.yaml", "families: {masked: {split: user}}\n"), {"model.max_epochs": 1})
    assert list(s["families"]) == ["masked"] and s["model"]["max_epochs"] == 1
    assert s["model"]["d_model"] == study.DEFAULTS["model"]["d_model"] and study.DEFAULTS["model"]["max_epochs"] == 8
    _write(tmp_path / "full.yaml", "name: full\nk: 100\nsmall: {k: 10, music: {max_items: 50}}\n")
    e = runner.load_config(_write(tmp_path / "e.yaml", "extends: full.yaml\nname: child\n"), small=True)
    assert (e["name"], e["k"], e["music"]["max_items"], e["small_mode"]) == ("child", 10, 50, True)
    assert e["music"]["als"] == runner.DEFAULTS["music"]["als"] and runner.DEFAULTS["music"]["max_items"] is None


def test_check_keys_names_the_misspelt_setting_and_the_nearest_known_one():
    with pytest.raises(InputError) as e:
        C.check_keys({"_config_path": "x", "seed": 1, "serch": {}}, {"search", "seed"}, path="c.yaml")
    assert str(e.value) == "c.yaml: field 'serch': unknown setting; did you mean 'search'? (known: search, seed)"
    with pytest.raises(InputError, match=r"^field 'fusion\.zzz': unknown setting \(known: a, b\)$"):
        C.check_keys({"zzz": 1}, {"a", "b"}, where="fusion")
    C.check_keys({"_bookkeeping": 1, "a": 2}, {"a"})                 # keys starting with _ are not settings


def test_every_shipped_build_config_passes_the_key_check():
    from talkrec import pipeline
    from talkrec.pipeline.schema import check_build_config

    for name in ("lastfm", "movielens", "lastfm-spark", "lastfm-int8q", "movielens-int8q"):
        check_build_config(pipeline.load_config(C.REPO_ROOT / "configs" / f"{name}.yaml"))


@pytest.mark.parametrize("text, field, hint", [
    ("serch: {mode: text}", "serch", "did you mean 'search'?"),
    ("fusion: {learning_rat: 0.001}", "fusion.learning_rat", "did you mean 'learning_rate'?"),
    ("text: {n_thread: 2}", "text.n_thread", "did you mean 'n_threads'?"),
    ("cf: {params: {factor: 8}}", "cf.params.factor", "did you mean 'factors'?"),
    ("descriptions: {template: {max_per_categry: 3}}", "descriptions.template.max_per_categry",
     "did you mean 'max_per_category'?"),
    ("ease: {lambda: 10.0}", "ease.lambda", "regularization"),
    ("recommend: {weights: {eas: 1.0}}", "recommend.weights.eas", "did you mean 'ease'?"),
    ("similar: {cold_neighbours: 20}", "similar.cold_neighbours", "did you mean 'cold_neighbors'?"),
    ("index: {an: true}", "index.an", "did you mean 'ann'?"),
    ("catalog: {items: {path: none.csv, tags_colum: tags}}", "catalog.items.tags_colum",
     "did you mean 'tags_column'?"),
])
def test_a_misspelt_build_setting_fails_before_any_stage(tmp_path, text, field, hint):
    """A misspelt key was ignored: the build ran with the default in its place (or, for the
    blocks handed to an estimator, failed with a raw TypeError at that stage, minutes in)."""
    from talkrec import pipeline

    out = tmp_path / "out"
    body = f"name: t\noutput: {out}\ndataset: generic\n"
    if not text.startswith("catalog:"):
        body += "catalog: {items: {path: none.csv}}\n"      # never read: the check comes first
    p = _write(tmp_path / "b.yaml", body + text + "\n")
    with pytest.raises(InputError) as e:
        pipeline.build(pipeline.load_config(p), show_progress=False)
    msg = str(e.value)
    assert msg.startswith(f"{p.resolve()}: field '{field}': unknown setting") and hint in msg, msg
    assert not out.exists() and not (tmp_path / "out.build").exists()


@pytest.mark.parametrize("text, field, what", [
    ("search: {bm25_stopwords: movies}", "search.bm25_stopwords", "must be a list of words"),
    ("search: {bm25_stemmer: elvish}", "search.bm25_stemmer", "Snowball language"),
    ("recommend: {strategy: best}", "recommend.strategy", "must be one of blend, rrf, knn, best_score"),
    ("similar: {lexical_max_df: 2}", "similar.lexical_max_df", "a number in (0, 1]"),
])
def test_a_bad_serving_value_names_the_config_file_and_the_field(tmp_path, text, field, what):
    """The values checked after the keys (strategies, BM25 settings) named the field but not the
    file they came from."""
    from talkrec import pipeline

    out = tmp_path / "out"
    p = _write(tmp_path / "b.yaml", f"name: t\noutput: {out}\ndataset: generic\n"
                                    f"catalog: {{items: {{path: none.csv}}}}\n{text}\n")
    with pytest.raises(InputError) as e:
        pipeline.build(pipeline.load_config(p), show_progress=False)
    msg = str(e.value)
    assert msg.startswith(f"{p.resolve()}: field '{field}': ") and what in msg, msg
    assert e.value.field == field and not out.exists()


def test_a_misspelt_evaluation_setting_fails_when_the_config_is_read(tmp_path):
    """``talkrec evaluate`` ignored a misspelt key (``music: {enabld: false}`` ran the music half)."""
    from talkrec.evaluation import runner

    for name in ("eval-full", "eval-minilm"):                     # the shipped configs pass, small or not
        for small in (False, True):
            runner.load_config(C.REPO_ROOT / "configs" / f"{name}.yaml", small=small)
    p = _write(tmp_path / "e.yaml", "music: {enabld: false}\n")
    with pytest.raises(InputError, match=r"e\.yaml: field 'music\.enabld': unknown setting; did you mean 'enabled'\?"):
        runner.load_config(p)
    p = _write(tmp_path / "s.yaml", "small: {movies: {n_fold: 2}}\n")
    with pytest.raises(InputError, match=r"field 'small\.movies\.n_fold': unknown setting; did you mean 'n_folds'\?"):
        runner.load_config(p)
    p = _write(tmp_path / "r.yaml", "music: {retrieval: {n_set: 5}, gen: {backend: local, anything: 1}}\n")
    with pytest.raises(InputError, match=r"field 'music\.retrieval\.n_set'"):   # nested; gen is the backend's own
        runner.load_config(p)


def test_a_misspelt_sessions_setting_fails_when_the_config_is_read(tmp_path):
    from talkrec.sessions import study

    for name in ("sessions-lastfm", "sessions-movielens"):
        study.load_config(C.REPO_ROOT / "configs" / f"{name}.yaml")
    with pytest.raises(InputError, match=r"field 'sessions\.gap_minute': unknown setting; "
                                         r"did you mean 'gap_minutes'\?"):
        study.load_config(_write(tmp_path / "a.yaml", "sessions: {gap_minute: 30}\n"))
    with pytest.raises(InputError, match=r"field 'embeddings\.multi\.out_dims': unknown setting; "
                                         r"did you mean 'out_dim'\?"):
        study.load_config(_write(tmp_path / "m.yaml", "embeddings: {multi: {out_dims: 32}}\n"))
    with pytest.raises(InputError, match=r"field 'families\.mine\.splt': unknown setting; did you mean 'split'\?"):
        study.load_config(_write(tmp_path / "b.yaml", "families: {mine: {splt: user}}\n"))
    study.load_config(_write(tmp_path / "c.yaml", "families: {mine: {split: rta, n_test: 5}}\n"))   # own family names
    with pytest.raises(InputError, match=r"field 'model\.max_epoch': unknown setting; did you mean 'max_epochs'\?"):
        study.load_config(_write(tmp_path / "d.yaml", "model: {max_epoch: 1, device: cpu}\n"))
    with pytest.raises(InputError, match=r"field 'model\.n_negatives'"):     # one family's setting, in every family's
        study.load_config(_write(tmp_path / "e.yaml", "model: {n_negatives: 5}\n"))
    study.load_config(_write(tmp_path / "f.yaml", "next_item: {n_negatives: 5}\nmasked: {mask_probability: 0.3}\n"))
