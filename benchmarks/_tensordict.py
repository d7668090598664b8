"""The seed's example networks as tensordict `TensorDictSequential`s of `TensorDictModule`s, one per block, over
the very layers of the hand-written networks (so the weights are the same objects).

Optional: `load()` returns None with the reason when tensordict cannot be imported. The input `TensorDict` is built
once per batch, outside the timed calls; a call runs the sequence on it (writing the out keys into it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from benchmarks import _handwritten as hw
from benchmarks._handwritten import INVENTORY, LATENT_SCREEN, SCREEN


#: a call returning the sequence's TensorDict, and the reader of the out keys from it
Run = tuple[Callable[[], Any], Callable[[Any], dict[str, torch.Tensor]]]


class Concat(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.cat([a, b], -1)


class LastStep(nn.Module):
    """LSTM over (B, T, F), last step, Dense relu: the hand-written trunk's recurrent part."""

    def __init__(self, trunk: hw.Trunk) -> None:
        super().__init__()
        self.lstm, self.dense = trunk.lstm, trunk.lstm_dense

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return torch.relu(self.dense(out[:, -1]))


class TensorDictNets:
    """Builders over the hand-written networks' layers (tensordict's classes are untyped here)."""

    def __init__(self, tensordict: Any, tensordict_nn: Any) -> None:
        self.TensorDict = tensordict.TensorDict
        self.Module = tensordict_nn.TensorDictModule
        self.Sequential = tensordict_nn.TensorDictSequential

    def _trunk(self, trunk: hw.Trunk) -> list[Any]:
        return [
            self.Module(nn.Sequential(trunk.inventory, nn.ReLU()), in_keys=[INVENTORY], out_keys=["latent_inventory"]),
            self.Module(Concat(), in_keys=["latent_inventory", LATENT_SCREEN], out_keys=["latent_concat"]),
            self.Module(nn.Sequential(trunk.hidden, nn.ReLU()), in_keys=["latent_concat"], out_keys=["hidden_out"]),
            self.Module(LastStep(trunk), in_keys=["hidden_out"], out_keys=["latent"]),
        ]

    def sequential(self, hand: nn.Module) -> Any:
        """The TensorDictSequential over `hand`'s layers (one of the hand-written networks, or Example 3's)."""
        modules: list[Any]
        if isinstance(hand, (hw.CartPolePolicy, hw.CartPoleCritic)):
            body = nn.Sequential(hand.l1, nn.ReLU(), hand.l2, nn.ReLU())
            head, key = (hand.action, "action") if isinstance(hand, hw.CartPolePolicy) else (hand.value, "value")
            modules = [self.Module(body, in_keys=["observation"], out_keys=["embedding"]),
                       self.Module(head, in_keys=["embedding"], out_keys=[key])]
        elif isinstance(hand, (hw.ComplexPolicy, hw.ComplexCritic)):
            modules = [self.Module(hand.screen, in_keys=[SCREEN], out_keys=[LATENT_SCREEN]), *self._trunk(hand.trunk)]
            if isinstance(hand, hw.ComplexPolicy):
                modules += [self.Module(hand.action_move, in_keys=["latent"], out_keys=["action_move"]),
                            self.Module(hand.action_use, in_keys=["latent"], out_keys=["action_use"])]
            else:
                modules.append(self.Module(hand.value, in_keys=["latent"], out_keys=["value"]))
        elif isinstance(hand, hw.SharedCritic):
            modules = [*self._trunk(hand.trunk), self.Module(hand.value, in_keys=["latent"], out_keys=["value"])]
        else:  # Example 3's plain modules: a `body` Sequential, then `heads` (policy) or `value` (critic)
            plain_body: nn.Module = getattr(hand, "body")
            modules = [self.Module(plain_body, in_keys=["observation"], out_keys=["embedding"])]
            heads: dict[str, nn.Module] = dict(getattr(hand, "heads").items()) if hasattr(hand, "heads") else {
                "value": getattr(hand, "value")}
            modules += [self.Module(m, in_keys=["embedding"], out_keys=[k]) for k, m in heads.items()]
        return self.Sequential(*modules)

    def runner(self, hand: nn.Module, out_keys: list[str]) -> Callable[[dict[str, torch.Tensor]], Run]:
        """inputs -> (a call running the sequence on a TensorDict of them, built once; a reader of the out keys from
        what the call returned). Only the call is timed in forward-only cases."""
        seq = self.sequential(hand)

        def read(td: Any) -> dict[str, torch.Tensor]:
            return {k: td[k] for k in out_keys}

        def prepare(inputs: dict[str, torch.Tensor]) -> Run:
            td = self.TensorDict(dict(inputs), batch_size=[next(iter(inputs.values())).shape[0]])
            return lambda: seq(td), read
        return prepare


def load() -> tuple[TensorDictNets | None, str]:
    try:
        tensordict = importlib.import_module("tensordict")
        tensordict_nn = importlib.import_module("tensordict.nn")
    except Exception as e:  # noqa: BLE001  (any import failure means: skip tensordict, and say why)
        return None, f"tensordict not importable ({type(e).__name__}: {e})"
    return TensorDictNets(tensordict, tensordict_nn), f"tensordict {getattr(tensordict, '__version__', '?')}"
