"""Blocks that shape an action head's output for its distribution."""

from __future__ import annotations

import math
from collections.abc import Iterator

from perceptspec._spec._block import Block
from perceptspec._spec._descriptor import descriptor

__all__ = ["StateIndependentLogStd"]


@descriptor
class StateIndependentLogStd(Block):
    """A Gaussian head whose log standard deviations are learned parameters, one per action dim, the same in every
    state (SB3's default for Box actions: `log_std` beside the action net, started at `log_std_init`).

    (..., n) means -> (..., 2n): the means, then the n log stds broadcast over the leading dims; the layout every
    Gaussian distribution reads (`perceptspec.distributions`), so it can follow a `LinearOutput` of the means.
    The log stds are a parameter of this block (counted, saved, trained); `init` does not apply to them.

    Examples:
        >>> head = ps.Graph([ps.LinearOutput(in_keys="h", out_keys="means", output_units=3),
        ...                  ps.StateIndependentLogStd(in_keys="means", out_keys="action")], out_keys="action")
        >>> ps.infer_shapes(head, {"h": (8,)})["action"], ps.count_parameters(head, {"h": (8,)})
        ((6,), 30)
    """

    log_std_init: float = 0.0

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        if not math.isfinite(self.log_std_init):
            yield f"field 'log_std_init': expected a finite float, got {self.log_std_init!r}"
