"""mkdocs hooks: what the site's pages show of perceptspec is computed while the site is built, never pasted.

A page asks for generated content with an HTML comment on a line of its own, which the hook replaces:

- `<!-- perceptspec:example CONFIG ENV -->`: the summary the command line prints for a composer config and an env
  (`perceptspec summary CONFIG --env ENV`) and the actor-critic drawing (`ps.render_models`), inlined as SVG; without
  graphviz's `dot` program, the drawing's .dot source instead;
- `<!-- perceptspec:forward CONFIG ENV NETWORK -->`: the generated forward (`module.code`) of a composed network;
- `<!-- perceptspec:cli ARGS -->`: what `perceptspec ARGS` prints (it must succeed);
- `<!-- perceptspec:include FILE HEADING -->`: the section of a Markdown file under `## HEADING`, without it;
- `<!-- perceptspec:maze-blocks -->`: a table of Maze's blocks and the perceptspec blocks that reproduce them;
- `<!-- perceptspec:api GROUP -->`: mkdocstrings' `::: perceptspec.Name` for every public name of a group (blocks by
  family, initialisers, errors): a name added to the package shows up without editing a page, and `api_groups`
  is what tests/test_docs.py holds the reference to (every public name documented).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- perceptspec:([\w-]+) ?([^>]*?) -->$", re.M)


def on_config(config: Any) -> Any:
    """mkdocs' hook: a page of docs/ that `nav` does not list joins the guides, under its first heading (so a page
    added without editing mkdocs.yml is on the site, not a warning that fails the strict build)."""
    listed = set(_nav_files(config["nav"]))
    docs = Path(config["docs_dir"])
    guides = next(item["Guides"] for item in config["nav"] if isinstance(item, dict) and "Guides" in item)
    for page in sorted(docs.rglob("*.md")):
        path = page.relative_to(docs).as_posix()
        if path not in listed:
            title = next((line[2:].strip() for line in page.read_text().splitlines() if line.startswith("# ")), path)
            guides.append({title: path})
    return config


def _nav_files(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [f for item in nav for f in _nav_files(item)]
    if isinstance(nav, dict):
        return [f for value in nav.values() for f in _nav_files(value)]
    return []


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """mkdocs' hook: every marker of the page replaced by what it asks for."""
    return MARKER.sub(lambda m: EXPANSIONS[m.group(1)](*m.group(2).split()), markdown)


def cli(*args: str) -> str:
    """What the command line prints for `args`, in a code block (json for --json)."""
    from perceptspec.cli import main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(list(args))
    if status != 0:
        raise RuntimeError(f"perceptspec {' '.join(args)} failed (status {status})")
    return f"```{'json' if '--json' in args else 'text'}\n{printed.getvalue()}```\n"


def include(path: str, *heading: str) -> str:
    """The section of the Markdown file `path` under `## <heading>`, up to the next `## ` heading."""
    text = (ROOT / path).read_text()
    title = f"## {' '.join(heading)}\n"
    if title not in text:
        raise RuntimeError(f"{path} has no section '{title.strip()}'")
    section = text.split(title, 1)[1]
    return re.split(r"^## ", section, maxsplit=1, flags=re.M)[0].strip() + "\n"


def maze_blocks() -> str:
    """Maze's block classes and the perceptspec blocks named after them (from the blocks' docstrings)."""
    import perceptspec as ps
    from perceptspec._spec._field_doc import maze_equivalent

    rows, ours = [], []
    for name in ps.__all__:
        obj = getattr(ps, name)
        if inspect.isclass(obj) and issubclass(obj, ps.Block) and name != "Block":
            maze = maze_equivalent(obj)
            if maze is None:
                ours.append(f"`{name}`")
            else:
                page = "graph-and-init" if name == "Graph" else "blocks"
                rows.append(f"| `{maze}` | [`ps.{name}`](api/{page}.md#perceptspec.{name}) |")
    return ("| Maze | perceptspec |\n|---|---|\n" + "\n".join(sorted(rows)) +
            f"\n\nperceptspec's own (no Maze block of that name): {', '.join(ours)}.\n")


def example(config: str, env: str) -> str:
    """The command line's summary of a config for an env, and its actor-critic drawing."""
    from perceptspec._composer import compose_specs
    from perceptspec._render_models import render_models
    from perceptspec.cli import main, make_env

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["summary", config, "--env", env])
    if status != 0:
        raise RuntimeError(f"perceptspec summary {config} --env {env} failed (status {status})")
    made = make_env(env, {})
    composed = compose_specs(ROOT / config, made.observation_space, made.action_space)
    with tempfile.TemporaryDirectory() as directory:
        have_dot = shutil.which("dot") is not None
        drawn = render_models(composed, directory, format="svg" if have_dot else "dot")
        drawing = next(p for p in drawn if p.stem == "actor_critic" or p.stem == "policy" and len(drawn) == 1)
        text = drawing.read_text()
    if have_dot:
        svg = text[text.index("<svg"):]  # without the XML declaration and doctype: inline SVG in the page
        picture = f'<div class="perceptspec-drawing" markdown="0">\n{svg}\n</div>'
    else:
        picture = f"(graphviz's `dot` was missing when this site was built: the drawing's source)\n\n```dot\n{text}```"
    return (f"`perceptspec summary {config} --env {env}` prints:\n\n```text\n{printed.getvalue()}```\n\n"
            f"`ps.render_models(models, directory)` draws (`actor_critic.svg`):\n\n{picture}\n")


def forward(config: str, env: str, network: str) -> str:
    """The generated forward of one network composed from a config."""
    import perceptspec as ps
    from perceptspec.cli import make_env

    made = make_env(env, {})
    models = ps.compose(ROOT / config, made.observation_space, made.action_space)
    module = models.policy if network == "policy" else models.critic
    return f"```python\n{module.code.rstrip()}\n```\n"


def api_groups() -> dict[str, list[str]]:
    """The public names the API reference documents, by group: 'blocks:<family>' (one per spec module),
    'initialisers', 'errors'; the others are named on their pages."""
    import perceptspec as ps

    groups: dict[str, list[str]] = {}
    for name in ps.__all__:
        obj = getattr(ps, name)
        if not inspect.isclass(obj):
            continue
        if issubclass(obj, ps.Block) and name not in ("Block", "Graph"):
            groups.setdefault(f"blocks:{obj.__module__.rsplit('._', 1)[-1]}", []).append(name)
        elif issubclass(obj, (ps.Initializer, ps.Bias)):
            groups.setdefault("initialisers", []).append(name)
        elif issubclass(obj, ps.PerceptSpecError):
            groups.setdefault("errors", []).append(name)
    return groups


def api(group: str) -> str:
    """`::: perceptspec.Name` for every name of `group`; 'blocks' gives every family under its own heading."""
    groups = api_groups()
    if group != "blocks":
        return "\n\n".join(_directive(name) for name in groups[group]) + "\n"
    sections = []
    for key in sorted(k for k in groups if k.startswith("blocks:")):
        module = importlib.import_module(f"perceptspec._spec._{key.split(':', 1)[1]}")
        title = (inspect.getdoc(module) or key).split("\n", 1)[0].rstrip(".")
        directives = "\n\n".join(_directive(name) for name in groups[key])
        sections.append(f"## {title}\n\n{directives}")
    return "\n\n".join(sections) + "\n"


def _directive(name: str) -> str:
    """mkdocstrings' entry for a class whose docstring lists its fields (its members would repeat them)."""
    return f"::: perceptspec.{name}\n    options:\n      members: false"


EXPANSIONS: dict[str, Callable[..., str]] = {"example": example, "forward": forward, "api": api, "cli": cli,
                                             "include": include, "maze-blocks": maze_blocks}
