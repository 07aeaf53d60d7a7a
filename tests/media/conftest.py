"""Real media for the media tests: synthetic music-like clips (numpy), espeak-ng speech when
Debian's espeak-ng is installed, and images (matplotlib's sample photo + generated ones)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

SR = 22050


def _song(seconds: float, *, seed: int, kind: str) -> np.ndarray:
    """A deterministic music-like signal.

    ``"tonal"``: a sequence of harmonic notes (piano-like decay) from a fixed scale;
    ``"drums"``: noise bursts and low thumps on a beat grid.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    y = np.zeros(n, dtype=np.float64)
    t_note = int(0.25 * SR)
    if kind == "tonal":
        scale = 220.0 * 2 ** (np.array([0, 2, 4, 5, 7, 9, 11, 12]) / 12)
        env = np.exp(-np.arange(t_note) / (0.12 * SR))
        tt = np.arange(t_note) / SR
        for s in range(0, n - t_note, t_note):
            f = rng.choice(scale)
            note = sum(np.sin(2 * np.pi * f * k * tt) / k for k in range(1, 6))
            y[s:s + t_note] += 0.25 * env * note
    elif kind == "drums":
        k = int(0.08 * SR)
        env = np.exp(-np.arange(k) / (0.02 * SR))
        tt = np.arange(k) / SR
        for j, s in enumerate(range(0, n - k, t_note)):
            if j % 2 == 0:
                y[s:s + k] += 0.8 * env * np.sin(2 * np.pi * 60 * tt)
            y[s:s + k] += 0.3 * env * rng.standard_normal(k)
    else:  # pragma: no cover
        raise ValueError(kind)
    return y.astype(np.float32)


@pytest.fixture(scope="session")
def song():
    return _song


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Clips: two excerpts of one tonal piece (wav, mp3), one of another tonal piece with
    the same instrument (flac), a drum track (ogg), a stereo copy, a short clip, broken files."""
    import soundfile as sf  # the audio extra (librosa) brings it; scripts/setup.sh installs it
    d = tmp_path_factory.mktemp("audio")
    piece = _song(12.0, seed=1, kind="tonal")
    sf.write(d / "tonal_a1.wav", piece[: 6 * SR], SR)
    sf.write(d / "tonal_a2.mp3", piece[6 * SR:], SR)
    sf.write(d / "drums_b1.ogg", _song(6.0, seed=2, kind="drums"), SR)
    sf.write(d / "drums_b2.flac", _song(6.0, seed=3, kind="drums"), SR)
    mono = _song(6.0, seed=4, kind="tonal")
    sf.write(d / "mono.wav", mono, SR)
    sf.write(d / "stereo.wav", np.stack([mono, mono], axis=1), SR)
    sf.write(d / "short.wav", _song(0.7, seed=5, kind="tonal"), SR)
    (d / "broken.mp3").write_bytes(b"ID3\x03\x00\x00\x00garbage that is not an mp3 stream")
    (d / "empty.wav").write_bytes(b"")
    (d / "notes.txt").write_text("not audio")
    return d


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exe = shutil.which("espeak-ng")
    assert exe is not None, "Debian's espeak-ng is missing: run scripts/setup.sh (it installs it)"
    d = tmp_path_factory.mktemp("speech")
    texts = {"en1": "The quick brown fox jumps over the lazy dog near the river bank.",
             "en2": "A small band played quiet songs in the old town hall all evening."}
    for name, text in texts.items():
        subprocess.run([exe, "-v", "en", "-s", "150", "-w", str(d / f"{name}.wav"), text], check=True,
                       capture_output=True, timeout=60)
    return d

