"""The README's first example runs and prints what its comments say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[3] / "tessera" / "fga" / "language" / "README.md"


def test_readme_example_runs_as_documented() -> None:
    block = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)[0]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, str(README), "exec"), {})
    printed = out.getvalue().splitlines()
    promised = [m.group(1).strip() for m in re.finditer(r"print\(.*?\)\s+# (.*)", block)]
    assert len(printed) == len(promised) == 3
    for line, comment in zip(printed, promised, strict=True):
        assert line.startswith(comment.rstrip(".}")[:40])
