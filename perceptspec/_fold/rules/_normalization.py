"""Pure rules of the normalisation blocks: LayerNorm."""

from __future__ import annotations

import math

from perceptspec._core import Shape
from perceptspec._fold._rules import Mismatch, label_rules, param_rules, shape_rules
from perceptspec._spec import LayerNorm


def normalized_shape(block: LayerNorm, x: Shape) -> Shape:
    """The trailing dims `block` normalises over (a Mismatch if `x` has fewer)."""
    n = block.num_normalized_dims
    if len(x) < n:
        raise Mismatch(0, f"a shape with at least {n} dim(s) to normalise (num_normalized_dims={n})", x)
    return x[len(x) - n:]


@shape_rules.register(LayerNorm)
def _layer_norm_shape_rule(block: LayerNorm, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    normalized_shape(block, ins[0])
    return (ins[0],)


@param_rules.register(LayerNorm)
def _layer_norm_param_rule(block: LayerNorm, ins: tuple[Shape, ...]) -> int:
    per_element = (1 + block.bias) if block.elementwise_affine else 0
    return per_element * math.prod(normalized_shape(block, ins[0]))


@label_rules.register(LayerNorm)
def _layer_norm_label_rule(block: LayerNorm, ins: tuple[Shape, ...]) -> str:
    return f"LayerNorm {'×'.join(map(str, normalized_shape(block, ins[0])))}"
