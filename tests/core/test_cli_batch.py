"""``talkrec recommend --users FILE``: recommendations for many users in one run (an export),
one JSON line per user, each what ``--user`` gives alone; an unknown user is named with its
line before anything is printed."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from talkrec.cli import app
from talkrec.space import Space


def run(*args: str, stdin: str | None = None):
    return CliRunner().invoke(app, list(args), input=stdin)


def test_one_json_line_per_user_each_as_alone(tiny_space_dir, tmp_path):
    users = [u for u, _ in Space.load(tiny_space_dir).users(3)]
    f = tmp_path / "users.txt"
    f.write_text(f"{users[0]}\n\n  {users[1]}  \n{users[2]}\n")
    r = run("recommend", "--users", str(f), "--k", "4", "--tag", "metal", "--space", str(tiny_space_dir))
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["user"] for x in lines] == users
    for x in lines:
        alone = run("recommend", "--user", x["user"], "--k", "4", "--tag", "metal", "--json", "--space",
                    str(tiny_space_dir))
        assert x["items"] == json.loads(alone.stdout), x["user"]
    r = run("recommend", "--users", "-", "--k", "2", "--space", str(tiny_space_dir), stdin=f"{users[1]}\n")
    assert r.exit_code == 0 and [json.loads(x)["user"] for x in r.stdout.splitlines()] == [users[1]], r.output


def test_bad_user_files_are_named(tiny_space_dir, tmp_path):
    users = [u for u, _ in Space.load(tiny_space_dir).users(1)]
    f = tmp_path / "users.txt"
    f.write_text(f"{users[0]}\nno-such-user\n")
    r = run("recommend", "--users", str(f), "--space", str(tiny_space_dir))
    assert r.exit_code == 2 and "line 2: unknown user 'no-such-user'" in r.output and not r.stdout.strip(), r.output
    for content, needle in (("\n  \n", "no user ids"), (b"\xff\xfe\x00", "UTF-8")):
        f.write_bytes(content.encode() if isinstance(content, str) else content)
        r = run("recommend", "--users", str(f), "--space", str(tiny_space_dir))
        assert r.exit_code == 2 and needle in r.output and str(f) in r.output.replace("\n", ""), r.output
    r = run("recommend", "--users", str(tmp_path / "missing.txt"), "--space", str(tiny_space_dir))
    assert r.exit_code == 2 and "missing.txt" in r.output, r.output
    r = run("recommend", "--users", str(f), "--user", users[0], "--space", str(tiny_space_dir))
    assert r.exit_code == 2 and "exactly one of --items, --user or --users" in r.output, r.output


def test_similar_and_recommend_page_and_keep_seen_items_as_the_api_does(tiny_space_dir):
    """``--offset`` (similar, recommend) and ``--include-seen`` (recommend) existed in the HTTP
    API only; the CLI's offset is capped as the API's is."""
    from talkrec.limits import OFFSET_MAX
    s = Space.load(tiny_space_dir)

    def ids(*args: str) -> list[str]:
        r = run(*args, "--json", "--space", str(tiny_space_dir))
        assert r.exit_code == 0, r.output
        return [h["item_id"] for h in json.loads(r.stdout)]
    assert ids("similar", "metal1", "--k", "3", "--offset", "4") == [h.item_id for h in s.similar("metal1", k=3, offset=4)]
    assert ids("recommend", "--items", "metal1", "--k", "3", "--offset", "2") == \
        [h.item_id for h in s.recommend(items=["metal1"], k=3, offset=2)]
    kept = ids("recommend", "--items", "metal1,metal2", "--k", "60", "--include-seen")
    assert {"metal1", "metal2"} <= set(kept)
    assert kept == [h.item_id for h in s.recommend(items=["metal1", "metal2"], k=60, exclude_seen=False)]
    r = run("similar", "metal1", "--offset", str(OFFSET_MAX + 1), "--space", str(tiny_space_dir))
    assert r.exit_code != 0 and str(OFFSET_MAX) in r.output, r.output
