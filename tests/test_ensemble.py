"""`ps.Ensemble` (issue #18): K members of one spec, seeded independently, run in one batched forward; the fold gives
each output a member dim after the batch dims."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch

import perceptspec as ps
from perceptspec._fold import to_dot
from perceptspec._torch import SpecModule
from perceptspec._torch.blocks._ensemble import EnsembleModule
from perceptspec.examples.cartpole import cartpole_critic
from tests.blockcheck import check_block, random_inputs

SHAPES = {"observation": (4,)}


def critic() -> ps.Graph:
    return cartpole_critic(SHAPES)


def ensemble_module(module: SpecModule, path: str) -> EnsembleModule:
    block = module.block_module(path)
    assert isinstance(block, EnsembleModule)
    return block


def members_by_hand(module: SpecModule, path: str, inner: ps.Block, shapes: Mapping[str, tuple[int, ...]]
                    ) -> list[SpecModule]:
    """The ensemble's members as K separate modules: each materialized from its member seed, so with the weights
    the ensemble must hold."""
    seeds = ensemble_module(module, path).member_seeds
    assert seeds is not None
    return [ps.materialize(inner, shapes, seed=s).eval() for s in seeds]


class TestSpec:
    def test_value_semantics(self) -> None:
        e = ps.Ensemble(critic(), size=3)
        assert e == ps.Ensemble(critic(), 3) and hash(e) == hash(ps.Ensemble(critic(), 3))
        assert e != ps.Ensemble(critic(), 4)
        assert e.in_keys == ("observation",) and e.out_keys == ("value",)
        assert ps.from_yaml(ps.to_yaml(e)) == e
        assert ps.from_dict(ps.to_dict(e)) == e
        assert pickle.loads(pickle.dumps(e)) == e
        assert eval(repr(e), vars(ps)) == e  # noqa: S307  (our own repr)
        with pytest.raises(AttributeError):
            e.size = 4  # type: ignore[misc]

    def test_nests(self) -> None:
        inner = ps.Ensemble(ps.Dense(in_keys="x", out_keys="y", hidden_units=[3]), size=2, init=ps.NormC(1.0))
        spec = ps.Graph({"twice": ps.Ensemble(inner, 5), "head": ps.Flatten(in_keys="y", out_keys="z",
                                                                             num_flatten_dims=3)},
                        out_keys=["z", "y"])
        assert ps.infer_shapes(spec, {"x": (4,)})["y"] == (5, 2, 3)
        assert ps.count_parameters(spec, {"x": (4,)}) == 5 * 2 * (4 * 3 + 3)
        assert ps.from_yaml(ps.to_yaml(spec)) == spec

    @pytest.mark.parametrize(("size", "problem"), [
        (0, "field 'size': expected at least 1 member, got 0"),
        (-2, "field 'size': expected at least 1 member, got -2"),
        (True, "field 'size': expected int, not a bool, got True"),
        (2.5, "field 'size': expected int, got 2.5"),
    ])
    def test_bad_size(self, size: object, problem: str) -> None:
        with pytest.raises(ps.SpecError, match=f"^Ensemble\\(out_keys='value'\\): {problem}$"):
            ps.Ensemble(critic(), size)  # type: ignore[arg-type]

    def test_bad_member(self) -> None:
        with pytest.raises(ps.SpecError, match="^Ensemble: field 'spec': expected Block, got 'critic'$"):
            ps.Ensemble("critic", 2)  # type: ignore[arg-type]


class TestFolds:
    def test_summary_and_drawing_show_the_members(self) -> None:
        spec = ps.Graph({"critics": ps.Ensemble(critic(), 10)}, out_keys="value")
        text = ps.summary(spec, SHAPES)
        assert "Ensemble ×10 Graph (2 blocks)" in text and "value (10, 1)" in text
        member = next(line for line in text.splitlines() if line.startswith("  critics.embedding"))
        assert "×10 Dense 4→16→32 relu" in member and f"({10 * (4 * 16 + 16 + 16 * 32 + 32):,})" in member
        assert f"Total parameters: {10 * ps.count_parameters(critic(), SHAPES):,}" in text
        assert "Ensemble ×10" in to_dot(spec, SHAPES).source

    def test_a_shape_error_names_the_block_inside(self) -> None:
        spec = ps.Graph({"critics": ps.Ensemble(ps.Graph([ps.Concat(in_keys=["a", "b"], out_keys="c")],
                                                         out_keys="c"), 2)}, out_keys="c")
        with pytest.raises(ps.ShapeError, match=r"^block 'critics\.c' \(Concat\), key 'b': expected a shape \(4, \*\)"):
            ps.infer_shapes(spec, {"a": (4, 3), "b": (2, 2)})

    @pytest.mark.parametrize("inner", [
        critic(),
        ps.VGGConvDense(in_keys="s", out_keys="v", hidden_channels=[2], hidden_units=[3], use_batch_norm_conv=True),
        ps.LSTMLastStep(in_keys="t", out_keys="v", hidden_size=3),
        ps.Graph([ps.Concat(in_keys=["t", "u"], out_keys="c"), ps.Dense(in_keys="c", out_keys="v", hidden_units=[2])],
                 out_keys="v"),
        ps.Ensemble(ps.Dense(in_keys="t", out_keys="v", hidden_units=[2]), 2),
        ps.Embedding(in_keys="i", out_keys="v", num_embeddings=5, embedding_dim=3),
    ], ids=["mlp", "conv_bn", "lstm", "concat_first", "nested", "embedding"])
    def test_fold_equals_forward_and_members_equal_separate_modules(self, inner: ps.Block) -> None:
        shapes = {k: {"observation": (4,), "s": (3, 8, 8), "t": (5, 3), "u": (5, 2), "i": (2,)}[k] for k in inner.in_keys}
        spec = ps.Graph({"e": ps.Ensemble(inner, 3)}, out_keys=list(inner.out_keys))
        module = check_block(spec, shapes).eval()
        members = members_by_hand(module, "e", inner, shapes)
        inputs = random_inputs(module, (2, 5))
        with torch.no_grad():
            together = module(inputs)
            for k, member in enumerate(members):
                for key, value in member(inputs).items():
                    torch.testing.assert_close(together[key][:, :, k], value, rtol=1e-5, atol=1e-6)


class TestInterpreter:
    def test_one_batched_forward(self) -> None:
        """An MLP runs layered: its Linear layers stacked, no loop and no vmap; a convolution under vmap; an LSTM
        (no batching rule in torch) member after member."""
        module = ps.materialize(ps.Ensemble(critic(), 4), SHAPES, seed=0)
        assert ensemble_module(module, "value").mode == "layered"
        conv = ps.VGGConv(in_keys="s", out_keys="v", hidden_channels=[2])
        assert ensemble_module(ps.materialize(ps.Ensemble(conv, 2), {"s": (1, 4, 4)}), "v").mode == "vmapped"
        lstm = ps.LSTM(in_keys="t", out_keys="v", hidden_size=2)
        assert ensemble_module(ps.materialize(ps.Ensemble(lstm, 2), {"t": (3, 2)}), "v").mode == "looped"

    def test_seeds(self) -> None:
        """Member k depends on (seed, path, k) only: the same in a larger ensemble, different from member j."""
        three = ps.materialize(ps.Ensemble(critic(), 3), SHAPES, seed=7).state_dict()
        five = ps.materialize(ps.Ensemble(critic(), 5), SHAPES, seed=7).state_dict()
        other = ps.materialize(ps.Ensemble(critic(), 3), SHAPES, seed=8).state_dict()
        name = "blocks.value.members.blocks.embedding.0.weight"
        assert torch.equal(five[name][:3], three[name])
        assert not torch.equal(three[name][0], three[name][1])
        assert not torch.equal(three[name], other[name])

    def test_init_is_inherited(self) -> None:
        """Blocks inside take the enclosing graph's initialiser, as in a nested Graph."""
        dense = ps.Dense(in_keys="x", out_keys="y", hidden_units=[64])
        spec = ps.Graph({"e": ps.Ensemble(dense, 2)}, out_keys="y", init=ps.Orthogonal(1.0))
        weight = ps.materialize(spec, {"x": (64,)}, seed=0).state_dict()["blocks.e.members.blocks.y.0.weight"]
        torch.testing.assert_close(weight[1] @ weight[1].T, torch.eye(64), atol=1e-4, rtol=0)

    def test_a_faithful_module(self, tmp_path: Path) -> None:
        """Real parameters an optimizer trains, stable state_dict names, functional_call, hooks, copies, saving."""
        module = ps.materialize(ps.Ensemble(critic(), 3), SHAPES, seed=0)
        names = [n for n, _ in module.named_parameters()]
        assert names == [f"blocks.value.members.blocks.{n}" for n in
                         ("embedding.0.weight", "embedding.0.bias", "embedding.2.weight", "embedding.2.bias",
                          "value.weight", "value.bias")]
        assert all(isinstance(p, torch.nn.Parameter) and p.shape[0] == 3 for p in module.parameters())
        x = {"observation": torch.randn(8, 4)}
        before = module(x)["value"].detach()
        optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
        torch.autograd.backward(module(x)["value"].pow(2).sum())
        optimizer.step()
        assert not torch.equal(module(x)["value"], before)

        zeroed = {n: torch.zeros_like(p) for n, p in module.named_parameters()}
        assert torch.equal(torch.func.functional_call(module, zeroed, (x,))["value"], torch.zeros(8, 3, 1))
        seen: list[tuple[int, ...]] = []
        module.blocks["value"].register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
        module(x)
        assert seen == [(8, 3, 1)]

        for copied in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
            torch.testing.assert_close(copied(x)["value"], module(x)["value"])
        ps.save(module, tmp_path / "e.safetensors")
        loaded = ps.load(tmp_path / "e.safetensors")
        assert isinstance(loaded, SpecModule)
        torch.testing.assert_close(loaded(x)["value"], module(x)["value"])

    def test_gradients_equal_the_members(self) -> None:
        module = ps.materialize(ps.Ensemble(critic(), 2), SHAPES, seed=1)
        members = members_by_hand(module, "value", critic(), SHAPES)
        x = {"observation": torch.randn(6, 4)}
        torch.autograd.backward(module(x)["value"].sum())
        for member in members:
            torch.autograd.backward(member(x)["value"].sum())
        for name, p in module.named_parameters():
            leaf = name.removeprefix("blocks.value.members.")
            for k, member in enumerate(members):
                torch.testing.assert_close(p.grad[k], member.get_parameter(leaf).grad)  # type: ignore[index]


class TestEveryMember:
    """Regressions found by the property tests after the merges of issue #17's blocks."""

    def test_an_op_without_a_batching_rule_in_training_mode_runs_member_by_member(self) -> None:
        member = ps.StridedConvDense(in_keys="x", out_keys="y", hidden_channels=[2], hidden_kernels=[3],
                                     non_lin="rrelu", convolution_dimension=1, hidden_units=[2])
        module = ps.materialize(ps.Ensemble(member, size=2), {"x": (2, 8)}, seed=0)
        for train in (True, False):
            module.train(train)
            assert module({"x": torch.randn(3, 2, 8)})["y"].shape == (3, 2, 2)

    def test_members_without_tensors_are_one_function(self) -> None:
        member = ps.Flatten(in_keys="x", out_keys="y", num_flatten_dims=2)
        module = ps.materialize(ps.Ensemble(member, size=3), {"x": (2, 4)}, seed=0)
        x = torch.randn(5, 2, 4)
        y = module({"x": x})["y"]
        assert y.shape == (5, 3, 8)
        torch.testing.assert_close(y, x.reshape(5, 1, 8).expand(5, 3, 8))
