"""Small user modules for the TorchModel tests, importable by path ('tests.torch_model_fixtures:Name')."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

#: how many times each factory here was called (the folds must build a module once per block and shapes)
calls: dict[str, int] = {}


def _count(name: str) -> None:
    calls[name] = calls.get(name, 0) + 1


class Mlp(nn.Module):
    """Takes `in_shapes`: one input (..., F) -> (..., hidden[-1]) by Linear layers and tanh."""

    def __init__(self, in_shapes: Mapping[str, Sequence[int]], hidden: Sequence[int] = (8,)) -> None:
        super().__init__()
        _count("Mlp")
        ((_, shape),) = in_shapes.items()
        sizes = [shape[-1], *hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return x


class ConvMlp(nn.Module):
    """Positional (image (C, H, W), vector (F,)) -> (conv features (C2, H, W), a tuple with a mixed vector (units,))."""

    def __init__(self, in_shapes: Mapping[str, Sequence[int]], channels: int = 3, units: int = 5) -> None:
        super().__init__()
        image, vector = in_shapes.values()
        self.conv = nn.Conv2d(image[0], channels, kernel_size=3, padding=1)
        self.mix = nn.Linear(channels + vector[-1], units)

    def forward(self, image: torch.Tensor, vector: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.relu(self.conv(image))
        return features, self.mix(torch.cat([features.mean(dim=(-2, -1)), vector], dim=-1))


class DictHeads(nn.Module):
    """Maze style: a dict in, a dict out (with one key more than the block reads)."""

    def __init__(self, in_shapes: Mapping[str, Sequence[int]], units: int = 4) -> None:
        super().__init__()
        n = sum(shape[-1] for shape in in_shapes.values())
        self.keys = list(in_shapes)
        self.a = nn.Linear(n, units)
        self.b = nn.Linear(n, 1)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = torch.cat([inputs[k] for k in self.keys], dim=-1)
        return {"a": self.a(x), "b": self.b(x), "extra": x}


class HeadsInKwargsOrder(nn.Module):
    """One Linear head per keyword argument, built (and drawing its weights) in the order the kwargs arrive."""

    def __init__(self, in_shapes: Mapping[str, Sequence[int]], **units: int) -> None:
        super().__init__()
        n = sum(shape[-1] for shape in in_shapes.values())
        self.heads = nn.ModuleDict({name: nn.Linear(n, u) for name, u in units.items()})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([head(x) for head in self.heads.values()], dim=-1)


class NoisyInit(nn.Module):
    """Draws from the global RNG while it is built (a buffer of noise), as some user modules do."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(features, features)
        self.register_buffer("noise", torch.randn(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear(x) + self.noise
        return out


class SqueezesBatch(nn.Module):
    """Wrong: sums over the batch dim, so its output has none."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear(x).sum(dim=0)
        return out


class NeedsValues(nn.Module):
    """Reads a tensor's value in forward, which the meta device cannot do: its out_shapes must be declared."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = 1.0 + float(x.abs().max().item() > 100.0)
        out: torch.Tensor = self.linear(x) * scale
        return out


class Explodes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        raise RuntimeError("boom")


#: the arguments `recording_linear` was last called with
received: dict[str, object] = {}


def recording_linear(in_shapes: Mapping[str, Sequence[int]], units: int, options: object = None) -> nn.Linear:
    """A factory function (not a class) that records what it is called with."""
    received.update(in_shapes=in_shapes, units=units, options=options)
    ((_, shape),) = in_shapes.items()
    return nn.Linear(shape[-1], units)


def not_a_module() -> int:
    return 3


NOT_CALLABLE = 3


class Normed(nn.Module):
    """BatchNorm1d rejects a training batch of one: shape inference must run it in eval mode."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(features)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.drop(self.norm(x))
        return out
