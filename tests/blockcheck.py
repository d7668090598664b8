"""Shared checks for block tests: a fold must agree with a real forward pass.

`check_block(spec, in_shapes)` materializes the spec and runs it on random inputs with 0, 1 and 2 leading batch
dims; the output shapes must equal `infer_shapes`, the parameter count `count_parameters`, and the generated
forward must equal the reference interpreter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

import perceptspec as ps
from perceptspec._fold import lower
from perceptspec._fold._program import input_roles
from perceptspec._torch import SpecModule, run_reference

BATCHES: tuple[tuple[int, ...], ...] = ((), (3,), (2, 3))


def random_inputs(module: SpecModule, batch: tuple[int, ...], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random inputs for `module` with leading dims `batch`; mask inputs are bool with at least one True per row,
    index inputs int64 within their bounds, number inputs uint8."""
    generator = torch.Generator().manual_seed(seed)
    roles = input_roles(lower(module.spec))
    inputs = {}
    for key, shape in module.in_shapes.items():
        if roles[key] == "mask":
            mask = torch.rand((*batch, *shape), generator=generator) > 0.5
            mask[..., 0] = True
            inputs[key] = mask
        elif roles[key] == "index":
            bound = min(min([b] if isinstance(b, int) else b) for b in dict(module.index_limits)[key])
            inputs[key] = torch.randint(0, bound, (*batch, *shape), generator=generator)
        elif roles[key] == "number":
            inputs[key] = torch.randint(0, 256, (*batch, *shape), generator=generator, dtype=torch.uint8)
        else:
            inputs[key] = torch.randn((*batch, *shape), generator=generator)
    return inputs


def check_block(spec: ps.Block, in_shapes: Mapping[str, Sequence[int]],
                batches: Sequence[tuple[int, ...]] = BATCHES, seed: int = 0) -> SpecModule:
    """Assert fold == forward for `spec` (shapes, parameter count, generated vs reference); return the module."""
    shapes = ps.infer_shapes(spec, in_shapes)
    module = ps.materialize(spec, in_shapes, seed=seed, check="always")
    assert ps.count_parameters(spec, in_shapes) == sum(p.numel() for p in module.parameters())
    module.eval()  # dropout off, batch norm on running stats: generated and reference then agree exactly
    for batch in batches:
        inputs = random_inputs(module, batch, seed)
        with torch.no_grad():
            outputs = module(inputs)
            reference = run_reference(module, inputs)
        assert set(outputs) == set(spec.out_keys)
        for key, value in outputs.items():
            assert tuple(value.shape) == (*batch, *shapes[key]), (key, batch, tuple(value.shape), shapes[key])
            torch.testing.assert_close(value, reference[key])
    return module
