"""Pure rules of the layout blocks: Permute and Reshape (dims count as Maze's, see `perceptspec._spec._layout`)."""

from __future__ import annotations

import math

from perceptspec._core import Shape
from perceptspec._fold._rules import Mismatch, label_rules, param_rules, shape_rules
from perceptspec._fold.rules._shape_ops import feature_index
from perceptspec._spec import Permute, Reshape


def permutation(block: Permute, x: Shape) -> tuple[int, ...]:
    """The feature indices `block.dims` names for an input of shape `x`: each feature dim once, else a Mismatch."""
    dims = list(block.dims)
    if len(dims) != len(x):
        raise Mismatch(0, f"a shape with {len(dims)} dim(s) (dims={dims} names every feature dim once)", x)
    order = tuple(feature_index(x, 0, "dims", d) for d in dims)
    if len(set(order)) != len(order):
        raise Mismatch(0, f"dims={dims} to name distinct dims", x)
    return order


@param_rules.register(Permute, Reshape)
def _layout_param_rule(block: object, ins: tuple[Shape, ...]) -> int:
    return 0


@shape_rules.register(Permute)
def _permute_shape_rule(block: Permute, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    (x,) = ins
    return (tuple(x[k] for k in permutation(block, x)),)


@label_rules.register(Permute)
def _permute_label_rule(block: Permute, ins: tuple[Shape, ...]) -> str:
    return f"Permute {list(block.dims)}"


def target_shape(block: Reshape, x: Shape) -> Shape:
    """`block.shape` with its -1 resolved for an input of shape `x` (a Mismatch if the sizes cannot match)."""
    size = math.prod(x)
    known = math.prod(s for s in block.shape if s != -1)
    wanted = list(block.shape)
    if -1 not in block.shape:
        if known != size:
            raise Mismatch(0, f"{known} elements to reshape to {tuple(wanted)}", f"{x} ({size} elements)")
        return tuple(block.shape)
    if size % known:
        raise Mismatch(0, f"a number of elements divisible by {known} to reshape to {tuple(wanted)}",
                       f"{x} ({size} elements)")
    return tuple(size // known if s == -1 else s for s in block.shape)


@shape_rules.register(Reshape)
def _reshape_shape_rule(block: Reshape, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    return (target_shape(block, ins[0]),)


@label_rules.register(Reshape)
def _reshape_label_rule(block: Reshape, ins: tuple[Shape, ...]) -> str:
    return f"Reshape {'×'.join(map(str, ins[0]))}→{'×'.join(map(str, target_shape(block, ins[0])))}"
