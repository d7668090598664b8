"""`transfer`: a warm start. The new spec's module takes the weights of every block of the old module whose path and
parameter (and buffer) names and shapes match; the other blocks are initialised as the new spec says."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import torch

from perceptspec._errors import SpecError
from perceptspec._fold._shapes import trace
from perceptspec._spec import Block
from perceptspec._torch._module import SpecModule, materialize


@dataclasses.dataclass(frozen=True)
class TransferReport:
    """What `transfer` did, by block path (only blocks holding weights are listed).

    reused: blocks of the new spec whose weights came from the old module.
    reinitialised: blocks of the new spec initialised as it says (new, or their weights' names or shapes changed).
    dropped: blocks of the old module whose weights no block of the new spec took.
    """

    reused: tuple[str, ...]
    reinitialised: tuple[str, ...]
    dropped: tuple[str, ...]

    def __str__(self) -> str:
        return "\n".join(f"{what}: {', '.join(paths) if paths else '-'}" for what, paths in
                         (("reused", self.reused), ("reinitialised", self.reinitialised), ("dropped", self.dropped)))


def transfer(module: SpecModule, new_spec: Block, in_shapes: Mapping[str, Sequence[int]], *, seed: int | None = None,
             check: str = "always") -> SpecModule:
    """The module of `new_spec` (for `in_shapes`), reusing `module`'s weights block by block where the block's path and
    its tensors' names and shapes match; the rest is initialised as `materialize(new_spec, in_shapes, seed=seed)`
    would. The result has `module`'s device, dtype and training mode, and says what happened in `transfer_report`.

    Typical uses: an observation key added (the other blocks keep their weights; the block reading the new key, whose
    input width changed, starts afresh), a head widened (only the head starts afresh).
    """
    if not isinstance(module, SpecModule):
        raise SpecError("transfer", [f"module: expected a module made by ps.materialize, got "
                                     f"{type(module).__qualname__}"])
    new = materialize(new_spec, in_shapes, seed=seed, check=check)
    probe = module.probe_parameter()
    if probe is not None:
        new.to(device=probe.device, dtype=probe.dtype)
    old_blocks, new_blocks = _block_states(module), _block_states(new)
    reused = []
    with torch.no_grad():
        for path, tensors in new_blocks.items():
            old = old_blocks.get(path, {})
            if old.keys() == tensors.keys() and all(old[k].shape == t.shape for k, t in tensors.items()):
                for name, tensor in tensors.items():
                    tensor.copy_(old[name])
                reused.append(path)
    new.train(module.training)
    new.transfer_report = TransferReport(
        tuple(reused), tuple(p for p in new_blocks if p not in reused),
        tuple(p for p in old_blocks if p not in reused))
    return new


def _block_states(module: SpecModule) -> dict[str, dict[str, torch.Tensor]]:
    """Each block's parameters and buffers (names relative to the block), for the blocks that hold any."""
    paths = {eqn.path for eqn in trace(module.spec, module.in_shapes).program.eqns}
    blocks: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in module.state_dict(keep_vars=True).items():
        parts = key.removeprefix("blocks.").split(".")
        n = next(n for n in range(1, len(parts)) if ".".join(parts[:n]) in paths)  # block names hold no '.'
        blocks.setdefault(".".join(parts[:n]), {})[".".join(parts[n:])] = tensor
    return blocks
