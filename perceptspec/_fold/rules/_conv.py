"""Pure rules of the convolution blocks: VGGConv, VGGConvDense, VGGConvGAP, FlattenDense, StridedConv and
StridedConvDense. Sizes follow torch's arithmetic exactly, so a shape the fold accepts never fails at run time."""

from __future__ import annotations

import math
from collections.abc import Sequence

from perceptspec._core import Shape
from perceptspec._fold._rules import (Mismatch, arrow, label_rules, linear_params, param_rules, require_rank,
                                      shape_rules)
from perceptspec._spec import FlattenDense, StridedConv, StridedConvDense, VGGConv, VGGConvDense, VGGConvGAP
from perceptspec._spec._conv import VGG_KERNEL, ConvLayer, StridedConvFields

_IMAGE = "(..., channels, height, width)"
_LAYOUTS = {1: "(..., channels, length)", 2: _IMAGE, 3: "(..., channels, depth, height, width)"}


def _flat(shape: Shape) -> int:
    return math.prod(shape)


# --- VGG stacks ---------------------------------------------------------------------------------------------------

def vgg_shape(channels: Sequence[int], x: Shape) -> Shape:
    """(..., C, H, W) -> (..., channels[-1], H // 2**n, W // 2**n): the 3x3 convolutions keep H and W, each stage's
    2x2 max-pool halves them (rounding down), so n stages need H and W of at least 2**n."""
    require_rank(x, 0, 3, _IMAGE)
    n, (h, w) = len(channels), x[-2:]
    if min(h, w) < 2 ** n:
        raise Mismatch(0, f"a shape {_IMAGE} with height and width of at least {2 ** n} (each of the {n} VGG "
                          f"stage(s) halves them with a 2x2 max-pool)", x)
    return x[:-3] + (channels[-1], h >> n, w >> n)


def _vgg_params(channels: Sequence[int], x: Shape, batch_norm: bool) -> int:
    total, c_in = 0, x[-3]
    for c in channels:
        # two 3x3 convolutions (c_in -> c, c -> c) with biases, and a BatchNorm2d (weight and bias) after each
        total += (c_in + c) * c * VGG_KERNEL ** 2 + 2 * c + (4 * c if batch_norm else 0)
        c_in = c
    return total


def _vgg_label(kind: str, block: VGGConv | VGGConvDense | VGGConvGAP, x: Shape, batch_norm: bool,
               dense: str = "") -> str:
    bn = " bn" if batch_norm else ""
    return f"{kind} {arrow((x[-3], *block.hidden_channels))}{bn}{dense} {block.non_lin}"


@shape_rules.register(VGGConv)
def _vgg_conv_shape_rule(block: VGGConv, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    return (vgg_shape(block.hidden_channels, ins[0]),)


@param_rules.register(VGGConv)
def _vgg_conv_param_rule(block: VGGConv, ins: tuple[Shape, ...]) -> int:
    return _vgg_params(block.hidden_channels, ins[0], block.use_batch_norm)


@label_rules.register(VGGConv)
def _vgg_conv_label_rule(block: VGGConv, ins: tuple[Shape, ...]) -> str:
    return _vgg_label("VGGConv", block, ins[0], block.use_batch_norm)


@shape_rules.register(VGGConvDense)
def _vgg_conv_dense_shape_rule(block: VGGConvDense, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    conv = vgg_shape(block.hidden_channels, ins[0])
    return (conv[:-3] + ((block.hidden_units or (_flat(conv[-3:]),))[-1],),)


@param_rules.register(VGGConvDense)
def _vgg_conv_dense_param_rule(block: VGGConvDense, ins: tuple[Shape, ...]) -> int:
    conv = vgg_shape(block.hidden_channels, ins[0])
    return (_vgg_params(block.hidden_channels, ins[0], block.use_batch_norm_conv)
            + linear_params((_flat(conv[-3:]), *block.hidden_units)))


@label_rules.register(VGGConvDense)
def _vgg_conv_dense_label_rule(block: VGGConvDense, ins: tuple[Shape, ...]) -> str:
    conv = vgg_shape(block.hidden_channels, ins[0])
    dense = f" | {arrow((_flat(conv[-3:]), *block.hidden_units))}" if block.hidden_units else ""
    return _vgg_label("VGGConvDense", block, ins[0], block.use_batch_norm_conv, dense)


@shape_rules.register(VGGConvGAP)
def _vgg_conv_gap_shape_rule(block: VGGConvGAP, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    return (vgg_shape(block.hidden_channels, ins[0])[:-2],)


@param_rules.register(VGGConvGAP)
def _vgg_conv_gap_param_rule(block: VGGConvGAP, ins: tuple[Shape, ...]) -> int:
    return _vgg_params(block.hidden_channels, ins[0], block.use_batch_norm_conv)


@label_rules.register(VGGConvGAP)
def _vgg_conv_gap_label_rule(block: VGGConvGAP, ins: tuple[Shape, ...]) -> str:
    return _vgg_label("VGGConvGAP", block, ins[0], block.use_batch_norm_conv)


# --- FlattenDense -------------------------------------------------------------------------------------------------

def flatten_dense_features(block: FlattenDense, x: Shape) -> int:
    n = block.num_flatten_dims
    require_rank(x, 0, n, f"(..., {', '.join(f'd{i}' for i in range(1, n + 1))})")
    return _flat(x[-n:])


@shape_rules.register(FlattenDense)
def _flatten_dense_shape_rule(block: FlattenDense, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    flatten_dense_features(block, ins[0])
    return (ins[0][:-block.num_flatten_dims] + (block.hidden_units[-1],),)


@param_rules.register(FlattenDense)
def _flatten_dense_param_rule(block: FlattenDense, ins: tuple[Shape, ...]) -> int:
    return linear_params((flatten_dense_features(block, ins[0]), *block.hidden_units))


@label_rules.register(FlattenDense)
def _flatten_dense_label_rule(block: FlattenDense, ins: tuple[Shape, ...]) -> str:
    return f"FlattenDense {arrow((flatten_dense_features(block, ins[0]), *block.hidden_units))} {block.non_lin}"


# --- strided convolution stacks -----------------------------------------------------------------------------------

def _padding_problem(mode: str, size: int, padding: int) -> str | None:
    """Why torch cannot pad a spatial dim of `size` by `padding` per side in `mode`, or None."""
    if mode == "reflect" and padding >= size:
        return f"padding_mode 'reflect' needs padding < size but pads {padding} on a dim of size {size}"
    if mode == "circular" and padding > size:
        return f"padding_mode 'circular' needs padding <= size but pads {padding} on a dim of size {size}"
    return None


def _conv_layer_shape(layer: ConvLayer, mode: str, spatial: tuple[int, ...]) -> tuple[int, ...] | str:
    """The spatial dims after `layer`, or why it cannot take `spatial`."""
    if layer.side_padding is not None:
        left, right, top, bottom = layer.side_padding
        spatial = (spatial[0] + top + bottom, spatial[1] + left + right)
    out = []
    for size, k, s, d, p in zip(spatial, layer.kernel, layer.stride, layer.dilation, layer.padding):
        if problem := _padding_problem(mode, size, p):
            return problem
        span = d * (k - 1) + 1
        if size + 2 * p < span:
            return (f"the kernel spans {span} (kernel {k}, dilation {d}) but the padded dim is only "
                    f"{size + 2 * p} (size {size}, padding {p} per side)")
        out.append((size + 2 * p - span) // s + 1)
    return tuple(out)


def strided_conv_shape(block: StridedConvFields, x: Shape) -> Shape:
    dims = block.convolution_dimension
    require_rank(x, 0, dims + 1, _LAYOUTS[dims])
    layers = block.conv_layers()
    spatial = x[-dims:]
    for i, layer in enumerate(layers, start=1):
        result = _conv_layer_shape(layer, block.padding_mode, spatial)
        if isinstance(result, str):
            raise Mismatch(0, f"a shape {_LAYOUTS[dims]} large enough for every layer; conv layer {i} of "
                              f"{len(layers)} gets spatial dims {spatial}, where {result}", x)
        spatial = result
    return x[:-dims - 1] + (layers[-1].out_channels,) + spatial


def _strided_conv_params(block: StridedConvFields, x: Shape) -> int:
    total, c_in = 0, x[-block.convolution_dimension - 1]
    for layer in block.conv_layers():
        total += layer.out_channels * (c_in * math.prod(layer.kernel) + 1)
        c_in = layer.out_channels
    return total


def _strided_conv_label(kind: str, block: StridedConvFields, x: Shape, dense: str = "") -> str:
    layers = block.conv_layers()
    c_in = x[-block.convolution_dimension - 1]

    def show(values: tuple[tuple[int, ...], ...]) -> str:
        return ",".join(str(v[0]) if len(set(v)) == 1 else "x".join(map(str, v)) for v in values)

    text = f"{kind} {block.convolution_dimension}D {arrow((c_in, *block.hidden_channels))}"
    text += f" k{show(tuple(layer.kernel for layer in layers))}"
    if any(s != 1 for layer in layers for s in layer.stride):
        text += f" s{show(tuple(layer.stride for layer in layers))}"
    return f"{text}{dense} {block.non_lin}"


@shape_rules.register(StridedConv)
def _strided_conv_shape_rule(block: StridedConv, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    return (strided_conv_shape(block, ins[0]),)


@param_rules.register(StridedConv)
def _strided_conv_param_rule(block: StridedConv, ins: tuple[Shape, ...]) -> int:
    return _strided_conv_params(block, ins[0])


@label_rules.register(StridedConv)
def _strided_conv_label_rule(block: StridedConv, ins: tuple[Shape, ...]) -> str:
    return _strided_conv_label("StridedConv", block, ins[0])


def _strided_conv_dense_features(block: StridedConvDense, x: Shape) -> int:
    return _flat(strided_conv_shape(block, x)[-block.convolution_dimension - 1:])


@shape_rules.register(StridedConvDense)
def _strided_conv_dense_shape_rule(block: StridedConvDense, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    conv = strided_conv_shape(block, ins[0])
    flat = _flat(conv[-block.convolution_dimension - 1:])
    return (conv[:-block.convolution_dimension - 1] + ((block.hidden_units or (flat,))[-1],),)


@param_rules.register(StridedConvDense)
def _strided_conv_dense_param_rule(block: StridedConvDense, ins: tuple[Shape, ...]) -> int:
    flat = _strided_conv_dense_features(block, ins[0])
    return _strided_conv_params(block, ins[0]) + linear_params((flat, *block.hidden_units))


@label_rules.register(StridedConvDense)
def _strided_conv_dense_label_rule(block: StridedConvDense, ins: tuple[Shape, ...]) -> str:
    flat = _strided_conv_dense_features(block, ins[0])
    dense = f" | {arrow((flat, *block.hidden_units))}" if block.hidden_units else ""
    return _strided_conv_label("StridedConvDense", block, ins[0], dense)
