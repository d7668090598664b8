"""The rendering fold: a graphviz drawing of a spec, from the spec and the shape fold alone (no tensors, no torch).

Input and output tensors are ellipses (key and shape); blocks are boxes (path, label, parameters and their share
of the model, shaded by that share); every edge carries the key and shape of the tensor it stands for. Nested
graphs are drawn as clusters. `Picture` is the drawing loop: `to_dot` draws one spec with it, and
`render_models` draws a composed policy and critic side by side in one picture.

Node ids are positional (`in0`, `b3`, `out1`; `policy_b3` for a network drawn as a cluster) so that no key can
break the DOT syntax; keys and labels appear only in (escaped) labels.
"""

from __future__ import annotations

import contextlib
import html
import re
import shutil
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import graphviz

from perceptspec._errors import SpecError
from perceptspec._fold._params import block_parameters
from perceptspec._fold._program import Eqn
from perceptspec._core import Shape
from perceptspec._fold._rules import label_rules
from perceptspec._fold._shapes import Trace, trace
from perceptspec._fold._summary import clipped, shape_text, share_text
from perceptspec._spec import Block

FORMATS = (".svg", ".png", ".pdf", ".dot")
INSTALL_HINT = ("graphviz's 'dot' program was not found, so only the .dot source was written; install it with "
                "'apt-get install graphviz' (Debian/Ubuntu), 'brew install graphviz' (macOS) or see "
                "https://graphviz.org/download/, then render with 'dot -Tsvg FILE.dot -o FILE.svg'")

FONT = "Helvetica"
INPUT_FILL, OUTPUT_FILL = "#e3f1e3", "#fbe9d7"
SHARED_COLOR = "#8e44ad"  # edges carrying a key one network computes for another (a shared embedding)
PNG_DPI = "110"


def to_dot(spec: Block, in_shapes: Mapping[str, Sequence[int]], name: str = "spec") -> graphviz.Digraph:
    """The drawing of `spec` as a graphviz Digraph (its `.source` is the DOT text).

    Arguments:
        spec: a block or a Graph.
        in_shapes: the shape of each input key, without the batch dims (as for `infer_shapes`).
        name: the graph's name, shown in its title with the total parameter count.
    """
    t = trace(spec, in_shapes)
    total = sum(block_parameters(t).values())
    picture = Picture(name, f"{escstring(name)}: {parameters_text(total)}")
    sources = picture.inputs(t.in_shapes)
    produced = picture.spec(t, sources, total=total)
    picture.outputs({k: t.shapes[k] for k in t.program.outputs}, {**sources, **produced})
    return picture.finish()


def render(spec: Block, in_shapes: Mapping[str, Sequence[int]], path: str | Path) -> Path:
    """Draw `spec` with graphviz: a box per block (type, parameters, share of the total), an ellipse per
    tensor (key, shape), nested graphs as clusters.

    Arguments:
        spec: a block or a Graph.
        in_shapes: the shape of each input key, without batch dims.
        path: the file to write; the format comes from the suffix (.svg, .png, .pdf or .dot).

    Returns:
        The file written. Without graphviz's `dot` program, the .dot source beside `path` (with a warning
        that says how to install graphviz).

    Examples:
        >>> ps.render(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[16]), {"obs": (4,)}, "dense.dot").name
        'dense.dot'
    """
    path = checked_path(path)
    return write({path: to_dot(spec, in_shapes, name=path.stem)})[0]


class Picture:
    """One drawing under construction. Nodes go into the graph (or a cluster) as they are drawn; edges wait in a
    list and go into the top-level graph at `finish`, so that an edge never pulls its ends into a cluster."""

    def __init__(self, name: str, title: str) -> None:
        self.dot = graphviz.Digraph(
            name, graph_attr={"rankdir": "TB", "fontname": FONT, "fontsize": "14", "label": title, "labelloc": "t",
                              "nodesep": "0.35", "ranksep": "0.45", "newrank": "true"},
            node_attr={"fontname": FONT, "fontsize": "10", "margin": "0.15,0.06"},
            edge_attr={"fontname": FONT, "fontsize": "9", "color": "#555555", "arrowsize": "0.7"})
        self._edges: list[tuple[str, str, str, dict[str, str]]] = []
        self._clusters = 0

    def inputs(self, shapes: Mapping[str, Shape], notes: Mapping[str, str] | None = None) -> dict[str, str]:
        """Draw one node per input tensor, all on the top rank; returns key -> node id. `notes` adds a line under
        the shape of some keys (e.g. 'from the policy') and draws their node in the shared colour."""
        ids = {}
        notes = notes or {}
        with self.dot.subgraph() as rank:
            rank.attr(rank="same")
            for i, (key, shape) in enumerate(shapes.items()):
                ids[key] = f"in{i}"
                extra = {"color": SHARED_COLOR, "penwidth": "2"} if key in notes else {}
                rank.node(ids[key], _tensor_label(key, shape, notes.get(key)), shape="ellipse", style="filled",
                          _attributes=extra, fillcolor=INPUT_FILL)
        return ids

    def outputs(self, shapes: Mapping[str, Shape], producers: Mapping[str, str],
                notes: Mapping[str, str] | None = None) -> None:
        """Draw one node per output tensor, all on the bottom rank, with an edge from the node producing it;
        `notes` as for `inputs`."""
        notes = notes or {}
        with self.dot.subgraph() as rank:
            rank.attr(rank="same")
            for j, (key, shape) in enumerate(shapes.items()):
                extra = {"color": SHARED_COLOR, "penwidth": "2"} if key in notes else {}
                rank.node(f"out{j}", _tensor_label(key, shape, notes.get(key)), _attributes=extra, shape="ellipse",
                          style="filled", fillcolor=OUTPUT_FILL)
        for j, (key, shape) in enumerate(shapes.items()):
            self.edge(producers[key], f"out{j}", key, shape)

    def edge(self, tail: str, head: str, key: str, shape: Shape, shared: bool = False) -> None:
        attrs = {"color": SHARED_COLOR, "fontcolor": SHARED_COLOR, "penwidth": "2"} if shared else {}
        self._edges.append((tail, head, edge_label(key, shape), attrs))

    def spec(self, t: Trace, sources: Mapping[str, str], *, total: int, network: str | None = None,
             shared: Iterable[str] = ()) -> dict[str, str]:
        """Draw the blocks of a traced spec, reading its inputs from the nodes `sources` names (key -> node id).

        `total` is the parameter count shares are taken of. With `network`, the spec is drawn as a cluster of that
        name and its node ids carry it. Edges carrying a key in `shared` are highlighted. Returns the spec's out
        keys -> the id of the node producing each.
        """
        params = block_parameters(t)
        prefix = f"{_safe(network)}_" if network is not None else ""
        ids = {eqn.path: f"{prefix}b{i}" for i, eqn in enumerate(t.program.eqns)}
        eqns = list(t.program.eqns)
        if network is None:
            self._blocks(self.dot, t, eqns, "", ids, params, total)
        else:
            own = sum(params.values())
            with self.dot.subgraph(name=f"cluster_{prefix}net") as cluster:
                cluster.attr(label=f"{network}: {parameters_text(own, total)}", style="rounded,filled",
                             fillcolor="#f6f6f6", color="#444444", penwidth="1.5", fontsize="13", labeljust="l")
                self._blocks(cluster, t, eqns, "", ids, params, total)
        producer = {v: ids[e.path] for e in eqns for v in e.outs}
        shared = set(shared)
        for eqn in eqns:
            for var in eqn.ins:
                self.edge(producer.get(var) or sources[var], ids[eqn.path], var, t.shapes[var], var in shared)
        return {k: producer.get(k) or sources[k] for k in t.program.outputs}

    def module(self, network: str, description: str, n_params: int, total: int, in_shapes: Mapping[str, Shape],
               out_keys: Iterable[str], sources: Mapping[str, str], *, cluster: bool = True,
               shared: Iterable[str] = ()) -> dict[str, str]:
        """Draw an opaque network (a plain torch module: no blocks to show) as one box, in a cluster of its name
        when `cluster`; returns its out keys -> the box's node id."""
        node = f"{_safe(network)}_module"
        share = n_params / total if total else 0.0
        label = _block_label(network, description, n_params, share)
        if cluster:
            with self.dot.subgraph(name=f"cluster_{_safe(network)}_net") as sub:
                sub.attr(label=f"{network}: {parameters_text(n_params, total)}", style="rounded,filled",
                         fillcolor="#f6f6f6", color="#444444", penwidth="1.5", fontsize="13", labeljust="l")
                sub.node(node, label, shape="box3d", style="filled", fillcolor=shade(share))
        else:
            self.dot.node(node, label, shape="box3d", style="filled", fillcolor=shade(share))
        shared = set(shared)
        for key, shape in in_shapes.items():
            self.edge(sources[key], node, key, shape, key in shared)
        return {k: node for k in out_keys}

    def _blocks(self, dot: graphviz.Digraph, t: Trace, eqns: list[Eqn], prefix: str, ids: Mapping[str, str],
                params: Mapping[str, int], total: int) -> None:
        """Draw the blocks under `prefix`, each nested graph as a cluster. Clusters are entered with an explicit
        stack (graphviz copies a cluster into its parent when it is closed), so any nesting depth draws."""
        levels = [_Level(contextlib.ExitStack(), iter(self._own_blocks(dot, t, eqns, prefix, ids, params, total)),
                         prefix, dot)]
        while levels:
            level = levels[-1]
            step = next(level.nested, None)
            if step is None:
                level.closing.close()  # (adds the cluster to its parent)
                levels.pop()
                continue
            graph, members = step
            self._clusters += 1
            own = sum(params[e.path] for e in members)
            closing = contextlib.ExitStack()
            cluster = closing.enter_context(level.dot.subgraph(name=f"cluster_{self._clusters}"))
            cluster.attr(label=f"{escstring(level.prefix + graph)}: {parameters_text(own, total)}",
                         style="rounded,dashed,filled", fillcolor="#fcfcfc", color="#888888", penwidth="1",
                         fontsize="11", labeljust="l")
            inner = f"{level.prefix}{graph}."
            levels.append(_Level(closing, iter(self._own_blocks(cluster, t, members, inner, ids, params, total)),
                                 inner, cluster))

    @staticmethod
    def _own_blocks(dot: graphviz.Digraph, t: Trace, eqns: list[Eqn], prefix: str, ids: Mapping[str, str],
                    params: Mapping[str, int], total: int) -> list[tuple[str, list[Eqn]]]:
        """Draw the blocks directly under `prefix`; returns the nested graphs below it with their blocks."""
        nested: dict[str, list[Eqn]] = {}
        for eqn in eqns:
            rest = eqn.path[len(prefix):]
            if "." in rest:
                nested.setdefault(rest.split(".", 1)[0], []).append(eqn)
                continue
            share = params[eqn.path] / total if total else 0.0
            label = clipped(label_rules.lookup(type(eqn.block))(eqn.block, t.ins(eqn)))
            dot.node(ids[eqn.path], _block_label(eqn.path, label, params[eqn.path], share), shape="box",
                     style="rounded,filled", fillcolor=shade(share), color="#333333")
        return list(nested.items())

    def finish(self) -> graphviz.Digraph:
        for tail, head, label, attrs in self._edges:
            self.dot.edge(tail, head, label, _attributes=attrs)
        self._edges = []
        return self.dot


class _Level(NamedTuple):
    """A graph being drawn: what closes its cluster, its nested graphs still to draw, its path prefix, its dot."""

    closing: contextlib.ExitStack[bool | None]
    nested: Iterator[tuple[str, list[Eqn]]]
    prefix: str
    dot: graphviz.Digraph


def shade(share: float) -> str:
    """The fill of a block holding `share` of the parameters: white for none to a saturated blue for all.

    The square root spreads the small shares apart, so a 2% block is visibly tinted, not white."""
    s = max(0.0, min(1.0, share)) ** 0.5
    return "#{:02x}{:02x}ff".format(round(255 - 140 * s), round(255 - 90 * s))


def parameters_text(n: int, total: int | None = None) -> str:
    """'1,234 params (12.5%)'; 'no parameters' for zero; the share only when `total` is given."""
    if n == 0:
        return "no parameters"
    text = f"{n:,} param{'s' if n != 1 else ''}"
    return f"{text} ({share_text(n / total)})" if total else text


def edge_label(key: str, shape: Shape) -> str:
    """The label of an edge: the key above its shape."""
    return _rows(html_text(key), shape_text(shape))


def _tensor_label(key: str, shape: Shape, note: str | None = None) -> str:
    rows = [f"<B>{html_text(key)}</B>", shape_text(shape)]
    if note:
        rows.append(f'<FONT POINT-SIZE="9" COLOR="{SHARED_COLOR}">{html_text(note)}</FONT>')
    return _rows(*rows)


def _block_label(title: str, kind: str, n_params: int, share: float) -> str:
    params = parameters_text(n_params)
    if n_params:
        params += f" · {share_text(share)}"
    return _rows(f"<B>{html_text(title)}</B>", html_text(kind),
                 f'<FONT POINT-SIZE="9" COLOR="#333333">{html.escape(params)}</FONT>')


def _rows(*rows: str) -> str:
    """An HTML-like label with one table row per line (`<BR/>` lines sit so close that an underscore touches the
    line below); each row is already escaped."""
    cells = "".join(f"<TR><TD>{row}</TD></TR>" for row in rows)
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="1" CELLPADDING="0">{cells}</TABLE>>'


def escstring(text: str) -> str:
    """`text` for a plain graphviz label (an escString, where a backslash starts an escape such as '\\n')."""
    return printable(text).replace("\\", "\\\\")


def html_text(text: str) -> str:
    """`text` for an HTML-like graphviz label."""
    return html.escape(printable(text))


def printable(text: str) -> str:
    """`text` with each unprintable character written as Python escapes it ('\\x00', '\\n'): graphviz refuses
    control characters in labels, and keys may hold any."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _safe(name: str) -> str:
    return re.sub(r"\W", "_", name)


def checked_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise SpecError("render", [f"path: unsupported file suffix {path.suffix!r} in {str(path)!r}; expected "
                                   f"one of {', '.join(FORMATS)}"])
    return path


def dot_program() -> str | None:
    """The path of graphviz's `dot` program, or None when it is not installed."""
    return shutil.which("dot")


def write(drawings: Mapping[Path, graphviz.Digraph]) -> list[Path]:
    """Write each drawing to its path in the format of the suffix; returns the files written.

    Without the `dot` program, a drawing meant for .svg/.png/.pdf is written as .dot beside it, and one message
    on stderr says how to install graphviz.
    """
    written: list[Path] = []
    fallback: list[Path] = []
    have_dot = dot_program() is not None
    for path, dot in drawings.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        suffix = path.suffix.lower()
        if suffix == ".dot":
            path.write_text(dot.source, encoding="utf-8")
        elif have_dot:
            if suffix == ".png":  # a little larger than graphviz's 96 dpi, so the 9pt labels stay legible
                dot = dot.copy()
                dot.attr("graph", dpi=PNG_DPI)
            try:
                path.write_bytes(dot.pipe(format=suffix[1:]))
            except graphviz.ExecutableNotFound:
                have_dot = False
        if suffix != ".dot" and not have_dot:
            path = path.with_suffix(".dot")
            path.write_text(dot.source, encoding="utf-8")
            fallback.append(path)
        written.append(path)
    if fallback:
        print(f"perceptspec.render: wrote {', '.join(map(str, fallback))}. {INSTALL_HINT}", file=sys.stderr)
    return written
