"""`ps.save` / `ps.load` (issue #15's one safe artifact, under issue #14's rules): one safetensors file with the
weights and, in its metadata, the spec, shapes and settings; loading runs no pickle and imports nothing outside
the allow-list."""

from __future__ import annotations

import json
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import gymnasium as gym
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.nn.utils import parametrize

import perceptspec as ps
from perceptspec.examples.inventory_env import InventoryGridEnv

EXAMPLES = Path(ps.__file__).parent / "examples"
SPEC = ps.Graph([ps.Dense(in_keys="obs", out_keys="h", hidden_units=[8]),
                 ps.LSTM(in_keys="h", out_keys="z", hidden_size=4),
                 ps.LinearOutput(in_keys="z", out_keys="y", output_units=2)], out_keys="y")
SHAPES = {"obs": (3, 4)}


def outputs_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_a_module_comes_back_the_same(dtype: torch.dtype, tmp_path: Path) -> None:
    module = ps.materialize(SPEC, SHAPES, seed=3, check="off", check_finite=True).to(dtype).eval()
    next(module.block_module("h").parameters()).requires_grad_(False)
    loaded = ps.load(ps.save(module, tmp_path / "m.safetensors"))
    assert isinstance(loaded, ps.SpecModule)
    assert loaded.spec == SPEC and dict(loaded.in_shapes) == SHAPES and loaded.seed == module.seed == 3
    assert pickle.loads(pickle.dumps(module)).seed == 3
    assert (loaded.check, loaded.check_finite, loaded.training) == ("off", True, False)
    assert [(n, p.dtype, p.requires_grad) for n, p in loaded.named_parameters()] == \
        [(n, p.dtype, p.requires_grad) for n, p in module.named_parameters()]
    x = {"obs": torch.randn(5, 3, 4, dtype=dtype)}
    assert outputs_equal(module(x), loaded(x))


def test_a_mixed_dtype_module_keeps_each_dtype(tmp_path: Path) -> None:
    module = ps.materialize(SPEC, SHAPES, seed=3)
    module.blocks["y"].double()
    loaded = ps.load(ps.save(module, tmp_path / "m.safetensors"))
    assert isinstance(loaded, ps.SpecModule)
    assert {n: p.dtype for n, p in loaded.named_parameters()} == {n: p.dtype for n, p in module.named_parameters()}


def test_the_file_is_safetensors_with_the_spec_in_its_metadata(tmp_path: Path) -> None:
    path = ps.save(ps.materialize(SPEC, SHAPES, seed=3), tmp_path / "m.safetensors")
    tensors = load_file(str(path))
    assert set(tensors) == {f"module.{k}" for k in ps.materialize(SPEC, SHAPES).state_dict()}
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as file:
        meta = file.metadata()
    header = json.loads(meta["header"])
    assert meta["format"] == "perceptspec/1" and meta["perceptspec_version"]
    assert ps.from_yaml(header["spec"]) == SPEC and header["in_shapes"] == {"obs": [3, 4]}


@pytest.mark.parametrize("config, env", [
    ("cartpole.yaml", lambda: gym.make("CartPole-v1")),
    ("shared_complex.yaml", InventoryGridEnv),
    ("complex.yaml", InventoryGridEnv),
])
def test_composed_models_come_back_the_same(config: str, env: Any, tmp_path: Path) -> None:
    made = env()
    models = ps.compose(EXAMPLES / config, made.observation_space, made.action_space)
    loaded = ps.load(ps.save(models, tmp_path / "models.safetensors"))
    assert isinstance(loaded, ps.Models)
    assert loaded.specs == models.specs and loaded.in_shapes == models.in_shapes
    assert (loaded.obs_shapes, loaded.action_logits_shapes, loaded.critic_kind) == \
        (models.obs_shapes, models.action_logits_shapes, models.critic_kind)
    made.observation_space.seed(0)
    sample = made.observation_space.sample()
    items = sample.items() if isinstance(sample, dict) else (("observation", sample),)
    obs = {k: torch.as_tensor(v, dtype=torch.float32).unsqueeze(0) for k, v in items}
    assert outputs_equal(models.actor_critic(obs), loaded.actor_critic(obs))
    assert outputs_equal(models.policy(obs), loaded.policy(obs))


def test_models_with_sub_steps_come_back_the_same(tmp_path: Path) -> None:
    obs = {0: gym.spaces.Dict({"a": gym.spaces.Box(-1.0, 1.0, (2,))}),
           "pick": gym.spaces.Dict({"a": gym.spaces.Box(-1.0, 1.0, (2,))})}
    act = {0: gym.spaces.Discrete(2), "pick": gym.spaces.MultiBinary(3)}
    config = {"policy": {"networks": [{"_target_": "tests.test_composer.recording_policy"}]},
              "critic": {"kind": "shared_state", "networks": [{"_target_": "tests.test_composer.concat_critic"}]},
              "seed": 1}
    models = ps.compose(config, obs, act)
    loaded = ps.load(ps.save(models, tmp_path / "models.safetensors"))
    assert isinstance(loaded, ps.Models) and set(loaded.policies) == {0, "pick"} and set(loaded.critics) == {"shared"}
    x = {"a": torch.randn(4, 2)}
    for step in (0, "pick"):
        assert outputs_equal(models.policies[step](x), loaded.policies[step](x))
    assert outputs_equal(models.critics["shared"](x), loaded.critics["shared"](x))


def test_loading_runs_no_pickle(tmp_path: Path) -> None:
    path = ps.save(ps.materialize(SPEC, SHAPES, seed=3), tmp_path / "m.safetensors")
    refuse = mock.Mock(side_effect=AssertionError("unpickled"))
    with mock.patch.object(pickle, "loads", refuse), mock.patch.object(pickle, "load", refuse), \
            mock.patch.object(torch, "load", refuse):
        assert isinstance(ps.load(path), ps.SpecModule)


# --- the allow-list -------------------------------------------------------------------------------------------------

@pytest.fixture
def factory_module(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "saved_nets.py").write_text("from torch import nn\ndef mlp(width):\n    return nn.Linear(4, width)\n")
    sys.path.insert(0, str(tmp_path))
    yield "saved_nets"
    sys.path.remove(str(tmp_path))
    sys.modules.pop("saved_nets", None)


def test_a_torch_model_factory_is_imported_only_when_allowed(factory_module: str, tmp_path: Path) -> None:
    spec = ps.TorchModel(in_keys="obs", out_keys="y", module_factory=f"{factory_module}:mlp", kwargs={"width": 3},
                         out_shapes=[(3,)])
    with ps.allow(factory_module):
        module = ps.materialize(spec, {"obs": (4,)}, seed=0)
        path = ps.save(module, tmp_path / "m.safetensors")
    sys.modules.pop(factory_module)
    with pytest.raises(ps.NotAllowedError, match=f"module '{factory_module}' is not allowed"):
        ps.load(path)
    assert factory_module not in sys.modules
    loaded = ps.load(path, allow=[factory_module])
    assert isinstance(loaded, ps.SpecModule)
    x = {"obs": torch.randn(2, 4)}
    assert outputs_equal(module(x), loaded(x))


def test_a_tampered_spec_cannot_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = ps.TorchModel(in_keys="obs", out_keys="y", module_factory="os:system", out_shapes=[(3,)],
                         kwargs={"command": f"touch {marker}"})
    header = {"kind": "module", "spec": ps.to_yaml(evil), "in_shapes": {"obs": [4]}, "check": "always",
              "check_finite": False, "allow_extra_keys": False, "seed": None, "training": True,
              "frozen": []}
    path = tmp_path / "evil.safetensors"
    save_file({"module.x": torch.zeros(1)}, str(path),
              metadata={"format": "perceptspec/1", "perceptspec_version": "0", "header": json.dumps(header)})
    with pytest.raises(ps.NotAllowedError, match="module 'os' is not allowed"):
        ps.load(path)
    assert not marker.exists()


# --- errors ---------------------------------------------------------------------------------------------------------

def test_plain_networks_cannot_be_saved(tmp_path: Path) -> None:
    env = gym.make("CartPole-v1")
    models = ps.compose(EXAMPLES / "plain_cartpole.yaml", env.observation_space, env.action_space)
    with pytest.raises(ps.SpecError, match=r"network 'policy' is a plain PlainCartPolePolicy, not built from a spec"):
        ps.save(models, tmp_path / "m.safetensors")
    with pytest.raises(ps.SpecError, match=r"expected a module made by ps.materialize or the Models of ps.compose, "
                                           r"got PlainCartPolePolicy"):
        ps.save(models.policy, tmp_path / "m.safetensors")  # type: ignore[arg-type]


def test_a_module_that_no_longer_matches_its_spec_cannot_be_saved(tmp_path: Path) -> None:
    module = ps.materialize(SPEC, SHAPES, seed=3)
    parametrize.register_parametrization(module.blocks["y"], "weight", torch.nn.Identity())
    with pytest.raises(ps.SpecError, match=r"'blocks.y.parametrizations.weight.original' is not in a module built "
                                           r"from the spec(.|\n)*remove_parametrizations"):
        ps.save(module, tmp_path / "m.safetensors")
    parametrize.remove_parametrizations(module.blocks["y"], "weight")
    assert isinstance(ps.load(ps.save(module, tmp_path / "m.safetensors")), ps.SpecModule)


@pytest.mark.parametrize("content, problem", [
    (b"not a safetensors file", "cannot read it as a safetensors file"),
    (None, r"expected a file written by ps.save \(format 'perceptspec/1'\), got format None"),
])
def test_a_file_that_is_not_ours(content: bytes | None, problem: str, tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    if content is None:
        save_file({"w": torch.zeros(2)}, str(path))
    else:
        path.write_bytes(content)
    with pytest.raises(ps.SpecError, match=problem):
        ps.load(path)


@pytest.mark.parametrize("header, problem", [
    ("{not json", "the metadata has no readable 'header'"),
    ("[" * 100_000 + "]" * 100_000, "the metadata has no readable 'header'"),
    (json.dumps({"kind": "module", "spec": 3}), "the header is not one ps.save writes"),
    (json.dumps({"kind": "zip"}), "the header is not one ps.save writes: expected a mapping whose 'kind' is"),
    (json.dumps({"kind": "models", "networks": [], "critic_kind": "none", "steps": [{"step": 0}]}),
     "the header is not one ps.save writes: .*missing required key"),
])
def test_a_tampered_header_is_our_error(header: str, problem: str, tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_file({"module.x": torch.zeros(1)}, str(path),
              metadata={"format": "perceptspec/1", "perceptspec_version": "0", "header": header})
    with pytest.raises(ps.SpecError, match=problem):
        ps.load(path)


def test_weights_that_do_not_fit_the_spec(tmp_path: Path) -> None:
    path = ps.save(ps.materialize(SPEC, SHAPES, seed=3), tmp_path / "m.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as file:
        meta = file.metadata()
        tensors = {k: file.get_tensor(k) for k in file.keys()}
    tensors["module.blocks.y.weight"] = torch.zeros(7, 7)
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ps.SpecError, match=r"the saved weights do not fit the saved spec: .*blocks.y.weight"):
        ps.load(path)
