"""The summary fold: a table of blocks with their keys, shapes and parameter counts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from perceptspec._fold._params import block_parameters
from perceptspec._fold._rules import Shape, label_rules
from perceptspec._fold._shapes import trace
from perceptspec._spec import Block


def summary(spec: Block, in_shapes: Mapping[str, Sequence[int]]) -> str:
    """A table: one row per block (path, label, input keys and shapes, output keys and shapes, parameters)."""
    t = trace(spec, in_shapes)
    params = block_parameters(t)
    total = sum(params.values())
    header = ("block", "layer", "inputs", "outputs", "params", "share")
    rows = [header]
    for eqn in t.program.eqns:
        share = f"{100 * params[eqn.path] / total:.1f}%" if total else "-"
        rows.append((eqn.path, label_rules.lookup(type(eqn.block))(eqn.block, t.ins(eqn)),
                     _keys(eqn.ins, t.shapes), _keys(eqn.outs, t.shapes), f"{params[eqn.path]:,}", share))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    right = {4, 5}

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))

    rule = "-" * len(line(header))
    body = [line(header), rule, *(line(r) for r in rows[1:]), rule]
    body.append(f"inputs: {_keys(t.program.inputs, t.shapes)}")
    body.append(f"outputs: {_keys(t.program.outputs, t.shapes)}")
    body.append(f"parameters: {total:,}")
    return "\n".join(body)


def _keys(keys: Sequence[str], shapes: Mapping[str, Shape]) -> str:
    return ", ".join(f"{k} {_shape(shapes[k])}" for k in keys)


def _shape(shape: Shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
