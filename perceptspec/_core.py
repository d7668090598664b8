"""What every layer shares: the `Shape` of a key and the `RuleTable` each fold or interpreter keys by block kind.

No torch here, and nothing from the spec, fold or torch layers: they all import this module, it imports none of
them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

#: a key's feature shape, without batch dims (Maze's convention)
Shape = tuple[int, ...]

R = TypeVar("R")


class RuleTable(Generic[R]):
    """Rules of one fold (or interpreter) keyed by block class; a subclass of a registered kind uses its base's
    rule. A second rule for one kind is refused; a missing one names the kind and the fold."""

    def __init__(self, fold: str) -> None:
        self.fold = fold
        self._rules: dict[type, R] = {}

    def register(self, *kinds: type) -> Callable[[R], R]:
        def add(rule: R) -> R:
            for kind in kinds:
                if kind in self._rules:
                    raise TypeError(f"a {self.fold} rule for '{kind.__name__}' is already registered")
                self._rules[kind] = rule
            return rule
        return add

    def get(self, kind: type) -> R | None:
        rule = self._rules.get(kind)  # the kind itself: one look-up (folds call this once per block)
        if rule is not None:
            return rule
        for base in kind.__mro__:
            if base in self._rules:
                return self._rules[base]
        return None

    def lookup(self, kind: type) -> R:
        rule = self._rules.get(kind) or self.get(kind)  # `get`'s first look-up inlined: one frame less per block
        if rule is not None:
            return rule
        raise NotImplementedError(f"no {self.fold} rule is registered for block kind '{kind.__name__}'")
