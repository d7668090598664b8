"""Build rule of `Ensemble`: K members, their parameters stacked, run in one batched forward.

The members are materialized one by one (member k seeded from the block's generator and k, so from (seed, path,
member)), then merged into one `SpecModule` of the member spec whose every parameter and buffer holds the K
members' values stacked on a new first dim: state_dict names read `<ensemble>.members.<member's own name>` with a
leading dim of K (as `torch.func.stack_module_state` stacks them), and member k's weights are `tensor[k]`.

Inside, the member dim comes first, `(K, *batch, *features)`, and the output is moved to its place after the batch
dims at the end. Two ways to run all members at once, both over the blocks' one torch definition:

- *layered*: when every layer with weights is an `nn.Linear` (MLPs, the usual Q critics), each becomes a
  `StackedLinear` (one batched matmul for K layers) and the member spec's own forward runs on inputs expanded to K
  (a view): every other layer treats the member dim as one more leading dim, as it does batch dims. Measured on K = 10
  Example-1 critics at batch 256, `torch.vmap` over the members' forward costs more than calling them in a loop
  (benchmarks/RESULTS.md), this path a fraction of it.
- *vmapped*: any other member (convolutions, attention, TorchModel) runs under `torch.vmap` over the merged
  module's forward with the stacked parameters and buffers swapped in (as `torch.func.functional_call` would).
- *looped*: where torch has no batching rule for an op (`aten::lstm`, `aten::gru`; vmap then fails, or warns and
  loops itself, as for CPU flash attention), found by one vmapped trial call when building, the members run one
  after another, each with its slice of the stacked parameters swapped in (the same state_dict; only the speed
  differs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import functools
import math
import warnings
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from perceptspec._core import Shape
from perceptspec._fold._program import DEFAULT_INIT
from perceptspec._spec import Ensemble, Graph, Initializer
from perceptspec._spec._block import Block
from perceptspec._torch._call import call, param
from perceptspec._torch._tables import torch_builders

if TYPE_CHECKING:
    from perceptspec._torch._module import SpecModule


class StackedLinear(nn.Module):
    """K `nn.Linear` layers as one: `weight` (K, out, in), `bias` (K, out); input (K, ..., in) -> (K, ..., out).

    An input expanded from one tensor (stride 0 along K: every member reads the same features) takes one matmul
    against the K weights side by side."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = None if bias is None else nn.Parameter(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = param(self, "weight"), param(self, "bias")
        size, n_out, n_in = weight.shape
        if x.stride(0) == 0:
            flat_bias = None if bias is None else bias.reshape(size * n_out)
            y = F.linear(x[0], weight.reshape(size * n_out, n_in), flat_bias)
            return y.view(*y.shape[:-1], size, n_out).movedim(-2, 0)
        rows = x.reshape(size, math.prod(x.shape[1:-1]), n_in)
        transposed = weight.transpose(1, 2)
        y = torch.bmm(rows, transposed) if bias is None else torch.baddbmm(bias.unsqueeze(1), rows, transposed)
        return y.view(size, *x.shape[1:-1], n_out)

    def extra_repr(self) -> str:
        size, n_out, n_in = self.weight.shape
        return f"members={size}, in_features={n_in}, out_features={n_out}, bias={self.bias is not None}"


class EnsembleModule(nn.Module):
    """An ensemble's block module: `members` (the member spec's module, every tensor stacked over the members) run
    once for all members; each output gets the member dim after the batch dims."""

    def __init__(self, members: SpecModule, size: int, out_ranks: tuple[int, ...], mode: str,
                 member_seeds: tuple[int, ...] | None) -> None:
        super().__init__()
        self.members = members
        self.size = size
        self.in_keys = tuple(members.in_shapes)
        self.roles = tuple(role for _, _, role in members.signature)
        self.out_ranks = out_ranks
        #: how the members run at once: 'layered', 'vmapped' or 'looped' (see the module docstring)
        self.mode = mode
        #: the seed each member was materialized with (None: drawn from torch's global RNG)
        self.member_seeds = member_seeds

    def forward(self, *inputs: torch.Tensor) -> Any:
        members = self._modules["members"]
        assert members is not None
        named = dict(zip(self.in_keys, inputs))
        if self.mode == "layered":
            out = call(members, {k: x.expand(self.size, *x.shape) for k, x in named.items()})
        else:
            slots = tensor_slots(members)
            stacked = tuple(read(slot) for slot in slots)
            if not slots:  # no parameter or buffer: the members are one function, computed once
                once = call(members, named)
                out = {k: y.expand(self.size, *y.shape) for k, y in once.items()}
            elif self.mode == "vmapped":
                out = torch.vmap(functools.partial(_run_member, members, slots), in_dims=(0, None),
                                 randomness="different")(stacked, named)
            else:
                each = [_run_member(members, slots, tuple(t[m] for t in stacked), named) for m in range(self.size)]
                out = {k: torch.stack([o[k] for o in each]) for k in each[0]}
        results = tuple(y.movedim(0, -1 - rank) for y, rank in zip(out.values(), self.out_ranks))
        return results[0] if len(results) == 1 else results

    def extra_repr(self) -> str:
        return f"size={self.size}, mode={self.mode!r}"


#: where a module keeps one of its tensors: (the module, 'param' or 'buffer', its name)
Slot = tuple[nn.Module, str, str]


def tensor_slots(members: nn.Module) -> list[Slot]:
    """Every parameter and buffer of `members` (reached through `_modules`: a block may be named 'float')."""
    slots: list[Slot] = []
    stack = [members]
    while stack:
        owner = stack.pop()
        slots += [(owner, "param", name) for name, p in owner._parameters.items() if p is not None]
        slots += [(owner, "buffer", name) for name, b in owner._buffers.items() if b is not None]
        stack.extend(m for m in reversed(owner._modules.values()) if m is not None)
    return slots


def read(slot: Slot) -> torch.Tensor:
    """A slot's tensor as the module's forward reads it now (a tensor that `functional_call` or tensordict's
    `to_module` put in place of a stacked parameter is the one used)."""
    owner, kind, name = slot
    value: torch.Tensor = param(owner, name) if kind == "param" else getattr(owner, name)
    return value


def _holder(slot: Slot) -> dict[str, Any]:
    """The dict the module's forward finds the slot's tensor in (`to_module` moves it into the instance dict)."""
    owner, kind, name = slot
    if name in owner.__dict__:
        return owner.__dict__
    return owner._parameters if kind == "param" else owner._buffers


def _run_member(members: nn.Module, slots: list[Slot], values: tuple[torch.Tensor, ...],
                inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`members` run with `values` (one member's, or under vmap all of them) in its slots, which are then restored:
    what `torch.func.functional_call` does, minus its lookup of modules by attribute name."""
    holders = [_holder(slot) for slot in slots]
    saved = [holder[name] for holder, (_, _, name) in zip(holders, slots)]
    try:
        for holder, (_, _, name), value in zip(holders, slots, values):
            holder[name] = value
        out: dict[str, torch.Tensor] = call(members, inputs)
        return out
    finally:
        for holder, (_, _, name), value in zip(holders, slots, saved):
            holder[name] = value


def member_seed(generator: torch.Generator, member: int) -> int:
    """Member `member`'s seed, from the ensemble block's generator (itself seeded from (seed, path))."""
    digest = hashlib.sha256(f"{generator.initial_seed()}/member/{member}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def member_spec(block: Ensemble, init: Initializer) -> Block:
    """The spec each member is materialized from: the ensemble's, its blocks inheriting the ensemble's initialiser."""
    spec = block.spec
    if spec.init is not None or init == DEFAULT_INIT:
        return spec
    if isinstance(spec, Graph):
        return Graph(spec.blocks, spec.out_keys, init=init)
    return dataclasses.replace(spec, init=init)


@torch_builders.register(Ensemble)
def _ensemble_build_rule(block: Ensemble, ins: tuple[Shape, ...], init: Initializer,
                         generator: torch.Generator | None) -> nn.Module:
    from perceptspec._fold._shapes import trace
    from perceptspec._torch._module import assemble, build_blocks  # (that module imports this package)

    t = trace(member_spec(block, init), dict(zip(block.in_keys, ins)))
    seeds = None if generator is None else tuple(member_seed(generator, k) for k in range(block.size))
    members = [assemble(t, build_blocks(t, None if seeds is None else seeds[k]), "off")
               for k in range(block.size)]
    layered = all(_stackable(m) for m in members[0].modules())
    merged = members[0]
    for name, module in list(merged.named_modules()):
        peers = [_submodule(m, name) for m in members]
        if layered and type(module) is nn.Linear:
            weight = torch.stack([param(p, "weight").detach() for p in peers])
            bias = None if module.bias is None else torch.stack([param(p, "bias").detach() for p in peers])
            parent_name, _, leaf = name.rpartition(".")
            _submodule(merged, parent_name)._modules[leaf] = StackedLinear(weight, bias)
            continue
        for key, value in module._parameters.items():
            if value is not None:
                stacked = torch.stack([p._parameters[key].detach() for p in peers])  # type: ignore[union-attr]
                module._parameters[key] = nn.Parameter(stacked, value.requires_grad)
        for key, buffer in module._buffers.items():
            if buffer is not None:
                module._buffers[key] = torch.stack([p._buffers[key] for p in peers])  # type: ignore[misc]
    out_ranks = tuple(len(t.shapes[k]) for k in t.program.outputs)
    module = EnsembleModule(merged, block.size, out_ranks, "layered" if layered else "vmapped", seeds)
    if not layered and not _runs_under_vmap(module, ins):
        module.mode = "looped"
    return module


#: the dtype of the trial call's zeros for each input role (features: float32; index 0 is always in bounds)
TRIAL_DTYPES = {"mask": torch.bool, "index": torch.int64}

#: what torch says when vmap has no batching rule for an op: an error, or a warning before it loops itself
NO_BATCHING_RULE = ("Batching rule not implemented", "we have not yet implemented the batching rule",
                    "we do not yet support")


def _runs_under_vmap(module: EnsembleModule, ins: tuple[Shape, ...]) -> bool:
    """Whether every op of the members has a batching rule: a call on a batch of zeros without grad, in eval mode
    and in training mode (some ops differ: rrelu, dropout; running statistics are saved and restored), tells."""
    training = module.training
    saved = [b.clone() for b in module.buffers()]
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            for mode in (False, True):
                module.train(mode)
                module(*(torch.zeros(1, *shape, dtype=TRIAL_DTYPES.get(role, torch.float32))
                         for shape, role in zip(ins, module.roles)))
    except (RuntimeError, UserWarning) as e:
        if not any(text in str(e) for text in NO_BATCHING_RULE):
            raise
        return False
    finally:
        module.train(training)
        with torch.no_grad():
            for buffer, value in zip(module.buffers(), saved):
                buffer.copy_(value)
    return True


def _submodule(root: nn.Module, name: str) -> nn.Module:
    """`root.get_submodule(name)` through `_modules` only: a block may be called 'forward' or 'training'."""
    for part in name.split(".") if name else ():
        child = root._modules[part]
        assert child is not None
        root = child
    return root


def _stackable(module: nn.Module) -> bool:
    """Whether `module` runs as one layer of K stacked members on inputs with a leading member dim: a layer of
    torch's or ours without weights of its own, or an `nn.Linear` (which becomes a `StackedLinear`)."""
    if type(module) is nn.Linear:
        return True
    own_module = type(module).__module__.startswith(("torch.nn.", "perceptspec."))
    return own_module and not module._parameters and not module._buffers
