"""The seed's example networks built from Maze's perception blocks (maze-rl), as Maze's custom-model docs do: blocks
in a dict, wired into an `InferenceBlock`, normc-initialised, wrapped in an `nn.Module`.

Optional: `load()` returns None with the reason when Maze cannot be imported. Only `maze.perception.blocks` (with
`output.linear` and `inference`) and `maze.perception.weight_init` are imported. They pull in two modules that the
blocks used here never call: `torch_scatter` (a compiled extension for Maze's GNN block, with no wheel for this
torch) and `matplotlib.pyplot` (for drawing inference graphs); when these are missing, empty stand-in modules take
their place. Blocks register parameters in the order perceptspec's materialized modules do, so weights can be
copied over.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from benchmarks._handwritten import INVENTORY, LATENT_SCREEN, SCREEN

#: modules that Maze's perception package imports but the blocks used here never call
UNUSED_IMPORTS = ("torch_scatter", "matplotlib", "matplotlib.pyplot")


class MazeModel(nn.Module):
    """What Maze's docs write around an inference block: `forward(obs) -> perception_net(obs)`."""

    def __init__(self, perception_net: nn.Module) -> None:
        super().__init__()
        self.perception_net = perception_net

    def forward(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = self.perception_net(obs)
        return out


class Maze:
    """Builders of the example networks from Maze's blocks (module attributes are untyped: Maze ships no types)."""

    def __init__(self, blocks: Any, output: Any, inference: Any, weight_init: Any) -> None:
        self.b = blocks
        self.LinearOutputBlock = output.LinearOutputBlock
        self.InferenceBlock = inference.InferenceBlock
        self.normc = weight_init.make_module_init_normc

    def _model(self, in_shapes: dict[str, tuple[int, ...]], out_keys: list[str], blocks: dict[str, Any],
               heads: list[str]) -> MazeModel:
        net = self.InferenceBlock(in_keys=list(in_shapes), out_keys=out_keys, in_shapes=list(in_shapes.values()),
                                  perception_blocks=blocks)
        net.apply(self.normc(std=1.0))
        for head in heads:
            blocks[head].apply(self.normc(std=0.01))
        return MazeModel(net)

    def cartpole(self, role: str) -> MazeModel:
        """Example 1 policy ('action', 2 logits) or critic ('value')."""
        blocks: dict[str, Any] = {"embedding": self.b.DenseBlock(
            in_keys="observation", out_keys="embedding", in_shapes=(4,), hidden_units=[16, 32], non_lin=nn.ReLU)}
        head, units = ("action", 2) if role == "policy" else ("value", 1)
        blocks[head] = self.LinearOutputBlock(in_keys="embedding", out_keys=head,
                                                in_shapes=blocks["embedding"].out_shapes(), output_units=units)
        return self._model({"observation": (4,)}, [head], blocks, [head])

    def _trunk(self, blocks: dict[str, Any], screen_shape: list[Any]) -> None:
        inventory = self.b.DenseBlock(in_keys=INVENTORY, out_keys="latent_inventory", in_shapes=(4, 16),
                                      hidden_units=[128], non_lin=nn.ReLU)
        blocks["latent_inventory"] = inventory
        blocks["latent_concat"] = self.b.ConcatenationBlock(
            in_keys=["latent_inventory", LATENT_SCREEN], out_keys="latent_concat",
            in_shapes=inventory.out_shapes() + screen_shape, concat_dim=-1)
        blocks["hidden_out"] = self.b.DenseBlock(
            in_keys="latent_concat", out_keys="hidden_out", in_shapes=blocks["latent_concat"].out_shapes(),
            hidden_units=[128], non_lin=nn.ReLU)
        blocks["latent"] = self.b.LSTMLastStepBlock(
            in_keys="hidden_out", out_keys="latent", in_shapes=blocks["hidden_out"].out_shapes(), hidden_size=32,
            num_layers=1, bidirectional=False, non_lin=nn.ReLU)

    def _screen(self) -> Any:
        return self.b.VGGConvolutionDenseBlock(in_keys=SCREEN, out_keys=LATENT_SCREEN, in_shapes=(4, 3, 64, 64),
                                               hidden_channels=[8, 16, 32], hidden_units=[32], non_lin=nn.ReLU)

    def complex(self, role: str, shared: bool = False) -> MazeModel:
        """Example 2 policy or critic; with `shared`, Example 4's (the policy also outputs the latent screen, the
        critic reads it)."""
        blocks: dict[str, Any] = {}
        in_shapes: dict[str, tuple[int, ...]] = {SCREEN: (4, 3, 64, 64), INVENTORY: (4, 16)}
        if shared and role == "critic":
            in_shapes = {INVENTORY: (4, 16), LATENT_SCREEN: (4, 32)}
            self._trunk(blocks, [(4, 32)])
        else:
            blocks[LATENT_SCREEN] = self._screen()
            self._trunk(blocks, blocks[LATENT_SCREEN].out_shapes())
        heads = {"action_move": 4, "action_use": 16} if role == "policy" else {"value": 1}
        for head, units in heads.items():
            blocks[head] = self.LinearOutputBlock(in_keys="latent", out_keys=head,
                                                    in_shapes=blocks["latent"].out_shapes(), output_units=units)
        out_keys = list(heads) + ([LATENT_SCREEN] if shared and role == "policy" else [])
        return self._model(in_shapes, out_keys, blocks, list(heads))

    def builder(self, example: int, role: str) -> Callable[[], MazeModel]:
        if example in (1, 3):
            return lambda: self.cartpole(role)
        return lambda: self.complex(role, shared=example == 4)


def load() -> tuple[Maze | None, str]:
    """Maze's builders, or None and why not; the second item also names any stand-in module used."""
    stand_ins = []
    for name in UNUSED_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)
            stand_ins.append(name)
    if "torch_scatter" in stand_ins:
        setattr(sys.modules["torch_scatter"], "scatter", None)
    if "matplotlib.pyplot" in stand_ins:
        setattr(sys.modules["matplotlib"], "pyplot", sys.modules["matplotlib.pyplot"])
    try:
        blocks = importlib.import_module("maze.perception.blocks")
        output = importlib.import_module("maze.perception.blocks.output.linear")
        inference = importlib.import_module("maze.perception.blocks.inference")
        weight_init = importlib.import_module("maze.perception.weight_init")
    except Exception as e:  # noqa: BLE001  (any import failure means: skip Maze, and say why)
        for name in stand_ins:
            del sys.modules[name]
        return None, f"maze-rl not importable ({type(e).__name__}: {e})"
    note = f"empty stand-ins for never-called imports: {', '.join(stand_ins)}" if stand_ins else ""
    return Maze(blocks, output, inference, weight_init), note
