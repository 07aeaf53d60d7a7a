"""QA of the session study and serving as a user meets them: their own log (CSV/TSV/Parquet)
with bad columns, rows or timestamps, bad settings, an output folder holding their files,
broken or foreign model folders. Every bad input is an InputError naming the file, row or
setting, raised before any work, and nothing the user had is lost. Tiny synthetic data."""
from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest

from talkrec.errors import InputError
from talkrec.sessions import NextItemSessionModel, SessionRecommender, sessionize
from talkrec.sessions.data import read_log
from talkrec.sessions.study import load_config, run_study

T0 = 1_600_000_000


def _events(n_users: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        t = T0
        for _ in range(3):
            t += 10_000
            start = int(rng.integers(0, 12))
            for j in range(int(rng.integers(3, 9))):
                rows.append((f"u{u}", f"i{(start + j) % 12}", t + 60 * j))
    return pd.DataFrame(rows, columns=["user", "item", "ts"])


def _cfg(tmp_path, log_path, **over):
    cfg = {"dataset": "log", "log": {"path": str(log_path), "user_col": "user", "item_col": "item", "time_col": "ts"},
           "output": str(tmp_path / "out"), "jobs": 1, "bootstrap": 20, "min_item_count": 1,
           "families": {"masked": {"split": "user", "fractions": [0.6, 0.2, 0.2], "task": "last_item"}},
           "model": {"d_model": 8, "n_layers": 1, "n_heads": 2, "max_length": 8, "max_epochs": 1, "batch_size": 32,
                     "device": "cpu"},
           "embeddings": {"dim": 4}, "inits": ["random"]}
    cfg.update(over)
    return cfg


@pytest.fixture()
def log_csv(tmp_path):
    p = tmp_path / "log.csv"
    _events().to_csv(p, index=False)
    return p


# ------------------------------------------------------------------------------ the log
def test_a_bad_timestamp_names_the_file_the_row_and_the_users_column(tmp_path):
    df = _events().astype(str)
    df.loc[6, "ts"] = "yesterday"
    df.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputError) as e:
        read_log(tmp_path / "bad.csv", user_col="user", item_col="item", time_col="ts")
    assert (e.value.path, e.value.row, e.value.field) == (str(tmp_path / "bad.csv"), 7, "ts")
    df = _events().astype(str)
    df.loc[2, "item"] = " "
    df.to_csv(tmp_path / "empty_id.tsv", index=False, sep="\t")
    with pytest.raises(InputError) as e:
        read_log(tmp_path / "empty_id.tsv", user_col="user", item_col="item", time_col="ts")
    assert (e.value.path, e.value.row, e.value.field) == (str(tmp_path / "empty_id.tsv"), 3, "item")


def test_a_missing_column_lists_the_files_columns(tmp_path):
    _events().rename(columns={"ts": "time"}).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(InputError, match=r"field 'ts': missing column 'ts'.*user, item, time"):
        read_log(tmp_path / "c.csv", user_col="user", item_col="item", time_col="ts")


@pytest.mark.parametrize("name, content", [("zero.csv", b""), ("header.csv", b"user,item,ts\n"),
                                           ("torn.csv", b"user,item,ts\n\"u1,i1"),
                                           ("garbage.parquet", b"not parquet at all")])
def test_an_unreadable_or_empty_log_is_an_input_error_naming_it(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError) as e:
        read_log(tmp_path / name, user_col="user", item_col="item", time_col="ts")
    assert e.value.path == str(tmp_path / name)


def test_datetime_and_iso_timestamps_are_seconds_not_nanoseconds(tmp_path):
    df = _events()
    ref = read_log(_save(df, tmp_path / "int.csv"), user_col="user", item_col="item", time_col="ts")
    dt = df.assign(ts=pd.to_datetime(df["ts"], unit="s"))
    dt.to_parquet(tmp_path / "dt.parquet")
    got = read_log(tmp_path / "dt.parquet", user_col="user", item_col="item", time_col="ts")
    assert (got["timestamp"].to_numpy() == ref["timestamp"].to_numpy()).all()
    iso = df.assign(ts=dt["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    got = read_log(_save(iso, tmp_path / "iso.csv"), user_col="user", item_col="item", time_col="ts")
    assert (got["timestamp"].to_numpy() == ref["timestamp"].to_numpy()).all()
    # a datetime column handed to sessionize directly is seconds too (it was micro/nanoseconds: one event a session)
    ev = sessionize(dt.rename(columns={"user": "user_id", "item": "item_id", "ts": "timestamp"}))
    assert ev["session_id"].nunique() == sessionize(ref)["session_id"].nunique() == 36


def _save(df, path):
    df.to_csv(path, index=False)
    return path


def test_an_out_of_range_timestamp_is_refused_not_wrapped(tmp_path):
    df = _events().astype(str)
    df.loc[4, "ts"] = "99999999999999999999999"
    with pytest.raises(InputError) as e:
        read_log(_save(df, tmp_path / "h.csv"), user_col="user", item_col="item", time_col="ts")
    assert (e.value.row, e.value.field) == (5, "ts")


def test_whole_float_ids_read_as_the_int_ids_they_are(tmp_path):
    df = _events()
    df["item"] = df["item"].str[1:].astype(float)         # a Parquet int column with a null once became float
    df.to_parquet(tmp_path / "f.parquet")
    got = read_log(tmp_path / "f.parquet", user_col="user", item_col="item", time_col="ts")
    assert set(got["item_id"]) == {str(i) for i in range(12)}


def test_no_session_long_enough_says_so_and_names_the_setting(tmp_path):
    df = _events().assign(ts=np.arange(len(_events())) * 100_000)     # every event alone
    cfg = _cfg(tmp_path, _save(df, tmp_path / "short.csv"))
    with pytest.raises(InputError) as e:
        run_study(cfg)
    assert e.value.field == "sessions.min_length" and "no session has at least 2 items" in str(e.value)
    assert e.value.path == str(tmp_path / "short.csv")
    assert not (tmp_path / "out").exists()                       # nothing created for a failed input


def test_a_single_user_names_the_family_setting(tmp_path):
    df = _events().assign(user="solo")
    with pytest.raises(InputError) as e:
        run_study(_cfg(tmp_path, _save(df, tmp_path / "one.csv")))
    assert e.value.field == "families.masked.split" and "at least 3 users, got 1" in str(e.value)


# ---------------------------------------------------------------------------- settings
@pytest.mark.parametrize("key, value, field", [
    ("jobs", 0, "jobs"), ("jobs", -1, "jobs"), ("threads_per_job", 0, "threads_per_job"), ("bootstrap", 0, "bootstrap"),
    ("random_state", -1, "random_state"), ("sessions.min_length", "abc", "sessions.min_length"),
    ("sessions.gap_minutes", -5, "sessions.gap_minutes"), ("inits", [], "inits"), ("inits", "random", "inits"),
    ("inits", ["random", "txet"], "inits"), ("save_models", "some", "save_models"),
    ("families.masked.task", "foo", "families.masked.task"), ("embeddings.dim", 0, "embeddings.dim"),
    ("model.max_epochs", 0, "model.max_epochs"), ("model.max_epochs", "two", "model.max_epochs"),
    ("masked.mask_probability", 2, "masked.mask_probability"), ("model", 3, "model"),
    ("log.user_column", "x", "log.user_column"), ("embeddings.files", ["a.npz"], "embeddings.files")])
def test_a_bad_setting_fails_when_the_config_is_read(tmp_path, log_csv, key, value, field):
    with pytest.raises(InputError) as e:
        load_config(_cfg(tmp_path, log_csv), {key: value})
    assert e.value.field == field


def test_a_misspelt_initialization_suggests_the_source(tmp_path, log_csv):
    with pytest.raises(InputError, match="did you mean 'text'"):
        load_config(_cfg(tmp_path, log_csv, inits=["random", "txet"]))


def test_families_are_checked_before_any_work(tmp_path, log_csv):
    with pytest.raises(InputError, match="no family to run"):
        run_study(_cfg(tmp_path, log_csv, families={}))
    with pytest.raises(InputError) as e:
        run_study(_cfg(tmp_path, log_csv, families={"next_item": {"split": "rta"}}))
    assert e.value.field == "families.next_item.n_validation"
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------- embedding files
def test_embedding_files_that_are_missing_broken_or_foreign_are_named(tmp_path, log_csv):
    np.savez(tmp_path / "nokeys.npz", a=np.zeros(3))
    np.savez(tmp_path / "foreign.npz", ids=np.array([f"x{i}" for i in range(12)]), X=np.ones((12, 4), np.float32))
    for name, match in (("nope.npz", "not found"), ("nokeys.npz", "needs arrays 'ids' and 'X'"),
                        ("log.csv", "not a readable .npz"), ("foreign.npz", "none of the log's")):
        path = tmp_path / name if name != "log.csv" else log_csv
        cfg = _cfg(tmp_path, log_csv, inits=["random", "mine"], embeddings={"dim": 4, "files": {"mine": str(path)}})
        with pytest.raises(InputError, match=match) as e:
            run_study(cfg)
        assert e.value.path == str(path)


# -------------------------------------------------------------------------- the output
def test_an_output_that_is_a_file_or_a_users_folder_is_refused_untouched(tmp_path, log_csv):
    (tmp_path / "afile").write_text("precious")
    with pytest.raises(InputError, match="is a file"):
        run_study(_cfg(tmp_path, log_csv, output=str(tmp_path / "afile")))
    assert (tmp_path / "afile").read_text() == "precious"
    mine = tmp_path / "mine"
    (mine / "models" / "masked").mkdir(parents=True)
    (mine / "models" / "masked" / "notes.txt").write_text("mine")
    (mine / "report.md").write_text("my report")
    with pytest.raises(InputError, match="not empty"):
        run_study(_cfg(tmp_path, log_csv, output=str(mine)))
    assert (mine / "models" / "masked" / "notes.txt").read_text() == "mine"
    assert (mine / "report.md").read_text() == "my report"


def test_a_rerun_replaces_the_study_keeps_other_files_and_writes_strict_json(tmp_path, log_csv):
    out = tmp_path / "out"
    (out / "cache").mkdir(parents=True)                     # a crashed run's leftovers are fine
    run_study(_cfg(tmp_path, log_csv))
    text = (out / "results.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"results.json holds {c}"))   # NaN is not JSON
    (out / "notes.txt").write_text("mine")
    (out / "models" / "masked" / "mine.txt").write_text("mine")
    with pytest.raises(InputError, match="mine.txt"):
        run_study(_cfg(tmp_path, log_csv))
    assert (out / "models" / "masked" / "mine.txt").exists() and (out / "results.json").read_text() == text
    (out / "models" / "masked" / "mine.txt").unlink()
    run_study(_cfg(tmp_path, log_csv))
    assert (out / "notes.txt").read_text() == "mine"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]     # no temporary left behind


# ------------------------------------------------------------------- models and serving
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    seqs = [[f"i{(s + j) % 10}" for j in range(6)] for s in range(30)]
    NextItemSessionModel(d_model=8, n_layers=1, n_heads=2, max_length=8, max_epochs=1, n_negatives=3,
                         device="cpu").fit(seqs).save(d / "m")
    return d / "m"


@pytest.mark.parametrize("damage, match", [
    ("config.json:{oops", "unreadable JSON"), ("config.json:[1]", "not a JSON object"),
    ("config.json:{\"family\": \"next_item\"}", "config"), ("model.safetensors:", "corrupt model weights"),
    ("-model.safetensors", "no model.safetensors"), ("ids", "do not fit")])
def test_a_broken_model_folder_is_an_input_error_naming_the_file(tmp_path, model_dir, damage, match):
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    if damage == "ids":
        meta = json.loads((d / "config.json").read_text())
        meta["item_ids"] = meta["item_ids"][:3]
        (d / "config.json").write_text(json.dumps(meta))
    elif damage.startswith("-"):
        (d / damage[1:]).unlink()
    else:
        name, _, content = damage.partition(":")
        (d / name).write_text(content)
    with pytest.raises(InputError, match=match) as e:
        SessionRecommender.load(d)
    assert str(d) in str(e.value)


def test_a_file_is_not_a_model_folder(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(InputError, match="not a folder"):
        SessionRecommender.load(tmp_path / "x.csv")


def test_check_attachable_refuses_a_model_of_another_catalog_and_warns_on_little_overlap(model_dir, caplog):
    with pytest.raises(InputError, match="knows none of the 3 items") as e:
        SessionRecommender.check_attachable(model_dir, ["1", "2", "3"])
    assert e.value.path == str(model_dir)
    with caplog.at_level(logging.WARNING, logger="talkrec.sessions.recommender"):
        rec = SessionRecommender.check_attachable(model_dir, ["i1", "i2", "x"])
    assert rec.known(["i1", "i2", "x"]) == 2 and "knows 2 of its 10 items" in caplog.text
    assert SessionRecommender.check_attachable(model_dir, [f"i{j}" for j in range(10)]).known(["i0"]) == 1


def test_continue_session_refuses_a_string_and_a_bool_k(model_dir):
    rec = SessionRecommender.load(model_dir)
    with pytest.raises(InputError, match="list of item ids"):
        rec.continue_session("i1", k=3)
    with pytest.raises(InputError, match="k must be"):
        rec.continue_session(["i1"], k=True)
    assert rec.continue_session(["zz", "unknown"], k=3) == []              # unknown seeds, no fallback
    got = rec.continue_session(["zz", "i1"], k=3, exclude={"i2"})           # unknown ids are ignored
    assert len(got) == 3 and not {"i1", "i2", "zz"} & {i for i, _ in got}


def test_a_set_value_that_is_not_yaml_is_a_clean_exit(tmp_path, log_csv, caplog):
    from typer.testing import CliRunner

    from talkrec.cli import app
    from talkrec.sessions.study import main
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps(_cfg(tmp_path, log_csv)))
    assert main(["--config", str(cfg), "--set", "model.max_epochs=[1"]) == 2 and "not valid YAML" in caplog.text
    assert main(["--config", str(cfg), "--set", "jobs=0"]) == 2 and not (tmp_path / "out").exists()
    # `talkrec sessions` takes the same --set and --output (it had neither)
    r = CliRunner().invoke(app, ["sessions", str(cfg), "--set", "model.max_epochs=[1"])
    assert r.exit_code != 0 and "not valid YAML" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["sessions", str(cfg), "--set", "nokey"])
    assert r.exit_code != 0 and "KEY=VALUE" in r.output


def test_a_saved_models_config_is_strict_json_and_loads_back(model_dir, tmp_path):
    m = SessionRecommender.load(model_dir).model
    m.history_.insert(0, {"epoch": 0, "train_loss": float("nan"), "val_ndcg@20": 0.1, "seconds": 0.0})  # fit's epoch 0
    m.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text(),
                      parse_constant=lambda c: pytest.fail(f"config.json holds {c}"))
    assert meta["history"][0]["train_loss"] is None
    back = SessionRecommender.load(tmp_path / "m").model.history_
    assert np.isnan(back[0]["train_loss"]) and back[1]["train_loss"] > 0


def test_millisecond_timestamps_are_flagged(tmp_path, caplog):
    df = _events().assign(ts=lambda d: d["ts"] * 1000)
    with caplog.at_level(logging.WARNING, logger="talkrec.sessions.data"):
        read_log(_save(df, tmp_path / "ms.csv"), user_col="user", item_col="item", time_col="ts")
    assert "look like milliseconds" in caplog.text


def test_a_missing_space_is_a_clean_exit_of_the_command(tmp_path, log_csv, caplog):
    from talkrec.sessions.study import main
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps(_cfg(tmp_path, log_csv, inits=["random", "space:multi"],
                                   embeddings={"dim": 4, "space": str(tmp_path / "nope")})))
    assert main(["--config", str(cfg)]) == 2
    assert "no talkrec space" in caplog.text


def test_a_vocabulary_threshold_that_leaves_nothing_names_min_item_count(tmp_path, log_csv):
    with pytest.raises(InputError, match="lower min_item_count") as e:
        run_study(_cfg(tmp_path, log_csv, min_item_count=1000))
    assert e.value.field == "min_item_count" and not (tmp_path / "out").exists()


def test_the_folder_above_the_models_points_to_them(tmp_path, model_dir):
    shutil.copytree(model_dir, tmp_path / "models" / "next_item")
    with pytest.raises(InputError, match="holds the models next_item: give one of them"):
        SessionRecommender.load(tmp_path / "models")


def test_header_spaces_and_another_separator(tmp_path, log_csv):
    text = log_csv.read_text()
    (tmp_path / "sp.csv").write_text(text.replace("user,item,ts", "user, item, ts", 1))
    assert len(read_log(tmp_path / "sp.csv", user_col="user", item_col="item", time_col="ts")) == len(_events())
    (tmp_path / "semi.csv").write_text(text.replace(",", ";"))
    with pytest.raises(InputError, match="set log.sep"):
        run_study(_cfg(tmp_path, tmp_path / "semi.csv"))
    cfg = _cfg(tmp_path, tmp_path / "semi.csv")
    cfg["log"]["sep"] = ";"
    from talkrec.sessions.study_inputs import load_log
    assert len(load_log(load_config(cfg))[0]) == len(_events())


def test_talkrec_sessions_runs_with_set_and_output_and_prints_where(tmp_path, log_csv):
    from typer.testing import CliRunner

    from talkrec.cli import app
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps(_cfg(tmp_path, log_csv)))
    out = tmp_path / "elsewhere"
    r = CliRunner().invoke(app, ["sessions", str(cfg), "--output", str(out), "--set", "bootstrap=10"])
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["bootstrap"] == 10 and str(out / "report.md") in r.output
    assert not (tmp_path / "out").exists()
