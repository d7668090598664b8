"""The TensorDict / TorchRL adapter (issue #8): materialized modules as `TensorDictModule`s, in TorchRL's actors
and losses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tensordict", reason="the TensorDict adapter needs tensordict: pip install -e '.[tensordict]'")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tensordict import TensorDict  # type: ignore[import-untyped]  # noqa: E402  # tensordict ships no type information
from tensordict.nn import TensorDictModule, TensorDictSequential  # type: ignore[import-untyped]  # noqa: E402  # same

import perceptspec as ps  # noqa: E402
from perceptspec.integrations.tensordict import as_tensordict_module, tensordict_module  # noqa: E402

CARTPOLE_YAML = Path(ps.__file__).parent / "examples" / "cartpole.yaml"
SHAPES = {"observation": (4,)}


def torchrl_or_skip() -> Any:
    """TorchRL's `modules` and `objectives`, or skip the test."""
    pytest.importorskip("torchrl", reason="the TorchRL part needs torchrl: pip install -e '.[torchrl]'")
    import torchrl.modules  # type: ignore[import-untyped]  # torchrl ships no type information
    import torchrl.objectives  # type: ignore[import-untyped]  # as above

    return torchrl


def two_headed() -> ps.Graph:
    return ps.Graph({
        "body": ps.Dense(in_keys="observation", out_keys="latent", hidden_units=[16], non_lin="tanh"),
        "logits": ps.LinearOutput(in_keys="latent", out_keys="action", output_units=2),
        "value": ps.LinearOutput(in_keys="latent", out_keys="value", output_units=1),
    }, out_keys=["action", "value"])


def cartpole_models() -> ps.Models:
    env = gym.make("CartPole-v1")
    return ps.compose(CARTPOLE_YAML, env.observation_space, env.action_space)


def test_reads_and_writes_the_spec_keys_for_any_batch_shape() -> None:
    module = ps.materialize(two_headed(), SHAPES, seed=0)
    td_module = as_tensordict_module(module)
    assert isinstance(td_module, TensorDictModule)
    assert td_module.in_keys == ["observation"] and td_module.out_keys == ["action", "value"]
    obs = torch.randn(4, 3, 4)
    td = td_module(TensorDict({"observation": obs}, batch_size=[4, 3]))
    expected = module({"observation": obs})
    assert td["action"].shape == (4, 3, 2) and td["value"].shape == (4, 3, 1)
    torch.testing.assert_close(td["action"], expected["action"])
    torch.testing.assert_close(td["value"], expected["value"])
    assert set(dict(td_module.named_parameters())) == {f"module.module.{k}" for k, _ in module.named_parameters()}


def test_renames_keys_including_nested_ones() -> None:
    td_module = tensordict_module(two_headed(), SHAPES, seed=0, in_keys={"observation": ("agent", "obs")},
                                  out_keys={"action": "logits", "value": "state_value"})
    td = TensorDict({"agent": TensorDict({"obs": torch.randn(5, 4)}, batch_size=[5])}, batch_size=[5])
    td_module(td)
    assert td["logits"].shape == (5, 2) and td["state_value"].shape == (5, 1)
    same = ps.materialize(two_headed(), SHAPES, seed=0)({"observation": td["agent", "obs"]})
    torch.testing.assert_close(td["logits"], same["action"])  # same (spec, shapes, seed): same weights


def test_composed_actor_critic_writes_logits_and_value_in_one_call() -> None:
    models = cartpole_models()
    td_module = as_tensordict_module(models.actor_critic, out_keys={"action": "logits", "value": "state_value"})
    td = td_module(TensorDict({"observation": torch.randn(6, 4)}, batch_size=[6]))
    torch.testing.assert_close(td["logits"], models.policy({"observation": td["observation"]})["action"])
    critic = models.critic
    assert critic is not None
    torch.testing.assert_close(td["state_value"], critic({"observation": td["observation"]})["value"])


def test_plain_modules_need_their_keys() -> None:
    class Plain(torch.nn.Module):
        def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {"double": inputs["x"] * 2}

    with pytest.raises(ps.SpecError, match="has no spec to read its keys from"):
        as_tensordict_module(Plain())
    td = as_tensordict_module(Plain(), in_keys={"x": "x"}, out_keys={"double": "y"})(
        TensorDict({"x": torch.ones(2, 3)}, batch_size=[2]))
    torch.testing.assert_close(td["y"], torch.full((2, 3), 2.0))
    with pytest.raises(ps.SpecError, match=r"out_keys: \['logit'\] are not among"):
        as_tensordict_module(ps.materialize(two_headed(), SHAPES), out_keys={"logit": "logits"})


def test_torchrl_ppo_loss_trains_the_spec_networks() -> None:
    trl = torchrl_or_skip()
    ProbabilisticActor, ClipPPOLoss = trl.modules.ProbabilisticActor, trl.objectives.ClipPPOLoss

    models = cartpole_models()
    critic_module = models.critic
    assert critic_module is not None
    actor = ProbabilisticActor(as_tensordict_module(models.policy, out_keys={"action": "logits"}),
                               in_keys=["logits"], distribution_class=torch.distributions.Categorical,
                               return_log_prob=True)
    critic = as_tensordict_module(critic_module, out_keys={"value": "state_value"})
    loss = ClipPPOLoss(actor, critic)
    torch.manual_seed(0)
    with torch.no_grad():
        batch = actor(TensorDict({"observation": torch.randn(32, 4)}, batch_size=[32]))
    assert batch["action"].shape == (32,)
    ours = ps.distributions.action_distribution({"action": batch["logits"]}, gym.spaces.Discrete(2))
    torch.testing.assert_close(batch[loss.tensor_keys.sample_log_prob], ours.log_prob({"action": batch["action"]}))
    batch["advantage"] = torch.randn(32, 1)
    batch["value_target"] = torch.randn(32, 1)
    losses = loss(batch)
    total = sum(v for k, v in losses.items() if k.startswith("loss_"))
    assert isinstance(total, torch.Tensor)
    torch.autograd.backward(total)
    for module in (models.policy, critic_module):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_gaussian_head_through_torchrl_normal_param_extractor() -> None:
    modules = torchrl_or_skip().modules
    IndependentNormal, NormalParamExtractor = modules.IndependentNormal, modules.NormalParamExtractor
    ProbabilisticActor = modules.ProbabilisticActor

    space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    spec = ps.Graph({
        "body": ps.Dense(in_keys="observation", out_keys="latent", hidden_units=[8], non_lin="tanh"),
        "action": ps.LinearOutput(in_keys="latent", out_keys="action", output_units=6, init=ps.NormC(std=1.0)),
    }, out_keys="action")
    params: Any = TensorDictModule(NormalParamExtractor(scale_mapping="exp"), in_keys=["logits"],
                                   out_keys=["loc", "scale"])
    module = TensorDictSequential(tensordict_module(spec, SHAPES, seed=0, out_keys={"action": "logits"}), params)
    actor = ProbabilisticActor(module, in_keys=["loc", "scale"], distribution_class=IndependentNormal,
                               return_log_prob=True)
    with torch.no_grad():
        td = actor(TensorDict({"observation": torch.randn(10, 4)}, batch_size=[10]))
        ours = ps.distributions.action_distribution({"action": td["logits"]}, space)
        log_prob = ours.log_prob({"action": td["action"]})
    assert td["action"].shape == (10, 3)
    (log_prob_key,) = [k for k in td.keys() if k.endswith("log_prob")]  # its name differs across TorchRL versions
    torch.testing.assert_close(td[log_prob_key], log_prob)


@pytest.mark.parametrize("overrides", [{"Box": "squashed_gaussian"}, {"Box": "beta"},
                                       {"Box": {"distribution": "gaussian", "log_std_max": 0.0}}])
def test_perceptspec_distributions_in_a_probabilistic_actor(overrides: dict[str, Any]) -> None:
    """`action_distribution_class`: perceptspec's distribution of an action as TorchRL's `distribution_class`, with
    PPO's loss on top (issue #17)."""
    from perceptspec.integrations.tensordict import action_distribution_class

    modules = torchrl_or_skip().modules
    space = gym.spaces.Box(np.array([-2.0, 0.0, 0.0], np.float32), np.array([2.0, 1.0, 5.0], np.float32))
    spec = ps.Graph({
        "body": ps.Dense(in_keys="observation", out_keys="latent", hidden_units=[8], non_lin="tanh"),
        "action": ps.LinearOutput(in_keys="latent", out_keys="action", output_units=6),
    }, out_keys="action")
    actor = modules.ProbabilisticActor(tensordict_module(spec, SHAPES, seed=0, out_keys={"action": "logits"}),
                                       in_keys=["logits"], distribution_class=action_distribution_class(space,
                                       overrides=overrides), return_log_prob=True)
    from tensordict.nn import InteractionType, set_interaction_type

    with set_interaction_type(InteractionType.RANDOM):  # sampled, as a collector's rollouts are
        td = ppo_batch(actor)
    ours = ps.distributions.action_distribution({"action": td["logits"]}, space, overrides)
    (log_prob_key,) = [k for k in td.keys() if k.endswith("log_prob")]
    torch.testing.assert_close(td[log_prob_key], ours.log_prob({"action": td["action"]}))
    if "gaussian" not in str(overrides):
        low, high = torch.as_tensor(space.low), torch.as_tensor(space.high)
        assert bool(((td["action"] >= low) & (td["action"] <= high)).all())
    critic = tensordict_module(ps.Graph({"body": ps.Dense(in_keys="observation", out_keys="h", hidden_units=[8]),
                                         "value": ps.LinearOutput(in_keys="h", out_keys="value", output_units=1)},
                                        out_keys="value"), SHAPES, seed=1, out_keys={"value": "state_value"})
    loss = torch_rl_objectives().ClipPPOLoss(actor, critic, entropy_bonus=False)
    losses = loss(td)
    total = losses["loss_objective"] + losses["loss_critic"]
    total.backward()
    assert all(p.grad is not None for p in actor.parameters())
    with pytest.raises(ps.SpecError, match=r"action_distribution_class: 'steer' is not an action of the space"):
        action_distribution_class(space, "steer")


def torch_rl_objectives() -> Any:
    return torchrl_or_skip().objectives


# --- TorchRL losses that swap parameters in (issue #13) -------------------------------------------------------------

def ppo_batch(actor: Any, n: int = 16) -> Any:
    """A rollout-shaped batch: observations, sampled actions and their log-probs, rewards, next observations."""
    torch.manual_seed(0)
    with torch.no_grad():
        td = actor(TensorDict({"observation": torch.randn(n, 4)}, batch_size=[n]))
    td["next"] = TensorDict({"observation": torch.randn(n, 4), "reward": torch.randn(n, 1),
                             "done": torch.zeros(n, 1, dtype=torch.bool),
                             "terminated": torch.zeros(n, 1, dtype=torch.bool)}, batch_size=[n])
    return td


@pytest.mark.parametrize("loss_name", ["ClipPPOLoss", "A2CLoss"])
def test_torchrl_losses_with_their_in_loss_advantage(loss_name: str) -> None:
    """The loss computes the advantage itself, calling the critic with detached parameters swapped in (tensordict's
    `to_module`): the generated forward must read them as the critic's own (KeyError: 'weight' before)."""
    trl = torchrl_or_skip()
    models = cartpole_models()
    assert models.critic is not None
    actor = trl.modules.ProbabilisticActor(as_tensordict_module(models.policy, out_keys={"action": "logits"}),
                                           in_keys=["logits"], distribution_class=torch.distributions.Categorical,
                                           return_log_prob=True)
    critic = as_tensordict_module(models.critic, out_keys={"value": "state_value"})
    loss = getattr(trl.objectives, loss_name)(actor, critic)
    optimizer = torch.optim.Adam(loss.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in models.critic.parameters()]
    for _ in range(3):
        losses = loss(ppo_batch(actor))
        total = sum(v for k, v in losses.items() if k.startswith("loss_"))
        assert isinstance(total, torch.Tensor) and torch.isfinite(total)
        optimizer.zero_grad()
        torch.autograd.backward(total)
        optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, models.critic.parameters()))


def test_torchrl_dqn_loss_with_a_target_network_and_its_updates() -> None:
    """DQNLoss(delay_value=True) keeps target parameters and swaps them in to compute the targets; SoftUpdate
    moves them towards the trained ones."""
    trl = torchrl_or_skip()
    spec = ps.Graph({"body": ps.Dense(in_keys="observation", out_keys="h", hidden_units=[16], non_lin="relu"),
                     "q": ps.LinearOutput(in_keys="h", out_keys="action_value", output_units=2)},
                    out_keys="action_value")
    q_net = tensordict_module(spec, SHAPES, seed=0)
    actor = trl.modules.QValueActor(q_net, in_keys=["observation"], action_space="one-hot")
    loss = trl.objectives.DQNLoss(actor, action_space="one-hot", delay_value=True)
    updater = trl.objectives.SoftUpdate(loss, eps=0.5)
    optimizer = torch.optim.Adam(loss.parameters(), lr=1e-2)
    target_before = [p.detach().clone() for p in loss.target_value_network_params.values(True, True)]
    for _ in range(3):
        td = ppo_batch(actor)
        losses = loss(td)
        optimizer.zero_grad()
        torch.autograd.backward(losses["loss"])
        optimizer.step()
        updater.step()
    target_after = list(loss.target_value_network_params.values(True, True))
    assert any(not torch.equal(a, b) for a, b in zip(target_before, target_after))


# --- off-policy losses: deterministic actors, Q critics, target networks (issue #15) ----------------------------------

ACT_DIM = 2


def q_critic(n: int = 0) -> Any:
    """A state-action critic: [observation, action] -> 'state_action_value', as TorchRL's off-policy losses read it."""
    spec = ps.Graph({"oa": ps.Concat(in_keys=["observation", "action"], out_keys="oa", concat_dim=-1),
                     "body": ps.Dense(in_keys="oa", out_keys="h", hidden_units=[16], non_lin="relu"),
                     "q": ps.LinearOutput(in_keys="h", out_keys="state_action_value", output_units=1)},
                    out_keys="state_action_value")
    return tensordict_module(spec, {**SHAPES, "action": (ACT_DIM,)}, seed=n)


def deterministic_actor() -> Any:
    """observation -> 'action' in [-1, 1] (a tanh Dense layer as the head)."""
    spec = ps.Graph({"body": ps.Dense(in_keys="observation", out_keys="h", hidden_units=[16], non_lin="relu"),
                     "action": ps.Dense(in_keys="h", out_keys="action", hidden_units=[ACT_DIM], non_lin="tanh")},
                    out_keys="action")
    return tensordict_module(spec, SHAPES, seed=1)


def tanh_normal_actor(trl: Any) -> Any:
    """observation -> means and log-stds -> TorchRL's TanhNormal (SAC's squashed Gaussian)."""
    spec = ps.Graph({"body": ps.Dense(in_keys="observation", out_keys="h", hidden_units=[16], non_lin="relu"),
                     "logits": ps.LinearOutput(in_keys="h", out_keys="logits", output_units=2 * ACT_DIM)},
                    out_keys="logits")
    params: Any = TensorDictModule(trl.modules.NormalParamExtractor(), in_keys=["logits"], out_keys=["loc", "scale"])
    return trl.modules.ProbabilisticActor(
        TensorDictSequential(tensordict_module(spec, SHAPES, seed=2), params), in_keys=["loc", "scale"],
        distribution_class=trl.modules.TanhNormal, distribution_kwargs={"low": -1.0, "high": 1.0},
        return_log_prob=True)


def transitions(n: int = 16) -> Any:
    """Replay-buffer-shaped transitions with continuous actions."""
    generator = torch.Generator().manual_seed(0)
    return TensorDict({"observation": torch.randn(n, 4, generator=generator),
                       "action": torch.rand(n, ACT_DIM, generator=generator) * 2 - 1,
                       "next": TensorDict({"observation": torch.randn(n, 4, generator=generator),
                                           "reward": torch.randn(n, 1, generator=generator),
                                           "done": torch.zeros(n, 1, dtype=torch.bool),
                                           "terminated": torch.zeros(n, 1, dtype=torch.bool)}, batch_size=[n])},
                      batch_size=[n])


def action_spec(trl: Any) -> Any:
    from torchrl.data import Bounded  # type: ignore[import-untyped]  # torchrl ships no type information

    return Bounded(-torch.ones(ACT_DIM), torch.ones(ACT_DIM), (ACT_DIM,))


def train_a_few_steps(loss: Any, updater: Any, steps: int = 3) -> None:
    """Adam on the sum of the loss terms, then the target update, `steps` times; every loss term stays finite."""
    optimizer = torch.optim.Adam(loss.parameters(), lr=1e-2)
    for _ in range(steps):
        losses = loss(transitions())
        terms = [v for k, v in losses.items() if k.startswith("loss_")]
        assert terms and all(torch.isfinite(t).all() for t in terms), dict(losses)
        optimizer.zero_grad()
        torch.autograd.backward(sum(t.sum() for t in terms))
        optimizer.step()
        updater.step()


def target_values(loss: Any, name: str) -> list[torch.Tensor]:
    return [p.detach().clone() for p in getattr(loss, name).values(True, True)]


@pytest.mark.parametrize("loss_name", ["DDPGLoss", "TD3Loss", "SACLoss"])
@pytest.mark.parametrize("update", ["SoftUpdate", "HardUpdate"])
def test_torchrl_off_policy_losses_train_spec_networks_and_their_targets(loss_name: str, update: str) -> None:
    """TorchRL's DDPG, TD3 and SAC losses with their defaults: they copy the critics (and DDPG/TD3 the actor) into
    target parameters, swap those in to compute targets, and `SoftUpdate`/`HardUpdate` move them."""
    trl = torchrl_or_skip()
    objectives = trl.objectives
    actor = tanh_normal_actor(trl) if loss_name == "SACLoss" else deterministic_actor()
    if loss_name == "DDPGLoss":
        loss = objectives.DDPGLoss(actor, q_critic())
    elif loss_name == "TD3Loss":
        loss = objectives.TD3Loss(actor, q_critic(), action_spec=action_spec(trl))
    else:
        loss = objectives.SACLoss(actor, q_critic(), action_spec=action_spec(trl))
    updater = (objectives.SoftUpdate(loss, eps=0.5) if update == "SoftUpdate"
               else objectives.HardUpdate(loss, value_network_update_interval=2))
    trained_before = [p.detach().clone() for p in loss.parameters()]
    target_name = "target_qvalue_network_params" if loss_name != "DDPGLoss" else "target_value_network_params"
    target_before = target_values(loss, target_name)
    train_a_few_steps(loss, updater)
    assert any(not torch.equal(a, b) for a, b in zip(trained_before, loss.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(target_before, target_values(loss, target_name)))


def test_torchrl_dqn_loss_with_a_hard_target_update() -> None:
    trl = torchrl_or_skip()
    spec = ps.Graph({"body": ps.Dense(in_keys="observation", out_keys="h", hidden_units=[16], non_lin="relu"),
                     "q": ps.LinearOutput(in_keys="h", out_keys="action_value", output_units=2)},
                    out_keys="action_value")
    actor = trl.modules.QValueActor(tensordict_module(spec, SHAPES, seed=0), in_keys=["observation"],
                                    action_space="one-hot")
    loss = trl.objectives.DQNLoss(actor, action_space="one-hot", delay_value=True)
    updater = trl.objectives.HardUpdate(loss, value_network_update_interval=2)
    optimizer = torch.optim.Adam(loss.parameters(), lr=1e-2)
    target_before = target_values(loss, "target_value_network_params")
    changed = []
    for _ in range(6):
        losses = loss(ppo_batch(actor))
        optimizer.zero_grad()
        torch.autograd.backward(losses["loss"])
        optimizer.step()
        updater.step()
        after = target_values(loss, "target_value_network_params")
        changed.append(any(not torch.equal(a, b) for a, b in zip(target_before, after)))
        target_before = after
    assert changed == [False, False, True, False, False, True]  # TorchRL copies when its counter passes 2


def test_the_torchrl_training_example_runs_a_batch(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`make train-torchrl`'s script end to end on one batch (the full run, to a mean return of 475, is recorded in
    docs/training.md): it collects, trains with the loss's own GAE, evaluates, reports and draws its curve."""
    torchrl_or_skip()
    from perceptspec.examples import train_cartpole_torchrl

    status = train_cartpole_torchrl.main(["--max-frames", "256", "--eval-every", "256", "--eval-episodes", "1",
                                          "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "frames     256" in out and "(1 episodes) eval return" in out
    assert (tmp_path / "learning_curve.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "learning_curve.csv").read_text().splitlines()[1].startswith("256,")
    assert status == (0 if "solved:" in out else 1) and ("solved:" in out or "not solved within 256 frames" in out)
