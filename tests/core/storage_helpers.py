"""Helpers for the storage tests: a format-1 (legacy) layout, fsync spies and
writer subprocesses."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]


def make_legacy(d: Path) -> Path:
    """Turn a format-2 space folder into the format-1 layout of main before issue 10
    (``index/`` and ``inputs/`` at the top, no manifest, no logs)."""
    if (d / "MANIFEST.json").exists():
        gen = next(p for p in d.iterdir() if p.name.startswith("gen-"))
        shutil.move(str(gen / "index"), str(d / "index"))
        shutil.move(str(gen / "inputs"), str(d / "inputs"))
        shutil.rmtree(gen)
        for p in list(d.iterdir()):
            if p.name.startswith("wal-") or p.name in ("MANIFEST.json", "LOCK"):
                p.unlink()
        for f in ("hnsw.bin", "hnsw_labels.npy"):
            (d / "index" / f).unlink(missing_ok=True)
    return d


def fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"fd:{fd}"


class FsyncSpy:
    """Records the path of every ``os.fsync``'ed descriptor (installed with monkeypatch)."""

    def __init__(self, monkeypatch) -> None:
        self.paths: list[str] = []
        real = os.fsync

        def spy(fd: int) -> None:
            self.paths.append(fd_path(fd))
            real(fd)
        monkeypatch.setattr(os, "fsync", spy)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


class Child:
    """A Python subprocess whose stdout lines are collected by a thread."""

    def __init__(self, code: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=child_env())
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            self.lines.append(line)
            if line == "ready":
                self.ready.set()

    def kill(self) -> None:
        self.proc.kill()          # SIGKILL: no cleanup runs
        self.proc.wait(timeout=30)
        self._t.join(timeout=10)

    def words(self, tag: str) -> Iterator[str]:
        for line in list(self.lines):
            parts = line.split()
            if len(parts) == 2 and parts[0] == tag:
                yield parts[1]


#: a writer process for the kill -9 tests: adds items one at a time and prints each
#: acknowledged write; every fifth write it deletes the item written two before
WRITER = """
import sys
from talkrec import Space
s = Space.load({path!r}, **{storage!r})
print("ready", flush=True)
i = 0
while True:
    iid = "r{round}-%d" % i
    s.add_items([{{"item_id": iid, "name": "Round {round} item %d" % i, "tags": ["jazz", "kill"]}}])
    print("ack", iid, flush=True)
    if i % 5 == 4:
        gone = "r{round}-%d" % (i - 2)
        print("deleting", gone, flush=True)      # from here the delete may land unacknowledged
        s.remove([gone])
        print("del", gone, flush=True)
    i += 1
"""


def kill_a_writer(d: Path, storage: dict, round_no: int, *, acks: int,
                  pause: float) -> tuple[set[str], set[str], set[str]]:
    """Start :data:`WRITER` on space ``d``, let ``acks`` writes land, wait ``pause`` seconds and
    SIGKILL it; the ids it acknowledged, the deletes it acknowledged, and those it had begun
    (which may have landed or not)."""
    child = Child(WRITER.format(path=str(d), storage=storage, round=round_no))
    assert child.ready.wait(300), child.proc.stderr.read() if child.proc.poll() is not None else "no start"
    deadline = time.time() + 120
    while len(list(child.words("ack"))) < acks and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(pause)
    child.kill()
    return set(child.words("ack")), set(child.words("del")), set(child.words("deleting"))
