"""`materialize` as the top-level package sees it: the torch interpreter is imported on first use only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from perceptspec._spec import Block

if TYPE_CHECKING:
    from perceptspec._torch import SpecModule


def materialize(spec: Block, in_shapes: Mapping[str, Sequence[int]], *, seed: int | None = None,
                check: str = "first", allow_extra_keys: bool = False, check_finite: bool = False) -> SpecModule:
    """Build the torch module of `spec` (see `perceptspec._torch.materialize`); imports torch on first use."""
    from perceptspec._torch import materialize as build

    return build(spec, in_shapes, seed=seed, check=check, allow_extra_keys=allow_extra_keys, check_finite=check_finite)
