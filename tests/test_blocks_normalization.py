"""Tests of LayerNorm and Dense's layer_norm option (issue #17): folds against real forward passes, against
torch.nn.LayerNorm, Maze's default Dense unchanged, and the errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import perceptspec as ps
from tests.blockcheck import check_block


def randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


class TestLayerNorm:
    @pytest.mark.parametrize(("shape", "n", "affine", "bias"), [
        ((5,), 1, True, True), ((3, 4), 2, True, False), ((3, 4), 1, False, True), ((2, 3, 4), 2, True, True)])
    def test_check_block(self, shape: tuple[int, ...], n: int, affine: bool, bias: bool) -> None:
        check_block(ps.LayerNorm(in_keys="x", out_keys="y", num_normalized_dims=n, elementwise_affine=affine,
                                 bias=bias), {"x": shape})

    def test_against_torch(self) -> None:
        spec = ps.LayerNorm(in_keys="x", out_keys="y", num_normalized_dims=2, eps=1e-3)
        module = ps.materialize(spec, {"x": (3, 4)}, seed=0)
        reference = nn.LayerNorm((3, 4), eps=1e-3)
        x = randn(2, 5, 3, 4)  # two leading dims: batch and time
        torch.testing.assert_close(module({"x": x})["y"], reference(x))
        assert ps.count_parameters(spec, {"x": (3, 4)}) == 24
        assert "LayerNorm 3×4" in ps.summary(spec, {"x": (3, 4)})

    def test_errors(self) -> None:
        with pytest.raises(ps.SpecError, match=r"field 'num_normalized_dims': expected a positive int, got 0"):
            ps.LayerNorm(in_keys="x", out_keys="y", num_normalized_dims=0)
        with pytest.raises(ps.SpecError, match=r"field 'eps': expected a positive float, got 0.0"):
            ps.LayerNorm(in_keys="x", out_keys="y", eps=0)
        with pytest.raises(ps.ShapeError, match=r"block 'y' \(LayerNorm\), key 'x': expected a shape with at least "
                                                r"2 dim\(s\) to normalise \(num_normalized_dims=2\), got \(4,\)"):
            ps.infer_shapes(ps.LayerNorm(in_keys="x", out_keys="y", num_normalized_dims=2), {"x": (4,)})


class TestDenseLayerNorm:
    def test_default_is_mazes_dense(self) -> None:
        """The default (layer_norm=False) keeps Maze's DenseBlock layers and state_dict keys exactly."""
        spec = ps.Dense(in_keys="x", out_keys="y", hidden_units=[8, 4])
        module = ps.materialize(spec, {"x": (3,)}, seed=0)
        assert list(module.state_dict()) == ["blocks.y.0.weight", "blocks.y.0.bias", "blocks.y.2.weight",
                                             "blocks.y.2.bias"]
        assert spec == ps.Dense(in_keys="x", out_keys="y", hidden_units=[8, 4], layer_norm=False)
        assert "layer_norm" not in ps.to_yaml(spec)

    def test_linear_then_layer_norm_then_activation(self) -> None:
        spec = ps.Dense(in_keys="x", out_keys="y", hidden_units=[8, 4], non_lin="tanh", layer_norm=True)
        check_block(spec, {"x": (3,)})
        check_block(spec, {"x": (2, 3)})
        module = ps.materialize(spec, {"x": (3,)}, seed=0)
        layers = list(module.block_module("y").children())
        assert [type(m) for m in layers] == [nn.Linear, nn.LayerNorm, nn.Tanh] * 2
        x = randn(5, 3)
        expected = x
        for linear, norm, act in zip(layers[::3], layers[1::3], layers[2::3]):
            expected = act(norm(linear(expected)))
        torch.testing.assert_close(module({"x": x})["y"], expected)
        assert ps.count_parameters(spec, {"x": (3,)}) == (3 * 8 + 8) + (8 * 4 + 4) + 2 * (8 + 4)
        assert "Dense 3→8→4 layer_norm tanh" in ps.summary(spec, {"x": (3,)})
        assert ps.from_yaml(ps.to_yaml(spec)) == spec
