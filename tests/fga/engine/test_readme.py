"""The examples in tessera/fga/README.md run and print what the README says they print."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[3] / "tessera" / "fga" / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def _claim(comment: str) -> str:
    """The value a ``# comment`` says is printed: a list literal, or the first word."""
    if comment.startswith("["):
        return comment[: comment.index("]") + 1]
    return comment.split()[0].rstrip(":")


def test_readme_examples_print_what_they_claim() -> None:
    blocks = _blocks()
    assert len(blocks) == 2
    for code in blocks:
        claimed = [_claim(m) for m in re.findall(r"print\(.*\)\s*#\s*(.+)", code)]
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        )
        lines = out.stdout.strip().splitlines()
        assert len(lines) == len(claimed)
        for line, claim in zip(lines, claimed, strict=True):
            assert line == claim
