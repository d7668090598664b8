"""A distribution class of a user's, for the tests of custom distributions through the allow-list."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.distributions import Categorical


class TemperedCategorical(Categorical):
    """A categorical over logits divided by a temperature (Maze's `temperature`, as an option)."""

    @classmethod
    def required_logits_shape(cls, action_space: Any) -> Sequence[int]:
        return (int(action_space.n),)

    def __init__(self, logits: torch.Tensor, action_space: Any, temperature: float = 1.0) -> None:
        super().__init__(logits=logits / temperature)
