"""Tests of `TorchModel`: a user nn.Module embedded in a spec by import path.

The fold against a real forward pass (declared and inferred out_shapes, extra leading dims, Maze's in_num_dims);
the seed's Example 3 modules between perceptspec blocks; serialization; the factory and forward conventions; every
invalid field, bad path and wrong module output; seeding and initialisation; and the torch-free folds.
"""

from __future__ import annotations

import concurrent.futures
import pickle
from dataclasses import replace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import perceptspec as ps
from perceptspec._torch import SpecModule, run_reference
from tests import torch_model_fixtures as fixtures
from tests.blockcheck import check_block

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = "tests.torch_model_fixtures"
PLAIN = "perceptspec.examples.plain_cartpole"


def model(factory: str = f"{FIXTURES}:Mlp", **kwargs: Any) -> ps.TorchModel:
    return ps.TorchModel(**{"in_keys": "x", "out_keys": "y", "module_factory": factory, **kwargs})


def linear(**kwargs: Any) -> ps.TorchModel:
    """torch.nn.Linear itself: its factory takes no in_shapes."""
    return model("torch.nn.Linear", **{"kwargs": {"in_features": 4, "out_features": 3}, **kwargs})


def net(module: SpecModule, path: str = "y") -> nn.Module:
    return module.block_module(path).get_submodule("net")


# --- fold == forward ------------------------------------------------------------------------------------------------

class TestFoldMatchesForward:
    @pytest.mark.parametrize("shape", [(4,), (2, 4), (3, 2, 4)])
    @pytest.mark.parametrize("declared", [False, True])
    def test_mlp_with_extra_leading_dims(self, shape: tuple[int, ...], declared: bool) -> None:
        out_shapes = [(*shape[:-1], 6)] if declared else None
        spec = model(kwargs={"hidden": [5, 6]}, out_shapes=out_shapes)
        check_block(spec, {"x": shape})
        assert ps.infer_shapes(spec, {"x": shape})["y"] == (*shape[:-1], 6)
        assert ps.count_parameters(spec, {"x": shape}) == (shape[-1] * 5 + 5) + (5 * 6 + 6)

    def test_torch_nn_class_by_dotted_path(self) -> None:
        module = check_block(linear(), {"x": (4,)})
        assert isinstance(net(module), nn.Linear)
        assert ps.count_parameters(linear(), {"x": (4,)}) == 4 * 3 + 3

    @pytest.mark.parametrize("declared", [False, True])
    def test_two_inputs_and_a_tuple_of_two_outputs(self, declared: bool) -> None:
        out_shapes = [(3, 6, 5), (5,)] if declared else None
        spec = ps.TorchModel(in_keys=["image", "vector"], out_keys=["features", "mixed"], out_shapes=out_shapes,
                             module_factory=f"{FIXTURES}:ConvMlp")
        in_shapes = {"image": (2, 6, 5), "vector": (7,)}
        check_block(spec, in_shapes)
        assert ps.infer_shapes(spec, in_shapes) == {**in_shapes, "features": (3, 6, 5), "mixed": (5,)}
        assert ps.count_parameters(spec, in_shapes) == (2 * 3 * 9 + 3) + ((3 + 7) * 5 + 5)

    def test_dict_in_dict_out_takes_the_out_keys_and_ignores_extra_ones(self) -> None:
        spec = ps.TorchModel(in_keys=["p", "q"], out_keys=["b", "a"], module_factory=f"{FIXTURES}:DictHeads",
                             kwargs={"units": 3}, dict_inputs=True)
        in_shapes = {"p": (2,), "q": (5,)}
        module = check_block(spec, in_shapes)
        assert ps.infer_shapes(spec, in_shapes) == {**in_shapes, "b": (1,), "a": (3,)}
        inputs = {"p": torch.randn(4, 2), "q": torch.randn(4, 5)}
        heads = net(module, "b")
        with torch.no_grad():
            expected = heads({"p": inputs["p"], "q": inputs["q"]})
            out = module(inputs)
        torch.testing.assert_close(out["a"], expected["a"])
        torch.testing.assert_close(out["b"], expected["b"])

    def test_batch_norm_and_dropout_modules_infer_in_eval_mode(self) -> None:
        spec = model(f"{FIXTURES}:Normed", kwargs={"features": 3})
        assert ps.infer_shapes(spec, {"x": (3,)})["y"] == (3,)
        check_block(spec, {"x": (3,)}, batches=[(4,), (2, 3)])  # (train-mode batch norm needs more than one row)

    def test_generated_forward_calls_the_wrapper(self) -> None:
        module = ps.materialize(linear(), {"x": (4,)}, seed=0)
        assert "y = _call(_b['y'], x)" in module.code
        assert list(module.state_dict()) == ["blocks.y.net.weight", "blocks.y.net.bias"]


class TestMazeNumDims:
    """Maze's in_num_dims / out_num_dims: the module sees the trailing dims, the leading feature dims are carried."""

    @pytest.mark.parametrize("shape", [(4,), (5, 4), (2, 5, 4)])
    def test_linear_on_the_last_dim_carries_leading_dims(self, shape: tuple[int, ...]) -> None:
        spec = linear(in_num_dims=[2], out_num_dims=[2])
        check_block(spec, {"x": shape})
        assert ps.infer_shapes(spec, {"x": shape})["y"] == (*shape[:-1], 3)

    def test_conv2d_against_plain_torch_over_a_leading_feature_dim(self) -> None:
        spec = model("torch.nn:Conv2d", kwargs={"in_channels": 3, "out_channels": 4, "kernel_size": 3},
                     in_num_dims=4, out_num_dims=4, out_shapes=[(4, 6, 5)])
        in_shapes = {"x": (2, 3, 8, 7)}
        module = check_block(spec, in_shapes)
        assert ps.infer_shapes(spec, in_shapes)["y"] == (2, 4, 6, 5)
        conv = nn.Conv2d(3, 4, 3)
        conv.load_state_dict(net(module).state_dict())
        x = torch.randn(6, 2, 3, 8, 7)
        with torch.no_grad():
            expected = conv(x.reshape(12, 3, 8, 7)).reshape(6, 2, 4, 6, 5)
            torch.testing.assert_close(module({"x": x})["y"], expected)

    def test_without_num_dims_the_module_sees_the_whole_shape(self) -> None:
        seen: dict[str, Any] = {}
        spec = model(kwargs={"hidden": [3]})
        module = ps.materialize(spec, {"x": (5, 4)}, seed=0)
        hook = net(module).register_forward_pre_hook(lambda _, args: seen.update(shape=tuple(args[0].shape)))
        module({"x": torch.randn(2, 7, 5, 4)})
        hook.remove()
        assert seen["shape"] == (14, 5, 4)

    def test_leading_dims_must_agree_over_inputs(self) -> None:
        spec = ps.TorchModel(in_keys=["p", "q"], out_keys=["a", "b"], module_factory=f"{FIXTURES}:DictHeads",
                             dict_inputs=True, in_num_dims=[2, 2], out_shapes=[(4,), (1,)])
        assert ps.infer_shapes(spec, {"p": (3, 2), "q": (3, 5)})["a"] == (3, 4)
        with pytest.raises(ps.ShapeError, match=r"block 'a' \(TorchModel\), key 'q': expected the leading dims "
                                                r"\(3,\) of the first input.*got \(2, 5\)"):
            ps.infer_shapes(spec, {"p": (3, 2), "q": (2, 5)})

    def test_input_rank_below_in_num_dims(self) -> None:
        spec = linear(in_num_dims=[3])
        with pytest.raises(ps.ShapeError, match=r"key 'x': expected a shape with at least 2 dim\(s\) "
                                                r"\(in_num_dims 3, batch included\), got \(4,\)"):
            ps.infer_shapes(spec, {"x": (4,)})

    def test_inferred_output_rank_must_match_out_num_dims(self) -> None:
        with pytest.raises(ps.ShapeError, match=r"block 'y' \(TorchModel\): expected output 'y' of rank 3 "
                                                r"\(out_num_dims, batch included\), got \(1, 3\)"):
            ps.infer_shapes(linear(out_num_dims=[3]), {"x": (4,)})


# --- the seed's Example 3 modules between perceptspec blocks ----------------------------------------------------------

class TestExample3:
    """The plain modules see (batch, 16) latents; in_num_dims / out_num_dims 2 carry extra leading dims (Maze)."""

    def spec(self, declared: bool) -> ps.Graph:
        shapes: dict[str, Any] = {"policy": [(8,)], "critic": [(1,)]} if declared else {"policy": None,
                                                                                        "critic": None}
        return ps.Graph({
            "latent": ps.Dense(in_keys="observation", out_keys="latent", hidden_units=[16], non_lin="tanh"),
            "policy": ps.TorchModel(in_keys="latent", out_keys="embedding", dict_inputs=True, in_num_dims=2,
                                    module_factory=f"{PLAIN}:PlainCartPolePolicy", out_shapes=shapes["policy"],
                                    kwargs={"obs_shapes": {"latent": [16]},
                                            "action_logits_shapes": {"embedding": [8]}, "hidden_units": [12]}),
            "critic": ps.TorchModel(in_keys="latent", out_keys="value", dict_inputs=True, in_num_dims=2,
                                    out_num_dims=2,
                                    module_factory=f"{PLAIN}.PlainCartPoleCritic", out_shapes=shapes["critic"],
                                    kwargs={"obs_shapes": {"latent": [16]}, "hidden_units": [12, 6]}),
            "action": ps.LinearOutput(in_keys="embedding", out_keys="action", output_units=2),
        }, out_keys=["action", "value"])

    @pytest.mark.parametrize("declared", [False, True])
    def test_in_a_graph(self, declared: bool) -> None:
        spec, in_shapes = self.spec(declared), {"observation": (4,)}
        check_block(spec, in_shapes)
        check_block(spec, {"observation": (3, 4)})  # the plain modules see the leading dim as batch
        assert ps.infer_shapes(spec, in_shapes) == {"observation": (4,), "latent": (16,), "embedding": (8,),
                                                    "value": (1,), "action": (2,)}
        policy = (16 * 12 + 12) + (12 * 8 + 8)
        critic = (16 * 12 + 12) + (12 * 6 + 6) + (6 + 1)
        assert ps.count_parameters(spec, in_shapes) == (4 * 16 + 16) + policy + critic + (8 * 2 + 2)

    def test_declared_shapes_are_per_sample_module_outputs(self) -> None:
        # without in_num_dims the critic sees (batch, 3, 16) and returns (batch, 3, 1): not the declared (1,)
        spec = ps.TorchModel(in_keys="latent", out_keys="value", dict_inputs=True, out_shapes=[(1,)],
                             module_factory=f"{PLAIN}:PlainCartPoleCritic", kwargs={"obs_shapes": {"latent": [16]}})
        module = ps.materialize(spec, {"latent": (3, 16)}, seed=0)
        with pytest.raises(ps.ShapeError, match=r"returned shape \(2, 3, 1\), expected \(2, 1\)"):
            module({"latent": torch.randn(2, 3, 16)})
        assert ps.infer_shapes(replace(spec, out_shapes=None), {"latent": (3, 16)})["value"] == (3, 1)

    def test_summary_labels_the_module(self) -> None:
        summary = ps.summary(self.spec(True), {"observation": (4,)})
        assert "TorchModel PlainCartPolePolicy" in summary and "TorchModel PlainCartPoleCritic" in summary

    def test_yaml_round_trip(self) -> None:
        spec = self.spec(True)
        text = ps.to_yaml(spec)
        assert "module_factory: perceptspec.examples.plain_cartpole:PlainCartPolePolicy" in text
        back = ps.from_yaml(text)
        assert back == spec and hash(back) == hash(spec)
        assert ps.from_dict(ps.to_dict(spec)) == spec

    def test_pickle_round_trip_of_the_materialized_module(self) -> None:
        module = ps.materialize(self.spec(False), {"observation": (4,)}, seed=1)
        clone = pickle.loads(pickle.dumps(module))
        x = {"observation": torch.randn(3, 4)}
        with torch.no_grad():
            for key, value in module(x).items():
                assert torch.equal(value, clone(x)[key])

    @pytest.mark.slow  # make test-all; make test compiles once, in test_materialize
    def test_torch_compile_fullgraph(self) -> None:
        module = ps.materialize(self.spec(True), {"observation": (4,)}, seed=0, check="off")
        compiled = torch.compile(module, fullgraph=True, backend="eager")
        x = {"observation": torch.randn(5, 4)}
        with torch.no_grad():
            expected, got = module(x), compiled(x)
        for key in expected:
            torch.testing.assert_close(got[key], expected[key])


# --- the spec value ---------------------------------------------------------------------------------------------------

class TestSpecValue:
    def test_kwargs_freeze_to_tuples_and_pmaps_and_compare_by_value(self) -> None:
        a = model(kwargs={"hidden": [4, 5], "extra": {"n": [1, [2, 3]]}})
        b = model(kwargs={"hidden": (4, 5), "extra": {"n": (1, (2, 3))}})
        assert a == b and hash(a) == hash(b)
        extra = a.kwargs["extra"]
        assert isinstance(extra, Mapping)
        assert a.kwargs["hidden"] == (4, 5) and extra["n"] == (1, (2, 3))
        assert ps.from_yaml(ps.to_yaml(a)) == a

    def test_one_flat_shape_for_one_out_key(self) -> None:
        assert model(out_shapes=(4, 3)).out_shapes == ((4, 3),)
        assert model(out_shapes=[[]]).out_shapes == ((),)

    def test_immutable(self) -> None:
        spec = model()
        with pytest.raises(AttributeError):
            spec.module_factory = "x.y"  # type: ignore[misc]  # the point of the test

    def test_factory_receives_in_shapes_and_thawed_kwargs(self) -> None:
        spec = model(f"{FIXTURES}.recording_linear", kwargs={"units": 3, "options": {"a": [1, {"b": [2]}]}})
        check_block(spec, {"x": (5, 6)})
        assert fixtures.received == {"in_shapes": {"x": (5, 6)}, "units": 3, "options": {"a": (1, {"b": (2,)})}}
        assert type(fixtures.received["options"]) is dict

    def test_in_shapes_are_what_the_module_sees(self) -> None:
        spec = model(f"{FIXTURES}:recording_linear", kwargs={"units": 3}, in_num_dims=2)
        assert ps.infer_shapes(spec, {"x": (5, 6)})["y"] == (5, 3)
        assert fixtures.received["in_shapes"] == {"x": (6,)}

    def test_folds_build_the_module_once_per_block_and_shapes(self) -> None:
        fixtures.calls.clear()
        spec = model(kwargs={"hidden": [7, 3]})  # a spec value no other test builds
        for _ in range(3):
            ps.infer_shapes(spec, {"x": (9,)})
            ps.count_parameters(spec, {"x": (9,)})
            ps.summary(spec, {"x": (9,)})
        assert fixtures.calls["Mlp"] == 1
        ps.infer_shapes(spec, {"x": (8,)})
        assert fixtures.calls["Mlp"] == 2

    def test_inference_leaves_the_global_rng_alone_and_allocates_on_meta(self) -> None:
        spec = model(f"{FIXTURES}:NoisyInit", kwargs={"features": 5})
        state = torch.get_rng_state()
        assert ps.infer_shapes(spec, {"x": (5,)})["y"] == (5,)
        assert ps.count_parameters(spec, {"x": (5,)}) == 30
        assert torch.equal(torch.get_rng_state(), state)


# --- invalid fields ---------------------------------------------------------------------------------------------------

class TestInvalidFields:
    @pytest.mark.parametrize("path", ["Mlp", "tests.torch_model_fixtures:", ":Mlp", "a b.c", "tests..x", "a:b:c",
                                      "1tests.x", "tests.x:y-z"])
    def test_module_factory_form(self, path: str) -> None:
        with pytest.raises(ps.SpecError, match=r"TorchModel\(out_keys='y'\): field 'module_factory': expected an "
                                               r"import path 'package.module:Factory' or 'package.module.Factory', "
                                               rf"got '{path}'"):
            model(path)

    def test_module_factory_must_be_a_string(self) -> None:
        with pytest.raises(ps.SpecError, match=r"field 'module_factory': expected str, got <class 'torch.nn"):
            model(nn.Linear)  # type: ignore[arg-type]  # the point of the test: a callable is refused

    @pytest.mark.parametrize("value, problem", [
        (nn.Linear(2, 2), r"kwargs\['bad'\] is a Linear"),
        ({"set": {1, 2}}, r"kwargs\['bad'\]\['set'\] is a set"),
        ([1, [2, print]], r"kwargs\['bad'\]\[1\]\[1\] is a builtin_function_or_method"),
        ({1: "x"}, r"kwargs\['bad'\] has a non-string key 1"),
    ])
    def test_kwargs_must_be_plain_values(self, value: object, problem: str) -> None:
        with pytest.raises(ps.SpecError, match=r"field 'kwargs': expected plain values .*so the spec stays hashable "
                                               rf"and serializable; {problem}"):
            model(kwargs={"bad": value})

    def test_kwargs_must_not_pass_in_shapes(self) -> None:
        with pytest.raises(ps.SpecError, match=r"field 'kwargs': 'in_shapes' is passed by the block"):
            model(kwargs={"in_shapes": {"x": [4]}})

    def test_kwargs_keys_are_strings(self) -> None:
        with pytest.raises(ps.SpecError, match=r"field 'kwargs': expected Mapping\[str, object\]"):
            model(kwargs={1: 2})

    def test_one_out_shape_per_out_key(self) -> None:
        with pytest.raises(ps.SpecError, match=r"field 'out_shapes': expected one entry per key of \['y', 'z'\], "
                                               r"got \[\[4\]\]"):
            model(out_keys=["y", "z"], out_shapes=[(4,)])

    def test_out_shapes_positive(self) -> None:
        with pytest.raises(ps.SpecError, match=r"field 'out_shapes': expected shapes of positive ints, "
                                               r"got \[\[4, 0\]\]"):
            model(out_shapes=[(4, 0)])

    def test_out_shapes_type(self) -> None:
        with pytest.raises(ps.SpecError, match=r"field 'out_shapes': expected Sequence\[Sequence\[int\]\] \| None"):
            model(out_shapes=[("a",)])

    def test_one_in_num_dim_per_in_key(self) -> None:
        with pytest.raises(ps.SpecError, match=r"field 'in_num_dims': expected one entry per key of \['x'\], "
                                               r"got \[2, 2\]"):
            model(in_num_dims=[2, 2])

    @pytest.mark.parametrize("field", ["in_num_dims", "out_num_dims"])
    def test_num_dims_count_the_batch(self, field: str) -> None:
        with pytest.raises(ps.SpecError, match=rf"field '{field}': expected ranks of at least 1 \(the batch dim "
                                               r"counts\), got \[0\]"):
            fields: dict[str, Any] = {field: [0]}
            model(**fields)

    def test_out_shapes_agree_with_out_num_dims(self) -> None:
        with pytest.raises(ps.SpecError, match=r"field 'out_shapes': out key 'y' has out_num_dims 3 \(batch "
                                               r"included\), so its shape needs 2 dim\(s\), got \(4,\)"):
            model(out_shapes=[(4,)], out_num_dims=[3])

    def test_every_problem_at_once(self) -> None:
        with pytest.raises(ps.SpecError) as info:
            model("nope", kwargs={"in_shapes": 1}, in_num_dims=[0])
        assert len(info.value.problems) == 3


# --- bad paths and bad factories: errors at inference / materialize time ---------------------------------------------

class TestBadFactories:
    @pytest.mark.parametrize("path, problem", [
        ("no_such_package.models:Net", r"importing|no module of it can be imported"),
        ("no_such_package.models.Net", r"no module of it can be imported \(tried 'no_such_package.models', "
                                       r"'no_such_package'\)"),
        (f"{FIXTURES}:Missing", r"'tests.torch_model_fixtures' has no attribute 'Missing'"),
        (f"{FIXTURES}.Mlp.nope", r"'tests.torch_model_fixtures.Mlp' has no attribute 'nope'"),
        (f"{FIXTURES}:NOT_CALLABLE", r"it names a int, not a class or function"),
    ])
    @pytest.mark.parametrize("declared", [False, True])
    def test_unresolvable_path(self, path: str, problem: str, declared: bool) -> None:
        spec = model(path, out_shapes=[(3,)] if declared else None)
        message = rf"TorchModel\(out_keys='y'\): field 'module_factory' \('{path}'\): ({problem})"
        with ps.allow("no_such_package"):  # (tests/test_trust.py: a path outside the allow-list is never imported)
            self.assert_unresolvable(spec, message, declared)

    @staticmethod
    def assert_unresolvable(spec: ps.TorchModel, message: str, declared: bool) -> None:
        if declared:
            assert ps.infer_shapes(spec, {"x": (4,)})["y"] == (3,)  # the path is not needed for declared shapes
            with pytest.raises(ps.SpecError, match=message):
                ps.count_parameters(spec, {"x": (4,)})
        else:
            with pytest.raises(ps.SpecError, match=message):
                ps.infer_shapes(spec, {"x": (4,)})
        with pytest.raises(ps.SpecError, match=message):
            ps.materialize(spec, {"x": (4,)})

    def test_factory_raises(self) -> None:
        with pytest.raises(ps.SpecError, match=r"field 'module_factory' \('tests.torch_model_fixtures:Explodes'\): "
                                               r"calling it with \[\] failed: RuntimeError: boom"):
            ps.infer_shapes(model(f"{FIXTURES}:Explodes"), {"x": (4,)})

    def test_factory_with_wrong_kwargs(self) -> None:
        with pytest.raises(ps.SpecError, match=r"calling it with \['in_features', 'units'\] failed: TypeError"):
            ps.infer_shapes(model("torch.nn.Linear", kwargs={"in_features": 4, "units": 3}), {"x": (4,)})

    def test_factory_returns_no_module(self) -> None:
        with pytest.raises(ps.SpecError, match=r"expected it to return a torch.nn.Module, got a int"):
            ps.count_parameters(model(f"{FIXTURES}:not_a_module", out_shapes=[(1,)]), {"x": (4,)})


# --- wrong module outputs ---------------------------------------------------------------------------------------------

class TestWrongOutputs:
    @pytest.mark.parametrize("check", ["first", "off"])
    def test_wrong_declared_shape_is_caught_on_call(self, check: str) -> None:
        spec = linear(out_shapes=[(5,)])
        assert ps.infer_shapes(spec, {"x": (4,)})["y"] == (5,)
        module = ps.materialize(spec, {"x": (4,)}, check=check)
        message = (r"block 'y' \(TorchModel\), key 'y': module 'torch.nn.Linear' returned shape \(6, 3\), "
                   r"expected \(6, 5\) \(the flattened batch of 6, then the out shape \(5,\)\)")
        for _ in range(2):  # on every call, not only the first
            with pytest.raises(ps.ShapeError, match=message):
                module({"x": torch.randn(2, 3, 4)})
        with pytest.raises(ps.ShapeError, match=message):
            run_reference(module, {"x": torch.randn(2, 3, 4)})

    def test_wrong_shape_in_a_graph_names_the_out_key(self) -> None:
        spec = ps.Graph([linear(out_keys="h", out_shapes=[(2,)]),
                         ps.Dense(in_keys="h", out_keys="y", hidden_units=[3])], out_keys="y")
        module = ps.materialize(spec, {"x": (4,)}, seed=0)
        with pytest.raises(ps.ShapeError, match=r"block 'h' \(TorchModel\), key 'h': .*returned shape \(1, 3\)"):
            module({"x": torch.randn(4)})

    def test_missing_dict_key(self) -> None:
        spec = ps.TorchModel(in_keys="p", out_keys=["a", "c"], module_factory=f"{FIXTURES}:DictHeads",
                             dict_inputs=True, out_shapes=[(4,), (1,)])
        with pytest.raises(ps.ShapeError, match=r"block 'a' \(TorchModel\), key 'c': module "
                                                r"'tests.torch_model_fixtures:DictHeads' returned keys \['a', 'b', "
                                                r"'extra'\], expected a dict holding the out keys \['a', 'c'\]"):
            ps.materialize(spec, {"p": (3,)}, seed=0)({"p": torch.randn(2, 3)})
        inferred = ps.TorchModel(in_keys="p", out_keys=["a", "c"], module_factory=f"{FIXTURES}:DictHeads",
                                 dict_inputs=True)
        with pytest.raises(ps.ShapeError, match=r"block 'a' \(TorchModel\): expected 'tests.torch_model_fixtures:"
                                                r"DictHeads' to return a dict holding the out keys"):
            ps.infer_shapes(inferred, {"p": (3,)})

    def test_wrong_number_of_outputs(self) -> None:
        spec = linear(out_keys=["y", "z"], out_shapes=[(3,), (3,)])
        with pytest.raises(ps.ShapeError, match=r"returned one Tensor, expected 2 tensors, one per out key "
                                                r"\['y', 'z'\] \(a tuple or a dict\)"):
            ps.materialize(spec, {"x": (4,)}, seed=0)({"x": torch.randn(4)})
        spec = ps.TorchModel(in_keys=["image", "vector"], out_keys="y", module_factory=f"{FIXTURES}:ConvMlp")
        with pytest.raises(ps.ShapeError, match=r"expected 'tests.torch_model_fixtures:ConvMlp' to return 1 "
                                                r"tensor\(s\), one per out key \['y'\], got a tuple of 2"):
            ps.infer_shapes(spec, {"image": (2, 4, 4), "vector": (3,)})

    def test_module_that_drops_the_batch_dim(self) -> None:
        with pytest.raises(ps.ShapeError, match=r"block 'y' \(TorchModel\): expected a module that keeps the batch "
                                                r"dim first \(output 'y' on a batch of 1\), got \(2,\)"):
            ps.infer_shapes(model(f"{FIXTURES}:SqueezesBatch"), {"x": (4,)})
        module = ps.materialize(model(f"{FIXTURES}:SqueezesBatch", out_shapes=[(2,)]), {"x": (4,)}, seed=0)
        with pytest.raises(ps.ShapeError, match=r"returned shape \(2,\), expected \(3, 2\)"):
            module({"x": torch.randn(3, 4)})

    def test_input_shape_the_module_cannot_take(self) -> None:
        with pytest.raises(ps.ShapeError, match=r"block 'y' \(TorchModel\): expected per-sample input shapes the "
                                                r"module 'torch.nn.Linear' can take \(it ran on meta tensors of "
                                                r"shapes \{'x': \(5,\)\}.*got RuntimeError: .*\[1, 5\]"):
            ps.infer_shapes(linear(), {"x": (5,)})

    def test_module_that_cannot_run_on_meta_needs_declared_shapes(self) -> None:
        with pytest.raises(ps.ShapeError, match=r"cannot run on the meta device, declare out_shapes"):
            ps.infer_shapes(model(f"{FIXTURES}:NeedsValues"), {"x": (4,)})
        check_block(model(f"{FIXTURES}:NeedsValues", out_shapes=[(3,)]), {"x": (4,)})


# --- seeding and initialisation --------------------------------------------------------------------------------------

class TestSeedingAndInit:
    def test_same_seed_same_weights_and_buffers(self) -> None:
        spec = model(f"{FIXTURES}:NoisyInit", kwargs={"features": 5})
        a, b = (ps.materialize(spec, {"x": (5,)}, seed=3).state_dict() for _ in range(2))
        assert set(a) == {"blocks.y.net.noise", "blocks.y.net.linear.weight", "blocks.y.net.linear.bias"}
        assert all(torch.equal(a[k], b[k]) for k in a)
        c = ps.materialize(spec, {"x": (5,)}, seed=4).state_dict()
        assert not torch.equal(a["blocks.y.net.linear.weight"], c["blocks.y.net.linear.weight"])
        assert not torch.equal(a["blocks.y.net.noise"], c["blocks.y.net.noise"])

    def test_seeding_leaves_the_global_rng_alone(self) -> None:
        spec = model(f"{FIXTURES}:NoisyInit", kwargs={"features": 5})
        state = torch.get_rng_state()
        ps.materialize(spec, {"x": (5,)}, seed=0)
        assert torch.equal(torch.get_rng_state(), state)

    def test_seeded_builds_are_thread_safe(self) -> None:
        """Issue #14: eight threads materializing seeded TorchModels each get their seed's weights (before the lock,
        57-65 of 400 modules got another build's), and the caller's global RNG is left as it was."""
        spec = model(f"{FIXTURES}:NoisyInit", kwargs={"features": 5})
        expected = {seed: ps.materialize(spec, {"x": (5,)}, seed=seed).state_dict() for seed in range(8)}
        state = torch.get_rng_state()

        def build(seed: int) -> list[bool]:
            return [all(torch.equal(v, expected[seed][k])
                        for k, v in ps.materialize(spec, {"x": (5,)}, seed=seed).state_dict().items())
                    for _ in range(25)]

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(build, range(8)))
        assert [sum(r) for r in results] == [25] * 8
        assert torch.equal(torch.get_rng_state(), state)

    def test_without_seed_the_global_rng_builds_it(self) -> None:
        spec = model("torch.nn.Linear", kwargs={"in_features": 3, "out_features": 2})
        torch.manual_seed(5)
        a = ps.materialize(spec, {"x": (3,)}).state_dict()
        torch.manual_seed(5)
        expected = nn.Linear(3, 2).state_dict()
        assert all(torch.equal(a[f"blocks.y.net.{k}"], v) for k, v in expected.items())

    def test_keeps_the_module_init_unless_its_own_init_is_set(self) -> None:
        spec = model(kwargs={"hidden": [6, 5]})
        own = ps.materialize(spec, {"x": (4,)}, seed=2).state_dict()
        in_graph = ps.Graph([spec], out_keys="y", init=ps.NormC(0.01))  # a Graph's init does not reach inside
        graph = ps.materialize(in_graph, {"x": (4,)}, seed=2).state_dict()
        assert all(torch.equal(own[k], graph[k]) for k in own)
        normc = ps.materialize(model(kwargs={"hidden": [6, 5]}, init=ps.NormC(0.01)), {"x": (4,)}, seed=2)
        for layer in net(normc).modules():
            if isinstance(layer, nn.Linear):
                torch.testing.assert_close(layer.weight.norm(dim=1), torch.full((layer.out_features,), 0.01))
                assert torch.equal(layer.bias, torch.zeros(layer.out_features))

    def test_explicit_init_reaches_conv_layers(self) -> None:
        spec = ps.TorchModel(in_keys=["image", "vector"], out_keys=["f", "m"], module_factory=f"{FIXTURES}:ConvMlp",
                             init=ps.Orthogonal(1.0))
        module = ps.materialize(spec, {"image": (2, 4, 4), "vector": (3,)}, seed=0)
        conv = net(module, "f").get_submodule("conv")
        assert isinstance(conv, nn.Conv2d) and conv.bias is not None
        rows = conv.weight.reshape(conv.out_channels, -1)
        torch.testing.assert_close(rows @ rows.T, torch.eye(conv.out_channels))
        assert torch.equal(conv.bias, torch.zeros(conv.out_channels))


# --- the folds without torch -----------------------------------------------------------------------------------------
