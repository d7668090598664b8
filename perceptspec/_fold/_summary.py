"""The summary fold: a torchinfo-like table of blocks with their keys, shapes and parameter counts.

One row per block (nested graphs get a row of their own, with the subtotal of their blocks in parentheses, and
their blocks indented below it; an ensemble's member blocks are listed below it the same way, `×K` in their
label), then the totals and the memory the inputs, the block outputs and the parameters
take per sample in float32. Everything comes from the shape fold: no tensor is created.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping, Sequence

from perceptspec._fold._params import block_parameters
from perceptspec._fold._program import Eqn, Program
from perceptspec._core import Shape
from perceptspec._fold._rules import label_rules
from perceptspec._fold._shapes import trace
from perceptspec._spec import Block, Ensemble

HEADER = ("Block", "Layer", "Inputs", "Outputs", "Param #", "Share")
RIGHT = {4, 5}  # right-aligned columns
FLOAT32 = 4


def summary(spec: Block, in_shapes: Mapping[str, Sequence[int]]) -> str:
    """A table like torchinfo's, from the spec alone.

    Arguments:
        spec: a block or a Graph.
        in_shapes: the shape of each input key, without the batch dims.

    Returns:
        The table: one row per block (path, layer, input keys and shapes, output keys and shapes, parameters
        and their share of the total), a row per nested graph with its subtotal in parentheses, then the
        totals and the memory per sample (float32).

    Examples:
        >>> table = ps.summary(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[16]), {"obs": (4,)})
        >>> table.splitlines()[3]
        'h      Dense 4→16 relu  obs (4,)  h (16,)       80  100.0%'
    """
    t = trace(spec, in_shapes)
    program = t.program
    params = block_parameters(t)
    total = sum(params.values())
    rows: list[tuple[str, ...]] = []
    members = _graph_members(program)
    boundary = _Boundary(program)
    for eqn in program.eqns:
        parts = eqn.path.split(".")
        for depth, graph in enumerate(_graphs_around(eqn.path), start=1):
            if graph in members:  # (the first block of a graph opens it)
                inside = members.pop(graph)
                ins, outs = boundary.of(inside)
                sub = sum(params[e.path] for e in inside)
                rows.append(("  " * (depth - 1) + graph, f"Graph ({len(inside)} blocks)", _cell(ins, t.shapes),
                             _cell(outs, t.shapes), f"({sub:,})", f"({share_text(sub / total)})" if total else "-"))
        label = clipped(label_rules.lookup(type(eqn.block))(eqn.block, t.ins(eqn)))
        rows.append(("  " * (len(parts) - 1) + eqn.path, label, _cell(eqn.ins, t.shapes), _cell(eqn.outs, t.shapes),
                     f"{params[eqn.path]:,}", share_text(params[eqn.path] / total) if total else "-"))
        rows += _member_rows(eqn, t.ins(eqn), len(parts), 1, total)
    widths = [max(len(r[i]) for r in (HEADER, *rows)) for i in range(len(HEADER))]

    def line(row: Sequence[str]) -> str:
        cells = (c.rjust(w) if i in RIGHT else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
        return "  ".join(cells).rstrip()

    width = len(line(["x" * w for w in widths]))
    inputs = sum(math.prod(t.shapes[k]) for k in program.inputs)
    outputs = sum(math.prod(t.shapes[v]) for e in program.eqns for v in e.outs)
    return "\n".join([
        "=" * width, line(HEADER), "=" * width, *(line(r) for r in rows), "=" * width,
        f"Total parameters: {total:,}",
        f"Inputs: {_keys(program.inputs, t.shapes)}",
        f"Outputs: {_keys(program.outputs, t.shapes)}",
        "-" * width,
        f"Input size (per sample, float32): {byte_text(FLOAT32 * inputs)}",
        f"Block outputs size (per sample, float32): {byte_text(FLOAT32 * outputs)}",
        f"Parameter memory (float32): {byte_text(FLOAT32 * total)}",
        "=" * width,
    ])


def _member_rows(eqn: Eqn, ins: tuple[Shape, ...], depth: int, copies: int, total: int) -> list[tuple[str, ...]]:
    """Below an Ensemble's row, a row per block of its member (nested ensembles too): `×K` before the label, the
    member's own keys and shapes, and the parameters of all K copies in parentheses (they are in the ensemble's)."""
    block = eqn.block
    if not isinstance(block, Ensemble):
        return []
    copies *= block.size
    inner = trace(block.spec, dict(zip(block.in_keys, ins)))
    params = block_parameters(inner)
    rows: list[tuple[str, ...]] = []
    for e in inner.program.eqns:
        label = clipped(f"×{copies} {label_rules.lookup(type(e.block))(e.block, inner.ins(e))}")
        n = copies * params[e.path]
        rows.append(("  " * depth + f"{eqn.path}.{e.path}", label, _cell(e.ins, inner.shapes),
                     _cell(e.outs, inner.shapes), f"({n:,})", f"({share_text(n / total)})" if total else "-"))
        rows += _member_rows(e._replace(path=f"{eqn.path}.{e.path}"), inner.ins(e), depth + 1, copies, total)
    return rows


def _graphs_around(path: str) -> list[str]:
    """The paths of the nested graphs a block sits in, outermost first ('a.b.c' -> ['a', 'a.b'])."""
    ends = [i for i, c in enumerate(path) if c == "."]
    return [path[:i] for i in ends]


def _graph_members(program: Program) -> dict[str, list[Eqn]]:
    """The blocks of every nested graph, by the graph's path."""
    members: dict[str, list[Eqn]] = {}
    for eqn in program.eqns:
        for graph in _graphs_around(eqn.path):
            members.setdefault(graph, []).append(eqn)
    return members


class _Boundary:
    """The keys a nested graph reads from outside and the keys it gives back (read outside or returned), in time
    linear in the graph's blocks: how often each key is read at all is counted once."""

    def __init__(self, program: Program) -> None:
        self.reads = collections.Counter(v for e in program.eqns for v in e.ins)
        self.outputs = set(program.outputs)

    def of(self, members: Sequence[Eqn]) -> tuple[list[str], list[str]]:
        produced = {v: None for e in members for v in e.outs}  # an ordered set
        reads_inside = collections.Counter(v for e in members for v in e.ins)
        ins = list(dict.fromkeys(v for e in members for v in e.ins if v not in produced))
        outs = [v for v in produced if v in self.outputs or self.reads[v] > reads_inside[v]]
        return ins, outs


#: every row is padded to the widest cell, so a cell as long as the spec is wide (a Concat of 10,000 keys) would
#: make the table grow with the square of the number of blocks: a cell lists at most CELL_KEYS keys, and a layer
#: label is cut at LABEL_WIDTH characters
CELL_KEYS = 16
LABEL_WIDTH = 80


def clipped(label: str) -> str:
    """A layer label cut at LABEL_WIDTH characters (for the table, and for the boxes of a drawing)."""
    return label if len(label) <= LABEL_WIDTH else label[:LABEL_WIDTH - 1] + "…"


def _cell(keys: Sequence[str], shapes: Mapping[str, Shape]) -> str:
    """The keys and shapes of a table cell: the first CELL_KEYS of them, then how many more."""
    if len(keys) <= CELL_KEYS:
        return _keys(keys, shapes)
    return f"{_keys(keys[:CELL_KEYS], shapes)}, … ({len(keys) - CELL_KEYS:,} more)"


def _keys(keys: Sequence[str], shapes: Mapping[str, Shape]) -> str:
    return ", ".join(f"{k} {shape_text(shapes[k])}" for k in keys)


def shape_text(shape: Shape) -> str:
    """A shape as Python prints the tuple: (4,), (3, 64, 64)."""
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def share_text(share: float) -> str:
    """A share of the parameters in percent; '<0.1%' rather than a misleading '0.0%' for a few parameters."""
    return "<0.1%" if 0 < share < 0.001 else f"{100 * share:.1f}%"


def byte_text(n: int) -> str:
    """A byte count in decimal units, as torchinfo prints them: 512 B, 2.8 kB, 1.05 MB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"
