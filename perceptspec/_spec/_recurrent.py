"""Recurrent blocks: LSTM and GRU over a time axis, each followed by a time-distributed dense layer.

Maze's LSTMBlock and LSTMLastStepBlock (same parameter names), plus the GRU versions Maze lacks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

from perceptspec._spec._block import Block
from perceptspec._spec._descriptor import descriptor
from perceptspec._spec._non_lin import canonical_non_lin

__all__ = ["GRU", "GRULastStep", "LSTM", "LSTMLastStep"]


@descriptor
class Recurrent(Block):
    """Fields and invariants shared by the recurrent kinds (abstract: use LSTM, LSTMLastStep, GRU, GRULastStep).

    hidden_size: features of each layer's hidden state; num_layers: stacked recurrent layers; bidirectional: each
    layer runs both ways and concatenates, so the block's output has out_units = hidden_size * (2 if bidirectional
    else 1) features; non_lin: the non-linearity after the final time-distributed Linear(out_units, out_units).
    The defaults (1 layer, one direction, relu) are nn.LSTM's and Dense's; Maze requires every argument.
    """

    _abstract: ClassVar[bool] = True
    _converters: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"non_lin": canonical_non_lin}
    #: the torch cell ('lstm' or 'gru') and how many gate blocks its weight matrices stack
    cell: ClassVar[str]
    gates: ClassVar[int]

    hidden_size: int
    """Features of each layer's hidden state."""
    num_layers: int = 1
    """Stacked recurrent layers (Maze requires it; 1 here by default, as torch)."""
    bidirectional: bool = False
    """Each layer runs both ways and concatenates: the output has 2 * hidden_size features."""
    non_lin: str = "relu"
    """Activation after the final time-distributed Linear(out_units, out_units)."""

    @property
    def out_units(self) -> int:
        """Features per time step after the recurrent layers (and so of the dense layer)."""
        return self.hidden_size * (2 if self.bidirectional else 1)

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        yield from size_problems(self.hidden_size, self.num_layers)


def size_problems(hidden_size: int, num_layers: int) -> Iterator[str]:
    """The problems of a recurrent block's sizes (here and in the stateful blocks)."""
    if hidden_size <= 0:
        yield f"field 'hidden_size': expected a positive int, got {hidden_size}"
    if num_layers <= 0:
        yield f"field 'num_layers': expected a positive int, got {num_layers}"


@descriptor
class LSTM(Recurrent):
    """A batch-first LSTM, then a time-distributed Linear(out_units, out_units) and `non_lin`, as Maze's LSTMBlock.

    (..., time, features) -> (..., time, out_units); extra leading dims are run as more sequences.

    Examples:
        >>> block = ps.LSTM(in_keys="seq", out_keys="h", hidden_size=32)
        >>> ps.infer_shapes(block, {"seq": (10, 8)})["h"]
        (10, 32)
    """

    cell: ClassVar[str] = "lstm"
    gates: ClassVar[int] = 4


@descriptor
class LSTMLastStep(Recurrent):
    """The LSTM block keeping only the last time step, as Maze's LSTMLastStepBlock (the dense layer included).

    (..., time, features) -> (..., out_units). Bidirectional: the backward half at the last step has seen only
    that step, as in Maze.

    Examples:
        >>> block = ps.LSTMLastStep(in_keys="seq", out_keys="h", hidden_size=32, bidirectional=True)
        >>> ps.infer_shapes(block, {"seq": (10, 8)})["h"]
        (64,)
    """

    cell: ClassVar[str] = "lstm"
    gates: ClassVar[int] = 4


@descriptor
class GRU(Recurrent):
    """The LSTM block with a GRU cell: (..., time, features) -> (..., time, out_units).

    Examples:
        >>> block = ps.GRU(in_keys="seq", out_keys="h", hidden_size=32)
        >>> ps.infer_shapes(block, {"seq": (10, 8)})["h"]
        (10, 32)
    """

    cell: ClassVar[str] = "gru"
    gates: ClassVar[int] = 3


@descriptor
class GRULastStep(Recurrent):
    """The GRU block keeping only the last time step: (..., time, features) -> (..., out_units).

    Examples:
        >>> block = ps.GRULastStep(in_keys="seq", out_keys="h", hidden_size=32)
        >>> ps.infer_shapes(block, {"seq": (10, 8)})["h"]
        (32,)
    """

    cell: ClassVar[str] = "gru"
    gates: ClassVar[int] = 3
