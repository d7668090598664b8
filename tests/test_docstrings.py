"""Docstrings (issue #19): `help()` on every block lists every field with its type, generated from the dataclass
(so a kind added later gets the list with no work of its own); every public name says what it is and shows an
example, and every example runs as written (doctest), so none can rot; public functions name the package, not
the private module they live in.
"""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import inspect
import os
import pydoc
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import pytest

import perceptspec as ps
from perceptspec._spec._descriptor import Descriptor, _kinds, descriptor, field_hints, type_name
from perceptspec._spec._field_doc import field_docs

ROOT = Path(__file__).resolve().parents[1]
#: the public modules besides the package itself, whose public names are documented too
MODULES = ("perceptspec.spaces", "perceptspec.integrations", "perceptspec.distributions", "perceptspec.integrations.sb3",
           "perceptspec.integrations.sb3_off_policy", "perceptspec.integrations.tensordict", "perceptspec.templates")


def public_objects() -> dict[str, object]:
    """Every public class and function: `ps.__all__`, the lazily loaded names, and the public modules' `__all__`."""
    found: dict[str, object] = {f"ps.{n}": getattr(ps, n) for n in (*ps.__all__, *ps.LAZY_NAMES)}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        found[module_name] = module
        for name in module.__all__:
            found[f"{module_name}.{name}"] = getattr(module, name)
    return {k: v for k, v in found.items() if inspect.isclass(v) or inspect.isfunction(v) or inspect.ismodule(v)}


def help_text(obj: object) -> str:
    return pydoc.plain(pydoc.render_doc(obj))


@pytest.mark.parametrize("kind", [_kinds[name] for name in sorted(_kinds)], ids=sorted(_kinds))
def test_help_on_every_descriptor_lists_every_field(kind: type[Descriptor]) -> None:
    text = help_text(kind)
    hints = field_hints(kind)
    for f in dataclasses.fields(kind):  # type: ignore[arg-type]  # descriptors are dataclasses
        if f.init:
            assert f"{f.name} ({type_name(hints[f.name])}):" in text, (kind.__name__, f.name)
    if any(f.name == "non_lin" for f in dataclasses.fields(kind)) and kind is not ps.KaimingUniform:  # type: ignore[arg-type]
        assert "'leaky_relu', 'rrelu'" in text, "the valid activation names are listed"


def test_the_field_list_says_default_valid_values_type_and_maze_name() -> None:
    text = inspect.getdoc(ps.StridedConv) or ""
    assert "Maze's equivalent: StridedConvolutionBlock" in text
    assert "padding_mode (str): default 'zeros'. One of 'zeros', 'reflect', 'replicate', 'circular'." in text
    assert "hidden_channels (Sequence[int]): required. Output channels of each convolution." in text
    assert text.index("Attributes:") < text.index("Examples:"), "the fields come before the example"
    assert "in_keys (Sequence[str]): set by the constructor, not an argument." in (inspect.getdoc(ps.Graph) or "")


def test_a_kind_added_later_gets_its_field_list_with_no_work_of_its_own() -> None:
    try:
        @descriptor
        class Widen(ps.Block):
            """Doubles the last dim, as Maze's WidenBlock.

            Examples:
                >>> Widen(in_keys="x", out_keys="y", factor=2)
            """

            _choices: ClassVar[Mapping[str, Sequence[str]]] = {"mode": ("repeat", "zeros")}

            factor: int
            """How many times wider."""
            mode: str = "repeat"
    finally:  # defining the class registered the kind: other tests on this worker walk every registered kind
        _kinds.pop("Widen", None)
    text = help_text(Widen)
    assert "Maze's equivalent: WidenBlock" in text
    assert "factor (int): required. How many times wider." in text
    assert "mode (str): default 'repeat'. One of 'repeat', 'zeros'." in text
    assert "init (Initializer | None): default None." in text
    assert [d.name for d in field_docs(Widen)] == ["in_keys", "out_keys", "factor", "mode", "init"]


def test_every_public_name_says_what_it_is_with_an_example() -> None:
    lacking = []
    for name, obj in public_objects().items():
        doc = inspect.getdoc(obj) or ""
        if len(doc.split()) < 5:
            lacking.append(f"{name}: no docstring worth the name ({doc!r})")
        elif not inspect.ismodule(obj) and not ("Examples:" in doc and ">>> " in doc):
            lacking.append(f"{name}: no example")
    assert not lacking, "\n".join(lacking)


def test_public_functions_name_the_package_not_a_private_module() -> None:
    for name in ps.__all__:
        obj = getattr(ps, name)
        if inspect.isfunction(obj):
            assert obj.__module__ == "perceptspec", name
    assert "perceptspec._" not in help_text(ps.materialize).split("\n")[0]
    assert "function materialize in module perceptspec\n" in help_text(ps.materialize)


def examples() -> Iterator[doctest.DocTest]:
    finder = doctest.DocTestFinder(recurse=False)
    seen: set[int] = set()
    for name, obj in sorted(public_objects().items()):
        if id(obj) not in seen and not inspect.ismodule(obj):
            seen.add(id(obj))
            yield from (t for t in finder.find(obj, name, globs={"ps": ps}) if t.examples)


def test_every_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each docstring's example, run by doctest from a scratch directory that sees perceptspec/examples (the paths
    read as from a clone); what examples register is taken back afterwards."""
    from perceptspec._spec._shape_ops import _functions

    (tmp_path / "perceptspec").symlink_to(ROOT / "perceptspec")
    monkeypatch.chdir(tmp_path)
    functions = dict(_functions)
    failures: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    try:
        tests = list(examples())
        for test in tests:
            assert runner.run(test, out=failures.append).attempted, test.name
    finally:
        _functions.clear()
        _functions.update(functions)
    assert not failures, "\n".join(failures)
    assert len(tests) >= 70 and os.path.exists("dense.dot") and os.path.exists("drawings/actor_critic.dot")
