"""Functional edits of specs: new specs from old ones, never a mutation (updates go through the constructors)."""

from __future__ import annotations

from collections.abc import Callable

from perceptspec._spec import Block, Graph

BlockEdit = Callable[[str, Block], Block]


def map_blocks(spec: Block, edit: BlockEdit) -> Block:
    """`spec` with `edit(path, block)` applied to every leaf block (paths as in errors: 'latent.dense')."""
    return _map(spec, edit, "")


def _map(spec: Block, edit: BlockEdit, prefix: str) -> Block:
    if isinstance(spec, Graph):
        blocks = {name: _map(block, edit, f"{prefix}{name}.") for name, block in spec.blocks.items()}
        return Graph(blocks, spec.out_keys, init=spec.init)
    return edit(prefix[:-1] or spec.out_keys[0], spec)


def producer_of(spec: Block, key: str) -> Block | None:
    """The leaf block that produces `key` (following nested graphs that export it), or None."""
    if not isinstance(spec, Graph):
        return spec if key in spec.out_keys else None
    for block in spec.blocks.values():
        if key in block.out_keys:
            return producer_of(block, key)
    return None


def replace_producer(spec: Block, key: str, replacement: Block) -> Block:
    """`spec` with the leaf block producing `key` replaced by `replacement`."""
    target = producer_of(spec, key)
    return map_blocks(spec, lambda path, block: replacement if block is target else block)

