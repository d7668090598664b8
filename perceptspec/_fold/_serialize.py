"""Serialization as a fold with an inverse: spec <-> plain dict <-> YAML. Loading never executes code.

A descriptor becomes `{"type": <kind>, <field>: <value>, ...}` (fields left at their default are omitted);
tuples become lists and mappings dicts. `from_dict` builds only registered descriptor kinds and decodes each field
by its annotation, so `from_dict(to_dict(s)) == s`.
"""

from __future__ import annotations

import dataclasses
import io
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import yaml

from perceptspec._errors import SpecError, did_you_mean
from perceptspec._spec import Block, Graph
from perceptspec._spec._graph import nesting
from perceptspec._spec._descriptor import Descriptor, descriptor_kind, field_hints, ordered_items
from perceptspec._yaml import SAFE_DUMPER, load_yaml


def to_dict(spec: Descriptor) -> dict[str, Any]:
    """A plain, YAML/JSON-ready dict describing `spec` (a block, a Graph or an initialiser).

    Each descriptor becomes `{"type": <kind>, <field>: <value>, ...}` with the fields left at their default
    omitted; `from_dict` is its inverse (`from_dict(to_dict(s)) == s`).

    Examples:
        >>> ps.to_dict(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[16]))
        {'type': 'Dense', 'in_keys': ['obs'], 'out_keys': ['h'], 'hidden_units': [16]}
    """
    root = _fields(spec)
    graphs = [(spec, root)]  # nested graphs are filled in with an explicit stack: any nesting depth encodes
    while graphs:
        graph, out = graphs.pop()
        if isinstance(graph, Graph):
            for name, block in graph.blocks_in_order:
                out["blocks"][name] = _fields(block)
                graphs.append((block, out["blocks"][name]))
    return root


def _fields(spec: Descriptor) -> dict[str, Any]:
    """`to_dict(spec)`, except that a Graph's `blocks` is left an empty dict (in its place in the field order)."""
    out: dict[str, Any] = {"type": type(spec).__name__}
    for f in dataclasses.fields(spec):  # type: ignore[arg-type]  # descriptors are dataclasses
        if not f.init:
            continue
        value = getattr(spec, f.name)
        if f.default is not dataclasses.MISSING and value == f.default:
            continue
        out[f.name] = {} if isinstance(spec, Graph) and f.name == "blocks" else _encode(value)
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
    """The block described by `data`, the inverse of `to_dict`.

    Only registered descriptor kinds are built, and nothing is imported or called (a `TorchModel` names its
    factory; it is resolved, against the allow-list, only when materialized).

    Raises:
        SpecError: an unknown kind or field, or an invalid value (with a did-you-mean).

    Examples:
        >>> ps.from_dict({"type": "Dense", "in_keys": "obs", "out_keys": "h", "hidden_units": [16]})
        Dense(in_keys='obs', out_keys='h', hidden_units=[16])
    """
    try:
        spec = descriptor_from_dict(data, Block, "spec")
    except RecursionError:  # nested Graphs load level by level; an Ensemble's member is decoded inside it
        raise SpecError("spec", ["Ensembles nest deeper than Python's recursion limit allows to load (each "
                                 "Ensemble's member is decoded inside it; a few hundred levels)"]) from None
    assert isinstance(spec, Block)
    return spec


def descriptor_from_dict(data: object, expected: type[Descriptor], where: str) -> Descriptor:
    """The descriptor of kind `data['type']`, which must be a subclass of `expected`; `where` prefixes errors.

    Nested graphs are checked outermost first and built innermost first, from explicit lists rather than by
    recursion, so any nesting depth loads."""
    cls = _kind(data, expected, where)
    assert isinstance(data, Mapping)
    built: dict[int, Descriptor] = {}
    for graph, graph_where in _nested_graphs(data, where) if cls is Graph else ():
        built[id(graph)] = _build(Graph, graph, graph_where, built)
    return built[id(data)] if id(data) in built else _build(cls, data, where, built)


def _kind(data: object, expected: type[Descriptor], where: str) -> type[Descriptor]:
    """The descriptor class `data` names, after checking it is an `expected` and knows all of `data`'s fields."""
    if not isinstance(data, Mapping) or not isinstance(data.get("type"), str):
        raise SpecError(where, [f"expected a mapping with a 'type' naming a {expected.__name__}, got {data!r}"])
    try:
        cls = descriptor_kind(data["type"])
    except SpecError as e:
        raise SpecError(f"{where}: {e.where}", e.problems) from None
    if not issubclass(cls, expected):
        raise SpecError(where, [f"expected a {expected.__name__}, got kind '{cls.__name__}'"])
    init_fields = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    unknown = [k for k in data if k != "type" and k not in init_fields]
    if unknown:
        raise SpecError(f"{where} ({cls.__name__})", [f"unknown field {k!r}{did_you_mean(k, init_fields)}; fields: "
                                                      f"{init_fields}" for k in unknown])
    return cls


def _nested_graphs(root: Mapping[str, Any], where: str) -> list[tuple[Mapping[str, Any], str]]:
    """The graph `root` and the graphs nested in it, each checked by `_kind` on the way down and listed after the
    graphs it contains (the order to build them in), each with its place for errors."""
    post_order: list[tuple[Mapping[str, Any], str]] = []
    inside: set[int] = set()  # the graphs on the way from the root to the one at hand
    listed: set[int] = set()
    stack: list[tuple[Mapping[str, Any], str, bool]] = [(root, where, False)]
    while stack:
        graph, graph_where, children_listed = stack.pop()
        if children_listed:
            inside.discard(id(graph))
            listed.add(id(graph))
            post_order.append((graph, graph_where))
            continue
        inside.add(id(graph))
        stack.append((graph, graph_where, True))
        blocks = graph.get("blocks")
        children = list(blocks.items()) if isinstance(blocks, Mapping) else []
        for name, child in reversed(children):
            if isinstance(child, Mapping) and child.get("type") == "Graph" and id(child) not in listed:
                child_where = f"{graph_where}.blocks.{name}"
                if id(child) in inside:
                    raise SpecError(child_where, ["a graph cannot contain itself (a YAML alias to an enclosing "
                                                  "mapping)"])
                _kind(child, Block, child_where)
                stack.append((child, child_where, False))
    return post_order


def _build(cls: type[Descriptor], data: Mapping[str, Any], where: str, built: Mapping[int, Descriptor]) -> Descriptor:
    """The descriptor `cls(**fields of data)`; nested graphs already in `built` (by the id of their mapping)."""
    hints = field_hints(cls)
    kwargs = {k: _decode(v, hints[k], f"{where}.{k}", built) for k, v in data.items() if k != "type"}
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise SpecError(f"{where} ({cls.__name__})", [str(e)]) from None


def _decode(value: object, hint: Any, where: str, built: Mapping[int, Descriptor]) -> object:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        targets = [a for a in args if isinstance(a, type) and issubclass(a, Descriptor)]
        return descriptor_from_dict(value, targets[0], where) if targets and isinstance(value, Mapping) else value
    if isinstance(hint, type) and issubclass(hint, Descriptor):
        return built[id(value)] if id(value) in built else descriptor_from_dict(value, hint, where)
    if origin is Mapping and isinstance(value, Mapping):
        return {k: _decode(v, args[1], f"{where}.{k}", built) for k, v in value.items()}
    if origin in (Sequence, tuple) and isinstance(value, list):
        return [_decode(v, args[0], f"{where}[{i}]", built) for i, v in enumerate(value)]
    return value


def to_yaml(spec: Descriptor) -> str:
    """`to_dict(spec)` as YAML text (block style; keys in a stable order, so equal specs give equal text).

    Examples:
        >>> print(ps.to_yaml(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[16])), end="")
        type: Dense
        in_keys:
        - obs
        out_keys:
        - h
        hidden_units:
        - 16
    """
    stream = io.StringIO()
    # what yaml.dump does, minus its representer's recursion; text nested so deep that its innermost part is in
    # flow style keeps that part on one line (wrapping it would indent each line as deep as the part)
    deep = 2 * nesting(spec) + 2 > BLOCK_DEPTH
    dumper = SAFE_DUMPER(stream, sort_keys=False, width=2**31 - 1 if deep else None)
    try:
        dumper.open()
        dumper.serialize(_yaml_node(to_dict(spec), dumper))
        dumper.close()
    finally:
        dumper.dispose()
    return stream.getvalue()


#: how deep YAML mappings and lists nest in block style (indented lines); below that, in flow style ({...}, [...]):
#: block-style text grows with the square of the nesting depth (each level indents every line inside it)
BLOCK_DEPTH = 64


def _yaml_node(data: object, dumper: yaml.SafeDumper) -> yaml.Node:
    """The YAML node tree of plain `data` (dicts, lists, scalars), as `yaml.dump` represents it (nested deeper than
    BLOCK_DEPTH in flow style), built with an explicit stack (PyYAML's representer recurses once per level)."""
    def empty_or_scalar(value: object, depth: int) -> yaml.Node:
        if isinstance(value, dict):
            return yaml.MappingNode("tag:yaml.org,2002:map", [], flow_style=depth >= BLOCK_DEPTH)
        if isinstance(value, list):
            return yaml.SequenceNode("tag:yaml.org,2002:seq", [], flow_style=depth >= BLOCK_DEPTH)
        node: yaml.Node = dumper.represent_data(value)
        return node

    root = empty_or_scalar(data, 0)
    stack = [(data, root, 0)]
    while stack:
        value, node, depth = stack.pop()
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in items:
            child = empty_or_scalar(item, depth + 1)
            node.value.append((dumper.represent_data(key), child) if isinstance(value, dict) else child)
            stack.append((item, child, depth + 1))
    return root


def from_yaml(source: str | Path) -> Block:
    """The block described by YAML text, or by the YAML file a `Path` names (the inverse of `to_yaml`).

    Loaded safely (no tags executed, nothing imported) and within the bounds of `perceptspec._yaml.load_yaml`
    (size, depth, aliases), so an untrusted file cannot run code or exhaust memory.

    Examples:
        >>> ps.from_yaml("type: Flatten\\nin_keys: x\\nout_keys: y\\nnum_flatten_dims: 2")
        Flatten(in_keys='x', out_keys='y', num_flatten_dims=2)
    """
    text = source.read_text() if isinstance(source, Path) else source
    return from_dict(load_yaml(text, "YAML"))
