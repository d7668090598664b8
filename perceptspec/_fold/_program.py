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

from perceptspec._spec import Block, Graph, Initializer, TorchDefault


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


def input_roles(program: Program) -> dict[str, str]:
    """The role of every program input ('features' or 'mask'): 'mask' only when every reader takes it as one."""
    roles = {k: "mask" for k in program.inputs}
    for eqn in program.eqns:
        for var, role in zip(eqn.ins, eqn.block.input_roles()):
            if var in roles and role != "mask":
                roles[var] = role
    return roles


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
