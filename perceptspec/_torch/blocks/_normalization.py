"""Build rules of the normalisation blocks: LayerNorm."""

from __future__ import annotations

import torch
from torch import nn

from perceptspec._core import Shape
from perceptspec._fold.rules._normalization import normalized_shape
from perceptspec._spec import Initializer, LayerNorm
from perceptspec._torch._tables import torch_builders


@torch_builders.register(LayerNorm)
def _layer_norm_build_rule(block: LayerNorm, ins: tuple[Shape, ...], init: Initializer,
                           generator: torch.Generator | None) -> nn.Module:
    # scale 1 and shift 0, as torch starts them: a norm's affine parameters are not weights an initialiser draws
    return nn.LayerNorm(normalized_shape(block, ins[0]), eps=block.eps, elementwise_affine=block.elementwise_affine,
                        bias=block.bias)
