"""A plain `nn.Module` network (seed Example 3) behind the composer's observation conversion."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class ConvertedInputs(nn.Module):
    """Runs the conversion blocks (a materialized spec) on the raw observations, then the network on the converted
    ones under the observations' names, as a network built from a spec reads them.

    conversion: reads the raw observations, outputs the converted keys; names: converted key -> observation name.
    """

    def __init__(self, conversion: nn.Module, names: Mapping[str, str], network: nn.Module) -> None:
        super().__init__()
        self.conversion, self.network = conversion, network
        self.names = dict(names)

    def forward(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        converted = self.conversion(obs)
        out: dict[str, torch.Tensor] = self.network({**obs, **{self.names[k]: v for k, v in converted.items()}})
        return out
