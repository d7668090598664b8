"""Opt-in NaN/inf checks, `materialize(..., check_finite=True)`: the RL debugging aid for "my loss went NaN".

Inputs must be finite. When an output is not, the program is walked again block by block (only then, so a healthy
forward pays one `isfinite` per input and output) to name the first block that made NaN or inf from finite inputs.
Under `torch.compile(module)` these checks run as plain Python around the compiled forward (`_under_compile`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from perceptspec._errors import NonFiniteError
from perceptspec._torch._signature import named_inputs
from perceptspec._torch._under_compile import outside_graph, run_as_frame_boundary
from perceptspec._torch._walk import walk

if TYPE_CHECKING:
    from perceptspec._torch._module import SpecModule


Forward = Callable[[Any, Any], dict[str, torch.Tensor]]


@run_as_frame_boundary
def count_text(x: torch.Tensor) -> str:
    """'2 NaN and 1 inf of 12 values'."""
    nan = int(torch.isnan(x).sum())
    inf = int(torch.isinf(x).sum())
    return f"{nan} NaN and {inf} inf of {x.numel()} values"


@run_as_frame_boundary
def is_finite(x: torch.Tensor) -> bool:
    return not x.is_floating_point() or bool(torch.isfinite(x).all())


def finite_forward(forward: Forward) -> Forward:
    """`forward` with its inputs and outputs checked for NaN and inf."""

    @run_as_frame_boundary
    def checked_forward(self: SpecModule, inputs: Any = None, /, **named: torch.Tensor) -> dict[str, torch.Tensor]:
        if named:
            inputs = named_inputs(inputs, named)
        if isinstance(inputs, Mapping):
            for key, _, _ in self.signature:
                x = inputs.get(key)
                if isinstance(x, torch.Tensor) and not is_finite(x):
                    raise NonFiniteError(f"expected finite values (check_finite=True), got {count_text(x)}", key=key)
        outputs = forward(self, inputs)
        for value in outputs.values():  # a loop, not all(<genexpr>): torch.compile would compile the genexpr's frame
            if not is_finite(value):
                raise first_non_finite(self, inputs, outputs)
        return outputs

    return checked_forward


@outside_graph
def first_non_finite(module: SpecModule, inputs: Mapping[str, torch.Tensor],
                     outputs: Mapping[str, torch.Tensor]) -> NonFiniteError:
    """The error naming the first block whose outputs are not finite although its inputs are."""
    with torch.no_grad():
        for eqn, env in walk(module, inputs):
            bad = next((k for k in eqn.outs if not is_finite(env[k])), None)
            if bad is not None:
                return NonFiniteError(f"computed {count_text(env[bad])} from finite inputs", key=bad,
                                      block=eqn.path, block_type=type(eqn.block).__name__)
    key = next(k for k, v in outputs.items() if not is_finite(v))  # not reproduced (e.g. dropout): name the output
    return NonFiniteError(f"{count_text(outputs[key])}, not reproduced when run again block by block", key=key,
                          output=True)
