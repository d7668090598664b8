"""Tests of initialisation as part of the spec: weight initialisers (NormC, Orthogonal, XavierUniform,
TorchDefault), which initialiser a block gets (its own, its graph's, the default), and head biases."""

from __future__ import annotations

import math

import pytest
import torch

import perceptspec as ps
from perceptspec._torch import SpecModule


def linear_layers(module: SpecModule) -> dict[str, torch.nn.Linear]:
    return {name: m for name, m in module.named_modules() if isinstance(m, torch.nn.Linear)}


def weights_and_biases(module: SpecModule) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    return [(name, layer.weight.detach(), layer.bias.detach()) for name, layer in linear_layers(module).items()]


def dense_and_head(init: ps.Initializer) -> ps.Graph:
    """Two Dense layers (16 -> 32 -> 8, so one widening and one narrowing layer) and a head 8 -> 4."""
    return ps.Graph([ps.Dense(in_keys="obs", out_keys="h", hidden_units=[32, 8], init=init),
                     ps.LinearOutput(in_keys="h", out_keys="y", output_units=4, init=init)], out_keys="y")


def row_norms(weight: torch.Tensor) -> torch.Tensor:
    norms: torch.Tensor = torch.linalg.vector_norm(weight.reshape(weight.shape[0], -1), dim=1)
    return norms


def is_normc(weight: torch.Tensor, bias: torch.Tensor, std: float) -> bool:
    return torch.allclose(row_norms(weight), torch.full((weight.shape[0],), std), rtol=1e-5, atol=0) and \
        bool((bias == 0).all())


def is_orthogonal(weight: torch.Tensor, bias: torch.Tensor, gain: float) -> bool:
    out, inp = weight.shape
    gram = weight @ weight.T if out <= inp else weight.T @ weight
    return torch.allclose(gram, gain ** 2 * torch.eye(min(out, inp)), atol=1e-5 * max(1.0, gain ** 2)) and \
        bool((bias == 0).all())


class TestNormC:
    @pytest.mark.parametrize("std", [1e-3, 0.01, 1.0, 3.0])
    def test_rows_have_norm_std_and_biases_are_zero(self, std: float) -> None:
        module = ps.materialize(dense_and_head(ps.NormC(std=std)), {"obs": (16,)}, seed=0)
        layers = weights_and_biases(module)
        assert len(layers) == 3
        for name, weight, bias in layers:
            torch.testing.assert_close(row_norms(weight), torch.full((weight.shape[0],), std), rtol=1e-5, atol=0,
                                       msg=name)
            assert (bias == 0).all(), name

    def test_default_std_is_one(self) -> None:
        module = ps.materialize(ps.LinearOutput(in_keys="obs", out_keys="y", output_units=5, init=ps.NormC()),
                                {"obs": (3,)}, seed=0)
        torch.testing.assert_close(row_norms(module.state_dict()["blocks.y.weight"]), torch.ones(5))

    def test_conv_kernels_are_normalised_over_input_channels_as_in_maze(self) -> None:
        """Maze's normc scales over dim 1 only: for a conv, each output channel's input channels at each kernel
        position have norm std, so a 1-channel 3x3 kernel is all +-std, not one row of norm std (issue #16)."""
        conv = ps.StridedConv(in_keys="obs", out_keys="h", hidden_channels=[4, 2], hidden_kernels=[3, 3],
                              hidden_strides=[1, 1], hidden_padding=[0, 0], non_lin="relu", init=ps.NormC(std=0.5))
        module = ps.materialize(conv, {"obs": (1, 8, 8)}, seed=0)
        first, second = [w for name, w in module.state_dict().items() if name.endswith("weight")]
        torch.testing.assert_close(first.abs(), torch.full((4, 1, 3, 3), 0.5))
        torch.testing.assert_close(second.norm(dim=1), torch.full((2, 3, 3), 0.5))

    def test_rows_are_random(self) -> None:
        module = ps.materialize(ps.LinearOutput(in_keys="obs", out_keys="y", output_units=5, init=ps.NormC(std=1.0)),
                                {"obs": (6,)}, seed=0)
        weight = module.state_dict()["blocks.y.weight"]
        assert torch.unique(weight).numel() == weight.numel()
        assert (weight > 0).any() and (weight < 0).any()


class TestOrthogonal:
    @pytest.mark.parametrize("gain", [0.01, 1.0, math.sqrt(2)])
    def test_orthonormal_rows_times_gain(self, gain: float) -> None:
        # every layer has out <= in: 16 -> 8 -> 4, head 4 -> 2
        spec = ps.Graph([ps.Dense(in_keys="obs", out_keys="h", hidden_units=[8, 4], init=ps.Orthogonal(gain=gain)),
                         ps.LinearOutput(in_keys="h", out_keys="y", output_units=2, init=ps.Orthogonal(gain=gain))],
                        out_keys="y")
        module = ps.materialize(spec, {"obs": (16,)}, seed=0)
        layers = weights_and_biases(module)
        assert len(layers) == 3
        for name, weight, bias in layers:
            out = weight.shape[0]
            assert weight.shape[0] <= weight.shape[1]
            torch.testing.assert_close(weight @ weight.T, gain ** 2 * torch.eye(out), atol=1e-5 * max(1, gain ** 2),
                                       rtol=0, msg=name)
            assert (bias == 0).all(), name

    def test_wide_layer_has_orthonormal_columns(self) -> None:
        module = ps.materialize(ps.LinearOutput(in_keys="obs", out_keys="y", output_units=12,
                                                init=ps.Orthogonal(gain=2.0)), {"obs": (5,)}, seed=0)
        weight = module.state_dict()["blocks.y.weight"]
        torch.testing.assert_close(weight.T @ weight, 4.0 * torch.eye(5), atol=1e-5, rtol=0)


class TestXavierUniform:
    @pytest.mark.parametrize("gain", [1.0, 0.5, 2.0])
    def test_bounds(self, gain: float) -> None:
        module = ps.materialize(dense_and_head(ps.XavierUniform(gain=gain)), {"obs": (16,)}, seed=0)
        for name, weight, bias in weights_and_biases(module):
            fan_out, fan_in = weight.shape
            bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
            assert weight.abs().max() <= bound, name
            assert weight.abs().max() > 0.7 * bound, name  # uniform over the whole range, not a narrower one
            assert (bias == 0).all(), name

    def test_variance(self) -> None:
        module = ps.materialize(ps.LinearOutput(in_keys="obs", out_keys="y", output_units=200,
                                                init=ps.XavierUniform()), {"obs": (300,)}, seed=0)
        weight = module.state_dict()["blocks.y.weight"]
        expected_std = math.sqrt(2.0 / (200 + 300))  # Var = bound^2 / 3 = 2 / (fan_in + fan_out)
        assert abs(weight.std().item() - expected_std) < 0.02 * expected_std
        assert abs(weight.mean().item()) < 0.01 * expected_std * 10


class TestTorchDefault:
    def test_bounds_like_nn_linear(self) -> None:
        module = ps.materialize(dense_and_head(ps.TorchDefault()), {"obs": (16,)}, seed=0)
        for name, weight, bias in weights_and_biases(module):
            bound = 1 / math.sqrt(weight.shape[1])
            assert weight.abs().max() <= bound, name
            assert bias.abs().max() <= bound, name
            assert weight.abs().max() > 0.7 * bound, name
            assert (bias != 0).all(), name

    def test_is_the_default(self) -> None:
        spec = ps.Graph([ps.Dense(in_keys="obs", out_keys="h", hidden_units=[32, 8]),
                         ps.LinearOutput(in_keys="h", out_keys="y", output_units=4)], out_keys="y")
        explicit = ps.materialize(dense_and_head(ps.TorchDefault()), {"obs": (16,)}, seed=3).state_dict()
        implicit = ps.materialize(spec, {"obs": (16,)}, seed=3).state_dict()
        assert list(explicit) == list(implicit)
        for key in explicit:
            assert torch.equal(explicit[key], implicit[key]), key

    def test_same_distribution_as_nn_linear(self) -> None:
        module = ps.materialize(ps.LinearOutput(in_keys="obs", out_keys="y", output_units=200), {"obs": (300,)},
                                seed=0)
        torch.manual_seed(0)
        reference = torch.nn.Linear(300, 200)
        ours = module.state_dict()["blocks.y.weight"]
        assert abs(ours.std().item() - reference.weight.std().item()) < 0.02 * reference.weight.std().item()


class TestWhichInit:
    def test_graph_init_applies_to_blocks_without_their_own(self) -> None:
        spec = ps.Graph({
            "body": ps.Dense(in_keys="obs", out_keys="h", hidden_units=[8]),
            "head": ps.LinearOutput(in_keys="h", out_keys="y", output_units=3, init=ps.Orthogonal(gain=2.0)),
        }, out_keys="y", init=ps.NormC(std=0.5))
        layers = linear_layers(ps.materialize(spec, {"obs": (10,)}, seed=0))
        body, head = layers["blocks.body.0"], layers["blocks.head"]
        assert is_normc(body.weight.detach(), body.bias.detach(), 0.5)
        assert is_orthogonal(head.weight.detach(), head.bias.detach(), 2.0)
        assert not is_normc(head.weight.detach(), head.bias.detach(), 0.5)

    def test_nested_graphs(self) -> None:
        """Outer init reaches into a nested graph without its own; a nested graph's init wins over the outer one
        for its blocks; a block's own init wins over both."""
        inherits = ps.Graph({"d": ps.Dense(in_keys="obs", out_keys="a", hidden_units=[6])}, out_keys="a")
        overrides = ps.Graph({
            "d": ps.Dense(in_keys="obs", out_keys="b", hidden_units=[6]),
            "own": ps.Dense(in_keys="b", out_keys="c", hidden_units=[4], init=ps.NormC(std=3.0)),
        }, out_keys="c", init=ps.Orthogonal(gain=0.5))
        spec = ps.Graph({"inherits": inherits, "overrides": overrides,
                         "top": ps.LinearOutput(in_keys="a", out_keys="y", output_units=2)},
                        out_keys=["y", "c"], init=ps.NormC(std=0.25))
        layers = linear_layers(ps.materialize(spec, {"obs": (10,)}, seed=0))
        assert set(layers) == {"blocks.inherits.d.0", "blocks.overrides.d.0", "blocks.overrides.own.0",
                               "blocks.top"}

        def wb(name: str) -> tuple[torch.Tensor, torch.Tensor]:
            return layers[name].weight.detach(), layers[name].bias.detach()

        assert is_normc(*wb("blocks.inherits.d.0"), 0.25)
        assert is_normc(*wb("blocks.top"), 0.25)
        assert is_orthogonal(*wb("blocks.overrides.d.0"), 0.5)
        assert is_normc(*wb("blocks.overrides.own.0"), 3.0)

    def test_bare_block_init(self) -> None:
        module = ps.materialize(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[5, 5], init=ps.NormC(std=0.1)),
                                {"obs": (7,)}, seed=0)
        for name, weight, bias in weights_and_biases(module):
            assert is_normc(weight, bias, 0.1), name


PROBS = [0.1, 0.2, 0.3, 0.4]


class TestHeadBias:
    def test_categorical_bias_tiny_weights(self) -> None:
        head = ps.LinearOutput(in_keys="obs", out_keys="logits", output_units=4, init=ps.NormC(std=1e-8),
                               bias=ps.CategoricalBias(probs=PROBS))
        module = ps.materialize(head, {"obs": (6,)}, seed=0)
        logits = module({"obs": torch.randn(10, 6)})["logits"]
        torch.testing.assert_close(torch.softmax(logits, dim=-1), torch.tensor(PROBS).expand(10, 4))

    def test_categorical_bias_zero_input(self) -> None:
        head = ps.LinearOutput(in_keys="obs", out_keys="logits", output_units=4, bias=ps.CategoricalBias(probs=PROBS))
        module = ps.materialize(head, {"obs": (6,)}, seed=0)
        logits = module({"obs": torch.zeros(6)})["logits"]
        torch.testing.assert_close(torch.softmax(logits, dim=-1), torch.tensor(PROBS))
        # the weights keep their own initialisation
        assert (module.state_dict()["blocks.logits.weight"] != 0).all()

    def test_categorical_bias_wins_over_graph_init(self) -> None:
        spec = ps.Graph([ps.Dense(in_keys="obs", out_keys="h", hidden_units=[8]),
                         ps.LinearOutput(in_keys="h", out_keys="logits", output_units=4,
                                         bias=ps.CategoricalBias(probs=PROBS))],
                        out_keys="logits", init=ps.NormC(std=1e-8))
        module = ps.materialize(spec, {"obs": (5,)}, seed=0)
        logits = module({"obs": torch.randn(3, 5)})["logits"]
        torch.testing.assert_close(torch.softmax(logits, dim=-1), torch.tensor(PROBS).expand(3, 4))

    @pytest.mark.parametrize("p", [0.5, 0.05, 0.9])
    def test_bernoulli_bias_scalar(self, p: float) -> None:
        head = ps.LinearOutput(in_keys="obs", out_keys="logits", output_units=3, init=ps.NormC(std=1e-8),
                               bias=ps.BernoulliBias(p=p))
        module = ps.materialize(head, {"obs": (6,)}, seed=0)
        logits = module({"obs": torch.randn(10, 6)})["logits"]
        torch.testing.assert_close(torch.sigmoid(logits), torch.full((10, 3), p))

    def test_bernoulli_bias_per_unit(self) -> None:
        p = [0.1, 0.5, 0.75, 0.99]
        head = ps.LinearOutput(in_keys="obs", out_keys="logits", output_units=4, init=ps.NormC(std=1e-8),
                               bias=ps.BernoulliBias(p=p))
        module = ps.materialize(head, {"obs": (6,)}, seed=0)
        logits = module({"obs": torch.randn(10, 6)})["logits"]
        torch.testing.assert_close(torch.sigmoid(logits), torch.tensor(p).expand(10, 4))

    @pytest.mark.parametrize("value", [0.0, -1.5, 2.0])
    def test_constant_bias(self, value: float) -> None:
        head = ps.LinearOutput(in_keys="obs", out_keys="y", output_units=5, init=ps.NormC(std=0.01),
                               bias=ps.ConstantBias(value=value))
        module = ps.materialize(head, {"obs": (6,)}, seed=0)
        sd = module.state_dict()
        assert torch.equal(sd["blocks.y.bias"], torch.full((5,), value))
        torch.testing.assert_close(row_norms(sd["blocks.y.weight"]), torch.full((5,), 0.01))
        out = module({"obs": torch.zeros(2, 6)})["y"]
        assert torch.equal(out, torch.full((2, 5), value))

    def test_constant_bias_with_torch_default_weights(self) -> None:
        head = ps.LinearOutput(in_keys="obs", out_keys="y", output_units=5, bias=ps.ConstantBias(value=0.3))
        sd = ps.materialize(head, {"obs": (9,)}, seed=0).state_dict()
        assert torch.equal(sd["blocks.y.bias"], torch.full((5,), 0.3))
        assert sd["blocks.y.weight"].abs().max() <= 1 / 3

    def test_head_bias_after_double(self) -> None:
        head = ps.LinearOutput(in_keys="obs", out_keys="logits", output_units=4, bias=ps.CategoricalBias(probs=PROBS))
        module = ps.materialize(head, {"obs": (6,)}, seed=0).double()
        logits = module({"obs": torch.zeros(6, dtype=torch.float64)})["logits"]
        torch.testing.assert_close(torch.softmax(logits, dim=-1), torch.tensor(PROBS, dtype=torch.float64),
                                   rtol=1e-6, atol=1e-7)
