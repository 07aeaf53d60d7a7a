"""Audio modality: MusiCNN penultimate features from audio files.

As in paper 002 (section 4.1): the audio is mixed down to mono, resampled to 16 kHz (what
MusiCNN expects), turned into MusiCNN's log-mel spectrogram (96 bands, 512-point FFT, hop
256), cut into consecutive non-overlapping 3-second patches (187 frames); each patch goes
through the pretrained MusiCNN trained on the Million Song Dataset (``MSD_musicnn``) and
the 200-d penultimate layer of the patches is averaged into one vector per file.

Clips shorter than one patch are looped (``short="loop"``, default) or zero-padded
(``short="pad"``) to one patch; a trailing partial patch of a longer clip is dropped, as
in the ``musicnn`` package. ``max_seconds`` (paper 002 uses 30 s) and ``offset_seconds``
limit the part of the file that is read.

One deliberate difference from ``musicnn.extractor``: it computes ``log10(10000 * S + 1)``
in float16, which overflows to ``inf`` (NaN features) on loud tonal sounds; here ``S`` is
rounded to float16 as there, then scaled in float32, so results are equal wherever the
original was finite.

Needs the ``audio`` extra (TensorFlow, tf-keras, librosa, musicnn): see docs/media.md.
Files: wav, mp3, flac, ogg, decoded by libsndfile (``soundfile``), resampled with soxr (``librosa``).
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import InputError
from ..estimator import Estimator, Instance, Interval, Options
from .media_cache import CacheArg, FileEncoderMixin, OnError, require

log = logging.getLogger(__name__)

SR = 16000
FFT_HOP = 256
FFT_SIZE = 512
N_MELS = 96
MODELS = {"MSD_musicnn": 50, "MTT_musicnn": 50}  # name -> number of tags of the head
FEATURE_DIM = 200

_LOCK = threading.Lock()


def _import_tf() -> Any:
    """Import TensorFlow (quietly) and check that the legacy Keras MusiCNN needs is there."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    require("tf_keras", "audio", "the audio encoder (MusiCNN)")
    return require("tensorflow", "audio", "the audio encoder (MusiCNN)")


@contextlib.contextmanager
def _legacy_keras() -> Iterator[None]:
    """Route ``tf.compat.v1.layers`` to tf-keras while MusiCNN's graph is built.

    TensorFlow resolves its lazy Keras modules on first use from ``TF_USE_LEGACY_KERAS``;
    the variable is set only for that moment, so other code keeps Keras 3 for ``tf.keras``.
    """
    old = os.environ.get("TF_USE_LEGACY_KERAS")
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    try:
        yield
    except AttributeError as e:
        if "Keras 3" in str(e):
            raise RuntimeError("MusiCNN needs tf.compat.v1.layers from tf-keras, but this process already "
                               "resolved them to Keras 3; set TF_USE_LEGACY_KERAS=1 before anything uses "
                               "TensorFlow's layers") from e
        raise
    finally:
        if old is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = old


class _MusiCNN:
    """A frozen MusiCNN graph in its own tf.Graph/Session (eager mode stays on elsewhere)."""

    def __init__(self, model: str, n_frames: int, num_threads: int | None) -> None:
        tf = _import_tf()
        musicnn = require("musicnn", "audio", "the audio encoder (MusiCNN)")
        from musicnn import models as mc_models  # noqa: PLC0415 - optional dependency

        ckpt = Path(musicnn.__file__).parent / model
        if not (ckpt / "checkpoint").exists():
            raise FileNotFoundError(f"MusiCNN checkpoint {model!r} not found in the musicnn package ({ckpt})")
        self.graph = tf.Graph()
        with self.graph.as_default(), _legacy_keras(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*is deprecated", category=UserWarning)
            with tf.name_scope("model"):
                self.x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, N_MELS])
                self.is_training = tf.compat.v1.placeholder(tf.bool)
                outs = mc_models.define_model(self.x, self.is_training, model, MODELS[model])
            self.penultimate = outs[-1]
            self.logits = outs[0]
            cfg = tf.compat.v1.ConfigProto()
            if num_threads:
                cfg.intra_op_parallelism_threads = num_threads
                cfg.inter_op_parallelism_threads = num_threads
            self.sess = tf.compat.v1.Session(graph=self.graph, config=cfg)
            tf.compat.v1.train.Saver().restore(self.sess, str(ckpt) + os.sep)
        log.info("loaded MusiCNN %s (%d-frame patches)", model, n_frames)

    def __call__(self, patches: np.ndarray) -> np.ndarray:
        return self.sess.run(self.penultimate, feed_dict={self.x: patches, self.is_training: False})


_NETS: dict[tuple[str, int, int | None], _MusiCNN] = {}


def _load_musicnn(model: str, n_frames: int, num_threads: int | None) -> _MusiCNN:
    """One MusiCNN graph per (model, patch length, threads), built once even under threads."""
    key = (model, n_frames, num_threads)
    with _LOCK:
        if key not in _NETS:
            _NETS[key] = _MusiCNN(model, n_frames, num_threads)
        return _NETS[key]


def patch_frames(patch_seconds: float) -> int:
    """Spectrogram frames per patch, computed as in ``musicnn`` (187 for 3 s)."""
    return int(np.floor((patch_seconds * SR - FFT_SIZE // 2) / FFT_HOP)) + 1


class AudioEncoder(FileEncoderMixin, Estimator):
    """MusiCNN features (200-d, mean over 3-second patches) for audio files.

    Pretrained: nothing to fit. Parameters are stored unchanged and checked on first use.

    Parameters
    ----------
    model:
        ``"MSD_musicnn"`` (default; paper 002) or ``"MTT_musicnn"`` (MagnaTagATune).
    patch_seconds:
        Patch length; 3 s is what MusiCNN was trained on.
    max_seconds, offset_seconds:
        Read at most ``max_seconds`` of audio starting at ``offset_seconds`` (``None``:
        the whole file). Paper 002 uses the first 30 s.
    short:
        Clips shorter than one patch: ``"loop"`` repeats the clip, ``"pad"`` adds silence.
    cache:
        ``True`` (default): ``$TALKREC_CACHE/media``; a folder; or ``False`` for none.
    num_threads:
        TensorFlow intra/inter-op threads (``None``: TensorFlow's default).
    patch_batch:
        Patches per TensorFlow call.
    device:
        Accepted for API symmetry; MusiCNN runs on TensorFlow's CPU build here.
    """

    modality = "audio"
    EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg")
    REQUIRES = ("soundfile", "librosa", "tensorflow", "tf_keras", "musicnn")
    EXTRA = "audio"
    _constraints = {"model": Options(*MODELS), "patch_seconds": Interval(float, 0, closed="neither"),
                    "max_seconds": Interval(float, 0, closed="neither", none=True),
                    "offset_seconds": Interval(float, 0), "short": Options("loop", "pad"),
                    "cache": Instance((str, os.PathLike, bool), none=True), "num_threads": Interval(int, 1, none=True),
                    "patch_batch": Interval(int, 1), "device": Instance(str, none=True)}

    def __init__(self, model: str = "MSD_musicnn", *, patch_seconds: float = 3.0,
                 max_seconds: float | None = None, offset_seconds: float = 0.0,
                 short: Literal["loop", "pad"] = "loop", cache: CacheArg = True,
                 num_threads: int | None = None, patch_batch: int = 64, device: str | None = None) -> None:
        self.model = model
        self.patch_seconds = patch_seconds
        self.max_seconds = max_seconds
        self.offset_seconds = offset_seconds
        self.short = short
        self.cache = cache
        self.num_threads = num_threads
        self.patch_batch = patch_batch
        self.device = device
        self._cache_obj = None
        self.last_failures = []

    def _params_changed(self) -> None:
        self._cache_obj = None  # its key is a hash of config()

    @property
    def dim(self) -> int:
        return FEATURE_DIM

    @property
    def n_frames(self) -> int:
        """Spectrogram frames per patch."""
        return patch_frames(float(self.patch_seconds))

    def config(self) -> dict[str, Any]:
        return {"modality": self.modality, "model": self.model, "layer": "penultimate", "pooling": "mean",
                "patch_seconds": float(self.patch_seconds), "max_seconds": self.max_seconds,
                "offset_seconds": float(self.offset_seconds), "short": self.short, "sr": SR, "version": 1}

    def encode(self, inputs: Any, *, batch_size: int = 16, show_progress_bar: bool = False,
               on_error: OnError | None = None) -> np.ndarray:
        """Embed one file (-> vector) or a list (-> matrix): see :meth:`FileEncoderMixin.encode`."""
        self._check_params()
        return super().encode(inputs, batch_size=batch_size, show_progress_bar=show_progress_bar, on_error=on_error)

    # -- decoding -------------------------------------------------------------------------
    def load_audio(self, path: str | os.PathLike[str]) -> np.ndarray:
        """Decode a file to mono float32 at 16 kHz (the part selected by offset/max_seconds)."""
        self._check_params()
        sf = require("soundfile", "audio", "the audio encoder")
        info = sf.info(str(path))
        start = int(round(self.offset_seconds * info.samplerate))
        frames = -1 if self.max_seconds is None else int(round(self.max_seconds * info.samplerate))
        data, sr = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
        y = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
        if sr != SR and y.size:
            librosa = require("librosa", "audio", "the audio encoder")
            y = librosa.resample(y, orig_sr=sr, target_sr=SR, res_type="soxr_hq")
        y = np.asarray(y, dtype=np.float32)
        if y.size == 0:
            raise ValueError("no audio samples (empty file or offset past the end)")
        if not np.all(np.isfinite(y)):
            raise ValueError("the decoded audio contains NaN or infinite samples")
        return y

    def patches(self, y: np.ndarray) -> np.ndarray:
        """MusiCNN input patches ``(n_patches, n_frames, 96)`` of a 16 kHz mono signal."""
        self._check_params()
        librosa = require("librosa", "audio", "the audio encoder")
        n_frames = self.n_frames
        need = (n_frames - 1) * FFT_HOP  # samples that give n_frames centred frames
        if y.size < need:
            if self.short == "loop":
                y = np.tile(y, int(np.ceil(need / y.size)))[:need]
            else:
                y = np.pad(y, (0, need - y.size))
        mel = librosa.feature.melspectrogram(y=y, sr=SR, hop_length=FFT_HOP, n_fft=FFT_SIZE, n_mels=N_MELS).T
        rep = np.log10(10000.0 * mel.astype(np.float16).astype(np.float32) + 1.0)
        n = rep.shape[0] // n_frames
        return rep[:n * n_frames].reshape(n, n_frames, N_MELS).astype(np.float32)

    def _load_one(self, path: Path) -> np.ndarray:
        return self.patches(self.load_audio(path))

    def _net(self) -> _MusiCNN:
        return _load_musicnn(self.model, self.n_frames, self.num_threads)

    def _embed(self, prepared: list[np.ndarray]) -> np.ndarray:
        net = self._net()
        counts = [p.shape[0] for p in prepared]
        allp = np.concatenate(prepared, axis=0)
        step = int(self.patch_batch)
        feats = np.concatenate([net(allp[s:s + step]) for s in range(0, allp.shape[0], step)], axis=0)
        out = np.empty((len(prepared), FEATURE_DIM), dtype=np.float32)
        start = 0
        for j, c in enumerate(counts):
            out[j] = feats[start:start + c].mean(axis=0)
            start += c
        return out

    def encode_signal(self, y: np.ndarray, sr: int) -> np.ndarray:
        """Embed an in-memory signal (``(n,)`` or ``(channels, n)``) at sample rate ``sr``."""
        librosa = require("librosa", "audio", "the audio encoder")
        y = np.asarray(y, dtype=np.float32)
        if y.ndim == 2:
            y = y.mean(axis=0)
        if sr != SR:
            y = librosa.resample(y, orig_sr=sr, target_sr=SR, res_type="soxr_hq")
        if y.size == 0:
            raise InputError("empty signal", field="y")
        return self._embed([self.patches(y)])[0]
