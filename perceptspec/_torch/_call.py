"""How the interpreter calls a module: exactly as `module(*args)` does, minus the Python overhead nothing could see.

`nn.Module.__call__` runs `forward` directly when neither the module nor the global registries hold a hook and the
module is not compiled in place (`module.compile()`; `Module._call_impl`). `call` makes the same test and, when it
passes, runs the module's `forward` itself; otherwise it calls the module, so hooks and in-place compilation behave
as torch defines them (under `torch.jit.trace`, torch would call `_slow_forward`, which only names scopes). Every
block module is reached through `call`, and block modules reach their own layers through it, so a hook or a
replaced layer anywhere is honoured.

For a few torch layers whose `forward` is one functional op (`nn.Linear`, the parameter-free activations), `call`
applies that op itself, to what the layer's `forward` would read: its parameters as attributes (`param`). Only the
exact classes qualify: a subclass (a parametrized layer is one) or a replacement runs its own `forward`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as _module

# torch's global hook registries: dicts that registering a hook fills in place
_FORWARD_HOOKS = _module._global_forward_hooks
_FORWARD_PRE_HOOKS = _module._global_forward_pre_hooks
_BACKWARD_HOOKS = _module._global_backward_hooks
_BACKWARD_PRE_HOOKS = _module._global_backward_pre_hooks


def param(module: nn.Module, name: str) -> Any:
    """`getattr(module, name)` for a parameter, without `nn.Module.__getattr__` when it sits in `_parameters`.

    The same value in every case: a parametrization moves the parameter out of `_parameters` (its property then
    computes it), tensordict's `to_module` puts plain tensors in the instance dict after taking them out of
    `_parameters`, and `functional_call` swaps them inside `_parameters`.
    """
    value = module._parameters.get(name)
    return value if value is not None else getattr(module, name)


def _linear(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    params = layer._parameters  # `param`, inlined: this runs once per Linear layer per call
    weight, bias = params.get("weight"), params.get("bias")
    if weight is None:
        weight = param(layer, "weight")
    if bias is None:
        bias = param(layer, "bias")
    return F.linear(x, weight, bias)


def _relu(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.relu_(x) if layer.inplace else torch.relu(x)


#: torch layers whose whole `forward` is one op: that op, on what `forward` would read
_ONE_OP: dict[type, Callable[..., torch.Tensor]] = {
    nn.Linear: _linear,
    nn.ReLU: _relu,
    nn.Tanh: lambda layer, x: torch.tanh(x),
    nn.Sigmoid: lambda layer, x: torch.sigmoid(x),
    nn.Identity: lambda layer, x: x,
}


def call(module: nn.Module, *args: Any) -> Any:
    """`module(*args)`, skipping `nn.Module.__call__` exactly when torch itself would go straight to `forward`."""
    if (module._forward_hooks or module._forward_pre_hooks or module._backward_hooks or module._backward_pre_hooks
            or _FORWARD_HOOKS or _FORWARD_PRE_HOOKS or _BACKWARD_HOOKS or _BACKWARD_PRE_HOOKS
            or module._compiled_call_impl is not None):
        return module(*args)
    one_op = _ONE_OP.get(type(module))
    return module.forward(*args) if one_op is None else one_op(module, *args)


def call_in_turn(layers: Iterable[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """`x` through `call(layer, x)` for each layer in turn, as `nn.Sequential` does (`call`'s test inlined: this is
    the hot loop of small networks)."""
    any_global = _FORWARD_HOOKS or _FORWARD_PRE_HOOKS or _BACKWARD_HOOKS or _BACKWARD_PRE_HOOKS
    for layer in layers:
        if (any_global or layer._forward_hooks or layer._forward_pre_hooks or layer._backward_hooks
                or layer._backward_pre_hooks or layer._compiled_call_impl is not None):
            x = layer(x)
        else:
            one_op = _ONE_OP.get(type(layer))
            x = layer.forward(x) if one_op is None else one_op(layer, x)
    return x


def intercepted(module: nn.Module) -> bool:
    """Whether calling `module` runs anything besides its `forward`: a hook of its own or a global one, or the
    compiled forward of `module.compile()` (`call`'s test)."""
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                or module._backward_pre_hooks or _FORWARD_HOOKS or _FORWARD_PRE_HOOKS or _BACKWARD_HOOKS
                or _BACKWARD_PRE_HOOKS or module._compiled_call_impl is not None)
