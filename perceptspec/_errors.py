"""The library's errors: one base class, one subclass per layer that can reject input.

Each error keeps its details in fields (which block, which key, what was expected, what came) and builds its
message from them, so callers can both read the text and inspect the parts.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import NoReturn


class PerceptSpecError(Exception):
    """Base of every error perceptspec raises on bad input: catch it to catch them all.

    Examples:
        >>> issubclass(ps.ShapeError, ps.PerceptSpecError)
        True
    """


class SpecError(PerceptSpecError, ValueError):
    """A spec is invalid: a bad field value or type, or a graph that cannot be wired; raised on construction.

    Fields: `where` (the descriptor, e.g. "Dense(out_keys='h')"), `problems` (one message per problem: every
    problem is collected and raised at once). Also a `ValueError`.

    Examples:
        >>> try:
        ...     ps.Dense(in_keys="obs", out_keys="h", hidden_units=[0])
        ... except ps.SpecError as e:
        ...     print(e.where, "|", e.problems[0])
        Dense(out_keys='h') | field 'hidden_units': expected one or more positive ints, got [0]
    """

    def __init__(self, where: str, problems: Sequence[str]) -> None:
        self.where = where
        self.problems = tuple(problems)
        lines = [f"{where}: {self.problems[0]}"] if len(self.problems) == 1 else [f"{where}:"]
        if len(self.problems) > 1:
            lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class NotAllowedError(SpecError):
    """A spec, config or command line names code outside the allow-list (see `ps.allow`); nothing was imported.

    Fields: those of `SpecError`, and `path` (the import path refused).

    Examples:
        >>> block = ps.TorchModel(in_keys="x", out_keys="y", module_factory="mypkg.nets:Encoder")
        >>> try:
        ...     ps.infer_shapes(block, {"x": (4,)})  # no out_shapes: the factory would be imported
        ... except ps.NotAllowedError as e:
        ...     print(e.path)
        mypkg.nets:Encoder
    """

    def __init__(self, where: str, problems: Sequence[str], *, path: str) -> None:
        self.path = path
        super().__init__(where, problems)


class ShapeError(PerceptSpecError, ValueError):
    """Shapes do not fit: a block received an input shape it cannot take, or `in_shapes` is wrong.

    Fields: `block` (its path in the graph), `block_type`, `key` (the input that does not fit), `detail`.
    Also a `ValueError`.

    Examples:
        >>> try:
        ...     ps.infer_shapes(ps.Slice(in_keys="x", out_keys="y", slice_dim=-2, slice_idx=0), {"x": (4,)})
        ... except ps.ShapeError as e:
        ...     print(e.block, e.key)
        y x
    """

    def __init__(self, message: str, *, block: str | None = None, block_type: str | None = None,
                 key: str | None = None) -> None:
        self.block = block
        self.block_type = block_type
        self.key = key
        self.detail = message
        where = []
        if block is not None:
            where.append(f"block '{block}' ({block_type})" if block_type else f"block '{block}'")
        if key is not None:
            where.append(f"key '{key}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class SignatureError(PerceptSpecError, TypeError):
    """A materialized module was called with inputs that do not match its spec (checked per `check`).

    Fields: `key` (the input, None for the dict as a whole), `expected`, `got`. Also a `TypeError`.

    Examples:
        >>> import torch
        >>> module = ps.materialize(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[8]), {"obs": (4,)})
        >>> try:
        ...     module({"obs": torch.zeros(2, 5)})
        ... except ps.SignatureError as e:
        ...     print(e.key)
        obs
    """

    def __init__(self, key: str | None, expected: str, got: str) -> None:
        self.key = key
        self.expected = expected
        self.got = got
        where = f"input '{key}'" if key is not None else "inputs"
        super().__init__(f"{where}: expected {expected}, got {got}")


class NonFiniteError(PerceptSpecError, FloatingPointError):
    """NaN or inf where `materialize(..., check_finite=True)` wants finite values: in an input (`block` None), in
    what a block computed from finite inputs (`block` is its path), or in an output no block could be blamed for.

    Fields: `key`, `block`, `block_type`, `detail`. Also a `FloatingPointError`.

    Examples:
        >>> import torch
        >>> module = ps.materialize(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[8]), {"obs": (4,)},
        ...                         check_finite=True)
        >>> try:
        ...     module({"obs": torch.full((1, 4), float("nan"))})
        ... except ps.NonFiniteError as e:
        ...     print(e.key, e.block)
        obs None
    """

    def __init__(self, detail: str, *, key: str, block: str | None = None, block_type: str | None = None,
                 output: bool = False) -> None:
        self.block = block
        self.block_type = block_type
        self.key = key
        self.detail = detail
        if block is None:
            where = f"output '{key}'" if output else f"input '{key}'"
        else:
            where = f"block '{block}' ({block_type}), key '{key}'" if block_type else f"block '{block}', key '{key}'"
        super().__init__(f"{where}: {detail}")


def did_you_mean(name: object, options: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the option a misspelt `name` most likely meant (a close spelling, or an option
    containing it: 'hidden' -> 'hidden_units'), or "" when none is close."""
    options = list(options)
    text = str(name)
    close = difflib.get_close_matches(text, options, n=1, cutoff=0.75) or \
        [o for o in options if len(text) >= 3 and text in o]
    return f" (did you mean {close[0]!r}?)" if close else ""


def refuse(where: str, problems: list[str]) -> NoReturn:
    """Raise the `SpecError` of a config or template that cannot be read: one raise site for a family of checks whose
    every message the error catalogue shows."""
    raise SpecError(where, problems)
