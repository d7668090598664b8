"""Rule tables of the pure folds, keyed by block kind, and the helpers rules share.

Each fold owns one table: `shape_rules` (input shapes -> output shapes), `param_rules` (input shapes -> number of
parameters) and `label_rules` (a short human label for summaries and drawings). A block kind registers one rule
per table, next to each other in `perceptspec/_fold/rules/` (`RuleTable` itself lives in `perceptspec._core`).
The spec layer imports none of this.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from perceptspec._core import RuleTable, Shape

ShapeRule = Callable[[Any, tuple[Shape, ...]], tuple[Shape, ...]]
ParamRule = Callable[[Any, tuple[Shape, ...]], int]
LabelRule = Callable[[Any, tuple[Shape, ...]], str]


shape_rules: RuleTable[ShapeRule] = RuleTable("shape")
param_rules: RuleTable[ParamRule] = RuleTable("parameter count")
label_rules: RuleTable[LabelRule] = RuleTable("label")


class Mismatch(Exception):
    """Raised by a shape rule: what the block expected of input number `index` and what it got.

    The fold turns it into a `ShapeError` naming the block and the key.
    """

    def __init__(self, index: int | None, expected: str, got: object) -> None:
        super().__init__(f"expected {expected}, got {got}")
        self.index = index


def require_rank(shape: Shape, index: int, rank: int, layout: str) -> None:
    """Check that input `index` has at least `rank` dims; `layout` shows them, e.g. '(..., features)'."""
    if len(shape) < rank:
        raise Mismatch(index, f"a shape {layout} with at least {rank} dim(s)", shape)


def linear_params(sizes: tuple[int, ...]) -> int:
    """Parameters of a chain of Linear layers with biases through `sizes` (in, h1, h2, ...)."""
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def arrow(sizes: tuple[int, ...]) -> str:
    return "→".join(str(s) for s in sizes)
