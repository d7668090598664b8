"""The pure folds against a real forward pass: for every rule, the fold agrees with what torch computes.

`infer_shapes` is checked against the output shapes of the materialized module (and, key by key, against each
block's eager module run on real tensors), `count_parameters` against `sum(p.numel())`, and `summary` against both.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import pytest
import torch

import perceptspec as ps
from perceptspec._fold import lower
from perceptspec._torch._walk import every_key

Shape = tuple[int, ...]


def policy_and_value() -> ps.Graph:
    return ps.Graph({
        "body": ps.Dense(in_keys="obs", out_keys="hidden", hidden_units=[16, 32], non_lin="tanh"),
        "policy": ps.LinearOutput(in_keys="hidden", out_keys="logits", output_units=3,
                                  bias=ps.CategoricalBias(probs=[0.2, 0.3, 0.5])),
        "value": ps.LinearOutput(in_keys="hidden", out_keys="value", output_units=1),
    }, out_keys=["logits", "value"], init=ps.NormC(std=1.0))


def two_inputs() -> ps.Graph:
    return ps.Graph({
        "screen": ps.Dense(in_keys="screen", out_keys="screen_hidden", hidden_units=[12], non_lin="elu"),
        "goal": ps.Dense(in_keys="goal", out_keys="goal_hidden", hidden_units=[5, 7]),
        "move": ps.LinearOutput(in_keys="screen_hidden", out_keys="move", output_units=4,
                                bias=ps.BernoulliBias(p=[0.1, 0.2, 0.3, 0.4])),
        "target": ps.LinearOutput(in_keys="goal_hidden", out_keys="target", output_units=2,
                                  init=ps.Orthogonal(gain=0.01)),
    }, out_keys=["move", "target", "goal_hidden"])


def shared_latent() -> ps.Graph:
    latent = ps.Graph({
        "embed": ps.Dense(in_keys="obs", out_keys="embedding", hidden_units=[10], non_lin="gelu"),
        "proj": ps.Dense(in_keys="embedding", out_keys="latent", hidden_units=[6], init=ps.XavierUniform()),
    }, out_keys="latent", init=ps.Orthogonal(gain=1.4))
    return ps.Graph({
        "shared": latent,
        "policy": ps.LinearOutput(in_keys="latent", out_keys="logits", output_units=2),
        "value": ps.LinearOutput(in_keys="latent", out_keys="value", output_units=1, bias=ps.ConstantBias(value=3)),
    }, out_keys=["logits", "value", "latent"])


def doubly_nested() -> ps.Graph:
    inner = ps.Graph({"a": ps.Dense(in_keys="obs", out_keys="hid", hidden_units=[9, 3], non_lin="sigmoid")},
                     out_keys="hid")
    middle = ps.Graph({"inner": inner, "b": ps.Dense(in_keys="hid", out_keys="mid", hidden_units=[5],
                                                     non_lin="leaky_relu")}, out_keys="mid")
    return ps.Graph({"middle": middle, "head": ps.LinearOutput(in_keys="mid", out_keys="out", output_units=2)},
                    out_keys="out", init=ps.NormC(std=0.3))


SPECS = [
    pytest.param(ps.Dense(in_keys="obs", out_keys="hidden", hidden_units=[8]), id="Dense"),
    pytest.param(ps.Dense(in_keys="obs", out_keys="hidden", hidden_units=[8, 6, 5], non_lin="identity"),
                 id="Dense-deep"),
    pytest.param(ps.Dense(in_keys="obs", out_keys="hidden", hidden_units=[1]), id="Dense-one-unit"),
    pytest.param(ps.LinearOutput(in_keys="obs", out_keys="logits", output_units=3), id="LinearOutput"),
    pytest.param(ps.LinearOutput(in_keys="obs", out_keys="logits", output_units=2,
                                 bias=ps.CategoricalBias(probs=[0.9, 0.1]), init=ps.NormC(std=0.01)),
                 id="LinearOutput-categorical"),
    pytest.param(ps.LinearOutput(in_keys="obs", out_keys="value", output_units=1), id="LinearOutput-one-unit"),
    pytest.param(policy_and_value(), id="Graph"),
    pytest.param(two_inputs(), id="Graph-two-inputs"),
    pytest.param(shared_latent(), id="Graph-nested"),
    pytest.param(doubly_nested(), id="Graph-doubly-nested"),
]

# Feature shapes with 0, 1 and 2 extra leading dims (the last dim is what the blocks act on); (1,) is the edge.
SHAPES = [pytest.param((4,), id="shape=4"), pytest.param((1,), id="shape=1"), pytest.param((3, 4), id="shape=3x4"),
          pytest.param((2, 3, 4), id="shape=2x3x4")]
# Leading batch dims at run time: none, an empty batch, one, two.
BATCHES = [pytest.param((), id="batch=none"), pytest.param((0,), id="batch=0"), pytest.param((5,), id="batch=5"),
           pytest.param((2, 3), id="batch=2x3")]


def in_shapes_for(spec: ps.Block, shape: Shape) -> dict[str, Shape]:
    """A shape for every input of `spec`: `shape`, with a different last dim for each further input."""
    return {key: (*shape[:-1], shape[-1] + i) for i, key in enumerate(spec.in_keys)}


def random_inputs(in_shapes: dict[str, Shape], batch: Shape) -> dict[str, torch.Tensor]:
    return {key: torch.randn(*batch, *shape) for key, shape in in_shapes.items()}


def numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class TestShapesAgainstForward:
    @pytest.mark.parametrize("batch", BATCHES)
    @pytest.mark.parametrize("shape", SHAPES)
    @pytest.mark.parametrize("spec", SPECS)
    def test_outputs(self, spec: ps.Block, shape: Shape, batch: Shape) -> None:
        in_shapes = in_shapes_for(spec, shape)
        inferred = ps.infer_shapes(spec, in_shapes)
        module = ps.materialize(spec, in_shapes, seed=0, check="always")
        with torch.no_grad():
            outputs = module(random_inputs(in_shapes, batch))
        assert set(outputs) == set(spec.out_keys)
        for key, value in outputs.items():
            assert tuple(value.shape) == (*batch, *inferred[key]), key
            assert value.dtype == torch.float32

    @pytest.mark.parametrize("batch", BATCHES)
    @pytest.mark.parametrize("shape", SHAPES)
    @pytest.mark.parametrize("spec", SPECS)
    def test_every_key_against_each_blocks_module(self, spec: ps.Block, shape: Shape, batch: Shape) -> None:
        """Run each block's own torch module on real tensors, so private keys of nested graphs are checked too."""
        in_shapes = in_shapes_for(spec, shape)
        inferred = ps.infer_shapes(spec, in_shapes)
        module = ps.materialize(spec, in_shapes, seed=0)
        with torch.no_grad():
            env = every_key(module, random_inputs(in_shapes, batch))
        assert set(env) == set(inferred)
        assert {k: tuple(v.shape) for k, v in env.items()} == {k: (*batch, *s) for k, s in inferred.items()}

    def test_inputs_are_included_and_unchanged(self) -> None:
        in_shapes = {"obs": [3, 4]}
        inferred = ps.infer_shapes(shared_latent(), in_shapes)
        assert inferred["obs"] == (3, 4)
        assert in_shapes == {"obs": [3, 4]}

    def test_hand_computed_shapes(self) -> None:
        assert ps.infer_shapes(two_inputs(), {"screen": (7, 20), "goal": (3,)}) == {
            "screen": (7, 20), "goal": (3,), "screen_hidden": (7, 12), "goal_hidden": (7,), "move": (7, 4),
            "target": (2,),
        }

    def test_shapes_do_not_depend_on_spec_construction(self) -> None:
        a = ps.infer_shapes(ps.Dense(in_keys="x", out_keys="y", hidden_units=[2, 3]), {"x": (5,)})
        b = ps.infer_shapes(ps.Dense(in_keys=["x"], out_keys=("y",), hidden_units=(2, 3)), {"x": [5]})
        assert a == b == {"x": (5,), "y": (3,)}


class TestParametersAgainstModule:
    @pytest.mark.parametrize("shape", SHAPES)
    @pytest.mark.parametrize("spec", SPECS)
    def test_total(self, spec: ps.Block, shape: Shape) -> None:
        in_shapes = in_shapes_for(spec, shape)
        module = ps.materialize(spec, in_shapes, seed=0)
        assert ps.count_parameters(spec, in_shapes) == numel(module)

    @pytest.mark.parametrize("spec", SPECS)
    def test_extra_leading_dims_add_no_parameters(self, spec: ps.Block) -> None:
        assert ps.count_parameters(spec, in_shapes_for(spec, (4,))) == \
            ps.count_parameters(spec, in_shapes_for(spec, (2, 3, 4)))

    def test_hand_computed(self) -> None:
        # body 4->16->32, policy 32->3, value 32->1, each Linear with a bias
        expected = (4 * 16 + 16) + (16 * 32 + 32) + (32 * 3 + 3) + (32 * 1 + 1)
        assert ps.count_parameters(policy_and_value(), {"obs": (4,)}) == expected == 756


class TestShapeErrors:
    """A ShapeError names the key and, where a block reads it, the block's path and type."""

    @pytest.mark.parametrize("spec", [
        pytest.param(ps.Dense(in_keys="obs", out_keys="hidden", hidden_units=[8]), id="Dense"),
        pytest.param(two_inputs(), id="Graph"),
        pytest.param(shared_latent(), id="Graph-nested"),
    ])
    def test_missing_key(self, spec: ps.Block) -> None:
        reader = lower(spec).eqns[0]
        (key,) = reader.ins
        in_shapes = {k: (4,) for k in spec.in_keys if k != key}
        with pytest.raises(ps.ShapeError) as info:
            ps.infer_shapes(spec, in_shapes)
        message = str(info.value)
        assert f"'{key}'" in message
        assert f"'{reader.path}'" in message, f"the block reading {key!r} is not named: {message}"
        assert reader.kind in message, f"the block type is not named: {message}"

    @pytest.mark.parametrize("spec", [
        pytest.param(ps.Dense(in_keys="obs", out_keys="hidden", hidden_units=[8]), id="Dense"),
        pytest.param(shared_latent(), id="Graph-nested"),
    ])
    def test_extra_key(self, spec: ps.Block) -> None:
        # No block reads an extra key, so the error names the key and the inputs the spec does read.
        with pytest.raises(ps.ShapeError, match=r"'extra'") as info:
            ps.infer_shapes(spec, {"obs": (4,), "extra": (2,)})
        assert "'obs'" in str(info.value)

    @pytest.mark.parametrize("bad", [pytest.param((0,), id="0"), pytest.param((4, 0), id="4x0"),
                                     pytest.param((-3,), id="-3")])
    @pytest.mark.parametrize(("spec", "path", "kind"), [
        pytest.param(ps.LinearOutput(in_keys="obs", out_keys="v", output_units=1), "v", "LinearOutput",
                     id="LinearOutput"),
        pytest.param(shared_latent(), "shared.embed", "Dense", id="Graph-nested"),
    ])
    def test_non_positive_dim(self, spec: ps.Block, path: str, kind: str, bad: Shape) -> None:
        with pytest.raises(ps.ShapeError, match=r"'obs'") as info:
            ps.infer_shapes(spec, {"obs": bad})
        message = str(info.value)
        assert str(bad) in message
        assert f"'{path}'" in message, f"the block reading 'obs' is not named: {message}"
        assert kind in message, f"the block type is not named: {message}"

    @pytest.mark.parametrize(("spec", "path", "kind"), [
        pytest.param(ps.Dense(in_keys="obs", out_keys="hidden", hidden_units=[8]), "hidden", "Dense", id="Dense"),
        pytest.param(ps.LinearOutput(in_keys="obs", out_keys="v", output_units=1), "v", "LinearOutput",
                     id="LinearOutput"),
        pytest.param(policy_and_value(), "body", "Dense", id="Graph"),
        pytest.param(shared_latent(), "shared.embed", "Dense", id="Graph-nested"),
        pytest.param(doubly_nested(), "middle.inner.a", "Dense", id="Graph-doubly-nested"),
    ])
    def test_scalar_input(self, spec: ps.Block, path: str, kind: str) -> None:
        message = rf"block '{re.escape(path)}' \({kind}\), key 'obs': .*got \(\)"
        with pytest.raises(ps.ShapeError, match=message):
            ps.infer_shapes(spec, {"obs": ()})
        with pytest.raises(ps.ShapeError, match=message):
            ps.count_parameters(spec, {"obs": ()})
        with pytest.raises(ps.ShapeError, match=message):
            ps.materialize(spec, {"obs": ()})

    def test_shape_error_is_a_perceptspec_error(self) -> None:
        with pytest.raises(ps.PerceptSpecError):
            ps.infer_shapes(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[2]), {"obs": ()})


def table_rows(text: str, paths: list[str]) -> dict[str, str]:
    """The summary line of each block path (the line whose first column is the path)."""
    rows: dict[str, str] = {}
    for line in text.splitlines():
        first = line.split(maxsplit=1)[0] if line.strip() else ""
        if first in paths:
            assert first not in rows, f"two rows for block {first!r}"
            rows[first] = line
    return rows


def total_parameters(text: str) -> int:
    match = re.search(r"(?im)^\s*(?:total\s+)?parameters\b\D*([\d,]+)\s*$", text)
    assert match, f"no total in:\n{text}"
    return int(match.group(1).replace(",", ""))


class TestSummary:
    @pytest.mark.parametrize("shape", [pytest.param((40,), id="shape=40"), pytest.param((2, 3, 4), id="shape=2x3x4")])
    @pytest.mark.parametrize("spec", SPECS)
    def test_one_row_per_block_with_shapes_and_parameters(self, spec: ps.Block, shape: Shape) -> None:
        in_shapes = in_shapes_for(spec, shape)
        text = ps.summary(spec, in_shapes)
        shapes = ps.infer_shapes(spec, in_shapes)
        module = ps.materialize(spec, in_shapes, seed=0)
        eqns = lower(spec).eqns
        rows = table_rows(text, [e.path for e in eqns])
        assert list(rows) == [e.path for e in eqns]
        for eqn in eqns:
            row = rows[eqn.path]
            assert eqn.kind in row
            for key in (*eqn.ins, *eqn.outs):
                assert f"{key} {shapes[key]}" in row, f"{key} {shapes[key]} missing from {row!r}"
            assert f"{numel(module.block_module(eqn.path)):,}" in row.split()
        total = total_parameters(text)
        assert total == ps.count_parameters(spec, in_shapes) == numel(module)

    def test_large_counts(self) -> None:
        spec = ps.Dense(in_keys="obs", out_keys="hidden", hidden_units=[256, 256])
        text = ps.summary(spec, {"obs": (128,)})
        expected = (128 * 256 + 256) + (256 * 256 + 256)
        assert total_parameters(text) == expected == ps.count_parameters(spec, {"obs": (128,)})

    def test_summary_raises_shape_errors(self) -> None:
        with pytest.raises(ps.ShapeError, match=r"'obs'"):
            ps.summary(policy_and_value(), {"observation": (4,)})


Fold = Callable[[ps.Block, Mapping[str, Sequence[int]]], object]
FOLDS: list[Fold] = [ps.infer_shapes, ps.count_parameters, ps.summary]


@pytest.mark.parametrize("fold", FOLDS)
def test_folds_are_pure(fold: Fold) -> None:
    spec = shared_latent()
    before = (repr(spec), hash(spec))
    in_shapes: dict[str, Shape] = {"obs": (3, 4)}
    assert fold(spec, in_shapes) == fold(spec, dict(in_shapes))
    assert (repr(spec), hash(spec)) == before
    assert in_shapes == {"obs": (3, 4)}
