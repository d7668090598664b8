"""The spec layer: descriptors normalise, compare and hash by value, cannot change, and reject bad fields.

One class per concern; every validation case checks that the `SpecError` message names the descriptor kind and
the field, as the API promises ("bad field types or values raise ps.SpecError naming the block and field").
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import re
from collections.abc import Iterator
from typing import Any

import pytest
from pyrsistent import PMap

import perceptspec as ps

DENSE: dict[str, Any] = {"in_keys": "obs", "out_keys": "hidden", "hidden_units": [8, 4]}
HEAD: dict[str, Any] = {"in_keys": "hidden", "out_keys": "logits", "output_units": 3}


def dense(**overrides: Any) -> ps.Dense:
    return ps.Dense(**{**DENSE, **overrides})


def head(**overrides: Any) -> ps.LinearOutput:
    return ps.LinearOutput(**{**HEAD, **overrides})


def policy_graph() -> ps.Graph:
    return ps.Graph({"body": dense(), "head": head(bias=ps.CategoricalBias(probs=[0.5, 0.25, 0.25]))},
                    out_keys="logits", init=ps.NormC(std=1.0))


def nested_graph() -> ps.Graph:
    latent = ps.Graph({"body": dense(init=ps.Orthogonal(gain=2.0))}, out_keys="hidden", init=ps.XavierUniform())
    return ps.Graph({"latent": latent, "policy": head(init=ps.NormC(std=0.01)),
                     "value": ps.LinearOutput(in_keys="hidden", out_keys="value", output_units=1)},
                    out_keys=["logits", "value"])


# A spread of valid specs (blocks, graphs, initialisers, biases) for the value-semantics checks.
SPECS = [
    pytest.param(dense(), id="Dense"),
    pytest.param(dense(non_lin="tanh", init=ps.TorchDefault()), id="Dense-tanh-TorchDefault"),
    pytest.param(dense(hidden_units=[1], non_lin="leaky_relu", init=ps.XavierUniform(gain=0.5)), id="Dense-xavier"),
    pytest.param(head(), id="LinearOutput"),
    pytest.param(head(bias=ps.ConstantBias(value=-2.5), init=ps.Orthogonal(gain=0.01)), id="LinearOutput-const"),
    pytest.param(head(bias=ps.CategoricalBias(probs=[0.2, 0.3, 0.5])), id="LinearOutput-categorical"),
    pytest.param(head(bias=ps.BernoulliBias(p=0.1)), id="LinearOutput-bernoulli"),
    pytest.param(head(bias=ps.BernoulliBias(p=[0.1, 0.5, 0.9])), id="LinearOutput-bernoulli-per-unit"),
    pytest.param(ps.NormC(std=0.01), id="NormC"),
    pytest.param(ps.TorchDefault(), id="TorchDefault"),
    pytest.param(policy_graph(), id="Graph"),
    pytest.param(nested_graph(), id="Graph-nested"),
]


def frozen_values(value: object) -> Iterator[object]:
    """Every value reachable from a descriptor's fields (recursing into descriptors, tuples and maps)."""
    yield value
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            yield from frozen_values(getattr(value, f.name))
    elif isinstance(value, tuple):
        for item in value:
            yield from frozen_values(item)
    elif isinstance(value, PMap):
        for item in value.values():
            yield from frozen_values(item)


class TestNormalisation:
    def test_single_key_becomes_one_tuple(self) -> None:
        spec = dense(in_keys="obs", out_keys="hidden")
        assert spec.in_keys == ("obs",)
        assert spec.out_keys == ("hidden",)
        assert ps.Graph({"body": spec}, out_keys="hidden").out_keys == ("hidden",)

    def test_lists_become_tuples(self) -> None:
        spec = dense(in_keys=["obs"], out_keys=["hidden"], hidden_units=[8, 4])
        assert type(spec.in_keys) is tuple and type(spec.out_keys) is tuple
        assert type(spec.hidden_units) is tuple and spec.hidden_units == (8, 4)
        categorical = ps.CategoricalBias(probs=[0.25, 0.75])
        assert type(categorical.probs) is tuple and categorical.probs == (0.25, 0.75)
        bernoulli = ps.BernoulliBias(p=[0.25, 0.75])
        assert type(bernoulli.p) is tuple and bernoulli.p == (0.25, 0.75)
        graph = ps.Graph({"body": spec}, out_keys=["hidden"])
        assert type(graph.out_keys) is tuple and type(graph.in_keys) is tuple

    def test_graph_blocks_become_a_pmap(self) -> None:
        graph = policy_graph()
        assert isinstance(graph.blocks, PMap)
        assert dict(graph.blocks) == {"body": dense(), "head": policy_graph().blocks["head"]}

    @pytest.mark.parametrize(("written", "canonical"), [
        ("relu", "relu"), ("torch.nn.ReLU", "relu"), ("torch.nn.Tanh", "tanh"), ("torch.nn.ELU", "elu"),
        ("torch.nn.LeakyReLU", "leaky_relu"), ("torch.nn.Sigmoid", "sigmoid"), ("torch.nn.GELU", "gelu"),
        ("torch.nn.Identity", "identity"), ("nn.ReLU", "relu"), ("ReLU", "relu"), ("leaky_relu", "leaky_relu"),
    ])
    def test_maze_non_lin_becomes_short_name(self, written: str, canonical: str) -> None:
        spec = dense(non_lin=written)
        assert spec.non_lin == canonical
        assert spec.non_lin in ps.NON_LINEARITIES
        assert spec == dense(non_lin=canonical)
        assert hash(spec) == hash(dense(non_lin=canonical))

    @pytest.mark.parametrize(("build", "field", "expected"), [
        pytest.param(lambda: ps.NormC(std=2), "std", 2.0, id="NormC.std"),
        pytest.param(lambda: ps.Orthogonal(gain=3), "gain", 3.0, id="Orthogonal.gain"),
        pytest.param(lambda: ps.XavierUniform(gain=1), "gain", 1.0, id="XavierUniform.gain"),
        pytest.param(lambda: ps.ConstantBias(value=-1), "value", -1.0, id="ConstantBias.value"),
    ])
    def test_int_becomes_float(self, build: Any, field: str, expected: float) -> None:
        value = getattr(build(), field)
        assert type(value) is float and value == expected

    def test_ints_in_float_sequences_become_floats(self) -> None:
        probs = ps.CategoricalBias(probs=[1]).probs
        assert probs == (1.0,) and all(type(p) is float for p in probs)

    def test_int_field_stays_int(self) -> None:
        spec = head(output_units=3)
        assert type(spec.output_units) is int
        assert all(type(u) is int for u in dense().hidden_units)


class TestValueSemantics:
    @pytest.mark.parametrize(("a", "b"), [
        pytest.param(dense(in_keys="obs", hidden_units=[8, 4]), dense(in_keys=("obs",), hidden_units=(8, 4)),
                     id="Dense-list-vs-tuple"),
        pytest.param(dense(non_lin="torch.nn.Tanh"), dense(non_lin="tanh"), id="Dense-maze-non-lin"),
        pytest.param(dense(init=ps.NormC(std=1)), dense(init=ps.NormC()), id="Dense-int-vs-default-float"),
        pytest.param(head(bias=ps.CategoricalBias(probs=[0.5, 0.25, 0.25])),
                     head(bias=ps.CategoricalBias(probs=(0.5, 0.25, 0.25))), id="LinearOutput-probs"),
        pytest.param(head(bias=ps.BernoulliBias(p=[0.1, 0.2, 0.3])),
                     head(bias=ps.BernoulliBias(p=(0.1, 0.2, 0.3))), id="LinearOutput-bernoulli"),
        pytest.param(ps.Graph([dense(), head()], out_keys=["logits"]),
                     ps.Graph({"hidden": dense(), "logits": head()}, out_keys="logits"), id="Graph-list-vs-dict"),
        pytest.param(ps.Graph({"a": dense(), "b": head()}, out_keys="logits"),
                     ps.Graph({"b": head(), "a": dense()}, out_keys="logits"), id="Graph-dict-order"),
    ])
    def test_equal_by_value_with_equal_hash(self, a: object, b: object) -> None:
        assert a is not b
        assert a == b
        assert hash(a) == hash(b)
        assert len({a, b}) == 1

    @pytest.mark.parametrize(("a", "b"), [
        pytest.param(dense(), dense(hidden_units=[8, 5]), id="hidden_units"),
        pytest.param(dense(), dense(non_lin="tanh"), id="non_lin"),
        pytest.param(dense(), dense(init=ps.TorchDefault()), id="init-None-vs-TorchDefault"),
        pytest.param(dense(init=ps.Orthogonal(gain=1.0)), dense(init=ps.XavierUniform(gain=1.0)), id="init-kind"),
        pytest.param(head(), head(bias=ps.ConstantBias()), id="bias-None-vs-ConstantBias"),
        pytest.param(head(), head(out_keys="value"), id="out_keys"),
        pytest.param(ps.NormC(std=1.0), ps.Orthogonal(gain=1.0), id="initialiser-kind"),
        pytest.param(policy_graph(), dataclasses.replace(policy_graph(), init=None), id="Graph-init"),
    ])
    def test_different_values_are_unequal(self, a: object, b: object) -> None:
        assert a != b

    @pytest.mark.parametrize("spec", SPECS)
    def test_hash_is_stable_and_usable_as_key(self, spec: object) -> None:
        assert hash(spec) == hash(spec)
        assert {spec: "x"}[spec] == "x"


class TestImmutability:
    @pytest.mark.parametrize(("spec", "field", "value"), [
        pytest.param(dense(), "hidden_units", (1,), id="Dense.hidden_units"),
        pytest.param(dense(), "in_keys", ("other",), id="Dense.in_keys"),
        pytest.param(dense(), "init", ps.NormC(), id="Dense.init"),
        pytest.param(head(), "output_units", 7, id="LinearOutput.output_units"),
        pytest.param(head(), "bias", ps.ConstantBias(), id="LinearOutput.bias"),
        pytest.param(ps.NormC(), "std", 2.0, id="NormC.std"),
        pytest.param(ps.CategoricalBias(probs=[1.0]), "probs", (0.5, 0.5), id="CategoricalBias.probs"),
        pytest.param(policy_graph(), "blocks", {}, id="Graph.blocks"),
        pytest.param(policy_graph(), "in_keys", ("x",), id="Graph.in_keys"),
        pytest.param(policy_graph(), "out_keys", ("hidden",), id="Graph.out_keys"),
    ])
    def test_assignment_and_deletion_raise(self, spec: object, field: str, value: object) -> None:
        before = getattr(spec, field)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(spec, field, value)
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(spec, field)
        assert getattr(spec, field) == before

    @pytest.mark.parametrize("spec", SPECS)
    def test_fields_hold_no_mutable_containers(self, spec: object) -> None:
        values = list(frozen_values(spec))
        assert values[0] is spec
        mutable = [v for v in values if isinstance(v, (list, dict, set, bytearray))]
        assert mutable == []

    def test_graph_blocks_cannot_be_changed_in_place(self) -> None:
        graph = policy_graph()
        with pytest.raises(TypeError):
            graph.blocks["extra"] = dense()  # type: ignore[index]  # the point: a PMap has no __setitem__
        assert set(graph.blocks) == {"body", "head"}

    def test_replace_builds_a_new_validated_value(self) -> None:
        spec = dense()
        changed = dataclasses.replace(spec, hidden_units=[3])
        assert changed.hidden_units == (3,) and type(changed.hidden_units) is tuple
        assert spec.hidden_units == (8, 4)
        with pytest.raises(ps.SpecError, match=r"Dense.*field 'hidden_units'"):
            dataclasses.replace(spec, hidden_units=[0])


class TestPickle:
    @pytest.mark.parametrize("protocol", [0, pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL])
    @pytest.mark.parametrize("spec", SPECS)
    def test_round_trip_is_equal_with_equal_hash(self, spec: object, protocol: int) -> None:
        loaded = pickle.loads(pickle.dumps(spec, protocol=protocol))
        assert loaded is not spec
        assert type(loaded) is type(spec)
        assert loaded == spec
        assert hash(loaded) == hash(spec)
        assert repr(loaded) == repr(spec)

    def test_graph_keeps_its_wiring(self) -> None:
        graph = nested_graph()
        loaded = pickle.loads(pickle.dumps(graph))
        assert loaded.in_keys == graph.in_keys == ("obs",)
        assert loaded.topological_order == graph.topological_order


class TestRepr:
    @pytest.mark.parametrize("spec", SPECS)
    def test_repr_is_the_code_that_builds_it(self, spec: object) -> None:
        text = repr(spec)
        assert text.startswith(f"{type(spec).__name__}(")
        rebuilt = eval(text, vars(ps))  # noqa: S307  (our own repr, evaluated to check it is code)
        assert rebuilt == spec
        assert hash(rebuilt) == hash(spec)
        assert repr(rebuilt) == text

    def test_repr_shows_normalised_values(self) -> None:
        text = repr(dense(in_keys=["obs"], non_lin="torch.nn.Tanh", init=ps.NormC(std=2)))
        assert "non_lin='tanh'" in text
        assert "torch.nn" not in text
        assert "NormC(std=2.0)" in text


# (constructor, keyword arguments, descriptor kind, field, a regex for the rest of the message)
INVALID = [
    # hidden_units: non-positive, empty
    pytest.param(ps.Dense, {**DENSE, "hidden_units": [0]}, "Dense", "hidden_units", "positive", id="hidden-zero"),
    pytest.param(ps.Dense, {**DENSE, "hidden_units": [8, -4]}, "Dense", "hidden_units", "positive",
                 id="hidden-negative"),
    pytest.param(ps.Dense, {**DENSE, "hidden_units": []}, "Dense", "hidden_units", r"one or more", id="hidden-empty"),
    pytest.param(ps.LinearOutput, {**HEAD, "output_units": 0}, "LinearOutput", "output_units", "positive",
                 id="output-zero"),
    # bool where an int (or float) is expected
    pytest.param(ps.Dense, {**DENSE, "hidden_units": [True, 4]}, "Dense", "hidden_units", "bool", id="hidden-bool"),
    pytest.param(ps.LinearOutput, {**HEAD, "output_units": True}, "LinearOutput", "output_units", "bool",
                 id="output-bool"),
    pytest.param(ps.NormC, {"std": True}, "NormC", "std", "bool", id="std-bool"),
    # wrong types
    pytest.param(ps.Dense, {**DENSE, "hidden_units": "64"}, "Dense", "hidden_units", r"Sequence\[int\]",
                 id="hidden-str"),
    pytest.param(ps.Dense, {**DENSE, "hidden_units": 64}, "Dense", "hidden_units", r"Sequence\[int\]",
                 id="hidden-int"),
    pytest.param(ps.Dense, {**DENSE, "hidden_units": [8.5]}, "Dense", "hidden_units", "expected",
                 id="hidden-float"),
    pytest.param(ps.LinearOutput, {**HEAD, "output_units": 2.0}, "LinearOutput", "output_units", "int",
                 id="output-float"),
    pytest.param(ps.LinearOutput, {**HEAD, "output_units": "3"}, "LinearOutput", "output_units", "int",
                 id="output-str"),
    pytest.param(ps.Dense, {**DENSE, "non_lin": 3}, "Dense", "non_lin", "str", id="non-lin-int"),
    pytest.param(ps.Dense, {**DENSE, "in_keys": 3}, "Dense", "in_keys", "expected", id="in-keys-int"),
    pytest.param(ps.Dense, {**DENSE, "init": "normc"}, "Dense", "init", "Initializer", id="init-str"),
    pytest.param(ps.Dense, {**DENSE, "init": ps.ConstantBias()}, "Dense", "init", "Initializer",
                 id="init-is-a-bias"),
    pytest.param(ps.LinearOutput, {**HEAD, "bias": 0.5}, "LinearOutput", "bias", "Bias", id="bias-float"),
    pytest.param(ps.LinearOutput, {**HEAD, "bias": ps.NormC()}, "LinearOutput", "bias", "Bias",
                 id="bias-is-an-init"),
    pytest.param(ps.NormC, {"std": "1"}, "NormC", "std", "float", id="std-str"),
    pytest.param(ps.CategoricalBias, {"probs": 0.5}, "CategoricalBias", "probs", "expected", id="probs-float"),
    # unknown non-linearity
    pytest.param(ps.Dense, {**DENSE, "non_lin": "swish"}, "Dense", "non_lin", "relu", id="non-lin-unknown"),
    pytest.param(ps.Dense, {**DENSE, "non_lin": "torch.nn.Softmax"}, "Dense", "non_lin", "softmax_last",
                 id="non-lin-maze-unknown"),
    # wrong number of keys
    pytest.param(ps.Dense, {**DENSE, "in_keys": ["a", "b"]}, "Dense", "in_keys", r"1 key", id="in-keys-two"),
    pytest.param(ps.Dense, {**DENSE, "in_keys": []}, "Dense", "in_keys", r"1 key", id="in-keys-none"),
    pytest.param(ps.Dense, {**DENSE, "out_keys": ["a", "b"]}, "Dense", "out_keys", r"1 key", id="out-keys-two"),
    pytest.param(ps.LinearOutput, {**HEAD, "in_keys": ["a", "b"]}, "LinearOutput", "in_keys", r"1 key",
                 id="head-in-keys-two"),
    # bad key names
    pytest.param(ps.Dense, {**DENSE, "in_keys": "obs.screen"}, "Dense", "in_keys", r"'obs\.screen'.*'\.'",
                 id="in-key-dot"),
    pytest.param(ps.LinearOutput, {**HEAD, "out_keys": "a.b"}, "LinearOutput", "out_keys", r"'a\.b'.*'\.'",
                 id="out-key-dot"),
    pytest.param(ps.Dense, {**DENSE, "in_keys": ""}, "Dense", "in_keys", "non-empty", id="in-key-empty"),
    # head biases
    pytest.param(ps.CategoricalBias, {"probs": [0.5, 0.4]}, "CategoricalBias", "probs", r"summing to 1.*0\.9",
                 id="probs-sum-low"),
    pytest.param(ps.CategoricalBias, {"probs": [0.7, 0.7]}, "CategoricalBias", "probs", "summing to 1",
                 id="probs-sum-high"),
    pytest.param(ps.CategoricalBias, {"probs": [0.0, 1.0]}, "CategoricalBias", "probs", r"\(0, 1\]",
                 id="probs-zero"),
    pytest.param(ps.CategoricalBias, {"probs": [-0.5, 1.5]}, "CategoricalBias", "probs", r"\(0, 1\]",
                 id="probs-negative"),
    pytest.param(ps.CategoricalBias, {"probs": []}, "CategoricalBias", "probs", "at least one",
                 id="probs-empty"),
    pytest.param(ps.LinearOutput, {**HEAD, "bias": ps.CategoricalBias(probs=[0.5, 0.5])}, "LinearOutput", "bias",
                 r"CategoricalBias has 2 probabilities for 3 output units", id="probs-wrong-length"),
    pytest.param(ps.LinearOutput, {**HEAD, "bias": ps.BernoulliBias(p=[0.5, 0.5])}, "LinearOutput", "bias",
                 r"BernoulliBias has 2 probabilities for 3 output units", id="p-wrong-length"),
    pytest.param(ps.BernoulliBias, {"p": 0.0}, "BernoulliBias", "p", r"\(0, 1\)", id="p-zero"),
    pytest.param(ps.BernoulliBias, {"p": 1.0}, "BernoulliBias", "p", r"\(0, 1\)", id="p-one"),
    pytest.param(ps.BernoulliBias, {"p": -0.1}, "BernoulliBias", "p", r"\(0, 1\)", id="p-negative"),
    pytest.param(ps.BernoulliBias, {"p": 1.5}, "BernoulliBias", "p", r"\(0, 1\)", id="p-above-one"),
    pytest.param(ps.BernoulliBias, {"p": [0.5, 1.0]}, "BernoulliBias", "p", r"\(0, 1\)", id="p-per-unit-one"),
    pytest.param(ps.ConstantBias, {"value": math.inf}, "ConstantBias", "value", "finite", id="constant-inf"),
    pytest.param(ps.ConstantBias, {"value": math.nan}, "ConstantBias", "value", "finite", id="constant-nan"),
    # initialisers
    pytest.param(ps.NormC, {"std": 0.0}, "NormC", "std", "positive", id="std-zero"),
    pytest.param(ps.NormC, {"std": 0}, "NormC", "std", "positive", id="std-int-zero"),
    pytest.param(ps.NormC, {"std": -1.0}, "NormC", "std", "positive", id="std-negative"),
    pytest.param(ps.NormC, {"std": math.nan}, "NormC", "std", "positive", id="std-nan"),
    pytest.param(ps.Orthogonal, {"gain": 0.0}, "Orthogonal", "gain", "positive", id="orthogonal-gain-zero"),
    pytest.param(ps.XavierUniform, {"gain": -1.0}, "XavierUniform", "gain", "positive", id="xavier-gain-negative"),
]


class TestValidation:
    @pytest.mark.parametrize(("cls", "kwargs", "kind", "field", "detail"), INVALID)
    def test_error_names_kind_and_field(self, cls: Any, kwargs: dict[str, Any], kind: str, field: str,
                                        detail: str) -> None:
        with pytest.raises(ps.SpecError, match=rf"^{kind}\b.*field '{field}'.*{detail}") as info:
            cls(**kwargs)
        assert isinstance(info.value, ps.PerceptSpecError)
        assert info.value.where.startswith(kind)
        assert len(info.value.problems) == 1

    def test_block_error_says_which_block(self) -> None:
        with pytest.raises(ps.SpecError, match=r"^Dense\(out_keys='policy_hidden'\): field 'hidden_units'"):
            dense(out_keys="policy_hidden", hidden_units=[0])

    def test_every_problem_reported_at_once(self) -> None:
        bad: dict[str, Any] = {"in_keys": 3, "out_keys": "hidden", "hidden_units": "x", "non_lin": "bogus"}
        with pytest.raises(ps.SpecError) as info:
            ps.Dense(**bad)
        message = str(info.value)
        assert len(info.value.problems) == 3
        for field in ("in_keys", "hidden_units", "non_lin"):
            assert re.search(rf"field '{field}'", message)

    def test_every_value_problem_reported_at_once(self) -> None:
        with pytest.raises(ps.SpecError) as info:
            dense(in_keys="a.b", hidden_units=[0])
        assert len(info.value.problems) == 2
        assert "field 'in_keys'" in str(info.value) and "field 'hidden_units'" in str(info.value)

    def test_probabilities_summing_to_one_up_to_rounding_are_accepted(self) -> None:
        bias = ps.CategoricalBias(probs=[0.1] * 10)
        assert math.fsum(bias.probs) == pytest.approx(1.0)
        assert head(output_units=10, bias=bias).bias == bias

    @pytest.mark.parametrize("build", [
        pytest.param(lambda: ps.NormC(std=math.inf), id="NormC"),
        pytest.param(lambda: ps.Orthogonal(gain=math.inf), id="Orthogonal"),
        pytest.param(lambda: ps.XavierUniform(gain=math.inf), id="XavierUniform"),
    ])
    def test_initialiser_scale_must_be_finite(self, build: Any) -> None:
        # An infinite scale fills the weights with inf (NaN outputs) and breaks the repr contract
        # (`eval('NormC(std=inf)')` fails); ConstantBias already rejects non-finite values.
        with pytest.raises(ps.SpecError, match=r"field '(std|gain)'"):
            build()


class TestErrors:
    @pytest.mark.parametrize("error", [ps.SpecError, ps.ShapeError, ps.SignatureError])
    def test_errors_share_one_base(self, error: type[Exception]) -> None:
        assert issubclass(error, ps.PerceptSpecError)
        assert issubclass(ps.PerceptSpecError, Exception)

    def test_spec_error_is_caught_by_the_base(self) -> None:
        with pytest.raises(ps.PerceptSpecError):
            dense(hidden_units=[])


class TestReadableRepr:
    """Issue 5: a spec prints as the code that builds it, one line when short, one argument per line when long."""

    def test_long_graph_prints_one_block_per_line_in_evaluation_order(self) -> None:
        from perceptspec.examples.complex import complex_policy

        spec = complex_policy({"observation_screen": (4, 3, 64, 64), "observation_inventory": (4, 16)},
                              {"action_move": (4,), "action_use": (16,)})
        text = repr(spec)
        assert eval(text, vars(ps)) == spec
        assert max(len(line) for line in text.splitlines()) <= 100
        lines = text.splitlines()
        assert lines[0] == "Graph(" and lines[-1] == ")"
        names = [line.strip().split(":")[0].strip("'") for line in lines if line.startswith(" " * 8 + "'")]
        assert names == list(spec.topological_order)

    def test_short_spec_stays_on_one_line(self) -> None:
        assert repr(ps.Dense(in_keys="a", out_keys="b", hidden_units=[3])) == \
            "Dense(in_keys='a', out_keys='b', hidden_units=[3])"
