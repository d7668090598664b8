"""`Graph`: blocks wired by key names; derived inputs, wiring errors, nesting, and the inherited initialiser."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import torch

import perceptspec as ps
from perceptspec._fold import lower


def dense(in_key: str, out_key: str, units: int = 8, **kwargs: Any) -> ps.Dense:
    return ps.Dense(in_keys=in_key, out_keys=out_key, hidden_units=[units], **kwargs)


def head(in_key: str, out_key: str, units: int = 2, **kwargs: Any) -> ps.LinearOutput:
    return ps.LinearOutput(in_keys=in_key, out_keys=out_key, output_units=units, **kwargs)


def inits(spec: ps.Block) -> dict[str, ps.Initializer]:
    """The effective initialiser of every leaf block, by path."""
    return {eqn.path: eqn.init for eqn in lower(spec).eqns}


class TestInKeys:
    def test_single_block(self) -> None:
        graph = ps.Graph({"body": dense("obs", "hidden")}, out_keys="hidden")
        assert graph.in_keys == ("obs",)
        assert graph.out_keys == ("hidden",)

    def test_in_keys_are_the_keys_no_block_produces(self) -> None:
        graph = ps.Graph({
            "screen": dense("screen", "screen_latent"),
            "goal": dense("goal", "goal_latent"),
            "policy": head("screen_latent", "logits"),
            "value": head("goal_latent", "value", units=1),
        }, out_keys=["logits", "value"])
        assert sorted(graph.in_keys) == ["goal", "screen"]
        assert len(graph.in_keys) == len(set(graph.in_keys))
        produced = {k for block in graph.blocks.values() for k in block.out_keys}
        assert not produced & set(graph.in_keys)

    def test_a_key_read_by_two_blocks_is_one_input(self) -> None:
        graph = ps.Graph({"policy": head("obs", "logits"), "value": head("obs", "value", units=1)},
                         out_keys=["logits", "value"])
        assert graph.in_keys == ("obs",)

    def test_nested_graph_inputs_fed_by_outer_blocks_are_not_outer_inputs(self) -> None:
        inner = ps.Graph({"a": dense("embedding", "hid"), "b": dense("hid", "latent")}, out_keys="latent")
        assert inner.in_keys == ("embedding",)
        outer = ps.Graph({"embed": dense("obs", "embedding"), "inner": inner, "head": head("latent", "logits")},
                         out_keys="logits")
        assert outer.in_keys == ("obs",)

    def test_topological_order_puts_producers_first(self) -> None:
        graph = ps.Graph({"a_head": head("z", "logits"), "b_mid": dense("h", "z"), "c_body": dense("obs", "h")},
                         out_keys="logits")
        assert graph.topological_order == ("c_body", "b_mid", "a_head")
        assert [e.path for e in lower(graph).eqns] == ["c_body", "b_mid", "a_head"]


class TestListForm:
    def test_blocks_named_by_first_out_key_and_equal_to_dict_form(self) -> None:
        listed = ps.Graph([dense("obs", "hidden"), head("hidden", "logits")], out_keys="logits")
        named = ps.Graph({"hidden": dense("obs", "hidden"), "logits": head("hidden", "logits")}, out_keys="logits")
        assert sorted(listed.blocks) == ["hidden", "logits"]
        assert listed == named
        assert hash(listed) == hash(named)
        assert repr(listed) == repr(named)

    def test_nested_graph_named_by_its_first_out_key(self) -> None:
        latent = ps.Graph({"a": dense("obs", "z"), "b": dense("obs", "w")}, out_keys=["z", "w"])
        outer = ps.Graph([latent, head("z", "logits"), head("w", "value", units=1)], out_keys=["logits", "value"])
        assert sorted(outer.blocks) == ["logits", "value", "z"]
        assert outer.blocks["z"] == latent

    def test_list_form_with_two_producers_of_one_key_is_rejected(self) -> None:
        # Naming each block by its first out key must not let the second producer of 'hidden' silently
        # replace the first: the dict form reports the duplicate producer, the list form must too.
        first, second = dense("obs", "hidden"), dense("goal", "hidden", units=3)
        with pytest.raises(ps.SpecError, match=r"'hidden'"):
            ps.Graph([first, second], out_keys="hidden")


# (blocks, out_keys, a regex the message must contain)
WIRING_ERRORS = [
    pytest.param({"a": dense("obs", "hidden"), "b": dense("goal", "hidden")}, "hidden",
                 r"key 'hidden' is produced by two blocks, 'a' and 'b'", id="duplicate-producer"),
    pytest.param({"a": dense("obs", "hidden"), "b": ps.Graph({"x": dense("goal", "hidden")}, out_keys="hidden")},
                 "hidden", r"key 'hidden' is produced by two blocks, 'a' and 'b'", id="duplicate-producer-nested"),
    pytest.param({"a": dense("z", "h"), "b": dense("h", "z")}, "z", r"cycle: 'a' -> 'b' -> 'a'", id="cycle-2"),
    pytest.param({"a": dense("c", "a"), "b": dense("a", "b"), "c": dense("b", "c")}, "c",
                 r"cycle: 'a' -> 'c' -> 'b' -> 'a'", id="cycle-3"),
    pytest.param({"a": dense("h", "h")}, "h", r"cycle: 'a' -> 'a'", id="self-loop"),
    pytest.param({"a": dense("obs", "hidden")}, "logits", r"out key 'logits' is produced by no block",
                 id="unknown-out-key"),
    pytest.param({"a": dense("obs", "hidden")}, ["hidden", "obs"], r"out key 'obs' is produced by no block",
                 id="input-as-out-key"),
    pytest.param({"a": dense("obs", "hidden"), "dead": dense("obs", "unused")}, "hidden",
                 r"block 'dead' contributes to no out key", id="dead-block"),
    pytest.param({"a": dense("obs", "hidden"), "b": dense("unused", "w"), "c": dense("w", "v")}, "hidden",
                 r"block 'b' contributes to no out key", id="dead-chain"),
    pytest.param({}, "hidden", r"at least one block", id="empty"),
    pytest.param({"a.b": dense("obs", "hidden")}, "hidden", r"name 'a\.b' contains '\.'", id="dotted-name"),
    pytest.param({"a": dense("obs", "hidden")}, ["hidden", "hidden"], r"field 'out_keys': keys repeat",
                 id="repeated-out-key"),
    pytest.param({"a": dense("obs", "hidden")}, [], r"field 'out_keys'", id="no-out-keys"),
    pytest.param({"a": dense("obs", "hidden")}, "a.hidden", r"field 'out_keys'.*'\.'", id="dotted-out-key"),
]


class TestWiringErrors:
    @pytest.mark.parametrize(("blocks", "out_keys", "message"), WIRING_ERRORS)
    def test_problem_is_named(self, blocks: Mapping[str, ps.Block], out_keys: str | Sequence[str],
                              message: str) -> None:
        with pytest.raises(ps.SpecError, match=message) as info:
            ps.Graph(blocks, out_keys=out_keys)
        assert str(info.value).startswith("Graph")

    def test_all_problems_reported_together(self) -> None:
        with pytest.raises(ps.SpecError) as info:
            ps.Graph({
                "a": dense("b", "a"), "b": dense("a", "b"),  # a cycle
                "c": dense("obs", "c"), "d": dense("goal", "c"),  # two producers of 'c'
            }, out_keys=["a", "missing"])
        problems = info.value.problems
        message = str(info.value)
        expected = [
            "key 'c' is produced by two blocks, 'c' and 'd'",
            "out key 'missing' is produced by no block",
            "blocks form a cycle: 'a' -> 'b' -> 'a'",
            "block 'c' contributes to no out key",
            "block 'd' contributes to no out key",
        ]
        for text in expected:
            assert any(text in p for p in problems), text
            assert text in message
        assert len(problems) == len(expected)

    def test_replace_rewires_and_revalidates(self) -> None:
        graph = ps.Graph({"body": dense("obs", "hidden"), "head": head("hidden", "logits")}, out_keys="logits")
        widened = dataclasses.replace(graph, out_keys=["logits", "hidden"])
        assert widened.in_keys == ("obs",) and widened.out_keys == ("logits", "hidden")
        with pytest.raises(ps.SpecError, match=r"block 'head' contributes to no out key"):
            dataclasses.replace(graph, out_keys="hidden")


def latent_graph(init: ps.Initializer | None = None, block_init: ps.Initializer | None = None) -> ps.Graph:
    return ps.Graph({"embed": dense("obs", "hid", units=8), "proj": dense("hid", "latent", units=6, init=block_init)},
                    out_keys="latent", init=init)


class TestNesting:
    def test_private_keys_of_a_nested_graph_are_prefixed(self) -> None:
        outer = ps.Graph({"shared": latent_graph(), "policy": head("latent", "logits", units=3),
                          "value": head("latent", "value", units=1)}, out_keys=["logits", "value"])
        assert outer.in_keys == ("obs",)
        assert ps.infer_shapes(outer, {"obs": (4,)}) == {
            "obs": (4,), "shared.hid": (8,), "latent": (6,), "logits": (3,), "value": (1,),
        }
        assert ps.infer_shapes(outer, {"obs": (5, 4)}) == {
            "obs": (5, 4), "shared.hid": (5, 8), "latent": (5, 6), "logits": (5, 3), "value": (5, 1),
        }

    def test_private_key_does_not_clash_with_an_outer_key_of_the_same_name(self) -> None:
        outer = ps.Graph({"shared": latent_graph(), "hid": dense("latent", "hid", units=5)}, out_keys="hid")
        shapes = ps.infer_shapes(outer, {"obs": (4,)})
        assert shapes["shared.hid"] == (8,)
        assert shapes["hid"] == (5,)

    def test_two_levels_of_nesting(self) -> None:
        middle = ps.Graph({"inner": latent_graph(), "mix": dense("latent", "mixed", units=7)}, out_keys="mixed")
        outer = ps.Graph({"middle": middle, "policy": head("mixed", "logits")}, out_keys="logits")
        assert ps.infer_shapes(outer, {"obs": (2, 4)}) == {
            "obs": (2, 4), "middle.inner.hid": (2, 8), "middle.latent": (2, 6), "mixed": (2, 7), "logits": (2, 2),
        }
        assert [e.path for e in lower(outer).eqns] == ["middle.inner.embed", "middle.inner.proj", "middle.mix",
                                                       "policy"]

    def test_nested_graph_output_read_inside_and_outside(self) -> None:
        inner = ps.Graph({"a": dense("obs", "z", units=4), "b": dense("z", "w", units=3)}, out_keys=["z", "w"])
        outer = ps.Graph({"inner": inner, "h1": head("z", "p", units=2), "h2": head("w", "q", units=1)},
                         out_keys=["p", "q"])
        assert ps.infer_shapes(outer, {"obs": (9,)}) == {"obs": (9,), "z": (4,), "w": (3,), "p": (2,), "q": (1,)}


class TestInheritedInit:
    @pytest.mark.parametrize(("outer_init", "latent_init", "block_init", "expected"), [
        pytest.param(None, None, None,
                     {"shared.embed": ps.TorchDefault(), "shared.proj": ps.TorchDefault(),
                      "policy": ps.TorchDefault()},
                     id="none-anywhere"),
        pytest.param(ps.NormC(std=0.5), None, None,
                     {"shared.embed": ps.NormC(std=0.5), "shared.proj": ps.NormC(std=0.5),
                      "policy": ps.NormC(std=0.5)}, id="outer-only"),
        pytest.param(ps.NormC(std=0.5), ps.XavierUniform(), None,
                     {"shared.embed": ps.XavierUniform(), "shared.proj": ps.XavierUniform(),
                      "policy": ps.NormC(std=0.5)}, id="nested-default-wins-inside"),
        pytest.param(ps.NormC(std=0.5), ps.XavierUniform(), ps.Orthogonal(gain=2.0),
                     {"shared.embed": ps.XavierUniform(), "shared.proj": ps.Orthogonal(gain=2.0),
                      "policy": ps.NormC(std=0.5)}, id="block-init-wins"),
        pytest.param(None, ps.XavierUniform(), None,
                     {"shared.embed": ps.XavierUniform(), "shared.proj": ps.XavierUniform(),
                      "policy": ps.TorchDefault()}, id="nested-only"),
    ])
    def test_nested_default_applies_unless_block_sets_its_own(
            self, outer_init: ps.Initializer | None, latent_init: ps.Initializer | None,
            block_init: ps.Initializer | None, expected: dict[str, ps.Initializer]) -> None:
        outer = ps.Graph({"shared": latent_graph(latent_init, block_init), "policy": head("latent", "logits")},
                         out_keys="logits", init=outer_init)
        assert inits(outer) == expected

    def test_outer_default_reaches_two_levels_down(self) -> None:
        middle = ps.Graph({"inner": latent_graph()}, out_keys="latent")
        outer = ps.Graph({"middle": middle, "policy": head("latent", "logits", init=ps.TorchDefault())},
                         out_keys="logits", init=ps.Orthogonal(gain=3.0))
        assert inits(outer) == {"middle.inner.embed": ps.Orthogonal(gain=3.0),
                                "middle.inner.proj": ps.Orthogonal(gain=3.0), "policy": ps.TorchDefault()}

    @pytest.mark.parametrize(("block_init", "expected"), [
        pytest.param(None, ps.TorchDefault(), id="default"),
        pytest.param(ps.NormC(std=2.0), ps.NormC(std=2.0), id="own"),
    ])
    def test_bare_block(self, block_init: ps.Initializer | None, expected: ps.Initializer) -> None:
        assert inits(dense("obs", "hidden", init=block_init)) == {"hidden": expected}

    def test_materialized_weights_follow_the_effective_init(self) -> None:
        outer = ps.Graph({"shared": latent_graph(ps.NormC(std=0.5), ps.Orthogonal(gain=2.0)),
                          "policy": head("latent", "logits", units=3, init=ps.NormC(std=0.01))},
                         out_keys="logits", init=ps.XavierUniform())
        module = ps.materialize(outer, {"obs": (4,)}, seed=0)
        embed = module.block_module("shared.embed").get_submodule("0")
        proj = module.block_module("shared.proj").get_submodule("0")
        policy = module.block_module("policy")
        assert isinstance(embed, torch.nn.Linear) and isinstance(proj, torch.nn.Linear)
        assert isinstance(policy, torch.nn.Linear)
        # NormC(0.5): every output unit's weight row has norm 0.5, biases zero
        torch.testing.assert_close(embed.weight.norm(dim=1), torch.full((8,), 0.5))
        assert torch.count_nonzero(embed.bias) == 0
        # Orthogonal(2.0) on a 6x8 weight: W W^T = 4 I
        torch.testing.assert_close(proj.weight @ proj.weight.T, 4.0 * torch.eye(6), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(policy.weight.norm(dim=1), torch.full((3,), 0.01))
