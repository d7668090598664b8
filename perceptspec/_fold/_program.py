"""Lowering: a spec (a block or nested Graphs) becomes a flat program of equations, like a jaxpr.

Every fold (shapes, parameters, summary, rendering) and the torch interpreter loop over this one flat form, so
none of them needs to know how graphs nest. Nested graphs are inlined: their private keys get the path of the
graph as a prefix ("latent.hidden"), their inputs and outputs bind to the keys of the enclosing graph.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Mapping
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
        env = {k: k for k in spec.in_keys}
        _inline(spec, "", env, DEFAULT_INIT, eqns, {})
        return Program(spec, tuple(spec.in_keys), tuple(eqns), tuple(env[k] for k in spec.out_keys))
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


def _inline(graph: Graph, prefix: str, env: dict[str, str], default_init: Initializer, eqns: list[Eqn],
            exports: Mapping[str, str]) -> None:
    """Append the equations of `graph`. `env` maps the graph's keys to program variables (it starts with the
    inputs and grows); `exports` names the variables of the graph's out keys in the enclosing scope. Nested graphs
    are entered with an explicit stack (a scope per graph), so any nesting depth lowers."""
    scopes = [_Scope(iter(graph.blocks_in_order), prefix, env, _own(graph.init, default_init), exports)]
    while scopes:
        scope = scopes[-1]
        step = next(scope.blocks, None)
        if step is None:
            scopes.pop()
            continue
        name, block = step
        path = f"{scope.prefix}{name}"
        ins = tuple(scope.env[k] for k in block.in_keys)
        outs = tuple(scope.exports.get(k, f"{scope.prefix}{k}") for k in block.out_keys)
        scope.env.update(zip(block.out_keys, outs))
        if isinstance(block, Graph):
            scopes.append(_Scope(iter(block.blocks_in_order), f"{path}.", dict(zip(block.in_keys, ins)),
                                 _own(block.init, scope.init), dict(zip(block.out_keys, outs))))
        else:
            eqns.append(Eqn(path, block, ins, outs, _own(block.init, scope.init)))


class _Scope(NamedTuple):
    """A graph being inlined: its blocks still to go, its path prefix, its keys' variables, its default
    initialiser and the variables its out keys export."""

    blocks: Iterator[tuple[str, Block]]
    prefix: str
    env: dict[str, str]
    init: Initializer
    exports: Mapping[str, str]


def _own(init: Initializer | None, inherited: Initializer) -> Initializer:
    return init if init is not None else inherited
