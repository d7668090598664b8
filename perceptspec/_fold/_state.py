"""The recurrent state of a spec, found by a fold: which inputs hold state, which outputs hold the next state.

A spec with stateful blocks (StatefulLSTM, StatefulGRU) reads its state from input keys and writes the next state
to output keys; the caller carries each output to its input between steps. `state_layout` lists those pairs with
their shapes (per batch element, TorchRL's (num_layers, hidden_size)) and the reset keys, so that the composer,
`ps.initial_state` and the training adapters know what is state and what is an observation. Pure: no torch.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Mapping
from typing import NamedTuple

from perceptspec._core import Shape
from perceptspec._errors import SpecError
from perceptspec._fold._program import lower
from perceptspec._fold.rules._stateful import RESET_SHAPE
from perceptspec._spec import Block
from perceptspec._spec._stateful import StatefulRecurrent

__all__ = ["StateKey", "StateLayout", "state_layout"]


class StateKey(NamedTuple):
    """One state tensor: read from `in_key` before a step, written to `out_key` after it, `shape` per batch element."""

    in_key: str
    out_key: str
    shape: Shape


@dataclasses.dataclass(frozen=True)
class StateLayout:
    """The state a spec carries between calls: `keys` (in spec order) and the `reset_keys` (shape (1,): a true row
    starts from zeros). Empty for a spec without stateful blocks."""

    keys: tuple[StateKey, ...] = ()
    reset_keys: tuple[str, ...] = ()

    @property
    def in_shapes(self) -> dict[str, Shape]:
        """The shapes of the state and reset inputs, to merge with the observations' for `materialize`."""
        return {**{k.in_key: k.shape for k in self.keys}, **{k: RESET_SHAPE for k in self.reset_keys}}

    @property
    def carry(self) -> dict[str, str]:
        """Output key -> the input key it feeds at the next step."""
        return {k.out_key: k.in_key for k in self.keys}

    def __bool__(self) -> bool:
        return bool(self.keys)


@functools.lru_cache(maxsize=256)
def state_layout(spec: Block) -> StateLayout:
    """The state `spec` carries. A state input must be an input of the spec (what the caller carries over) and read
    by one block only; the next state must be among the spec's out_keys; otherwise a `SpecError` says which."""
    program = lower(spec)
    keys: list[StateKey] = []
    resets: list[str] = []
    problems = []
    readers: dict[str, str] = {}
    for eqn in program.eqns:
        block = eqn.block
        if not isinstance(block, StatefulRecurrent):
            continue
        for in_key, out_key in zip(eqn.ins[1:1 + len(block.state_names)], eqn.outs[1:]):
            if in_key not in program.inputs:
                problems.append(f"block '{eqn.path}' ({eqn.kind}) reads its state from '{in_key}', which another "
                                f"block computes: a state is an input of the spec, carried over from the last step")
            elif in_key in readers:
                problems.append(f"blocks '{readers[in_key]}' and '{eqn.path}' read the same state '{in_key}': each "
                                f"stateful block needs state keys of its own")
            readers.setdefault(in_key, eqn.path)
            if out_key not in program.outputs:
                problems.append(f"block '{eqn.path}' ({eqn.kind}) writes its next state to '{out_key}', which is not "
                                f"among the spec's out_keys {list(program.outputs)}: add it, so that the caller can "
                                f"carry it to the next step")
            keys.append(StateKey(in_key, out_key, block.state_shape))
        reset = block.reset_key
        if reset is not None and eqn.ins[-1] in program.inputs and eqn.ins[-1] not in resets:
            resets.append(eqn.ins[-1])
    if problems:
        raise SpecError(f"the recurrent state of {spec._where()}", problems)
    return StateLayout(tuple(keys), tuple(resets))


def with_state_inputs(spec: Block, shapes: Mapping[str, Shape], where: str) -> dict[str, Shape]:
    """`shapes` (observations and shared keys) with the shapes of `spec`'s state and reset inputs: what the composer
    materializes a network for. A state key named like an observation is a `SpecError`."""
    state = state_layout(spec).in_shapes
    clash = [k for k in state if k in shapes]
    if clash:
        raise SpecError(where, [f"state or reset key(s) {clash} are also observations or keys the policy outputs "
                                f"({list(shapes)}): name the recurrent state apart"])
    return {**shapes, **state}


def without_state_outputs(spec: Block, shapes: Mapping[str, Shape]) -> dict[str, Shape]:
    """`shapes` of a policy's extra outputs without its next-state keys: those go back to the policy, not to the
    critic as a shared embedding does."""
    carry = state_layout(spec).carry
    return {k: s for k, s in shapes.items() if k not in carry}


def network_states(specs: Mapping[str, Block | None]) -> dict[str, StateLayout]:
    """The state layout of each composed network ('policy', 'critic', 'policy[step]', ...) that has one. A policy and
    a critic run in one actor-critic forward, so they need state keys of their own: a `SpecError` names those
    they share."""
    layouts = {name: layout for name, spec in specs.items() if spec is not None and (layout := state_layout(spec))}
    problems = []
    for policy, critic in itertools.product(layouts, layouts):
        if policy.startswith("policy") and critic.startswith("critic"):
            keys = [{k for state in layouts[name].keys for k in (state.in_key, state.out_key)}
                    for name in (policy, critic)]
            if shared := sorted(keys[0] & keys[1]):
                problems.append(f"the {policy} and {critic} networks both use the state keys {shared}: each "
                                f"network's state needs keys of its own (e.g. 'critic_h')")
    if problems:
        raise SpecError("compose", problems)
    return layouts
