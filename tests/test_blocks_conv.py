"""Tests of the convolution blocks: VGGConv, VGGConvDense, VGGConvGAP, FlattenDense, StridedConv, StridedConvDense.

Each kind: the fold against a real forward pass (shapes, parameter counts, generated vs reference) for several
input shapes with extra leading dims; every invalid field and shape mismatch; and the subtle semantics (batch norm
in train and eval mode, padding modes, 1-D/3-D convolution, initialisation) against plain torch with copied weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch
from torch import nn

import perceptspec as ps
from perceptspec._torch import SpecModule, run_reference
from tests.blockcheck import check_block


def vgg(**kwargs: Any) -> ps.VGGConv:
    return ps.VGGConv(in_keys="x", out_keys="y", **{"hidden_channels": [4, 6], **kwargs})


def strided(**kwargs: Any) -> ps.StridedConv:
    return ps.StridedConv(in_keys="x", out_keys="y", **{"hidden_channels": [4, 6], "hidden_kernels": [3, 2],
                                                        **kwargs})


def strided_dense(**kwargs: Any) -> ps.StridedConvDense:
    return ps.StridedConvDense(in_keys="x", out_keys="y", **{"hidden_channels": [4, 6], "hidden_kernels": [3, 2],
                                                             "hidden_units": [5], **kwargs})


def conv_layers(module: SpecModule, path: str = "y") -> nn.Sequential:
    layers = module.block_module(path).get_submodule("conv")
    assert isinstance(layers, nn.Sequential)
    return layers


# --- fold == forward ------------------------------------------------------------------------------------------------

class TestVGGConv:
    @pytest.mark.parametrize("shape", [(3, 8, 8), (3, 4, 5), (2, 3, 9, 8), (2, 2, 1, 4, 4)])
    @pytest.mark.parametrize("use_batch_norm", [False, True])
    def test_fold_matches_forward(self, shape: tuple[int, ...], use_batch_norm: bool) -> None:
        check_block(vgg(use_batch_norm=use_batch_norm), {"x": shape})

    def test_shapes_halve_per_stage_rounding_down(self) -> None:
        assert ps.infer_shapes(vgg(hidden_channels=[4, 6, 8]), {"x": (5, 2, 17, 9)})["y"] == (5, 8, 2, 1)

    @pytest.mark.parametrize("non_lin", ps.NON_LINEARITIES)
    def test_every_non_lin(self, non_lin: str) -> None:
        check_block(vgg(non_lin=non_lin), {"x": (2, 4, 4)})

    def test_parameters_include_batch_norm_weight_and_bias_not_buffers(self) -> None:
        # stage 1: 3->4 and 4->4 3x3 convs (112 + 148), two BatchNorm2d(4) (8 + 8); stage 2: 4->6, 6->6 (222 + 330),
        # two BatchNorm2d(6) (12 + 12)
        spec, shapes = vgg(use_batch_norm=True), {"x": (3, 8, 8)}
        assert ps.count_parameters(spec, shapes) == 112 + 148 + 16 + 222 + 330 + 24
        module = ps.materialize(spec, shapes, seed=0)
        assert sum(p.numel() for p in module.parameters()) == ps.count_parameters(spec, shapes)
        assert {name.rsplit(".", 1)[-1] for name, _ in module.named_buffers()} == {
            "running_mean", "running_var", "num_batches_tracked"}

    def test_maze_style_non_lin_name(self) -> None:
        assert vgg(non_lin="torch.nn.ReLU") == vgg(non_lin="relu")

    def test_label(self) -> None:
        text = ps.summary(vgg(use_batch_norm=True), {"x": (3, 8, 8)})
        assert "VGGConv 3→4→6 bn relu" in text


class TestVGGConvDense:
    @pytest.mark.parametrize("shape", [(3, 8, 8), (3, 5, 7), (2, 3, 8, 8)])
    @pytest.mark.parametrize("hidden_units", [[7], [7, 5], []])
    def test_fold_matches_forward(self, shape: tuple[int, ...], hidden_units: list[int]) -> None:
        spec = ps.VGGConvDense(in_keys="x", out_keys="y", hidden_channels=[4, 6], hidden_units=hidden_units,
                               use_batch_norm_conv=True)
        check_block(spec, {"x": shape})

    def test_without_hidden_units_the_output_is_the_flat_conv_features(self) -> None:
        spec = ps.VGGConvDense(in_keys="x", out_keys="y", hidden_channels=[4, 6], hidden_units=[])
        assert ps.infer_shapes(spec, {"x": (2, 3, 8, 12)})["y"] == (2, 6 * 2 * 3)

    def test_seed_example_2_screen_branch(self) -> None:
        """The seed's Example 2 latent net: VGGConvDense(hidden_channels=[8, 16, 32], hidden_units=[32]) on the
        64x64 RGB screen, with and without a time axis (T=4)."""
        spec = ps.VGGConvDense(in_keys="observation_screen", out_keys="latent_screen", non_lin="torch.nn.ReLU",
                               hidden_channels=[8, 16, 32], hidden_units=[32], use_batch_norm_conv=False)
        for shape, out in (((3, 64, 64), (32,)), ((4, 3, 64, 64), (4, 32))):
            shapes = {"observation_screen": shape}
            assert ps.infer_shapes(spec, shapes)["latent_screen"] == out
            # 3 stages of two 3x3 convs, then 32 * 8 * 8 -> 32
            convs = (3 * 8 + 8 * 8 + 8 * 16 + 16 * 16 + 16 * 32 + 32 * 32) * 9 + 2 * (8 + 16 + 32)
            assert ps.count_parameters(spec, shapes) == convs + 32 * 8 * 8 * 32 + 32
            check_block(spec, shapes, batches=((), (2,)))

    def test_label(self) -> None:
        spec = ps.VGGConvDense(in_keys="x", out_keys="y", hidden_channels=[8, 16, 32], hidden_units=[32])
        assert "VGGConvDense 3→8→16→32 | 2048→32 relu" in ps.summary(spec, {"x": (3, 64, 64)})


class TestVGGConvGAP:
    @pytest.mark.parametrize("shape", [(3, 8, 8), (3, 4, 9), (2, 3, 8, 8)])
    @pytest.mark.parametrize("use_batch_norm", [False, True])
    def test_fold_matches_forward(self, shape: tuple[int, ...], use_batch_norm: bool) -> None:
        spec = ps.VGGConvGAP(in_keys="x", out_keys="y", hidden_channels=[4, 6], use_batch_norm_conv=use_batch_norm)
        check_block(spec, {"x": shape})

    def test_output_is_the_mean_over_height_and_width(self) -> None:
        spec = ps.VGGConvGAP(in_keys="x", out_keys="y", hidden_channels=[4, 6])
        conv = ps.VGGConv(in_keys="x", out_keys="y", hidden_channels=[4, 6])
        x = {"x": torch.randn(2, 5, 3, 8, 8)}
        with torch.no_grad():
            pooled = ps.materialize(spec, {"x": (5, 3, 8, 8)}, seed=1)(x)["y"]
            maps = ps.materialize(conv, {"x": (5, 3, 8, 8)}, seed=1)(x)["y"]
        assert pooled.shape == (2, 5, 6)
        torch.testing.assert_close(pooled, maps.mean((-2, -1)))


class TestFlattenDense:
    @pytest.mark.parametrize(("num_flatten_dims", "shape"), [(1, (6,)), (1, (2, 6)), (2, (3, 4)), (2, (5, 3, 4)),
                                                             (3, (2, 3, 4)), (3, (2, 2, 3, 4))])
    def test_fold_matches_forward(self, num_flatten_dims: int, shape: tuple[int, ...]) -> None:
        spec = ps.FlattenDense(in_keys="x", out_keys="y", num_flatten_dims=num_flatten_dims, hidden_units=[7, 5])
        module = check_block(spec, {"x": shape})
        assert ps.infer_shapes(spec, {"x": shape})["y"] == shape[:-num_flatten_dims] + (5,)
        assert ps.count_parameters(spec, {"x": shape}) == sum(p.numel() for p in module.parameters())

    def test_label(self) -> None:
        spec = ps.FlattenDense(in_keys="x", out_keys="y", num_flatten_dims=2, hidden_units=[7])
        assert "FlattenDense 12→7 relu" in ps.summary(spec, {"x": (3, 4)})


class TestStridedConv:
    @pytest.mark.parametrize("shape", [(3, 9, 9), (3, 4, 7), (2, 3, 9, 9), (2, 1, 3, 6, 5)])
    def test_fold_matches_forward_2d(self, shape: tuple[int, ...]) -> None:
        check_block(strided(hidden_strides=[2, 1], hidden_padding=[1, 0]), {"x": shape})

    @pytest.mark.parametrize("shape", [(3, 9), (2, 3, 9)])
    def test_fold_matches_forward_1d(self, shape: tuple[int, ...]) -> None:
        spec = strided(convolution_dimension=1, hidden_kernels=[3, (2,)], hidden_strides=[2, 1],
                       hidden_dilations=[1, 2], hidden_padding=[0, 1])
        check_block(spec, {"x": shape})

    @pytest.mark.parametrize("shape", [(2, 5, 6, 7), (3, 2, 5, 6, 7)])
    def test_fold_matches_forward_3d(self, shape: tuple[int, ...]) -> None:
        spec = strided(convolution_dimension=3, hidden_kernels=[(3, 2, 3), 2], hidden_strides=[(1, 2, 2), 1],
                       hidden_padding=[0, (1, 0, 1)])
        check_block(spec, {"x": shape})

    @pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
    def test_every_padding_mode(self, padding_mode: str) -> None:
        spec = strided(hidden_padding=[(2, 1), 1], hidden_dilations=[(1, 2), 1], padding_mode=padding_mode)
        check_block(spec, {"x": (2, 3, 5, 6)})

    def test_shape_arithmetic(self) -> None:
        # out = (in + 2p - d(k - 1) - 1) // s + 1, per spatial dim
        spec = strided(hidden_kernels=[(5, 3), 2], hidden_strides=[(2, 3), 1], hidden_dilations=[(1, 2), 1],
                       hidden_padding=[(0, 2), 0])
        h, w = (17 - 4 - 1) // 2 + 1, (11 + 4 - 4 - 1) // 3 + 1
        assert ps.infer_shapes(spec, {"x": (7, 3, 17, 11)})["y"] == (7, 6, h - 1, w - 1)

    def test_none_means_maze_defaults(self) -> None:
        """Maze's StridedConvolutionBlock (0.1.0 on): stride 1, dilation 1, padding 0 and 'zeros' (issue #16: padding
        1, as Maze's first commit had it, built a silently different network: 504,254 parameters for Maze's
        pixel-observation RNN config against Maze's 242,110)."""
        explicit = strided(hidden_strides=[1, 1], hidden_dilations=[1, 1], hidden_padding=[0, 0],
                           padding_mode="zeros")
        defaults = strided(hidden_strides=None, hidden_dilations=None, hidden_padding=None, padding_mode=None)
        assert defaults == strided()
        shapes = {"x": (3, 9, 9)}
        assert ps.infer_shapes(defaults, shapes)["y"] == ps.infer_shapes(explicit, shapes)["y"] == (6, 6, 6)
        x = {"x": torch.randn(2, 3, 9, 9)}
        with torch.no_grad():
            torch.testing.assert_close(ps.materialize(defaults, shapes, seed=3)(x)["y"],
                                       ps.materialize(explicit, shapes, seed=3)(x)["y"])

    @pytest.mark.parametrize("non_lin", ["identity", "tanh"])
    def test_non_lin(self, non_lin: str) -> None:
        check_block(strided(non_lin=non_lin), {"x": (3, 6, 6)})

    def test_zero_batch(self) -> None:
        check_block(strided(padding_mode="reflect"), {"x": (3, 6, 6)}, batches=((0,), (2, 0)))
        check_block(vgg(use_batch_norm=True), {"x": (3, 4, 4)}, batches=((0,),))

    def test_label(self) -> None:
        spec = strided(hidden_kernels=[(3, 5), 2], hidden_strides=[2, 1])
        assert "StridedConv 2D 3→4→6 k3x5,2 s2,1 relu" in ps.summary(spec, {"x": (3, 9, 9)})


class TestStridedConvDense:
    @pytest.mark.parametrize(("dims", "shape"), [(1, (3, 9)), (1, (2, 3, 9)), (2, (3, 7, 8)), (2, (2, 3, 7, 8)),
                                                 (3, (3, 5, 6, 7)), (3, (2, 3, 5, 6, 7))])
    @pytest.mark.parametrize("hidden_units", [[5], [5, 4], []])
    def test_fold_matches_forward(self, dims: int, shape: tuple[int, ...], hidden_units: list[int]) -> None:
        spec = strided_dense(convolution_dimension=dims, hidden_units=hidden_units, hidden_strides=[2, 1],
                             hidden_padding=[0, 0])
        check_block(spec, {"x": shape})

    @pytest.mark.parametrize(("dims", "shape", "flat"), [(1, (2, 3, 9), 6 * 3), (2, (2, 3, 7, 8), 6 * 2 * 2),
                                                         (3, (2, 3, 5, 6, 7), 6 * 1 * 1 * 2)])
    def test_flattens_channels_and_every_spatial_dim(self, dims: int, shape: tuple[int, ...], flat: int) -> None:
        spec = strided_dense(convolution_dimension=dims, hidden_units=[], hidden_strides=[2, 1],
                             hidden_padding=[0, 0])
        assert ps.infer_shapes(spec, {"x": shape})["y"] == (2, flat)
        spec = strided_dense(convolution_dimension=dims, hidden_units=[5], hidden_strides=[2, 1],
                             hidden_padding=[0, 0])
        conv = ps.count_parameters(strided(convolution_dimension=dims, hidden_strides=[2, 1], hidden_padding=[0, 0]),
                                   {"x": shape})
        assert ps.count_parameters(spec, {"x": shape}) == conv + flat * 5 + 5

    def test_label(self) -> None:
        spec = strided_dense(hidden_padding=[0, 0])
        assert "StridedConvDense 2D 3→4→6 k3,2 | 96→5 relu" in ps.summary(spec, {"x": (3, 7, 7)})


# --- against plain torch --------------------------------------------------------------------------------------------

def plain_vgg(c_in: int, channels: Sequence[int], batch_norm: bool) -> nn.Sequential:
    """Maze's VGG stack written out with torch layers, in the same order as the block's `conv` Sequential."""
    layers: list[nn.Module] = []
    for c in channels:
        for n_in in (c_in, c):
            layers += [nn.Conv2d(n_in, c, 3, padding=1), *([nn.BatchNorm2d(c)] if batch_norm else []), nn.ReLU()]
        layers.append(nn.MaxPool2d(2, 2))
        c_in = c
    return nn.Sequential(*layers)


class TestAgainstTorch:
    def test_vgg_batch_norm_train_and_eval(self) -> None:
        """BatchNorm uses batch statistics (over every leading dim, as Maze folds them into the batch) and updates
        its running statistics in train mode, and uses the running statistics in eval mode: in the generated
        forward, in the reference interpreter and in plain torch alike."""
        spec, shapes = vgg(use_batch_norm=True), {"x": (3, 3, 8, 8)}
        generated = ps.materialize(spec, shapes, seed=0)
        reference = ps.materialize(spec, shapes, seed=0)
        plain = plain_vgg(3, [4, 6], batch_norm=True)
        plain.load_state_dict(conv_layers(generated).state_dict())
        for module in (generated, reference, plain):
            module.train()
        for step in range(3):
            x = torch.randn(2, 3, 3, 8, 8, generator=torch.Generator().manual_seed(step))
            out = generated({"x": x})["y"]
            torch.testing.assert_close(out, run_reference(reference, {"x": x})["y"])
            torch.testing.assert_close(out, plain(x.reshape(6, 3, 8, 8)).reshape(2, 3, 6, 2, 2))
        for a, b in zip(conv_layers(generated).state_dict().values(), plain.state_dict().values()):
            torch.testing.assert_close(a, b)  # running statistics and batch counters moved the same way
        assert int(conv_layers(generated).state_dict()["1.num_batches_tracked"]) == 3
        for module in (generated, reference, plain):
            module.eval()
        x = torch.randn(3, 3, 8, 8)  # a batch of 2 stacked copies of one (3, 3, 8, 8) sample
        with torch.no_grad():
            out = generated({"x": torch.stack([x, x], 0)})["y"]
            torch.testing.assert_close(out[0], plain(x))
            torch.testing.assert_close(out[1], out[0])

    def test_vgg_batch_norm_state_dict_round_trip(self) -> None:
        spec, shapes = vgg(use_batch_norm=True), {"x": (3, 8, 8)}
        trained = ps.materialize(spec, shapes, seed=0)
        trained({"x": torch.randn(4, 3, 8, 8)})  # train mode: running statistics move
        fresh = ps.materialize(spec, shapes, seed=1)
        fresh.load_state_dict(trained.state_dict())
        trained.eval()
        fresh.eval()
        x = {"x": torch.randn(4, 3, 8, 8)}
        with torch.no_grad():
            torch.testing.assert_close(fresh(x)["y"], trained(x)["y"])

    @pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
    def test_strided_conv_2d(self, padding_mode: str) -> None:
        spec = strided(hidden_kernels=[(3, 2), 2], hidden_strides=[(2, 1), 1], hidden_dilations=[1, (2, 1)],
                       hidden_padding=[(1, 2), 0], padding_mode=padding_mode, non_lin="tanh")
        module = ps.materialize(spec, {"x": (3, 8, 7)}, seed=0)
        mode: Any = padding_mode  # torch annotates a Literal of the four names
        plain = nn.Sequential(
            nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 2), padding_mode=mode), nn.Tanh(),
            nn.Conv2d(4, 6, 2, dilation=(2, 1), padding_mode=mode), nn.Tanh())
        plain.load_state_dict(conv_layers(module).state_dict())
        x = torch.randn(2, 5, 3, 8, 7)
        with torch.no_grad():
            expected = plain(x.reshape(10, 3, 8, 7))
            assert expected.shape == (10, *ps.infer_shapes(spec, {"x": (3, 8, 7)})["y"]) == (10, 6, 2, 9)
            torch.testing.assert_close(module({"x": x})["y"], expected.reshape(2, 5, 6, 2, 9))

    def test_four_value_padding_is_mazes_zero_pad_before_the_convolution(self) -> None:
        """Maze's StridedConvolutionBlock turns a four-value padding (left, right, top, bottom) into a ZeroPad2d layer
        before the convolution (issue #16)."""
        spec = strided(hidden_padding=[1, [0, 1, 2, 0]])
        shapes = {"x": (3, 9, 9)}
        module = check_block(spec, shapes)
        plain = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.ZeroPad2d((0, 1, 2, 0)),
                              nn.Conv2d(4, 6, 2), nn.ReLU())
        plain.load_state_dict(conv_layers(module).state_dict())
        x = torch.randn(2, 3, 9, 9)
        with torch.no_grad():
            expected = plain(x)
            assert expected.shape[1:] == ps.infer_shapes(spec, shapes)["y"] == (6, 10, 9)
            torch.testing.assert_close(module({"x": x})["y"], expected)

    def test_four_value_padding_needs_2d_zeros(self) -> None:
        with pytest.raises(ps.SpecError, match=r"or \(with padding_mode 'zeros'\) four"):
            strided(hidden_padding=[1, [0, 1, 2, 0]], padding_mode="reflect")
        with pytest.raises(ps.SpecError, match="or a tuple of 1 "):
            strided(convolution_dimension=1, hidden_padding=[1, [0, 1, 2, 0]])

    @pytest.mark.parametrize("dims", [1, 3])
    def test_strided_conv_1d_and_3d(self, dims: int) -> None:
        spec = strided(convolution_dimension=dims, hidden_strides=[2, 1], hidden_padding=[1, 1], padding_mode="replicate")
        shape = (3,) + (6,) * dims
        module = ps.materialize(spec, {"x": shape}, seed=0)
        conv = {1: nn.Conv1d, 3: nn.Conv3d}[dims]
        plain = nn.Sequential(conv(3, 4, 3, stride=2, padding=1, padding_mode="replicate"), nn.ReLU(),
                              conv(4, 6, 2, padding=1, padding_mode="replicate"), nn.ReLU())
        plain.load_state_dict(conv_layers(module).state_dict())
        x = torch.randn(4, *shape)
        with torch.no_grad():
            torch.testing.assert_close(module({"x": x})["y"], plain(x))

    def test_strided_conv_dense_is_conv_flatten_dense(self) -> None:
        spec = strided_dense(convolution_dimension=1, hidden_units=[5, 3], hidden_padding=[0, 0])
        module = ps.materialize(spec, {"x": (3, 9)}, seed=0)
        block = module.block_module("y")
        x = torch.randn(2, 4, 3, 9)
        with torch.no_grad():
            conv = conv_layers(module)(x.reshape(8, 3, 9)).reshape(2, 4, 6, 6)
            torch.testing.assert_close(module({"x": x})["y"], block.get_submodule("dense")(conv.flatten(-2)))

    def test_torch_default_init_matches_torch_conv(self) -> None:
        torch.manual_seed(0)
        module = ps.materialize(strided(hidden_channels=[4], hidden_kernels=[3]), {"x": (3, 8, 8)})
        torch.manual_seed(0)
        plain = nn.Conv2d(3, 4, 3)
        ours = conv_layers(module)[0]
        assert isinstance(ours, nn.Conv2d)
        torch.testing.assert_close(ours.weight, plain.weight)
        torch.testing.assert_close(ours.bias, plain.bias)

    def test_init_applies_to_conv_and_dense_weights(self) -> None:
        spec = ps.VGGConvDense(in_keys="x", out_keys="y", hidden_channels=[4], hidden_units=[5],
                               use_batch_norm_conv=True, init=ps.Orthogonal(gain=2.0))
        module = ps.materialize(spec, {"x": (3, 4, 4)}, seed=0)
        for name, p in module.named_parameters():
            if name.endswith("bias") and ".conv.1." not in name:  # batch norm keeps torch's ones / zeros
                assert torch.count_nonzero(p) == 0, name
        first = conv_layers(module)[0]
        assert isinstance(first, nn.Conv2d)
        rows = first.weight.detach().reshape(4, -1)
        torch.testing.assert_close(rows @ rows.T, 4.0 * torch.eye(4))

    def test_seeded_weights_are_reproducible(self) -> None:
        spec, shapes = strided_dense(), {"x": (3, 7, 7)}
        a = ps.materialize(spec, shapes, seed=5).state_dict()
        b = ps.materialize(spec, shapes, seed=5).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)

    def test_generated_forward_calls_the_block_module(self) -> None:
        """Issue #13: the block's module is its one definition; the generated forward only calls it."""
        code = ps.materialize(vgg(use_batch_norm=True), {"x": (3, 8, 8)}).code
        assert "y = _call(_b['y'], x)" in code and "conv2d" not in code


# --- spec values --------------------------------------------------------------------------------------------------

class TestSpecValues:
    def test_lists_become_tuples_and_specs_round_trip(self) -> None:
        spec = strided_dense(hidden_kernels=[[3, 2], 2], hidden_strides=[(2, 1), 1], hidden_padding=[0, [1, 0]],
                             padding_mode="circular")
        assert spec.hidden_kernels == ((3, 2), 2)
        assert spec.hidden_padding == (0, (1, 0))
        for s in (spec, vgg(use_batch_norm=True), ps.FlattenDense(in_keys="x", out_keys="y", num_flatten_dims=2,
                                                                  hidden_units=[3])):
            assert ps.from_dict(ps.to_dict(s)) == s
            assert ps.from_yaml(ps.to_yaml(s)) == s
            assert hash(ps.from_dict(ps.to_dict(s))) == hash(s)


@pytest.mark.parametrize(("make", "match"), [
    (lambda: vgg(hidden_channels=[]), r"VGGConv\(out_keys='y'\): field 'hidden_channels': expected one or more"),
    (lambda: vgg(hidden_channels=[4, 0]), r"field 'hidden_channels': expected one or more positive ints, got \[4, 0\]"),
    (lambda: vgg(non_lin="swish"), r"field 'non_lin': expected one of relu"),
    (lambda: vgg(use_batch_norm="yes"), r"field 'use_batch_norm': expected bool, got 'yes'"),
    (lambda: ps.VGGConv(in_keys=["a", "b"], out_keys="y", hidden_channels=[4]), r"field 'in_keys': VGGConv takes 1"),
    (lambda: ps.VGGConvDense(in_keys="x", out_keys="y", hidden_channels=[4], hidden_units=[-1]),
     r"VGGConvDense\(out_keys='y'\): field 'hidden_units': expected zero or more positive ints, got \[-1\]"),
    (lambda: ps.VGGConvDense(in_keys="x", out_keys="y", hidden_channels=[], hidden_units=[3]),
     r"field 'hidden_channels': expected one or more"),
    (lambda: ps.VGGConvGAP(in_keys="x", out_keys="y", hidden_channels=[-2]),
     r"VGGConvGAP\(out_keys='y'\): field 'hidden_channels'"),
    (lambda: ps.FlattenDense(in_keys="x", out_keys="y", num_flatten_dims=0, hidden_units=[3]),
     r"FlattenDense\(out_keys='y'\): field 'num_flatten_dims': expected a positive int, got 0"),
    (lambda: ps.FlattenDense(in_keys="x", out_keys="y", num_flatten_dims=2, hidden_units=[]),
     r"field 'hidden_units': expected one or more positive ints, got \[\]"),
    (lambda: strided(hidden_channels=[4, -6]), r"StridedConv\(out_keys='y'\): field 'hidden_channels'"),
    (lambda: strided(hidden_kernels=[3]),
     r"field 'hidden_kernels': expected one entry per layer \(2, as in hidden_channels\), got 1: \[3\]"),
    (lambda: strided(hidden_strides=[1]), r"field 'hidden_strides': expected one entry per layer \(2"),
    (lambda: strided(hidden_dilations=[1, 1, 1]), r"field 'hidden_dilations': expected one entry per layer \(2"),
    (lambda: strided(hidden_padding=[0]), r"field 'hidden_padding': expected one entry per layer \(2"),
    (lambda: strided(hidden_kernels=[0, 3]), r"field 'hidden_kernels': expected each entry to be a positive int"),
    (lambda: strided(hidden_kernels=[(3, 3, 3), 3]), r"or a tuple of 2 \(one per spatial dim\), got \(3, 3, 3\)"),
    (lambda: strided(hidden_kernels=[True, 3]), r"field 'hidden_kernels': expected Sequence\[int \| Sequence\[int\]\], got \[True, 3\]"),
    (lambda: strided(hidden_kernels=["3", 3]), r"field 'hidden_kernels': expected Sequence\[int \| Sequence\[int\]\]"),
    (lambda: strided(hidden_strides=[1, (0, 1)]), r"field 'hidden_strides': expected each entry to be a positive"),
    (lambda: strided(hidden_dilations=[0, 1]), r"field 'hidden_dilations': expected each entry to be a positive"),
    (lambda: strided(hidden_padding=[-1, 0]), r"field 'hidden_padding': expected each entry to be an int >= 0"),
    (lambda: strided(convolution_dimension=4), r"field 'convolution_dimension': expected 1, 2 or 3, got 4"),
    (lambda: strided(convolution_dimension=1, hidden_kernels=[(3, 3), 2]), r"or a tuple of 1 \(one per spatial"),
    (lambda: strided(padding_mode="same"), r"field 'padding_mode': expected one of zeros, reflect, .*, got 'same'"),
    (lambda: strided_dense(hidden_units=[0]), r"StridedConvDense\(out_keys='y'\): field 'hidden_units'"),
    (lambda: strided_dense(padding_mode="mirror"), r"StridedConvDense\(out_keys='y'\): field 'padding_mode'"),
])
def test_invalid_field(make: Any, match: str) -> None:
    with pytest.raises(ps.SpecError, match=match):
        make()


@pytest.mark.parametrize(("spec", "shape", "match"), [
    (vgg(), (8, 8), r"block 'y' \(VGGConv\), key 'x': expected a shape \(\.\.\., channels, height, width\) with "
                    r"at least 3 dim\(s\), got \(8, 8\)"),
    (vgg(hidden_channels=[4, 4, 4]), (3, 7, 64),
     r"block 'y' \(VGGConv\), key 'x': expected .* height and width of at least 8 \(each of the 3 VGG stage\(s\) "
     r"halves them with a 2x2 max-pool\), got \(3, 7, 64\)"),
    (ps.VGGConvDense(in_keys="x", out_keys="y", hidden_channels=[4, 4], hidden_units=[3]), (2, 3, 3, 8),
     r"block 'y' \(VGGConvDense\), key 'x': expected .* at least 4 .*, got \(2, 3, 3, 8\)"),
    (ps.VGGConvGAP(in_keys="x", out_keys="y", hidden_channels=[4]), (3, 1),
     r"block 'y' \(VGGConvGAP\), key 'x': expected a shape .* at least 3 dim\(s\), got \(3, 1\)"),
    (ps.FlattenDense(in_keys="x", out_keys="y", num_flatten_dims=3, hidden_units=[3]), (4, 5),
     r"block 'y' \(FlattenDense\), key 'x': expected a shape \(\.\.\., d1, d2, d3\) with at least 3 dim\(s\), "
     r"got \(4, 5\)"),
    (strided(), (9, 9), r"block 'y' \(StridedConv\), key 'x': expected a shape \(\.\.\., channels, height, width\)"),
    (strided(convolution_dimension=1), (9,), r"expected a shape \(\.\.\., channels, length\) with at least 2"),
    (strided(convolution_dimension=3, hidden_kernels=[1, 1]), (3, 9, 9),
     r"expected a shape \(\.\.\., channels, depth, height, width\) with at least 4 dim\(s\), got \(3, 9, 9\)"),
    (strided(hidden_padding=[0, 0], hidden_kernels=[3, 3]), (3, 4, 9),
     r"block 'y' \(StridedConv\), key 'x': expected .* large enough for every layer; conv layer 2 of 2 gets "
     r"spatial dims \(2, 7\), where the kernel spans 3 \(kernel 3, dilation 1\) but the padded dim is only 2 "
     r"\(size 2, padding 0 per side\), got \(3, 4, 9\)"),
    (strided(hidden_padding=[0, 0], hidden_dilations=[3, 1]), (3, 6, 9),
     r"conv layer 1 of 2 gets spatial dims \(6, 9\), where the kernel spans 7 \(kernel 3, dilation 3\)"),
    (strided(hidden_padding=[1, 1], padding_mode="reflect"), (3, 1, 9),
     r"conv layer 1 of 2 gets spatial dims \(1, 9\), where padding_mode 'reflect' needs padding < size but pads 1 "
     r"on a dim of size 1"),
    (strided(hidden_padding=[0, 3], hidden_strides=[3, 1], padding_mode="circular"), (3, 6, 6),
     r"conv layer 2 of 2 gets spatial dims \(2, 2\), where padding_mode 'circular' needs padding <= size but pads 3"),
    (strided_dense(hidden_padding=[0, 0]), (3, 3, 2),
     r"block 'y' \(StridedConvDense\), key 'x': expected .* conv layer 1 of 2 gets spatial dims \(3, 2\)"),
])
def test_shape_mismatch(spec: ps.Block, shape: tuple[int, ...], match: str) -> None:
    with pytest.raises(ps.ShapeError, match=match):
        ps.infer_shapes(spec, {"x": shape})


def test_vgg_conv_gap_takes_mazes_field_name() -> None:
    """Maze's VGGConvolutionGAPBlock takes `use_batch_norm_conv` (issue #16); the old name gets a suggestion."""
    spec = ps.VGGConvGAP(in_keys="x", out_keys="y", hidden_channels=[4], use_batch_norm_conv=True)
    # one stage: two 3x3 convolutions (3 -> 4, 4 -> 4), each followed by a BatchNorm2d (weight and bias)
    assert ps.count_parameters(spec, {"x": (3, 8, 8)}) == (3 * 4 * 9 + 4) + 2 * 4 + (4 * 4 * 9 + 4) + 2 * 4
    with pytest.raises(ps.SpecError, match=r"unknown field 'use_batch_norm' \(did you mean 'use_batch_norm_conv'\?\)"):
        ps.from_dict({"type": "VGGConvGAP", "in_keys": ["x"], "out_keys": ["y"], "hidden_channels": [4],
                      "use_batch_norm": True})
