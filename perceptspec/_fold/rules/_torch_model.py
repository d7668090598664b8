"""Rules of `TorchModel`, and how its factory is found and called (torch-free at import).

With `out_shapes` declared the shape rule is pure. Without, and for the parameter count, the module is built once
per (block, shapes) on the meta device, with torch imported on first use (`_meta_facts`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from perceptspec._errors import SpecError
from perceptspec._core import Shape
from perceptspec._fold._rules import Mismatch, label_rules, param_rules, shape_rules
from perceptspec._spec import TorchModel
from perceptspec._spec._torch_model import IN_SHAPES_ARGUMENT, as_dims

if TYPE_CHECKING:
    from torch import nn


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


def resolve_factory(block: TorchModel) -> Callable[..., Any]:
    """The callable `block.module_factory` names; a `SpecError` naming the path when it cannot be found."""
    path = block.module_factory
    if ":" in path:
        module_part, attr_part = path.split(":")
        candidates = [(module_part, attr_part.split("."))]
    else:
        parts = path.split(".")
        candidates = [(".".join(parts[:i]), parts[i:]) for i in range(len(parts) - 1, 0, -1)]
    for module_name, attrs in candidates:
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name is not None and (module_name + ".").startswith(e.name + "."):
                continue  # no such module: the path may name an attribute at a shorter module path
            raise _factory_error(block, f"importing '{module_name}' failed: {e}") from e
        except Exception as e:
            raise _factory_error(block, f"importing '{module_name}' failed: {type(e).__name__}: {e}") from e
        for i, attr in enumerate(attrs):
            if not hasattr(obj, attr):
                owner = ".".join([module_name, *attrs[:i]])
                raise _factory_error(block, f"'{owner}' has no attribute '{attr}'")
            obj = getattr(obj, attr)
        if not callable(obj):
            raise _factory_error(block, f"it names a {type(obj).__name__}, not a class or function")
        factory: Callable[..., Any] = obj
        return factory
    tried = ", ".join(repr(name) for name, _ in candidates)
    raise _factory_error(block, f"no module of it can be imported (tried {tried})")


def _factory_error(block: TorchModel, problem: str) -> SpecError:
    return SpecError(block._where(), [f"field 'module_factory' ({block.module_factory!r}): {problem}"])


def _thaw(value: object) -> object:
    """A kwarg as the factory receives it: pmaps become dicts, tuples stay tuples."""
    if isinstance(value, tuple):
        return tuple(_thaw(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    return value


def takes_in_shapes(factory: Callable[..., Any]) -> bool:
    """Whether the factory has a parameter named `in_shapes` (a bare `**kwargs` does not count)."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # some builtins have no signature
        return False
    parameter = parameters.get(IN_SHAPES_ARGUMENT)
    return parameter is not None and parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                        inspect.Parameter.KEYWORD_ONLY)


def call_factory(block: TorchModel, view: ModuleView) -> nn.Module:
    """`factory(in_shapes=..., **kwargs)` (or without `in_shapes`); a `SpecError` when the call fails."""
    factory = resolve_factory(block)
    kwargs = {k: _thaw(v) for k, v in block.kwargs.items()}
    if takes_in_shapes(factory):
        kwargs[IN_SHAPES_ARGUMENT] = dict(zip(block.in_keys, view.shapes))
    try:
        module = factory(**kwargs)
    except Exception as e:
        raise _factory_error(block, f"calling it with {sorted(kwargs)} failed: {type(e).__name__}: {e}") from e
    from torch import nn  # the factory has run, so the caller has torch

    if not isinstance(module, nn.Module):
        raise _factory_error(block, f"expected it to return a torch.nn.Module, got a {type(module).__qualname__}")
    return module


class OutputMismatch(Exception):
    """The module's `forward` returned something other than one tensor per out key (raised by the torch side)."""

    def __init__(self, key: str | None, expected: str, got: str) -> None:
        super().__init__(f"expected {expected}, got {got}")
        self.key = key
        self.expected = expected
        self.got = got


@dataclasses.dataclass(frozen=True)
class MetaFacts:
    """What a meta-device instance tells: its parameter count, and its per-sample output shapes (if run)."""

    parameters: int
    out_shapes: tuple[Shape, ...] | None


@functools.lru_cache(maxsize=256)
def _meta_facts(block: TorchModel, view: ModuleView, run: bool) -> MetaFacts:
    """Build the module on the meta device (no memory, no compute) and, if `run`, call it on a batch of 1 (in eval
    mode, so batch norm takes a batch of one and dropout draws nothing)."""
    try:
        from perceptspec._torch.blocks._torch_model import meta_module, output_tensors
    except ImportError as e:
        need = "to infer its out_shapes (declare out_shapes to avoid this) and " if run else "to "
        raise ImportError(f"{block._where()} ({block.module_factory!r}) needs torch {need}count its parameters: "
                          f"{e}") from e
    import torch

    module = meta_module(block, view)
    parameters = sum(p.numel() for p in module.parameters())
    if not run:
        return MetaFacts(parameters, None)
    inputs = [torch.empty((1, *s), device="meta") for s in view.shapes]
    module.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
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
