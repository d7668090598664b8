"""Frozen, validated spec values: the base every block, combinator and initialiser derives from.

A descriptor is a frozen dataclass. On construction each field is normalised (lists become tuples, mappings
become pmaps, a single key becomes a 1-tuple, ints become floats where a float is expected), type-checked with
typeguard against its annotation, then the class's value invariants run. Every problem is collected and raised
once as a `SpecError` that names the descriptor and the fields.
"""

from __future__ import annotations

import dataclasses
import operator
import re
import reprlib
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import (Any, ClassVar, TypeVar, Union, dataclass_transform, get_args, get_origin, get_type_hints,
                    overload)

from pyrsistent import PMap, pmap
from typeguard import CollectionCheckStrategy, TypeCheckError, check_type

from perceptspec._errors import SpecError
from perceptspec._spec._field_doc import FieldDocs


#: what a refused value reads as in an error: whole, but deep nests cut ('[[[...]]]'), so the message of a value
#: from untrusted YAML nested thousands deep cannot exceed the recursion limit
_REPR = reprlib.Repr()
_REPR.maxlevel = 12
_REPR.maxtuple = _REPR.maxlist = _REPR.maxarray = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = 10**6
_REPR.maxdeque = _REPR.maxstring = _REPR.maxlong = _REPR.maxother = 10**6

T = TypeVar("T")

_kinds: dict[str, type[Descriptor]] = {}


@overload
def descriptor(cls: type[T], /) -> type[T]: ...


@overload
def descriptor(*, kw_only: bool = True) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(frozen_default=True, kw_only_default=True)
def descriptor(cls: type[T] | None = None, /, *, kw_only: bool = True) -> type[T] | Callable[[type[T]], type[T]]:
    """Make `cls` a frozen dataclass (keyword-only unless `kw_only=False`) whose repr is the code that builds it.

    Blocks are keyword-only, as Maze's are; initialisers take their one parameter positionally too (`NormC(0.01)`).
    """
    def make(c: type[T]) -> type[T]:
        return dataclasses.dataclass(frozen=True, kw_only=kw_only, repr=False)(c)
    return make if cls is None else make(cls)


def descriptor_kind(name: str) -> type[Descriptor]:
    """The registered descriptor class called `name` (what `from_dict` may build; nothing else)."""
    try:
        return _kinds[name]
    except KeyError:
        raise SpecError(f"unknown kind '{name}'", [f"known kinds: {', '.join(sorted(_kinds))}"]) from None


class Descriptor:
    """Base of all spec values. Subclasses are decorated with `@descriptor` (or a frozen dataclass)."""

    _abstract: ClassVar[bool] = True
    #: per-field converters applied after structural normalisation (e.g. Maze's "torch.nn.ReLU" -> "relu")
    _converters: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}
    #: the valid values of fields that take one of a few names (shown in the docs; `_value_problems` checks them)
    _choices: ClassVar[Mapping[str, Sequence[str]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # help() and the API reference list the fields, generated from the dataclass (see _field_doc)
        cls.__doc__ = FieldDocs(cls.__dict__.get("__doc__"))  # type: ignore[assignment]
        if cls.__dict__.get("_abstract", False):
            return
        if cls.__name__ in _kinds:
            raise TypeError(f"a descriptor kind named '{cls.__name__}' is already registered")
        _kinds[cls.__name__] = cls

    def __post_init__(self) -> None:
        problems: list[str] = []
        hints = field_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]  # every subclass is a dataclass
            if not f.init:
                continue
            raw = getattr(self, f.name)
            hint = hints[f.name]
            converter = self._converters.get(f.name)
            try:
                try:
                    value = _normalise(raw, hint)
                except (TypeError, ValueError, TypeCheckError):
                    if converter is None:
                        raise
                    value = _normalise(converter(raw), hint)  # a short form only the converter knows: (4,) -> ((4,),)
                if converter is not None:
                    value = converter(value)
                check_type(value, hint, collection_check_strategy=CollectionCheckStrategy.ALL_ITEMS)
            except (TypeError, ValueError, TypeCheckError) as e:
                detail = str(e) if isinstance(e, (TypeError, ValueError)) and not isinstance(e, TypeCheckError) \
                    else f"expected {type_name(hint)}"
                problems.append(f"field '{f.name}': {detail}, got {_REPR.repr(raw)}")
                continue
            object.__setattr__(self, f.name, value)
        if not problems:
            problems.extend(self._value_problems())
        if problems:
            raise SpecError(self._where(), problems)

    def _value_problems(self) -> Iterator[str]:
        """Invariants over the (already normalised and type-checked) field values; one message each."""
        return iter(())

    def _where(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return as_code(self)

    def _repr_args(self) -> list[tuple[str, object]]:
        """(keyword, value) pairs of the call that builds this value; fields left at their default are omitted."""
        args = []
        # the inherited `init` reads best last: Dense(in_keys=..., out_keys=..., hidden_units=..., init=...)
        fields = sorted(dataclasses.fields(self), key=lambda f: f.name == "init")  # type: ignore[arg-type]
        for f in fields:
            value = getattr(self, f.name)
            if f.init and (f.default is dataclasses.MISSING or value != f.default):
                single_key = f.name in ("in_keys", "out_keys") and isinstance(value, tuple) and len(value) == 1
                args.append((f.name, value[0] if single_key else value))
        return args


REPR_WIDTH = 100


def as_code(value: object, indent: int = 0, column: int | None = None) -> str:
    """The code that builds `value`: one line when it fits in REPR_WIDTH columns (starting at `column`), else one
    argument per line, indented by four more than the line it starts on (`indent`).

    Written piece by piece from an explicit stack (the pieces of one value, then of the values in it), so any
    nesting depth takes time in proportion to the text."""
    pieces: list[str] = []
    stack: list[_Text | tuple[object, int, int]] = [(value, indent, indent if column is None else column)]
    while stack:
        item = stack.pop()
        if isinstance(item, _Text):
            pieces.append(item)
            continue
        value, indent, column = item
        flat = _flat_code_within(value, REPR_WIDTH - column)
        if flat is not None:
            pieces.append(flat)
            continue
        inner = " " * (indent + 4)
        if isinstance(value, Descriptor):
            opening, closing = f"{type(value).__name__}(\n", f",\n{' ' * indent})"
            entries = [(f"{inner}{k}=" if k else inner, v) for k, v in value._repr_args()]
        elif isinstance(value, Mapping):
            opening, closing = "{\n", f",\n{' ' * indent}}}"
            entries = [(f"{inner}{k!r}: ", v) for k, v in ordered_items(value)]
        else:
            pieces.extend(_flat_pieces(value))
            continue
        pieces.append(opening)
        stack.append(_Text(closing))
        for n, (prefix, v) in enumerate(reversed(entries)):
            if n:
                stack.append(_Text(",\n"))
            stack.append((v, indent + 4, len(prefix)))
            stack.append(_Text(prefix))
    return "".join(pieces)


def _flat_code_within(value: object, width: int) -> str | None:
    """`value`'s code on one line if it takes at most `width` characters, else None (found without writing more
    than `width` characters: a deep spec's one-line code would be long)."""
    pieces, length = [], 0
    for piece in _flat_pieces(value):
        length += len(piece)
        if length > width:
            return None
        pieces.append(piece)
    return "".join(pieces)


class _Text(str):
    """A piece of code as it is (any other value on `_flat_pieces`'s stack still needs writing)."""


def _flat_pieces(value: object) -> Iterator[str]:
    """The pieces of `value`'s one-line code, in order, from an explicit stack (any nesting depth)."""
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if type(item) is _Text:
            yield item
            continue
        if isinstance(item, Descriptor):
            parts = [(_Text(f"{k}=") if k else None, v) for k, v in item._repr_args()]
            opening, closing = _Text(f"{type(item).__name__}("), _Text(")")
        elif isinstance(item, tuple):
            parts = [(None, v) for v in item]
            opening, closing = _Text("["), _Text("]")
        elif isinstance(item, Mapping):
            parts = [(_Text(f"{k!r}: "), v) for k, v in ordered_items(item)]
            opening, closing = _Text("{"), _Text("}")
        else:
            yield repr(item)
            continue
        stack.append(closing)
        for n, (label, v) in enumerate(reversed(parts)):
            stack.append(v)
            if label is not None:
                stack.append(label)
            if n < len(parts) - 1:
                stack.append(_Text(", "))
        yield opening


def ordered_items(mapping: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    """A mapping's items in an order that does not depend on the process: a pmap (which iterates in hash order,
    so differently under each PYTHONHASHSEED) by key; any other mapping in its own order.

    Sorted, not in insertion order (issue #14), because specs are values: a mapping field compares like a dict, so
    `{'a': 1, 'b': 2}` and `{'b': 2, 'a': 1}` make equal specs, and equal specs must give the same YAML text, repr,
    weights and generated source. (A Graph's blocks are written in topological order, ties by name: canonical too.)"""
    items = list(mapping.items())
    return sorted(items, key=lambda kv: repr(kv[0])) if isinstance(mapping, PMap) else items


_hints: dict[type, dict[str, Any]] = {}


def field_hints(cls: type) -> dict[str, Any]:
    """The resolved field annotations of a descriptor class (memoised per class)."""
    if cls not in _hints:
        _hints[cls] = get_type_hints(cls)
    return _hints[cls]


def type_name(hint: Any) -> str:
    """A readable name for a type annotation: `Sequence[int]`, `Initializer | None`."""
    text = hint.__name__ if isinstance(hint, type) else str(hint)
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text)


def _normalise(value: Any, hint: Any) -> Any:
    """Turn what users write (lists, dicts, a single key, numpy ints) into the frozen form `hint` describes."""
    origin = get_origin(hint)
    args = get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for candidate in (a for a in args if a is not type(None)):
            try:
                normalised = _normalise(value, candidate)
                check_type(normalised, candidate, collection_check_strategy=CollectionCheckStrategy.ALL_ITEMS)
            except (TypeError, ValueError, TypeCheckError):
                continue
            return normalised
        raise TypeCheckError(f"is not a {type_name(hint)}")
    if origin in (Sequence, tuple) and args:
        item = args[0]
        if isinstance(value, str):
            return (value,) if item is str else value
        if isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"expected {type_name(hint)}, not {type(value).__name__}")
        if isinstance(value, Sequence) or _is_array(value):
            return tuple(_normalise(v, item) for v in value)
        return value
    if origin is Mapping and len(args) == 2 and isinstance(value, Mapping):
        return pmap({k: _normalise(v, args[1]) for k, v in value.items()})
    if hint is int or hint is float:
        if isinstance(value, bool):
            raise TypeError(f"expected {hint.__name__}, not a bool")
        if hint is int and not isinstance(value, int) and hasattr(value, "__index__"):
            return operator.index(value)
        if hint is float and not isinstance(value, str) and hasattr(value, "__float__"):
            return float(value)
    return value


def _is_array(value: object) -> bool:
    return hasattr(value, "__array__") and hasattr(value, "__len__")
