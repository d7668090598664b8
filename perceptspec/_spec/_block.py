"""The block base class: a node of a spec that reads `in_keys` and writes `out_keys`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import ClassVar

from perceptspec._spec._descriptor import Descriptor, descriptor
from perceptspec._spec._init import Initializer

__all__ = ["Block"]


@descriptor
class Block(Descriptor):
    """Base of every block descriptor (and of `Graph`).

    `in_keys` / `out_keys` name the tensors the block reads and writes; a single `str` is accepted. `init` is the
    weight initialiser; `None` inherits the enclosing Graph's (and finally PyTorch's default).

    Examples:
        >>> isinstance(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[8]), ps.Block)
        True
    """

    _abstract: ClassVar[bool] = True
    #: how many inputs / outputs the kind takes; None means "one or more"
    n_inputs: ClassVar[int | None] = 1
    n_outputs: ClassVar[int | None] = 1

    in_keys: Sequence[str]
    """Keys of the tensors the block reads (one str is accepted); Maze's `in_keys`."""
    out_keys: Sequence[str]
    """Keys of the tensors the block writes (one str is accepted); Maze's `out_keys`."""
    init: Initializer | None = None
    """Initialiser of the block's weights (`NormC`, `Orthogonal`, ...); None inherits the enclosing Graph's,
    and finally PyTorch's default. Maze sets it per model, after building (`apply(make_module_init_normc)`)."""

    def input_roles(self) -> tuple[str, ...]:
        """What each input is: 'features' (floats of the parameters' dtype) or 'mask' (bool, or 0/1 floats).

        The run-time signature check accepts each graph input by the role of the block that reads it.
        """
        return ("features",) * len(self.in_keys)

    def _value_problems(self) -> Iterator[str]:
        for field, keys, count in (("in_keys", self.in_keys, self.n_inputs),
                                   ("out_keys", self.out_keys, self.n_outputs)):
            if count is not None and len(keys) != count:
                yield f"field '{field}': {type(self).__name__} takes {count} key(s), got {list(keys)}"
            elif not keys:
                yield f"field '{field}': expected at least one key, got []"
            for key in keys:
                if problem := key_problem(key):
                    yield f"field '{field}': {problem}"
            if len(set(keys)) != len(keys):
                yield f"field '{field}': keys repeat in {list(keys)}"

    def _where(self) -> str:
        out_keys = self.__dict__.get("out_keys")
        if isinstance(out_keys, tuple) and out_keys and all(isinstance(k, str) for k in out_keys):
            shown = repr(out_keys[0]) if len(out_keys) == 1 else repr(list(out_keys))
            return f"{type(self).__name__}(out_keys={shown})"
        return type(self).__name__


def key_problem(key: str) -> str | None:
    """Why `key` cannot name a tensor ('.' is reserved for the paths of nested graphs), or None."""
    if not key:
        return "a key must be a non-empty string"
    if "." in key:
        return f"key '{key}' contains '.', which separates the levels of nested graphs"
    if any("\ud800" <= c <= "\udfff" for c in key):
        return f"key {key!r} contains a lone surrogate, which no file or YAML can hold (it is not UTF-8)"
    return None
