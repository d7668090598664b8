"""Build rules of the encoding blocks: OneHot, Embedding and ToFloat.

Their outputs take the module's float dtype from a non-persistent buffer (`.to()`, `.double()` and `.half()` convert
it with the parameters), so a module of these blocks alone follows its conversions too.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from perceptspec._core import Shape
from perceptspec._spec import Embedding, Initializer, OneHot, ToFloat, TorchDefault
from perceptspec._torch._call import call, param
from perceptspec._torch._init import initialise
from perceptspec._torch._tables import torch_builders


def _offsets(counts: tuple[int, ...]) -> torch.Tensor:
    """Where each entry's classes start in the concatenation: [0, n1, n1 + n2, ...]."""
    return torch.tensor([0, *itertools.accumulate(counts)][:-1], dtype=torch.long)


class _OneHot(nn.Module):
    """One-hot vectors of `classes` floats; per-entry counts shift each entry's index by its offset and add up
    the entries' one-hot vectors (their ranges do not overlap), which concatenates them."""

    unit: torch.Tensor
    offsets: torch.Tensor | None

    def __init__(self, counts: int | tuple[int, ...]) -> None:
        super().__init__()
        self.classes = counts if isinstance(counts, int) else sum(counts)
        self.register_buffer("unit", torch.ones(()), persistent=False)  # the output dtype
        self.register_buffer("offsets", None if isinstance(counts, int) else _offsets(counts), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.offsets is None:
            return F.one_hot(x.long(), self.classes).to(self.unit.dtype)
        return F.one_hot(x.long() + self.offsets, self.classes).sum(-2).to(self.unit.dtype)

    def extra_repr(self) -> str:
        return f"classes={self.classes}"


@torch_builders.register(OneHot)
def _one_hot_build_rule(block: OneHot, ins: tuple[Shape, ...], init: Initializer,
                        generator: torch.Generator | None) -> nn.Module:
    return _OneHot(block.index_limits())


class _Embedding(nn.Module):
    """An `nn.Embedding` table (reached through `call`, so hooks and parametrizations on it are honoured); per-entry
    counts shift each entry's index to its own rows."""

    offsets: torch.Tensor | None

    def __init__(self, table: nn.Embedding, counts: int | tuple[int, ...]) -> None:
        super().__init__()
        self.table = table
        self.register_buffer("offsets", None if isinstance(counts, int) else _offsets(counts), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = x.long() if self.offsets is None else x.long() + self.offsets
        out: torch.Tensor = call(self.table, index)
        return out


@torch_builders.register(Embedding)
def _embedding_build_rule(block: Embedding, ins: tuple[Shape, ...], init: Initializer,
                          generator: torch.Generator | None) -> nn.Module:
    counts = block.index_limits()
    rows = counts if isinstance(counts, int) else sum(counts)
    table = nn.Embedding(rows, block.embedding_dim, device="meta")
    table.to_empty(device="cpu")  # skip nn.Embedding's own draw: ours uses our generator
    with torch.no_grad():
        if isinstance(init, TorchDefault):
            torch.nn.init.normal_(param(table, "weight"), generator=generator)  # nn.Embedding's N(0, 1)
        else:  # as the weight (out, in) of a Linear layer reading the one-hot vectors
            weight = torch.empty(block.embedding_dim, rows)
            initialise(init, weight, None, generator)
            param(table, "weight").copy_(weight.T)
    return _Embedding(table, counts)


class _ToFloat(nn.Module):
    scale: torch.Tensor

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(scale), persistent=False)  # its dtype is the output's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale
        return x.to(scale.dtype) * scale

    def extra_repr(self) -> str:
        return f"scale={self.scale.item():g}"


@torch_builders.register(ToFloat)
def _to_float_build_rule(block: ToFloat, ins: tuple[Shape, ...], init: Initializer,
                         generator: torch.Generator | None) -> nn.Module:
    return _ToFloat(block.scale)
