"""sb3-contrib's RecurrentPPO with perceptspec networks: a composer config whose specs carry recurrent state.

    from sb3_contrib import RecurrentPPO
    from perceptspec.integrations.sb3_recurrent import SpecRecurrentActorCriticPolicy

    model = RecurrentPPO(SpecRecurrentActorCriticPolicy, env,
                         policy_kwargs={"config": "perceptspec/examples/recurrent_cartpole.yaml"})
    model.learn(100_000)

The config is the one `SpecActorCriticPolicy` takes (same layout, same preprocessing, same action distributions);
its policy spec has stateful blocks (StatefulLSTM / StatefulGRU, e.g. `perceptspec.examples.recurrent`), and the
critic may have its own. Each stateful block needs a reset key, fed with RecurrentPPO's `episode_starts`.

State: RecurrentPPO keeps two tensors of shape (num_layers, n_envs, hidden_size) for the policy (`RNNStates.pi`) and
two for the critic (`.vf`), the layout of nn.LSTM's (h, c), with one (num_layers, hidden_size) for all. The
policy's state keys (TorchRL's layout, (num_layers, hidden_size) per batch element) fill the `pi` slots in
`Models.states` order: an LSTM's h and c, or a GRU's h and a slot of zeros; the critic's fill `vf`, and a critic
without state of its own carries a copy of the policy's there (as RecurrentPPO's `shared_lstm`), so that
`predict_values` can run a critic reading the policy's outputs. `lstm_actor` is not an nn.LSTM but the
`StateSize(num_layers, hidden_size)` RecurrentPPO reads from it to size its buffers.

Rollouts call the networks one step at a time; training (`evaluate_actions`) runs RecurrentPPO's padded sequences
in the stateful blocks' sequence mode (`ps.recurrent_mode`), from each sequence's stored first state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import torch
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule

from perceptspec._composer import VALUE_KEY
from perceptspec._errors import SpecError
from perceptspec._fold._state import StateLayout
from perceptspec._materialize import recurrent_mode
from perceptspec.integrations.sb3 import ACTION, SpecActorCriticPolicy

__all__ = ["SpecRecurrentActorCriticPolicy", "StateSize"]

#: RecurrentPPO's state slots per network: nn.LSTM's (h, c)
SLOTS = 2
_WHERE = "SpecRecurrentActorCriticPolicy"


class StateSize(NamedTuple):
    """What RecurrentPPO reads from `policy.lstm_actor` to size its state buffers."""

    num_layers: int
    hidden_size: int


# Both bases define forward, evaluate_actions, get_distribution and predict_values with other signatures; this class
# takes RecurrentActorCriticPolicy's (what RecurrentPPO calls) and SpecActorCriticPolicy's composition and helpers.
class SpecRecurrentActorCriticPolicy(SpecActorCriticPolicy, RecurrentActorCriticPolicy):
    """A RecurrentPPO policy whose networks come from a perceptspec composer config with recurrent state.

    Arguments as `SpecActorCriticPolicy`'s. Attributes: `models` (the composer's Models; `models.states` lists the
    state keys), `actor_critic`, `lstm_actor` (a `StateSize`), `lstm_hidden_state_shape` (num_layers, 1, hidden).
    """

    lstm_actor: StateSize  # type: ignore[assignment]  # RecurrentPPO reads num_layers and hidden_size only

    def __init__(self, observation_space: gym.Space[Any], action_space: gym.Space[Any], lr_schedule: Schedule,
                 config: Mapping[str, Any] | str | Path, *, use_sde: bool = False, normalize_images: bool = True,
                 optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
                 optimizer_kwargs: dict[str, Any] | None = None, allow: Sequence[str] = ()) -> None:
        super().__init__(observation_space, action_space, lr_schedule, config, use_sde=use_sde,
                         normalize_images=normalize_images, optimizer_class=optimizer_class,
                         optimizer_kwargs=optimizer_kwargs, allow=allow)

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        states = self.models.states
        self.pi_state = states.get("policy", StateLayout())
        self.vf_state = states.get("critic", StateLayout())
        problems = [*_slot_problems("policy", self.pi_state), *_slot_problems("critic", self.vf_state)]
        shapes = {k.shape for layout in (self.pi_state, self.vf_state) for k in layout.keys}
        if len(shapes) > 1:
            problems.append(f"RecurrentPPO keeps one state shape (num_layers, hidden_size) for all, the networks' "
                            f"states have {sorted(shapes)}")
        critic_inputs = set(self.models.in_shapes["critic"])
        own = set(self.models.obs_shapes[0]) | set(self.vf_state.in_shapes)
        self._critic_alone = critic_inputs <= own
        if self.vf_state and not self._critic_alone:
            problems.append(f"the critic has a state of its own and reads the policy's outputs "
                            f"{sorted(critic_inputs - own)}: RecurrentPPO's predict_values gives it its own state "
                            f"only; read the observations, or drop the critic's state to share the policy's")
        if problems:
            raise SpecError(_WHERE, problems)
        (num_layers, hidden_size), = shapes
        self.lstm_actor = StateSize(num_layers, hidden_size)
        self.lstm_critic = None
        self.lstm_hidden_state_shape = (num_layers, 1, hidden_size)

    def state_inputs(self, layout: StateLayout, slots: Sequence[torch.Tensor],
                     episode_starts: torch.Tensor) -> dict[str, torch.Tensor]:
        """The networks' state and reset inputs from RecurrentPPO's slots (num_layers, batch, hidden) and
        episode starts (batch,)."""
        inputs = {k.in_key: slot.transpose(0, 1) for k, slot in zip(layout.keys, slots)}
        flags = episode_starts.reshape(-1, 1).to(slots[0].dtype)
        inputs.update({k: flags for k in layout.reset_keys})
        return inputs

    def slots(self, layout: StateLayout, out: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """RecurrentPPO's slots from the networks' next state (batch, num_layers, hidden), zeros where unused."""
        slots = [out[k.out_key].transpose(0, 1) for k in layout.keys]
        return (*slots, *(torch.zeros_like(slots[0]) for _ in range(SLOTS - len(slots))))

    def step_inputs(self, obs: PyTorchObs, lstm_states: RNNStates,
                    episode_starts: torch.Tensor) -> dict[str, torch.Tensor]:
        inputs = self.network_inputs(obs)
        inputs.update(self.state_inputs(self.pi_state, lstm_states.pi, episode_starts))
        if self.vf_state:
            inputs.update(self.state_inputs(self.vf_state, lstm_states.vf, episode_starts))
        return inputs

    def next_states(self, out: Mapping[str, torch.Tensor]) -> RNNStates:
        pi = self.slots(self.pi_state, out)
        return RNNStates(pi, self.slots(self.vf_state, out) if self.vf_state else tuple(s.detach() for s in pi))

    def forward(self, obs: PyTorchObs, lstm_states: RNNStates, episode_starts: torch.Tensor,  # type: ignore[override]
                deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, RNNStates]:
        """One step for every env: actions, values, log-probs and the next states, from one actor-critic forward."""
        out = self.actor_critic(self.step_inputs(obs, lstm_states, episode_starts))
        distribution = self.distribution(out[ACTION])
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        shape: tuple[int, ...] = self.action_space.shape  # type: ignore[assignment]  # as in SpecActorCriticPolicy
        return actions.reshape((-1, *shape)), out[VALUE_KEY].reshape(-1, 1), log_prob, self.next_states(out)

    def get_distribution(self, obs: PyTorchObs, lstm_states: tuple[torch.Tensor, ...],  # type: ignore[override]
                         episode_starts: torch.Tensor) -> tuple[Distribution, tuple[torch.Tensor, ...]]:
        """The action distribution and the policy's next state; runs the policy network only."""
        inputs = self.network_inputs(obs)
        inputs.update(self.state_inputs(self.pi_state, lstm_states, episode_starts))
        out = self.models.policy(inputs)
        return self.distribution(out[ACTION]), self.slots(self.pi_state, out)

    def predict_values(self, obs: PyTorchObs, lstm_states: tuple[torch.Tensor, ...],  # type: ignore[override]
                       episode_starts: torch.Tensor) -> torch.Tensor:
        """The values from the critic's slots (the critic's own state, or the copy of the policy's it carries)."""
        inputs = self.network_inputs(obs)
        critic = self.models.critic
        if self._critic_alone and critic is not None:
            module, layout = critic, self.vf_state
        else:
            module, layout = self.actor_critic, self.pi_state
        inputs.update(self.state_inputs(layout, lstm_states, episode_starts))
        value: torch.Tensor = module(inputs)[VALUE_KEY]
        return value.reshape(-1, 1)

    def evaluate_actions(self, obs: PyTorchObs, actions: torch.Tensor, lstm_states: RNNStates,  # type: ignore[override]
                         episode_starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Values, log-probs and entropies over RecurrentPPO's padded sequences: the flat batch (n_seq * T, ...) is
        run as n_seq sequences of T steps from their first states, in the stateful blocks' sequence mode."""
        n_seq = lstm_states.pi[0].shape[1]
        flat = self.network_inputs(obs)
        steps = next(iter(flat.values())).shape[0] // n_seq
        inputs = {k: v.reshape(n_seq, steps, *v.shape[1:]) for k, v in flat.items()}
        starts = episode_starts.reshape(n_seq, steps, 1).to(lstm_states.pi[0].dtype)
        for layout, slots in ((self.pi_state, lstm_states.pi), (self.vf_state, lstm_states.vf)):
            for key, slot in zip(layout.keys, slots):  # read at the first step only (see ps.recurrent_mode)
                inputs[key.in_key] = slot.transpose(0, 1).unsqueeze(1).expand(n_seq, steps, *key.shape)
            inputs.update({k: starts for k in layout.reset_keys})
        with recurrent_mode(self.actor_critic):
            out = self.actor_critic(inputs)
        distribution = self.distribution(out[ACTION].flatten(0, 1))
        entropy = distribution.entropy()
        assert entropy is not None  # every distribution SpecActorCriticPolicy accepts has one
        return out[VALUE_KEY].reshape(-1, 1), distribution.log_prob(actions), entropy


def _slot_problems(network: str, layout: StateLayout) -> list[str]:
    problems = []
    if network == "policy" and not layout:
        problems.append("the policy spec carries no recurrent state (no StatefulLSTM / StatefulGRU): RecurrentPPO "
                        "needs one; train a feed-forward policy with PPO and SpecActorCriticPolicy")
    if len(layout.keys) > SLOTS:
        problems.append(f"the {network}'s state has {len(layout.keys)} tensors {[k.in_key for k in layout.keys]}; "
                        f"RecurrentPPO keeps {SLOTS} per network (one LSTM's h and c, or one GRU's h)")
    if layout and not layout.reset_keys:
        problems.append(f"the {network}'s stateful blocks have no reset key: RecurrentPPO's episode starts could not "
                        f"zero their state (give each an in key such as 'is_init' after its state keys)")
    return problems
