"""sb3-contrib's RecurrentPPO with perceptspec networks (issue #15, issue #17 item 3):
`SpecRecurrentActorCriticPolicy` trains, its training pass over padded sequences computes what the rollout's steps
computed, and configs RecurrentPPO cannot carry are our errors.

The spec functions below are composer targets ('tests.test_integration_sb3_recurrent.<name>').
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sb3_contrib", reason="RecurrentPPO needs sb3-contrib: pip install -e '.[sb3]'")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sb3_contrib import RecurrentPPO  # noqa: E402
from sb3_contrib.common.recurrent.type_aliases import RNNStates  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402

import perceptspec as ps  # noqa: E402
from perceptspec.examples.recurrent import recurrent_policy  # noqa: E402
from perceptspec.integrations.sb3_recurrent import SpecRecurrentActorCriticPolicy, StateSize  # noqa: E402

HERE = __name__
Shapes = Mapping[str, Sequence[int]]
EXAMPLES = "perceptspec.examples.recurrent"


def config(policy: dict[str, Any], critic: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"policy": {"networks": [policy]},
            "critic": {"networks": [critic or {"_target_": f"{EXAMPLES}.recurrent_critic", "hidden_size": 8,
                                               "hidden_units": [8]}]}, "seed": 0}


LSTM_CONFIG = config({"_target_": f"{EXAMPLES}.recurrent_policy", "hidden_size": 8, "hidden_units": [8]})


def gru_shared_critic(obs_shapes: Shapes, hidden_units: Sequence[int] = (8,)) -> ps.Graph:
    """A stateless critic on the policy's recurrent memory (RecurrentPPO's shared_lstm)."""
    return ps.Graph({"body": ps.Dense(in_keys="memory", out_keys="v_latent", hidden_units=hidden_units),
                     "value": ps.LinearOutput(in_keys="v_latent", out_keys="value", output_units=1)}, out_keys="value")


def sharing_policy(obs_shapes: Shapes, action_logits_shapes: Shapes, cell: str = "gru") -> ps.Graph:
    """The example policy, also exporting its recurrent memory for the critic."""
    spec = recurrent_policy(obs_shapes, action_logits_shapes, hidden_size=8, hidden_units=[8], cell=cell)
    return ps.Graph(dict(spec.blocks), out_keys=[*spec.out_keys, "memory"], init=spec.init)


def no_reset_policy(obs_shapes: Shapes, action_logits_shapes: Shapes) -> ps.Graph:
    return ps.Graph({
        "rnn": ps.StatefulGRU(in_keys=["observation", "h"], out_keys=["memory", "h_next"], hidden_size=4),
        "action": ps.LinearOutput(in_keys="memory", out_keys="action", output_units=2),
    }, out_keys=["action", "h_next"])


def model_of(cfg: dict[str, Any], n_envs: int = 2, **kwargs: Any) -> RecurrentPPO:
    env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=0)
    return RecurrentPPO(SpecRecurrentActorCriticPolicy, env, n_steps=16, batch_size=16, n_epochs=2, seed=0,
                        device="cpu", policy_kwargs={"config": cfg, "allow": [HERE]}, **kwargs)


def test_recurrent_ppo_learns_a_few_hundred_steps_and_predicts_with_its_state() -> None:
    model = model_of(LSTM_CONFIG)
    policy = model.policy
    assert isinstance(policy, SpecRecurrentActorCriticPolicy)
    assert policy.lstm_actor == StateSize(1, 8) and set(policy.models.states) == {"policy", "critic"}
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    model.learn(128)
    assert model.num_timesteps >= 128
    assert any(not torch.equal(before[k], v) for k, v in policy.state_dict().items()), "training changed no weight"
    assert all(torch.isfinite(v).all() for v in policy.state_dict().values())
    env = model.get_env()
    assert env is not None
    obs = env.reset()
    assert isinstance(obs, np.ndarray)
    actions, state = model.predict(obs, deterministic=True)
    assert state is not None and state[0].shape == (1, 2, 8)
    again, next_state = model.predict(obs, state=state, episode_start=np.zeros(2, bool), deterministic=True)
    assert again.shape == (2,) and next_state is not None and not np.allclose(next_state[0], state[0])


@pytest.mark.parametrize("cfg", [LSTM_CONFIG, config({"_target_": f"{HERE}.sharing_policy"},
                                                     {"_target_": f"{HERE}.gru_shared_critic"})],
                         ids=["lstm-own-critic-lstm", "gru-shared-memory"])
def test_training_pass_computes_what_the_rollout_steps_computed(cfg: dict[str, Any]) -> None:
    """evaluate_actions over one padded sequence (an episode start inside) equals forward step by step."""
    policy = model_of(cfg, n_envs=1).policy
    assert isinstance(policy, SpecRecurrentActorCriticPolicy)
    steps, starts = 6, torch.tensor([1.0, 0, 0, 1, 0, 0])
    obs = torch.randn(steps, 4)
    zeros = torch.zeros(1, 1, 8)
    states = RNNStates((zeros, zeros), (zeros, zeros))
    first = states
    actions, values, log_probs = [], [], []
    with torch.no_grad():
        for t in range(steps):
            action, value, log_prob, states = policy(obs[t:t + 1], states, starts[t:t + 1])
            actions.append(action)
            values.append(value)
            log_probs.append(log_prob)
            assert torch.equal(policy.predict_values(obs[t:t + 1], states.vf, torch.zeros(1)), policy(
                obs[t:t + 1], states, torch.zeros(1))[1])
        value, log_prob, entropy = policy.evaluate_actions(obs, torch.cat(actions), first, starts)
    torch.testing.assert_close(value, torch.cat(values))
    torch.testing.assert_close(log_prob, torch.cat(log_probs))
    assert entropy is not None and entropy.shape == (steps,)


def test_a_gru_policy_fills_the_second_slot_with_zeros_and_the_critic_shares_its_state() -> None:
    policy = model_of(config({"_target_": f"{HERE}.sharing_policy"}, {"_target_": f"{HERE}.gru_shared_critic"})).policy
    zeros = torch.zeros(1, 2, 8)
    _, _, _, states = policy(torch.randn(2, 4), RNNStates((zeros, zeros), (zeros, zeros)), torch.ones(2))
    assert states.pi[0].abs().sum() > 0 and not states.pi[1].any()
    assert torch.equal(states.vf[0], states.pi[0])


@pytest.mark.parametrize("cfg, message", [
    (config({"_target_": "perceptspec.examples.cartpole.cartpole_policy"}),
     "the policy spec carries no recurrent state"),
    (config({"_target_": f"{HERE}.no_reset_policy"}), "the policy's stateful blocks have no reset key"),
    (config({"_target_": f"{HERE}.sharing_policy", "cell": "lstm"}),
     r"the critic has a state of its own and reads the policy's outputs \['memory'\]"),
    (config({"_target_": f"{EXAMPLES}.recurrent_policy", "hidden_size": 4}),
     r"RecurrentPPO keeps one state shape \(num_layers, hidden_size\) for all, the networks' states have "
     r"\[\(1, 4\), \(1, 8\)\]"),
], ids=["feed-forward", "no-reset-key", "stateful-critic-reading-the-policy", "two-state-shapes"])
def test_configs_recurrent_ppo_cannot_carry_are_errors(cfg: dict[str, Any], message: str) -> None:
    with pytest.raises(ps.SpecError, match=message):
        model_of(cfg)


def test_the_model_and_the_composed_networks_save_and_load_with_their_state(tmp_path: Path) -> None:
    model = model_of(LSTM_CONFIG)
    model.save(tmp_path / "model.zip")
    loaded = RecurrentPPO.load(tmp_path / "model.zip", device="cpu")
    obs = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    (action, state), (loaded_action, loaded_state) = (m.predict(obs, deterministic=True) for m in (model, loaded))
    assert np.array_equal(action, loaded_action) and state is not None and loaded_state is not None
    assert all(np.array_equal(a, b) for a, b in zip(state, loaded_state, strict=True))
    policy = model.policy
    assert isinstance(policy, SpecRecurrentActorCriticPolicy)
    ps.save(policy.models, tmp_path / "networks.safetensors")
    networks = ps.load(tmp_path / "networks.safetensors")
    assert isinstance(networks, ps.Models)
    assert networks.states == policy.models.states
    inputs = {"observation": torch.from_numpy(obs), **ps.initial_state(networks.actor_critic, 2)}
    expected = policy.models.actor_critic(inputs)
    assert all(torch.equal(value, expected[key]) for key, value in networks.actor_critic(inputs).items())
