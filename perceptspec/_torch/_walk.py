"""The one walk over a materialized module's program: block by block, each block module called through `call`.

The reference interpreter (`run_reference`), the finite check (`_finite.first_non_finite`) and the tests' "every key
of a real forward pass" are this walk; the generated forward is the same sequence of calls, written out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import torch

from perceptspec._fold._program import Eqn
from perceptspec._fold._shapes import trace
from perceptspec._torch._call import call

if TYPE_CHECKING:
    from perceptspec._torch._module import SpecModule


def walk(module: SpecModule, inputs: Mapping[str, torch.Tensor]) -> Iterator[tuple[Eqn, dict[str, torch.Tensor]]]:
    """After each block has run: the block's equation and every key's tensor so far (one dict, updated in place)."""
    env = dict(inputs)
    for eqn in trace(module.spec, module.in_shapes).program.eqns:
        result = call(module.block_module(eqn.path), *(env[v] for v in eqn.ins))
        env.update(zip(eqn.outs, result if isinstance(result, tuple) else (result,)))
        yield eqn, env


def every_key(module: SpecModule, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every key's tensor once the whole program has run (inputs, nested private keys, outputs)."""
    env = dict(inputs)
    for _, env in walk(module, inputs):
        pass
    return env
