"""The README's quick start runs as written."""

from __future__ import annotations

import re
from pathlib import Path


def test_quick_start_runs(capsys: object) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    match = re.search(r"## Quick start\n\n```python\n(.*?)```", readme, re.S)
    assert match is not None, "README.md has no quick start"
    namespace: dict[str, object] = {}
    exec(compile(match.group(1), "README.md", "exec"), namespace)  # noqa: S102  (our own documentation)
    logits = namespace["logits"]
    assert getattr(logits, "shape") == (8, 2)
