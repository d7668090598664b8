"""`Graph`: blocks wired by key names. A Graph is itself a block, so graphs nest."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterator, Mapping, Sequence

from perceptspec._errors import SpecError
from perceptspec._spec._block import Block, key_problem
from perceptspec._spec._init import Initializer

__all__ = ["Graph"]


@dataclasses.dataclass(frozen=True, init=False, repr=False, eq=False)  # __eq__, __hash__ below
class Graph(Block):
    """Named blocks wired by their keys, like Maze's InferenceBlock.

    `blocks` maps block names to blocks (a sequence is accepted; each block is then named after its first out key).
    `in_keys` are the keys that no block produces; `out_keys` are what the graph returns. `init` is the default
    initialiser of every block inside that does not set its own.

    Examples:
        >>> net = ps.Graph({
        ...     "body": ps.Dense(in_keys="obs", out_keys="h", hidden_units=[16]),
        ...     "head": ps.LinearOutput(in_keys="h", out_keys="action", output_units=2),
        ... }, out_keys="action", init=ps.NormC(1.0))
        >>> net.in_keys, ps.count_parameters(net, {"obs": (4,)})
        (('obs',), 114)
    """

    n_inputs = None
    n_outputs = None

    blocks: Mapping[str, Block]
    """Block name -> block (a list is accepted, each block named after its first out key); Maze's
    `perception_blocks`."""
    in_keys: Sequence[str] = dataclasses.field(init=False)

    def __init__(self, blocks: Mapping[str, Block] | Sequence[Block], out_keys: str | Sequence[str], *,
                 init: Initializer | None = None) -> None:
        if not isinstance(blocks, Mapping):
            given: object = blocks  # checked: callers may be untyped
            if isinstance(given, (str, bytes)) or not isinstance(given, Sequence):
                raise SpecError("Graph", [f"field 'blocks': expected a mapping of block names to blocks or a list "
                                          f"of blocks, got {blocks!r}"])
            names = [_default_name(b) for b in blocks]
            twice = sorted(n for n, count in collections.Counter(names).items() if count > 1)
            if twice:
                raise SpecError("Graph", [f"key '{n}' is produced by two blocks (a list of blocks names each block "
                                          f"after its first out key)" for n in twice])
            blocks = dict(zip(names, blocks))
        object.__setattr__(self, "blocks", blocks)
        object.__setattr__(self, "out_keys", out_keys)
        object.__setattr__(self, "init", init)
        object.__setattr__(self, "in_keys", ())
        self.__post_init__()

    def _value_problems(self) -> Iterator[str]:
        problems = [p for p in super()._value_problems() if not p.startswith("field 'in_keys'")]
        for name in self.blocks:
            if problem := key_problem(name):
                problems.append(f"block name: {problem.replace('key', 'name', 1)}")
        if not self.blocks:
            problems.append("field 'blocks': a Graph needs at least one block")
        if not problems:
            order, in_keys, wiring = _wire(self.blocks, self.out_keys)
            problems += wiring
            object.__setattr__(self, "in_keys", in_keys)
            object.__setattr__(self, "order", order)
            ordered = tuple((name, self.blocks[name]) for name in order)
            object.__setattr__(self, "ordered_blocks", ordered)
            object.__setattr__(self, "nesting", 1 + max(nesting(b) for b in self.blocks.values()))
            # children's hashes are cached already, so hashing here costs one level, however deep the nesting
            object.__setattr__(self, "hash", hash((Graph, ordered, self.out_keys, self.init)))
        return iter(problems)

    def __hash__(self) -> int:
        cached: int = self.__dict__["hash"]
        return cached

    def __eq__(self, other: object) -> bool:
        """By value, level by level with an explicit stack (so at any nesting depth)."""
        if not isinstance(other, Graph):
            return NotImplemented
        pairs: list[tuple[Block, Block]] = [(self, other)]
        while pairs:
            a, b = pairs.pop()
            if a is b:
                continue
            if not (isinstance(a, Graph) and isinstance(b, Graph)):
                if a != b:
                    return False
                continue
            if hash(a) != hash(b) or (a.out_keys, a.init) != (b.out_keys, b.init) or a.blocks.keys() != b.blocks.keys():
                return False
            pairs.extend((block, b.blocks[name]) for name, block in a.blocks.items())
        return True

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        """Pickle (and copy) as a flat list of graphs whose nested graphs are indices into it: pickle would
        otherwise recurse once per level. Unpickling builds (and checks) each graph again, innermost first."""
        return _unflatten, (_flatten(self),)

    @property
    def blocks_in_order(self) -> tuple[tuple[str, Block], ...]:
        """(name, block) pairs in `topological_order` (kept from construction: lowering reads it often)."""
        ordered: tuple[tuple[str, Block], ...] = self.__dict__["ordered_blocks"]
        return ordered

    @property
    def topological_order(self) -> tuple[str, ...]:
        """Block names in an order where every block comes after the producers of its inputs (ties by name)."""
        order: tuple[str, ...] = self.__dict__["order"]
        return order

    def _repr_args(self) -> list[tuple[str, object]]:
        # blocks in evaluation order (a pmap iterates in hash order), then out_keys and the default init
        blocks = {name: self.blocks[name] for name in self.topological_order}
        out_keys = self.out_keys[0] if len(self.out_keys) == 1 else self.out_keys
        return [("", blocks), ("out_keys", out_keys), *([("init", self.init)] if self.init is not None else [])]


def nesting(value: object) -> int:
    """How many Graph levels `value` has (0 for a leaf block, or anything else)."""
    levels: int = getattr(value, "__dict__", {}).get("nesting", 0)
    return levels


#: a graph for pickling: its (name, block or index of a graph earlier in the list) pairs, out_keys and init
FlatGraph = tuple[tuple[tuple[str, Block | int], ...], tuple[str, ...], Initializer | None]


def _flatten(root: Graph) -> list[FlatGraph]:
    """`root` and every graph nested in it, innermost first (root last), each graph once."""
    index: dict[int, int] = {}
    flat: list[FlatGraph] = []
    stack: list[tuple[Graph, bool]] = [(root, False)]
    while stack:
        graph, children_done = stack.pop()
        if id(graph) in index:
            continue
        if not children_done:
            stack.append((graph, True))
            stack.extend((b, False) for b in graph.blocks.values() if isinstance(b, Graph) and id(b) not in index)
            continue
        blocks = tuple((name, index[id(b)] if isinstance(b, Graph) else b) for name, b in graph.blocks.items())
        index[id(graph)] = len(flat)
        flat.append((blocks, tuple(graph.out_keys), graph.init))
    return flat


def _unflatten(flat: Sequence[FlatGraph]) -> Graph:
    graphs: list[Graph] = []
    for blocks, out_keys, init in flat:
        graphs.append(Graph({name: graphs[b] if isinstance(b, int) else b for name, b in blocks}, out_keys,
                            init=init))
    return graphs[-1]


def _default_name(block: object) -> str:
    out_keys = getattr(block, "out_keys", ())
    return str(out_keys[0]) if out_keys else type(block).__name__


def _wire(blocks: Mapping[str, Block], out_keys: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...], list[str]]:
    """Order the blocks, find the graph's inputs and report every wiring problem at once."""
    problems: list[str] = []
    producers: dict[str, str] = {}
    for name in sorted(blocks):
        for key in blocks[name].out_keys:
            if key in producers:
                problems.append(f"key '{key}' is produced by two blocks, '{producers[key]}' and '{name}'")
            else:
                producers[key] = name
    for key in out_keys:
        if key not in producers:
            problems.append(f"out key '{key}' is produced by no block (produced keys: {sorted(producers)})")

    needs = {name: {producers[k] for k in blocks[name].in_keys if k in producers} for name in blocks}
    order = _levels(needs)
    placed = set(order)
    if len(order) < len(blocks):
        problems.append(f"blocks form a cycle: {_describe_cycle(needs, placed)}")

    live: set[str] = set()
    frontier = [producers[k] for k in out_keys if k in producers]
    while frontier:
        name = frontier.pop()
        if name not in live:
            live.add(name)
            frontier.extend(needs[name])
    for name in sorted(set(blocks) - live):
        problems.append(f"block '{name}' contributes to no out key (out_keys: {list(out_keys)})")

    in_keys: dict[str, None] = {}  # insertion-ordered set
    for name in order + sorted(set(blocks) - placed):
        for key in blocks[name].in_keys:
            if key not in producers:
                in_keys.setdefault(key)
    return tuple(order), tuple(in_keys), problems


def _levels(needs: Mapping[str, set[str]]) -> list[str]:
    """Kahn's algorithm by levels: each level is the blocks whose producers all sit in earlier levels, sorted by
    name. Linear in blocks and edges (plus the sorting); blocks on a cycle are left out."""
    waiting = {name: len(producers) for name, producers in needs.items()}
    readers: dict[str, list[str]] = {name: [] for name in needs}
    for name, producers in needs.items():
        for producer in producers:
            readers[producer].append(name)
    order: list[str] = []
    level = sorted(name for name, count in waiting.items() if count == 0)
    while level:
        order.extend(level)
        ready = []
        for name in level:
            for reader in readers[name]:
                waiting[reader] -= 1
                if waiting[reader] == 0:
                    ready.append(reader)
        level = sorted(ready)
    return order


def _describe_cycle(needs: Mapping[str, set[str]], placed: set[str]) -> str:
    start = min(n for n in needs if n not in placed)
    path = [start]
    while True:
        step = min(n for n in needs[path[-1]] if n not in placed)
        if step in path:
            cycle = path[path.index(step):] + [step]
            return " -> ".join(f"'{n}'" for n in cycle)
        path.append(step)
