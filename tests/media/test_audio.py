"""AudioEncoder on real decoded audio through the real MusiCNN (the 'audio' extra)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

# The audio extra (TensorFlow, MusiCNN, librosa) is installed by scripts/setup.sh: no skip.
from contract import PretrainedContract  # noqa: E402

from talkrec.encoders.audio import AudioEncoder, patch_frames  # noqa: E402
from talkrec.errors import InputError  # noqa: E402

SR = 22050


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def enc() -> AudioEncoder:
    return AudioEncoder(cache=False)


@pytest.fixture(scope="module")
def X(enc: AudioEncoder, audio_dir: Path) -> dict[str, np.ndarray]:
    names = ["tonal_a1.wav", "tonal_a2.mp3", "drums_b1.ogg", "drums_b2.flac", "mono.wav", "stereo.wav", "short.wav"]
    M = enc.encode([audio_dir / n for n in names])
    return {Path(n).stem: M[i] for i, n in enumerate(names)}


def test_patch_length_matches_musicnn() -> None:
    assert patch_frames(3.0) == 187  # musicnn: time_to_frames(3 s) + 1


def test_shapes_and_dtype(enc: AudioEncoder, X: dict[str, np.ndarray], audio_dir: Path) -> None:
    assert enc.dim == 200 and enc.modality == "audio"
    v = enc.encode(audio_dir / "tonal_a1.wav")
    assert v.shape == (200,) and v.dtype == np.float32
    assert all(x.shape == (200,) and np.isfinite(x).all() for x in X.values())
    M = enc.encode([str(audio_dir / "drums_b1.ogg"), str(audio_dir / "tonal_a1.wav")], batch_size=1)
    assert M.shape == (2, 200)
    # input order is kept, and batching does not change the numbers
    np.testing.assert_allclose(M[0], X["drums_b1"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(M[1], v, rtol=1e-5, atol=1e-5)


def test_deterministic(enc: AudioEncoder, audio_dir: Path) -> None:
    a = enc.encode(audio_dir / "tonal_a2.mp3")
    b = AudioEncoder(cache=False).encode(audio_dir / "tonal_a2.mp3")
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_same_source_closer_than_different(X: dict[str, np.ndarray]) -> None:
    same_tonal = cos(X["tonal_a1"], X["tonal_a2"])  # two excerpts of one piece, wav vs mp3
    same_drums = cos(X["drums_b1"], X["drums_b2"])
    cross = max(cos(X["tonal_a1"], X["drums_b1"]), cos(X["tonal_a2"], X["drums_b2"]),
                cos(X["tonal_a1"], X["drums_b2"]))
    assert same_tonal > cross + 0.05, (same_tonal, cross)
    assert same_drums > cross + 0.05, (same_drums, cross)


def test_stereo_is_mixed_to_mono(X: dict[str, np.ndarray]) -> None:
    np.testing.assert_allclose(X["stereo"], X["mono"], rtol=1e-4, atol=1e-4)


def test_short_clip_is_handled(enc: AudioEncoder, X: dict[str, np.ndarray], audio_dir: Path) -> None:
    # 0.7 s < one 3 s patch: looped (default) or zero-padded, both give one finite vector
    assert np.isfinite(X["short"]).all()
    padded = AudioEncoder(short="pad", cache=False).encode(audio_dir / "short.wav")
    assert padded.shape == (200,) and np.isfinite(padded).all()
    assert not np.allclose(padded, X["short"])
    assert enc.patches(np.zeros(10, np.float32) + 0.1).shape == (1, 187, 96)


def test_resampling_is_transparent(enc: AudioEncoder, song, tmp_path: Path) -> None:
    import soundfile as sf
    import librosa

    y = song(6.0, seed=9, kind="tonal")
    sf.write(tmp_path / "a22k.wav", y, SR, subtype="FLOAT")
    sf.write(tmp_path / "a16k.wav", librosa.resample(y, orig_sr=SR, target_sr=16000), 16000)
    a, b = enc.encode([tmp_path / "a22k.wav", tmp_path / "a16k.wav"])
    assert cos(a, b) > 0.99
    np.testing.assert_allclose(enc.encode_signal(y, SR), a, rtol=1e-4, atol=1e-4)


def test_bad_files_are_reported_and_skipped(enc: AudioEncoder, audio_dir: Path, caplog) -> None:
    files = [audio_dir / "tonal_a1.wav", audio_dir / "broken.mp3", audio_dir / "missing.wav", audio_dir / "empty.wav",
             audio_dir / "drums_b1.ogg"]
    with caplog.at_level("WARNING"):
        M = enc.encode(files)
    assert M.shape == (5, 200)
    assert np.isfinite(M[[0, 4]]).all()
    assert np.isnan(M[[1, 2, 3]]).all()
    failed = {Path(f.path).name: f.reason for f in enc.last_failures}
    assert set(failed) == {"broken.mp3", "missing.wav", "empty.wav"}
    assert all(r for r in failed.values())
    assert "broken.mp3" in caplog.text
    with pytest.raises(InputError, match="broken.mp3"):
        enc.encode(audio_dir / "broken.mp3")  # a single file raises by default
    with pytest.raises(InputError, match="missing.wav"):
        enc.encode([audio_dir / "missing.wav"], on_error="raise")


def test_encode_folder(audio_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "lib"
    (d / "sub").mkdir(parents=True)
    shutil.copy(audio_dir / "tonal_a1.wav", d / "1.wav")
    shutil.copy(audio_dir / "drums_b1.ogg", d / "sub" / "2.OGG")
    shutil.copy(audio_dir / "broken.mp3", d / "3.mp3")
    (d / "cover.jpg").write_bytes(b"not audio")
    enc = AudioEncoder(cache=tmp_path / "cache")
    ids, X, failures = enc.encode_folder(d)
    assert ids == ["1", "sub/2"]
    assert X.shape == (2, 200) and np.isfinite(X).all()
    assert [Path(f.path).name for f in failures] == ["3.mp3"]
    shutil.copy(audio_dir / "tonal_a2.mp3", d / "1.mp3")
    with pytest.raises(InputError, match="item id '1'"):
        enc.encode_folder(d)


def test_cache_by_content(audio_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    enc = AudioEncoder(cache=tmp_path / "cache")
    a = enc.encode(audio_dir / "drums_b2.flac")
    # renamed copy: same bytes -> served from the cache without running the model
    shutil.copy(audio_dir / "drums_b2.flac", tmp_path / "renamed.flac")

    def boom(_: list) -> np.ndarray:
        raise AssertionError("model called although the file is cached")

    monkeypatch.setattr(enc, "_embed", boom)
    np.testing.assert_array_equal(enc.encode(tmp_path / "renamed.flac"), a)
    np.testing.assert_array_equal(AudioEncoder(cache=tmp_path / "cache").encode(audio_dir / "drums_b2.flac"), a)
    # another setting -> another cache namespace
    other = AudioEncoder(cache=tmp_path / "cache", max_seconds=2.0)
    assert other._get_cache().key != enc._get_cache().key
    # changed content -> a miss (the model is called)
    import soundfile as sf

    y, sr = sf.read(tmp_path / "renamed.flac", dtype="float32")
    sf.write(tmp_path / "renamed.flac", 0.5 * y, sr)
    with pytest.raises(AssertionError, match="model called"):
        enc.encode(tmp_path / "renamed.flac", on_error="raise")
    # set_params moves the encoder to the new setting's namespace
    assert enc.set_params(max_seconds=2.0)._get_cache().key == other._get_cache().key


def test_speech_clips(enc: AudioEncoder, speech_dir: Path, X: dict[str, np.ndarray]) -> None:
    """espeak-ng speech: two sentences by one voice are closer to each other than to music."""
    a, b = enc.encode([speech_dir / "en1.wav", speech_dir / "en2.wav"])
    assert cos(a, b) > max(cos(a, X["tonal_a1"]), cos(a, X["drums_b1"]), cos(b, X["tonal_a1"]))


def test_bad_arguments(audio_dir: Path) -> None:
    # stored unchanged, checked on first use (the contract below checks every parameter)
    with pytest.raises(ValueError):
        AudioEncoder(model="nope", cache=False).encode(audio_dir / "tonal_a1.wav")
    with pytest.raises(ValueError):
        AudioEncoder(short="stretch", cache=False).patches(np.ones(10, np.float32))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        AudioEncoder().encode(["a.wav"], batch_size=0)


class TestAudioEncoder(PretrainedContract):
    estimator = AudioEncoder
    params = {"cache": False, "max_seconds": 6.0}
    bad_params = {"model": "nope", "patch_seconds": 0.0, "max_seconds": -1.0, "offset_seconds": -1.0,
                  "short": "stretch", "cache": 3, "patch_batch": 0}
    atol = 1e-5

    @pytest.fixture
    def data(self, audio_dir: Path) -> Path:
        return audio_dir

    def outputs(self, est: AudioEncoder, data: Path) -> np.ndarray:
        return est.encode([data / "tonal_a1.wav", data / "tonal_a2.mp3", data / "drums_b1.ogg"])

    def check_known_answer(self, est: AudioEncoder, data: Path) -> None:
        a1, a2, b1 = self.outputs(est, data)         # two excerpts of one piece, and drums
        assert cos(a1, a2) > cos(a1, b1) + 0.05 and cos(a1, a2) > cos(a2, b1) + 0.05

    def bad_inputs(self, est: AudioEncoder, data: Path) -> list:
        return [(str(data / "broken.mp3"), lambda: est.encode(data / "broken.mp3")),
                (str(data / "missing.wav"), lambda: est.encode([data / "missing.wav"], on_error="raise")),
                ("y", lambda: est.encode_signal(np.zeros(0, np.float32), 16000))]
