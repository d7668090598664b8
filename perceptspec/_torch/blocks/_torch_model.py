"""Build rule of `TorchModel`: the user's module, built reproducibly, behind a wrapper that fixes the batch dims
and checks what the module returns against the shapes the fold promised."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from perceptspec._core import Shape
from perceptspec._errors import ShapeError
from perceptspec._fold._rules import Mismatch
from perceptspec._fold.rules._torch_model import MetaFacts, ModuleView, _torch_model_shape_rule, module_view
from perceptspec._spec import Initializer, TorchModel
from perceptspec._spec._torch_model import call_factory, factory_error
from perceptspec._torch._init import initialise
from perceptspec._torch._rng import global_rng, untouched_global_rng
from perceptspec._torch._tables import torch_builders

#: the layers a TorchModel's explicit `init` re-initialises
INITIALISED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                      nn.ConvTranspose3d)


def built_module(block: TorchModel, view: ModuleView) -> nn.Module:
    """The factory's module; a `SpecError` when it returned something else."""
    module = call_factory(block, view.shapes)
    if not isinstance(module, nn.Module):
        raise factory_error(block, f"expected it to return a torch.nn.Module, got a {type(module).__qualname__}")
    return module


def meta_module(block: TorchModel, view: ModuleView) -> nn.Module:
    """The module built on the meta device (for the folds); the global RNG is left as it was."""
    with untouched_global_rng(), torch.device("meta"):
        return built_module(block, view)


def seeded_module(block: TorchModel, view: ModuleView, generator: torch.Generator | None) -> nn.Module:
    """The module built for real. With a generator, under a forked global CPU RNG seeded from it: the module's own
    initialisation is then reproducible, and the caller's global RNG is left as it was. Thread-safe (`global_rng`
    holds one lock over the fork)."""
    with global_rng(None if generator is None else generator.initial_seed()):
        return built_module(block, view)


class OutputMismatch(Exception):
    """The module's `forward` returned something other than one tensor per out key (raised by the torch side)."""

    def __init__(self, key: str | None, expected: str, got: str) -> None:
        super().__init__(f"expected {expected}, got {got}")
        self.key = key
        self.expected = expected
        self.got = got


def meta_facts(block: TorchModel, view: ModuleView, run: bool) -> MetaFacts:
    """Build the module on the meta device (no memory, no compute) and, if `run`, call it on a batch of 1 (in eval
    mode, so batch norm takes a batch of one and dropout draws nothing). The fold rules memoise it."""
    module = meta_module(block, view)
    parameters = sum(p.numel() for p in module.parameters())
    if not run:
        return MetaFacts(parameters, None)
    inputs = [torch.empty((1, *s), device="meta") for s in view.shapes]
    module.eval()
    try:
        with torch.no_grad(), untouched_global_rng():
            result = module(dict(zip(block.in_keys, inputs))) if block.dict_inputs else module(*inputs)
    except Exception as e:
        shapes = dict(zip(block.in_keys, view.shapes))
        raise Mismatch(None, f"per-sample input shapes the module {block.module_factory!r} can take (it ran on "
                             f"meta tensors of shapes {shapes}; if they are right but the module cannot run on the "
                             f"meta device, declare out_shapes)", f"{type(e).__name__}: {e}") from e
    try:
        outs = output_tensors(block.out_keys, result)
    except OutputMismatch as e:
        raise Mismatch(None, f"{block.module_factory!r} to return {e.expected}", e.got) from e
    for key, out in zip(block.out_keys, outs):
        if out.dim() == 0 or out.shape[0] != 1:
            raise Mismatch(None, f"a module that keeps the batch dim first (output '{key}' on a batch of 1)",
                           tuple(out.shape))
    return MetaFacts(parameters, tuple(tuple(out.shape[1:]) for out in outs))




def output_tensors(out_keys: Sequence[str], result: object) -> tuple[torch.Tensor, ...]:
    """The module's result as one tensor per out key: from a tensor, a tuple/list, or a dict holding the keys."""
    keys = list(out_keys)
    if isinstance(result, Mapping):
        missing = [k for k in keys if k not in result]
        if missing:
            raise OutputMismatch(missing[0], f"a dict holding the out keys {keys}", f"keys {list(result)}")
        outs = tuple(result[k] for k in keys)
    elif isinstance(result, (tuple, list)):
        if len(result) != len(keys):
            raise OutputMismatch(None, f"{len(keys)} tensor(s), one per out key {keys}",
                                 f"a {type(result).__name__} of {len(result)}")
        outs = tuple(result)
    elif len(keys) != 1:
        raise OutputMismatch(None, f"{len(keys)} tensors, one per out key {keys} (a tuple or a dict)",
                             f"one {type(result).__qualname__}")
    else:
        outs = (result,)
    for key, out in zip(keys, outs):
        if not isinstance(out, torch.Tensor):
            raise OutputMismatch(key, f"a tensor for out key '{key}'", f"a {type(out).__qualname__}")
    return outs


class TorchModelModule(nn.Module):
    """Calls `net` on inputs with their leading dims flattened into one batch dim, checks that it returns one
    tensor of shape (batch, *out_shape) per out key, and restores the leading dims."""

    def __init__(self, block: TorchModel, net: nn.Module, view: ModuleView, out_shapes: tuple[Shape, ...]) -> None:
        super().__init__()
        self.net = net
        self.in_keys = tuple(block.in_keys)
        self.out_keys = tuple(block.out_keys)
        self.in_shapes = view.shapes
        self.out_shapes = out_shapes
        self.dict_inputs = block.dict_inputs
        self.where = f"{block._where()}: module {block.module_factory!r}"
        self.kind, self.module_text = type(block).__name__, f"module {block.module_factory!r}"
        self.block_path: str | None = None  # set by build_blocks: errors name the block

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        first = inputs[0]
        lead = first.shape[:first.dim() - len(self.in_shapes[0])]
        flat = [x.reshape(-1, *shape) for x, shape in zip(inputs, self.in_shapes)]
        result = self.net(dict(zip(self.in_keys, flat))) if self.dict_inputs else self.net(*flat)
        try:
            outs = output_tensors(self.out_keys, result)
        except OutputMismatch as e:
            raise ShapeError(f"{self.module_text} returned {e.got}, expected {e.expected}", block=self.block_path,
                             block_type=self.kind, key=e.key) from None
        n = flat[0].shape[0]
        restored = []
        for key, out, shape in zip(self.out_keys, outs, self.out_shapes):
            if out.shape != (n, *shape):
                raise ShapeError(f"{self.module_text} returned shape {tuple(out.shape)}, expected {(n, *shape)} (the "
                                 f"flattened batch of {n}, then the out shape {shape})", block=self.block_path,
                                 block_type=self.kind, key=key)
            restored.append(out.reshape((*lead, *shape)))
        return restored[0] if len(restored) == 1 else tuple(restored)

    def extra_repr(self) -> str:
        return self.where


@torch_builders.register(TorchModel)
def _torch_model_build_rule(block: TorchModel, ins: tuple[Shape, ...], init: Initializer,
                            generator: torch.Generator | None) -> nn.Module:
    # `init` is the effective initialiser (a Graph's included); only the block's own replaces the module's
    view = module_view(block, ins)
    net = seeded_module(block, view, generator)
    if block.init is not None:
        for layer in net.modules():
            if isinstance(layer, INITIALISED_LAYERS):
                initialise(block.init, layer.weight, layer.bias, generator)
    out_shapes = tuple(shape[len(view.lead):] for shape in _torch_model_shape_rule(block, ins))
    return TorchModelModule(block, net, view, out_shapes)
