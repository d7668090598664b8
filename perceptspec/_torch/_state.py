"""Carrying a module's recurrent state between calls: the initial state, the next step's state inputs, and the
sequence mode for training on rollouts (`perceptspec._fold._state` finds the state keys)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch
from torch import nn

from perceptspec._errors import SpecError
from perceptspec._fold._state import StateLayout, state_layout
from perceptspec._spec import Block
from perceptspec._torch._module import SpecModule
from perceptspec._torch.blocks._stateful import StatefulRecurrentModule

Batch = int | tuple[int, ...]


def layout_of(spec_or_module: Block | nn.Module) -> StateLayout:
    """The state layout of a spec or of a module built from one."""
    if isinstance(spec_or_module, Block):
        return state_layout(spec_or_module)
    if isinstance(spec_or_module, SpecModule):
        return state_layout(spec_or_module.spec)
    raise SpecError("initial_state", [f"expected a spec or a materialized module (ps.materialize, the composer's "
                                      f"modules over specs), got {type(spec_or_module).__name__}"])


def initial_state(spec_or_module: Block | nn.Module, batch: Batch = (), *, dtype: torch.dtype | None = None,
                  device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """The inputs that start an episode: zeros (*batch, num_layers, hidden_size) for each state key, and each reset
    key (*batch, 1) true. dtype and device default to the module's parameters' (float32 on the CPU for a spec)."""
    layout = layout_of(spec_or_module)
    lead = (batch,) if isinstance(batch, int) else tuple(batch)
    probe = spec_or_module.probe_parameter() if isinstance(spec_or_module, SpecModule) else None
    dtype = dtype or (probe.dtype if probe is not None else torch.float32)
    device = device or (probe.device if probe is not None else None)
    state = {k.in_key: torch.zeros(*lead, *k.shape, dtype=dtype, device=device) for k in layout.keys}
    state.update({k: torch.ones(*lead, 1, dtype=torch.bool, device=device) for k in layout.reset_keys})
    return state


def carry_state(spec_or_module: Block | nn.Module, outputs: Mapping[str, torch.Tensor],
                reset: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The state inputs of the next step: each next-state output under its input key, and each reset key set to
    `reset` (bool, (*batch,) or (*batch, 1): the rows whose episode starts now), or all false."""
    layout = layout_of(spec_or_module)
    missing = [k for k in layout.carry if k not in outputs]
    if missing:
        raise SpecError("carry_state", [f"the outputs lack the next state {missing} (outputs: {list(outputs)})"])
    state = {in_key: outputs[out_key] for out_key, in_key in layout.carry.items()}
    if layout.reset_keys:
        first = outputs[layout.keys[0].out_key]
        lead = first.shape[:first.dim() - len(layout.keys[0].shape)]
        flags = torch.zeros(*lead, 1, dtype=torch.bool, device=first.device) if reset is None \
            else reset.to(device=first.device, dtype=torch.bool).reshape(*lead, 1)
        state.update({k: flags for k in layout.reset_keys})
    return state


@contextlib.contextmanager
def recurrent_mode(module: nn.Module, mode: bool = True) -> Iterator[None]:
    """Within the block, the stateful blocks in `module` run whole sequences: the last leading dim of every input is
    time (TorchRL's `set_recurrent_mode`; see `perceptspec._torch.blocks._stateful`). Restores the previous mode."""
    blocks = [m for m in module.modules() if isinstance(m, StatefulRecurrentModule)]
    before = [m.recurrent_mode for m in blocks]
    for m in blocks:
        m.recurrent_mode = mode
    try:
        yield
    finally:
        for m, previous in zip(blocks, before):
            m.recurrent_mode = previous
