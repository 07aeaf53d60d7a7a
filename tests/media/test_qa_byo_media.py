"""A user's own tiny image catalog through ``talkrec build`` (QA, bring-your-own catalog):
files that are missing, empty, corrupt or of another type leave their items without the
image modality, and the build names each of them (a missing or misnamed file used to be
dropped without a word: only decoding failures were logged)."""
from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from talkrec.pipeline import build, load_config


def test_a_build_names_every_image_file_it_could_not_encode(tmp_path, caplog):
    files = tmp_path / "files"
    files.mkdir()
    rng = np.random.default_rng(0)
    items, media = [], []
    for g, colour in {"red": (220, 30, 30), "blue": (30, 30, 220)}.items():
        for j in range(3):
            iid = f"{g}{j}"
            items.append({"item_id": iid, "name": f"{g} {j}", "tags": f"{g}|thing"})
            pixels = np.clip(np.array(colour) + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(files / f"{iid}.png")
            media.append({"item_id": iid, "path": f"files/{iid}.png"})
    (files / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    (files / "empty.png").write_bytes(b"")
    (files / "notes.txt").write_text("hello")
    for iid, path in {"miss": "files/miss.png", "corrupt": "files/corrupt.png", "empty": "files/empty.png",
                      "txt": "files/notes.txt"}.items():
        items.append({"item_id": iid, "name": iid, "tags": "red"})
        media.append({"item_id": iid, "path": path})
    pd.DataFrame(items).to_csv(tmp_path / "items.csv", index=False)
    pd.DataFrame(media).to_csv(tmp_path / "images.csv", index=False)
    cfg = {"name": "img", "dataset": "generic", "output": str(tmp_path / "space"), "seed": 0,
           "catalog": {"items": {"path": "items.csv"}, "media": {"image": {"path": "images.csv"}}},
           "content": {"image": {"source": "image_files", "params": {"cache": str(tmp_path / "cache")}}},
           "cf": {"enabled": False}, "fusion": {"max_epochs": 3, "batch_size": 4, "hidden_dim": 8, "out_dim": 4}}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(cfg))
    with caplog.at_level(logging.WARNING, logger="talkrec.encoders.media"):
        build(load_config(tmp_path / "b.yaml"), show_progress=False)
    warned = caplog.text
    for name, why in (("miss.png", "file not found"), ("empty.png", "the file is empty"),
                      ("notes.txt", "the file name must end in"), ("corrupt.png", "")):
        assert name in warned and why in warned, (name, warned)
    report = json.loads((tmp_path / "space" / "build_report.json").read_text())
    content = next(s for s in report["stages"] if s["stage"] == "content")
    assert content["image_failed"] == 4 and content["items_with_image"] == 6
    assert any(f.endswith("miss.png: file not found") for f in content["image_failed_files"])
