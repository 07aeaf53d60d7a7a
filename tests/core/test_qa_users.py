"""``Space.users`` (and ``GET /api/users``) count the history a user has among the items the
space has now: after ``remove`` a user whose items were all removed is not offered (recommending
for them is an error), and the others' counts drop by what was removed - before and after a
compaction and a reload (the list was computed once from the build's interactions)."""
from __future__ import annotations

from talkrec import Space
from tiny_data import copy_space


def _expected(space: Space, gone: set[str]) -> dict[str, int]:
    inter = space.interactions
    kept = inter[~inter["item_id"].astype(str).isin(gone)]
    return {str(u): int(n) for u, n in kept.groupby("user_id").size().items()}


def test_users_count_only_the_items_the_space_still_has(tiny_space_dir, tmp_path):
    d = copy_space(tiny_space_dir, tmp_path / "space")
    space = Space.load(d)
    try:
        before = dict(space.users(1000))
        assert before == _expected(space, set())
        user = min(before, key=lambda u: (before[u], u))
        inter = space.interactions
        gone = set(inter.loc[inter["user_id"].astype(str) == user, "item_id"].astype(str))
        space.remove(sorted(gone))
        want = _expected(space, gone)
        assert user not in want
        for stage in ("logged", "compacted"):
            got = dict(space.users(1000))
            assert got == want, stage
            assert [n for _, n in space.users(1000)] == sorted(want.values(), reverse=True)
            space.compact()
    finally:
        space.close()
    reloaded = Space.load(d)
    try:
        assert dict(reloaded.users(1000)) == want
        assert len(reloaded.users(2)) == 2
    finally:
        reloaded.close()
