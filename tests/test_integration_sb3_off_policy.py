"""Stable-Baselines3's SAC, TD3, DDPG and DQN with perceptspec networks (issue #15 part 2): the same networks
SB3 would build, target copies as SB3 expects, Dict observations, save/load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from stable_baselines3 import DDPG, DQN, SAC, TD3
from stable_baselines3.common.envs import SimpleMultiObsEnv

import perceptspec as ps
from perceptspec.integrations.sb3_off_policy import SpecDQNPolicy, SpecQNetwork, SpecSACPolicy, SpecTD3Policy

PENDULUM = Path(ps.__file__).parent / "examples" / "pendulum.yaml"
CARTPOLE_Q = {"policy": {"networks": [{"_target_": "perceptspec.examples.cartpole.cartpole_policy",
                                       "hidden_units": [64, 64]}]}, "seed": 0}
ALGORITHMS: dict[str, tuple[Any, Any]] = {  # (SB3 algorithm class, policy class); SB3's own typing is loose
    "SAC": (SAC, SpecSACPolicy), "TD3": (TD3, SpecTD3Policy), "DDPG": (DDPG, SpecTD3Policy)}


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def learned(algorithm: str, env: Any = "Pendulum-v1", config: Any = PENDULUM, steps: int = 300) -> Any:
    cls, policy = ALGORITHMS[algorithm]
    model = cls(policy, env, policy_kwargs={"config": config}, learning_starts=100, batch_size=32, seed=0)
    model.learn(steps)
    return model


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_the_networks_are_the_ones_sb3_builds_by_default(algorithm: str) -> None:
    """pendulum.yaml has SB3's SAC sizes (2 x 256): the same number of parameters in the actor and every critic."""
    cls, policy = ALGORITHMS[algorithm]
    ours = cls(policy, "Pendulum-v1", policy_kwargs={"config": PENDULUM}, seed=0).policy
    sb3 = cls("MlpPolicy", "Pendulum-v1", policy_kwargs={"net_arch": [256, 256]}, seed=0).policy  # TD3's is [400, 300]
    assert parameter_count(ours.actor) == parameter_count(sb3.actor)
    assert parameter_count(ours.critic) == parameter_count(sb3.critic)
    assert len(ours.critic.q_networks) == len(sb3.critic.q_networks) == (1 if algorithm == "DDPG" else 2)
    assert parameter_count(ours) == parameter_count(sb3)


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_training_moves_the_networks_and_their_targets(algorithm: str) -> None:
    model = learned(algorithm, steps=50)
    policy = model.policy
    critic_before = [p.detach().clone() for p in policy.critic.parameters()]
    target_before = [p.detach().clone() for p in policy.critic_target.parameters()]
    model.learn(200, reset_num_timesteps=False)
    assert any(not torch.equal(a, b) for a, b in zip(critic_before, policy.critic.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(target_before, policy.critic_target.parameters()))
    # the targets are copies, not the trained networks themselves
    assert not any(a is b for a, b in zip(policy.critic.parameters(), policy.critic_target.parameters()))
    if algorithm != "SAC":
        assert not any(a is b for a, b in zip(policy.actor.parameters(), policy.actor_target.parameters()))
    # the twin critics start different (their own seeds), and every parameter is a spec module's
    if algorithm != "DDPG":
        first, second = policy.critic.q_networks
        assert not torch.equal(next(first.parameters()), next(second.parameters()))
    assert all(isinstance(q, ps.SpecModule) for q in policy.critic.q_networks)


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_actions_are_in_the_box_and_predict_is_deterministic(algorithm: str) -> None:
    model = learned(algorithm, steps=150)
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    again, _ = model.predict(obs, deterministic=True)
    assert action.shape == (1,) and np.array_equal(action, again)
    assert env.action_space.contains(action.astype(np.float32))


def test_seeded_twin_critics_are_the_same_in_every_build() -> None:
    a = SAC(SpecSACPolicy, "Pendulum-v1", policy_kwargs={"config": PENDULUM}).policy
    b = SAC(SpecSACPolicy, "Pendulum-v1", policy_kwargs={"config": PENDULUM}).policy
    for x, y in zip(a.critic.state_dict().values(), b.critic.state_dict().values()):
        assert torch.equal(x, y)


@pytest.mark.parametrize("algorithm", ["SAC", "TD3"])
def test_save_and_load_rebuild_the_same_networks(algorithm: str, tmp_path: Path) -> None:
    cls, _ = ALGORITHMS[algorithm]
    model = learned(algorithm, steps=150)
    model.save(tmp_path / "model")
    loaded = cls.load(tmp_path / "model")
    obs = np.array([[0.5, -0.5, 0.1]], dtype=np.float32)
    assert np.array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])


def test_dqn_q_network_and_its_target() -> None:
    model = DQN(SpecDQNPolicy, "CartPole-v1", policy_kwargs={"config": CARTPOLE_Q}, learning_starts=100,
                target_update_interval=50, seed=0)
    sb3 = DQN("MlpPolicy", "CartPole-v1", seed=0)
    assert parameter_count(model.policy.q_net) == parameter_count(sb3.policy.q_net)  # 2 x 64, as SB3's default
    before = [p.detach().clone() for p in model.policy.q_net_target.parameters()]
    model.learn(400)
    assert isinstance(model.policy.q_net.module, ps.SpecModule)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.q_net_target.parameters()))
    obs = np.zeros(4, dtype=np.float32)
    q_values = model.policy.q_net(torch.as_tensor(obs)[None])
    assert q_values.shape == (1, 2)
    assert model.predict(obs, deterministic=True)[0] == int(q_values.argmax())


def test_dict_observations_as_multi_input_policy() -> None:
    """SB3's MultiInputPolicy role: a Dict observation (an image and a vector) becomes one input key each."""
    env = SimpleMultiObsEnv(random_start=False)
    config = {"policy": {"networks": [{"_target_": "perceptspec.examples.continuous.mlp_actor",
                                       "hidden_units": [32]}]}}
    model = DQN(SpecDQNPolicy, env, policy_kwargs={"config": config}, learning_starts=50, buffer_size=500, seed=0)
    q_net = model.policy.q_net
    assert isinstance(q_net, SpecQNetwork) and isinstance(q_net.module, ps.SpecModule)
    assert set(q_net.module.in_shapes) == {"img", "vec"}
    model.learn(100)
    obs, _ = env.reset()
    assert env.action_space.contains(int(model.predict(obs, deterministic=True)[0]))


def test_dict_observations_with_a_q_critic() -> None:
    """A continuous-action env with Dict observations: the Q critic reads every observation key and the action."""
    pendulum = gym.make("Pendulum-v1")
    space = gym.spaces.Dict({"angle": gym.spaces.Box(-1.0, 1.0, (2,)), "speed": gym.spaces.Box(-8.0, 8.0, (1,))})
    env = gym.wrappers.TransformObservation(pendulum, lambda o: {"angle": o[:2], "speed": o[2:]}, space)
    model = learned("SAC", env=env, steps=150)
    assert set(model.policy.critic.q_networks[0].in_shapes) == {"angle", "speed", "action"}



def test_tuple_observations_through_the_flat_observation_wrapper() -> None:
    """SB3's replay buffer refuses a Tuple observation space; behind `FlatObservationWrapper` the actor and the Q
    critics read its entries under perceptspec's names, as `ps.compose` names them for the unwrapped env."""
    from perceptspec.integrations.sb3 import FlatObservationWrapper

    pendulum = gym.make("Pendulum-v1")
    space = gym.spaces.Tuple((gym.spaces.Box(-1.0, 1.0, (2,)), gym.spaces.Box(-8.0, 8.0, (1,))))
    env = FlatObservationWrapper(gym.wrappers.TransformObservation(pendulum, lambda o: (o[:2], o[2:]), space))
    model = learned("SAC", env=env, steps=150)
    composed = ps.compose(PENDULUM, space, pendulum.action_space)
    assert model.policy.critic.q_networks[0].in_shapes == composed.in_shapes["critic"]
    assert set(composed.in_shapes["critic"]) == {"observation/0", "observation/1", "action"}
    assert parameter_count(model.policy.actor) == parameter_count(composed.policy)


# --- errors ---------------------------------------------------------------------------------------------------------

def test_an_off_policy_critic_must_read_the_action() -> None:
    config = {"policy": {"networks": [{"_target_": "perceptspec.examples.continuous.mlp_actor"}]},
              "critic": {"networks": [{"_target_": "perceptspec.examples.continuous.mlp_q_critic"}]}}
    with pytest.raises(ps.SpecError, match=r"SpecSACPolicy: critic.kind: expected 'state_action' \(a Q critic "
                                           r"reading the observations and the action\), got 'state'"):
        SAC(SpecSACPolicy, "Pendulum-v1", policy_kwargs={"config": config})
    with pytest.raises(ps.SpecError, match=r"SpecDQNPolicy: critic: expected none"):
        DQN(SpecDQNPolicy, "CartPole-v1", policy_kwargs={"config": {**CARTPOLE_Q, "critic": config["critic"]}})


def test_a_conflicting_head_override_and_gsde_are_refused() -> None:
    config = {**yaml.safe_load(PENDULUM.read_text()),
              "distribution_overrides": {"action": "gaussian"}}
    with pytest.raises(ps.SpecError, match=r"SpecTD3Policy: distribution_overrides: the 'action' head of this "
                                           r"policy is 'deterministic', not 'gaussian'"):
        TD3(SpecTD3Policy, "Pendulum-v1", policy_kwargs={"config": config})
    with pytest.raises(ps.SpecError, match=r"SpecSACPolicy: use_sde=True \(gSDE\) is not supported"):
        SAC(SpecSACPolicy, "Pendulum-v1", policy_kwargs={"config": PENDULUM}, use_sde=True)


def test_plain_module_networks_are_refused() -> None:
    config = {"policy": {"networks": [{"_target_": "perceptspec.examples.plain_cartpole.PlainCartPolePolicy"}]}}
    with pytest.raises(ps.SpecError, match=r"SpecDQNPolicy: the networks must be built from specs"):
        DQN(SpecDQNPolicy, "CartPole-v1", policy_kwargs={"config": config})


def test_the_state_action_critic_has_no_actor_critic() -> None:
    env = gym.make("Pendulum-v1")
    models = ps.compose(PENDULUM, env.observation_space, env.action_space)
    assert set(models.in_shapes["critic"]) == {"observation", "action"} and models.in_shapes["critic"]["action"] == (1,)
    with pytest.raises(ps.SpecError, match="no actor_critic: a state-action critic reads the actions"):
        models.actor_critic  # noqa: B018


def test_action_shapes_are_what_a_q_critic_reads() -> None:
    space = gym.spaces.Dict({"steer": gym.spaces.Box(-1.0, 1.0, (2,)), "gear": gym.spaces.Discrete(3),
                             "lights": gym.spaces.MultiBinary(4), "modes": gym.spaces.MultiDiscrete([2, 3]),
                             "throttle": gym.spaces.Box(0.0, 1.0, ())})
    assert ps.spaces.action_shapes(space) == {"steer": (2,), "gear": (3,), "lights": (4,), "modes": (5,),
                                              "throttle": (1,)}


def test_the_deterministic_head_is_the_action_itself() -> None:
    space = gym.spaces.Box(-1.0, 1.0, (2,))
    assert ps.spaces.action_logits_shapes(space, {"action": "deterministic"}) == {"action": (2,)}
    logits = torch.tensor([[0.3, -0.2], [0.1, 0.0]])
    dist = ps.distributions.action_distribution({"action": logits}, space, {"action": "deterministic"})
    assert torch.equal(dist.sample()["action"], logits) and torch.equal(dist.mode()["action"], logits)
    assert dist.log_prob({"action": logits}).tolist() == [0.0, 0.0]
    assert dist.log_prob({"action": logits + 1}).tolist() == [-np.inf, -np.inf]
    assert dist.entropy().tolist() == [0.0, 0.0]


def test_the_sac_training_example_runs_and_draws_its_curve(capsys: pytest.CaptureFixture[str],
                                                           tmp_path: Path) -> None:
    """`make train-sac`'s script on a tiny budget (the full run, to a mean return >= -250, is in docs/training.md)."""
    from perceptspec.examples import train_pendulum_sac

    status = train_pendulum_sac.main(["--max-steps", "120", "--eval-every", "110", "--eval-episodes", "1",
                                      "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 1 and "mean return -250.0 not reached within 120 steps" in out and "(1 episodes) eval return" in out
    assert (tmp_path / "learning_curve.png").read_bytes().startswith(b"\x89PNG")


def test_sac_with_the_squashed_gaussian_and_its_log_std_clamp() -> None:
    """SAC's actor head as perceptspec's 'squashed_gaussian' (issue #17): its log-std clamp options reach SB3's
    actor, a few hundred steps train on Pendulum-v1, and SB3's log-probs are ours on [-1, 1] (SB3 rescales)."""
    config = {**yaml.safe_load(PENDULUM.read_text()),
              "distribution_overrides": {"action": {"distribution": "squashed_gaussian", "log_std_min": -5,
                                                    "log_std_max": 0.5}}}
    config["policy"]["networks"][0]["hidden_units"] = [32, 32]
    config["critic"]["networks"][0]["hidden_units"] = [32, 32]
    model = learned("SAC", config=config, steps=200)
    actor = model.policy.actor
    assert actor.log_std_bounds == (-5.0, 0.5)
    obs = torch.as_tensor(np.random.default_rng(0).uniform(-1, 1, (16, 3)), dtype=torch.float32)
    with torch.no_grad():
        mean, log_std, _ = actor.get_action_dist_params(obs)
        torch.manual_seed(0)
        actions, sb3_log_prob = actor.action_log_prob(obs)
    assert float(log_std.min()) >= -5.0 and float(log_std.max()) <= 0.5
    logits = torch.cat([mean, log_std], -1)
    ours = ps.distributions.action_distribution({"action": logits}, gym.spaces.Box(-1.0, 1.0, (1,)),
                                                {"action": "squashed_gaussian"})
    inside = actions.abs().lt(0.99).all(-1)
    torch.testing.assert_close(ours.log_prob({"action": actions})[inside], sb3_log_prob[inside], rtol=1e-3, atol=1e-3)
    with pytest.raises(ps.SpecError, match="SpecSACPolicy: distribution_overrides: the 'action' head of this policy "
                                           "is 'squashed_gaussian' or 'gaussian', not 'beta'"):
        SAC(SpecSACPolicy, "Pendulum-v1", policy_kwargs={"config": {**config, "distribution_overrides": {
            "action": "beta"}}})


def test_sac_on_a_two_dimensional_box() -> None:
    """A Box action of rank 2: the actor's head is flat (means, then log stds of the 4 entries), the Q critic reads
    the action in its shape (issue #17)."""
    from tests.test_integration_sb3 import ToyEnv

    env = ToyEnv(gym.spaces.Box(-1.0, 1.0, (3,), np.float32), gym.spaces.Box(-1.0, 1.0, (2, 2), np.float32))
    config = yaml.safe_load(PENDULUM.read_text())
    for section in ("policy", "critic"):
        config[section]["networks"][0]["hidden_units"] = [16]
    model = SAC(SpecSACPolicy, env, policy_kwargs={"config": config}, learning_starts=40, batch_size=16, seed=0)
    q_network = model.policy.critic.q_networks[0]
    assert isinstance(q_network, ps.SpecModule) and q_network.in_shapes["action"] == (2, 2)
    model.learn(48)
    action, _ = model.predict(np.zeros(3, np.float32), deterministic=True)
    assert action.shape == (2, 2) and env.action_space.contains(action)
