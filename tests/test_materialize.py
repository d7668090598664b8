"""Tests of `ps.materialize`: the generated forward against the reference interpreter, seeding, state_dict,
copies, autograd, functional_call, dtype changes, torch.compile, batch dims and the shape of the generated code."""

from __future__ import annotations

import ast
import copy
import io
import pickle
from collections.abc import Callable, Mapping

import pytest
import torch
import torch.nn.functional as F

import perceptspec as ps
from perceptspec._torch import SpecModule, run_reference

Inputs = dict[str, torch.Tensor]

# what each non-linearity name must compute (PyTorch's defaults); kept in step with ps.NON_LINEARITIES below
NON_LIN_FNS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu, "tanh": torch.tanh, "elu": F.elu, "leaky_relu": F.leaky_relu, "sigmoid": torch.sigmoid,
    "gelu": F.gelu, "identity": lambda x: x, "relu6": F.relu6, "celu": F.celu, "selu": F.selu, "silu": F.silu,
    "mish": F.mish, "log_sigmoid": F.logsigmoid, "hardsigmoid": F.hardsigmoid, "hardtanh": F.hardtanh,
    "hardswish": F.hardswish, "softplus": F.softplus, "softsign": F.softsign, "softshrink": F.softshrink,
    "hardshrink": F.hardshrink, "tanhshrink": F.tanhshrink,
    "rrelu": lambda x: F.rrelu(x, training=False),  # random in training mode: the test runs it in eval mode
}


def random_inputs(in_shapes: Mapping[str, tuple[int, ...]], batch: tuple[int, ...] = (4,), *,
                  dtype: torch.dtype = torch.float32, seed: int = 0) -> Inputs:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(*batch, *s, generator=g, dtype=dtype) for k, s in in_shapes.items()}


def assert_matches_reference(module: SpecModule, inputs: Inputs) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = module(inputs)
    ref = run_reference(module, inputs)
    assert set(out) == set(ref)
    for key in ref:
        assert torch.equal(out[key], ref[key]), key
    return out


def actor_critic() -> ps.Graph:
    """A shared latent sub-graph read by a policy head and a critic; the latent is an output too."""
    latent = ps.Graph({"body": ps.Dense(in_keys="obs", out_keys="z", hidden_units=[8, 6], non_lin="tanh")},
                      out_keys="z")
    return ps.Graph({
        "latent": latent,
        "policy": ps.LinearOutput(in_keys="z", out_keys="logits", output_units=3),
        "critic_body": ps.Dense(in_keys="z", out_keys="v_hidden", hidden_units=[5], non_lin="tanh"),
        "critic": ps.LinearOutput(in_keys="v_hidden", out_keys="value", output_units=1),
    }, out_keys=["logits", "value", "z"])


AC_SHAPES = {"obs": (7,)}


class TestAgainstReference:
    def test_non_lin_table_covers_every_name(self) -> None:
        assert set(NON_LIN_FNS) == set(ps.NON_LINEARITIES)

    @pytest.mark.parametrize("non_lin", ps.NON_LINEARITIES)
    def test_dense(self, non_lin: str) -> None:
        spec = ps.Dense(in_keys="obs", out_keys="h", hidden_units=[6, 4], non_lin=non_lin)
        module = ps.materialize(spec, {"obs": (5,)}, seed=0).train(non_lin != "rrelu")
        inputs = random_inputs({"obs": (5,)})
        out = assert_matches_reference(module, inputs)
        # and both compute what the spec says: Linear, non_lin, Linear, non_lin
        sd = module.state_dict()
        fn = NON_LIN_FNS[non_lin]
        h = fn(F.linear(inputs["obs"], sd["blocks.h.0.weight"], sd["blocks.h.0.bias"]))
        h = fn(F.linear(h, sd["blocks.h.2.weight"], sd["blocks.h.2.bias"]))
        torch.testing.assert_close(out["h"], h)
        assert out["h"].shape == (4, 4)

    @pytest.mark.parametrize("given", ["torch.nn.SELU", "nn.SELU", "SELU", "selu", "Selu"])
    def test_every_spelling_and_the_class_itself(self, given: str) -> None:
        """Maze writes `non_lin: torch.nn.SELU` (its tutorials' choice), or passes the class."""
        assert ps.Dense(in_keys="obs", out_keys="h", hidden_units=[3], non_lin=given).non_lin == "selu"
        spec = ps.Dense(in_keys="obs", out_keys="h", hidden_units=[3], non_lin=torch.nn.SELU)  # type: ignore[arg-type]
        assert spec.non_lin == "selu" and ps.from_yaml(ps.to_yaml(spec)) == spec
        layers = list(ps.materialize(spec, {"obs": (2,)}).block_module("h").children())
        assert isinstance(layers[-1], torch.nn.SELU)

    @pytest.mark.parametrize("refused, instead", [
        (torch.nn.PReLU, "use 'leaky_relu', or a TorchModel block"), ("torch.nn.GLU", "use a TorchModel block"),
        ("Softmax", "use Functional\\(func='softmax_last'\\)"), (torch.nn.Linear, "no non_lin|expected one of"),
        (int, "expected a torch.nn activation class or its name")])
    def test_what_is_no_non_lin_says_what_to_write(self, refused: object, instead: str) -> None:
        with pytest.raises(ps.SpecError, match=f"field 'non_lin': .*({instead})"):
            ps.Dense(in_keys="obs", out_keys="h", hidden_units=[3], non_lin=refused)  # type: ignore[arg-type]

    def test_maze_style_non_lin_name(self) -> None:
        spec = ps.Dense(in_keys="obs", out_keys="h", hidden_units=[3], non_lin="torch.nn.Tanh")
        module = ps.materialize(spec, {"obs": (2,)}, seed=0)
        out = assert_matches_reference(module, random_inputs({"obs": (2,)}))
        assert out["h"].abs().max() < 1  # tanh really applied

    def test_linear_output(self) -> None:
        spec = ps.LinearOutput(in_keys="obs", out_keys="logits", output_units=3)
        module = ps.materialize(spec, {"obs": (5,)}, seed=0)
        inputs = random_inputs({"obs": (5,)})
        out = assert_matches_reference(module, inputs)
        sd = module.state_dict()
        torch.testing.assert_close(out["logits"], F.linear(inputs["obs"], sd["blocks.logits.weight"],
                                                           sd["blocks.logits.bias"]))

    def test_graph_with_several_outputs(self) -> None:
        module = ps.materialize(actor_critic(), AC_SHAPES, seed=0)
        out = assert_matches_reference(module, random_inputs(AC_SHAPES))
        assert set(out) == {"logits", "value", "z"}
        assert out["logits"].shape == (4, 3)
        assert out["value"].shape == (4, 1)
        assert out["z"].shape == (4, 6)

    def test_deeply_nested_graphs(self) -> None:
        inner = ps.Graph({"d": ps.Dense(in_keys="x", out_keys="h", hidden_units=[4], non_lin="elu")}, out_keys="h")
        middle = ps.Graph({"inner": inner, "head": ps.LinearOutput(in_keys="h", out_keys="y", output_units=2)},
                          out_keys=["y", "h"])
        outer = ps.Graph({"middle": middle, "top": ps.Dense(in_keys="y", out_keys="out", hidden_units=[3])},
                         out_keys=["out", "h"])
        module = ps.materialize(outer, {"x": (5,)}, seed=0)
        inputs = random_inputs({"x": (5,)})
        out = assert_matches_reference(module, inputs)
        assert set(out) == {"out", "h"}
        assert "blocks.middle.inner.d.0.weight" in module.state_dict()
        # by hand, through the nested parameters
        sd = module.state_dict()
        h = F.elu(F.linear(inputs["x"], sd["blocks.middle.inner.d.0.weight"], sd["blocks.middle.inner.d.0.bias"]))
        y = F.linear(h, sd["blocks.middle.head.weight"], sd["blocks.middle.head.bias"])
        top = torch.relu(F.linear(y, sd["blocks.top.0.weight"], sd["blocks.top.0.bias"]))
        torch.testing.assert_close(out["h"], h)
        torch.testing.assert_close(out["out"], top)

    def test_keys_that_clash_with_generated_names(self) -> None:
        """Keys named like the generated code's own names, Python keywords, or not identifiers at all; a nested
        graph's private key ('h') equal to a key of the enclosing graph."""
        inner = ps.Graph({"a": ps.Dense(in_keys="x", out_keys="h", hidden_units=[4]),
                          "b": ps.LinearOutput(in_keys="h", out_keys="p", output_units=3)}, out_keys="p")
        spec = ps.Graph({
            "lat": inner,
            "h": ps.Dense(in_keys="self", out_keys="h", hidden_units=[3]),
            "c": ps.LinearOutput(in_keys="h", out_keys="inputs", output_units=2),
            "d": ps.LinearOutput(in_keys="p", out_keys="class", output_units=2),
            "e": ps.LinearOutput(in_keys="torch", out_keys="F", output_units=2),
            "f": ps.LinearOutput(in_keys="obs-1", out_keys="_b", output_units=2),
            "g": ps.LinearOutput(in_keys="0", out_keys="p_1", output_units=2),
        }, out_keys=["inputs", "class", "F", "_b", "p", "h", "p_1"])
        shapes = {"self": (5,), "torch": (2,), "obs-1": (3,), "x": (6,), "0": (2,)}
        module = ps.materialize(spec, shapes, seed=0)
        out = assert_matches_reference(module, random_inputs(shapes))
        assert set(out) == set(spec.out_keys)
        assert out["h"].shape == (4, 3)
        assert out["p"].shape == (4, 3)

    def test_two_inputs_two_branches(self) -> None:
        spec = ps.Graph([ps.Dense(in_keys="a", out_keys="ha", hidden_units=[3]),
                         ps.LinearOutput(in_keys="b", out_keys="hb", output_units=2)], out_keys=["ha", "hb"])
        shapes = {"a": (4,), "b": (2, 5)}
        module = ps.materialize(spec, shapes, seed=0)
        out = assert_matches_reference(module, random_inputs(shapes))
        assert out["ha"].shape == (4, 3)
        assert out["hb"].shape == (4, 2, 2)

    @pytest.mark.parametrize("spec", [
        ps.Dense(in_keys="obs", out_keys="h", hidden_units=[3]),
        ps.LinearOutput(in_keys="obs", out_keys="y", output_units=2),
        actor_critic(),
    ], ids=["dense", "linear_output", "graph"])
    def test_output_has_exactly_the_out_keys(self, spec: ps.Block) -> None:
        module = ps.materialize(spec, {"obs": (7,)}, seed=0)
        out = module(random_inputs({"obs": (7,)}))
        assert isinstance(out, dict)
        assert sorted(out) == sorted(spec.out_keys)
        assert all(isinstance(v, torch.Tensor) for v in out.values())

    def test_intermediate_keys_are_not_returned(self) -> None:
        spec = ps.Graph([ps.Dense(in_keys="obs", out_keys="h", hidden_units=[3]),
                         ps.LinearOutput(in_keys="h", out_keys="y", output_units=2)], out_keys="y")
        out = ps.materialize(spec, {"obs": (4,)}, seed=0)(random_inputs({"obs": (4,)}))
        assert list(out) == ["y"]


class TestModuleAttributes:
    def test_spec_and_in_shapes_are_kept(self) -> None:
        spec = actor_critic()
        module = ps.materialize(spec, {"obs": [7]}, seed=0)
        assert module.spec == spec
        assert module.in_shapes == {"obs": (7,)}
        assert isinstance(module, torch.nn.Module)
        assert isinstance(module, ps.SpecModule)

    def test_code_is_flat_one_call_per_block(self) -> None:
        """Issue #13: one statement per block, calling its module (the block's one definition), in program
        order; no loops."""
        module = ps.materialize(actor_critic(), AC_SHAPES, seed=0)
        code = module.code
        calls = [line.strip() for line in code.splitlines() if "_call(" in line]
        assert calls == ["z = _call(_b['latent']._modules['body'], obs)", "v_hidden = _call(_b['critic_body'], z)",
                         "logits = _call(_b['policy'], z)", "value = _call(_b['critic'], v_hidden)"]
        tree = ast.parse(code)
        assert not any(isinstance(node, (ast.For, ast.While, ast.AsyncFor, ast.comprehension))
                       for node in ast.walk(tree))


class TestInvalidArguments:
    @pytest.mark.parametrize("check", ["sometimes", "ALWAYS", "", None, True])
    def test_invalid_check(self, check: object) -> None:
        spec = ps.LinearOutput(in_keys="obs", out_keys="y", output_units=2)
        with pytest.raises(ps.SpecError, match="check"):
            ps.materialize(spec, {"obs": (3,)}, check=check)  # type: ignore[arg-type]  # wrong on purpose

    @pytest.mark.parametrize("seed", ["0", 1.5, True, [1]])
    def test_invalid_seed(self, seed: object) -> None:
        spec = ps.LinearOutput(in_keys="obs", out_keys="y", output_units=2)
        with pytest.raises(ps.SpecError, match="seed"):
            ps.materialize(spec, {"obs": (3,)}, seed=seed)  # type: ignore[arg-type]  # wrong on purpose


def state_dicts_equal(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


class TestSeeding:
    def test_same_seed_bit_identical(self) -> None:
        a = ps.materialize(actor_critic(), AC_SHAPES, seed=123).state_dict()
        b = ps.materialize(actor_critic(), AC_SHAPES, seed=123).state_dict()
        assert state_dicts_equal(a, b)

    def test_same_seed_independent_of_check_mode(self) -> None:
        a = ps.materialize(actor_critic(), AC_SHAPES, seed=5, check="off").state_dict()
        b = ps.materialize(actor_critic(), AC_SHAPES, seed=5, check="always").state_dict()
        assert state_dicts_equal(a, b)

    def test_different_seeds_differ(self) -> None:
        a = ps.materialize(actor_critic(), AC_SHAPES, seed=0).state_dict()
        b = ps.materialize(actor_critic(), AC_SHAPES, seed=1).state_dict()
        assert list(a) == list(b)
        for key in a:  # every tensor, not just one
            assert not torch.equal(a[key], b[key]), key

    def test_blocks_of_one_graph_get_different_weights(self) -> None:
        spec = ps.Graph({"one": ps.LinearOutput(in_keys="obs", out_keys="y1", output_units=3),
                         "two": ps.LinearOutput(in_keys="obs", out_keys="y2", output_units=3)},
                        out_keys=["y1", "y2"])
        sd = ps.materialize(spec, {"obs": (4,)}, seed=0).state_dict()
        assert not torch.equal(sd["blocks.one.weight"], sd["blocks.two.weight"])

    def test_seed_none_follows_torch_manual_seed(self) -> None:
        torch.manual_seed(11)
        a = ps.materialize(actor_critic(), AC_SHAPES).state_dict()
        torch.manual_seed(11)
        b = ps.materialize(actor_critic(), AC_SHAPES).state_dict()
        c = ps.materialize(actor_critic(), AC_SHAPES).state_dict()
        assert state_dicts_equal(a, b)
        assert not torch.equal(b["blocks.policy.weight"], c["blocks.policy.weight"])

    def test_block_order_in_graph_does_not_matter(self) -> None:
        blocks: dict[str, ps.Block] = {
            "latent": ps.Dense(in_keys="obs", out_keys="z", hidden_units=[6]),
            "policy": ps.LinearOutput(in_keys="z", out_keys="logits", output_units=3),
            "critic": ps.LinearOutput(in_keys="z", out_keys="value", output_units=1),
        }
        forward_order = ps.Graph(blocks, out_keys=["logits", "value"])
        reverse_order = ps.Graph(dict(reversed(list(blocks.items()))), out_keys=["logits", "value"])
        a = ps.materialize(forward_order, {"obs": (4,)}, seed=9).state_dict()
        b = ps.materialize(reverse_order, {"obs": (4,)}, seed=9).state_dict()
        assert set(a) == set(b)
        for key in a:
            assert torch.equal(a[key], b[key]), key

    def test_block_order_in_sequence_form_does_not_matter(self) -> None:
        blocks = [ps.Dense(in_keys="obs", out_keys="z", hidden_units=[6]),
                  ps.LinearOutput(in_keys="z", out_keys="logits", output_units=3),
                  ps.LinearOutput(in_keys="z", out_keys="value", output_units=1)]
        a = ps.materialize(ps.Graph(blocks, out_keys=["logits", "value"]), {"obs": (4,)}, seed=9).state_dict()
        b = ps.materialize(ps.Graph(blocks[::-1], out_keys=["logits", "value"]), {"obs": (4,)},
                           seed=9).state_dict()
        assert set(a) == set(b)
        assert all(torch.equal(a[k], b[k]) for k in a)

class TestStateDict:
    def test_loads_into_another_materialization(self) -> None:
        source = ps.materialize(actor_critic(), AC_SHAPES, seed=0)
        target = ps.materialize(actor_critic(), AC_SHAPES, seed=1, check="always")
        inputs = random_inputs(AC_SHAPES)
        assert not torch.equal(source(inputs)["logits"], target(inputs)["logits"])
        result = target.load_state_dict(source.state_dict(), strict=True)
        assert not result.missing_keys and not result.unexpected_keys
        expected, got = source(inputs), target(inputs)
        assert set(expected) == set(got)
        for key in expected:
            assert torch.equal(expected[key], got[key]), key

    def test_round_trip_through_torch_save(self) -> None:
        source = ps.materialize(actor_critic(), AC_SHAPES, seed=0)
        buffer = io.BytesIO()
        torch.save(source.state_dict(), buffer)
        buffer.seek(0)
        target = ps.materialize(actor_critic(), AC_SHAPES, seed=1)
        target.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
        inputs = random_inputs(AC_SHAPES)
        assert torch.equal(source(inputs)["value"], target(inputs)["value"])

    def test_load_with_assign_updates_expected_dtype(self) -> None:
        """Loading float64 tensors with assign=True makes the parameters float64; inputs must follow them."""
        spec = ps.LinearOutput(in_keys="obs", out_keys="y", output_units=2)
        source = ps.materialize(spec, {"obs": (3,)}, seed=0).double()
        target = ps.materialize(spec, {"obs": (3,)}, seed=1)
        target.load_state_dict(source.state_dict(), strict=True, assign=True)
        assert target.state_dict()["blocks.y.weight"].dtype == torch.float64
        inputs = random_inputs({"obs": (3,)}, dtype=torch.float64)
        assert torch.equal(target(inputs)["y"], source(inputs)["y"])


class TestCopiesAndTransforms:
    def test_deepcopy_is_equal_and_independent(self) -> None:
        module = ps.materialize(actor_critic(), AC_SHAPES, seed=0)
        clone = copy.deepcopy(module)
        inputs = random_inputs(AC_SHAPES)
        before = module(inputs)
        assert torch.equal(clone(inputs)["logits"], before["logits"])
        assert clone.spec == module.spec
        assert clone.in_shapes == module.in_shapes
        assert clone.code == module.code
        with torch.no_grad():
            for p in clone.parameters():
                p.add_(1.0)
        after = module(inputs)
        for key in before:
            assert torch.equal(before[key], after[key]), key
        assert not torch.equal(clone(inputs)["logits"], before["logits"])
        assert all(p.data_ptr() != q.data_ptr() for p, q in zip(module.parameters(), clone.parameters()))

    @pytest.mark.parametrize("copy_", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))],
                             ids=["deepcopy", "pickle"])
    @pytest.mark.parametrize("dtypes", [(torch.float64,), (torch.bfloat16,), (torch.float64, torch.float32)],
                             ids=["float64", "bfloat16", "mixed"])
    def test_copies_keep_dtype_device_grad_and_mode(self, copy_: Callable[[SpecModule], SpecModule],
                                                     dtypes: tuple[torch.dtype, ...]) -> None:
        """Issue #14: a pickled float64 or bfloat16 module came back float32 (weights rounded). Every parameter and
        buffer (a slicing block's integer index buffer too, not in the state dict) keeps its dtype and device, and
        the module its requires_grad flags and training mode."""
        spec = ps.Graph({"net": actor_critic(),
                         "pick": ps.MultiIndexSlicing(in_keys="logits", out_keys="picked", select_dim=-1,
                                                      select_idxs=[0, 2])}, out_keys=["picked", "value"])
        module = ps.materialize(spec, AC_SHAPES, seed=0).to(dtypes[0])
        if len(dtypes) > 1:
            module.block_module("net.critic").to(dtypes[1])
        module.block_module("net.policy").requires_grad_(False)
        module.eval()
        clone = copy_(module)
        expected = {n: (t.dtype, t.device, t.requires_grad) for n, t in module.state_dict(keep_vars=True).items()}
        assert {n: (t.dtype, t.device, t.requires_grad) for n, t in clone.state_dict(keep_vars=True).items()} \
            == expected
        assert {n: b.dtype for n, b in clone.named_buffers()} == {n: b.dtype for n, b in module.named_buffers()} \
            == {"blocks.pick.index": torch.long}
        assert all(torch.equal(clone.state_dict()[k], v) for k, v in module.state_dict().items())
        assert clone.training is False
        if len(dtypes) == 1:
            inputs = random_inputs(AC_SHAPES, dtype=dtypes[0])
            assert torch.equal(clone(inputs)["picked"], module(inputs)["picked"])

    @pytest.mark.parametrize("copy_", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))],
                             ids=["deepcopy", "pickle"])
    def test_copies_keep_the_device(self, copy_: Callable[[SpecModule], SpecModule]) -> None:
        """A module on another device (the meta device here: no other is at hand on CPU) stays there."""
        module = ps.materialize(actor_critic(), AC_SHAPES, seed=0).to("meta")
        clone = copy_(module)
        assert {t.device.type for t in (*clone.parameters(), *clone.buffers())} == {"meta"}

    def test_gradients_reach_every_parameter(self) -> None:
        module = ps.materialize(actor_critic(), AC_SHAPES, seed=0)
        out = module(random_inputs(AC_SHAPES))
        torch.autograd.backward(torch.stack([v.square().sum() for v in out.values()]).sum())
        names = [name for name, _ in module.named_parameters()]
        assert len(names) == 10
        for name, p in module.named_parameters():
            assert p.grad is not None, name
            assert p.grad.abs().sum() > 0, name

    def test_gradients_reach_inputs(self) -> None:
        module = ps.materialize(actor_critic(), AC_SHAPES, seed=0)
        inputs = random_inputs(AC_SHAPES)
        inputs["obs"].requires_grad_(True)
        torch.autograd.backward(module(inputs)["value"].sum())
        assert inputs["obs"].grad is not None
        assert inputs["obs"].grad.abs().sum() > 0

    def test_functional_call_uses_replacement_parameters(self) -> None:
        spec = ps.Graph([ps.Dense(in_keys="obs", out_keys="h", hidden_units=[4]),
                         ps.LinearOutput(in_keys="h", out_keys="y", output_units=3)], out_keys="y")
        module = ps.materialize(spec, {"obs": (5,)}, seed=0)
        inputs = random_inputs({"obs": (5,)})
        original = module(inputs)["y"]
        params = {name: p.detach().clone() for name, p in module.named_parameters()}
        params["blocks.y.weight"] = torch.zeros(3, 4)
        params["blocks.y.bias"] = torch.tensor([1.0, -2.0, 3.0])
        out = torch.func.functional_call(module, params, (inputs,))
        torch.testing.assert_close(out["y"], torch.tensor([1.0, -2.0, 3.0]).expand(4, 3))
        # a change in the first layer propagates as computed by hand
        params = {name: 2 * p.detach() for name, p in module.named_parameters()}
        out = torch.func.functional_call(module, params, (inputs,))
        h = torch.relu(F.linear(inputs["obs"], params["blocks.h.0.weight"], params["blocks.h.0.bias"]))
        torch.testing.assert_close(out["y"], F.linear(h, params["blocks.y.weight"], params["blocks.y.bias"]))
        # the module's own parameters are untouched
        assert torch.equal(module(inputs)["y"], original)

    def test_functional_call_gradients(self) -> None:
        module = ps.materialize(ps.LinearOutput(in_keys="obs", out_keys="y", output_units=2), {"obs": (3,)}, seed=0)
        params = {name: p.detach().clone().requires_grad_(True) for name, p in module.named_parameters()}
        inputs = random_inputs({"obs": (3,)})
        torch.func.functional_call(module, params, (inputs,))["y"].sum().backward()
        grad = params["blocks.y.bias"].grad
        assert grad is not None
        torch.testing.assert_close(grad, torch.full((2,), 4.0))  # d/db of sum over a batch of 4

    @pytest.mark.parametrize("check", ["first", "always"])
    def test_double(self, check: str) -> None:
        module = ps.materialize(actor_critic(), AC_SHAPES, seed=0, check=check).double()
        assert all(p.dtype == torch.float64 for p in module.parameters())
        with pytest.raises(ps.SignatureError, match=r"obs.*float64.*float32"):
            module(random_inputs(AC_SHAPES, dtype=torch.float32))
        inputs = random_inputs(AC_SHAPES, dtype=torch.float64)
        out = assert_matches_reference(module, inputs)
        assert all(v.dtype == torch.float64 for v in out.values())
        if check == "always":
            with pytest.raises(ps.SignatureError, match=r"obs.*float64.*float32"):
                module(random_inputs(AC_SHAPES, dtype=torch.float32))

    def test_double_matches_float_closely(self) -> None:
        module = ps.materialize(actor_critic(), AC_SHAPES, seed=0)
        inputs = random_inputs(AC_SHAPES)
        out32 = module(inputs)
        module.to(torch.float64)
        out64 = module({k: v.double() for k, v in inputs.items()})
        for key in out32:
            torch.testing.assert_close(out64[key].float(), out32[key])


class TestBatchDims:
    @pytest.mark.parametrize("batch", [(), (3,), (2, 3)], ids=["0", "1", "2"])
    def test_leading_batch_dims(self, batch: tuple[int, ...]) -> None:
        spec = ps.Graph([ps.Dense(in_keys="a", out_keys="ha", hidden_units=[3]),
                         ps.LinearOutput(in_keys="b", out_keys="hb", output_units=2)], out_keys=["ha", "hb"])
        shapes = {"a": (4,), "b": (2, 5)}
        module = ps.materialize(spec, shapes, seed=0, check="always")
        inputs = random_inputs(shapes, batch)
        out = assert_matches_reference(module, inputs)
        assert out["ha"].shape == (*batch, 3)
        assert out["hb"].shape == (*batch, 2, 2)
        # each sample alone gives (up to rounding) its slice of the batched output
        flat = {k: v.reshape(-1, *shapes[k]) for k, v in inputs.items()}
        for i in range(flat["a"].shape[0]):
            single = module({k: v[i] for k, v in flat.items()})
            torch.testing.assert_close(single["ha"], out["ha"].reshape(-1, 3)[i])
            torch.testing.assert_close(single["hb"], out["hb"].reshape(-1, 2, 2)[i])

    def test_batch_dims_may_change_between_calls(self) -> None:
        module = ps.materialize(actor_critic(), AC_SHAPES, seed=0, check="always")
        for batch in [(), (1,), (5,), (2, 3), (1, 1, 2)]:
            out = module(random_inputs(AC_SHAPES, batch))
            assert out["logits"].shape == (*batch, 3)


# inductor imports torch.utils.mkldnn, whose class bodies call the deprecated torch.jit.script_method; that
# DeprecationWarning comes from torch itself, not from perceptspec or this test
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("check", ["off", "first", "always"])
@pytest.mark.parametrize("backend", [
    "aot_eager",  # `make test`'s compile check: Dynamo captures one graph, autograd traced, no code generated
    pytest.param("inductor", marks=pytest.mark.slow),  # C++ code generation: about 30 s on a cold cache
])
def test_torch_compile_fullgraph(check: str, backend: str) -> None:
    torch._dynamo.reset()
    spec = ps.Graph([ps.Dense(in_keys="obs", out_keys="h", hidden_units=[4], non_lin="tanh"),
                     ps.LinearOutput(in_keys="h", out_keys="y", output_units=2)], out_keys=["y", "h"])
    module = ps.materialize(spec, {"obs": (3,)}, seed=0, check=check)
    compiled = torch.compile(module, fullgraph=True, backend=backend)
    inputs = random_inputs({"obs": (3,)}, (2,))
    got = compiled(inputs)
    expected = module(inputs)
    assert set(got) == {"y", "h"}
    for key in expected:
        torch.testing.assert_close(got[key], expected[key])
    # a second call with new values reuses the graph and is still right
    inputs = random_inputs({"obs": (3,)}, (2,), seed=1)
    torch.testing.assert_close(compiled(inputs)["y"], module(inputs)["y"])


class TestGeneratedSourceIsSafe:
    """Names from loaded specs never become code, and keys that Python would fold together stay distinct."""

    def test_block_name_with_a_newline_stays_in_its_comment(self) -> None:
        name = "evil\nraise RuntimeError('injected')"
        spec = ps.Graph({name: ps.Dense(in_keys="x", out_keys="y", hidden_units=[2])}, "y")
        module = ps.materialize(spec, {"x": (3,)}, seed=0)
        assert module({"x": torch.randn(3)})["y"].shape == (2,)
        assert "\nraise" not in module.code

    def test_nfkc_equal_keys_stay_distinct(self) -> None:
        spec = ps.Graph({
            "a": ps.Dense(in_keys="\ufb01x", out_keys="h1", hidden_units=[2]),
            "b": ps.Dense(in_keys="fix", out_keys="h2", hidden_units=[2]),
            "c": ps.Concat(in_keys=["h1", "h2"], out_keys="y"),
        }, "y")
        module = ps.materialize(spec, {"\ufb01x": (3,), "fix": (3,)}, seed=0)
        inputs = {"\ufb01x": torch.randn(3), "fix": torch.randn(3)}
        torch.testing.assert_close(module(inputs)["y"], run_reference(module, inputs)["y"])
