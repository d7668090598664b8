"""Convolution blocks: Maze's VGG-style and strided convolution stacks, and the joint blocks built on them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Callable, ClassVar, NamedTuple

from perceptspec._spec._block import Block
from perceptspec._spec._descriptor import descriptor
from perceptspec._spec._non_lin import canonical_non_lin

__all__ = ["FlattenDense", "StridedConv", "StridedConvDense", "VGGConv", "VGGConvDense", "VGGConvGAP"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
#: what Maze's StridedConvolutionBlock uses when `hidden_padding` is None: no padding, as torch's default (Maze's
#: first commit padded by 1; every release since, 0.1.0 on, pads by 0)
MAZE_DEFAULT_PADDING = 0
#: kernel, stride, dilation and padding of one VGG convolution: 3x3, padding 1 (keeps height and width)
VGG_KERNEL, VGG_PADDING = 3, 1


class ConvLayer(NamedTuple):
    """One convolution of a stack with every per-dim setting spelled out (one entry per spatial dim)."""

    out_channels: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[int, ...]
    #: Maze's four-value padding of a 2-D convolution, (left, right, top, bottom) as torch's ZeroPad2d takes it:
    #: zeros added before the convolution, which then pads nothing itself
    side_padding: tuple[int, int, int, int] | None = None


def _padding_mode(value: object) -> object:
    return "zeros" if value is None else value  # Maze's Optional[str]: None means 'zeros'


def _positive_problems(field: str, values: Sequence[int], allow_empty: bool = False) -> Iterator[str]:
    if (not values and not allow_empty) or any(v <= 0 for v in values):
        some = "zero or more" if allow_empty else "one or more"
        yield f"field '{field}': expected {some} positive ints, got {list(values)}"


@descriptor
class VGGConv(Block):
    """Maze's VGGConvolutionBlock: per entry of `hidden_channels` one stage of two 3x3 convolutions (padding 1), each
    followed by BatchNorm2d (if `use_batch_norm`) and `non_lin`, then a 2x2 max-pool (stride 2, rounding down).

    (..., C, H, W) -> (..., hidden_channels[-1], H // 2**n, W // 2**n) for n stages.

    Examples:
        >>> block = ps.VGGConv(in_keys="screen", out_keys="maps", hidden_channels=[8, 16])
        >>> ps.infer_shapes(block, {"screen": (3, 32, 32)})["maps"]
        (16, 8, 8)
    """

    _converters: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"non_lin": canonical_non_lin}

    hidden_channels: Sequence[int]
    """Output channels of each stage (two 3x3 convolutions and a 2x2 max-pool)."""
    non_lin: str = "relu"
    """Activation after every convolution."""
    use_batch_norm: bool = False
    """BatchNorm2d after every convolution, before `non_lin`."""

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        yield from _positive_problems("hidden_channels", self.hidden_channels)


@descriptor
class VGGConvDense(Block):
    """Maze's VGGConvolutionDenseBlock: VGGConv, the last three dims flattened, then Dense(`hidden_units`).

    (..., C, H, W) -> (..., hidden_units[-1]); with no `hidden_units`, the flattened conv features.

    Examples:
        >>> block = ps.VGGConvDense(in_keys="screen", out_keys="h", hidden_channels=[8], hidden_units=[32])
        >>> ps.infer_shapes(block, {"screen": (3, 16, 16)})["h"]
        (32,)
    """

    _converters: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"non_lin": canonical_non_lin}

    hidden_channels: Sequence[int]
    """Output channels of each VGG stage."""
    hidden_units: Sequence[int]
    """Units of the Dense layers after flattening; empty: no Dense layer."""
    non_lin: str = "relu"
    """Activation after every convolution and Linear layer."""
    use_batch_norm_conv: bool = False
    """BatchNorm2d after every convolution."""

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        yield from _positive_problems("hidden_channels", self.hidden_channels)
        yield from _positive_problems("hidden_units", self.hidden_units, allow_empty=True)


@descriptor
class VGGConvGAP(Block):
    """Maze's VGGConvolutionGAPBlock: VGGConv, then global average pooling over height and width.

    (..., C, H, W) -> (..., hidden_channels[-1]).

    Examples:
        >>> block = ps.VGGConvGAP(in_keys="screen", out_keys="h", hidden_channels=[8, 16])
        >>> ps.infer_shapes(block, {"screen": (3, 32, 32)})["h"]
        (16,)
    """

    _converters: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"non_lin": canonical_non_lin}

    hidden_channels: Sequence[int]
    """Output channels of each VGG stage."""
    non_lin: str = "relu"
    """Activation after every convolution."""
    use_batch_norm_conv: bool = False  # Maze's name here (VGGConv's own field is use_batch_norm)
    """BatchNorm2d after every convolution (Maze's name here; VGGConv's own field is `use_batch_norm`)."""

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        yield from _positive_problems("hidden_channels", self.hidden_channels)


@descriptor
class FlattenDense(Block):
    """Maze's FlattenDenseBlock: the last `num_flatten_dims` dims flattened into one, then Dense(`hidden_units`).

    (..., d1, ..., dn) -> (..., hidden_units[-1]) for n = num_flatten_dims.

    Examples:
        >>> block = ps.FlattenDense(in_keys="grid", out_keys="h", num_flatten_dims=2, hidden_units=[32])
        >>> ps.infer_shapes(block, {"grid": (4, 8)})["h"]
        (32,)
    """

    _converters: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"non_lin": canonical_non_lin}

    num_flatten_dims: int
    """How many trailing dims are flattened into one."""
    hidden_units: Sequence[int]
    """Output units of each Linear layer."""
    non_lin: str = "relu"
    """Activation after every Linear layer."""

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        if self.num_flatten_dims < 1:
            yield f"field 'num_flatten_dims': expected a positive int, got {self.num_flatten_dims}"
        yield from _positive_problems("hidden_units", self.hidden_units)


PerLayer = Sequence[int | Sequence[int]]


@descriptor
class StridedConvFields(Block):
    """The fields StridedConv and StridedConvDense share, under Maze's names and with Maze's None defaults."""

    _abstract: ClassVar[bool] = True
    _converters: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"non_lin": canonical_non_lin,
                                                                   "padding_mode": _padding_mode}
    _choices: ClassVar[Mapping[str, Sequence[str]]] = {"padding_mode": PADDING_MODES}

    hidden_channels: Sequence[int]
    """Output channels of each convolution."""
    hidden_kernels: PerLayer
    """Kernel size of each layer: an int, or a tuple of one size per spatial dim."""
    non_lin: str = "relu"
    """Activation after every layer."""
    convolution_dimension: int = 2
    """Spatial dims: 1, 2 or 3 (Conv1d, Conv2d, Conv3d)."""
    hidden_strides: PerLayer | None = None
    """Stride of each layer (int or per-dim tuple); None: 1 for every layer."""
    hidden_dilations: PerLayer | None = None
    """Dilation of each layer (int or per-dim tuple); None: 1 for every layer."""
    hidden_padding: PerLayer | None = None
    """Zero padding of each layer (int or per-dim tuple); None: 0 for every layer, as Maze's releases since
    0.1.0."""
    padding_mode: str = "zeros"
    """torch's padding mode (Maze's None means 'zeros')."""

    def conv_layers(self) -> tuple[ConvLayer, ...]:
        """Every layer's settings, with Maze's defaults for None (stride 1, dilation 1, padding 0) and ints
        repeated over the `convolution_dimension` spatial dims."""
        n, dims = len(self.hidden_channels), self.convolution_dimension

        def per_dim(values: PerLayer | None, default: int) -> list[tuple[int, ...]]:
            entries = values if values is not None else (default,) * n
            return [(v,) * dims if isinstance(v, int) else tuple(v) for v in entries]

        layers = zip(self.hidden_channels, per_dim(self.hidden_kernels, 0), per_dim(self.hidden_strides, 1),
                     per_dim(self.hidden_dilations, 1), per_dim(self.hidden_padding, MAZE_DEFAULT_PADDING))
        return tuple(ConvLayer(c, k, s, d, (0,) * dims, (p[0], p[1], p[2], p[3])) if len(p) == 4 != dims
                     else ConvLayer(c, k, s, d, p) for c, k, s, d, p in layers)

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        yield from _positive_problems("hidden_channels", self.hidden_channels)
        dims = self.convolution_dimension
        if dims not in (1, 2, 3):
            yield f"field 'convolution_dimension': expected 1, 2 or 3, got {dims}"
            return
        if self.padding_mode not in PADDING_MODES:
            yield f"field 'padding_mode': expected one of {', '.join(PADDING_MODES)}, got {self.padding_mode!r}"
        for field, minimum in (("hidden_kernels", 1), ("hidden_strides", 1), ("hidden_dilations", 1),
                               ("hidden_padding", 0)):
            values: PerLayer | None = getattr(self, field)
            if values is not None:
                sides = field == "hidden_padding" and dims == 2 and self.padding_mode == "zeros"
                yield from _per_layer_problems(field, values, len(self.hidden_channels), dims, minimum, sides)


def _per_layer_problems(field: str, values: PerLayer, n_layers: int, dims: int, minimum: int,
                        sides: bool = False) -> Iterator[str]:
    """Problems of a per-layer list; with `sides`, an entry may also be Maze's four-value 2-D zero padding."""
    if len(values) != n_layers:
        yield (f"field '{field}': expected one entry per layer ({n_layers}, as in hidden_channels), "
               f"got {len(values)}: {list(values)}")
    least = "a positive int" if minimum == 1 else "an int >= 0"
    four = " or (with padding_mode 'zeros') four, (left, right, top, bottom)" if field == "hidden_padding" and \
        dims == 2 else ""
    for value in values:
        items = (value,) if isinstance(value, int) else tuple(value)
        lengths = (dims, 4) if sides else (dims,)
        if (not isinstance(value, int) and len(items) not in lengths) or any(isinstance(v, bool) or v < minimum
                                                                             for v in items):
            yield (f"field '{field}': expected each entry to be {least} or a tuple of {dims} "
                   f"(one per spatial dim){four}, got {value!r}")


@descriptor
class StridedConv(StridedConvFields):
    """Maze's StridedConvolutionBlock: one `convolution_dimension`-D convolution per entry of `hidden_channels`,
    each followed by `non_lin`; sizes follow torch: out = (in + 2p - d(k - 1) - 1) // s + 1.

    (..., C, *spatial) -> (..., hidden_channels[-1], *spatial_out), with 1, 2 or 3 spatial dims.
    Per-layer lists take an int or a tuple per layer; None means Maze's default (stride 1, dilation 1, padding 0).
    A 2-D padding entry of four values, (left, right, top, bottom), pads with zeros before the convolution, as
    Maze's ZeroPad2d layers do (padding_mode 'zeros').

    Examples:
        >>> block = ps.StridedConv(in_keys="screen", out_keys="maps", hidden_channels=[16, 32],
        ...                        hidden_kernels=[8, 4], hidden_strides=[4, 2])
        >>> ps.infer_shapes(block, {"screen": (3, 84, 84)})["maps"]
        (32, 9, 9)
    """


@descriptor
class StridedConvDense(StridedConvFields):
    """Maze's StridedConvolutionDenseBlock: StridedConv, the channel and spatial dims flattened, then
    Dense(`hidden_units`).

    (..., C, *spatial) -> (..., hidden_units[-1]); with no `hidden_units`, the flattened conv features.

    Examples:
        >>> block = ps.StridedConvDense(in_keys="screen", out_keys="h", hidden_channels=[16, 32],
        ...                             hidden_kernels=[8, 4], hidden_strides=[4, 2], hidden_units=[64])
        >>> ps.infer_shapes(block, {"screen": (3, 84, 84)})["h"]
        (64,)
    """

    hidden_units: Sequence[int]
    """Units of the Dense layers after flattening; empty: no Dense layer."""

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        yield from _positive_problems("hidden_units", self.hidden_units, allow_empty=True)
