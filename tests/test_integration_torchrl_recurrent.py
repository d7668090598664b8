"""A stateful perceptspec policy under TorchRL's recurrent conventions (issue #17 item 3): the state keys round-trip
through an env rollout (InitTracker's 'is_init', a TensorDictPrimer, "next" keys carried by step_mdp), and TorchRL's
`set_recurrent_mode(True)` runs the rollout's sequence in one call with the same result."""

from __future__ import annotations

import pytest

pytest.importorskip("torchrl", reason="the TorchRL part needs torchrl: pip install -e '.[torchrl]'")

import torch  # noqa: E402
from tensordict.nn import TensorDictModule, TensorDictSequential  # type: ignore[import-untyped]  # noqa: E402
from torchrl.envs import Compose, GymEnv, InitTracker, TransformedEnv  # type: ignore[import-untyped]  # noqa: E402
from torchrl.modules import set_recurrent_mode  # type: ignore[import-untyped]  # noqa: E402

import perceptspec as ps  # noqa: E402
from perceptspec.integrations.tensordict import (as_tensordict_module, next_state_keys,  # noqa: E402
                                                 tensordict_primer)

SPEC = ps.Graph({
    "rnn": ps.StatefulLSTM(in_keys=["observation", "h", "c", "is_init"], out_keys=["memory", "h_next", "c_next"],
                           hidden_size=6, num_layers=2),
    "logits": ps.LinearOutput(in_keys="memory", out_keys="logits", output_units=2),
}, out_keys=["logits", "h_next", "c_next"])


def greedy(logits: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(logits.argmax(-1), 2)


def test_state_keys_round_trip_through_a_rollout_and_recurrent_mode_recomputes_it() -> None:
    module = ps.materialize(SPEC, {"observation": (4,), **ps.state_layout(SPEC).in_shapes}, seed=0)
    policy = TensorDictSequential(
        as_tensordict_module(module, out_keys=next_state_keys(module)),
        TensorDictModule(greedy, in_keys=["logits"], out_keys=["action"]))
    env = TransformedEnv(GymEnv("CartPole-v1"), Compose(InitTracker(), tensordict_primer(module)))
    env.set_seed(0)
    rollout = env.rollout(12, policy, break_when_any_done=False)
    assert rollout["h"].shape == (12, 2, 6) and rollout["next", "c"].shape == (12, 2, 6)
    assert not rollout["h"][0].any() and rollout["is_init"][0].all(), "the primer zeroes the state at reset"
    starts = rollout["is_init"][1:, :, None]
    assert starts.any() and not starts.all(), "an episode ends inside the rollout"
    carried = torch.where(starts, 0.0, rollout["next", "h"][:-1])  # step_mdp carried it, a reset zeroed it
    torch.testing.assert_close(rollout["h"][1:], carried)

    state = ps.initial_state(module)
    for t in range(12):  # the same steps by hand
        out = module({"observation": rollout["observation"][t], **state, "is_init": rollout["is_init"][t]})
        torch.testing.assert_close(out["logits"], rollout["logits"][t])
        state = ps.carry_state(module, out)

    replay = rollout.exclude("logits", ("next", "h"), ("next", "c"))
    with set_recurrent_mode(True):
        policy(replay)
    torch.testing.assert_close(replay["logits"], rollout["logits"])
    torch.testing.assert_close(replay["next", "h"][-1], rollout["next", "h"][-1])
    assert not module.block_module("rnn").recurrent_mode
