"""The resumable GEN cache: finished generations in an append-only JSONL file, keyed by a
hash of the prompt and the model's generation parameters."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .prompts import PROMPT_VERSION, Messages

log = logging.getLogger(__name__)


def cache_key(messages: Messages, backend_config: Mapping[str, Any]) -> str:
    """Hash of the prompt and the model/generation parameters (the base URL excluded: the
    same model behind another address gives the same texts)."""
    cfg = {k: v for k, v in backend_config.items() if k != "base_url"}
    blob = json.dumps({"messages": messages, "backend": cfg, "v": PROMPT_VERSION}, sort_keys=True,
                      ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class GenCache:
    """Append-only JSONL of finished generations: one JSON object per line.

    Each line is written with one ``write`` and flushed + fsynced, under a lock, so a crash
    can at worst leave a truncated last line, which :meth:`load` skips (with a warning).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.entries: dict[str, dict[str, Any]] = {}
        self.load()

    def load(self) -> None:
        self.entries = {}
        if not self.path.exists():
            return
        bad = 0
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                    if not isinstance(rec.get("text"), str) or not rec["text"].strip():
                        raise TypeError("no text")  # a hand-edited or foreign line: generate again
                    self.entries[str(rec["key"])] = rec
                except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                    bad += 1
        if bad:
            log.warning("%s: skipped %d unreadable line(s) (an interrupted write?)", self.path, bad)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def append(self, rec: dict[str, Any]) -> None:
        line = json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            needs_newline = self.path.exists() and self.path.stat().st_size > 0 and not _ends_with_newline(self.path)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(("\n" if needs_newline else "") + line)
                f.flush()
                os.fsync(f.fileno())
            self.entries[rec["key"]] = rec


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
