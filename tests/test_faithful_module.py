"""A materialized module is a faithful nn.Module (issue #13): what torch, TorchRL and SB3 do to modules works on it.

Each test does to a perceptspec module what users do to modules (hooks, parametrizations, pruning, swapped or
replaced parameters, functional and batched calls, copies) and checks the result against the same thing done by
hand: the same layers called one by one as plain torch modules (`by_hand`).
"""

from __future__ import annotations

import copy
import io
import pickle
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize, prune

import perceptspec as ps
from perceptspec._torch import SpecModule, run_reference

SHAPES = {"obs": (5,), "screen": (3, 8, 8)}


def spec() -> ps.Graph:
    """Dense layers, a convolution stack with batch norm, a concat, a recurrent block and a head."""
    return ps.Graph({
        "body": ps.Dense(in_keys="obs", out_keys="h", hidden_units=[6, 4], non_lin="relu"),
        "conv": ps.VGGConvDense(in_keys="screen", out_keys="s", hidden_channels=[2], hidden_units=[3],
                                use_batch_norm_conv=True),
        "cat": ps.Concat(in_keys=["h", "s"], out_keys="hs"),
        "head": ps.LinearOutput(in_keys="hs", out_keys="logits", output_units=2),
    }, out_keys=["logits", "h"])


def make(seed: int = 0, check: str = "first") -> SpecModule:
    return ps.materialize(spec(), SHAPES, seed=seed, check=check).eval()


def inputs(batch: int = 3, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(batch, *s, generator=g) for k, s in SHAPES.items()}


def sub(module: nn.Module, path: str) -> nn.Module:
    """The submodule at `path` ('blocks.body.0')."""
    return module.get_submodule(path)


def seq(module: nn.Module, path: str) -> nn.Sequential:
    found = sub(module, path)
    assert isinstance(found, nn.Sequential)
    return found


def by_hand(module: SpecModule, x: dict[str, torch.Tensor], h: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The same network, each torch layer called as a module, one after another (hooks and all); `h`, if given,
    replaces the body's output."""
    if h is None:
        h = x["obs"]
        for layer in seq(module, "blocks.body"):
            h = layer(h)
    s = x["screen"]
    for layer in seq(module, "blocks.conv.conv"):
        s = layer(s)
    s = s.flatten(-3)
    for layer in seq(module, "blocks.conv.dense"):
        s = layer(s)
    return {"logits": sub(module, "blocks.head")(torch.cat([h, s], -1)), "h": h}


def assert_outputs(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert list(got) == list(expected)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], msg=lambda m: f"output '{key}': {m}")


def linear(module: SpecModule) -> nn.Linear:
    layer = sub(module, "blocks.body.0")
    assert isinstance(layer, nn.Linear)
    return layer


def first_conv(module: SpecModule) -> nn.Conv2d:
    layer = sub(module, "blocks.conv.conv.0")
    assert isinstance(layer, nn.Conv2d)
    return layer


# --- hooks ------------------------------------------------------------------------------------------------------

class TestHooks:
    def test_forward_hook_and_pre_hook_on_the_whole_module(self) -> None:
        module, seen = make(), []
        module.register_forward_pre_hook(lambda m, args: seen.append("pre"))
        module.register_forward_hook(lambda m, args, out: {**out, "extra": out["h"] * 2})
        out = module(inputs())
        assert seen == ["pre"] and set(out) == {"logits", "h", "extra"}

    def test_forward_hook_on_a_block_module_sees_and_replaces_its_output(self) -> None:
        module, seen = make(), []

        def hook(m: nn.Module, args: Any, out: torch.Tensor) -> torch.Tensor:
            seen.append(tuple(out.shape))
            return torch.zeros_like(out)

        sub(module, "blocks.body").register_forward_hook(hook)
        out = module(inputs())
        assert seen == [(3, 4)]
        assert torch.equal(out["h"], torch.zeros(3, 4))  # the hook's value flows on, to the head as well
        assert_outputs(out, by_hand(module, inputs(), h=torch.zeros(3, 4)))

    def test_pre_hooks_on_layers_inside_blocks_change_their_inputs(self) -> None:
        module = make()
        linear(module).register_forward_pre_hook(lambda m, args: (args[0] * 0,))
        first_conv(module).register_forward_pre_hook(lambda m, args: (args[0] + 1,))
        expected = by_hand(module, inputs())
        assert_outputs(module(inputs()), expected)
        assert_outputs(run_reference(module, inputs()), expected)

    def test_forward_hooks_on_every_layer_see_every_call(self) -> None:
        """The activation-logging pattern: a hook on every leaf module records its output."""
        module = make()
        logged: dict[str, torch.Size] = {}
        leaves = [(name, m) for name, m in module.named_modules() if not list(m.children())]
        for name, layer in leaves:
            layer.register_forward_hook(lambda m, a, out, name=name: logged.__setitem__(name, out.shape))
        module(inputs())
        assert set(logged) == {name for name, _ in leaves}
        assert logged["blocks.conv.conv.2"] == (3, 2, 8, 8)  # the ReLU after batch norm: not fused away

    def test_a_forward_hook_keeps_what_it_saw(self) -> None:
        """A hook that stores a layer's output is not handed a tensor that an in-place op then changes."""
        module = make()
        saved: list[torch.Tensor] = []
        conv = first_conv(module)
        conv.register_forward_hook(lambda m, a, out: saved.append(out))
        x = inputs()
        module(x)
        expected = F.conv2d(x["screen"], conv.weight, conv.bias, padding=1)
        torch.testing.assert_close(saved[0], expected)
        assert (saved[0] < 0).any()  # a ReLU in place would have zeroed these

    def test_global_hooks(self) -> None:
        module, calls = make(), []
        handle = nn.modules.module.register_module_forward_hook(lambda m, a, out: calls.append(type(m).__name__))
        try:
            module(inputs())
        finally:
            handle.remove()
        assert {"SpecModule", "DenseModule", "Linear", "ReLU", "Conv2d", "BatchNorm2d", "ConvStack"} <= set(calls)

    def test_backward_hook_on_a_block(self) -> None:
        module, grads = make(), []

        def hook(m: nn.Module, grad_in: Any, grad_out: Any) -> None:
            grads.append(grad_out[0].shape)

        sub(module, "blocks.head").register_full_backward_hook(hook)
        torch.autograd.backward(module(inputs())["logits"].sum())
        assert grads == [(3, 2)]


# --- parametrizations, pruning, swapped parameters ---------------------------------------------------------------

class Doubled(nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return 2 * w


class TestParameters:
    def test_register_parametrization(self) -> None:
        module = make()
        parametrize.register_parametrization(linear(module), "weight", Doubled())
        parametrize.register_parametrization(sub(module, "blocks.head"), "bias", Doubled())
        assert_outputs(module(inputs()), by_hand(module, inputs()))
        loss = module(inputs())["logits"].sum()
        torch.autograd.backward(loss)
        assert sub(module, "blocks.body.0.parametrizations.weight").original.grad is not None

    def test_the_input_check_reads_a_parametrized_first_weight_without_running_it(self) -> None:
        calls = []

        class Counted(nn.Module):
            def forward(self, w: torch.Tensor) -> torch.Tensor:
                calls.append(1)
                return w

        module = make(check="always")
        parametrize.register_parametrization(linear(module), "weight", Counted())
        calls.clear()
        module(inputs())
        assert len(calls) == 1  # the forward's read; the check read the tensor the parametrization holds
        with pytest.raises(ps.SignatureError, match="dtype torch.float32"):
            module({k: v.double() for k, v in inputs().items()})

    def test_the_input_check_runs_an_unsafe_parametrization_that_may_change_the_dtype(self) -> None:
        class ToDouble(nn.Module):
            def forward(self, w: torch.Tensor) -> torch.Tensor:
                return w.double()

        module = make(check="always")
        parametrize.register_parametrization(linear(module), "weight", ToDouble(), unsafe=True)
        with pytest.raises(ps.SignatureError, match="dtype torch.float64"):
            module(inputs())

    @pytest.mark.parametrize("apply", [torch.nn.utils.parametrizations.spectral_norm,
                                       torch.nn.utils.parametrizations.weight_norm])
    def test_spectral_and_weight_norm(self, apply: Callable[[nn.Module], nn.Module]) -> None:
        module = make()
        apply(linear(module))
        apply(first_conv(module))
        assert_outputs(module(inputs()), by_hand(module, inputs()))

    def test_prune_masks_the_weights_at_every_call(self) -> None:
        module = make()
        prune.l1_unstructured(linear(module), "weight", amount=0.5)  # type: ignore[no-untyped-call]
        prune.random_unstructured(first_conv(module), "weight", amount=0.3)  # type: ignore[no-untyped-call]
        assert_outputs(module(inputs()), by_hand(module, inputs()))
        with torch.no_grad():  # training changes weight_orig; the pre-hook recomputes weight from it
            getattr(linear(module), "weight_orig").add_(1.0)
        expected = by_hand(module, inputs())
        assert_outputs(module(inputs()), expected)
        assert torch.count_nonzero(linear(module).weight) == linear(module).weight.numel() // 2

    def test_assigning_a_new_parameter_or_a_plain_tensor(self) -> None:
        module = make()
        layer = linear(module)
        layer.weight = nn.Parameter(torch.ones_like(layer.weight))
        assert_outputs(module(inputs()), by_hand(module, inputs()))
        del layer.bias
        layer.bias = torch.full((6,), 0.5)  # type: ignore[assignment]  # a plain tensor: an attribute now
        assert_outputs(module(inputs()), by_hand(module, inputs()))
        assert "blocks.body.0.bias" not in module.state_dict()

    def test_functional_call_uses_the_given_tensors(self) -> None:
        module = make()
        zeros = {k: torch.zeros_like(v) for k, v in module.named_parameters()}
        out = torch.func.functional_call(module, zeros, (inputs(),))
        assert torch.equal(out["logits"], torch.zeros(3, 2))
        assert not torch.equal(module(inputs())["logits"], torch.zeros(3, 2))  # the module's own are back

    def test_tensordict_to_module_with_detached_and_target_tensors(self) -> None:
        from tensordict import TensorDict  # type: ignore[import-untyped]  # tensordict ships no type information

        module = make(check="always")
        params = TensorDict.from_module(module)
        detached = params.detach().clone().apply(lambda t: t * 0.5 if t.is_floating_point() else t)
        expected_module = make()  # parameters and buffers (batch norm statistics) halved
        expected_module.load_state_dict({k: v * 0.5 if v.is_floating_point() else v
                                         for k, v in module.state_dict().items()})
        with detached.to_module(module):
            got = module(inputs())
        assert_outputs(got, expected_module(inputs()))
        assert_outputs(module(inputs()), make()(inputs()))  # restored afterwards

    def test_load_state_dict_deepcopy_and_pickle(self) -> None:
        module = make()
        other = make(seed=1)
        other.load_state_dict(module.state_dict())
        assert_outputs(other(inputs()), module(inputs()))
        for clone in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
            assert type(clone) is SpecModule
            assert_outputs(clone(inputs()), module(inputs()))
            assert sub(clone, "blocks.body") is not sub(module, "blocks.body")
            linear(clone).register_forward_pre_hook(lambda m, args: (args[0] * 0,))  # hooks the clone only
            assert_outputs(module(inputs()), by_hand(make(), inputs()))
        buffer = io.BytesIO()
        torch.save(module.state_dict(), buffer)
        buffer.seek(0)
        assert set(torch.load(buffer, weights_only=True)) == set(module.state_dict())


# --- structure ----------------------------------------------------------------------------------------------------

class TestStructure:
    def test_a_replaced_layer_is_called(self) -> None:
        module = make()
        seq(module, "blocks.body")[1] = nn.Tanh()
        seq(module, "blocks.conv.conv")[2] = nn.ELU()  # the ReLU after batch norm
        assert_outputs(module(inputs()), by_hand(module, inputs()))

    def test_a_replaced_block_module_is_called(self) -> None:
        module = make()
        module.blocks["body"] = nn.Sequential(nn.Linear(5, 4), nn.Sigmoid())
        out = module(inputs())
        assert bool((out["h"] > 0).all() and (out["h"] < 1).all())
        assert_outputs(out, by_hand(module, inputs()))

    def test_surgery_the_forward_cannot_honour_is_refused(self) -> None:
        module = make()
        with pytest.raises(TypeError, match="block 'body' can be replaced by another nn.Module"):
            module.blocks.body = None
        with pytest.raises(TypeError, match="block 'body' can be replaced by another nn.Module"):
            module.blocks["body"] = "relu"  # type: ignore[assignment]  # deliberately wrong
        with pytest.raises(TypeError, match="block 'body' cannot be removed"):
            del module.blocks.body
        assert_outputs(module(inputs()), by_hand(module, inputs()))

    def test_a_hook_on_a_recurrent_weight_holder_is_refused(self) -> None:
        module = ps.materialize(ps.LSTM(in_keys="x", out_keys="y", hidden_size=3), {"x": (4, 2)}, seed=0)
        sub(module, "blocks.y.rnn").register_forward_hook(lambda m, a, out: None)
        with pytest.raises(TypeError, match="'rnn' holds nn.LSTM's / nn.GRU's weights and is never called"):
            module({"x": torch.randn(4, 2)})

    def test_a_hook_on_a_convolution_stack_runs(self) -> None:
        module, seen = make(), []
        sub(module, "blocks.conv.conv").register_forward_hook(lambda m, a, out: seen.append(out.shape))
        assert_outputs(module(inputs()), by_hand(module, inputs()))
        assert seen == [(3, 2, 4, 4)]

    def test_one_class_for_every_materialized_spec(self) -> None:
        a, b = make(), ps.materialize(ps.Dense(in_keys="x", out_keys="y", hidden_units=[2]), {"x": (3,)})
        assert type(a) is type(b) is SpecModule

    def test_stack_module_state_and_vmap_over_members(self) -> None:
        members = [make(seed=s) for s in range(3)]
        params, buffers = torch.func.stack_module_state(members)
        base = copy.deepcopy(members[0]).to("meta")

        def run(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: dict[str, torch.Tensor]) -> Any:
            return torch.func.functional_call(base, (p, b), (x,))

        x = inputs()
        out = torch.vmap(run, in_dims=(0, 0, None))(params, buffers, x)
        for i, member in enumerate(members):
            torch.testing.assert_close(out["logits"][i], member(x)["logits"])


# --- calling conventions ----------------------------------------------------------------------------------------

class TestCalls:
    def test_keyword_inputs_equal_a_dict(self) -> None:
        module, x = make(), inputs()
        assert_outputs(module(**x), module(x))

    def test_a_dict_and_keywords_at_once_are_refused(self) -> None:
        with pytest.raises(ps.SignatureError, match="as one dict or as keyword arguments"):
            make()({"obs": inputs()["obs"]}, screen=inputs()["screen"])

    def test_check_finite_takes_keywords_too(self) -> None:
        module = ps.materialize(spec(), SHAPES, seed=0, check_finite=True).eval()
        assert_outputs(module(**inputs()), module(inputs()))


# --- export ---------------------------------------------------------------------------------------------------------

class TestExport:
    def test_torch_export_with_the_natural_call(self) -> None:
        module, x = make(), inputs()
        exported = torch.export.export(module, (x,))
        assert_outputs(exported.module()(x), module(x))

    # torch's ONNX exporter pickles a pytree spec through a deprecated path of its own
    @pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated:FutureWarning")
    def test_onnx_export_and_onnxruntime_compute_what_torch_computes(self, tmp_path: Any) -> None:
        ort = pytest.importorskip("onnxruntime", reason="needs onnxruntime: pip install -e '.[test]'")
        module, x = make(), inputs()
        program = torch.onnx.export(module, (x,), dynamo=True, output_names=["logits", "h"], verbose=False)
        assert program is not None
        path = tmp_path / "module.onnx"
        program.save(str(path))
        session = ort.InferenceSession(str(path))
        assert [i.name for i in session.get_inputs()] == ["obs", "screen"]
        got = session.run(["logits", "h"], {k: v.numpy() for k, v in x.items()})
        expected = module(x)
        for key, value in zip(("logits", "h"), got):
            torch.testing.assert_close(torch.from_numpy(value), expected[key].detach(), rtol=1e-5, atol=1e-6)
