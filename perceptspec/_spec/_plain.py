"""Plain values in spec fields (a TorchModel's kwargs, a Functional's params): None, bool, int, float, str, and
lists and dicts of them, frozen to tuples and pmaps so the spec stays hashable and serializable, and thawed back
to tuples and dicts (keys in sorted order) for the callable that receives them."""

from __future__ import annotations

from collections.abc import Mapping

from pyrsistent import pmap

from perceptspec._spec._descriptor import ordered_items


def _freeze(value: object) -> object:
    """Lists and tuples -> tuples, dicts -> pmaps, all the way down: a hashable value that still reads the same."""
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, Mapping):
        return pmap({k: _freeze(v) for k, v in value.items()})
    return value


#: how deep a factory's kwargs may nest (lists in dicts in lists ...): ample for any factory, and every walk over them
#: (freezing, checking, YAML, hashing) stays far from Python's recursion limit
MAX_KWARGS_DEPTH = 100


def _nesting_depth(value: object) -> int:
    """How deep lists, tuples and mappings nest in `value` (iterative: the value may come from untrusted YAML)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, tuple)) or isinstance(item, Mapping):
            children = item.values() if isinstance(item, Mapping) else item
            deepest = max(deepest, depth + 1)
            if deepest > MAX_KWARGS_DEPTH:
                break
            stack.extend((child, depth + 1) for child in children)
    return deepest


def frozen_plain(value: object) -> object:
    if not isinstance(value, Mapping):
        return value
    if _nesting_depth(value) > MAX_KWARGS_DEPTH:
        raise ValueError(f"expected plain values nested at most {MAX_KWARGS_DEPTH} levels deep")
    return _freeze(value)


def plain_problem(value: object, where: str) -> str | None:
    """Why `value` is not a plain (YAML-ready, hashable) value, or None."""
    if isinstance(value, float) and value != value:
        return f"{where} is NaN (NaN != NaN: the spec would not equal itself)"
    if value is None or isinstance(value, (bool, int, float, str)):
        return None
    if isinstance(value, tuple):
        return next((p for i, v in enumerate(value) if (p := plain_problem(v, f"{where}[{i}]"))), None)
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{where} has a non-string key {k!r}"
            if problem := plain_problem(v, f"{where}[{k!r}]"):
                return problem
        return None
    return f"{where} is a {type(value).__qualname__}"


def thaw(value: object) -> object:
    """A kwarg as the factory receives it: pmaps become dicts (keys in sorted order: a pmap iterates in hash order,
    which differs between processes, and a factory may build its layers in the order of its kwargs), tuples stay
    tuples."""
    if isinstance(value, tuple):
        return tuple(thaw(v) for v in value)
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in ordered_items(value)}
    return value
