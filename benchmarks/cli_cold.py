"""Cold-process wall time of ``talkrec search | similar | recommend`` on a built space, each
next to its floors measured in the same run, and the peak memory of ``talkrec serve``.

Floors: ``python -c pass`` (interpreter start), ``python -c "import numpy, pandas,
onnxruntime, tokenizers"`` (the libraries a query needs), and the text encoder's own
first call (load the space's ONNX model + tokenizer and encode the query, in-process).
Every figure is the median of ``--repeats`` fresh processes (min in brackets) with the
median CPU time (user + system) of the process, which a busy machine hardly changes: on an
idle machine the wall time of these single-threaded runs comes close to it. The load average
is printed with them because the machine is shared.

    PYTHONPATH=src OPENBLAS_NUM_THREADS=1 python benchmarks/cli_cold.py --space spaces/lastfm
    PYTHONPATH=src python benchmarks/cli_cold.py --space SPACE --serve      # + serve peak RSS

``--src DIR`` runs another checkout's sources (e.g. the code before this change) on the space.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 1.5
ENCODER_FIRST_CALL = """
import sys, time
t0 = time.perf_counter()
from talkrec.encoders.text import TextEncoder
import json, pathlib
space = pathlib.Path(sys.argv[1])
enc = TextEncoder.for_space(json.loads((space / "space.json").read_text())["text"], space)
enc.encode(sys.argv[2], kind="query")
print(time.perf_counter() - t0)
"""


def _env(src: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": src, "OPENBLAS_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _wall(cmd: list[str], env: dict[str, str], repeats: int) -> tuple[float, float, float, str]:
    """(median wall, min wall, median CPU) seconds of ``cmd`` in fresh processes, and its
    last output. CPU time (user + system) hardly depends on what else the machine runs."""
    times, cpus, out = [], [], ""
    for _ in range(repeats):
        c0, t0 = _cpu(), time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        times.append(time.perf_counter() - t0)
        cpus.append(_cpu() - c0)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
        out = p.stdout
    return statistics.median(times), min(times), statistics.median(cpus), out


def _talkrec(py: str) -> list[str]:
    script = Path(py).with_name("talkrec")
    return [str(script)] if script.exists() else [py, "-m", "talkrec.cli"]


def _examples(space: Path) -> tuple[str, str, str]:
    cfg = json.loads((space / "space.json").read_text())
    ex = cfg.get("build_config", {}).get("examples", {})
    similar = (ex.get("similar") or [None])[0]
    rec = ",".join((ex.get("recommend_items") or [[]])[0])
    if not similar or not rec:
        import pyarrow.parquet as pq
        names = pq.read_table(space / "index" / "meta.parquet", columns=["item_id"]).column(0).to_pylist()
        similar, rec = similar or names[0], rec or ",".join(names[:2])
    return "dark gothic rock", similar, rec


def cold_cli(space: Path, src: str, repeats: int) -> list[dict[str, object]]:
    py, env = sys.executable, _env(src)
    query, similar, rec = _examples(space)
    rows: list[dict[str, object]] = []

    def add(name: str, cmd: list[str], note: str = "") -> float:
        med, mn, cpu, _ = _wall(cmd, env, repeats)
        rows.append({"what": name, "median_s": round(med, 3), "min_s": round(mn, 3), "cpu_s": round(cpu, 3),
                     "note": note})
        return med

    add("floor: python -c pass", [py, "-c", "pass"])
    add("floor: import numpy, pandas, onnxruntime, tokenizers",
        [py, "-c", "import numpy, pandas, onnxruntime, tokenizers"])
    if (space / "text_model").is_dir():
        first = [float(_wall([py, "-c", ENCODER_FIRST_CALL, str(space), query], env, 1)[3]) for _ in range(repeats)]
        rows.append({"what": "floor: text encoder load + first query (in-process)",
                     "median_s": round(statistics.median(first), 3), "min_s": round(min(first), 3), "cpu_s": None,
                     "note": ""})
    tr = _talkrec(py)
    for name, args in (("talkrec search (hybrid)", ["search", query]),
                       ("talkrec search --mode multi", ["search", query, "--mode", "multi"]),
                       ("talkrec search --mode text", ["search", query, "--mode", "text"]),
                       ("talkrec search --mode lexical", ["search", query, "--mode", "lexical"]),
                       ("talkrec similar", ["similar", similar]),
                       ("talkrec recommend --items", ["recommend", "--items", rec])):
        med = add(name, tr + args + ["--space", str(space), "--json"], f"target <= {TARGET_S} s")
        rows[-1]["meets_target"] = med <= TARGET_S
    return rows


def src_bytecode(src: str) -> str:
    """How many of the modules under ``src`` have current cached bytecode. Where
    PYTHONDONTWRITEBYTECODE is set, Python never writes it for an editable install, and each
    cold process compiles every module it imports (scripts/setup.sh compiles them)."""
    import importlib.util

    files = [f for f in Path(src).rglob("*.py") if "__pycache__" not in f.parts]
    ok = 0
    for f in files:
        pyc = Path(importlib.util.cache_from_source(str(f)))
        ok += pyc.exists() and pyc.stat().st_mtime >= f.stat().st_mtime
    return f"{ok} of {len(files)} modules"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def serve_rss(space: Path, src: str) -> dict[str, object]:
    """Start ``talkrec serve``, run searches / similar / recommend, read its peak RSS."""
    import httpx

    port = _free_port()
    proc = subprocess.Popen(_talkrec(sys.executable) + ["serve", "--space", str(space), "--port", str(port)],
                            env=_env(src), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        t0 = time.perf_counter()
        while True:
            try:
                if httpx.get(base + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.perf_counter() - t0 > 300:
                raise SystemExit("talkrec serve did not come up")
            time.sleep(0.2)
        ready = time.perf_counter() - t0
        query, similar, rec = _examples(space)
        lat = []
        for q in [query, "heavy metal", "80s synth pop", "relaxing ambient electronic music", "brazilian music"] * 4:
            t1 = time.perf_counter()
            httpx.get(base + "/api/search", params={"q": q}, timeout=60).raise_for_status()
            lat.append(time.perf_counter() - t1)
        sim = httpx.get(base + "/api/items", params={"name": similar}, timeout=60).json()
        iid = (sim.get("items") or [{}])[0].get("item_id")
        if iid:
            httpx.get(f"{base}/api/items/{iid}/similar", timeout=60).raise_for_status()
            httpx.post(base + "/api/recommend", json={"items": [iid]}, timeout=60).raise_for_status()
        return {"ready_s": round(ready, 2), "search_p50_ms": round(1000 * statistics.median(lat), 1),
                "peak_rss_mb": round(_status_kb(proc.pid, "VmHWM") / 1024, 1),
                "rss_mb": round(_status_kb(proc.pid, "VmRSS") / 1024, 1)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", required=True, type=Path)
    ap.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--serve", action="store_true", help="also measure talkrec serve's peak RSS")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not shutil.which(sys.executable):
        raise SystemExit("no python")
    load0 = os.getloadavg()
    rows = cold_cli(a.space, a.src, a.repeats)
    out = {"space": str(a.space), "src": a.src, "src_bytecode": src_bytecode(a.src),
           "load_before": [round(x, 2) for x in load0],
           "load_after": [round(x, 2) for x in os.getloadavg()], "cli": rows}
    if a.serve:
        out["serve"] = serve_rss(a.space, a.src)
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print(f"space {a.space}  sources {a.src} (bytecode cached: {out['src_bytecode']})  "
          f"load average {out['load_before']} -> {out['load_after']}")
    for r in rows:
        flag = "" if "meets_target" not in r else ("  OK" if r["meets_target"] else "  OVER")
        cpu = "" if r["cpu_s"] is None else f"cpu {r['cpu_s']:.3f}"
        print(f"  {r['what']:<55} {r['median_s']:>7.3f} s  (min {r['min_s']:.3f}) {cpu:>10}  {r['note']}{flag}")
    if a.serve:
        print("  talkrec serve:", json.dumps(out["serve"]))


if __name__ == "__main__":
    main()
