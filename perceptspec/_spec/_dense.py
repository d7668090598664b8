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

    Examples:
        >>> block = ps.Dense(in_keys="obs", out_keys="h", hidden_units=[64, 32], non_lin="tanh")
        >>> ps.infer_shapes(block, {"obs": (8,)})["h"]
        (32,)
    """

    _converters: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"non_lin": canonical_non_lin}

    hidden_units: Sequence[int]
    """Output units of each Linear layer, in order."""
    non_lin: str = "relu"
    """Activation after every layer; Maze's `non_lin` (a class there, a name here: 'torch.nn.ReLU' is
    accepted)."""
    layer_norm: bool = False
    """A LayerNorm between each Linear layer and its activation (perceptspec's; Maze's DenseBlock has none)."""

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        if not self.hidden_units or any(u <= 0 for u in self.hidden_units):
            yield f"field 'hidden_units': expected one or more positive ints, got {list(self.hidden_units)}"


@descriptor
class LinearOutput(Block):
    """One Linear layer on the last dim with no non-linearity: an action-logits or value head.

    (..., F) -> (..., output_units). `bias` sets the initial bias (and so the untrained action distribution).

    Examples:
        >>> head = ps.LinearOutput(in_keys="h", out_keys="action", output_units=3,
        ...                         bias=ps.CategoricalBias([0.2, 0.3, 0.5]))
        >>> ps.count_parameters(head, {"h": (32,)})
        99
    """

    output_units: int
    """Units of the layer: logits of an action head, 1 for a value."""
    bias: Bias | None = None
    """Initial bias (`CategoricalBias`, `BernoulliBias`, `ConstantBias`); None follows `init`. Maze biases
    heads after building (`compute_action_head_biases`)."""

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        if self.output_units <= 0:
            yield f"field 'output_units': expected a positive int, got {self.output_units}"
        elif self.bias is not None and (problem := self.bias.size_problem(self.output_units)):
            yield f"field 'bias': {problem}"
