"""Normalisation blocks (Maze has none as a block of its own; torch users expect LayerNorm)."""

from __future__ import annotations

from collections.abc import Iterator

from perceptspec._spec._block import Block
from perceptspec._spec._descriptor import descriptor

__all__ = ["LayerNorm"]


@descriptor
class LayerNorm(Block):
    """Normalises over the last `num_normalized_dims` dims, as `torch.nn.LayerNorm` over that trailing shape:
    mean 0 and variance 1 per sample (`eps` added to the variance), then, if `elementwise_affine`, a learned scale
    (starting at 1) and, if also `bias`, a learned shift (starting at 0), one per normalised element.

    (..., d1, ..., dn) -> the same shape, n = num_normalized_dims.
    """

    num_normalized_dims: int = 1
    eps: float = 1e-5
    elementwise_affine: bool = True
    bias: bool = True

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        if self.num_normalized_dims <= 0:
            yield f"field 'num_normalized_dims': expected a positive int, got {self.num_normalized_dims}"
        if not self.eps > 0:
            yield f"field 'eps': expected a positive float, got {self.eps}"
