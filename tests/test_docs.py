"""Every Python snippet in README.md and in the site's pages (docs/**/*.md) runs as written (docs/errors.md has its
own test, which also checks each message): a snippet cannot rot. Every YAML block parses (a composer config is
checked against the schema), and every `$ perceptspec ...` line of a console block runs and succeeds. A block that
includes a file (`--8<-- "perceptspec/examples/cartpole.py"`, pymdownx.snippets, as the site renders it) runs that
file's text. The API reference documents every public name.

Each snippet runs in a process of its own (forked from a warm interpreter that has imported torch and the other heavy
libraries but not perceptspec: `tests/warm_python.py`), from a scratch directory that sees the repository's `perceptspec/` (so
paths such as 'perceptspec/examples/cartpole.yaml' resolve as they do from a clone) and receives the files it writes.
A snippet whose first line names a script ('# train_ddp.py') is that script, run as the text under it says
(`torchrun`). Snippets that train for real are `slow` (make test-all).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.warm_python import WarmPython

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md") if p.name != "errors.md"
                                         or p.parent.name != "docs")]
INCLUDE = re.compile(r'^--8<-- "([^"]+)"$', re.M)
SCRIPT = re.compile(r"# (\w+\.py)\n")
#: what makes a snippet long: real training, a multi-process launch
SLOW = ("model.learn(", "torchrun", "dist.init_process_group")



def snippets(language: str = "python") -> list[tuple[str, str]]:
    """(id, source) of every ```<language> block, the id naming the file and the heading above the block; the
    included files' text in place of `--8<--` lines."""
    found = []
    for document in DOCUMENTS:
        text = document.read_text()
        for match in re.finditer(rf"^```{language}\n(.*?)^```", text, re.S | re.M):
            heading = re.findall(r"^#+ (.+)$", text[:match.start()], re.M)
            source = INCLUDE.sub(lambda m: (ROOT / m.group(1)).read_text(), match.group(1))
            found.append((f"{document.relative_to(ROOT)}: {heading[-1] if heading else 'top'} (line "
                          f"{text[:match.start()].count(chr(10)) + 1})", source))
    return found


def params() -> list[object]:
    return [pytest.param(source, id=name, marks=[pytest.mark.slow] if any(s in source for s in SLOW) else [])
            for name, source in snippets()]


@pytest.fixture(scope="session")
def warm_python() -> Iterator[WarmPython]:
    """One warm interpreter per pytest worker, started when the first snippet needs it."""
    warm = WarmPython()
    yield warm
    warm.close()


@pytest.mark.parametrize("source", params())
def test_the_snippet_runs_as_written(source: str, tmp_path: Path, warm_python: WarmPython) -> None:
    (tmp_path / "perceptspec").symlink_to(ROOT / "perceptspec")
    script = SCRIPT.match(source)
    if script is None:
        result = warm_python.run(source, tmp_path, {"PYTHONPATH": str(tmp_path)})
        assert result.returncode == 0, result.output[-6000:]
        return
    (tmp_path / script.group(1)).write_text(source)
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "PYTHONPATH": str(tmp_path)}
    launched = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node=2", script.group(1)], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=600, check=False)
    assert launched.returncode == 0, f"{launched.stdout[-2000:]}\n{launched.stderr[-4000:]}"


def test_every_document_with_code_is_collected() -> None:
    names = {name.split(":")[0] for name, _ in snippets()}
    assert {"README.md", "docs/training.md", "docs/index.md", "docs/examples.md", "docs/forward.md",
            "docs/coming-from-sb3.md", "docs/coming-from-torchrl.md", "docs/coming-from-maze.md"} <= names


@pytest.mark.parametrize("source", [pytest.param(s, id=n) for n, s in snippets("yaml")])
def test_every_yaml_block_parses_and_a_config_is_valid(source: str) -> None:
    from perceptspec._config import check_config

    data = yaml.safe_load(source)
    assert isinstance(data, dict)
    if "policy" in data and "_target_" not in data:  # a composer config (not Maze's: that one names its composer)
        check_config(data)


def console_lines() -> list[tuple[str, str]]:
    return [(f"{name}: {line}", line) for name, source in snippets("console")
            for line in source.splitlines() if line.startswith("$ perceptspec ")]


def test_every_console_line_runs(tmp_path: Path) -> None:
    """Each `$ perceptspec ...` line of the pages runs in this process (the command line is `main`), from a
    scratch directory that sees the repository's `perceptspec/`, and succeeds. Lines that build torch modules
    (`--forward`, the demo) are left to the snippets and CLI tests that run the same."""
    from perceptspec.cli import main

    (tmp_path / "perceptspec").symlink_to(ROOT / "perceptspec")
    lines = [(name, line) for name, line in console_lines() if "--forward" not in line and " demo" not in line]
    assert len(lines) >= 4
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for name, line in lines:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
                status = main(shlex.split(line)[2:])
            assert status == 0, f"{name}: {err.getvalue()}"
    finally:
        os.chdir(cwd)


def test_the_api_reference_names_every_public_name() -> None:
    """Every name of `perceptspec.__all__` (and the lazily loaded ones) is on a page of docs/api: by a
    `::: perceptspec.Name` directive, or in a group the build's hook lists (`docs/hooks.py`)."""
    import perceptspec as ps

    hooks = load_hooks()
    pages = "\n".join(p.read_text() for p in sorted((ROOT / "docs" / "api").glob("*.md")))
    named = set(re.findall(r"^::: perceptspec\.(?:_torch\._module\.)?(\w+)$", pages, re.M))
    groups = hooks.api_groups()
    listed = {name for key, names in groups.items() for name in names
              if f"<!-- perceptspec:api {key.split(':')[0]} -->" in pages}
    missing = (set(ps.__all__) | set(ps.LAZY_NAMES)) - named - listed
    assert not missing, f"not in the API reference: {sorted(missing)}"


def load_hooks() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_build_hook_expands_every_marker() -> None:
    """Every `<!-- perceptspec:... -->` marker of the pages names an expansion of docs/hooks.py, and the quick ones
    expand (the examples' drawings and the generated forward are left to `make docs`)."""
    hooks = load_hooks()
    markers = [m for p in DOCUMENTS for m in hooks.MARKER.finditer(p.read_text())]
    assert {m.group(1) for m in markers} == set(hooks.EXPANSIONS)
    maze = hooks.maze_blocks()
    assert "| `DenseBlock` | [`ps.Dense`](api/blocks.md#perceptspec.Dense) |" in maze
    assert "| `InferenceBlock` | [`ps.Graph`](api/graph-and-init.md#perceptspec.Graph) |" in maze
    assert hooks.include("README.md", "Coming", "from", "Maze").startswith("A Maze model config composes")
    assert "::: perceptspec.Dense\n    options:\n      members: false" in hooks.api("blocks")
