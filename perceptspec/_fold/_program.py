"""Lowering: a spec (a block or nested Graphs) becomes a flat program of equations, like a jaxpr.

Every fold (shapes, parameters, summary, rendering) and the torch interpreter loop over this one flat form, so
none of them needs to know how graphs nest. Nested graphs are inlined: their private keys get the path of the
graph as a prefix ("latent.hidden"), their inputs and outputs bind to the keys of the enclosing graph.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from typing import NamedTuple

from perceptspec._errors import SpecError
from perceptspec._spec import Block, Ensemble, Graph, Initializer, TorchDefault
from perceptspec._spec._encoding import IndexBlock


class Eqn(NamedTuple):
    """One leaf block applied: `outs = block(*ins)`. `path` names it ("latent.screen_conv") in errors and modules.

    A NamedTuple rather than a frozen dataclass: lowering makes one per block, and that is four times faster."""

    path: str
    block: Block
    ins: tuple[str, ...]
    outs: tuple[str, ...]
    init: Initializer

    @property
    def kind(self) -> str:
        return type(self.block).__name__


#: `Eqn(*fields)` without the NamedTuple's Python-level `__new__` (lowering makes one per block)
_new_eqn = functools.partial(tuple.__new__, Eqn)


@dataclasses.dataclass(frozen=True)
class Program:
    """A spec flattened: the input keys, the equations in a valid evaluation order, the output keys."""

    spec: Block
    inputs: tuple[str, ...]
    eqns: tuple[Eqn, ...]
    outputs: tuple[str, ...]


#: what a block without an initialiser (its own or a graph's) gets
DEFAULT_INIT = TorchDefault()


@functools.lru_cache(maxsize=256)
def lower(spec: Block) -> Program:
    """Flatten `spec` into a Program. A bare block becomes a one-equation program named after its first out key."""
    eqns: list[Eqn] = []
    if isinstance(spec, Graph):
        _inline(spec, eqns)  # top-level keys are their own variables
        return Program(spec, tuple(spec.in_keys), tuple(eqns), tuple(spec.out_keys))
    init = spec.init if spec.init is not None else DEFAULT_INIT
    eqns.append(Eqn(spec.out_keys[0], spec, tuple(spec.in_keys), tuple(spec.out_keys), init))
    return Program(spec, tuple(spec.in_keys), tuple(eqns), tuple(spec.out_keys))


#: what each input role accepts, in words (errors); roles come from `Block.input_roles`
ROLE_TEXT = {"features": "float features", "mask": "a mask", "index": "integer indices", "number": "numbers"}
#: the role of an input two readers take in two roles: the dtypes both accept (missing: none)
_MERGED_ROLES = {frozenset(("features", "mask")): "features", frozenset(("features", "number")): "features",
                 frozenset(("mask", "number")): "mask", frozenset(("index", "number")): "index"}


def input_roles(program: Program) -> dict[str, str]:
    """The role of every program input: 'features' (floats of the parameters' dtype), 'mask' (bool too), 'index'
    (integers) or 'number' (any real dtype). An input several blocks read must suit all of them: read as a mask by
    one and as features by another, it is features; as indices by one and as features by another, it is a
    `SpecError` (no tensor is both). An input no block reads (an output as it is) is a mask: bool or floats."""
    roles: dict[str, tuple[str, str]] = {}  # role, the first reader
    inputs = set(program.inputs)
    for eqn in program.eqns:
        for var, role in zip(eqn.ins, eqn.block.input_roles()):
            if var not in inputs:
                continue
            if var not in roles:
                roles[var] = (role, f"block '{eqn.path}' ({eqn.kind})")
                continue
            first, reader = roles[var]
            merged = first if first == role else _MERGED_ROLES.get(frozenset((first, role)))
            if merged is None:
                raise SpecError(f"input '{var}'", [
                    f"{reader} reads it as {ROLE_TEXT[first]} and block '{eqn.path}' ({eqn.kind}) as "
                    f"{ROLE_TEXT[role]}: no tensor is both; convert it once (e.g. with OneHot or ToFloat) and let "
                    f"both read the result"])
            roles[var] = (merged, reader)
    return {k: roles[k][0] if k in roles else "mask" for k in program.inputs}


def index_limits(program: Program) -> dict[str, tuple[int | tuple[int, ...], ...]]:
    """The bounds of each index input (`OneHot`, `Embedding`): one per block reading it, each an exclusive upper
    bound for all its indices or a tuple of one per entry of its last dim."""
    inputs = set(program.inputs)
    limits: dict[str, tuple[int | tuple[int, ...], ...]] = {}
    for eqn in program.eqns:
        if isinstance(eqn.block, IndexBlock) and eqn.ins[0] in inputs:
            limits[eqn.ins[0]] = (*limits.get(eqn.ins[0], ()), eqn.block.index_limits())
        if isinstance(eqn.block, Ensemble):  # the index readers inside its member
            for key, bounds in index_limits(lower(eqn.block.spec)).items():
                var = eqn.ins[eqn.block.in_keys.index(key)]
                if var in inputs:
                    limits[var] = (*limits.get(var, ()), *bounds)
    return limits


def _inline(graph: Graph, eqns: list[Eqn]) -> None:
    """Append the equations of the top-level `graph`. Nested graphs are entered with an explicit stack (a scope per
    graph), so any nesting depth lowers.

    Inside a nested graph a key is one of its in keys (bound to the enclosing scope's variable), one of its out keys
    (bound to the exported variable) or private (`prefix + key`): no block produces an in key, so the bindings of
    in and out keys (`_Scope.bound`) name every variable and nothing is looked up per block that the scope did not
    bind. At the top level (no prefix, nothing bound) every key is its own variable."""
    scopes = [_Scope(iter(graph.blocks_in_order), "", {}, _own(graph.init, DEFAULT_INIT))]
    while scopes:
        blocks, prefix, bound, init = scopes[-1]
        for name, block in blocks:
            if prefix:
                ins = tuple([bound.get(k) or prefix + k for k in block.in_keys])
                outs = tuple([bound.get(k) or prefix + k for k in block.out_keys])
            else:
                ins, outs = tuple(block.in_keys), tuple(block.out_keys)  # tuples already: no copy
            own = block.init if block.init is not None else init
            if isinstance(block, Graph):
                bound = dict(zip(block.in_keys, ins))
                bound.update(zip(block.out_keys, outs))
                scopes.append(_Scope(iter(block.blocks_in_order), f"{prefix}{name}.", bound, own))
                break  # the nested graph's blocks come next, then this scope's `blocks` goes on
            eqns.append(_new_eqn((prefix + name, block, ins, outs, own)))
        else:
            scopes.pop()


class _Scope(NamedTuple):
    """A graph being inlined: its blocks still to go, its path prefix, the variables its in and out keys are bound
    to, and its default initialiser."""

    blocks: Iterator[tuple[str, Block]]
    prefix: str
    bound: dict[str, str]
    init: Initializer


def _own(init: Initializer | None, inherited: Initializer) -> Initializer:
    return init if init is not None else inherited
