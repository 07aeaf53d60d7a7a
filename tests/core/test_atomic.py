from __future__ import annotations

import pytest

from talkrec._atomic import atomic_dir, write_text


def test_failed_write_keeps_old_file(tmp_path):
    p = tmp_path / "f.txt"
    write_text(p, "old")
    with pytest.raises(RuntimeError):
        from talkrec._atomic import atomic_path
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_dir_swaps_whole_folder(tmp_path):
    d = tmp_path / "space"
    with atomic_dir(d) as t:
        (t / "a").write_text("1")
    with pytest.raises(ValueError):
        with atomic_dir(d) as t:
            (t / "b").write_text("2")
            raise ValueError
    assert sorted(x.name for x in d.iterdir()) == ["a"]
    with atomic_dir(d) as t:
        (t / "c").write_text("3")
    assert sorted(x.name for x in d.iterdir()) == ["c"]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["space"]


# ----------------------------------------------------------------------------- issue 10, finding 5
def test_atomic_writes_fsync_the_file_and_the_folder_before_the_rename_counts(tmp_path, monkeypatch):
    """Nothing was fsync'ed: a rename could reach the disk before the data it points to."""
    import os

    from storage_helpers import FsyncSpy

    spy = FsyncSpy(monkeypatch)
    write_text(tmp_path / "f.txt", "data")
    assert any(p.startswith(str(tmp_path / ".f.txt.")) for p in spy.paths), spy.paths      # the temp file
    assert spy.paths[-1] == str(tmp_path), spy.paths                                       # then its folder
    spy.paths.clear()
    with atomic_dir(tmp_path / "d") as t:
        (t / "a").write_text("1")
    assert any(p.endswith(os.sep + "a") for p in spy.paths) and spy.paths[-1] == str(tmp_path), spy.paths


def test_a_crash_between_the_two_renames_of_atomic_dir_is_recovered_on_load(tiny_space_dir, tmp_path, monkeypatch):
    """atomic_dir moves index/ aside, then renames the new one in: a crash in between left no
    index/ at all, and the space no longer loaded."""
    import os
    import shutil

    from storage_helpers import make_legacy
    from tiny_data import copy_space

    from talkrec import Space

    d = make_legacy(copy_space(tiny_space_dir, tmp_path / "space"))
    real, calls = os.replace, []

    def crash_on_second(src, dst):          # index/ -> .index.old-PID happens, tmp -> index/ does not
        calls.append(src)
        if len(calls) == 2:
            raise OSError("power lost (simulated)")
        real(src, dst)
    monkeypatch.setattr(os, "replace", crash_on_second)
    with pytest.raises(OSError, match="power lost"):
        with atomic_dir(d / "index") as t:
            for f in (d / "index").iterdir():
                shutil.copy(f, t / f.name)
    monkeypatch.undo()
    assert not (d / "index").exists() and list(d.glob(".index.old-*"))      # the crash window
    s = Space.load(d)
    assert len(s.index) == 60 and s.similar("jazz3", k=3)
    assert (d / "index").is_dir() and not list(d.glob(".index.old-*"))


def test_recover_dir_and_orphans(tmp_path):
    from talkrec._atomic import clean_orphans, is_temporary, orphans, recover_dir

    (tmp_path / ".index.old-123").mkdir()
    (tmp_path / ".index.old-123" / "x").write_text("1")
    assert recover_dir(tmp_path / "index") and (tmp_path / "index" / "x").read_text() == "1"
    assert not recover_dir(tmp_path / "index")                 # nothing to do when it is there
    for name in (".index.ab12cd_9", ".index.ab12cd_9.tmp", ".text.npy.abcdefgh.npy", ".MANIFEST.json.k2j3h4g5.tmp",
                 "gen-000002.tmp", ".session_model.old-77"):
        assert is_temporary(name), name
        (tmp_path / name).mkdir()
    for name in ("index", "MANIFEST.json", "wal-000001.log", "gen-000002", "space.json", "inputs"):
        assert not is_temporary(name), name
    assert len(orphans(tmp_path)) == 6 and orphans(tmp_path, older_than=0) == []
    assert len(clean_orphans(tmp_path)) == 6 and orphans(tmp_path) == []
    assert (tmp_path / "index").is_dir()


def test_atomic_dir_of_a_relative_path_without_a_name_replaces_the_folder_it_names(tmp_path, monkeypatch):
    """``atomic_dir(".")`` was a raw ``ValueError: PosixPath('.') has an empty name``."""
    d = tmp_path / "space"
    d.mkdir()
    (d / "old").write_text("1")
    monkeypatch.chdir(d)
    with atomic_dir(".") as t:
        (t / "new").write_text("2")
    monkeypatch.chdir(tmp_path)
    assert sorted(x.name for x in d.iterdir()) == ["new"]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["space"]
    with pytest.raises(ValueError, match="has no name"):
        with atomic_dir("/"):
            pass
