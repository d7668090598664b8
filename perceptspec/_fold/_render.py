"""The rendering fold: a graphviz drawing of a spec, from the spec and the shape fold alone (no tensors).

Input and output tensors are ellipses (key and shape); blocks are boxes (path, label, parameters and their share
of the model, shaded by that share); edges carry the key and shape of the tensor between two blocks. Nested graphs
are drawn as clusters.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import graphviz

from perceptspec._fold._params import block_parameters
from perceptspec._fold._program import Eqn
from perceptspec._fold._rules import Shape, label_rules
from perceptspec._fold._shapes import Trace, trace
from perceptspec._spec import Block

FORMATS = (".svg", ".png", ".pdf", ".dot")
INSTALL_HINT = ("graphviz's 'dot' program was not found, so only the .dot source was written; install it with "
                "'apt-get install graphviz' (Debian/Ubuntu), 'brew install graphviz' (macOS) or see "
                "https://graphviz.org/download/, then render with 'dot -Tsvg FILE.dot -o FILE.svg'")


def to_dot(spec: Block, in_shapes: Mapping[str, Sequence[int]], name: str = "spec") -> graphviz.Digraph:
    """The drawing of `spec` as a graphviz Digraph (its `.source` is the DOT text)."""
    t = trace(spec, in_shapes)
    params = block_parameters(t)
    total = sum(params.values())
    dot = graphviz.Digraph(name, graph_attr={"rankdir": "TB", "fontname": "Helvetica", "fontsize": "11"},
                           node_attr={"fontname": "Helvetica", "fontsize": "10"},
                           edge_attr={"fontname": "Helvetica", "fontsize": "9"})
    producer = {v: f"block{i}" for i, e in enumerate(t.program.eqns) for v in e.outs}
    for i, key in enumerate(t.program.inputs):
        dot.node(f"in{i}", f"{key}\n{_shape(t.shapes[key])}", shape="ellipse", style="filled", fillcolor="#e8f4e8")
    _draw_blocks(dot, t, list(enumerate(t.program.eqns)), "", params, total)
    inputs = {key: f"in{i}" for i, key in enumerate(t.program.inputs)}
    for i, eqn in enumerate(t.program.eqns):
        for var in eqn.ins:
            tail = inputs.get(var) or producer[var]
            label = "" if var in inputs else f"{var}\n{_shape(t.shapes[var])}"
            dot.edge(tail, f"block{i}", label)
    for j, key in enumerate(t.program.outputs):
        dot.node(f"out{j}", f"{key}\n{_shape(t.shapes[key])}", shape="ellipse", style="filled", fillcolor="#fbeee0")
        dot.edge(inputs.get(key) or producer[key], f"out{j}")
    return dot


def _draw_blocks(dot: graphviz.Digraph, t: Trace, eqns: list[tuple[int, Eqn]], prefix: str,
                 params: Mapping[str, int], total: int) -> None:
    """Draw the blocks directly under `prefix`; each nested graph below it becomes a cluster."""
    nested: dict[str, list[tuple[int, Eqn]]] = {}
    for i, eqn in eqns:
        rest = eqn.path[len(prefix):]
        if "." in rest:
            nested.setdefault(rest.split(".", 1)[0], []).append((i, eqn))
            continue
        share = params[eqn.path] / total if total else 0.0
        label = label_rules.lookup(type(eqn.block))(eqn.block, t.ins(eqn))
        dot.node(f"block{i}", f"{eqn.path}\n{label}\n{params[eqn.path]:,} params ({100 * share:.1f}%)",
                 shape="box", style="rounded,filled", fillcolor=_shade(share))
    for graph, members in nested.items():
        with dot.subgraph(name=f"cluster_{prefix}{graph}".replace(".", "_")) as cluster:
            cluster.attr(label=f"{prefix}{graph}", style="rounded,dashed", color="#888888")
            _draw_blocks(cluster, t, members, f"{prefix}{graph}.", params, total)


def _shade(share: float) -> str:
    """White for no parameters to a saturated blue for all of them."""
    return "#{:02x}{:02x}ff".format(int(255 - 150 * share), int(255 - 100 * share))


def _shape(shape: Shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def render(spec: Block, in_shapes: Mapping[str, Sequence[int]], path: str | Path) -> Path:
    """Draw `spec` to `path`; the format comes from the suffix (.svg, .png, .pdf or .dot). Returns the file written.

    Without graphviz's `dot` program, writes the .dot source beside `path` instead and says how to install it.
    """
    path = Path(path)
    if path.suffix not in FORMATS:
        raise ValueError(f"render: unsupported file suffix {path.suffix!r}; expected one of {', '.join(FORMATS)}")
    dot = to_dot(spec, in_shapes, name=path.stem)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".dot":
        path.write_text(dot.source)
        return path
    if shutil.which("dot") is None:
        source = path.with_suffix(".dot")
        source.write_text(dot.source)
        print(f"perceptspec.render: wrote {source}. {INSTALL_HINT}", file=sys.stderr)
        return source
    path.write_bytes(dot.pipe(format=path.suffix[1:]))
    return path
