"""Run-time checks of a materialized module's inputs: keys, types, dtypes, devices, trailing shapes, batch dims.

The fast path is one loop over the expected inputs (about a microsecond); only when it fails does `diagnose` work
out which key is wrong and how (typeguard, with every dict item checked, for the types), and raise one
`SignatureError` naming the key, what was expected and what came.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
from typeguard import CollectionCheckStrategy, TypeCheckError, check_type

from perceptspec._errors import SignatureError
from perceptspec._core import Shape
from perceptspec._torch._under_compile import outside_graph, run_as_frame_boundary

if TYPE_CHECKING:
    from perceptspec._torch._module import SpecModule


@run_as_frame_boundary
def named_inputs(inputs: object, named: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inputs given as keyword arguments (`module(**obs)`); a `SignatureError` if a dict came as well."""
    if inputs is not None:
        raise SignatureError(None, "the inputs as one dict or as keyword arguments",
                             f"both (a {type(inputs).__qualname__} and keywords {sorted(named)})")
    return named


@run_as_frame_boundary
def check_inputs(module: SpecModule, inputs: object) -> None:
    """Raise `SignatureError` unless `inputs` fits `module`'s signature; then stop checking in check='first'.
    Under `torch.compile` it runs too (see `_under_compile`); under `torch.export` the exported program checks its
    inputs itself, and comparing symbolic batch dims here would constrain them."""
    if torch.compiler.is_exporting():
        return
    signature = module.signature
    found = module._probe  # `probe_parameter()`'s fast path, without its frame
    probe: torch.Tensor | None = None if found is None else found[0]._parameters.get(found[1])
    if probe is None and found is not None:  # a parametrization's value, a tensor set in its place
        probe = module.probe_parameter()
    dtype, device = (None, None) if probe is None else (probe.dtype, probe.device)
    extra_ok = module.allow_extra_keys
    if isinstance(inputs, dict) and (len(inputs) == len(signature) or (extra_ok and len(inputs) > len(signature))):
        batch = None
        for key, shape, role in signature:
            x = inputs.get(key)
            if not isinstance(x, torch.Tensor):
                break
            if dtype is not None and (x.device != device or (
                    x.dtype != dtype if role == "features" else not dtype_fits(role, x, dtype))):
                break
            if dtype is None and not (x.is_floating_point() if role == "features" else dtype_fits(role, x, None)):
                break
            size = x.shape  # read once: each `x.shape` builds a new torch.Size
            lead = len(size) - len(shape)
            if lead < 0 or size[lead:] != shape:
                break
            if batch is None:
                batch = size[:lead]
            elif size[:lead] != batch:
                break
        else:
            if module.index_limits and index_problem(module.index_limits, inputs) is not None:
                diagnose_outside_graph(signature, dtype, device, inputs, extra_ok, module.index_limits)
            if module._check_pending:  # nn.Module.__setattr__ costs ~1 µs: check='always' pays it only once
                module._check_pending = False
            return
    diagnose_outside_graph(signature, dtype, device, inputs, extra_ok, module.index_limits)
    module._check_pending = False  # nothing was wrong after all (e.g. a dict subclass)


IndexLimits = tuple[tuple[str, tuple[int | tuple[int, ...], ...]], ...]


def dtype_fits(role: str, x: torch.Tensor, dtype: torch.dtype | None) -> bool:
    """Whether `x`'s dtype suits an input of `role` when the module's parameters have `dtype` (None: no parameters,
    any floating dtype): features need that dtype, a mask also takes bool, indices an integer dtype, numbers any
    real dtype."""
    if role == "index":
        return not (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool)
    if role == "number":
        return not x.is_complex()
    fits = x.is_floating_point() if dtype is None else x.dtype == dtype
    return fits or (role == "mask" and x.dtype == torch.bool)


_DTYPE_TEXT = {"index": "an integer dtype (indices)", "number": "a real dtype (bool, integer or floating)"}


def index_problem(limits: IndexLimits, inputs: Mapping[str, torch.Tensor]) -> tuple[str, str, str] | None:
    """(key, expected, got) for the first index input with an index out of its bounds, else None."""
    for key, bounds in limits:
        x = inputs[key]
        if not x.numel():
            continue
        for bound in bounds:
            too_high = x >= bound if isinstance(bound, int) else x >= torch.tensor(bound, device=x.device)
            if bool((x < 0).any()) or bool(too_high.any()):
                where = f"[0, {bound})" if isinstance(bound, int) else \
                    f"[0, n) with n = {list(bound)} for the entries of the last dim"
                return key, f"indices in {where}", f"indices from {int(x.min())} to {int(x.max())}"
    return None


def diagnose(signature: tuple[tuple[str, Shape, str], ...], dtype: torch.dtype | None, device: torch.device | None,
             inputs: object, allow_extra_keys: bool = False, index_limits: IndexLimits = ()) -> None:
    """Raise the `SignatureError` that says what is wrong with `inputs`."""
    expected_keys = [k for k, _, _ in signature]
    if not isinstance(inputs, Mapping):
        raise SignatureError(None, f"a dict of tensors with keys {expected_keys}", type(inputs).__qualname__)
    try:
        check_type(inputs, dict[str, torch.Tensor], collection_check_strategy=CollectionCheckStrategy.ALL_ITEMS)
    except TypeCheckError:
        for key, value in inputs.items():
            if not isinstance(key, str):
                raise SignatureError(repr(key), "str keys", type(key).__qualname__) from None
            if not isinstance(value, torch.Tensor):
                raise SignatureError(key, "a torch.Tensor", type(value).__qualname__) from None
        if not isinstance(inputs, dict):
            raise SignatureError(None, "a dict", type(inputs).__qualname__) from None
    for key in expected_keys:
        if key not in inputs:
            raise SignatureError(key, f"this key (inputs needed: {expected_keys})", f"keys {list(inputs)}")
    for key in () if allow_extra_keys else inputs:
        if key not in expected_keys:
            raise SignatureError(key, f"only the keys {expected_keys}", "this key as well")
    first: tuple[str, torch.Size] | None = None
    for key, shape, role in signature:
        x: torch.Tensor = inputs[key]
        if not dtype_fits(role, x, dtype):
            mask = " or torch.bool (a mask)" if role == "mask" else ""
            expected = _DTYPE_TEXT.get(role) or (f"dtype {dtype} (the module's parameters'){mask}" if dtype is not None
                                                 else f"a floating-point dtype{mask}")
            raise SignatureError(key, expected, f"dtype {x.dtype}")
        if device is not None and x.device != device:
            raise SignatureError(key, f"a tensor on {device} (the module's device)", f"a tensor on {x.device}")
        lead = x.dim() - len(shape)
        if lead < 0 or x.shape[lead:] != shape:
            raise SignatureError(key, f"shape (*batch, {', '.join(map(str, shape))})",
                                 f"shape {tuple(x.shape)}")
        if first is None:
            first = (key, x.shape[:lead])
        elif x.shape[:lead] != first[1]:
            raise SignatureError(key, f"leading batch dims {tuple(first[1])} like input '{first[0]}'",
                                 f"{tuple(x.shape[:lead])} (shape {tuple(x.shape)})")
    problem = index_problem(index_limits, inputs)
    if problem is not None:
        raise SignatureError(*problem)


#: what a failed fast check calls: plain Python even inside compiled code (typeguard cannot be traced)
diagnose_outside_graph = outside_graph(diagnose)
