"""Every Python snippet in README.md and docs/*.md runs as written (docs/errors.md has its own test, which also
checks each message): a snippet cannot rot.

Each snippet runs in a fresh interpreter, from a scratch directory that sees the repository's `perceptspec/` (so
paths such as 'perceptspec/examples/cartpole.yaml' resolve as they do from a clone) and receives the files it writes.
A snippet whose first line names a script ('# train_ddp.py') is that script, run as the text under it says
(`torchrun`). Snippets that train for real are `slow` (make test-all).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "errors.md")]
SCRIPT = re.compile(r"# (\w+\.py)\n")
#: what makes a snippet long: real training, a multi-process launch
SLOW = ("model.learn(", "torchrun", "dist.init_process_group")


def snippets() -> list[tuple[str, str]]:
    """(id, source) of every ```python block, the id naming the file and the heading above the block."""
    found = []
    for document in DOCUMENTS:
        text = document.read_text()
        for match in re.finditer(r"```python\n(.*?)```", text, re.S):
            heading = re.findall(r"^#+ (.+)$", text[:match.start()], re.M)
            found.append((f"{document.name}: {heading[-1] if heading else 'top'} (line "
                          f"{text[:match.start()].count(chr(10)) + 1})", match.group(1)))
    return found


def params() -> list[object]:
    return [pytest.param(source, id=name, marks=[pytest.mark.slow] if any(s in source for s in SLOW) else [])
            for name, source in snippets()]


@pytest.mark.parametrize("source", params())
def test_the_snippet_runs_as_written(source: str, tmp_path: Path) -> None:
    (tmp_path / "perceptspec").symlink_to(ROOT / "perceptspec")
    script = SCRIPT.match(source)
    if script is not None:
        (tmp_path / script.group(1)).write_text(source)
        torchrun = Path(sys.executable).with_name("torchrun")
        command = [str(torchrun), "--standalone", "--nproc-per-node=2", script.group(1)]
    else:
        command = [sys.executable, "-c", source]
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
                            check=False)
    assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"


def test_every_document_with_code_is_collected() -> None:
    names = {name.split(":")[0] for name, _ in snippets()}
    assert {"README.md", "training.md"} <= names
