"""Serialization as a fold with an inverse: spec <-> plain dict <-> YAML. Loading never executes code.

A descriptor becomes `{"type": <kind>, <field>: <value>, ...}` (fields left at their default are omitted);
tuples become lists and mappings dicts. `from_dict` builds only registered descriptor kinds and decodes each field
by its annotation, so `from_dict(to_dict(s)) == s`.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from perceptspec._errors import SpecError, did_you_mean
from perceptspec._spec import Block, Graph
from perceptspec._spec._descriptor import Descriptor, descriptor_kind, field_hints, ordered_items
from perceptspec._yaml import dump_yaml, load_yaml


def to_dict(spec: Descriptor) -> dict[str, Any]:
    """A plain, YAML/JSON-ready dict describing `spec` (a block, a Graph or an initialiser)."""
    out: dict[str, Any] = {"type": type(spec).__name__}
    for f in dataclasses.fields(spec):  # type: ignore[arg-type]  # descriptors are dataclasses
        if not f.init:
            continue
        value = getattr(spec, f.name)
        if f.default is not dataclasses.MISSING and value == f.default:
            continue
        if isinstance(spec, Graph) and f.name == "blocks":
            value = {name: spec.blocks[name] for name in spec.topological_order}
        out[f.name] = _encode(value)
    return out


def _encode(value: object) -> Any:
    if isinstance(value, Descriptor):
        return to_dict(value)
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _encode(v) for k, v in ordered_items(value)}
    return value


def from_dict(data: Mapping[str, Any]) -> Block:
    """The block described by `data` (the inverse of `to_dict`)."""
    spec = descriptor_from_dict(data, Block, "spec")
    assert isinstance(spec, Block)
    return spec


def descriptor_from_dict(data: object, expected: type[Descriptor], where: str) -> Descriptor:
    """The descriptor of kind `data['type']`, which must be a subclass of `expected`; `where` prefixes errors."""
    if not isinstance(data, Mapping) or not isinstance(data.get("type"), str):
        raise SpecError(where, [f"expected a mapping with a 'type' naming a {expected.__name__}, got {data!r}"])
    try:
        cls = descriptor_kind(data["type"])
    except SpecError as e:
        raise SpecError(f"{where}: {e.where}", e.problems) from None
    if not issubclass(cls, expected):
        raise SpecError(where, [f"expected a {expected.__name__}, got kind '{cls.__name__}'"])
    hints = field_hints(cls)
    init_fields = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    unknown = [k for k in data if k != "type" and k not in init_fields]
    if unknown:
        raise SpecError(f"{where} ({cls.__name__})", [f"unknown field {k!r}{did_you_mean(k, init_fields)}; fields: "
                                                      f"{init_fields}" for k in unknown])
    kwargs = {k: _decode(v, hints[k], f"{where}.{k}") for k, v in data.items() if k != "type"}
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise SpecError(f"{where} ({cls.__name__})", [str(e)]) from None


def _decode(value: object, hint: Any, where: str) -> object:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        targets = [a for a in args if isinstance(a, type) and issubclass(a, Descriptor)]
        return descriptor_from_dict(value, targets[0], where) if targets and isinstance(value, Mapping) else value
    if isinstance(hint, type) and issubclass(hint, Descriptor):
        return descriptor_from_dict(value, hint, where)
    if origin is Mapping and isinstance(value, Mapping):
        return {k: _decode(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if origin in (Sequence, tuple) and isinstance(value, list):
        return [_decode(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def to_yaml(spec: Descriptor) -> str:
    """`to_dict(spec)` as YAML text."""
    return dump_yaml(to_dict(spec))


def from_yaml(source: str | Path) -> Block:
    """The block described by YAML text (or a `Path` to a YAML file); loaded safely (no tags executed) and within
    the bounds of `perceptspec._yaml.load_yaml` (size, depth, aliases)."""
    text = source.read_text() if isinstance(source, Path) else source
    return from_dict(load_yaml(text, "YAML"))
