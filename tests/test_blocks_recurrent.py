"""Tests of the recurrent blocks (LSTM, LSTMLastStep, GRU, GRULastStep): folds against real forward passes, against
nn.LSTM / nn.GRU applied by hand with copied weights, the compile path, initialisation, and every error."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import perceptspec as ps
from perceptspec._torch._module import block_generator
from perceptspec._torch.blocks._recurrent import _NATIVE, _UNROLLED, RecurrentModule
from tests.blockcheck import check_block

KINDS: tuple[type[Any], ...] = (ps.LSTM, ps.LSTMLastStep, ps.GRU, ps.GRULastStep)
TORCH_RNN: dict[str, Callable[..., nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU}
LAST_STEP = {ps.LSTM: False, ps.LSTMLastStep: True, ps.GRU: False, ps.GRULastStep: True}
CONFIGS = [dict(hidden_size=6), dict(hidden_size=5, num_layers=2), dict(hidden_size=4, bidirectional=True),
           dict(hidden_size=3, num_layers=3, bidirectional=True, non_lin="tanh")]
CONFIG_IDS = ["plain", "2-layers", "bidirectional", "3-layers-bidirectional"]


def make(kind: type[Any], **fields: Any) -> Any:
    return kind(in_keys="x", out_keys="y", **fields)


def torch_rnn(kind: type[Any], spec: Any, n_in: int) -> nn.RNNBase:
    return TORCH_RNN[kind.cell](n_in, spec.hidden_size, num_layers=spec.num_layers, bidirectional=spec.bidirectional,
                                batch_first=True)


def block_module(module: ps.SpecModule) -> RecurrentModule:
    block = module.block_module("y")
    assert isinstance(block, RecurrentModule)
    return block


class TestFoldAgainstForward:
    @pytest.mark.parametrize("kind", KINDS)
    @pytest.mark.parametrize("fields", CONFIGS, ids=CONFIG_IDS)
    @pytest.mark.parametrize("shape", [(7, 3), (4, 7, 3), (2, 3, 5, 2)], ids=["T,F", "N,T,F", "M,N,T,F"])
    def test_check_block(self, kind: type[Any], fields: dict[str, Any], shape: tuple[int, ...]) -> None:
        check_block(make(kind, **fields), {"x": shape})

    @pytest.mark.parametrize("kind", KINDS)
    def test_edge_sizes(self, kind: type[Any]) -> None:
        """One time step, one feature, one hidden unit."""
        check_block(make(kind, hidden_size=1), {"x": (1, 1)})
        check_block(make(kind, hidden_size=1, bidirectional=True, num_layers=2), {"x": (1, 1, 1)})

    @pytest.mark.parametrize("kind", KINDS)
    def test_empty_batch(self, kind: type[Any]) -> None:
        check_block(make(kind, hidden_size=4, bidirectional=True), {"x": (5, 3)}, batches=((0,), (2, 0)))

    @pytest.mark.parametrize("kind", KINDS)
    def test_shapes(self, kind: type[Any]) -> None:
        spec = make(kind, hidden_size=8, bidirectional=True)
        expected = (2, 16) if LAST_STEP[kind] else (2, 5, 16)
        assert ps.infer_shapes(spec, {"x": (2, 5, 3)})["y"] == expected

    @pytest.mark.parametrize("kind", KINDS)
    @pytest.mark.parametrize("fields", CONFIGS, ids=CONFIG_IDS)
    def test_parameter_count_matches_torch(self, kind: type[Any], fields: dict[str, Any]) -> None:
        spec = make(kind, **fields)
        rnn = torch_rnn(kind, spec, 3)
        dense = nn.Linear(spec.out_units, spec.out_units)
        expected = sum(p.numel() for p in (*rnn.parameters(), *dense.parameters()))
        assert ps.count_parameters(spec, {"x": (7, 3)}) == expected


class TestAgainstTorch:
    """The block is nn.LSTM / nn.GRU (batch first), then Linear(out, out) and non_lin on every step; the last-step
    kinds then keep step -1 (Maze's LSTMLastStepBlock: the LSTM block, dense layer included, then a slice)."""

    @pytest.mark.parametrize("kind", KINDS)
    @pytest.mark.parametrize("fields", CONFIGS, ids=CONFIG_IDS)
    @pytest.mark.parametrize("batch", [(), (3,), (2, 3)], ids=["batch0", "batch1", "batch2"])
    def test_against_torch_by_hand(self, kind: type[Any], fields: dict[str, Any], batch: tuple[int, ...]) -> None:
        shape = (2, 6, 3)  # an extra leading feature dim before (time, features)
        spec = make(kind, **fields)
        module = ps.materialize(spec, {"x": shape}, seed=1)
        block = block_module(module)
        rnn = torch_rnn(kind, spec, 3)
        rnn.load_state_dict(block.rnn.state_dict())
        dense = nn.Linear(spec.out_units, spec.out_units)
        dense.load_state_dict(block.dense.state_dict())
        x = torch.randn(*batch, *shape, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            seq, _ = rnn(x.reshape(-1, 6, 3))
            expected = getattr(torch, spec.non_lin)(dense(seq)).reshape(*batch, 2, 6, spec.out_units)
            if LAST_STEP[kind]:
                expected = expected[..., -1, :]
            got = module({"x": x})["y"]
        torch.testing.assert_close(got, expected)

    @pytest.mark.parametrize("kind", KINDS)
    def test_state_dict_names_are_torch_names(self, kind: type[Any]) -> None:
        spec = make(kind, hidden_size=4, num_layers=2, bidirectional=True)
        module = ps.materialize(spec, {"x": (5, 3)}, seed=0)
        rnn = torch_rnn(kind, spec, 3)
        assert list(block_module(module).rnn.state_dict()) == list(rnn.state_dict())
        assert "blocks.y.rnn.weight_hh_l1_reverse" in module.state_dict()
        assert "blocks.y.dense.weight" in module.state_dict()
        # and the other way: torch's weights load into the block
        block_module(module).rnn.load_state_dict(rnn.state_dict())
        assert torch.equal(block_module(module).rnn.state_dict()["weight_ih_l0"], rnn.state_dict()["weight_ih_l0"])

    def test_maze_style_non_lin(self) -> None:
        spec = make(ps.LSTM, hidden_size=4, non_lin="torch.nn.Tanh")
        assert spec.non_lin == "tanh"
        out = ps.materialize(spec, {"x": (5, 3)}, seed=0)({"x": 10 * torch.randn(2, 5, 3)})["y"]
        assert out.abs().max() < 1

    def test_functional_call_sees_replacement_weights(self) -> None:
        spec = make(ps.LSTMLastStep, hidden_size=3)
        module = ps.materialize(spec, {"x": (4, 2)}, seed=0)
        x = torch.randn(5, 4, 2)
        params = {name: torch.zeros_like(p) for name, p in module.named_parameters()}
        params["blocks.y.dense.bias"] = torch.tensor([1.0, 2.0, 3.0])
        out = torch.func.functional_call(module, params, ({"x": x},))["y"]
        torch.testing.assert_close(out, torch.tensor([1.0, 2.0, 3.0]).expand(5, 3))


    def test_a_parametrized_or_removed_weight_is_read_as_the_attribute(self) -> None:
        """The weights' fast path (all in `_parameters`) must not hide one that moved out of it."""
        from torch.nn.utils import parametrize

        class Zeroed(nn.Module):
            def forward(self, w: torch.Tensor) -> torch.Tensor:
                return torch.zeros_like(w)

        def weight(module: ps.SpecModule, name: str) -> torch.Tensor:
            value = getattr(block_module(module).rnn, name)
            assert isinstance(value, torch.Tensor)
            return value

        module = ps.materialize(make(ps.LSTM, hidden_size=3), {"x": (4, 2)}, seed=0)
        reference = ps.materialize(make(ps.LSTM, hidden_size=3), {"x": (4, 2)}, seed=0)
        rnn = block_module(module).rnn
        x = {"x": torch.randn(5, 4, 2)}
        before = module(x)["y"]
        parametrize.register_parametrization(rnn, "weight_ih_l0", Zeroed())
        with torch.no_grad():
            weight(reference, "weight_ih_l0").zero_()
        torch.testing.assert_close(module(x)["y"], reference(x)["y"])
        assert not torch.allclose(module(x)["y"], before)
        parametrize.remove_parametrizations(rnn, "weight_ih_l0", leave_parametrized=False)
        held = rnn._parameters.pop("weight_hh_l0")  # a plain tensor in the instance dict, as `to_module` does
        assert held is not None
        rnn.__dict__["weight_hh_l0"] = torch.zeros_like(held)
        with torch.no_grad():
            weight(reference, "weight_ih_l0").copy_(weight(module, "weight_ih_l0"))
            weight(reference, "weight_hh_l0").zero_()
        torch.testing.assert_close(module(x)["y"], reference(x)["y"])

    def test_double_precision(self) -> None:
        module = ps.materialize(make(ps.GRU, hidden_size=3, num_layers=2), {"x": (4, 2)}, seed=0).double()
        assert module({"x": torch.randn(5, 4, 2, dtype=torch.float64)})["y"].dtype == torch.float64


class TestCompilePath:
    """Under torch.compile the recurrence runs unrolled (Dynamo refuses nn.LSTM / nn.GRU, inductor cannot train
    through torch.lstm on CPU); it must compute what torch's native kernels compute, gradients included."""

    @pytest.mark.parametrize("cell", ["lstm", "gru"])
    @pytest.mark.parametrize("fields", CONFIGS, ids=CONFIG_IDS)
    def test_unrolled_equals_native(self, cell: str, fields: dict[str, Any]) -> None:
        kind = ps.LSTM if cell == "lstm" else ps.GRU
        spec = make(kind, **fields)
        block = block_module(ps.materialize(spec, {"x": (6, 3)}, seed=0))
        weights = [getattr(block.rnn, n) for n in block.weight_names]
        seq = torch.randn(4, 6, 3, generator=torch.Generator().manual_seed(3))
        args = (spec.hidden_size, spec.num_layers, spec.bidirectional)
        native = _NATIVE[cell](seq, weights, *args)
        unrolled = _UNROLLED[cell](seq, weights, *args)
        torch.testing.assert_close(unrolled, native)
        grads = torch.autograd.grad(native.square().sum(), weights)
        for got, expected in zip(torch.autograd.grad(unrolled.square().sum(), weights), grads):
            torch.testing.assert_close(got, expected)

    @staticmethod
    def check_compiled_training(spec: ps.Block, backend: str) -> None:
        torch._dynamo.reset()
        module = ps.materialize(spec, {"x": (3, 2)}, seed=0)
        compiled = torch.compile(module, fullgraph=True, backend=backend)
        x = torch.randn(2, 4, 3, 2)
        got, expected = compiled({"x": x}), module({"x": x})
        for key in spec.out_keys:
            torch.testing.assert_close(got[key], expected[key])
        params = list(module.parameters())
        grads = torch.autograd.grad(torch.stack([got[k].sum() for k in spec.out_keys]).sum(), params)
        expected_grads = torch.autograd.grad(torch.stack([expected[k].sum() for k in spec.out_keys]).sum(), params)
        for g, e in zip(grads, expected_grads):
            torch.testing.assert_close(g, e)

    @pytest.mark.slow  # make test-all; make test compiles once, in test_materialize
    def test_torch_compile_fullgraph_traces_training(self) -> None:
        """Dynamo traces every kind in one graph, autograd included (aot_eager: no code generation, fast)."""
        spec = ps.Graph([make(ps.LSTM, hidden_size=3, bidirectional=True, non_lin="tanh"),
                         ps.GRU(in_keys="y", out_keys="g", hidden_size=2, num_layers=2),
                         ps.LSTMLastStep(in_keys="g", out_keys="l", hidden_size=2),
                         ps.GRULastStep(in_keys="y", out_keys="r", hidden_size=2)], out_keys=["l", "r"])
        self.check_compiled_training(spec, "aot_eager")

    # inductor imports torch.utils.mkldnn, whose class bodies call the deprecated torch.jit.script_method; that
    # DeprecationWarning comes from torch itself
    @pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
    @pytest.mark.slow
    def test_torch_compile_fullgraph_trains_with_inductor(self) -> None:
        """Inductor compiles training of both cells (it fails on torch.lstm itself; up to a minute cold on CPU)."""
        spec = ps.Graph([make(ps.LSTM, hidden_size=3, bidirectional=True, non_lin="tanh"),
                         ps.GRULastStep(in_keys="y", out_keys="z", hidden_size=2)], out_keys="z")
        self.check_compiled_training(spec, "inductor")


class TestInitialisation:
    @pytest.mark.parametrize("kind", KINDS)
    def test_torch_default_is_torchs_own(self, kind: type[Any]) -> None:
        """TorchDefault draws what nn.LSTM / nn.GRU and nn.Linear draw (uniform ±1/sqrt(hidden) for the cell)."""
        spec = make(kind, hidden_size=5, num_layers=2, bidirectional=True, init=ps.TorchDefault())
        module = ps.materialize(spec, {"x": (4, 3)}, seed=0)
        block = block_module(module)
        bound = 1 / math.sqrt(5)
        assert all(p.abs().max() <= bound for p in block.rnn.parameters())
        # with the block's generator in the global RNG's place, torch builds the very same weights
        with torch.random.fork_rng():
            torch.manual_seed(block_generator(0, "y").initial_seed())
            rnn, dense = torch_rnn(kind, spec, 3), nn.Linear(10, 10)
        for got, expected in zip(block.rnn.parameters(), rnn.parameters()):
            assert torch.equal(got, expected)
        assert torch.equal(block.dense.weight, dense.weight)

    @pytest.mark.parametrize("kind", KINDS)
    def test_normc_leaves_the_cell_at_torchs_default_as_maze(self, kind: type[Any]) -> None:
        """Maze's normc fills Linear and conv layers only: nn.LSTM keeps torch's draw, the dense layer is normc
        (issue #16: Maze's template composer and the seed's Example 2 start so)."""
        spec = make(kind, hidden_size=5, num_layers=2, bidirectional=True, init=ps.NormC(std=0.5))
        block = block_module(ps.materialize(spec, {"x": (4, 3)}, seed=0))
        default = block_module(ps.materialize(dataclasses.replace(spec, init=ps.TorchDefault()), {"x": (4, 3)},
                                              seed=0))
        for got, expected in zip(block.rnn.parameters(), default.rnn.parameters()):
            assert torch.equal(got, expected)
        torch.testing.assert_close(block.dense.weight.detach().norm(dim=1), torch.full((10,), 0.5))

    @pytest.mark.parametrize("init", [ps.Orthogonal(gain=0.01), ps.XavierUniform(), ps.KaimingUniform()],
                             ids=["orthogonal", "xavier", "kaiming"])
    @pytest.mark.parametrize("kind", KINDS)
    def test_recurrent_weights_suit_recurrence(self, kind: type[Any], init: ps.Initializer) -> None:
        """Hidden-to-hidden gate blocks orthogonal, input gate blocks Glorot uniform, biases 0 but the LSTM
        forget gate's 1 (whatever the block's init but TorchDefault and NormC; it fills the dense layer)."""
        h = 4
        spec = make(kind, hidden_size=h, num_layers=2, bidirectional=True, init=init)
        block = block_module(ps.materialize(spec, {"x": (5, 3)}, seed=0))
        for name, p in block.rnn.named_parameters():
            gate_blocks = torch.split(p.detach(), h)
            assert len(gate_blocks) == kind.gates
            if name.startswith("weight_hh"):
                for w in gate_blocks:
                    torch.testing.assert_close(w @ w.T, torch.eye(h))
            elif name.startswith("weight_ih"):
                for w in gate_blocks:
                    assert 0 < w.abs().max() <= math.sqrt(6 / (w.shape[0] + w.shape[1]))
            else:
                expected = torch.zeros(kind.gates * h)
                if kind.cell == "lstm" and name.startswith("bias_ih"):
                    expected[h:2 * h] = 1.0  # gates i, f, g, o: the forget gate starts open
                assert torch.equal(p.detach(), expected), name
        # the block's init still fills the dense layer, e.g. zero biases
        assert torch.equal(block.dense.bias.detach(), torch.zeros(2 * h))

    def test_dense_gets_the_blocks_init(self) -> None:
        spec = make(ps.LSTM, hidden_size=4, init=ps.NormC(std=0.5))
        block = block_module(ps.materialize(spec, {"x": (5, 3)}, seed=0))
        torch.testing.assert_close(block.dense.weight.detach().norm(dim=1), torch.full((4,), 0.5))

    def test_init_inherited_from_graph(self) -> None:
        spec = ps.Graph([make(ps.GRU, hidden_size=3)], out_keys="y", init=ps.Orthogonal())
        block = block_module(ps.materialize(spec, {"x": (5, 2)}, seed=0))
        assert torch.equal(block.rnn.state_dict()["bias_hh_l0"], torch.zeros(9))

    @pytest.mark.parametrize("init", [ps.TorchDefault(), ps.Orthogonal()], ids=["default", "orthogonal"])
    def test_deterministic_under_seed(self, init: ps.Initializer) -> None:
        spec = make(ps.LSTMLastStep, hidden_size=4, num_layers=2, bidirectional=True, init=init)
        first = ps.materialize(spec, {"x": (5, 3)}, seed=7).state_dict()
        again = ps.materialize(spec, {"x": (5, 3)}, seed=7).state_dict()
        other = ps.materialize(spec, {"x": (5, 3)}, seed=8).state_dict()
        assert all(torch.equal(first[k], again[k]) for k in first)
        assert not torch.equal(first["blocks.y.rnn.weight_hh_l0"], other["blocks.y.rnn.weight_hh_l0"])


class TestSpec:
    @pytest.mark.parametrize("kind", KINDS)
    def test_defaults_and_round_trip(self, kind: type[Any]) -> None:
        spec = make(kind, hidden_size=8)
        assert (spec.num_layers, spec.bidirectional, spec.non_lin) == (1, False, "relu")
        full = make(kind, hidden_size=8, num_layers=2, bidirectional=True, non_lin="elu", init=ps.Orthogonal())
        for s in (spec, full):
            back = ps.from_dict(ps.to_dict(s))
            assert back == s and hash(back) == hash(s)
            assert ps.from_yaml(ps.to_yaml(s)) == s

    @pytest.mark.parametrize("kind", KINDS)
    def test_label(self, kind: type[Any]) -> None:
        name = kind.__name__
        assert f"{name} 3→16→16 relu" in ps.summary(make(kind, hidden_size=16), {"x": (5, 3)})
        spec = make(kind, hidden_size=16, num_layers=2, bidirectional=True, non_lin="tanh")
        assert f"{name} 3→2×16 bi→32 tanh" in ps.summary(spec, {"x": (5, 3)})

    @pytest.mark.parametrize("kind", KINDS)
    @pytest.mark.parametrize("fields, field, detail", [
        (dict(hidden_size=0), "hidden_size", r"expected a positive int, got 0"),
        (dict(hidden_size=-3), "hidden_size", r"expected a positive int, got -3"),
        (dict(hidden_size=2.5), "hidden_size", r"expected int, got 2.5"),
        (dict(hidden_size=True), "hidden_size", r"expected int, not a bool, got True"),
        (dict(hidden_size=4, num_layers=0), "num_layers", r"expected a positive int, got 0"),
        (dict(hidden_size=4, bidirectional=1), "bidirectional", r"expected bool, got 1"),
        (dict(hidden_size=4, bidirectional="yes"), "bidirectional", r"expected bool, got 'yes'"),
        (dict(hidden_size=4, non_lin="swish"), "non_lin", r"expected one of relu.*got 'swish'"),
    ], ids=["hidden0", "hidden-neg", "hidden-float", "hidden-bool", "layers0", "bidir-int", "bidir-str", "non_lin"])
    def test_invalid_field(self, kind: type[Any], fields: dict[str, Any], field: str, detail: str) -> None:
        with pytest.raises(ps.SpecError, match=rf"^{kind.__name__}\(out_keys='y'\): field '{field}': {detail}"):
            make(kind, **fields)

    @pytest.mark.parametrize("kind", KINDS)
    def test_one_input_one_output(self, kind: type[Any]) -> None:
        with pytest.raises(ps.SpecError, match=rf"field 'in_keys': {kind.__name__} takes 1 key\(s\), got \['a', 'b'\]"):
            kind(in_keys=["a", "b"], out_keys="y", hidden_size=4)
        with pytest.raises(ps.SpecError, match=rf"field 'out_keys': {kind.__name__} takes 1 key\(s\)"):
            kind(in_keys="x", out_keys=["y", "c"], hidden_size=4)

    def test_all_problems_at_once(self) -> None:
        with pytest.raises(ps.SpecError, match=r"(?s)field 'hidden_size'.*field 'num_layers'"):
            make(ps.LSTM, hidden_size=0, num_layers=0)

    def test_no_abstract_kind(self) -> None:
        with pytest.raises(ps.SpecError, match="unknown kind 'Recurrent'"):
            ps.from_dict({"type": "Recurrent", "in_keys": ["x"], "out_keys": ["y"], "hidden_size": 4})


class TestShapeErrors:
    @pytest.mark.parametrize("kind", KINDS)
    def test_no_time_axis(self, kind: type[Any]) -> None:
        expected = r"expected a shape \(\.\.\., time, features\) with at least 2 dim\(s\), got \(3,\)"
        with pytest.raises(ps.ShapeError, match=rf"^block 'y' \({kind.__name__}\), key 'x': {expected}$"):
            ps.infer_shapes(make(kind, hidden_size=4), {"x": (3,)})
        with pytest.raises(ps.ShapeError, match=expected):
            ps.materialize(make(kind, hidden_size=4), {"x": (3,)})

    def test_no_time_axis_inside_a_graph(self) -> None:
        spec = ps.Graph({"body": ps.Dense(in_keys="obs", out_keys="h", hidden_units=[4]),
                         "memory": ps.LSTMLastStep(in_keys="h", out_keys="m", hidden_size=4)}, out_keys="m")
        with pytest.raises(ps.ShapeError, match=r"block 'memory' \(LSTMLastStep\), key 'h': .*got \(4,\)"):
            ps.count_parameters(spec, {"obs": (6,)})
