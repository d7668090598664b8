"""`Ensemble`: K independently initialised copies of one spec, run as one batched block.

The layout: every output of an ensemble of `size` K gets a K dim right after the batch dims, so a key of feature
shape `s` becomes `(K, *s)` and a call with batch dims `(*b)` returns `(*b, K, *s)`. The member dim is a feature
dim like any other (shapes never include batch dims, and every block works on trailing dims), so ensembles nest
(`Ensemble(Ensemble(s, 3), 5)` gives `(5, 3, *s)`) and later blocks can read them. TorchRL's `EnsembleModule` puts
the member dim first (`[K, *b, *s]`); `out.movedim(-1 - len(s), 0)` gives that layout.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

from perceptspec._spec._block import Block
from perceptspec._spec._graph import nesting
from perceptspec._spec._init import Initializer

__all__ = ["Ensemble"]


@dataclasses.dataclass(frozen=True, init=False, repr=False)
class Ensemble(Block):
    """`size` members, each the block (or Graph) `spec` with its own weights, seeded independently.

    It reads `spec`'s in keys (every member gets the same inputs) and writes `spec`'s out keys, each with a member dim
    of `size` after the batch dims (see the module docstring). `init` is the default initialiser of the blocks inside
    that set none, as a Graph's is. Parameters count `size` times.

    Examples:
        >>> critic = ps.Dense(in_keys="obs", out_keys="q", hidden_units=[16, 1])
        >>> ps.infer_shapes(ps.Ensemble(critic, size=10), {"obs": (4,)})["q"]
        (10, 1)
    """

    n_inputs = None
    n_outputs = None

    spec: Block
    size: int
    in_keys: Sequence[str] = dataclasses.field(init=False)
    out_keys: Sequence[str] = dataclasses.field(init=False)

    def __init__(self, spec: Block, size: int, *, init: Initializer | None = None) -> None:
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "init", init)
        given: object = spec  # checked by __post_init__: callers may be untyped
        keys = (tuple(spec.in_keys), tuple(spec.out_keys)) if isinstance(given, Block) else ((), ())
        object.__setattr__(self, "in_keys", keys[0])
        object.__setattr__(self, "out_keys", keys[1])
        object.__setattr__(self, "nesting", nesting(spec) + 1)
        self.__post_init__()

    def _value_problems(self) -> Iterator[str]:
        if self.size < 1:
            yield f"field 'size': expected at least 1 member, got {self.size}"

    def input_roles(self) -> tuple[str, ...]:
        """The roles the member spec gives its inputs (a mask stays a mask)."""
        from perceptspec._fold._program import input_roles, lower  # the fold layer imports this one

        roles = input_roles(lower(self.spec))
        return tuple(roles[k] for k in self.in_keys)

    def _repr_args(self) -> list[tuple[str, object]]:
        return [("", self.spec), ("size", self.size), *([("init", self.init)] if self.init is not None else [])]
