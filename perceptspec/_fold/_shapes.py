"""The shape fold: input shapes -> the shape of every key, without creating a tensor."""

from __future__ import annotations

import dataclasses
import functools
import operator
import types
from collections.abc import Mapping, Sequence

from perceptspec._errors import ShapeError
from perceptspec._fold import rules as _rules  # noqa: F401  (registers every kind's rules)
from perceptspec._fold._program import Eqn, Program, lower
from perceptspec._core import Shape
from perceptspec._fold._rules import Mismatch, shape_rules
from perceptspec._spec import Block, Ensemble

ShapeItems = tuple[tuple[str, Shape], ...]


@dataclasses.dataclass(frozen=True)
class Trace:
    """A program with the shapes of all its variables: what every other fold and the interpreter start from."""

    program: Program
    shapes: Mapping[str, Shape]

    def ins(self, eqn: Eqn) -> tuple[Shape, ...]:
        return tuple(self.shapes[v] for v in eqn.ins)

    def outs(self, eqn: Eqn) -> tuple[Shape, ...]:
        return tuple(self.shapes[v] for v in eqn.outs)

    @property
    def in_shapes(self) -> dict[str, Shape]:
        return {k: self.shapes[k] for k in self.program.inputs}


def infer_shapes(spec: Block, in_shapes: Mapping[str, Sequence[int]]) -> dict[str, Shape]:
    """The shape of every key of `spec`, inputs included, from the spec alone (no tensor is created).

    Arguments:
        spec: a block or a Graph.
        in_shapes: the shape of each input key, without batch dims (Maze's convention): `{"obs": (4,)}`.

    Returns:
        {key: shape} for the inputs and every block output; keys inside nested graphs read 'graph.key'.

    Raises:
        ShapeError: a block cannot take its input shape (names the block, its kind, the key, expected and got),
            or `in_shapes` lacks an input or has one the spec does not read.

    Examples:
        >>> block = ps.Dense(in_keys="obs", out_keys="h", hidden_units=[16, 32])
        >>> ps.infer_shapes(block, {"obs": (4,)})
        {'obs': (4,), 'h': (32,)}
    """
    return dict(trace(spec, in_shapes).shapes)


def trace(spec: Block, in_shapes: Mapping[str, Sequence[int]]) -> Trace:
    """Lower `spec` and run every shape rule once (memoised: specs and shapes are values)."""
    program = lower(spec)
    return _trace(spec, _checked_in_shapes(program, in_shapes))


@functools.lru_cache(maxsize=256)
def _trace(spec: Block, in_shapes: ShapeItems) -> Trace:
    program = lower(spec)
    env: dict[str, Shape] = dict(in_shapes)
    lookup = shape_rules.lookup
    for eqn in program.eqns:
        block = eqn.block
        try:
            outs = lookup(type(block))(block, tuple([env[v] for v in eqn.ins]))
        except Mismatch as m:
            key = eqn.ins[m.index] if m.index is not None else None
            raise ShapeError(str(m), block=eqn.path, block_type=eqn.kind, key=key) from None
        except ShapeError as e:  # from the members of a combinator (Ensemble): the path goes on inside the block
            raise ShapeError(e.detail, block=f"{eqn.path}.{e.block}", block_type=e.block_type, key=e.key) from None
        if len(eqn.outs) == 1:  # the common case, without building a zip
            env[eqn.outs[0]] = outs[0]
        else:
            env.update(zip(eqn.outs, outs))
    return Trace(program, types.MappingProxyType(env))


def _checked_in_shapes(program: Program, in_shapes: Mapping[str, Sequence[int]]) -> ShapeItems:
    """`in_shapes` as a hashable value, after checking it names exactly the spec's inputs with valid shapes."""
    if type(in_shapes) is dict and len(in_shapes) == len(program.inputs):  # the common case, fast
        try:
            items = tuple([(key, in_shapes[key]) for key in program.inputs])
        except KeyError:
            pass  # a key is missing: said below
        else:
            if all([_is_shape(shape) for _, shape in items]):
                return items
    if not isinstance(in_shapes, Mapping):
        raise ShapeError(f"in_shapes: expected a mapping from input key to shape, got {in_shapes!r}")
    expected = list(program.inputs)
    for key in expected:
        if key not in in_shapes:
            raise ShapeError(f"in_shapes has no shape for this input (spec inputs: {expected}, "
                             f"given: {list(in_shapes)})", key=key, **_reader(program, key))
    for key in in_shapes:
        if key not in program.inputs:
            raise ShapeError(f"in_shapes names a key the spec does not read (spec inputs: {expected})", key=key)
    return tuple((key, _checked_shape(program, key, in_shapes[key])) for key in expected)


def _reader(program: Program, key: str) -> dict[str, str]:
    """The first block reading input `key`, to name in errors about its shape (inside an ensemble's member, by its
    path through the ensemble, as shape errors there name blocks)."""
    eqn = next(e for e in program.eqns if key in e.ins)
    if isinstance(eqn.block, Ensemble):
        inner = _reader(lower(eqn.block.spec), eqn.block.in_keys[eqn.ins.index(key)])
        return {"block": f"{eqn.path}.{inner['block']}", "block_type": inner["block_type"]}
    return {"block": eqn.path, "block_type": eqn.kind}


def _is_shape(shape: object) -> bool:
    """Whether `shape` is a well-formed shape as it stands: a tuple of positive ints."""
    return type(shape) is tuple and all([type(d) is int and d > 0 for d in shape])


def _checked_shape(program: Program, key: str, shape: object) -> Shape:
    if _is_shape(shape):  # the common case, fast
        return shape  # type: ignore[return-value]  # a tuple of ints: `_is_shape` says so
    problem = f"expected a shape (a tuple of positive ints, without the batch dim), got {shape!r}"
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise ShapeError(problem, key=key, **_reader(program, key))
    try:
        dims = tuple(operator.index(d) for d in shape if not isinstance(d, bool))
    except TypeError:
        raise ShapeError(problem, key=key, **_reader(program, key)) from None
    if len(dims) != len(shape) or any(d <= 0 for d in dims):
        raise ShapeError(problem, key=key, **_reader(program, key))
    return dims
