"""Rule tables of the torch interpreter, keyed by block (or initialiser) kind.

- `torch_builders`: a block's module, initialised from the block's effective initialiser and a generator. Its
  `forward(*inputs)` is the block's one definition in torch: the generated forward, the reference walk and the
  finite check all call it.
- `init_rules` / `bias_rules`: how an initialiser fills a weight and bias, how a head bias fills a bias.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from perceptspec._core import RuleTable, Shape

BuildRule = Callable[[Any, tuple[Shape, ...], Any, "torch.Generator | None"], nn.Module]
InitRule = Callable[[Any, torch.Tensor, "torch.Tensor | None", "torch.Generator | None"], None]
BiasRule = Callable[[Any, torch.Tensor], None]

torch_builders: RuleTable[BuildRule] = RuleTable("torch build")
init_rules: RuleTable[InitRule] = RuleTable("initialisation")
bias_rules: RuleTable[BiasRule] = RuleTable("head bias")
