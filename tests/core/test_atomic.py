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
