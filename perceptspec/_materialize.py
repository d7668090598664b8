"""The torch layer as the torch-free layers see it: entry points that import torch on first use only.

`materialize` for the package; `torch_model_facts` for the TorchModel fold rules, which need a module built on
the meta device when a TorchModel does not declare its out_shapes (the folds themselves import no torch module).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from perceptspec._spec import Block

if TYPE_CHECKING:
    import torch
    from torch import nn

    from perceptspec._fold.rules._torch_model import MetaFacts, ModuleView
    from perceptspec._spec import TorchModel
    from perceptspec._torch import SpecModule


def materialize(spec: Block, in_shapes: Mapping[str, Sequence[int]], *, seed: int | None = None,
                check: str = "always", allow_extra_keys: bool = False, check_finite: bool = False) -> SpecModule:
    """Build the torch module of `spec`: a `SpecModule` whose `forward(dict[str, Tensor])` returns exactly the
    spec's out keys, with a generated, flat forward (see `module.code`). Imports torch on first use.

    Arguments:
        spec: a block or a Graph.
        in_shapes: the shape of each input key, without batch dims; inputs may carry any leading batch dims.
        seed: the weights' seed: the same spec and seed give bit-identical weights in any process (each block
            draws from its own generator, seeded from the seed and its path). None draws from torch's RNG.
        check: input checks of the forward: 'always' (every call: keys, dtypes, trailing shapes, consistent
            batch dims), 'first' (the first call only) or 'off'. Assignable later (`module.check = "off"`).
        allow_extra_keys: accept inputs the spec does not read (the composer passes whole observations).
        check_finite: raise `NonFiniteError` naming the first block that turned finite inputs into NaN or inf.

    Raises:
        SpecError, ShapeError: the spec is invalid or its shapes do not fit `in_shapes`.

    Examples:
        >>> import torch
        >>> module = ps.materialize(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[16]), {"obs": (4,)}, seed=0)
        >>> module({"obs": torch.zeros(8, 4)})["h"].shape
        torch.Size([8, 16])
    """
    from perceptspec._torch import materialize as build

    return build(spec, in_shapes, seed=seed, check=check, allow_extra_keys=allow_extra_keys, check_finite=check_finite)


def transfer(module: SpecModule, new_spec: Block, in_shapes: Mapping[str, Sequence[int]], *, seed: int | None = None,
             check: str = "always") -> SpecModule:
    """Warm start: the module of `new_spec`, reusing `module`'s weights where a block's path and weight shapes match
    (see `perceptspec._torch._transfer.transfer`; its `transfer_report` says what was reused, reinitialised or
    dropped); imports torch on first use."""
    from perceptspec._torch._transfer import transfer as warm_start

    return warm_start(module, new_spec, in_shapes, seed=seed, check=check)


def torch_model_facts(block: TorchModel, view: ModuleView, run: bool) -> MetaFacts:
    """Parameter count (and, if `run`, per-sample output shapes) of a TorchModel's module built on the meta device
    (see `perceptspec._torch.blocks._torch_model.meta_facts`); imports torch on first use."""
    from perceptspec._torch.blocks._torch_model import meta_facts

    return meta_facts(block, view, run)


def initial_state(spec_or_module: Block | nn.Module, batch: int | tuple[int, ...] = (), *,
                  dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """The state and reset inputs that start an episode (see `perceptspec._torch._state`); imports torch."""
    from perceptspec._torch._state import initial_state as zeros

    return zeros(spec_or_module, batch, dtype=dtype, device=device)


def carry_state(spec_or_module: Block | nn.Module, outputs: Mapping[str, torch.Tensor],
                reset: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The next step's state and reset inputs from a call's outputs (see `perceptspec._torch._state`)."""
    from perceptspec._torch._state import carry_state as carry

    return carry(spec_or_module, outputs, reset)


def recurrent_mode(module: nn.Module, mode: bool = True) -> AbstractContextManager[None]:
    """A context in which `module`'s stateful blocks read a time dim (see `perceptspec._torch._state`)."""
    from perceptspec._torch._state import recurrent_mode as sequences

    return sequences(module, mode)
