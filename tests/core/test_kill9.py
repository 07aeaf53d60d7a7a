"""kill -9 during writes (issue 10, finding 5): a writer process adds (and deletes) items one
at a time and prints each acknowledged write; it is killed with SIGKILL at random moments,
several rounds, some during compactions; and a live uvicorn server is killed while two
clients write to it. After each kill the space loads with every acknowledged write, no
temporary leftovers, and doctor finds it healthy."""
from __future__ import annotations

import random
import time

import pytest
from storage_helpers import Child, kill_a_writer
from tiny_data import copy_space

from talkrec import Space
from talkrec.space.doctor import doctor

def _check(d, acked: set[str], deleted: set[str], deleting: set[str] = frozenset()) -> None:
    """Every acknowledged write is there, every acknowledged delete is gone (a delete begun
    but not acknowledged when the process died may have landed or not)."""
    rep = doctor(d, repair=True)
    assert rep.healthy, rep.to_json()
    s = Space.load(d)
    live = set(s.item_ids)
    assert acked - deleted - deleting <= live, sorted(acked - deleted - deleting - live)
    assert not deleted & live, sorted(deleted & live)
    assert len(s.item_ids) == len(live)
    leftovers = [p.name for p in d.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert not leftovers, leftovers
    assert doctor(d).healthy
    s.close()


@pytest.mark.parametrize("storage,rounds", [({}, 2), ({"compact_min_rows": 4, "compact_fraction": 0.0}, 3)],
                         ids=["log-only", "compacting"])
def test_every_acknowledged_write_survives_kill_9(tiny_space_dir, tmp_path, storage, rounds):
    d = copy_space(tiny_space_dir, tmp_path / "space")
    rnd = random.Random(10)
    acked: set[str] = set()
    deleted: set[str] = set()
    deleting: set[str] = set()
    for rnd_no in range(rounds):
        got = kill_a_writer(d, storage, rnd_no, acks=3, pause=rnd.uniform(0.0, 1.5))
        acked, deleted, deleting = acked | got[0], deleted | got[1], deleting | got[2]
        assert acked
        _check(d, acked, deleted, deleting - deleted)


def test_every_acknowledged_http_write_survives_kill_9(tiny_space_dir, tmp_path):
    """kill -9 of a live uvicorn server while two clients write: every write it answered 200
    is there after a restart, and doctor finds the space healthy."""
    import socket
    import threading

    import httpx

    d = copy_space(tiny_space_dir, tmp_path / "space")
    rnd = random.Random(3)
    acked: set[str] = set()
    for rnd_no in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = Child(f"import uvicorn\nfrom talkrec.service.app import create_app\n"
                       f"uvicorn.run(create_app({str(d)!r}), host='127.0.0.1', port={port}, log_level='warning')\n")
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        stop = threading.Event()

        def client(c: int) -> None:
            with httpx.Client(base_url=url, timeout=30) as h:
                i = 0
                while not stop.is_set():
                    iid = f"h{rnd_no}-{c}-{i}"
                    try:
                        r = h.post("/api/items", json={"items": [{"item_id": iid, "name": f"Http {iid}"}]})
                    except httpx.HTTPError:
                        return
                    if r.status_code == 200:
                        acked.add(iid)
                    i += 1
        clients = [threading.Thread(target=client, args=(c,)) for c in range(2)]
        for t in clients:
            t.start()
        n0 = len(acked)
        while len(acked) < n0 + 4 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(rnd.uniform(0.0, 1.0))
        server.kill()
        stop.set()
        for t in clients:
            t.join()
        assert len(acked) > n0
        _check(d, acked, set())
