"""Parameter-free blocks that rearrange a sample's feature dims: Permute and Reshape.

Dims count as for the other shape blocks (see `perceptspec._spec._shape_ops`): a positive dim counts Maze's batch
dim, so 1 is the first feature dim; a negative one counts from the end (-1 is the last). Both blocks act on the
whole feature shape; extra leading dims at run time (batch, time) are carried through.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from perceptspec._spec._block import Block
from perceptspec._spec._descriptor import descriptor
from perceptspec._spec._shape_ops import dim_problem

__all__ = ["Permute", "Reshape"]


@descriptor
class Permute(Block):
    """Reorders the feature dims: output dim i is input dim `dims[i]`, like `x.permute(0, *dims)` on a tensor with
    one batch dim in front. `dims` names every feature dim once.

    E.g. a channel-last image to channel-first: (..., H, W, C) -> (..., C, H, W) with dims=[3, 1, 2] (or [-1, -3, -2]).
    """

    dims: Sequence[int]

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        if not self.dims:
            yield "field 'dims': expected one dim per feature dim, got []"
        for d in self.dims:
            if problem := dim_problem("dims", d):
                yield problem
                break
        if len(set(self.dims)) != len(self.dims):
            yield f"field 'dims': dims repeat in {list(self.dims)}"


@descriptor
class Reshape(Block):
    """Gives the feature shape the new `shape` (the same number of elements, in row-major order, as
    `torch.reshape`); one entry may be -1, the size that makes the numbers of elements equal.

    E.g. (..., 6) -> (..., 2, 3) with shape=[2, 3] (or [2, -1]).
    """

    shape: Sequence[int]

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        if not self.shape or any(s <= 0 and s != -1 for s in self.shape) or list(self.shape).count(-1) > 1:
            yield f"field 'shape': expected one or more positive sizes, one of them may be -1, got {list(self.shape)}"
