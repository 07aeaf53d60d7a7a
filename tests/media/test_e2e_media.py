"""Issue 5 "done when": folders of audio files and images become modalities of a built
space, and a new audio file works as a query through the CLI and the HTTP service (real MusiCNN and
EfficientNet-Lite0, real build pipeline). Slow: ~1-2 minutes on 2 CPU cores."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# The audio and image extras are installed by scripts/setup.sh: no skip.

SR = 22050


def _tonal(sec: float, seed: int) -> np.ndarray:
    r = np.random.default_rng(seed)
    n, tn = int(sec * SR), int(0.25 * SR)
    y, tt = np.zeros(n), np.arange(tn) / SR
    env = np.exp(-np.arange(tn) / (0.12 * SR))
    for s in range(0, n - tn, tn):
        f = r.choice(220 * 2 ** (np.array([0, 2, 4, 5, 7, 9, 11]) / 12))
        y[s:s + tn] += 0.25 * env * sum(np.sin(2 * np.pi * f * k * tt) / k for k in range(1, 5))
    return y.astype(np.float32)


def _drums(sec: float, seed: int) -> np.ndarray:
    r = np.random.default_rng(seed)
    n, k = int(sec * SR), int(0.08 * SR)
    y, env = np.zeros(n), np.exp(-np.arange(k) / (0.02 * SR))
    for j, s in enumerate(range(0, n - k, int(0.25 * SR))):
        y[s:s + k] += 0.3 * env * r.standard_normal(k) + (0.8 * env * np.sin(2 * np.pi * 60 * np.arange(k) / SR)
                                                           if j % 2 == 0 else 0)
    return y.astype(np.float32)


def _write(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


@pytest.mark.slow
def test_audio_and_image_folders_build_a_space_and_audio_queries_work(tmp_path: Path, monkeypatch) -> None:
    import soundfile as sf
    from PIL import Image

    from talkrec.encoders.audio import AudioEncoder
    from talkrec.encoders.image import ImageEncoder

    rng = np.random.default_rng(0)
    (tmp_path / "audio").mkdir()
    (tmp_path / "images").mkdir()
    items, tags, plays = [], [], []
    yy, xx = np.mgrid[0:160, 0:120]
    for i in range(24):
        g = "piano" if i % 2 == 0 else "drums"
        iid = f"i{i}"
        items.append({"item_id": iid, "name": f"{g} artist {i}"})
        tags.append({"item_id": iid, "tag": g, "category": "genre"})
        plays += [{"user_id": f"{g}{u}", "item_id": iid, "weight": 1} for u in range(6) if rng.random() < 0.6]
        if i < 22:  # two items without audio: a missing modality
            sf.write(tmp_path / "audio" / f"{iid}.wav", _tonal(3.5, i) if g == "piano" else _drums(3.5, i), SR)
        a = (((xx // 12) % 2)[..., None] * np.array([200, 30, 30]) + 30) if g == "piano" else \
            ((((xx - 60) ** 2 + (yy - 80) ** 2) < 50 ** 2)[..., None] * np.array([30, 30, 200]) + 200)
        Image.fromarray(np.clip(a + rng.normal(0, 10, a.shape), 0, 255).astype(np.uint8)).save(
            tmp_path / "images" / f"{iid}.png")
    (tmp_path / "audio" / "i23.wav").write_bytes(b"RIFF broken")  # unreadable: skipped, not fatal
    cache = tmp_path / "cache"
    # the folders -> (ids, vectors, failures) with the encoders' folder helper
    a_ids, A, a_fail = AudioEncoder(cache=cache).encode_folder(tmp_path / "audio")
    i_ids, _, i_fail = ImageEncoder(cache=cache).encode_folder(tmp_path / "images")
    assert len(a_ids) == 22 and [Path(f.path).name for f in a_fail] == ["i23.wav"] and A.shape == (22, 200)
    assert len(i_ids) == 24 and not i_fail
    _write(tmp_path / "items.csv", items)
    _write(tmp_path / "tags.csv", tags)
    _write(tmp_path / "plays.csv", plays)
    _write(tmp_path / "audio.csv", [{"item_id": p.stem, "path": f"audio/{p.name}"}
                                    for p in sorted((tmp_path / "audio").glob("*.wav"))])
    _write(tmp_path / "images.csv", [{"item_id": i, "path": f"images/{i}.png"} for i in i_ids])
    (tmp_path / "space.yaml").write_text(f"""
name: e2e
dataset: generic
output: {tmp_path / 'space'}
catalog:
  items: {{path: items.csv}}
  tags: {{path: tags.csv}}
  interactions: {{path: plays.csv}}
  media:
    audio: {{path: audio.csv, column: path}}
    image: {{path: images.csv, column: path}}
content:
  audio: {{source: audio_files}}
  image: {{source: image_files}}
fusion:
  max_epochs: 30
""")
    sf.write(tmp_path / "query_piano.wav", _tonal(4.0, 999), SR)
    env = {**os.environ, "TALKREC_CACHE": str(cache)}
    talkrec = [sys.executable, "-m", "talkrec.cli"]
    r = subprocess.run([*talkrec, "build", "space.yaml", "--no-progress"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([*talkrec, "search", "", "--space", str(tmp_path / "space"), "--audio", "query_piano.wav",
                        "-k", "5", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    hits = json.loads(r.stdout[r.stdout.index("["):])
    assert len(hits) == 5
    assert sum(h["name"].startswith("piano") for h in hits) >= 4, hits
    assert {"audio", "image"} <= set(hits[0]["metadata"]["modalities"])
    # ... and through the HTTP service: the same file uploaded to /api/query/media (real MusiCNN)
    monkeypatch.setenv("TALKREC_CACHE", str(cache))
    from fastapi.testclient import TestClient

    from talkrec.service.app import create_app
    with TestClient(create_app(tmp_path / "space")) as client:
        with open(tmp_path / "query_piano.wav", "rb") as fh:
            resp = client.post("/api/query/media", data={"modality": "audio", "k": "5"},
                               files={"file": ("query_piano.wav", fh, "audio/wav")})
    assert resp.status_code == 200, resp.text
    items = resp.json()["items"]
    assert sum(h["name"].startswith("piano") for h in items) >= 4, items
