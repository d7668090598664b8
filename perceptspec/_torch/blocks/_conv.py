"""Build rules of the convolution blocks: VGGConv, VGGConvDense, VGGConvGAP, FlattenDense, StridedConv and
StridedConvDense.

Every kind is one `ConvStack`: a stack of layers (an `nn.Sequential`, built from a plan of ops) applied to the
trailing (channels, *spatial) dims with any leading dims folded into one batch dim (torch's convolutions take exactly
one), then a head (flatten, global average pool or nothing) and an optional Dense part built by Dense's own rule.

`ConvStack.forward` is the blocks' one definition. Where nothing could observe the difference (no hook on any layer
of the stack, every ReLU and max-pool the plain torch module it was built as), it computes the stack faster than
calling the layers in turn would (benchmarks/RESULTS.md), with the same values:
- 2-D stacks run in channels-last memory format (the input is copied once; the head's flatten restores the
  (C, H, W) order). oneDNN's convolutions then need no reorder to and from their blocked layout, and max-pool
  vectorises over channels: about 2x faster on CPU for the seed's VGG screen embedding.
- ReLU is applied in place to the output of the layer before it (a convolution, batch norm or max-pool: a fresh
  tensor that no backward formula saves, so autograd stays exact): one allocation and one pass less per layer.
- A ReLU followed by a max-pool is applied after the max-pool (they commute exactly, ties included, and the
  gradient reaches the same elements), so the ReLU touches a quarter of the elements.
With a hook on a layer, the layers are called in turn, as `nn.Sequential` calls them (in channels-last format,
which torch's convolutions keep: the values every hook sees are the same); a hooked, compiled or replaced stack is
called as a module.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from perceptspec._core import Shape
from perceptspec._fold.rules._conv import flatten_dense_features, strided_conv_shape, vgg_shape
from perceptspec._spec import (Dense, FlattenDense, Initializer, StridedConv, StridedConvDense, VGGConv, VGGConvDense,
                               VGGConvGAP)
from perceptspec._spec._conv import VGG_KERNEL, VGG_PADDING, ConvLayer, StridedConvFields
from perceptspec._torch._call import call, call_in_turn, intercepted
from perceptspec._torch._init import initialise
from perceptspec._torch._non_lin import NON_LIN_MODULES
from perceptspec._torch._tables import torch_builders


class ConvStack(nn.Module):
    """`conv` on the last `rank` dims (channels and spatial dims), leading dims folded into one batch dim and
    restored, then `head` and `dense` on the result: (..., C, *spatial) -> (..., *out)."""

    def __init__(self, rank: int, conv: nn.Sequential, head: nn.Module, dense: nn.Module) -> None:
        super().__init__()
        self.rank = rank
        self.conv = conv
        self.head = head
        self.dense = dense
        # 2-D convolutions run channels-last (see the module docstring)
        self.channels_last = rank == 3 and len(conv) > 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rank, conv = self.rank, self._modules["conv"]
        assert conv is not None
        h = x.reshape(-1, *x.shape[-rank:])
        # the stack as the Sequential it is, fused where nothing could see it; a hooked, compiled or replaced stack is
        # called as a module
        stack = type(conv) is nn.Sequential and not intercepted(conv)
        layers: list[nn.Module] = list(conv._modules.values()) if stack else []  # type: ignore[arg-type]
        fused = stack and not any(intercepted(layer) for layer in layers)
        channels_last = stack and self.channels_last  # torch's convolutions keep the format: hooks see its values
        if channels_last:  # .contiguous(memory_format=channels_last), which torch.func.vmap refuses
            h = h.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
        if not stack:
            h = call(conv, h)
        else:
            h = _fused_layers(layers, h) if fused else call_in_turn(layers, h)
        y = call(self.head, h.reshape(x.shape[:-rank] + h.shape[1:]))
        if channels_last and type(self.head) is nn.Identity:
            y = y.contiguous()  # a spatial output is handed on in the usual layout
        out: torch.Tensor = call(self.dense, y)
        return out


def _fused_layers(layers: list[nn.Module], h: torch.Tensor) -> torch.Tensor:
    """The values `call_in_turn` computes, when no layer is intercepted: a ReLU after a max-pool that follows it,
    and in place on the output of a convolution, batch norm or max-pool as torch built them (fresh tensors no
    backward saves)."""
    i, n, fresh = 0, len(layers), False
    while i < n:
        layer = layers[i]
        if type(layer) is nn.ReLU:
            if i + 1 < n and type(layers[i + 1]) is nn.MaxPool2d:
                h, fresh, i = call(layers[i + 1], h), True, i + 1
            h = torch.relu_(h) if fresh else torch.relu(h)
        else:
            h = call(layer, h)
        fresh = type(layer) in _FRESH_OUTPUTS
        i += 1
    return h


#: layers whose output is a new tensor that their backward does not save: a ReLU may overwrite it
_FRESH_OUTPUTS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.BatchNorm2d, nn.MaxPool2d, nn.ZeroPad2d)


class SpatialMean(nn.Module):
    """Global average pooling: (..., C, *spatial) -> (..., C), the mean over the last `dims` dims."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.dims = tuple(range(-dims, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(self.dims)


# --- the ops of a plan: each builds one layer of the `conv` Sequential ---------------------------------------------

class _Op(Protocol):
    def channels(self, c_in: int) -> int: ...
    def build(self, c_in: int, init: Initializer, generator: torch.Generator | None) -> nn.Module: ...


# Any: torch annotates each class's sizes with its own fixed-length tuple type; ours are checked by the spec
_CONV_CLASSES: dict[int, Any] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


@dataclasses.dataclass(frozen=True)
class _Conv:
    layer: ConvLayer
    padding_mode: str

    def channels(self, c_in: int) -> int:
        return self.layer.out_channels

    def build(self, c_in: int, init: Initializer, generator: torch.Generator | None) -> nn.Module:
        layer = self.layer
        conv: _ConvNd = _CONV_CLASSES[len(layer.kernel)](
            c_in, layer.out_channels, layer.kernel, stride=layer.stride, padding=layer.padding,
            dilation=layer.dilation, padding_mode=self.padding_mode, device="meta")
        conv.to_empty(device="cpu")  # skip torch's own random init: ours fills it (with our generator)
        initialise(init, conv.weight, conv.bias, generator)
        return conv


@dataclasses.dataclass(frozen=True)
class _BatchNorm:
    def channels(self, c_in: int) -> int:
        return c_in

    def build(self, c_in: int, init: Initializer, generator: torch.Generator | None) -> nn.Module:
        return nn.BatchNorm2d(c_in)


@dataclasses.dataclass(frozen=True)
class _NonLin:
    non_lin: str

    def channels(self, c_in: int) -> int:
        return c_in

    def build(self, c_in: int, init: Initializer, generator: torch.Generator | None) -> nn.Module:
        return NON_LIN_MODULES[self.non_lin]()


@dataclasses.dataclass(frozen=True)
class _ZeroPad:
    sides: tuple[int, int, int, int]

    def channels(self, c_in: int) -> int:
        return c_in

    def build(self, c_in: int, init: Initializer, generator: torch.Generator | None) -> nn.Module:
        return nn.ZeroPad2d(self.sides)


@dataclasses.dataclass(frozen=True)
class _MaxPool:
    def channels(self, c_in: int) -> int:
        return c_in

    def build(self, c_in: int, init: Initializer, generator: torch.Generator | None) -> nn.Module:
        return nn.MaxPool2d(kernel_size=2, stride=2)


def _vgg_plan(channels: Sequence[int], non_lin: str, batch_norm: bool) -> list[_Op]:
    """Per stage: 2 x (3x3 conv, padding 1, [BatchNorm2d], non_lin), then a 2x2 max-pool."""
    plan: list[_Op] = []
    for c in channels:
        conv = _Conv(ConvLayer(c, (VGG_KERNEL,) * 2, (1, 1), (1, 1), (VGG_PADDING,) * 2), "zeros")
        for _ in range(2):
            plan += [conv, *([_BatchNorm()] if batch_norm else []), _NonLin(non_lin)]
        plan.append(_MaxPool())
    return plan


def _strided_plan(block: StridedConvFields) -> list[_Op]:
    plan: list[_Op] = []
    for layer in block.conv_layers():
        if layer.side_padding is not None:
            plan.append(_ZeroPad(layer.side_padding))
        plan += [_Conv(layer, block.padding_mode), _NonLin(block.non_lin)]
    return plan


# --- shared build ----------------------------------------------------------------------------------------------

def _dense_part(units: Sequence[int], non_lin: str) -> Dense | None:
    return Dense(in_keys="x", out_keys="y", hidden_units=units, non_lin=non_lin) if units else None


def _build(plan: list[_Op], x: Shape, rank: int, head: nn.Module, dense: Dense | None, features: int,
           init: Initializer, generator: torch.Generator | None) -> ConvStack:
    """The ConvStack of `plan` for input shape `x`; `features` is what the head hands to the Dense part."""
    layers, c = [], x[-rank]
    for op in plan:
        layers.append(op.build(c, init, generator))
        c = op.channels(c)
    dense_module = nn.Identity() if dense is None else torch_builders.lookup(Dense)(dense, ((features,),), init,
                                                                                    generator)
    return ConvStack(rank, nn.Sequential(*layers), head, dense_module)


# --- VGG ----------------------------------------------------------------------------------------------------------

@torch_builders.register(VGGConv)
def _vgg_conv_build_rule(block: VGGConv, ins: tuple[Shape, ...], init: Initializer,
                         generator: torch.Generator | None) -> nn.Module:
    plan = _vgg_plan(block.hidden_channels, block.non_lin, block.use_batch_norm)
    return _build(plan, ins[0], 3, nn.Identity(), None, 0, init, generator)



@torch_builders.register(VGGConvDense)
def _vgg_conv_dense_build_rule(block: VGGConvDense, ins: tuple[Shape, ...], init: Initializer,
                               generator: torch.Generator | None) -> nn.Module:
    plan = _vgg_plan(block.hidden_channels, block.non_lin, block.use_batch_norm_conv)
    features = math.prod(vgg_shape(block.hidden_channels, ins[0])[-3:])
    dense = _dense_part(block.hidden_units, block.non_lin)
    return _build(plan, ins[0], 3, nn.Flatten(-3, -1), dense, features, init, generator)



@torch_builders.register(VGGConvGAP)
def _vgg_conv_gap_build_rule(block: VGGConvGAP, ins: tuple[Shape, ...], init: Initializer,
                             generator: torch.Generator | None) -> nn.Module:
    plan = _vgg_plan(block.hidden_channels, block.non_lin, block.use_batch_norm_conv)
    return _build(plan, ins[0], 3, SpatialMean(2), None, 0, init, generator)



# --- FlattenDense -------------------------------------------------------------------------------------------------

@torch_builders.register(FlattenDense)
def _flatten_dense_build_rule(block: FlattenDense, ins: tuple[Shape, ...], init: Initializer,
                              generator: torch.Generator | None) -> nn.Module:
    n = block.num_flatten_dims
    dense = _dense_part(block.hidden_units, block.non_lin)
    return _build([], ins[0], n, nn.Flatten(-n, -1), dense, flatten_dense_features(block, ins[0]), init, generator)



# --- strided convolutions -----------------------------------------------------------------------------------------

@torch_builders.register(StridedConv)
def _strided_conv_build_rule(block: StridedConv, ins: tuple[Shape, ...], init: Initializer,
                             generator: torch.Generator | None) -> nn.Module:
    rank = block.convolution_dimension + 1
    return _build(_strided_plan(block), ins[0], rank, nn.Identity(), None, 0, init, generator)



@torch_builders.register(StridedConvDense)
def _strided_conv_dense_build_rule(block: StridedConvDense, ins: tuple[Shape, ...], init: Initializer,
                                   generator: torch.Generator | None) -> nn.Module:
    rank = block.convolution_dimension + 1
    features = math.prod(strided_conv_shape(block, ins[0])[-rank:])
    dense = _dense_part(block.hidden_units, block.non_lin)
    return _build(_strided_plan(block), ins[0], rank, nn.Flatten(-rank, -1), dense, features, init, generator)
