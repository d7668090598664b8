"""Hypothesis strategies: random valid specs over random input shapes, and the pieces that invalid ones are made of.

`valid_cases()` draws a `Case`: a spec, the input shapes it is valid for, and the role ('features' or 'mask') of
every input. Specs are random graphs built by *recipes*, one per block kind: a recipe reads keys already in scope
whose shapes it can take (or makes new graph inputs of shapes it can take), draws the block's parameters, and adds
the block. On top of that, graph recipes nest graphs (whose private keys are renamed to collide with the outer
scope's names, so key scoping is exercised), share one sub-graph between two consumers, and embed one sub-graph
value twice (as in a policy and a critic that both contain the same latent graph). Top-level specs are Graphs, or
sometimes a bare block. Shapes and units are kept small: materializing is what costs.

The output shape of each drawn block comes from `ps.infer_shapes`; the property tests then hold the fold to a real
forward pass, so a wrong fold shows up there, not here.

Invalid-spec tests draw valid blocks of one kind with `blocks_of(kind)` and break one field (`WRONG_TYPE_VALUES`,
`POSITIVE_FIELDS`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import torch
from hypothesis import settings
from hypothesis import strategies as st
from torch import nn

import perceptspec as ps
from perceptspec._spec._descriptor import _kinds

Shape = tuple[int, ...]
T = TypeVar("T")

FEATURES, MASK, INDEX, NUMBER = "features", "mask", "index", "number"
#: random index inputs are drawn below this bound: every OneHot / Embedding recipe counts at least this many classes
INDEX_BOUND = 2

#: every registered block kind (Graph included): the strategies must reach each of them
BLOCK_KINDS: frozenset[type[ps.Block]] = frozenset(
    k for k in _kinds.values() if issubclass(k, ps.Block))


@dataclasses.dataclass(frozen=True)
class Case:
    """A valid spec, the input shapes it is valid for, and what each input is ('features' or 'mask')."""

    spec: ps.Block
    in_shapes: Mapping[str, Shape]
    roles: Mapping[str, str]

    def __repr__(self) -> str:  # what Hypothesis prints for a falsifying example: code that rebuilds it
        return f"Case(spec={self.spec!r}, in_shapes={dict(self.in_shapes)!r}, roles={dict(self.roles)!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Hypothesis's pretty printer would list every dataclass field of the spec; print the repr instead."""
        printer.text(repr(self))


# --- names --------------------------------------------------------------------------------------------------------

#: key and block names the generated forward must cope with: keywords, builtins, the names its own code uses
#: ('self', 'inputs', 'torch', 'F', '_b', '_check', 'p', 'h'), names that are not identifiers, non-ASCII letters
#: nn.Module / nn.ModuleDict attribute names: block names the module tree must not confuse with its own attributes
MODULE_ATTRIBUTE_NAMES = ("values", "keys", "items", "update", "forward", "training", "to", "float", "eval",
                          "parameters", "state_dict", "__init__")
TRICKY_NAMES = ("self", "inputs", "torch", "F", "_b", "_check", "p", "h", "p_1", "class", "None", "sum", "print",
                "1x", "a b", "a-b", "k'q", 'x"y', "ü", "_", "obs", "action", "y_1", *MODULE_ATTRIBUTE_NAMES)

NON_LINS = (*ps.NON_LINEARITIES, "torch.nn.ReLU", "nn.Tanh", "LeakyReLU", "torch.nn.Identity")


# --- small value strategies -----------------------------------------------------------------------------------------

def shapes(min_rank: int, max_rank: int, lo: int = 1, hi: int = 4) -> st.SearchStrategy[Shape]:
    return st.lists(st.integers(lo, hi), min_size=min_rank, max_size=max_rank).map(tuple)


def inits() -> st.SearchStrategy[ps.Initializer | None]:
    finite = st.floats(0.1, 2.0)
    return st.one_of(
        st.none(), st.none(),
        st.just(ps.TorchDefault()),
        finite.map(ps.NormC),
        finite.map(ps.Orthogonal),
        finite.map(ps.XavierUniform),
        st.sampled_from(("relu", "leaky_relu", "tanh", "sigmoid", "linear", "selu")).map(ps.KaimingUniform),
    )


@st.composite
def biases(draw: st.DrawFn, units: int) -> ps.Bias | None:
    choice = draw(st.sampled_from(("none", "constant", "categorical", "bernoulli", "bernoulli_each")))
    if choice == "constant":
        return ps.ConstantBias(draw(st.floats(-2.0, 2.0)))
    if choice == "categorical":
        weights = draw(st.lists(st.integers(1, 5), min_size=units, max_size=units))
        return ps.CategoricalBias([w / sum(weights) for w in weights])
    if choice == "bernoulli":
        return ps.BernoulliBias(draw(st.floats(0.05, 0.95)))
    if choice == "bernoulli_each":
        return ps.BernoulliBias(draw(st.lists(st.floats(0.05, 0.95), min_size=units, max_size=units)))
    return None


def units(max_layers: int = 2, hi: int = 4) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(1, hi), min_size=1, max_size=max_layers)


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def maze_dim(draw: st.DrawFn, rank: int, index: int) -> int:
    """A Maze-style dim naming feature index `index` of a rank-`rank` shape: negative from the end, or 1-based."""
    return draw(st.sampled_from((index - rank, index + 1)))


def one_or_list(draw: st.DrawFn, values: Sequence[T]) -> T | list[T]:
    """One value (when all are equal) or the list: Maze's per-layer fields take either."""
    if len(set(values)) == 1 and draw(st.booleans()):
        return values[0]
    return list(values)


# --- the graph builder ----------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Scope:
    """The graph being built: the keys it can read (features keys in `pool`; masks only in `shapes`), its blocks."""

    depth: int
    pool: dict[str, Shape] = dataclasses.field(default_factory=dict)
    shapes: dict[str, Shape] = dataclasses.field(default_factory=dict)
    blocks: dict[str, ps.Block] = dataclasses.field(default_factory=dict)
    produced: list[str] = dataclasses.field(default_factory=list)
    consumed: set[str] = dataclasses.field(default_factory=set)


class Builder:
    """Draws one random spec. Key names are unique over the whole spec until `localise` renames private keys."""

    def __init__(self, draw: st.DrawFn, names: Sequence[str] = TRICKY_NAMES, max_depth: int = 2) -> None:
        self.draw = draw
        self.names = tuple(names)
        self.max_depth = max_depth
        self.used: set[str] = set()
        self.inputs: dict[str, tuple[Shape, str]] = {}
        self.count = 0
        #: keys no block may read (masked logits), also when a nested graph exports them
        self.unreadable: set[str] = set()

    def fresh(self) -> str:
        """A key name used nowhere yet: sometimes a tricky one, else k<n>."""
        if self.names and self.draw(st.integers(0, 4)) == 0:
            name = self.draw(st.sampled_from(self.names))
            if name not in self.used:
                self.used.add(name)
                return name
        while f"k{self.count}" in self.used:
            self.count += 1
        self.used.add(f"k{self.count}")
        return f"k{self.count}"

    def block_name(self, scope: Scope) -> str:
        if self.names and self.draw(st.integers(0, 3)) == 0:
            name = self.draw(st.sampled_from(self.names))
            if name not in scope.blocks:
                return name
        n = len(scope.blocks)
        while f"b{n}" in scope.blocks:
            n += 1
        return f"b{n}"

    def new_input(self, scope: Scope, shape: Shape, role: str = FEATURES) -> str:
        key = self.fresh()
        self.inputs[key] = (shape, role)
        scope.shapes[key] = shape
        if role == FEATURES:
            scope.pool[key] = shape
        return key

    def pick(self, scope: Scope, ok: Callable[[Shape], bool], new: st.SearchStrategy[Shape]) -> str:
        """A key in scope whose shape is `ok` (three times in four when there is one), else a new input."""
        fits = [k for k, s in scope.pool.items() if ok(s)]
        if fits and self.draw(st.integers(0, 3)) > 0:
            return self.draw(st.sampled_from(fits))
        shape = self.draw(new)
        assert ok(shape), (shape, "the new-shape strategy must satisfy the recipe's condition")
        return self.new_input(scope, shape)

    def add(self, scope: Scope, block: ps.Block, poolable: bool = True) -> tuple[Shape, ...]:
        """Add `block` under a fresh name; its outputs join the scope (and the pool, unless not `poolable`)."""
        if not poolable:
            self.unreadable.update(block.out_keys)
        shapes = ps.infer_shapes(block, {k: scope.shapes[k] for k in block.in_keys})
        scope.blocks[self.block_name(scope)] = block
        scope.consumed.update(block.in_keys)
        outs = tuple(shapes[k] for k in block.out_keys)
        for key, shape in zip(block.out_keys, outs):
            scope.shapes[key] = shape
            scope.produced.append(key)
            if key not in self.unreadable:
                scope.pool[key] = shape
        return outs

    def step(self, scope: Scope) -> None:
        if scope.depth < self.max_depth and self.draw(st.integers(0, 4)) == 0:
            recipe = self.draw(st.sampled_from(GRAPH_RECIPES))
        else:
            recipe = self.draw(st.sampled_from(LEAF_RECIPES))
        recipe(self, scope)

    def graph(self, scope: Scope, extra_outs: bool) -> ps.Graph:
        """The graph of `scope`'s blocks: out keys are the keys nothing reads (and, if `extra_outs`, some more)."""
        sinks = [k for k in scope.produced if k not in scope.consumed]
        others = [k for k in scope.produced if k in scope.consumed]
        extra = self.draw(st.lists(st.sampled_from(others), unique=True, max_size=1)) if extra_outs and others else []
        out_keys = self.draw(st.permutations(sinks + extra))
        return ps.Graph(dict(scope.blocks), out_keys, init=self.draw(inits()))

    def subgraph(self, parent: Scope) -> tuple[ps.Graph, Scope]:
        """A nested graph reading some of `parent`'s keys (and maybe new inputs)."""
        sub = Scope(depth=parent.depth + 1)
        visible = self.draw(st.lists(st.sampled_from(sorted(parent.pool)), unique=True, max_size=2)) \
            if parent.pool else []
        for key in visible:
            sub.pool[key] = sub.shapes[key] = parent.pool[key]
        for _ in range(self.draw(st.integers(1, 3))):
            self.step(sub)
        graph = self.graph(sub, extra_outs=self.draw(st.integers(0, 3)) == 0)
        for key in graph.in_keys:  # new inputs made inside are inputs of the parent too
            if key not in parent.shapes:
                shape, role = self.inputs[key]
                parent.shapes[key] = shape
                if role == FEATURES:
                    parent.pool[key] = shape
        return graph, sub


# --- key renaming (nested graphs' private keys named like outer keys) ------------------------------------------------

def keys_in(block: ps.Block) -> set[str]:
    """Every key name that appears in `block` or anywhere inside it."""
    keys = set(block.in_keys) | set(block.out_keys)
    if isinstance(block, ps.Graph):
        for _, inner in block.blocks_in_order:
            keys |= keys_in(inner)
    if isinstance(block, ps.Ensemble):
        keys |= keys_in(block.spec)
    return keys


def rename_in_scope(graph: ps.Graph, old: str, new: str) -> ps.Graph:
    """`graph` with key `old` of its own scope called `new` (`new` must appear nowhere inside it)."""
    def swap(keys: Sequence[str]) -> tuple[str, ...]:
        return tuple(new if k == old else k for k in keys)

    blocks: dict[str, ps.Block] = {}
    for name, block in graph.blocks_in_order:
        if isinstance(block, ps.Graph):
            if old in block.in_keys or old in block.out_keys:
                block = rename_in_scope(block, old, new)
        elif isinstance(block, ps.Ensemble):  # (its member is always a Graph here, see `_ensemble`)
            if old in block.in_keys or old in block.out_keys:
                assert isinstance(block.spec, ps.Graph)
                block = ps.Ensemble(rename_in_scope(block.spec, old, new), block.size, init=block.init)
        else:
            changes: dict[str, Any] = {"in_keys": swap(block.in_keys), "out_keys": swap(block.out_keys)}
            if isinstance(block, ps.TorchModel) and "out_names" in block.kwargs:  # TinyModel's dict keys
                changes["kwargs"] = {**block.kwargs, "out_names": swap(changes["out_keys"])}
            block = dataclasses.replace(block, **changes)
        blocks[name] = block
    return ps.Graph(blocks, swap(graph.out_keys), init=graph.init)


def private_keys(graph: ps.Graph) -> list[str]:
    return [k for _, b in graph.blocks_in_order for k in b.out_keys if k not in graph.out_keys]


def localise_nested(draw: st.DrawFn, graph: ps.Graph) -> ps.Graph:
    """`graph` with some private keys of the graphs nested in it renamed to names of their enclosing scope."""
    scope = sorted(set(graph.in_keys) | {k for _, block in graph.blocks_in_order for k in block.out_keys})
    blocks: dict[str, ps.Block] = {}
    for name, block in graph.blocks_in_order:  # draws in a fixed order (a pmap iterates in hash order)
        if isinstance(block, ps.Graph):
            block = localise_nested(draw, block)
            if draw(st.integers(0, 3)):
                block = localise(draw, block, scope)
        blocks[name] = block
    return ps.Graph(blocks, graph.out_keys, init=graph.init)


def localise(draw: st.DrawFn, graph: ps.Graph, outer: Sequence[str]) -> ps.Graph:
    """Rename some private keys of `graph` to names of the enclosing scope that `graph` does not use."""
    for key in draw(st.lists(st.sampled_from(private_keys(graph)), min_size=1, unique=True)) \
            if private_keys(graph) else []:
        free = sorted(set(outer) - keys_in(graph))
        if not free:
            break
        graph = rename_in_scope(graph, key, draw(st.sampled_from(free)))
    return graph


# --- leaf recipes: one per block kind ---------------------------------------------------------------------------------

Recipe = Callable[[Builder, Scope], None]

#: the key a recipe reads while it tries shapes, before it picks the real one (no name the builder makes)
PLACEHOLDER = "\x00placeholder"


def rank_at_least(n: int) -> Callable[[Shape], bool]:
    return lambda s: len(s) >= n


def with_lead(core: st.SearchStrategy[Shape], max_lead: int = 1) -> st.SearchStrategy[Shape]:
    """`core` with up to `max_lead` extra leading feature dims in front."""
    return st.tuples(shapes(0, max_lead, 1, 2), core).map(lambda t: t[0] + t[1])


def _dense(b: Builder, scope: Scope) -> None:
    d = b.draw
    x = b.pick(scope, rank_at_least(1), shapes(1, 3))
    b.add(scope, ps.Dense(in_keys=x, out_keys=b.fresh(), hidden_units=d(units()), non_lin=d(st.sampled_from(NON_LINS)),
                          layer_norm=d(st.booleans()), init=d(inits())))


def _linear_output(b: Builder, scope: Scope) -> None:
    d = b.draw
    x = b.pick(scope, rank_at_least(1), shapes(1, 3))
    n = d(st.integers(1, 4))
    b.add(scope, ps.LinearOutput(in_keys=x, out_keys=b.fresh(), output_units=n, bias=d(biases(n)), init=d(inits())))


def _state_independent_log_std(b: Builder, scope: Scope) -> None:
    x = b.pick(scope, rank_at_least(1), shapes(1, 3))
    b.add(scope, ps.StateIndependentLogStd(in_keys=x, out_keys=b.fresh(),
                                           log_std_init=b.draw(st.floats(-3.0, 1.0, width=32))))


def _concat(b: Builder, scope: Scope) -> None:
    d = b.draw
    x = b.pick(scope, rank_at_least(1), shapes(1, 3))
    first = scope.shapes[x]
    k = d(st.integers(0, len(first) - 1))
    keys = [x]
    for _ in range(d(st.integers(1, 2))):
        fits = [key for key, s in scope.pool.items() if key not in keys and len(s) == len(first)
                and all(a == c for j, (a, c) in enumerate(zip(s, first)) if j != k)]
        reuse: bool = d(st.booleans())
        if fits and reuse:
            keys.append(d(st.sampled_from(fits)))
        else:
            keys.append(b.new_input(scope, first[:k] + (d(st.integers(1, 3)),) + first[k + 1:]))
    b.add(scope, ps.Concat(in_keys=keys, out_keys=b.fresh(), concat_dim=maze_dim(d, len(first), k)))


def _flatten(b: Builder, scope: Scope) -> None:
    x = b.pick(scope, rank_at_least(1), shapes(1, 3))
    n = b.draw(st.integers(1, len(scope.shapes[x])))
    b.add(scope, ps.Flatten(in_keys=x, out_keys=b.fresh(), num_flatten_dims=n))


def _slice(b: Builder, scope: Scope) -> None:
    d = b.draw
    x = b.pick(scope, rank_at_least(1), shapes(1, 3))
    shape = scope.shapes[x]
    k = d(st.integers(0, len(shape) - 1))
    b.add(scope, ps.Slice(in_keys=x, out_keys=b.fresh(), slice_dim=maze_dim(d, len(shape), k),
                          slice_idx=d(st.integers(-shape[k], shape[k] - 1))))


def _multi_index_slicing(b: Builder, scope: Scope) -> None:
    d = b.draw
    x = b.pick(scope, rank_at_least(1), shapes(1, 3))
    shape = scope.shapes[x]
    k = d(st.integers(0, len(shape) - 1))
    index = st.integers(-shape[k], shape[k] - 1)
    idxs: int | list[int] = d(st.one_of(index, st.lists(index, min_size=1, max_size=3)))
    b.add(scope, ps.MultiIndexSlicing(in_keys=x, out_keys=b.fresh(), select_dim=maze_dim(d, len(shape), k),
                                      select_idxs=idxs))


def _repeat_to_match(b: Builder, scope: Scope) -> None:
    d = b.draw
    target = b.pick(scope, rank_at_least(1), shapes(1, 3))
    t_shape = scope.shapes[target]
    kt = d(st.integers(0, len(t_shape) - 1))
    dim = maze_dim(d, len(t_shape), kt)
    need = -dim if dim < 0 else dim  # the repeated input needs the dim too
    rank = d(st.integers(need, max(need, 3)))
    shape = list(d(shapes(rank, rank)))
    shape[rank + dim if dim < 0 else dim - 1] = 1
    repeated = b.pick(scope, lambda s: s == tuple(shape), st.just(tuple(shape)))
    if repeated == target:
        repeated = b.new_input(scope, tuple(shape))
    b.add(scope, ps.RepeatToMatch(in_keys=[repeated, target], out_keys=b.fresh(), repeat_at_idx=dim))


def _global_average_pooling(b: Builder, scope: Scope) -> None:
    x = b.pick(scope, rank_at_least(3), with_lead(shapes(3, 3)))
    b.add(scope, ps.GlobalAveragePooling(in_keys=x, out_keys=b.fresh()))


def _masked_global_pooling(b: Builder, scope: Scope) -> None:
    d = b.draw
    x = b.pick(scope, rank_at_least(2), shapes(2, 3))
    shape = scope.shapes[x]
    pooled = d(st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True))
    dims = [maze_dim(d, len(shape), k) for k in pooled]
    keys = [x]
    if d(st.booleans()):
        keys.append(b.new_input(scope, shape[:d(st.integers(1, len(shape)))], MASK))
    b.add(scope, ps.MaskedGlobalPooling(in_keys=keys, out_keys=b.fresh(),
                                        pooling_func=d(st.sampled_from(("mean", "sum", "max"))),
                                        pooling_dim=dims[0] if len(dims) == 1 and d(st.booleans()) else dims))


def _correlation(b: Builder, scope: Scope) -> None:
    d = b.draw
    x = b.pick(scope, rank_at_least(1), shapes(1, 3))
    a = scope.shapes[x]
    block = ps.Correlation(in_keys=[x, PLACEHOLDER], out_keys=b.fresh(), reduce=d(st.booleans()))
    other = d(st.one_of(st.just(a), st.lists(st.sampled_from((1, *a[:-1], 2, 3)), max_size=2).map(
        lambda lead: (*lead, a[-1]))))
    try:  # a shape the alignment rule may reject; fall back to the first input's own shape
        ps.infer_shapes(block, {x: a, PLACEHOLDER: other})
    except ps.ShapeError:
        other = a
    y = b.pick(scope, lambda s: s == other, st.just(other))
    if y == x:
        y = b.new_input(scope, other)
    b.add(scope, dataclasses.replace(block, in_keys=(x, y)))


def _action_masking(b: Builder, scope: Scope) -> None:
    d = b.draw
    x = b.pick(scope, rank_at_least(1), shapes(1, 2))
    logits = scope.shapes[x]
    actors = d(st.sampled_from(divisors(logits[-1])))
    n = logits[-1] // actors
    mask_shape = logits if actors == 1 else logits[:-1] + (actors, n)
    mask = b.new_input(scope, mask_shape, MASK)
    block = ps.ActionMasking(in_keys=[x, mask], out_keys=[b.fresh() for _ in range(actors)], num_actors=actors,
                             num_of_actor_actions=d(st.sampled_from((None, n))))
    b.add(scope, block, poolable=False)  # masked logits are the dtype's lowest value: no block should read on


FUNCTIONS = ("identity", "sum_last", "mean_last", "max_last", "softmax_last", "log_softmax_last", "add", "mul",
             "tests.twice")


def _functional(b: Builder, scope: Scope) -> None:
    d = b.draw
    func = d(st.sampled_from(FUNCTIONS))
    if func == "identity":
        keys = [b.pick(scope, lambda s: True, shapes(0, 2))]
        if d(st.booleans()):
            second = b.pick(scope, lambda s: True, shapes(0, 2))
            keys += [second] if second != keys[0] else []
    elif func in ("add", "mul"):
        x = b.pick(scope, rank_at_least(1), shapes(1, 3))
        shape = scope.shapes[x]
        other = tuple(d(st.sampled_from((s, 1) if s != 1 else (1, 2))) for s in shape)
        keys = [x, b.new_input(scope, other)]
    else:
        keys = [b.pick(scope, rank_at_least(1) if func != "tests.twice" else lambda s: True, shapes(1, 3))]
    b.add(scope, ps.Functional(in_keys=keys, out_keys=[b.fresh() for _ in keys] if func == "identity" else b.fresh(),
                               func=func))


def _vgg_input(b: Builder, scope: Scope, stages: int) -> str:
    least = 2 ** stages
    return b.pick(scope, lambda s: len(s) >= 3 and min(s[-2:]) >= least,
                  with_lead(st.tuples(st.integers(1, 2), st.integers(least, least + 2),
                                      st.integers(least, least + 2))))


def _vgg_conv(b: Builder, scope: Scope) -> None:
    d = b.draw
    channels = d(units(2, 3))
    x = _vgg_input(b, scope, len(channels))
    b.add(scope, ps.VGGConv(in_keys=x, out_keys=b.fresh(), hidden_channels=channels,
                            non_lin=d(st.sampled_from(NON_LINS)), use_batch_norm=d(st.booleans()), init=d(inits())))


def _vgg_conv_dense(b: Builder, scope: Scope) -> None:
    d = b.draw
    channels = d(units(2, 3))
    x = _vgg_input(b, scope, len(channels))
    b.add(scope, ps.VGGConvDense(in_keys=x, out_keys=b.fresh(), hidden_channels=channels,
                                 hidden_units=d(st.lists(st.integers(1, 4), max_size=2)),
                                 non_lin=d(st.sampled_from(NON_LINS)), use_batch_norm_conv=d(st.booleans()),
                                 init=d(inits())))


def _vgg_conv_gap(b: Builder, scope: Scope) -> None:
    d = b.draw
    channels = d(units(2, 3))
    x = _vgg_input(b, scope, len(channels))
    b.add(scope, ps.VGGConvGAP(in_keys=x, out_keys=b.fresh(), hidden_channels=channels,
                               non_lin=d(st.sampled_from(NON_LINS)), use_batch_norm_conv=d(st.booleans()),
                               init=d(inits())))


def _flatten_dense(b: Builder, scope: Scope) -> None:
    d = b.draw
    x = b.pick(scope, rank_at_least(1), shapes(1, 3))
    n = d(st.integers(1, len(scope.shapes[x])))
    b.add(scope, ps.FlattenDense(in_keys=x, out_keys=b.fresh(), num_flatten_dims=n, hidden_units=d(units()),
                                 non_lin=d(st.sampled_from(NON_LINS)), init=d(inits())))


@st.composite
def strided_fields(draw: st.DrawFn, max_dims: int = 3) -> dict[str, Any]:
    """The fields StridedConv and StridedConvDense share (without keys), small enough to stay cheap."""
    dims = draw(st.integers(1, max_dims))
    n = draw(st.integers(1, 2))

    def per_layer(lo: int, hi: int) -> list[int | tuple[int, ...]]:
        return [draw(st.one_of(st.integers(lo, hi), st.tuples(*[st.integers(lo, hi)] * dims))) for _ in range(n)]

    fields: dict[str, Any] = {"convolution_dimension": dims,
                              "hidden_channels": draw(st.lists(st.integers(1, 3), min_size=n, max_size=n)),
                              "hidden_kernels": per_layer(1, 3), "non_lin": draw(st.sampled_from(NON_LINS))}
    for field, lo, hi in (("hidden_strides", 1, 2), ("hidden_dilations", 1, 2), ("hidden_padding", 0, 2)):
        if draw(st.booleans()):
            fields[field] = per_layer(lo, hi)
    fields["padding_mode"] = draw(st.sampled_from((None, "zeros", "reflect", "replicate", "circular")))
    return fields


def fits(block: ps.Block, shapes_: Mapping[str, Shape]) -> bool:
    try:
        ps.infer_shapes(block, shapes_)
    except ps.ShapeError:
        return False
    return True


def _strided(b: Builder, scope: Scope, dense: bool) -> None:
    d = b.draw
    fields = d(strided_fields())
    if dense:
        fields["hidden_units"] = d(st.lists(st.integers(1, 4), max_size=2))
    kind = ps.StridedConvDense if dense else ps.StridedConv
    block = kind(in_keys=PLACEHOLDER, out_keys=b.fresh(), init=d(inits()), **fields)
    dims = fields["convolution_dimension"]
    smallest = next((n for n in range(1, 16) if fits(block, {PLACEHOLDER: (1,) + (n,) * dims})), None)
    if smallest is None:  # no size fits (e.g. reflect padding of a dim the previous layer shrank to 1)
        block = dataclasses.replace(block, hidden_kernels=[1] * len(fields["hidden_channels"]), hidden_padding=None,
                                    padding_mode="zeros")
        smallest = 1
    spatial = st.lists(st.integers(smallest, smallest + 2), min_size=dims, max_size=dims).map(tuple)
    new = with_lead(st.tuples(st.integers(1, 2), spatial).map(lambda t: (t[0], *t[1])))
    x = b.pick(scope, lambda s: len(s) > dims and fits(block, {PLACEHOLDER: s}), new)
    b.add(scope, dataclasses.replace(block, in_keys=(x,)))


def _strided_conv(b: Builder, scope: Scope) -> None:
    _strided(b, scope, dense=False)


def _strided_conv_dense(b: Builder, scope: Scope) -> None:
    _strided(b, scope, dense=True)


def _recurrent(kind: type[ps.LSTM] | type[ps.LSTMLastStep] | type[ps.GRU] | type[ps.GRULastStep]) -> Recipe:
    def recipe(b: Builder, scope: Scope) -> None:
        d = b.draw
        x = b.pick(scope, rank_at_least(2), with_lead(shapes(2, 2)))
        b.add(scope, kind(in_keys=x, out_keys=b.fresh(), hidden_size=d(st.integers(1, 3)),
                          num_layers=d(st.integers(1, 2)), bidirectional=d(st.booleans()),
                          non_lin=d(st.sampled_from(NON_LINS)), init=d(inits())))
    return recipe


def _stateful(kind: type[ps.StatefulLSTM] | type[ps.StatefulGRU]) -> Recipe:
    def recipe(b: Builder, scope: Scope) -> None:
        d = b.draw
        x = b.pick(scope, lambda s: len(s) == 1, shapes(1, 1))
        hidden, layers = d(st.integers(1, 3)), d(st.integers(1, 2))
        keys = [x, *(b.new_input(scope, (layers, hidden)) for _ in kind.state_names)]
        if d(st.booleans()):
            keys.append(b.new_input(scope, (1,), MASK))
        b.add(scope, kind(in_keys=keys, out_keys=[b.fresh() for _ in range(1 + len(kind.state_names))],
                          hidden_size=hidden, num_layers=layers, init=d(inits())))
    return recipe


def sequence_parts(shape: Shape) -> tuple[Shape, int, int]:
    """(leading dims, length, features): a rank-1 (F,) is a sequence of one step."""
    return ((), 1, shape[0]) if len(shape) == 1 else (shape[:-2], shape[-2], shape[-1])


def dropouts() -> st.SearchStrategy[float | None]:
    return st.one_of(st.none(), st.floats(0.0, 0.5))


def _self_attention_seq(b: Builder, scope: Scope) -> None:
    d = b.draw
    x = b.pick(scope, rank_at_least(1), shapes(1, 3))
    lead, n, e = sequence_parts(scope.shapes[x])
    keys = [x] + ([b.new_input(scope, lead + (n, n), MASK)] if d(st.booleans()) else [])
    b.add(scope, ps.SelfAttentionSeq(in_keys=keys, out_keys=[b.fresh() for _ in range(d(st.integers(1, 2)))],
                                     num_heads=d(st.sampled_from(divisors(e))), dropout=d(dropouts()),
                                     add_input_to_output=d(st.booleans()), bias=d(st.booleans()), init=d(inits())))


def _multi_head_attention(b: Builder, scope: Scope) -> None:
    d = b.draw
    x = b.pick(scope, rank_at_least(1), shapes(1, 3))
    lead, length, e = sequence_parts(scope.shapes[x])
    kdim, vdim = d(st.sampled_from((None, 1, 2, 3))), d(st.sampled_from((None, 1, 2, 3)))
    source = d(st.integers(1, 3))
    kd, vd = e if kdim is None else kdim, e if vdim is None else vdim
    key_shape = (kd,) if not lead and source == 1 and d(st.booleans()) else lead + (source, kd)
    keys = [x, b.new_input(scope, key_shape), b.new_input(scope, lead + (source, vd))]
    masks = d(st.sampled_from(((), ("attn",), ("padding",), ("attn", "padding"))))
    for kind in masks:
        keys.append(b.new_input(scope, lead + ((length, source) if kind == "attn" else (source,)), MASK))
    b.add(scope, ps.MultiHeadAttention(
        in_keys=keys, out_keys=[b.fresh() for _ in range(d(st.integers(1, 2)))],
        num_heads=d(st.sampled_from(divisors(e))), dropout=d(dropouts()), add_input_to_output=d(st.booleans()),
        bias=d(st.booleans()), add_bias_kv=d(st.booleans()), add_zero_attn=d(st.booleans()), kdim=kdim, vdim=vdim,
        use_key_padding_mask="padding" in masks, init=d(inits())))


def _self_attention_conv(b: Builder, scope: Scope) -> None:
    d = b.draw
    x = b.pick(scope, rank_at_least(3), with_lead(shapes(3, 3)))
    shape = scope.shapes[x]
    positions = shape[-2] * shape[-1]
    keys = [x] + ([b.new_input(scope, shape[:-3] + (positions, positions), MASK)] if d(st.booleans()) else [])
    b.add(scope, ps.SelfAttentionConv(in_keys=keys, out_keys=[b.fresh() for _ in range(d(st.integers(1, 2)))],
                                      embed_dim=d(st.integers(1, 3)), dropout=d(dropouts()),
                                      add_input_to_output=d(st.booleans()), bias=d(st.booleans()), init=d(inits())))


def _graph_input(b: Builder, scope: Scope, adjacency_role: str) -> list[str]:
    x = b.pick(scope, rank_at_least(2), with_lead(shapes(2, 2)))
    shape = scope.shapes[x]
    return [x, b.new_input(scope, shape[:-1] + (shape[-2],), adjacency_role)]


def _graph_conv(b: Builder, scope: Scope) -> None:
    d = b.draw
    preprocess = d(st.booleans())
    keys = _graph_input(b, scope, MASK if preprocess else FEATURES)
    features = d(units())
    n = len(features)
    b.add(scope, ps.GraphConv(
        in_keys=keys, out_keys=b.fresh(), hidden_features=features,
        bias=one_or_list(d, d(st.lists(st.booleans(), min_size=n, max_size=n))),
        non_lins=d(st.lists(st.sampled_from(NON_LINS), min_size=1, max_size=1) | st.lists(
            st.sampled_from(NON_LINS), min_size=n, max_size=n)),
        node_self_importance=d(st.floats(-1.0, 2.0)), trainable_node_self_importance=d(st.booleans()),
        preprocess_adj=preprocess, init=d(inits())))


def _graph_attention(b: Builder, scope: Scope) -> None:
    d = b.draw
    keys = _graph_input(b, scope, MASK)
    features = d(units())
    n = len(features)
    b.add(scope, ps.GraphAttention(
        in_keys=keys, out_keys=b.fresh(), hidden_features=features,
        non_lins=d(st.lists(st.sampled_from(NON_LINS), min_size=1, max_size=1) | st.lists(
            st.sampled_from(NON_LINS), min_size=n, max_size=n)),
        n_heads=one_or_list(d, d(st.lists(st.integers(1, 3), min_size=n, max_size=n))),
        attention_alpha=one_or_list(d, d(st.lists(st.floats(0.0, 0.5), min_size=n, max_size=n))),
        avg_last_head_attentions=d(st.booleans()),
        attention_dropout=one_or_list(d, d(st.lists(st.floats(0.0, 0.5), min_size=n, max_size=n))),
        init=d(inits())))


class TinyModel(nn.Module):
    """A user module for TorchModel blocks: tanh(Linear(x)) on the last dim, optionally also its sum over that dim;
    takes its input positionally or in a dict, returns a tensor, a tuple, or a dict keyed by `out_names`."""

    def __init__(self, in_shapes: Mapping[str, Sequence[int]], units: int = 2, n_outputs: int = 1,
                 out_names: Sequence[str] = ()) -> None:
        super().__init__()
        ((_, shape),) = in_shapes.items()
        self.linear = nn.Linear(shape[-1], units)
        self.n_outputs = n_outputs
        self.out_names = tuple(out_names)

    def forward(self, x: torch.Tensor | dict[str, torch.Tensor]) -> Any:
        if isinstance(x, dict):
            (x,) = x.values()
        y = torch.tanh(self.linear(x))
        outs = (y, y.sum(-1))[:self.n_outputs]
        if self.out_names:
            return dict(zip(self.out_names, outs))
        return outs[0] if self.n_outputs == 1 else outs


TINY_MODEL = f"{__name__}:TinyModel"


def _torch_model(b: Builder, scope: Scope) -> None:
    d = b.draw
    x = b.pick(scope, rank_at_least(1), shapes(1, 3))
    shape = scope.shapes[x]
    # a second output has one dim less: of shape () per sample when the module sees one dim
    n_units, n_outputs = d(st.integers(1, 3)), d(st.integers(1, 2))
    out_keys = [b.fresh() for _ in range(n_outputs)]
    in_num_dims = d(st.sampled_from((None, *range(2, len(shape) + 2))))
    seen = shape if in_num_dims is None else shape[len(shape) - in_num_dims + 1:]
    out_shapes = [seen[:-1] + (n_units,), seen[:-1]][:n_outputs]
    kwargs: dict[str, object] = {"units": n_units, "n_outputs": n_outputs}
    if d(st.booleans()):
        kwargs["out_names"] = out_keys
    b.add(scope, ps.TorchModel(
        in_keys=x, out_keys=out_keys, module_factory=TINY_MODEL, kwargs=kwargs,
        out_shapes=out_shapes if d(st.booleans()) else None, dict_inputs=d(st.booleans()), in_num_dims=in_num_dims,
        out_num_dims=[len(s) + 1 for s in out_shapes] if in_num_dims is not None and d(st.booleans()) else None,
        init=d(inits())))


_lstm, _lstm_last_step = _recurrent(ps.LSTM), _recurrent(ps.LSTMLastStep)
_gru, _gru_last_step = _recurrent(ps.GRU), _recurrent(ps.GRULastStep)
_stateful_lstm, _stateful_gru = _stateful(ps.StatefulLSTM), _stateful(ps.StatefulGRU)


def _layer_norm(b: Builder, scope: Scope) -> None:
    d = b.draw
    x = b.pick(scope, rank_at_least(1), shapes(1, 3))
    b.add(scope, ps.LayerNorm(in_keys=x, out_keys=b.fresh(), num_normalized_dims=d(st.integers(1, len(scope.shapes[x]))),
                              eps=d(st.sampled_from((1e-5, 1e-3))), elementwise_affine=d(st.booleans()),
                              bias=d(st.booleans())))


def _permute(b: Builder, scope: Scope) -> None:
    d = b.draw
    x = b.pick(scope, rank_at_least(1), shapes(1, 3))
    rank = len(scope.shapes[x])
    order = d(st.permutations(range(rank)))
    b.add(scope, ps.Permute(in_keys=x, out_keys=b.fresh(), dims=[maze_dim(d, rank, k) for k in order]))


def _reshape(b: Builder, scope: Scope) -> None:
    d = b.draw
    x = b.pick(scope, lambda s: True, shapes(0, 3))
    size = math.prod(scope.shapes[x])
    target: list[int] = []
    while size > 1 or not target:  # a random factorisation of the size, in random pieces
        factor = d(st.sampled_from(divisors(size)))
        target.append(factor)
        size //= factor
    if d(st.booleans()):
        target[d(st.integers(0, len(target) - 1))] = -1
    b.add(scope, ps.Reshape(in_keys=x, out_keys=b.fresh(), shape=target))


def _index_input(b: Builder, scope: Scope, per_entry: bool) -> tuple[str, int | list[int]]:
    """A new index input and its class counts: one for all (any rank, rank 0 included) or one per last-dim entry."""
    d = b.draw
    lead = d(shapes(0, 2, 1, 3))
    counts = d(st.lists(st.integers(INDEX_BOUND, 4), min_size=1, max_size=3)) if per_entry else None
    shape = lead + (len(counts),) if counts is not None else lead
    return b.new_input(scope, shape, INDEX), counts if counts is not None else d(st.integers(INDEX_BOUND, 5))


def _one_hot(b: Builder, scope: Scope) -> None:
    x, counts = _index_input(b, scope, b.draw(st.booleans()))
    b.add(scope, ps.OneHot(in_keys=x, out_keys=b.fresh(), num_classes=counts))


def _embedding(b: Builder, scope: Scope) -> None:
    d = b.draw
    x, counts = _index_input(b, scope, d(st.booleans()))
    b.add(scope, ps.Embedding(in_keys=x, out_keys=b.fresh(), num_embeddings=counts, embedding_dim=d(st.integers(1, 3)),
                              init=d(inits())))


def _to_float(b: Builder, scope: Scope) -> None:
    d = b.draw
    produced = sorted(k for k in scope.pool if k not in b.inputs)  # an input read only here is a number input
    use_produced: bool = bool(produced) and d(st.booleans())
    x = d(st.sampled_from(produced)) if use_produced else b.new_input(scope, d(shapes(0, 3)), NUMBER)
    b.add(scope, ps.ToFloat(in_keys=x, out_keys=b.fresh(), scale=d(st.sampled_from((1.0, 1 / 255, -0.5)))))


def _nested_graph(b: Builder, scope: Scope) -> None:
    graph, _ = b.subgraph(scope)
    b.add(scope, graph)


def _ensemble(b: Builder, scope: Scope) -> None:
    """A nested graph as the member of an ensemble of 1 to 3: its outputs get the member dim."""
    graph, _ = b.subgraph(scope)
    b.add(scope, ps.Ensemble(graph, b.draw(st.integers(1, 3)), init=b.draw(inits())))


def _shared_graph(b: Builder, scope: Scope) -> None:
    """One sub-graph value in two wrappers, each with its own head on the sub-graph's first output: like a policy
    and a critic that both contain the same latent graph (computed twice, with their own weights)."""
    shared, _ = b.subgraph(scope)
    latent = shared.out_keys[0]
    shape = ps.infer_shapes(shared, {k: scope.shapes[k] for k in shared.in_keys})[latent]
    readable = latent not in b.unreadable
    for _ in range(2):
        out = b.fresh()
        head: ps.Block = ps.Dense(in_keys=latent, out_keys=out, hidden_units=[2]) if shape and readable \
            else ps.Functional(in_keys=latent, out_keys=out, func="identity")
        b.add(scope, ps.Graph({"shared": shared, "head": head}, out_keys=out), poolable=readable)


LEAF_RECIPES: tuple[Recipe, ...] = (
    _dense, _linear_output, _concat, _flatten, _slice, _multi_index_slicing, _repeat_to_match,
    _global_average_pooling, _masked_global_pooling, _correlation, _action_masking, _functional, _vgg_conv,
    _vgg_conv_dense, _vgg_conv_gap, _flatten_dense, _strided_conv, _strided_conv_dense, _lstm, _lstm_last_step, _gru,
    _gru_last_step, _stateful_lstm, _stateful_gru, _self_attention_seq,
    _multi_head_attention, _self_attention_conv, _graph_conv, _graph_attention, _torch_model, _layer_norm, _permute,
    _reshape, _one_hot, _embedding, _to_float, _state_independent_log_std,
)
GRAPH_RECIPES: tuple[Recipe, ...] = (_nested_graph, _shared_graph, _ensemble)

#: the fixed table of recipes (issue #12): every registered block kind, Graph included, has one; `blocks_of(kind)`
#: draws from it, and `test_properties` checks that no registered kind lacks one
RECIPE_OF: dict[type[ps.Block], Recipe] = {
    ps.Graph: _nested_graph, ps.Ensemble: _ensemble,
    ps.Dense: _dense, ps.LinearOutput: _linear_output, ps.Concat: _concat, ps.Flatten: _flatten, ps.Slice: _slice,
    ps.MultiIndexSlicing: _multi_index_slicing, ps.RepeatToMatch: _repeat_to_match,
    ps.GlobalAveragePooling: _global_average_pooling, ps.MaskedGlobalPooling: _masked_global_pooling,
    ps.Correlation: _correlation, ps.ActionMasking: _action_masking, ps.Functional: _functional,
    ps.VGGConv: _vgg_conv, ps.VGGConvDense: _vgg_conv_dense, ps.VGGConvGAP: _vgg_conv_gap,
    ps.FlattenDense: _flatten_dense, ps.StridedConv: _strided_conv, ps.StridedConvDense: _strided_conv_dense,
    ps.LSTM: _lstm, ps.LSTMLastStep: _lstm_last_step, ps.GRU: _gru, ps.GRULastStep: _gru_last_step,
    ps.StatefulLSTM: _stateful_lstm, ps.StatefulGRU: _stateful_gru,
    ps.SelfAttentionSeq: _self_attention_seq,
    ps.MultiHeadAttention: _multi_head_attention, ps.SelfAttentionConv: _self_attention_conv,
    ps.GraphConv: _graph_conv, ps.GraphAttention: _graph_attention, ps.TorchModel: _torch_model,
    ps.LayerNorm: _layer_norm, ps.Permute: _permute, ps.Reshape: _reshape, ps.OneHot: _one_hot,
    ps.Embedding: _embedding, ps.ToFloat: _to_float, ps.StateIndependentLogStd: _state_independent_log_std,
}

# a user function for Functional, with its own tensor function (the built-ins' live with torch)
ps.register_function("tests.twice", lambda shape: shape, lambda x: 2 * x)


# --- top-level strategies -----------------------------------------------------------------------------------------

def spec_steps() -> int:
    """How many blocks (or nested graphs) a drawn graph has at most: 4, or 6 under the `thorough` profile (whose
    2,000 examples per property can afford larger specs)."""
    return 6 if settings().max_examples >= 1000 else 4


@st.composite
def valid_cases(draw: st.DrawFn, names: Sequence[str] = TRICKY_NAMES, max_steps: int | None = None,
                max_depth: int = 2) -> Case:
    """A random valid spec (a Graph, or one time in eight a bare block) with its input shapes and roles."""
    max_steps = spec_steps() if max_steps is None else max_steps
    b = Builder(draw, names, max_depth)
    scope = Scope(depth=0)
    if draw(st.integers(0, 7)) == 0:
        draw(st.sampled_from(LEAF_RECIPES))(b, scope)
        (spec,) = scope.blocks.values()
    else:
        for _ in range(draw(st.integers(1, max_steps))):
            b.step(scope)
        spec = localise_nested(draw, b.graph(scope, extra_outs=True))
    return Case(spec, {k: s for k, (s, _) in b.inputs.items()}, {k: r for k, (_, r) in b.inputs.items()})


@st.composite
def blocks_of(draw: st.DrawFn, kind: type[ps.Block]) -> Case:
    """A random valid block of `kind` (a nested Graph for `ps.Graph`) on its own, with its input shapes."""
    b = Builder(draw, ())
    scope = Scope(depth=0)
    RECIPE_OF[kind](b, scope)
    (block,) = scope.blocks.values()
    return Case(block, {k: s for k, (s, _) in b.inputs.items()}, {k: r for k, (_, r) in b.inputs.items()})


def leaf_paths(spec: ps.Block, prefix: str = "") -> dict[str, ps.Block]:
    """Every leaf block of `spec` by its path ('g.b1'), as errors name it: a bare block at its first out key, the
    blocks of an Ensemble's member under the ensemble's path."""
    if isinstance(spec, ps.Ensemble):
        own = prefix[:-1] or spec.out_keys[0]
        return leaf_paths(spec.spec, f"{own}.") if isinstance(spec.spec, ps.Graph) else \
            {f"{own}.{spec.spec.out_keys[0]}": spec.spec}
    if not isinstance(spec, ps.Graph):
        return {prefix[:-1] or spec.out_keys[0]: spec}
    found: dict[str, ps.Block] = {}
    for name, block in spec.blocks.items():
        found.update(leaf_paths(block, f"{prefix}{name}."))
    return found


def kinds_in(spec: ps.Block) -> set[type[ps.Block]]:
    kinds: set[type[ps.Block]] = {type(spec)}
    if isinstance(spec, ps.Graph):
        for block in spec.blocks.values():
            kinds |= kinds_in(block)
    if isinstance(spec, ps.Ensemble):
        kinds |= kinds_in(spec.spec)
    return kinds


def replace_leaf(spec: ps.Block, path: str, new: ps.Block, root: bool = True) -> ps.Block:
    """`spec` with the leaf at `path` (as `leaf_paths` names it) replaced (the graphs and ensembles around it are
    rebuilt, so they validate again)."""
    if isinstance(spec, ps.Ensemble):
        inside = path.partition(".")[2] if root else path  # (a bare ensemble's own path is its first out key)
        return ps.Ensemble(replace_leaf(spec.spec, inside, new, root=False), spec.size, init=spec.init)
    if not isinstance(spec, ps.Graph):
        return new
    head, _, rest = path.partition(".")
    blocks = dict(spec.blocks)
    blocks[head] = replace_leaf(blocks[head], rest, new, root=False) if rest else new
    return ps.Graph(blocks, spec.out_keys, init=spec.init)


# --- run-time inputs --------------------------------------------------------------------------------------------------

def random_inputs(in_shapes: Mapping[str, Shape], roles: Mapping[str, str], batch: Shape, seed: int,
                  float_masks: bool = False) -> dict[str, torch.Tensor]:
    """Standard-normal features; masks fully random (rows with no True included), bool or 0/1 floats; indices
    (int64) below INDEX_BOUND; numbers uint8 pixels."""
    generator = torch.Generator().manual_seed(seed)
    inputs = {}
    for key, shape in in_shapes.items():
        if roles[key] == MASK:
            mask = torch.rand((*batch, *shape), generator=generator) > 0.5
            inputs[key] = mask.float() if float_masks else mask
        elif roles[key] == INDEX:
            inputs[key] = torch.randint(0, INDEX_BOUND, (*batch, *shape), generator=generator)
        elif roles[key] == NUMBER:
            inputs[key] = torch.randint(0, 256, (*batch, *shape), generator=generator, dtype=torch.uint8)
        else:
            inputs[key] = torch.randn((*batch, *shape), generator=generator)
    return inputs


def batches() -> st.SearchStrategy[tuple[Shape, ...]]:
    """Leading batch dims for 0, 1 and 2 extra dims (sizes 1 to 3: size-1 dims catch squeeze bugs)."""
    size = st.integers(1, 3)
    return st.tuples(st.just(()), st.tuples(size), st.tuples(size, size))


# --- invalid values -----------------------------------------------------------------------------------------------

class Opaque:
    """A value of no type any field accepts."""

    def __repr__(self) -> str:
        return "Opaque()"


#: values of the wrong type for a field, by the field's annotation as `type_name` writes it; every list also gets
#: the values in `WRONG_FOR_ALL`
WRONG_FOR_ALL: tuple[object, ...] = (Opaque(), [Opaque()], {"k": Opaque()}, 1 + 2j)
WRONG_TYPE_VALUES: dict[str, tuple[object, ...]] = {
    "int": ("3", 2.5, None, [3], True),
    "float": ("0.5", None, [0.5], True),
    "bool": (1, "yes", None, 0.0),
    "str": (3, None, ["relu"], b"relu"),
    "Sequence[str]": (None, 3, [3], [None], b"x", ["a", 3]),
    "Sequence[int]": ("12", b"12", [1.5], [True], 7, [None]),
    "Sequence[float]": ("0.5", [None], ["0.5"], 0.5, [True]),
    "Initializer | None": ("normc", ps.ConstantBias(0.0), 1.0),
    "Block": ("dense", None, ps.NormC(1.0), 3),
    "Bias | None": ("log", ps.NormC(1.0), 0.5),
    "float | None": ("0.1", [0.1], True),
    "int | None": ("3", 2.5, [3], True),
    "int | Sequence[int]": ("3", 2.5, [2.5], [True], True, b"12"),
    "float | Sequence[float]": ("0.5", ["0.5"], [True], True),
    "bool | Sequence[bool]": (1, "yes", [1], [None]),
    "int | Sequence[int] | None": ("3", 2.5, [2.5], [True], True),
    "Sequence[Sequence[int]] | None": ("3", [2.5], [[2.5]], [[True]], [["a"]]),
    "Sequence[int | Sequence[int]]": ("3", [2.5], [[2.5]], [True], [None]),
    "Sequence[int | Sequence[int]] | None": ("3", [2.5], [[2.5]], [True], [None]),
    "Mapping[str, object]": ([("a", 1)], "a=1", {1: 2}),
    "Mapping[str, Block]": ([("a", 1)], {"a": 1}),
}

#: fields that must be positive ints (or hold only positive ints), by block kind
POSITIVE_FIELDS: dict[type[ps.Block], tuple[str, ...]] = {
    ps.Dense: ("hidden_units",), ps.LinearOutput: ("output_units",), ps.Flatten: ("num_flatten_dims",),
    ps.Ensemble: ("size",),
    ps.FlattenDense: ("num_flatten_dims", "hidden_units"), ps.VGGConv: ("hidden_channels",),
    ps.VGGConvDense: ("hidden_channels", "hidden_units"), ps.VGGConvGAP: ("hidden_channels",),
    ps.StridedConv: ("hidden_channels", "hidden_kernels", "hidden_strides", "hidden_dilations"),
    ps.StridedConvDense: ("hidden_channels", "hidden_kernels", "hidden_strides", "hidden_dilations",
                          "hidden_units"),
    ps.LSTM: ("hidden_size", "num_layers"), ps.LSTMLastStep: ("hidden_size", "num_layers"),
    ps.GRU: ("hidden_size", "num_layers"), ps.GRULastStep: ("hidden_size", "num_layers"),
    ps.StatefulLSTM: ("hidden_size", "num_layers"), ps.StatefulGRU: ("hidden_size", "num_layers"),
    ps.SelfAttentionSeq: ("num_heads",), ps.MultiHeadAttention: ("num_heads", "kdim", "vdim"),
    ps.SelfAttentionConv: ("embed_dim",), ps.GraphConv: ("hidden_features",),
    ps.GraphAttention: ("hidden_features", "n_heads"), ps.ActionMasking: ("num_actors", "num_of_actor_actions"),
    ps.TorchModel: ("out_shapes",), ps.LayerNorm: ("num_normalized_dims",), ps.OneHot: ("num_classes",),
    ps.Embedding: ("num_embeddings", "embedding_dim"),
}


def with_non_positive(value: object, bad: int) -> object:
    """`value` (an int, a sequence of ints or of int tuples, or None) with one int replaced by `bad`."""
    if value is None or isinstance(value, int):
        return bad
    assert isinstance(value, tuple)
    if value and isinstance(value[0], tuple):
        return [list(value[0][:-1]) + [bad], *value[1:]] if value[0] else [[bad], *value[1:]]
    return [*value[:-1], bad] if value else [bad]


def all_field_values(value: object) -> list[object]:
    """`value` and everything inside it (tuples, mappings, descriptors): for immutability checks."""
    found = [value]
    if isinstance(value, tuple):
        for item in value:
            found += all_field_values(item)
    elif isinstance(value, Mapping):
        for k, item in value.items():
            found += all_field_values(k) + all_field_values(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            found += all_field_values(getattr(value, f.name))
    return found


def finite(x: torch.Tensor) -> bool:
    return bool(torch.isfinite(x).all()) if x.is_floating_point() else True


def numel(shape: Shape) -> int:
    return math.prod(shape)
