"""Fully connected blocks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Callable, ClassVar

from perceptspec._spec._block import Block
from perceptspec._spec._descriptor import descriptor
from perceptspec._spec._init import Bias
from perceptspec._spec._non_lin import canonical_non_lin

__all__ = ["Dense", "LinearOutput"]


@descriptor
class Dense(Block):
    """A stack of Linear layers on the last dim, each followed by `non_lin` (the last one too), as Maze's DenseBlock.

    (..., F) -> (..., hidden_units[-1]). `layer_norm=True` puts a LayerNorm (elementwise affine, eps 1e-5, as
    `torch.nn.LayerNorm`) between each Linear layer and its non-linearity: Linear -> LayerNorm -> non_lin, the order
    of the usual torch MLPs. Maze's DenseBlock has no norm, so the default, False, builds exactly Maze's layers.
    """

    _converters: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"non_lin": canonical_non_lin}

    hidden_units: Sequence[int]
    non_lin: str = "relu"
    layer_norm: bool = False

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        if not self.hidden_units or any(u <= 0 for u in self.hidden_units):
            yield f"field 'hidden_units': expected one or more positive ints, got {list(self.hidden_units)}"


@descriptor
class LinearOutput(Block):
    """One Linear layer on the last dim with no non-linearity: an action-logits or value head.

    (..., F) -> (..., output_units). `bias` sets the initial bias (and so the untrained action distribution).
    """

    output_units: int
    bias: Bias | None = None

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        if self.output_units <= 0:
            yield f"field 'output_units': expected a positive int, got {self.output_units}"
        elif self.bias is not None and (problem := self.bias.size_problem(self.output_units)):
            yield f"field 'bias': {problem}"
