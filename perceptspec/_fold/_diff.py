"""`diff`: what changed between two specs, block by block.

Blocks are matched by path: a Graph's blocks by name ('latent.conv'), an Ensemble's member at '<ensemble>.spec',
the root at ''. A path in one spec only is an added or removed block (its blocks inside are not listed again), a path
whose kind changed is a replaced block; otherwise every field that differs is listed, old -> new, as rewired when it
is `in_keys` or `out_keys`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Literal

from perceptspec._errors import SpecError
from perceptspec._spec import Block, Ensemble, Graph
from perceptspec._spec._descriptor import as_code

ChangeKind = Literal["added", "removed", "replaced", "changed", "rewired"]
_SIGN = {"added": "+", "removed": "-", "replaced": "~", "changed": "~", "rewired": "~"}


@dataclasses.dataclass(frozen=True)
class Change:
    """One difference: at block `path` ('' is the root), what happened; for a field, its name, old and new value
    (for a block added, removed or replaced, `old` / `new` are the blocks)."""

    path: str
    kind: ChangeKind
    field: str | None = None
    old: object = None
    new: object = None

    def __str__(self) -> str:
        where = self.path or "(root)"
        if self.kind == "added":
            return f"+ {where}: added {_short(self.new)}"
        if self.kind == "removed":
            return f"- {where}: removed {_short(self.old)}"
        if self.kind == "replaced":
            return f"~ {where}: replaced {_short(self.old)} by {_short(self.new)}"
        verb = "rewired" if self.kind == "rewired" else "changed"
        return f"{_SIGN[self.kind]} {where}: {self.field} {verb} {as_code(self.old)} -> {as_code(self.new)}"


@dataclasses.dataclass(frozen=True)
class SpecDiff:
    """The changes from one spec to another: removed blocks (in the old spec's block order), then added, replaced and
    changed ones (in the new spec's); falsy when the specs are equal."""

    changes: tuple[Change, ...]

    def __bool__(self) -> bool:
        return bool(self.changes)

    def __iter__(self) -> Iterator[Change]:
        return iter(self.changes)

    def __str__(self) -> str:
        return "\n".join(map(str, self.changes)) if self.changes else "no differences"


def diff(a: Block, b: Block) -> SpecDiff:
    """What changed from spec `a` to spec `b`, by block path (see the module docstring)."""
    for name, spec in (("a", a), ("b", b)):
        if not isinstance(spec, Block):
            raise SpecError("diff", [f"{name}: expected a block or a Graph, got {type(spec).__qualname__}"])
    old, new = dict(_blocks(a)), dict(_blocks(b))
    # paths whose blocks inside are covered by the change of the path itself
    gone = {p for p, block in new.items() if p not in old or type(old[p]) is not type(block)}
    gone |= {p for p in old if p not in new}
    changes: list[Change] = []
    for path, block in old.items():
        if path not in new and not _inside(path, gone):
            changes.append(Change(path, "removed", old=block))
    for path, block in new.items():
        if _inside(path, gone):
            continue
        if path not in old:
            changes.append(Change(path, "added", new=block))
        elif type(old[path]) is not type(block):
            changes.append(Change(path, "replaced", old=old[path], new=block))
        else:
            changes += _field_changes(path, old[path], block)
    return SpecDiff(tuple(changes))


def _blocks(spec: Block) -> Iterator[tuple[str, Block]]:
    """Every block by path, each before the blocks inside it (an explicit stack: any nesting depth)."""
    stack: list[tuple[str, Block]] = [("", spec)]
    while stack:
        path, block = stack.pop()
        yield path, block
        prefix = f"{path}." if path else ""
        if isinstance(block, Graph):
            stack.extend((f"{prefix}{name}", inner) for name, inner in reversed(block.blocks_in_order))
        elif isinstance(block, Ensemble):
            stack.append((f"{prefix}spec", block.spec))


def _field_changes(path: str, old: Block, new: Block) -> Iterator[Change]:
    for f in dataclasses.fields(old):
        if not f.init or (f.name == "blocks" and isinstance(old, Graph)) or (f.name == "spec" and
                                                                            isinstance(old, Ensemble)):
            continue  # what a Graph or an Ensemble holds is compared block by block
        before, after = getattr(old, f.name), getattr(new, f.name)
        if before != after:
            yield Change(path, "rewired" if f.name in ("in_keys", "out_keys") else "changed", f.name, before, after)


def _inside(path: str, paths: set[str]) -> bool:
    """Whether `path` lies inside (not at) one of `paths`."""
    if not path:
        return False
    parts = path.split(".")
    return "" in paths or any(".".join(parts[:n]) in paths for n in range(1, len(parts)))


def _short(block: object) -> str:
    """A block as one short line: its kind and keys."""
    if isinstance(block, Block):
        return f"{type(block).__name__} {list(block.in_keys)} -> {list(block.out_keys)}"
    return repr(block)
