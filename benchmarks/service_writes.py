"""Benchmark (not a test): writes and reads of a space under load (issue 10).

    python benchmarks/service_writes.py --space spaces/lastfm [--writes 100] [--json out.json]

Prints, on a copy of the space (the original is not changed):

* the floors a write cannot beat, measured in the same run: the text encoder's time for one
  item description, and an fsync of a small file;
* single-item upsert p50 / p99 through ``Space.add_items`` (text embedding included), and
  single-item delete p50 / p99 (``Space.remove``, where the code has it);
* ``similar`` / ``recommend`` in-process on a snapshot already read and as the first read
  after a write; the first reads after a compaction, and the compaction's time;
* HTTP writes/s with concurrent clients against a live uvicorn server (a subprocess), and
  deletes/s (the same path without the text encoder);
* HTTP read p50 / p99 (``GET /api/items/{id}/similar`` and ``GET /api/search`` over a fixed,
  warmed set of queries) under 0, 1 and 2 clients writing continuously (the writing clients
  in a process of their own, the reading ones in this one), with the compactions the server
  made during each phase. Each phase starts once the server is idle: the compactions that the
  writes before it started have finished (before, the 0-writer phase could share the cores
  with the compactions of the write and delete phases, which raised the p99 the others are
  compared with). Twice: closed-loop (one client of each kind, back to back: the share of
  the CPU a reader gets on a saturated machine) and open-loop (``--read-rate`` requests/s of
  each kind, latency from each request's scheduled time: what a reader at a steady rate
  waits); the ratios of both are printed last. With ``--follower`` the reads go to a second
  server that follows the space (``talkrec serve --follow``, a read replica) while the writes
  go to the first (``--writer-nice N``: started at that lowered priority; ``--writer-idle``: in
  ``SCHED_IDLE``, ``chrt --idle 0``; ``--split-cores``: the writing server and its clients on
  the machine's last core, the follower and the reading clients on the others, as a follower
  on a machine of its own would be), and the time a write takes to show on the follower is
  printed too.

It runs against the code before issue 10 as well (``PYTHONPATH=<checkout of 8db121d>/src``):
there is no delete there.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_cold import _status_kb  # noqa: E402
from service_load import cpu_s  # noqa: E402

QUERIES = ["heavy metal", "female singer-songwriter", "80s synth pop", "relaxing ambient electronic music",
           "brazilian music", "dark gothic rock", "jazz piano trio", "indie folk", "hip hop from the 90s",
           "melancholic post-rock", "german electronic", "punk rock", "classical piano", "reggae", "blues guitar",
           "dream pop shoegaze", "country", "techno", "soul diva", "french chanson"]


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1e3, q)) if xs else float("nan")


def records(space: Any, n: int, prefix: str, seed: int = 0) -> list[dict[str, Any]]:
    """Single-item records with the tags of real items (realistic TEMPLATE descriptions)."""
    meta = space.index.meta
    rnd = random.Random(seed)
    rows = [t for t in meta["tags"].tolist() if isinstance(t, list) and t]
    return [{"item_id": f"{prefix}{i}", "name": f"Bench Artist {prefix}{i}", "tags": list(rnd.choice(rows))[:10]}
            for i in range(n)]


def floors(space: Any, recs: list[dict[str, Any]]) -> dict[str, float]:
    """The text encoder's time for one description, and an fsync of a small file."""
    from talkrec.descriptions.template import TemplateDescriber

    describer = TemplateDescriber(**space.config["descriptions"]["template"])
    texts = [describer.describe_one({"item_id": r["item_id"], "name": r["name"]}, {"other": r["tags"]}) for r in recs]
    enc = space.text_encoder()
    enc.encode([texts[0]], kind="passage")
    t_enc = []
    for t in texts[:30]:
        t0 = time.perf_counter()
        enc.encode([t], kind="passage")
        t_enc.append(time.perf_counter() - t0)
    t_sync = []
    fd, name = tempfile.mkstemp(dir=space.path)
    try:
        for _ in range(50):
            os.write(fd, b"x" * 600)
            t0 = time.perf_counter()
            os.fsync(fd)
            t_sync.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(name)
    return {"encode_one_p50_ms": pct(t_enc, 50), "encode_one_p99_ms": pct(t_enc, 99),
            "fsync_p50_ms": pct(t_sync, 50), "fsync_p99_ms": pct(t_sync, 99)}


def python_writes(space: Any, recs: list[dict[str, Any]]) -> dict[str, float]:
    """Single-item upserts (the first one, which may migrate a legacy space, timed apart),
    then single-item deletes of half of them."""
    t0 = time.perf_counter()
    space.add_items([recs[0]])
    out = {"first_write_ms": (time.perf_counter() - t0) * 1e3}
    ts = []
    for r in recs[1:]:
        t0 = time.perf_counter()
        space.add_items([r])
        ts.append(time.perf_counter() - t0)
    out.update(upsert_p50_ms=pct(ts, 50), upsert_p99_ms=pct(ts, 99), upserts=len(ts))
    if hasattr(space, "remove"):
        ds = []
        for r in recs[1::2]:
            t0 = time.perf_counter()
            space.remove([r["item_id"]])
            ds.append(time.perf_counter() - t0)
        out.update(delete_p50_ms=pct(ds, 50), delete_p99_ms=pct(ds, 99))
    return out


def reads_after_writes(space: Any, recs: list[dict[str, Any]], ids: list[str], n: int = 100) -> dict[str, float]:
    """``similar`` and ``recommend`` in-process (the space warmed as a server warms it), each
    timed on a snapshot already read and as the first read after a write (a new snapshot),
    alternately, with the rows :func:`python_writes` left in the delta."""
    import gc

    space.warm_up()
    gc.collect()
    calls = {"similar": lambda i: space.similar(ids[i % len(ids)]),
             "recommend": lambda i: space.recommend(items=[ids[(i + j) % len(ids)] for j in range(3)])}
    out: dict[str, float] = {"delta_rows": float(space.index.m)}
    for name, call in calls.items():
        call(0)
        same, after = [], []
        for i in range(n):
            t0 = time.perf_counter()
            call(i)
            same.append(time.perf_counter() - t0)
            space.add_items([{**recs[i % len(recs)], "item_id": f"raw-{name}-{i}"}])
            t0 = time.perf_counter()
            call(i + n)
            after.append(time.perf_counter() - t0)
        out.update({f"{name}_same_snapshot_p50_ms": pct(same, 50), f"{name}_after_a_write_p50_ms": pct(after, 50),
                    f"{name}_after_a_write_p99_ms": pct(after, 99)})
    return out


def _start_in(idle: bool, cpus: set[int] | None) -> Any:
    """A ``preexec_fn`` that puts the child in ``SCHED_IDLE`` and / or on ``cpus`` (None: neither)."""
    if not idle and cpus is None:
        return None

    def go() -> None:
        if idle:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        if cpus is not None:
            os.sched_setaffinity(0, cpus)
    return go


def start_server(path: Path, *, follow: bool = False, nice: int = 0, idle: bool = False,
                 cpus: set[int] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """``talkrec serve`` of ``path`` in a subprocess (``follow``: a read-only follower; ``nice``:
    at that lowered priority; ``idle``: in Linux's ``SCHED_IDLE`` class, as ``chrt --idle 0``
    starts it: it runs only on a core nothing else wants; ``cpus``: only on those cores, as
    ``taskset`` starts it), once it answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opts = ", follow=True" if follow else ""
    code = ("import uvicorn\nfrom talkrec.service.app import create_app\n"
            f"uvicorn.run(create_app({str(path)!r}{opts}), host='127.0.0.1', port={port}, log_level='warning')\n")
    proc = subprocess.Popen((["nice", "-n", str(nice)] if nice else []) + [sys.executable, "-c", code],
                            preexec_fn=_start_in(idle, cpus))
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 600
    while time.time() < deadline:
        try:
            if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the server did not start")


class Load:
    """Client threads doing one kind of request in a loop until :meth:`stop`: every request's
    start, end and outcome is kept (a client timeout counts as a failed request)."""

    def __init__(self, url: str, n: int, kind: str, ids: list[str], prefix: str = "", timeout: float = 60) -> None:
        self.url, self.kind, self.ids, self.prefix, self.timeout = url, kind, ids, prefix, timeout
        self.done: list[tuple[float, float, bool, str]] = []     # (start, end, ok, id)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(n)]
        for th in self.threads:
            th.start()

    def stop(self) -> None:
        self._stop.set()
        for th in self.threads:
            th.join()

    def _request(self, c: httpx.Client, rnd: random.Random, iid: str) -> tuple[bool, str]:
        if self.kind == "write":
            r = c.post("/api/items", json={"items": [{"item_id": iid, "name": f"Http Artist {iid}",
                                                      "tags": rnd.choice(self.ids)}]})
        elif self.kind == "delete":
            with self._lock:
                if not self.ids:                      # all deleted: nothing to record
                    self._stop.set()
                    return True, ""
                iid = self.ids.pop()
            r = c.delete(f"/api/items/{iid}")
        elif self.kind == "similar":
            r = c.get(f"/api/items/{rnd.choice(self.ids)}/similar", params={"k": 10})
        else:
            r = c.get("/api/search", params={"q": rnd.choice(QUERIES), "k": 10})
        return r.status_code == 200, iid

    def _run(self, t: int) -> None:
        rnd = random.Random(t)
        with httpx.Client(base_url=self.url, timeout=self.timeout) as c:
            i = 0
            while not self._stop.is_set():
                t0 = time.perf_counter()
                iid = f"{self.prefix}{t}-{i}"
                try:
                    ok, iid = self._request(c, rnd, iid)
                except httpx.HTTPError:                  # a client timeout: a failed request
                    ok = False
                if iid:
                    self.done.append((t0, time.perf_counter(), ok, iid))
                i += 1

    def stats(self, t0: float, t1: float) -> dict[str, float]:
        """Requests started in ``[t0, t1)``: p50 / p99 latency (failures and client timeouts
        at the time they took), completed per second, failures."""
        lat = [e - s for s, e, _, _ in self.done if t0 <= s < t1]
        return {"p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
                "per_s": sum(1 for s, e, ok, _ in self.done if ok and t0 <= e < t1) / (t1 - t0),
                "failed": sum(1 for s, _, ok, _ in self.done if not ok and t0 <= s < t1)}


class RateLoad(Load):
    """Open-loop client (no coordinated omission): requests are scheduled every ``1 / rate``
    seconds whatever the earlier ones take, sent by a pool of ``workers`` threads, and each
    one's latency is counted from its scheduled time, so a server that falls behind is
    charged the queueing it causes. A closed loop (:class:`Load`) measures the share of the
    CPU a reader gets on a saturated machine; this measures what a reader at a steady rate
    waits, the latency a service promises. Requests still queued when the load stops are not
    sent."""

    def __init__(self, url: str, rate: float, kind: str, ids: list[str], prefix: str = "", timeout: float = 60,
                 workers: int = 16) -> None:
        self.rate = rate
        self._sem = threading.Semaphore(0)
        self._due: list[float] = []
        self._ready = threading.Barrier(workers + 1)     # every worker connected before the clock starts
        super().__init__(url, workers, kind, ids, prefix, timeout)
        self._clock = threading.Thread(target=self._schedule, daemon=True)
        self._clock.start()

    def stop(self) -> None:
        self._stop.set()
        self._clock.join()
        for _ in self.threads:
            self._sem.release()
        for th in self.threads:
            th.join()

    def _schedule(self) -> None:
        try:
            self._ready.wait(timeout=60)
        except threading.BrokenBarrierError:        # a worker never connected: nothing is sent
            return
        t = time.perf_counter()
        while not self._stop.is_set():
            t += 1.0 / self.rate
            time.sleep(max(0.0, t - time.perf_counter()))
            with self._lock:
                self._due.append(t)
            self._sem.release()

    def _run(self, t: int) -> None:
        rnd = random.Random(t)
        with httpx.Client(base_url=self.url, timeout=self.timeout) as c:
            try:
                c.get("/api/health")      # a client and its connection cost ~25 ms each: not inside the clock
                self._ready.wait(timeout=60)
            except (httpx.HTTPError, threading.BrokenBarrierError):
                self._ready.abort()
                return
            i = 0
            while True:
                self._sem.acquire()
                if self._stop.is_set():
                    return
                with self._lock:
                    due = self._due.pop(0)
                iid = f"{self.prefix}{t}-{i}"
                try:
                    ok, iid = self._request(c, rnd, iid)
                except httpx.HTTPError:
                    ok = False
                self.done.append((due, time.perf_counter(), ok, iid))
                i += 1


def generation(space_dir: Path) -> int | None:
    """The number of the space's current generation (one more after each compaction), or None
    where its manifest does not say (code before issue 10)."""
    try:
        return int(str(json.loads((space_dir / "MANIFEST.json").read_text())["generation"]).rsplit("-", 1)[-1])
    except (OSError, ValueError, KeyError):
        return None


def phase(url: str, seconds: float, writers: int, tag_rows: list[list[str]], space_dir: Path, rate: float = 0.0,
          write_url: str | None = None, write_cpus: set[int] | None = None,
          raw: dict[str, list[float]] | None = None, **loads: tuple[int, str, list[str]]) -> dict[str, Any]:
    """Run the read loads for ``seconds`` with ``writers`` clients writing continuously in
    a process of their own (as writers are other clients than readers: in this process
    their HTTP client code would hold the readers' GIL and be counted as read latency),
    then stop them all; their stats, and the compactions the server made meanwhile (a
    compaction in a phase is what its read p99 varies with most: docs/service.md). ``rate``
    > 0: each read load is open-loop at that many requests a second (:class:`RateLoad`);
    ``write_url``: the writers write there (a follower at ``url`` serves the reads);
    ``write_cpus``: the writing clients run on those cores only; ``raw``: each read load's
    latencies (seconds) are appended to ``raw[name]`` too."""
    g0 = generation(space_dir)
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "tags.json"
        spec.write_text(json.dumps(tag_rows))
        child = subprocess.Popen([sys.executable, __file__, "--writer-client", write_url or url,
                                  "--clients", str(writers),
                                  "--seconds", str(seconds + 1.0), "--json", str(Path(tmp) / "w.json"),
                                  "--space", str(spec)], preexec_fn=_start_in(False, write_cpus)) if writers else None
        time.sleep(1.0 if writers else 0.0)                 # the writers are running when reads start
        running = {name: RateLoad(url, rate, kind, ids, prefix=f"{name}-") if rate > 0 else
                   Load(url, n, kind, ids, prefix=f"{name}-") for name, (n, kind, ids) in loads.items()}
        t0 = time.perf_counter()
        time.sleep(seconds)
        t1 = time.perf_counter()
        for ld in running.values():
            ld._stop.set()
        for ld in running.values():
            ld.stop()
        out = {name: ld.stats(t0, t1) for name, ld in running.items()}
        for name, ld in running.items() if raw is not None else ():
            raw.setdefault(name, []).extend(e - s for s, e, _, _ in ld.done if t0 <= s < t1)
        if write_url is not None:
            out["follower_loads"] = in_loads(url, running, t0, t1)
        if child is not None:
            child.wait()
            out["writes"] = json.loads((Path(tmp) / "w.json").read_text())
        else:
            out["writes"] = {"p50_ms": float("nan"), "p99_ms": float("nan"), "per_s": 0.0, "failed": 0}
        g1 = generation(space_dir)
        out["compactions"] = None if g0 is None or g1 is None else g1 - g0
        return out


def in_loads(url: str, running: dict[str, "Load"], t0: float, t1: float) -> dict[str, Any]:
    """The follower at ``url``'s generation loads that overlapped ``[t0, t1)`` (``recent_loads``
    on its ``/api/health``), and per read load the reads that started during one (from 50 ms
    before it) and the p99 of the others: what the follower's loads add to the phase's tail
    and what the rest of it is."""
    off = time.time() - time.perf_counter()
    loads = httpx.get(f"{url}/api/health", timeout=60).json()["follows"]["recent_loads"]
    took = [(a - off, s) for a, s in loads if a - off < t1 and a - off + s >= t0]
    wins = [(a - 0.05, a + s) for a, s in took]
    out: dict[str, Any] = {"loads": len(took), "seconds": [s for _, s in took]}
    for name, ld in running.items():
        reads = [(s, e) for s, e, _, _ in ld.done if t0 <= s < t1]
        rest = [e - s for s, e in reads if not any(a <= s <= b for a, b in wins)]
        out[name] = {"reads_during_loads": len(reads) - len(rest), "p99_ms_outside_loads": pct(rest, 99)}
    return out


def writer_client(url: str, clients: int, seconds: float, tags_file: str, out: str) -> None:
    """``--writer-client``: ``clients`` writers for ``seconds`` (after a 1 s start), stats to ``out``."""
    gc.freeze()                                  # as http_bench: no long collections in the clients
    w = Load(url, clients, "write", json.loads(Path(tags_file).read_text()), prefix=f"wc{os.getpid()}-")
    time.sleep(1.0)
    t0 = time.perf_counter()
    time.sleep(max(0.0, seconds - 1.0))
    t1 = time.perf_counter()
    w.stop()
    Path(out).write_text(json.dumps(w.stats(t0, t1)))


def wait_idle(pid: int, busy: float = 0.05, timeout: float = 300.0) -> float:
    """Wait until the server uses less than ``busy`` of a core over a second (the background
    compactions that earlier writes started are done), so that a phase's reads are not slowed
    by writes made before it; returns the seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        c0 = cpu_s(pid)
        time.sleep(1.0)
        if cpu_s(pid) - c0 < busy:
            break
    return round(time.perf_counter() - t0, 1)


def http_bench(path: Path, item_ids: list[str], tag_rows: list[list[str]], clients: int, seconds: float,
               delete: bool, read_rate: float = 0.0, follower: bool = False, writer_nice: int = 0,
               writer_idle: bool = False, split_cores: bool = False, alternate: int = 0) -> dict[str, Any]:
    """The HTTP figures; ``follower``: the reads go to a second server following the space
    (``talkrec serve --follow``) while the writes go to the first (at ``writer_nice``, or in
    ``SCHED_IDLE`` with ``writer_idle``); ``split_cores``: the writing server and the writing
    clients on the last core, the follower and this process (the reading clients) on the others;
    ``alternate``: also that many open-loop rounds of no writer then two writers, ``seconds`` /
    ``alternate`` each, their latencies pooled per writer count (the host's own drift then
    falls on both alike)."""
    # this process times the reads: a collection of the cyclic garbage collector here (the
    # Space loaded for the in-process figures is garbage now) held its GIL 50-90 ms and was
    # counted as the server's latency; collect once now, and freeze what is left
    gc.collect()
    gc.freeze()
    ncpu = os.cpu_count() or 1
    if split_cores and (not follower or ncpu < 2):
        raise SystemExit("--split-cores needs --follower and a machine with at least two cores")
    wcpus, rcpus = ({ncpu - 1}, set(range(ncpu - 1))) if split_cores else (None, None)
    mine = os.sched_getaffinity(0)
    proc, url = start_server(path, nice=writer_nice, idle=writer_idle, cpus=wcpus)
    fproc, read_url = start_server(path, follow=True, cpus=rcpus) if follower else (proc, url)
    if rcpus is not None:
        os.sched_setaffinity(0, rcpus)
    try:
        for u in {url, read_url}:
            with httpx.Client(base_url=u, timeout=120) as c:           # warm the query cache and the routes
                for q in QUERIES:
                    c.get("/api/search", params={"q": q})
        w = Load(url, clients, "write", tag_rows, prefix="w")
        t0 = time.perf_counter()
        time.sleep(seconds)
        t1 = time.perf_counter()
        w.stop()
        out: dict[str, Any] = {"http_clients": clients, "http_writes": w.stats(t0, t1), "follower": follower,
                               "writer_nice": writer_nice, "writer_idle": writer_idle, "split_cores": split_cores}
        if delete:
            dl = Load(url, clients, "delete", [i for _, _, ok, i in w.done if ok])
            t0 = time.perf_counter()
            for th in dl.threads:
                th.join()
            out["http_deletes"] = dl.stats(t0, time.perf_counter() + 1e-9)

        def idle() -> float:
            return wait_idle(proc.pid) + (wait_idle(fproc.pid) if follower else 0.0)
        out["idle_wait_s"] = idle()
        loads = {"similar": (1, "similar", item_ids), "search": (1, "search", item_ids)}
        for n_writers in (0, 1, 2):
            if n_writers:
                idle()
            out[f"writers_{n_writers}"] = phase(read_url, seconds, n_writers, tag_rows, path, write_url=url,
                                                write_cpus=wcpus, **loads)
        for n_writers in (0, 1, 2) if read_rate > 0 else ():
            idle()
            out[f"open_loop_writers_{n_writers}"] = phase(read_url, seconds, n_writers, tag_rows, path, rate=read_rate,
                                                          write_url=url, write_cpus=wcpus, **loads)
        if read_rate > 0:
            out["open_loop_read_rate_per_s"] = read_rate
        if read_rate > 0 and alternate > 0:
            out["alternated"] = alternated(read_url, url, path, tag_rows, seconds, alternate, read_rate, wcpus,
                                           idle, loads)
        if follower:
            idle()
            out["follower_lag"] = follower_lag(url, read_url, tag_rows)
        out["peak_rss_mb"] = {name: round(_status_kb(pr.pid, "VmHWM") / 1024, 1)
                              for name, pr in (("writer", proc), ("follower", fproc)) if name == "writer" or follower}
        return out
    finally:
        os.sched_setaffinity(0, mine)
        for pr in {proc, fproc}:
            pr.kill()
            pr.wait()


def alternated(read_url: str, url: str, path: Path, tag_rows: list[list[str]], seconds: float, rounds: int,
               rate: float, wcpus: set[int] | None, idle: Any, loads: dict[str, Any]) -> dict[str, Any]:
    """``rounds`` open-loop phases of no writer then two writers (``seconds / rounds`` each,
    after the server is idle), each read load's latencies pooled per writer count: p50 / p99
    of each pool and the p99 ratio, and the rounds' own p99s (how much one phase drifts)."""
    pools: dict[int, dict[str, list[float]]] = {0: {}, 2: {}}
    per_round: dict[str, list[list[float]]] = {}
    for _ in range(rounds):
        for n_writers in (0, 2):
            idle()
            got = phase(read_url, seconds / rounds, n_writers, tag_rows, path, rate=rate, write_url=url,
                        write_cpus=wcpus, raw=pools[n_writers], **loads)
            for name in loads:
                per_round.setdefault(name, [[], []])[n_writers // 2].append(round(got[name]["p99_ms"], 2))
    out: dict[str, Any] = {"rounds": rounds, "seconds_each": seconds / rounds}
    for name in loads:
        a, b = pools[0].get(name, []), pools[2].get(name, [])
        out[name] = {"writers_0": {"n": len(a), "p50_ms": pct(a, 50), "p99_ms": pct(a, 99)},
                     "writers_2": {"n": len(b), "p50_ms": pct(b, 50), "p99_ms": pct(b, 99)},
                     "p99_ratio": pct(b, 99) / pct(a, 99), "round_p99_ms": {"writers_0": per_round[name][0],
                                                                           "writers_2": per_round[name][1]}}
    return out


def follower_lag(url: str, read_url: str, tag_rows: list[list[str]], n: int = 100) -> dict[str, float]:
    """From a write's answer on the writer to its item's first answer on the follower (polled
    every 2 ms), for ``n`` single-item writes one after another."""
    lags = []
    with httpx.Client(base_url=url, timeout=60) as w, httpx.Client(base_url=read_url, timeout=60) as r:
        for i in range(n):
            iid = f"lag-{i}"
            got = w.post("/api/items", json={"items": [{"item_id": iid, "name": f"Lag {i}",
                                                        "tags": tag_rows[i % len(tag_rows)]}]})
            if got.status_code != 200:
                raise RuntimeError(f"the writer refused write {iid}: {got.status_code} {got.text}")
            t0 = time.perf_counter()
            while r.get(f"/api/items/{iid}").status_code != 200:
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError(f"{iid} did not show on the follower within 60 s: "
                                       f"{r.get('/api/health').json().get('follows')}")
                time.sleep(0.002)
            lags.append(time.perf_counter() - t0)
    return {"p50_ms": pct(lags, 50), "p99_ms": pct(lags, 99), "max_ms": pct(lags, 100), "writes": n}


def reads_after_compaction(space: Any, recs: list[dict[str, Any]], ids: list[str], rounds: int = 5) -> dict[str, float]:
    """The first ``similar`` (k=10 and k=200) and ``recommend`` after a compaction, on a space
    warmed as a server warms it, and the compaction's own time: ``rounds`` times one write and
    ``Space.compact``, the reads on items not read before."""
    space.warm_up()
    times: dict[str, list[float]] = {"compact": [], "similar": [], "recommend": [], "similar_k200": []}
    for r in range(rounds):
        space.add_items([{**recs[r % len(recs)], "item_id": f"compact-{r}"}])
        t0 = time.perf_counter()
        space.compact()
        times["compact"].append(time.perf_counter() - t0)
        for name, call in (("similar", lambda: space.similar(ids[3 * r])),
                           ("recommend", lambda: space.recommend(items=[ids[3 * r + 1]])),
                           ("similar_k200", lambda: space.similar(ids[3 * r + 2], k=200))):
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
    return {f"first_{k}_after_a_compaction_p50_ms" if k != "compact" else "compact_p50_ms": pct(v, 50)
            for k, v in times.items()} | {f"first_{k}_after_a_compaction_max_ms": pct(v, 100) for k, v in times.items()
                                          if k != "compact"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", required=True, help="a built space (copied first)")
    ap.add_argument("--writes", type=int, default=100, help="single-item upserts through Space.add_items")
    ap.add_argument("--clients", type=int, default=8, help="concurrent HTTP writers for writes/s")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each HTTP phase")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--no-http", action="store_true", help="the in-process figures only")
    ap.add_argument("--read-rate", type=float, default=40.0,
                    help="also the read phases open-loop: similar and search each at this many requests/s "
                         "(latency from the scheduled time); 0: closed-loop phases only")
    ap.add_argument("--follower", action="store_true",
                    help="the reads on a second server that follows the space (talkrec serve --follow), the "
                         "writes on the first")
    ap.add_argument("--writer-nice", type=int, default=0,
                    help="with --follower: run the writing server at this lowered priority (nice)")
    ap.add_argument("--writer-idle", action="store_true",
                    help="with --follower: run the writing server in SCHED_IDLE (chrt --idle 0): it only gets "
                         "the cores the reads leave")
    ap.add_argument("--split-cores", action="store_true",
                    help="with --follower: the writing server and its clients on the last core, the follower and "
                         "the reading clients on the others (a follower on a machine of its own)")
    ap.add_argument("--alternate", type=int, default=0, metavar="N",
                    help="also N open-loop rounds of no writer then two writers (--seconds / N each), latencies "
                         "pooled per writer count: the host's drift falls on both alike")
    ap.add_argument("--writer-client", metavar="URL", help=argparse.SUPPRESS)   # internal: phase()'s writers
    args = ap.parse_args()
    if args.writer_client:
        writer_client(args.writer_client, args.clients, args.seconds, args.space, args.json)
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from talkrec import Space

    work = Path(tempfile.mkdtemp(prefix="bench-writes-")) / "space"
    shutil.copytree(args.space, work)
    try:
        space = Space.load(work)
        recs = records(space, args.writes + 1, "py")
        res: dict[str, Any] = {"items": len(space.index), "code": "issue-10" if hasattr(space, "remove") else "before"}
        res.update(floors(space, recs))
        res.update(python_writes(space, recs))
        base = [str(i) for i in space.index.meta["item_id"] if not str(i).startswith("py")]
        ids = random.Random(1).sample(base, min(200, len(base)))
        if hasattr(space, "warm_up"):
            res.update(reads_after_writes(space, recs, ids))
            res.update(reads_after_compaction(space, recs, ids[100:]))
        tags = [r["tags"] for r in records(space, 200, "t", seed=2)]
        if hasattr(space, "close"):
            space.close()                          # the server process writes next
        del space
        if not args.no_http:
            res.update(http_bench(work, ids, tags, args.clients, args.seconds, delete=res["code"] == "issue-10",
                                  read_rate=args.read_rate, follower=args.follower, writer_nice=args.writer_nice,
                                  writer_idle=args.writer_idle, split_cores=args.split_cores,
                                  alternate=args.alternate))
    finally:
        shutil.rmtree(work.parent, ignore_errors=True)
    print(json.dumps(res, indent=2))
    for loop in ("", "open_loop_"):
        if f"{loop}writers_0" in res:
            for kind in ("similar", "search"):
                p99 = [res[f"{loop}writers_{n}"][kind]["p99_ms"] for n in (0, 1, 2)]
                print(f"{loop or 'closed_loop_'}read p99 {kind}: 0 / 1 / 2 writers {p99[0]:.1f} / {p99[1]:.1f} / "
                      f"{p99[2]:.1f} ms = {p99[2] / p99[0]:.2f}x (target <= 2x); writes/s under 2 writers "
                      f"{res[f'{loop}writers_2']['writes']['per_s']:.0f}")
    alt = res.get("alternated")
    for kind in ("similar", "search") if alt else ():
        a = alt[kind]
        print(f"open loop, {alt['rounds']} alternated rounds of {alt['seconds_each']:.0f} s: read p99 {kind}: "
              f"0 / 2 writers {a['writers_0']['p99_ms']:.1f} / {a['writers_2']['p99_ms']:.1f} ms = "
              f"{a['p99_ratio']:.2f}x (target <= 2x); the rounds' own p99 {a['round_p99_ms']['writers_0']} / "
              f"{a['round_p99_ms']['writers_2']} ms")
    for loop in ("", "open_loop_"):
        fl = res.get(f"{loop}writers_2", {}).get("follower_loads")
        if fl:
            print(f"{loop or 'closed_loop_'}read under 2 writers: the follower loaded {fl['loads']} generation(s) "
                  f"({', '.join(f'{x:.2f}' for x in fl['seconds'])} s); p99 of the reads outside them "
                  + ", ".join(f"{k} {v['p99_ms_outside_loads']:.1f} ms ({v['reads_during_loads']} during)"
                              for k, v in fl.items() if isinstance(v, dict)))
    if "follower_lag" in res:
        lag = res["follower_lag"]
        where = "in SCHED_IDLE" if args.writer_idle else f"at nice {args.writer_nice}"
        if args.split_cores:
            where += ", on a core of its own (the follower and the readers on the other)"
        print(f"follower: reads on a follower (talkrec serve --follow), writes on a server {where}; "
              f"a write shows on the follower after p50 {lag['p50_ms']:.1f} / p99 {lag['p99_ms']:.1f} ms; peak RSS "
              f"writer {res['peak_rss_mb']['writer']:.0f} MB, follower {res['peak_rss_mb']['follower']:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
