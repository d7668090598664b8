"""Rules of `TorchModel` (no torch here).

With `out_shapes` declared the shape rule is pure. Without, and for the parameter count, the module is built once
per (block, shapes) on the meta device by the torch layer (`perceptspec._torch.blocks._torch_model.meta_facts`),
reached through `perceptspec._materialize`, which imports torch on first use.
"""

from __future__ import annotations

import dataclasses
import functools

from perceptspec._core import Shape
from perceptspec._fold._rules import Mismatch, label_rules, param_rules, shape_rules
from perceptspec._materialize import torch_model_facts
from perceptspec._spec import TorchModel
from perceptspec._spec._torch_model import as_dims


@dataclasses.dataclass(frozen=True)
class ModuleView:
    """What the user module sees: `shapes` per input (without the batch dim); `lead` are the leading feature
    dims that are folded into the batch and put back in front of every output."""

    lead: Shape
    shapes: tuple[Shape, ...]


def module_view(block: TorchModel, ins: tuple[Shape, ...]) -> ModuleView:
    """Split each input shape into carried leading dims and the module's dims (`in_num_dims - 1` trailing dims)."""
    in_num_dims = as_dims(block.in_num_dims)
    if in_num_dims is None:
        return ModuleView((), ins)
    leads, shapes = [], []
    for i, (shape, rank) in enumerate(zip(ins, in_num_dims)):
        dims = rank - 1
        if len(shape) < dims:
            raise Mismatch(i, f"a shape with at least {dims} dim(s) (in_num_dims {rank}, batch included)", shape)
        leads.append(shape[:len(shape) - dims])
        shapes.append(shape[len(shape) - dims:])
    for i, lead in enumerate(leads):
        if lead != leads[0]:
            raise Mismatch(i, f"the leading dims {leads[0]} of the first input, before the last "
                              f"{in_num_dims[i] - 1} dim(s) the module takes", ins[i])
    return ModuleView(leads[0], tuple(shapes))


@dataclasses.dataclass(frozen=True)
class MetaFacts:
    """What a meta-device instance tells: its parameter count, and its per-sample output shapes (if run)."""

    parameters: int
    out_shapes: tuple[Shape, ...] | None


@functools.lru_cache(maxsize=256)
def _meta_facts(block: TorchModel, view: ModuleView, run: bool) -> MetaFacts:
    """What the module built on the meta device tells (memoised per block and view); torch is imported here, on
    first use, through the façade the torch-free layers use (`perceptspec._materialize`)."""
    try:
        return torch_model_facts(block, view, run)
    except ImportError as e:
        need = "to infer its out_shapes (declare out_shapes to avoid this) and " if run else "to "
        raise ImportError(f"{block._where()} ({block.module_factory!r}) needs torch {need}count its parameters: "
                          f"{e}") from e


@shape_rules.register(TorchModel)
def _torch_model_shape_rule(block: TorchModel, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    view = module_view(block, ins)
    if block.out_shapes is not None:
        outs = tuple(tuple(s) for s in block.out_shapes)
    else:
        inferred = _meta_facts(block, view, True).out_shapes
        assert inferred is not None
        outs = inferred
        for key, shape, rank in zip(block.out_keys, outs, as_dims(block.out_num_dims) or ()):
            if len(shape) != rank - 1:
                raise Mismatch(None, f"output '{key}' of rank {rank} (out_num_dims, batch included)",
                               (1, *shape))
    return tuple(view.lead + shape for shape in outs)


@param_rules.register(TorchModel)
def _torch_model_param_rule(block: TorchModel, ins: tuple[Shape, ...]) -> int:
    return _meta_facts(block, module_view(block, ins), block.out_shapes is None).parameters


@label_rules.register(TorchModel)
def _torch_model_label_rule(block: TorchModel, ins: tuple[Shape, ...]) -> str:
    return f"TorchModel {block.module_factory.replace(':', '.').rsplit('.', 1)[-1]}"
