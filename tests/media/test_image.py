"""ImageEncoder on real images through the real EfficientNet-Lite0 (the 'image' extra)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

# The image extra (EfficientNet-Lite0 and its weights, Pillow) is installed by scripts/setup.sh: no skip.
from PIL import Image  # noqa: E402

from contract import PretrainedContract  # noqa: E402

from talkrec.encoders.image import ImageEncoder  # noqa: E402
from talkrec.errors import InputError  # noqa: E402


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _sample(name: str) -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / name


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real photo (matplotlib's Grace Hopper) and variants, generated posters, broken files."""
    d = tmp_path_factory.mktemp("images")
    photo = Image.open(_sample("grace_hopper.jpg")).convert("RGB")
    photo.save(d / "photo.jpg", quality=95)
    photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((300, 400)).save(d / "photo_flip.png")
    photo.convert("L").save(d / "photo_gray.png")
    photo.convert("P", palette=Image.Palette.ADAPTIVE).save(d / "photo_palette.gif")
    rgba = photo.convert("RGBA")
    rgba.putalpha(255)
    rgba.save(d / "photo_rgba.png")
    # two "posters" of one design (stripes) and one of another (a disc), generated
    yy, xx = np.mgrid[0:450, 0:300]
    stripes = ((xx // 20) % 2)[..., None] * np.array([230, 40, 40]) + 20
    Image.fromarray(stripes.astype(np.uint8)).save(d / "stripes_a.png")
    Image.fromarray(np.roll(stripes, 10, axis=1).astype(np.uint8)).save(d / "stripes_b.webp", quality=90)
    disc = (((xx - 150) ** 2 + (yy - 225) ** 2) < 100 ** 2)[..., None] * np.array([30, 30, 200]) + 235
    Image.fromarray(np.clip(disc, 0, 255).astype(np.uint8)).save(d / "disc.bmp")
    Image.open(_sample("logo2.png")).save(d / "logo.png")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (d / "empty.png").write_bytes(b"")
    return d


@pytest.fixture(scope="module")
def enc() -> ImageEncoder:
    return ImageEncoder(cache=False)


def test_shapes_dtype_and_order(enc: ImageEncoder, image_dir: Path) -> None:
    assert enc.dim == 1280 and enc.modality == "image"
    v = enc.encode(image_dir / "photo.jpg")
    assert v.shape == (1280,) and v.dtype == np.float32 and np.isfinite(v).all()
    M = enc.encode([image_dir / "disc.bmp", str(image_dir / "photo.jpg")], batch_size=1)
    assert M.shape == (2, 1280)
    np.testing.assert_allclose(M[1], v, rtol=1e-4, atol=1e-4)


def test_deterministic(enc: ImageEncoder, image_dir: Path) -> None:
    a = enc.encode(image_dir / "logo.png")
    b = ImageEncoder(cache=False).encode(image_dir / "logo.png")
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_pretrained_weights_recognise_the_photo(image_dir: Path) -> None:
    """The bundled ImageNet head sees Grace Hopper's photo as 'military uniform' (652) when
    the whole photo is shown; the centre crop shows her face and collar: 'academic gown' (400),
    'mortarboard' (667) or 'military uniform' lead."""
    import torch
    from talkrec.encoders.image import MEAN, STD, _load_lite0

    net = _load_lite0("cpu")

    def top(crop: str, k: int) -> list[int]:
        x = (ImageEncoder(crop=crop, cache=False).load_image(image_dir / "photo.jpg") - MEAN) / STD  # type: ignore[arg-type]
        with torch.inference_mode():
            logits = net(torch.from_numpy(x.transpose(2, 0, 1)[None].copy()))
        return logits[0].argsort(descending=True)[:k].tolist()

    assert top("none", 1) == [652]
    assert set(top("center", 3)) == {400, 652, 667}


def test_same_source_closer_than_different(enc: ImageEncoder, image_dir: Path) -> None:
    names = ["photo.jpg", "photo_flip.png", "photo_gray.png", "photo_palette.gif", "stripes_a.png",
             "stripes_b.webp", "disc.bmp", "logo.png"]
    X = dict(zip(names, enc.encode([image_dir / n for n in names])))
    for variant in ["photo_flip.png", "photo_gray.png", "photo_palette.gif"]:
        assert cos(X["photo.jpg"], X[variant]) > max(cos(X["photo.jpg"], X[o]) for o in
                                                      ["stripes_a.png", "disc.bmp", "logo.png"]) + 0.1
    assert cos(X["stripes_a.png"], X["stripes_b.webp"]) > max(cos(X["stripes_a.png"], X["disc.bmp"]),
                                                              cos(X["stripes_a.png"], X["photo.jpg"]))


def test_alpha_is_composited_on_white(enc: ImageEncoder, image_dir: Path) -> None:
    opaque = Image.open(image_dir / "photo_rgba.png")
    np.testing.assert_allclose(enc.encode(image_dir / "photo_rgba.png"), enc.encode_pil(opaque.convert("RGB")),
                               rtol=1e-5, atol=1e-5)
    clear = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    white = Image.new("RGB", (64, 64), (255, 255, 255))
    np.testing.assert_allclose(enc.encode_pil(clear), enc.encode_pil(white), rtol=1e-5, atol=1e-5)


def test_crop_modes(image_dir: Path) -> None:
    tall = Image.new("RGB", (100, 400), (10, 200, 10))
    c = ImageEncoder(cache=False)
    assert c.prepare(tall).shape == (224, 224, 3)
    assert ImageEncoder(crop="none", cache=False).prepare(tall).shape == (224, 224, 3)
    assert c.prepare(Image.new("RGB", (1, 1))).shape == (224, 224, 3)
    with pytest.raises(ValueError):
        ImageEncoder(crop="zoom").prepare(tall)  # type: ignore[arg-type]  # checked on first use


def test_bad_files_are_reported_and_skipped(enc: ImageEncoder, image_dir: Path) -> None:
    files = [image_dir / "broken.jpg", image_dir / "photo.jpg", image_dir / "empty.png", image_dir / "nope.png"]
    M = enc.encode(files)
    assert np.isnan(M[[0, 2, 3]]).all() and np.isfinite(M[1]).all()
    assert sorted(Path(f.path).name for f in enc.last_failures) == ["broken.jpg", "empty.png", "nope.png"]
    with pytest.raises(InputError, match="broken.jpg"):
        enc.encode(image_dir / "broken.jpg")


def test_encode_folder_and_cache(image_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "posters"
    (d / "more").mkdir(parents=True)
    shutil.copy(image_dir / "photo.jpg", d / "m1.jpg")
    shutil.copy(image_dir / "disc.bmp", d / "more" / "m2.BMP")
    shutil.copy(image_dir / "broken.jpg", d / "m3.jpg")
    (d / "readme.txt").write_text("x")
    enc = ImageEncoder(cache=tmp_path / "cache")
    ids, X, failures = enc.encode_folder(d, show_progress_bar=True)
    assert ids == ["m1", "more/m2"] and X.shape == (2, 1280)
    assert [Path(f.path).name for f in failures] == ["m3.jpg"]
    assert len(enc._get_cache()) == 2

    def boom(_: list) -> np.ndarray:
        raise AssertionError("model called although cached")

    again = ImageEncoder(cache=tmp_path / "cache")
    monkeypatch.setattr(again, "_embed", boom)
    ids2, X2, _ = again.encode_folder(d)
    assert ids2 == ids
    np.testing.assert_array_equal(X2, X)
    # a different crop is a different cache namespace
    assert ImageEncoder(cache=tmp_path / "cache", crop="none")._get_cache().key != again._get_cache().key
    # set_params moves the encoder to the new setting's namespace
    assert again.set_params(crop="none")._get_cache().key != enc._get_cache().key


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a folder"):
        ImageEncoder(cache=False).encode_folder(tmp_path / "missing")


def test_concurrent_calls_share_one_network(image_dir: Path) -> None:
    """The service encodes uploads from several threads: one network, same results."""
    from concurrent.futures import ThreadPoolExecutor

    from talkrec.encoders import image as image_mod

    enc = ImageEncoder(cache=False)
    with ThreadPoolExecutor(4) as ex:
        out = list(ex.map(lambda _: enc.encode(image_dir / "logo.png"), range(4)))
    assert len(image_mod._NETS) == 1
    for v in out[1:]:
        np.testing.assert_allclose(v, out[0], rtol=1e-5, atol=1e-5)


class TestImageEncoder(PretrainedContract):
    estimator = ImageEncoder
    params = {"cache": False, "crop": "none"}
    bad_params = {"crop": "zoom", "cache": 3, "device": 0}
    atol = 1e-5

    @pytest.fixture
    def data(self, image_dir: Path) -> Path:
        return image_dir

    def outputs(self, est: ImageEncoder, data: Path) -> np.ndarray:
        return est.encode([data / "stripes_a.png", data / "stripes_b.webp", data / "disc.bmp"])

    def check_known_answer(self, est: ImageEncoder, data: Path) -> None:
        a, b, disc = self.outputs(est, data)         # two posters of one design, and another design
        assert cos(a, b) > cos(a, disc) and cos(a, b) > cos(b, disc)

    def bad_inputs(self, est: ImageEncoder, data: Path) -> list:
        return [(str(data / "broken.jpg"), lambda: est.encode(data / "broken.jpg")),
                (str(data / "nope.png"), lambda: est.encode([data / "nope.png"], on_error="raise"))]
