"""TensorDict / TorchRL adapter: a materialized module as a `tensordict.nn.TensorDictModule`.

    from perceptspec.integrations.tensordict import as_tensordict_module

    models = ps.compose("cartpole.yaml", env.observation_space, env.action_space)
    policy = as_tensordict_module(models.policy, out_keys={"action": "logits"})
    critic = as_tensordict_module(models.critic, out_keys={"value": "state_value"})
    actor = ProbabilisticActor(policy, in_keys=["logits"], distribution_class=Categorical, return_log_prob=True)
    loss = ClipPPOLoss(actor, critic)                 # TorchRL's actors, losses, collectors from here on

Recurrent state (StatefulLSTM / StatefulGRU) follows TorchRL's conventions, as its LSTMModule does: the state is read
from the root and written to "next" (`next_state_keys(module)` gives the out-key renames), the reset key is
InitTracker's 'is_init', `tensordict_primer(module)` registers the state with the env (zeros at every reset), and
TorchRL's `set_recurrent_mode(True)` runs the module over the time dim (the TensorDict's last batch dim):

    policy = as_tensordict_module(models.policy, out_keys={"action": "logits", **next_state_keys(models.policy)})
    env = TransformedEnv(GymEnv("CartPole-v1"), Compose(InitTracker(), tensordict_primer(models.policy)))

The module reads the spec's input keys from a TensorDict and writes its output keys back; `in_keys` / `out_keys`
rename keys (a spec key -> a TensorDict key, nested keys as tuples), keys not named keep their names, except the
composer's flattened observation names ('agent/position'), which read TorchRL's nested keys (('agent', 'position')).
The composed modules read observations as gymnasium gives them (Discrete as an index): make TorchRL's `GymEnv` with
`categorical_action_encoding=True`, which gives Discrete observations as indices too (its default gives them one-hot). TorchRL's
conventions: 'observation' in, 'logits' for a categorical actor, 'state_value' for a critic. A Gaussian head's logits
are means then log standard deviations (as in `perceptspec.distributions`): follow it with
`NormalParamExtractor(scale_mapping="exp")` to get TorchRL's 'loc' and 'scale', or give the actor perceptspec's own
distribution of an action (`action_distribution_class`: any kind and options, a squashed Gaussian or a Beta on the
Box's bounds included) reading the 'logits' key. The composer's `actor_critic` gives
one module writing logits and value from one forward (a shared embedding computed once). Any batch shape works:
the TensorDict's batch dims are the module's leading dims.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from tensordict.nn import TensorDictModule  # type: ignore[import-untyped]  # tensordict ships no type information
from torch import nn

from perceptspec import spaces
from perceptspec._errors import SpecError
from perceptspec._fold._state import state_layout
from perceptspec._materialize import materialize, recurrent_mode
from perceptspec._observations import SEPARATOR
from perceptspec._spec import Block
from perceptspec._torch import SpecModule

__all__ = ["KeyedCall", "NestedKey", "action_distribution_class", "as_tensordict_module", "nested_key",
           "next_state_keys", "tensordict_module", "tensordict_primer"]

#: a TensorDict key: a name, or a path of names into nested TensorDicts
NestedKey = str | tuple[str, ...]


class KeyedCall(nn.Module):
    """TensorDictModule's calling convention (positional tensors in `in_keys` order, a tuple out) around a module
    that takes and returns a dict of tensors.

    Examples:
        >>> import torch
        >>> from perceptspec.integrations.tensordict import KeyedCall
        >>> module = ps.materialize(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[8]), {"obs": (4,)})
        >>> [t.shape for t in KeyedCall(module, ["obs"], ["h"])(torch.zeros(2, 4))]
        [torch.Size([2, 8])]
    """

    def __init__(self, module: nn.Module, in_keys: Sequence[str], out_keys: Sequence[str]) -> None:
        super().__init__()
        self.module = module
        self.in_keys, self.out_keys = tuple(in_keys), tuple(out_keys)

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with recurrent_mode(self.module) if _torchrl_recurrent_mode() else contextlib.nullcontext():
            out = self.module(dict(zip(self.in_keys, tensors)))
        return tuple(out[k] for k in self.out_keys)

    def extra_repr(self) -> str:
        return f"in_keys={list(self.in_keys)}, out_keys={list(self.out_keys)}"


def _keys(names: Sequence[str], renames: Mapping[str, NestedKey] | None, role: str) -> list[NestedKey]:
    renames = dict(renames or {})
    unknown = [k for k in renames if k not in names]
    if unknown:
        raise SpecError("as_tensordict_module", [f"{role}: {unknown} are not among the module's {role} {list(names)}"])
    return [renames.get(k, nested_key(k)) for k in names]


def nested_key(key: str) -> NestedKey:
    """The TensorDict key of a spec key: a flattened observation name ('agent/position', a nested Dict's entry as
    the composer names it) is the nested key ('agent', 'position'), as TorchRL's gym wrappers nest Dict
    observations; any other key is itself."""
    return tuple(key.split(SEPARATOR)) if SEPARATOR in key else key


def as_tensordict_module(module: nn.Module, *, in_keys: Mapping[str, NestedKey] | None = None,
                         out_keys: Mapping[str, NestedKey] | None = None) -> Any:
    """`module` as a `TensorDictModule` reading its inputs from, and writing its outputs to, a TensorDict.

    module: a materialized spec (`ps.materialize`, or a composer module built from specs): its keys are the spec's
        in keys and out keys. Any other module taking and returning a dict of tensors (the composer's modules over
        plain torch networks) works too; then `in_keys` and `out_keys` must list all its keys.
    in_keys, out_keys: spec key -> TensorDict key (a str, or a tuple for a nested key); keys not named keep their
        names ('a/b' reads the nested key ('a', 'b'), see `nested_key`).
    Returns a `tensordict.nn.TensorDictModule` (its `.module` is a `KeyedCall` around `module`).

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from perceptspec.integrations.tensordict import as_tensordict_module
        >>> module = ps.materialize(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[8]), {"obs": (4,)})
        >>> td_module = as_tensordict_module(module, out_keys={"h": ("agent", "hidden")})
        >>> td_module(TensorDict({"obs": torch.zeros(2, 4)}, batch_size=[2]))["agent", "hidden"].shape
        torch.Size([2, 8])
    """
    if isinstance(module, SpecModule):
        ins, outs = list(module.in_shapes), list(module.out_shapes)
    elif in_keys is None or out_keys is None:
        raise SpecError("as_tensordict_module", [f"a {type(module).__name__} has no spec to read its keys from: "
                                                 f"pass in_keys and out_keys naming all of them"])
    else:
        ins, outs = list(in_keys), list(out_keys)
    return TensorDictModule(KeyedCall(module, ins, outs), in_keys=_keys(ins, in_keys, "in_keys"),
                            out_keys=_keys(outs, out_keys, "out_keys"))


def tensordict_module(spec: Block, in_shapes: Mapping[str, Sequence[int]], *, seed: int | None = None,
                      check: str = "always", in_keys: Mapping[str, NestedKey] | None = None,
                      out_keys: Mapping[str, NestedKey] | None = None) -> Any:
    """`as_tensordict_module(ps.materialize(spec, in_shapes, seed=seed, check=check), ...)`: the same
    (spec, shapes, seed) gives the same weights in every process.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from perceptspec.integrations.tensordict import tensordict_module
        >>> actor = tensordict_module(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[8]), {"obs": (4,)}, seed=0)
        >>> actor(TensorDict({"obs": torch.zeros(2, 4)}, batch_size=[2]))["h"].shape
        torch.Size([2, 8])
    """
    return as_tensordict_module(materialize(spec, in_shapes, seed=seed, check=check), in_keys=in_keys,
                                out_keys=out_keys)


def action_distribution_class(action_space: Any, action: str = "action",
                              overrides: spaces.Override = ()) -> Callable[..., torch.distributions.Distribution]:
    """A `distribution_class` for TorchRL's `ProbabilisticActor(..., in_keys=["logits"])`: `logits` -> the torch
    distribution perceptspec chooses for `action` of `action_space` (`ps.distributions`: the same kinds, options and
    flat-logits layout as the composer's heads). One actor per action; for several, TorchRL's `CompositeDistribution`
    takes one of these per action.

    Examples:
        >>> import gymnasium as gym, torch
        >>> from perceptspec.integrations.tensordict import action_distribution_class
        >>> make = action_distribution_class(gym.spaces.Discrete(3))
        >>> make(logits=torch.zeros(2, 3)).sample().shape
        torch.Size([2])
    """
    from perceptspec.distributions import head_distribution

    where = f"action '{action}'"
    leaves = spaces.action_spaces(action_space)
    if action not in leaves:
        raise SpecError("action_distribution_class", [f"{action!r} is not an action of the space; actions: "
                                                      f"{list(leaves)}"])
    choice = spaces.distribution_choices(action_space, overrides)[action]
    space = leaves[action]
    start = getattr(space, "start", 0)
    if np.any(start != 0):
        raise SpecError("action_distribution_class", [f"action {action!r} of {space!r} starts at "
                                                      f"{start}: TorchRL's actions are indices from 0 (give "
                                                      f"the env a start of 0)"])

    def distribution(logits: torch.Tensor) -> torch.distributions.Distribution:
        return head_distribution(choice.name, choice.options, logits, space, where)
    return distribution


def _torchrl_recurrent_mode() -> bool:
    """Whether TorchRL's `set_recurrent_mode(True)` is in force (False when TorchRL was never imported)."""
    rnn = sys.modules.get("torchrl.modules.tensordict_module.rnn")
    return bool(rnn is not None and rnn.recurrent_mode())


def next_state_keys(module: nn.Module) -> dict[str, NestedKey]:
    """The out-key renames that write each next-state output to ("next", its state input key), where TorchRL's
    `step_mdp` carries it to the root for the next step (as LSTMModule's out_keys do)."""
    if not isinstance(module, SpecModule):
        raise SpecError("next_state_keys", [f"expected a module built from a spec, got {type(module).__name__}"])
    return {out_key: ("next", in_key) for out_key, in_key in state_layout(module.spec).carry.items()}


def tensordict_primer(module: nn.Module, in_keys: Mapping[str, NestedKey] | None = None) -> Any:
    """A TorchRL `TensorDictPrimer` for the module's state inputs (renamed as `in_keys` renames them): the env then
    carries them and sets them to zeros at every reset (LSTMModule's `make_tensordict_primer`). Needs torchrl."""
    from torchrl.data import Unbounded  # type: ignore[import-untyped]  # torchrl ships no type information
    from torchrl.envs.transforms import TensorDictPrimer  # type: ignore[import-untyped]

    if not isinstance(module, SpecModule):
        raise SpecError("tensordict_primer", [f"expected a module built from a spec, got {type(module).__name__}"])
    renames = dict(in_keys or {})
    specs = {renames.get(k.in_key, k.in_key): Unbounded(shape=k.shape) for k in state_layout(module.spec).keys}
    return TensorDictPrimer(specs, expand_specs=True)
