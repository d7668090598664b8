"""The field list of every descriptor's docstring, written from the dataclass itself so that it cannot drift.

`help(ps.Dense)` (and the API reference, which reads the same `__doc__`) shows the class's own docstring with an
`Attributes:` section inserted before its `Examples:`: one entry per constructor field with its type, its default
(or "required"), its valid values where the class or the field's converter names them, and the field's own
docstring, the string literal written under the field in the class body (as griffe and Sphinx read attribute
docstrings). A block kind added later gets the same list with no work of its own: `Descriptor.__init_subclass__`
installs a `FieldDocs` as `__doc__` on every subclass. The text is built on first read (parsing the class's
source for the attribute docstrings), so importing the package costs nothing.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

#: the converters whose accepted values are a fixed set of names (`canonical_non_lin` -> NON_LINEARITIES)
_converter_choices: dict[Callable[[Any], Any], tuple[str, ...]] = {}
COMPUTED = "computed"  # a field the constructor works out (a Graph's in_keys)
_EXAMPLE = re.compile(r"^Examples?:\s*$", re.M)
_MAZE = re.compile(r"Maze's ([A-Z]\w*Block)\b")


def document_choices(converter: Callable[[Any], Any], names: Sequence[str]) -> None:
    """Record that `converter` accepts exactly `names` (in any of its spellings): the docs of every field it
    converts list them."""
    _converter_choices[converter] = tuple(names)


class FieldDoc(NamedTuple):
    """One constructor field as the docs show it."""

    name: str
    type: str
    default: str | None  # the default's repr, None if the field is required
    choices: tuple[str, ...]
    text: str  # the field's own docstring ('' if it has none)

    def line(self) -> str:
        """'name (type): required. text' / 'name (type): default 'relu'; one of ... text'."""
        parts = ["required." if self.default is None else "set by the constructor, not an argument."
                 if self.default == COMPUTED else f"default {self.default}."]
        if self.choices:
            parts.append(f"One of {', '.join(map(repr, self.choices))}.")
        if self.text:
            parts.append(self.text)
        return f"{self.name} ({self.type}): {' '.join(parts)}"


def field_docs(cls: type) -> list[FieldDoc]:
    """The constructor fields of descriptor class `cls`, `in_keys` and `out_keys` first and `init` last (the order
    its repr writes them in)."""
    from perceptspec._spec._descriptor import field_hints, type_name

    hints = field_hints(cls)
    converters: Mapping[str, Callable[[Any], Any]] = getattr(cls, "_converters", {})
    declared_choices: Mapping[str, Sequence[str]] = getattr(cls, "_choices", {})
    fields = [f for f in dataclasses.fields(cls) if f.init or f.name == "in_keys"]
    fields.sort(key=lambda f: (f.name not in ("in_keys", "out_keys"), f.name == "init"))
    docs = []
    for f in fields:
        converter = converters.get(f.name)
        choices = tuple(declared_choices.get(f.name, ())) or (
            _converter_choices.get(converter, ()) if converter is not None else ())
        if f.default is not dataclasses.MISSING:
            default: str | None = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = None if f.init else COMPUTED
        docs.append(FieldDoc(f.name, type_name(hints[f.name]), default, choices, attribute_docstring(cls, f.name)))
    return docs


def maze_equivalent(cls: type) -> str | None:
    """The Maze block class the class's docstring names ('as Maze's DenseBlock'), if any."""
    match = _MAZE.search(inspect.cleandoc(own_doc(cls)))
    return match.group(1) if match else None


def own_doc(cls: type) -> str:
    """The docstring written in the class body (not the generated one)."""
    doc = cls.__dict__.get("__doc__")
    raw = doc.raw if isinstance(doc, FieldDocs) else doc
    return raw or ""


def class_doc(cls: type) -> str:
    """The whole docstring of descriptor class `cls`: its own text, then the fields, then its example."""
    text = inspect.cleandoc(own_doc(cls)) or cls.__name__
    match = _EXAMPLE.search(text)
    head, example = (text[:match.start()].rstrip(), text[match.start():]) if match else (text, "")
    sections = [head]
    maze = maze_equivalent(cls)
    if maze is not None:
        sections.append(textwrap.fill(f"Maze's equivalent: {maze}; the fields carry its keyword arguments' names "
                                      f"(a field's text says where it differs).", width=112))
    docs = field_docs(cls) if dataclasses.is_dataclass(cls) else []
    if docs:
        entries = "\n".join(textwrap.fill(d.line(), width=108, initial_indent="    ", subsequent_indent="        ")
                            for d in docs)
        sections.append(f"Attributes:\n{entries}")
    if example:
        sections.append(example)
    return "\n\n".join(sections)


class FieldDocs:
    """A descriptor class's `__doc__`: the generated text (`class_doc`), built on first read.

    A class's `__doc__` found in its `__dict__` is read through `__get__` (by `help`, `inspect.getdoc` and
    griffe), so the text can wait until somebody asks; before the class is a dataclass, the written text.
    """

    def __init__(self, raw: str | None) -> None:
        self.raw = raw
        self.text: str | None = None

    def __get__(self, instance: object, owner: type | None = None) -> str:
        if owner is None or not dataclasses.is_dataclass(owner):  # dataclass() reads it while decorating
            return self.raw or (owner.__name__ if owner is not None else "")
        if self.text is None:
            self.text = class_doc(owner)
        return self.text


def attribute_docstring(cls: type, name: str) -> str:
    """The string literal written under field `name` in the body of the class (of `cls`'s MRO) that declares it,
    joined into one paragraph; '' if none."""
    for klass in cls.__mro__:
        if name in klass.__dict__.get("__annotations__", {}):
            return _class_attribute_docs(klass).get(name, "")
    return ""


def _class_attribute_docs(cls: type) -> dict[str, str]:
    try:
        source_file = inspect.getsourcefile(cls)
    except TypeError:
        return {}
    if source_file is None:
        return {}
    return _attribute_docs_in(source_file).get(cls.__name__, {})


@functools.cache
def _attribute_docs_in(path: str) -> dict[str, dict[str, str]]:
    """{class name: {field: docstring}} for the classes of a source file (the first of a name, at any level)."""
    try:
        with open(path, encoding="utf-8") as source:
            tree = ast.parse(source.read(), path)
    except (OSError, SyntaxError):
        return {}
    found: dict[str, dict[str, str]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef) or node.name in found:
            continue
        docs: dict[str, str] = {}
        for statement, following in zip(node.body, node.body[1:]):
            if (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
                    and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)):
                docs[statement.target.id] = " ".join(inspect.cleandoc(following.value.value).split())
        found[node.name] = docs
    return found
