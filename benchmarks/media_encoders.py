"""Extraction speed of the audio (MusiCNN) and image (EfficientNet-Lite0) encoders.

    nice -n 10 .venv/bin/python benchmarks/media_encoders.py --clips 10 --seconds 30 --images 30

Generates its own media in a temporary folder (music-like 44.1 kHz stereo mp3 clips and
500 x 750 JPEG "posters" drawn with numpy), then times, per file: model loading (once),
a cold pass (decode + model, no cache; wall and CPU seconds: on a shared machine the CPU
seconds are the steadier figure), the decode share alone, and a warm pass (served from the
content-hash cache). Prints and optionally writes (``--out``) a JSON summary.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def make_clips(d: Path, n: int, seconds: float, sr: int = 44100) -> list[Path]:
    import soundfile as sf

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        t = np.arange(int(seconds * sr)) / sr
        f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
        notes = np.repeat(rng.integers(0, 12, size=int(seconds * 4) + 1), sr // 4)[: t.size]
        freq = f0 * 2 ** (notes / 12)
        phase = 2 * np.pi * np.cumsum(freq) / sr
        y = sum(np.sin(k * phase) / k for k in range(1, 5)) * 0.2
        beat = (np.mod(t, 0.5) < 0.03) * rng.standard_normal(t.size) * 0.3
        y = (y + beat).astype(np.float32)
        p = d / f"clip{i:03d}.mp3"
        sf.write(p, np.stack([y, np.roll(y, 100)], axis=1), sr)
        paths.append(p)
    return paths


def make_images(d: Path, n: int) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    yy, xx = np.mgrid[0:750, 0:500]
    for i in range(n):
        a = np.zeros((750, 500, 3), dtype=np.float32)
        for _ in range(6):
            cx, cy, r = rng.uniform(0, 500), rng.uniform(0, 750), rng.uniform(30, 200)
            a[((xx - cx) ** 2 + (yy - cy) ** 2) < r ** 2] = rng.uniform(0, 255, 3)
        a += rng.normal(0, 8, a.shape)
        p = d / f"poster{i:03d}.jpg"
        Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(p, quality=90)
        paths.append(p)
    return paths


def bench(enc, paths: list[Path], cache: Path, batch_size: int) -> dict[str, float]:
    t0 = time.perf_counter()
    if hasattr(enc, "_net"):
        enc._net()
    else:
        from talkrec.device import get_device
        from talkrec.encoders.image import _load_lite0

        _load_lite0(get_device(enc.device))
    load = time.perf_counter() - t0
    enc.encode(paths[:1], on_error="raise")  # warm-up (graph / kernels), then clear the cache
    for f in cache.rglob("*.npy"):
        f.unlink()
    t0, c0 = time.perf_counter(), time.process_time()
    X = enc.encode(paths, batch_size=batch_size, on_error="raise")
    cold, cold_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    for p in paths:
        enc._load_one(p)
    decode = time.perf_counter() - t0
    t0 = time.perf_counter()
    X2 = enc.encode(paths, batch_size=batch_size, on_error="raise")
    warm = time.perf_counter() - t0
    assert np.array_equal(X, X2) and np.isfinite(X).all()
    n = len(paths)
    return {"files": n, "model_load_s": round(load, 2), "cold_s_per_file": round(cold / n, 4),
            "cold_cpu_s_per_file": round(cold_cpu / n, 4),
            "decode_s_per_file": round(decode / n, 4), "model_s_per_file": round(max(cold - decode, 0) / n, 4),
            "cached_s_per_file": round(warm / n, 5), "dim": int(X.shape[1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--images", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--skip-audio", action="store_true")
    ap.add_argument("--skip-image", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out: dict[str, object] = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                          "loadavg_start": os.getloadavg()}}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if not args.skip_audio:
            from talkrec.encoders.audio import AudioEncoder

            clips = make_clips(d, args.clips, args.seconds)
            r = bench(AudioEncoder(cache=d / "cache"), clips, d / "cache", args.batch_size)
            r.update(clip_seconds=args.seconds, format="mp3 44.1 kHz stereo")
            out["audio"] = r
        if not args.skip_image:
            from talkrec.encoders.image import ImageEncoder

            imgs = make_images(d, args.images)
            r = bench(ImageEncoder(cache=d / "cache"), imgs, d / "cache", args.batch_size)
            r.update(format="jpeg 500x750")
            out["image"] = r
    out["machine"]["loadavg_end"] = os.getloadavg()  # type: ignore[index]
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
