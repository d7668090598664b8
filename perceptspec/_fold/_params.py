"""The parameter fold: how many parameters the materialized module will hold, without building it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from perceptspec._fold._rules import param_rules
from perceptspec._fold._shapes import Trace, trace
from perceptspec._spec import Block


def count_parameters(spec: Block, in_shapes: Mapping[str, Sequence[int]]) -> int:
    """The number of parameters of `spec` for these input shapes, from the spec alone.

    Equals `sum(p.numel() for p in materialize(spec, in_shapes).parameters())` (a property test holds it to
    that); torch is imported only for a `TorchModel` block, whose module is then built on the meta device.

    Arguments:
        spec: a block or a Graph.
        in_shapes: the shape of each input key, without batch dims.

    Examples:
        >>> ps.count_parameters(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[16]), {"obs": (4,)})
        80
    """
    return sum(block_parameters(trace(spec, in_shapes)).values())


def block_parameters(t: Trace) -> dict[str, int]:
    """Parameters of every leaf block, by path."""
    return {e.path: param_rules.lookup(type(e.block))(e.block, t.ins(e)) for e in t.program.eqns}
