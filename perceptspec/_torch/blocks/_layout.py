"""Build rules of the layout blocks: Permute and Reshape. Each module acts on the trailing feature dims, so any
number of leading batch dims passes through."""

from __future__ import annotations

import torch
from torch import nn

from perceptspec._core import Shape
from perceptspec._fold.rules._layout import permutation, target_shape
from perceptspec._spec import Initializer, Permute, Reshape
from perceptspec._torch._tables import torch_builders


class _Permute(nn.Module):
    def __init__(self, source: tuple[int, ...]) -> None:
        super().__init__()
        self.source = source  # negative: output dim -r + i is input dim source[i]
        self.destination = tuple(range(-len(source), 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.movedim(x, self.source, self.destination)

    def extra_repr(self) -> str:
        return f"source={self.source}"


@torch_builders.register(Permute)
def _permute_build_rule(block: Permute, ins: tuple[Shape, ...], init: Initializer,
                        generator: torch.Generator | None) -> nn.Module:
    x = ins[0]
    return _Permute(tuple(k - len(x) for k in permutation(block, x)))


class _Reshape(nn.Module):
    def __init__(self, rank: int, shape: Shape) -> None:
        super().__init__()
        self.rank, self.shape = rank, shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(*x.shape[:x.dim() - self.rank], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


@torch_builders.register(Reshape)
def _reshape_build_rule(block: Reshape, ins: tuple[Shape, ...], init: Initializer,
                        generator: torch.Generator | None) -> nn.Module:
    return _Reshape(len(ins[0]), target_shape(block, ins[0]))
