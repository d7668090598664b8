"""The parameter fold: how many parameters the materialized module will hold, without building it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from perceptspec._fold._rules import param_rules
from perceptspec._fold._shapes import Trace, trace
from perceptspec._spec import Block


def count_parameters(spec: Block, in_shapes: Mapping[str, Sequence[int]]) -> int:
    """Equals `sum(p.numel() for p in materialize(spec, in_shapes).parameters())`."""
    return sum(block_parameters(trace(spec, in_shapes)).values())


def block_parameters(t: Trace) -> dict[str, int]:
    """Parameters of every leaf block, by path."""
    return {e.path: param_rules.lookup(type(e.block))(e.block, t.ins(e)) for e in t.program.eqns}
