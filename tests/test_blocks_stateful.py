"""Tests of the stateful recurrent blocks (StatefulLSTM, StatefulGRU, issue #17 item 3): folds against real
forward passes and against nn.LSTM / nn.GRU, state carried step by step equals one sequence run, resets zero the
right rows, the compile path, the state layout and helpers, and every error."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import perceptspec as ps
from perceptspec._torch.blocks._stateful import StatefulRecurrentModule
from tests.blockcheck import check_block

KINDS: tuple[type[Any], ...] = (ps.StatefulLSTM, ps.StatefulGRU)
TORCH_RNN = {"lstm": nn.LSTM, "gru": nn.GRU}


def make(kind: type[Any], reset: bool = True, **fields: Any) -> Any:
    states = list(kind.state_names)
    return kind(in_keys=["x", *states, *(["is_init"] if reset else [])],
                out_keys=["y", *(f"{s}_next" for s in states)], **fields)


def shapes_of(spec: Any, features: int = 3) -> dict[str, tuple[int, ...]]:
    return {"x": (features,), **ps.state_layout(spec).in_shapes}


def policy(kind: type[Any], **fields: Any) -> ps.Graph:
    """A stateful block and a dense head, exporting the next state as a policy would."""
    block = make(kind, **fields)
    return ps.Graph({"rnn": block, "head": ps.Dense(in_keys="y", out_keys="out", hidden_units=[2])},
                    out_keys=["out", *block.state_out_keys])


def rollout(module: ps.SpecModule, xs: torch.Tensor, resets: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
    """Step by step over the time dim 1 of xs (B, T, F), carrying the state: the outputs (B, T, ...) and the last
    state."""
    state = ps.initial_state(module, xs.shape[0])
    outs = []
    for t in range(xs.shape[1]):
        state = {**state, "is_init": resets[:, t]}
        out = module({"x": xs[:, t], **state})
        outs.append(out["out"])
        state = ps.carry_state(module, out)
    return torch.stack(outs, 1), state


class TestFoldAgainstForward:
    @pytest.mark.parametrize("kind", KINDS)
    @pytest.mark.parametrize("fields", [dict(hidden_size=5), dict(hidden_size=4, num_layers=3)], ids=["1", "3"])
    @pytest.mark.parametrize("reset", [True, False])
    def test_check_block(self, kind: type[Any], fields: dict[str, Any], reset: bool) -> None:
        spec = make(kind, reset, **fields)
        check_block(spec, shapes_of(spec), batches=((), (3,), (2, 3), (0,)))

    @pytest.mark.parametrize("kind", KINDS)
    def test_shapes_and_parameters_are_torchs(self, kind: type[Any]) -> None:
        spec = make(kind, hidden_size=6, num_layers=2)
        shapes = ps.infer_shapes(spec, shapes_of(spec, 5))
        assert shapes["y"] == (6,) and all(shapes[k] == (2, 6) for k in spec.state_out_keys)
        reference = TORCH_RNN[kind.cell](5, 6, num_layers=2)
        assert ps.count_parameters(spec, shapes_of(spec, 5)) == sum(p.numel() for p in reference.parameters())

    @pytest.mark.parametrize("kind", KINDS)
    def test_one_step_is_nn_lstm_from_the_given_state(self, kind: type[Any]) -> None:
        """Same weights, same state (TorchRL's batch-first (num_layers, hidden) layout, torch's is layers first)."""
        spec = make(kind, reset=False, hidden_size=4, num_layers=2)
        module = ps.materialize(spec, shapes_of(spec), seed=1)
        reference = TORCH_RNN[kind.cell](3, 4, num_layers=2, batch_first=True)
        block = module.block_module("y")
        assert isinstance(block, StatefulRecurrentModule)
        reference.load_state_dict(block.rnn.state_dict())
        x = torch.randn(5, 3)
        state = {k: torch.randn(5, 2, 4) for k in spec.state_in_keys}
        out = module({"x": x, **state})
        torch_state = tuple(state[k].transpose(0, 1) for k in spec.state_in_keys)
        y, after = reference(x[:, None], torch_state if kind is ps.StatefulLSTM else torch_state[0])
        torch.testing.assert_close(out["y"], y[:, 0])
        for key, value in zip(spec.state_out_keys, after if kind is ps.StatefulLSTM else (after,)):
            torch.testing.assert_close(out[key], value.transpose(0, 1))


class TestStateAcrossSteps:
    @pytest.mark.parametrize("kind", KINDS)
    def test_steps_carried_equal_one_sequence_run_with_resets_inside(self, kind: type[Any]) -> None:
        module = ps.materialize(policy(kind, hidden_size=5, num_layers=2), {"x": (3,), **ps.state_layout(
            policy(kind, hidden_size=5, num_layers=2)).in_shapes}, seed=0)
        xs = torch.randn(4, 6, 3)
        resets = torch.zeros(4, 6, 1, dtype=torch.bool)
        resets[:, 0] = True
        resets[1, 3] = resets[2, 5] = True
        stepped, last = rollout(module, xs, resets)
        start = ps.initial_state(module, (4, 6))
        for sequence_resets in (resets, resets.float()):
            with ps.recurrent_mode(module):
                whole = module({"x": xs, **start, "is_init": sequence_resets})
            torch.testing.assert_close(whole["out"], stepped)
            for out_key, in_key in ps.state_layout(module.spec).carry.items():
                torch.testing.assert_close(whole[out_key][:, -1], last[in_key])
                assert not whole[out_key][:, :-1].any(), "TorchRL's layout: the final state at the last step only"
        assert not module.block_module("rnn").recurrent_mode, "recurrent_mode restores the step mode"

    @pytest.mark.parametrize("kind", KINDS)
    def test_a_reset_zeroes_the_state_of_its_rows_only(self, kind: type[Any]) -> None:
        spec = make(kind, hidden_size=4)
        module = ps.materialize(spec, shapes_of(spec), seed=0)
        x = torch.randn(3, 3)
        state = {k: torch.randn(3, 1, 4) for k in spec.state_in_keys}
        reset = torch.tensor([[True], [False], [True]])
        out = module({"x": x, **state, "is_init": reset})
        zeros = {k: torch.where(reset[:, :, None], 0.0, v) for k, v in state.items()}
        expected = module({"x": x, **zeros, "is_init": torch.zeros(3, 1)})
        for key in spec.out_keys:
            torch.testing.assert_close(out[key], expected[key])
        kept = module({"x": x, **state, "is_init": torch.zeros(3, 1)})
        assert not torch.allclose(out["y"][1:2], expected["y"][1:2] * 0) and torch.equal(out["y"][1], kept["y"][1])
        assert not torch.allclose(out["y"][0], kept["y"][0])

    @pytest.mark.parametrize("kind", KINDS)
    def test_the_unrolled_recurrence_computes_torchs(self, kind: type[Any]) -> None:
        """What torch.compile runs (a loop of plain ops) against the fused kernel, resets inside included."""
        spec = make(kind, hidden_size=3, num_layers=2)
        block = ps.materialize(spec, shapes_of(spec), seed=0).block_module("y")
        assert isinstance(block, StatefulRecurrentModule)
        seq = torch.randn(2, 5, 3)
        states = [torch.randn(2, 2, 3) for _ in spec.state_in_keys]
        resets = torch.tensor([[False, False, True, False, False], [True, False, False, False, True]])
        weights = [getattr(block.rnn, name) for name in block.weight_names]
        for rows in (resets, None):
            y, finals = block.run(seq, states, rows, weights)
            y_unrolled, finals_unrolled = block.unrolled(seq, states, rows, weights)
            torch.testing.assert_close(y_unrolled, y)
            for a, b in zip(finals_unrolled, finals, strict=True):
                torch.testing.assert_close(a, b)

    @pytest.mark.slow
    @pytest.mark.parametrize("kind", KINDS)
    def test_compiled_sequence_and_step_modes_compute_the_same(self, kind: type[Any]) -> None:
        spec = policy(kind, hidden_size=3, num_layers=2)
        module = ps.materialize(spec, {"x": (3,), **ps.state_layout(spec).in_shapes}, seed=0)
        xs = torch.randn(2, 4, 3)
        resets = torch.zeros(2, 4, 1, dtype=torch.bool)
        resets[0, 2] = True
        start = ps.initial_state(module, (2, 4))
        compiled = torch.compile(module, fullgraph=True, backend="eager")
        with ps.recurrent_mode(module):
            eager = module({"x": xs, **start, "is_init": resets})
            traced = compiled({"x": xs, **start, "is_init": resets})
        for key in spec.out_keys:
            torch.testing.assert_close(traced[key], eager[key])
        step = {"x": xs[:, 0], **ps.initial_state(module, 2)}
        torch.testing.assert_close(compiled(step)["out"], module(step)["out"])


class TestLayoutAndHelpers:
    def test_layout_of_a_nested_policy(self) -> None:
        inner = policy(ps.StatefulLSTM, hidden_size=4, num_layers=2)
        spec = ps.Graph({"torso": inner, "value": ps.LinearOutput(in_keys="out", out_keys="v", output_units=1)},
                        out_keys=["v", "h_next", "c_next"])
        layout = ps.state_layout(spec)
        assert layout == ps.StateLayout((ps.StateKey("h", "h_next", (2, 4)), ps.StateKey("c", "c_next", (2, 4))),
                                        ("is_init",))
        assert layout.in_shapes == {"h": (2, 4), "c": (2, 4), "is_init": (1,)} and layout.carry == {
            "h_next": "h", "c_next": "c"}
        assert not ps.state_layout(ps.Dense(in_keys="x", out_keys="y", hidden_units=[2]))

    def test_initial_state_follows_the_module(self) -> None:
        spec = make(ps.StatefulGRU, hidden_size=2)
        module = ps.materialize(spec, shapes_of(spec)).double()
        state = ps.initial_state(module, (2, 3))
        assert state["h"].dtype == torch.float64 and state["h"].shape == (2, 3, 1, 2) and not state["h"].any()
        assert state["is_init"].dtype == torch.bool and state["is_init"].all() and state["is_init"].shape == (2, 3, 1)
        assert ps.initial_state(spec)["h"].shape == (1, 2)

    def test_carry_state_sets_the_reset_flags(self) -> None:
        spec = make(ps.StatefulGRU, hidden_size=2)
        module = ps.materialize(spec, shapes_of(spec))
        out = module({"x": torch.randn(3, 3), **ps.initial_state(module, 3)})
        carried = ps.carry_state(spec, out, reset=torch.tensor([True, False, False]))
        assert carried["h"] is out["h_next"]
        assert carried["is_init"].tolist() == [[True], [False], [False]]
        assert not ps.carry_state(spec, out)["is_init"].any()


class TestErrors:
    def test_keys(self) -> None:
        with pytest.raises(ps.SpecError, match=r"takes an input key, the state keys \('h', 'c'\) and an optional"):
            ps.StatefulLSTM(in_keys=["x", "h"], out_keys=["y", "h2", "c2"], hidden_size=2)
        with pytest.raises(ps.SpecError, match=r"takes an output key and the next state's keys \('h'\)"):
            ps.StatefulGRU(in_keys=["x", "h"], out_keys=["y"], hidden_size=2)
        with pytest.raises(ps.SpecError, match=r"the next state needs keys of its own.*\['h'\]"):
            ps.StatefulGRU(in_keys=["x", "h"], out_keys=["y", "h"], hidden_size=2)

    def test_shapes(self) -> None:
        spec = make(ps.StatefulLSTM, hidden_size=2, num_layers=2)
        with pytest.raises(ps.ShapeError, match=r"key 'x': expected a shape \(features,\)"):
            ps.infer_shapes(spec, {**shapes_of(spec), "x": (4, 3)})
        with pytest.raises(ps.ShapeError, match=r"key 'c': expected the state shape .* = \(2, 2\), got \(2,\)"):
            ps.infer_shapes(spec, {**shapes_of(spec), "c": (2,)})
        with pytest.raises(ps.ShapeError, match=r"key 'is_init': expected a reset flag of shape \(1,\), got \(2,\)"):
            ps.infer_shapes(spec, {**shapes_of(spec), "is_init": (2,)})

    def test_recurrent_mode_needs_a_time_dim(self) -> None:
        spec = make(ps.StatefulGRU, hidden_size=2)
        module = ps.materialize(spec, shapes_of(spec))
        with ps.recurrent_mode(module), pytest.raises(ps.SignatureError, match="a time dim"):
            module({"x": torch.randn(3), **ps.initial_state(module)})

    def test_state_must_be_carried(self) -> None:
        block = make(ps.StatefulGRU, hidden_size=2)
        hidden = ps.Graph({"rnn": block}, out_keys=["y"])
        with pytest.raises(ps.SpecError, match=r"writes its next state to 'h_next', which is not among the spec's "):
            ps.state_layout(hidden)
        computed = ps.Graph({"h": ps.Dense(in_keys="z", out_keys="h", hidden_units=[2]), "rnn": block},
                            out_keys=["y", "h_next"])
        with pytest.raises(ps.SpecError, match="reads its state from 'h', which another block computes"):
            ps.state_layout(computed)

    def test_helpers_take_specs_and_spec_modules(self) -> None:
        with pytest.raises(ps.SpecError, match="expected a spec or a materialized module"):
            ps.initial_state(nn.Linear(2, 2))
        spec = make(ps.StatefulGRU, hidden_size=2)
        with pytest.raises(ps.SpecError, match=r"the outputs lack the next state \['h_next'\]"):
            ps.carry_state(spec, {"y": torch.zeros(2)})
