"""The code's layout stays readable: every module is on the map (docs/ARCHITECTURE.md), no
module is over 400 lines and no function over 80 (issue 11)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "talkrec"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def _sections() -> dict[str, str]:
    """The map's paragraphs keyed by the folder they describe ('' for the top level)."""
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    out: dict[str, str] = {}
    for block in re.split(r"\n(?=\*\*)", text):
        m = re.match(r"\*\*`([a-z_]+)/`\*\*", block)
        key = m.group(1) if m else ("" if block.startswith("**Shared") else None)
        if key is not None:
            out[key] = block
    return out


def test_every_module_is_on_the_architecture_map() -> None:
    sections = _sections()
    missing = []
    for p in _modules():
        rel = p.relative_to(SRC)
        folder = rel.parts[0] if len(rel.parts) > 1 else ""
        block = sections.get(folder, "")
        if not re.search(r"(?<![\w.])" + re.escape(rel.name) + r"(?!\w)", block):
            missing.append(str(rel))
        if len(rel.parts) > 2 and f"{rel.parts[-2]}/" not in block:
            missing.append(f"{rel} (folder {rel.parts[-2]}/)")
    assert not missing, f"modules not described in docs/ARCHITECTURE.md: {missing}"


def test_no_module_over_400_lines() -> None:
    big = {str(p.relative_to(SRC)): n for p in _modules()
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not big, f"modules over {MAX_MODULE_LINES} lines: {big}"


def test_no_function_over_80_lines() -> None:
    long = {}
    for p in _modules():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if n > MAX_FUNCTION_LINES:
                    long[f"{p.relative_to(SRC)}:{node.name}"] = n
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"
