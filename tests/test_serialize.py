"""Serialization: `to_dict`/`from_dict` and `to_yaml`/`from_yaml` are lossless, and loading never runs code."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

import perceptspec as ps

INITS: list[ps.Initializer | None] = [None, ps.TorchDefault(), ps.NormC(std=0.01), ps.NormC(), ps.Orthogonal(gain=1.41),
                                      ps.XavierUniform(), ps.XavierUniform(gain=0.5)]
BIASES: list[ps.Bias | None] = [None, ps.ConstantBias(), ps.ConstantBias(value=-3.25),
                                ps.CategoricalBias(probs=[0.5, 0.25, 0.25]), ps.BernoulliBias(p=0.2),
                                ps.BernoulliBias(p=[0.1, 0.5, 0.9])]


def nested_graph() -> ps.Graph:
    latent = ps.Graph({
        "screen": ps.Dense(in_keys="screen", out_keys="screen_hidden", hidden_units=[32, 16], non_lin="torch.nn.ELU"),
        "merge": ps.Dense(in_keys="screen_hidden", out_keys="latent", hidden_units=[8], init=ps.Orthogonal(gain=2)),
    }, out_keys="latent", init=ps.XavierUniform())
    return ps.Graph({
        "shared": latent,
        "policy": ps.LinearOutput(in_keys="latent", out_keys="action", output_units=3,
                                  bias=ps.CategoricalBias(probs=[0.2, 0.3, 0.5]), init=ps.NormC(std=0.01)),
        "value": ps.LinearOutput(in_keys="latent", out_keys="value", output_units=1, bias=ps.ConstantBias(value=1)),
    }, out_keys=["action", "value"], init=ps.NormC(std=1.0))


def doubly_nested_graph() -> ps.Graph:
    inner = ps.Graph({"d": ps.Dense(in_keys="obs", out_keys="z", hidden_units=[4], non_lin="gelu")}, out_keys="z")
    middle = ps.Graph({"inner": inner}, out_keys="z", init=ps.Orthogonal())
    return ps.Graph([middle, ps.LinearOutput(in_keys="z", out_keys="p", output_units=2,
                                             bias=ps.BernoulliBias(p=[0.3, 0.7]))], out_keys="p")


SPECS = [
    *(pytest.param(ps.Dense(in_keys="obs", out_keys="hidden", hidden_units=[64, 64], non_lin=non_lin),
                   id=f"Dense-{non_lin}") for non_lin in ps.NON_LINEARITIES),
    *(pytest.param(ps.Dense(in_keys="obs", out_keys="hidden", hidden_units=[16], init=init),
                   id=f"Dense-init-{init!r}") for init in INITS),
    *(pytest.param(ps.LinearOutput(in_keys="hidden", out_keys="logits", output_units=3, bias=bias),
                   id=f"LinearOutput-bias-{bias!r}") for bias in BIASES),
    *(pytest.param(ps.LinearOutput(in_keys="hidden", out_keys="logits", output_units=3, init=init,
                                   bias=ps.CategoricalBias(probs=[0.1, 0.1, 0.8])),
                   id=f"LinearOutput-init-{init!r}") for init in INITS),
    pytest.param(ps.Graph({"body": ps.Dense(in_keys="obs", out_keys="h", hidden_units=[8])}, out_keys="h"),
                 id="Graph-one-block"),
    pytest.param(nested_graph(), id="Graph-nested"),
    pytest.param(doubly_nested_graph(), id="Graph-doubly-nested"),
]


def plain(value: object) -> bool:
    """Whether `value` is built only of dicts with str keys, lists, str, int, float, bool and None."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


class TestDict:
    @pytest.mark.parametrize("spec", SPECS)
    def test_round_trip_is_equal_with_equal_hash(self, spec: ps.Block) -> None:
        data = ps.to_dict(spec)
        loaded = ps.from_dict(data)
        assert type(loaded) is type(spec)
        assert loaded == spec
        assert hash(loaded) == hash(spec)
        assert repr(loaded) == repr(spec)
        assert data["type"] == type(spec).__name__

    @pytest.mark.parametrize("spec", SPECS)
    def test_dict_is_plain_json_data(self, spec: ps.Block) -> None:
        data = ps.to_dict(spec)
        assert plain(data)
        assert ps.from_dict(json.loads(json.dumps(data))) == spec

    def test_from_dict_leaves_its_input_unchanged(self) -> None:
        data = ps.to_dict(nested_graph())
        before = copy.deepcopy(data)
        ps.from_dict(data)
        assert data == before

    def test_equal_specs_give_equal_dicts(self) -> None:
        a = ps.Dense(in_keys="obs", out_keys="h", hidden_units=[8])
        b = ps.LinearOutput(in_keys="h", out_keys="y", output_units=2)
        one = ps.Graph({"a": a, "b": b}, out_keys="y")
        other = ps.Graph({"b": b, "a": a}, out_keys="y")
        assert ps.to_dict(one) == ps.to_dict(other)
        assert ps.to_yaml(one) == ps.to_yaml(other)

    def test_hand_written_dict_is_normalised(self) -> None:
        loaded = ps.from_dict({"type": "Dense", "in_keys": "obs", "out_keys": "hidden", "hidden_units": [64],
                               "non_lin": "torch.nn.Tanh", "init": {"type": "NormC", "std": 1}})
        assert loaded == ps.Dense(in_keys=("obs",), out_keys=("hidden",), hidden_units=(64,), non_lin="tanh",
                                  init=ps.NormC(std=1.0))


class TestYaml:
    @pytest.mark.parametrize("spec", SPECS)
    def test_round_trip_is_equal_with_equal_hash(self, spec: ps.Block) -> None:
        text = ps.to_yaml(spec)
        assert isinstance(text, str)
        loaded = ps.from_yaml(text)
        assert loaded == spec
        assert hash(loaded) == hash(spec)
        assert ps.to_yaml(loaded) == text

    def test_from_yaml_accepts_a_path(self, tmp_path: Path) -> None:
        spec = nested_graph()
        path = tmp_path / "policy.yaml"
        path.write_text(ps.to_yaml(spec))
        loaded = ps.from_yaml(path)
        assert loaded == spec
        assert hash(loaded) == hash(spec)

    def test_hand_written_yaml(self) -> None:
        text = """
type: Graph
out_keys: action
init: {type: NormC, std: 1}
blocks:
  embedding: {type: Dense, in_keys: observation, out_keys: embedding, hidden_units: [16, 32],
              non_lin: torch.nn.ReLU}
  action: {type: LinearOutput, in_keys: embedding, out_keys: action, output_units: 2,
           init: {type: NormC, std: 0.01}, bias: {type: CategoricalBias, probs: [0.5, 0.5]}}
"""
        expected = ps.Graph({
            "embedding": ps.Dense(in_keys="observation", out_keys="embedding", hidden_units=[16, 32]),
            "action": ps.LinearOutput(in_keys="embedding", out_keys="action", output_units=2,
                                      init=ps.NormC(std=0.01), bias=ps.CategoricalBias(probs=[0.5, 0.5])),
        }, out_keys="action", init=ps.NormC(std=1.0))
        assert ps.from_yaml(text) == expected

    @pytest.mark.parametrize("template", [
        '!!python/object/apply:os.system ["touch {marker}"]',
        '!!python/object/apply:subprocess.check_call [["touch", "{marker}"]]',
        '!!python/object/new:subprocess.Popen [["touch", "{marker}"]]',
        "type: Dense\nin_keys: obs\nout_keys: h\nhidden_units: !!python/object/apply:os.system [\"touch {marker}\"]",
        "type: !!python/name:os.system\nin_keys: obs",
    ])
    def test_python_tags_are_rejected_and_run_nothing(self, tmp_path: Path, template: str) -> None:
        marker = tmp_path / "executed"
        text = template.replace("{marker}", str(marker))
        with pytest.raises(ps.SpecError, match=r"python"):
            ps.from_yaml(text)
        assert not marker.exists()

    def test_python_tags_in_a_file_are_rejected(self, tmp_path: Path) -> None:
        marker = tmp_path / "executed"
        path = tmp_path / "evil.yaml"
        path.write_text(f'!!python/object/apply:os.system ["touch {marker}"]\n')
        with pytest.raises(ps.SpecError):
            ps.from_yaml(path)
        assert not marker.exists()

    def test_malformed_yaml_is_a_spec_error(self) -> None:
        with pytest.raises(ps.SpecError, match="YAML"):
            ps.from_yaml("type: Dense\n  in_keys: [obs\n")


DENSE_DICT: dict[str, Any] = {"type": "Dense", "in_keys": ["obs"], "out_keys": ["h"], "hidden_units": [8]}


class TestLoadErrors:
    @pytest.mark.parametrize("data", [
        pytest.param({**DENSE_DICT, "type": "Conv9000"}, id="top-level"),
        pytest.param({"type": "Graph", "out_keys": ["h"], "blocks": {"h": {**DENSE_DICT, "type": "Conv9000"}}},
                     id="inside-graph"),
        pytest.param({**DENSE_DICT, "init": {"type": "Conv9000"}}, id="as-init"),
    ])
    def test_unknown_type_lists_known_kinds(self, data: dict[str, Any]) -> None:
        with pytest.raises(ps.SpecError, match=r"unknown kind 'Conv9000'") as info:
            ps.from_dict(data)
        message = str(info.value)
        for kind in ("Dense", "LinearOutput", "Graph", "NormC", "Orthogonal", "XavierUniform", "TorchDefault",
                     "ConstantBias", "CategoricalBias", "BernoulliBias"):
            assert kind in message

    def test_unknown_type_from_yaml(self) -> None:
        with pytest.raises(ps.SpecError, match=r"unknown kind 'Conv9000'.*Dense"):
            ps.from_yaml("type: Conv9000\nin_keys: obs\n")

    @pytest.mark.parametrize(("data", "field"), [
        pytest.param({**DENSE_DICT, "bogus": 1}, "bogus", id="Dense"),
        pytest.param({**DENSE_DICT, "num_units": [8]}, "num_units", id="Dense-misspelt"),
        pytest.param({**DENSE_DICT, "init": {"type": "NormC", "gain": 1.0}}, "gain", id="NormC-in-Dense"),
        pytest.param({"type": "Graph", "out_keys": ["h"], "in_keys": ["obs"], "blocks": {"h": DENSE_DICT}},
                     "in_keys", id="Graph-derived-in_keys"),
        pytest.param({"type": "Graph", "out_keys": ["h"], "blocks": {"h": {**DENSE_DICT, "units": 3}}},
                     "units", id="inside-graph"),
    ])
    def test_unknown_field(self, data: dict[str, Any], field: str) -> None:
        with pytest.raises(ps.SpecError, match=rf"unknown field.*'{field}'"):
            ps.from_dict(data)

    @pytest.mark.parametrize(("data", "field"), [
        pytest.param({"type": "Dense", "in_keys": ["obs"], "out_keys": ["h"]}, "hidden_units", id="Dense"),
        pytest.param({"type": "Dense", "out_keys": ["h"], "hidden_units": [8]}, "in_keys", id="Dense-in_keys"),
        pytest.param({"type": "LinearOutput", "in_keys": ["h"], "out_keys": ["y"]}, "output_units",
                     id="LinearOutput"),
        pytest.param({"type": "LinearOutput", "in_keys": ["h"], "out_keys": ["y"], "output_units": 2,
                      "bias": {"type": "CategoricalBias"}}, "probs", id="CategoricalBias"),
        pytest.param({"type": "Graph", "out_keys": ["h"]}, "blocks", id="Graph-blocks"),
        pytest.param({"type": "Graph", "blocks": {"h": DENSE_DICT}}, "out_keys", id="Graph-out_keys"),
        pytest.param({"type": "Graph", "out_keys": ["y"], "blocks": {
            "h": DENSE_DICT, "y": {"type": "LinearOutput", "in_keys": ["h"], "out_keys": ["y"]}}},
            "output_units", id="inside-graph"),
    ])
    def test_missing_required_field(self, data: dict[str, Any], field: str) -> None:
        with pytest.raises(ps.SpecError, match=rf"'{field}'"):
            ps.from_dict(data)

    @pytest.mark.parametrize("data", [
        pytest.param({"in_keys": ["obs"]}, id="no-type"),
        pytest.param({"type": 3}, id="type-not-a-string"),
        pytest.param(["Dense"], id="not-a-mapping"),
        pytest.param(None, id="None"),
        pytest.param({"type": "NormC"}, id="initialiser-is-not-a-block"),
        pytest.param({**DENSE_DICT, "init": {"type": "ConstantBias"}}, id="bias-as-init"),
        pytest.param({**DENSE_DICT, "init": "NormC"}, id="init-as-string"),
    ])
    def test_not_a_spec(self, data: Any) -> None:
        with pytest.raises(ps.SpecError):
            ps.from_dict(data)

    @pytest.mark.parametrize("text", ["- Dense\n- 8\n", "just a string\n", "", "42\n"])
    def test_yaml_not_describing_a_spec(self, text: str) -> None:
        with pytest.raises(ps.SpecError):
            ps.from_yaml(text)

    def test_invalid_values_are_rejected_on_load(self) -> None:
        with pytest.raises(ps.SpecError, match=r"Dense.*field 'hidden_units'"):
            ps.from_dict({**DENSE_DICT, "hidden_units": [0]})
        with pytest.raises(ps.SpecError, match=r"out key 'nope' is produced by no block"):
            ps.from_dict({"type": "Graph", "out_keys": ["nope"], "blocks": {"h": DENSE_DICT}})


class TestCanonicalOrder:
    """Issue #14: equal specs give the same text. Mappings compare like dicts, so the order a spec's dicts were
    written in cannot show in its YAML or repr: keys are sorted, a Graph's blocks topologically (ties by name)."""

    def test_dict_order_does_not_show(self) -> None:
        kwargs = {"zeta": 1, "alpha": [2, 3], "mid": {"y": 1, "x": 2}}
        a = ps.TorchModel(in_keys="x", out_keys="y", module_factory="tests.torch_model_fixtures:Mlp",
                          kwargs=kwargs, out_shapes=[(2,)])
        b = ps.TorchModel(in_keys="x", out_keys="y", module_factory="tests.torch_model_fixtures:Mlp",
                          kwargs={"mid": {"x": 2, "y": 1}, "alpha": [2, 3], "zeta": 1}, out_shapes=[(2,)])
        assert a == b and hash(a) == hash(b)
        assert ps.to_yaml(a) == ps.to_yaml(b) and repr(a) == repr(b)
        assert list(ps.to_dict(a)["kwargs"]) == ["alpha", "mid", "zeta"]

    def test_graph_blocks_in_topological_order(self) -> None:
        blocks = {"head": ps.LinearOutput(in_keys="h", out_keys="y", output_units=2),
                  "body": ps.Dense(in_keys="x", out_keys="h", hidden_units=[3])}
        a, b = (ps.Graph(dict(items), out_keys="y") for items in (blocks.items(), reversed(blocks.items())))
        assert a == b and ps.to_yaml(a) == ps.to_yaml(b) and repr(a) == repr(b)
        assert list(ps.to_dict(a)["blocks"]) == ["body", "head"]
