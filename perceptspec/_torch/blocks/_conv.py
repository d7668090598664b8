"""Build and emit rules of the convolution blocks: VGGConv, VGGConvDense, VGGConvGAP, FlattenDense, StridedConv and
StridedConvDense.

Every kind is one `ConvStack`: a stack of layers applied to the trailing (channels, *spatial) dims with any leading
dims folded into one batch dim (torch's convolutions take exactly one), then a head (flatten, global average pool or
nothing) and an optional Dense part built and emitted by Dense's own rules. The layers come from a plan, a list of
ops that both the build rule and the emit rule read, so the generated lines address exactly the built layers.

The generated forward computes what the eager modules compute, faster (benchmarks/RESULTS.md):
- 2-D stacks run in channels-last memory format (the input is copied once; the head's flatten restores the
  (C, H, W) order). oneDNN's convolutions then need no reorder to and from their blocked layout, and max-pool
  vectorises over channels: about 2x faster on CPU for the seed's VGG screen embedding.
- ReLU is applied in place to the layer output it follows (see IN_PLACE_NON_LIN_CALLS).
- A ReLU followed by a max-pool is emitted as max-pool then ReLU (they commute exactly, ties included, and the
  gradient reaches the same elements), so the ReLU touches a quarter of the elements.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from perceptspec._fold._rules import Shape
from perceptspec._fold.rules._conv import flatten_dense_features, strided_conv_shape, vgg_shape
from perceptspec._spec import (Dense, FlattenDense, Initializer, StridedConv, StridedConvDense, VGGConv, VGGConvDense,
                               VGGConvGAP)
from perceptspec._spec._conv import VGG_KERNEL, VGG_PADDING, ConvLayer, StridedConvFields
from perceptspec._torch._init import initialise
from perceptspec._torch._non_lin import NON_LIN_CALLS, NON_LIN_MODULES
from perceptspec._torch._tables import Site, emit_rules, torch_builders


class ConvStack(nn.Module):
    """`conv` on the last `rank` dims (channels and spatial dims), leading dims folded into one batch dim and
    restored, then `head` and `dense` on the result: (..., C, *spatial) -> (..., *out)."""

    def __init__(self, rank: int, conv: nn.Sequential, head: nn.Module, dense: nn.Module) -> None:
        super().__init__()
        self.rank = rank
        self.conv = conv
        self.head = head
        self.dense = dense

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.conv(x.reshape(-1, *x.shape[-self.rank:]))
        out: torch.Tensor = self.dense(self.head(y.reshape(x.shape[:-self.rank] + y.shape[1:])))
        return out


class SpatialMean(nn.Module):
    """Global average pooling: (..., C, *spatial) -> (..., C), the mean over the last `dims` dims."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.dims = tuple(range(-dims, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(self.dims)


# In place, ReLU saves an allocation and a pass over memory per layer. It is applied to a convolution's, batch
# norm's or max-pool's output: a fresh tensor (not a view) that no backward formula saves (they keep their inputs;
# ReLU's backward reads its own result), so autograd stays exact and cheap. Not used after F.linear, whose output on
# inputs with more than one leading dim is a view: in place there, the backward gets an AsStrided copy (slower).
# tanh_, sigmoid_, elu_ and leaky_relu_ would be as exact; they keep their out-of-place calls (as Dense does, and
# tests/test_materialize.py pins `torch.tanh(`).
IN_PLACE_NON_LIN_CALLS: dict[str, str] = {**NON_LIN_CALLS, "relu": "torch.relu_({})"}


# --- the ops of a plan: each builds one layer of the `conv` Sequential and emits the lines that apply it ----------

class _Op(Protocol):
    def channels(self, c_in: int) -> int: ...
    def build(self, c_in: int, init: Initializer, generator: torch.Generator | None) -> nn.Module: ...
    def emit(self, h: str, layers: Site, index: str) -> list[str]: ...


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

    def emit(self, h: str, layers: Site, index: str) -> list[str]:
        layer, p = self.layer, layers.fresh("p")
        conv = f"F.conv{len(layer.kernel)}d"
        if self.padding_mode == "zeros":
            call = f"{conv}({h}, {p}['weight'], {p}['bias'], {layer.stride}, {layer.padding}, {layer.dilation})"
        else:  # what nn.ConvNd does for these modes: pad first (last dim first, both sides), then convolve unpadded
            pad = tuple(q for q in reversed(layer.padding) for _ in range(2))
            zero = (0,) * len(layer.kernel)
            call = (f"{conv}(F.pad({h}, {pad}, mode={self.padding_mode!r}), {p}['weight'], {p}['bias'], "
                    f"{layer.stride}, {zero}, {layer.dilation})")
        return [f"{p} = {layers.params(index)}", f"{h} = {call}"]


@dataclasses.dataclass(frozen=True)
class _BatchNorm:
    def channels(self, c_in: int) -> int:
        return c_in

    def build(self, c_in: int, init: Initializer, generator: torch.Generator | None) -> nn.Module:
        return nn.BatchNorm2d(c_in)

    def emit(self, h: str, layers: Site, index: str) -> list[str]:
        # called as its module: it reads `training` and updates the running statistics exactly as in eager mode
        return [f"{h} = {layers.module}._modules[{index!r}]({h})"]


@dataclasses.dataclass(frozen=True)
class _NonLin:
    non_lin: str

    def channels(self, c_in: int) -> int:
        return c_in

    def build(self, c_in: int, init: Initializer, generator: torch.Generator | None) -> nn.Module:
        return NON_LIN_MODULES[self.non_lin]()

    def emit(self, h: str, layers: Site, index: str) -> list[str]:
        # in place: `h` is always the output of the layer before (a convolution, batch norm or max-pool)
        return [] if self.non_lin == "identity" else [f"{h} = {IN_PLACE_NON_LIN_CALLS[self.non_lin].format(h)}"]


@dataclasses.dataclass(frozen=True)
class _MaxPool:
    def channels(self, c_in: int) -> int:
        return c_in

    def build(self, c_in: int, init: Initializer, generator: torch.Generator | None) -> nn.Module:
        return nn.MaxPool2d(kernel_size=2, stride=2)

    def emit(self, h: str, layers: Site, index: str) -> list[str]:
        return [f"{h} = F.max_pool2d({h}, 2, 2)"]


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
    return [op for layer in block.conv_layers() for op in (_Conv(layer, block.padding_mode), _NonLin(block.non_lin))]


# --- shared build and emit ----------------------------------------------------------------------------------------

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


def _emit(plan: list[_Op], rank: int, head: str, dense: Dense | None, site: Site) -> list[str]:
    """Lines applying `plan` to the folded input, restoring the leading dims, then `head` (a format string over
    one argument) and the Dense part."""
    x, h = site.ins[0], site.fresh("h")
    layers = Site(f"{site.module}._modules['conv']", site.ins, site.outs, site.fresh)
    folded = f"{x}.reshape(-1, *{x}.shape[-{rank}:])"
    channels_last = bool(plan) and rank == 3  # 2-D convolutions (see the module docstring)
    if channels_last:  # the same as .contiguous(memory_format=torch.channels_last), which torch.func.vmap refuses
        folded += ".permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # channels-last"
    lines = [f"{h} = {folded}"]
    for index, op in _relu_after_pool(plan):
        lines += op.emit(h, layers, str(index))
    restored = head.format(f"{h}.reshape({x}.shape[:-{rank}] + {h}.shape[1:])")
    if channels_last and head == "{}":  # a spatial output is handed on contiguous, as the eager module's
        restored += ".contiguous()"
    if dense is None:
        return lines + [f"{site.outs[0]} = {restored}"]
    z = site.fresh("z")
    dense_site = Site(f"{site.module}._modules['dense']", (z,), site.outs, site.fresh)
    return lines + [f"{z} = {restored}"] + emit_rules.lookup(Dense)(dense, dense_site)


def _relu_after_pool(plan: list[_Op]) -> list[tuple[int, _Op]]:
    """The plan's ops with their layer indices, each ReLU that a max-pool follows moved after that max-pool."""
    ops = list(enumerate(plan))
    for i in range(len(ops) - 1):
        if ops[i][1] == _NonLin("relu") and isinstance(ops[i + 1][1], _MaxPool):
            ops[i], ops[i + 1] = ops[i + 1], ops[i]
    return ops


def _flatten_line(dims: int) -> str:
    """The emitted form of the head `nn.Flatten(-dims, -1)`."""
    return f"{{}}.flatten(-{dims})"


# --- VGG ----------------------------------------------------------------------------------------------------------

@torch_builders.register(VGGConv)
def _vgg_conv_build_rule(block: VGGConv, ins: tuple[Shape, ...], init: Initializer,
                         generator: torch.Generator | None) -> nn.Module:
    plan = _vgg_plan(block.hidden_channels, block.non_lin, block.use_batch_norm)
    return _build(plan, ins[0], 3, nn.Identity(), None, 0, init, generator)


@emit_rules.register(VGGConv)
def _vgg_conv_emit_rule(block: VGGConv, site: Site) -> list[str]:
    return _emit(_vgg_plan(block.hidden_channels, block.non_lin, block.use_batch_norm), 3, "{}", None, site)


@torch_builders.register(VGGConvDense)
def _vgg_conv_dense_build_rule(block: VGGConvDense, ins: tuple[Shape, ...], init: Initializer,
                               generator: torch.Generator | None) -> nn.Module:
    plan = _vgg_plan(block.hidden_channels, block.non_lin, block.use_batch_norm_conv)
    features = math.prod(vgg_shape(block.hidden_channels, ins[0])[-3:])
    dense = _dense_part(block.hidden_units, block.non_lin)
    return _build(plan, ins[0], 3, nn.Flatten(-3, -1), dense, features, init, generator)


@emit_rules.register(VGGConvDense)
def _vgg_conv_dense_emit_rule(block: VGGConvDense, site: Site) -> list[str]:
    plan = _vgg_plan(block.hidden_channels, block.non_lin, block.use_batch_norm_conv)
    return _emit(plan, 3, _flatten_line(3), _dense_part(block.hidden_units, block.non_lin), site)


@torch_builders.register(VGGConvGAP)
def _vgg_conv_gap_build_rule(block: VGGConvGAP, ins: tuple[Shape, ...], init: Initializer,
                             generator: torch.Generator | None) -> nn.Module:
    plan = _vgg_plan(block.hidden_channels, block.non_lin, block.use_batch_norm)
    return _build(plan, ins[0], 3, SpatialMean(2), None, 0, init, generator)


@emit_rules.register(VGGConvGAP)
def _vgg_conv_gap_emit_rule(block: VGGConvGAP, site: Site) -> list[str]:
    plan = _vgg_plan(block.hidden_channels, block.non_lin, block.use_batch_norm)
    return _emit(plan, 3, "{}.mean((-2, -1))", None, site)


# --- FlattenDense -------------------------------------------------------------------------------------------------

@torch_builders.register(FlattenDense)
def _flatten_dense_build_rule(block: FlattenDense, ins: tuple[Shape, ...], init: Initializer,
                              generator: torch.Generator | None) -> nn.Module:
    n = block.num_flatten_dims
    dense = _dense_part(block.hidden_units, block.non_lin)
    return _build([], ins[0], n, nn.Flatten(-n, -1), dense, flatten_dense_features(block, ins[0]), init, generator)


@emit_rules.register(FlattenDense)
def _flatten_dense_emit_rule(block: FlattenDense, site: Site) -> list[str]:
    # no layers to fold the leading dims for: flatten in place, then Dense's lines
    dense = _dense_part(block.hidden_units, block.non_lin)
    assert dense is not None  # FlattenDense requires hidden_units
    z = site.fresh("z")
    dense_site = Site(f"{site.module}._modules['dense']", (z,), site.outs, site.fresh)
    flat = _flatten_line(block.num_flatten_dims).format(site.ins[0])
    return [f"{z} = {flat}"] + emit_rules.lookup(Dense)(dense, dense_site)


# --- strided convolutions -----------------------------------------------------------------------------------------

@torch_builders.register(StridedConv)
def _strided_conv_build_rule(block: StridedConv, ins: tuple[Shape, ...], init: Initializer,
                             generator: torch.Generator | None) -> nn.Module:
    rank = block.convolution_dimension + 1
    return _build(_strided_plan(block), ins[0], rank, nn.Identity(), None, 0, init, generator)


@emit_rules.register(StridedConv)
def _strided_conv_emit_rule(block: StridedConv, site: Site) -> list[str]:
    return _emit(_strided_plan(block), block.convolution_dimension + 1, "{}", None, site)


@torch_builders.register(StridedConvDense)
def _strided_conv_dense_build_rule(block: StridedConvDense, ins: tuple[Shape, ...], init: Initializer,
                                   generator: torch.Generator | None) -> nn.Module:
    rank = block.convolution_dimension + 1
    features = math.prod(strided_conv_shape(block, ins[0])[-rank:])
    dense = _dense_part(block.hidden_units, block.non_lin)
    return _build(_strided_plan(block), ins[0], rank, nn.Flatten(-rank, -1), dense, features, init, generator)


@emit_rules.register(StridedConvDense)
def _strided_conv_dense_emit_rule(block: StridedConvDense, site: Site) -> list[str]:
    rank = block.convolution_dimension + 1
    return _emit(_strided_plan(block), rank, _flatten_line(rank), _dense_part(block.hidden_units, block.non_lin),
                 site)
