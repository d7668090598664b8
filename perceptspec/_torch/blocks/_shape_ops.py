"""Build rules of the parameter-free blocks (Flatten, Concat, Slice, ..., Functional).

Each module stores its dims counted from the end (negative), so it takes any number of leading batch dims.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from perceptspec._errors import ShapeError, SpecError
from perceptspec._core import Shape
from perceptspec._fold._rules import shape_rules
from perceptspec._fold.rules._shape_ops import actor_actions, correlation_alignment, feature_index, pooled_dims
from perceptspec._spec import (ActionMasking, Concat, Correlation, Flatten, Functional, GlobalAveragePooling,
                               Initializer, MaskedGlobalPooling, MultiIndexSlicing, RepeatToMatch, Slice)
from perceptspec._spec._shape_ops import as_ints, registered_function, thawed_params
from perceptspec._torch._tables import torch_builders


def _from_end(shape: Shape, k: int) -> int:
    """Feature index `k` of `shape` as a negative dim, valid whatever the leading batch dims."""
    return k - len(shape)


def _lowest(x: torch.Tensor) -> float:
    return torch.finfo(x.dtype).min


class _Flatten(nn.Module):
    def __init__(self, num_flatten_dims: int) -> None:
        super().__init__()
        self.start = -num_flatten_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x, start_dim=self.start)

    def extra_repr(self) -> str:
        return f"start_dim={self.start}"


@torch_builders.register(Flatten)
def _flatten_build_rule(block: Flatten, ins: tuple[Shape, ...], init: Initializer,
                        generator: torch.Generator | None) -> nn.Module:
    return _Flatten(block.num_flatten_dims)



class _Concat(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


@torch_builders.register(Concat)
def _concat_build_rule(block: Concat, ins: tuple[Shape, ...], init: Initializer,
                       generator: torch.Generator | None) -> nn.Module:
    return _Concat(_from_end(ins[0], feature_index(ins[0], 0, "concat_dim", block.concat_dim)))



class _Slice(nn.Module):
    def __init__(self, dim: int, index: int) -> None:
        super().__init__()
        self.dim, self.index = dim, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.narrow(x, self.dim, self.index, 1).squeeze(self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, index={self.index}"


@torch_builders.register(Slice)
def _slice_build_rule(block: Slice, ins: tuple[Shape, ...], init: Initializer,
                      generator: torch.Generator | None) -> nn.Module:
    x = ins[0]
    k = feature_index(x, 0, "slice_dim", block.slice_dim)
    return _Slice(_from_end(x, k), block.slice_idx % x[k])



class _MultiIndexSlicing(nn.Module):
    index: torch.Tensor

    def __init__(self, dim: int, index: Sequence[int]) -> None:
        super().__init__()
        self.dim = dim
        # not persistent: the indices come from the spec, so state_dict stays the parameters (none)
        self.register_buffer("index", torch.tensor(index, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.index_select(x, self.dim, self.index)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, index={self.index.tolist()}"


@torch_builders.register(MultiIndexSlicing)
def _multi_index_slicing_build_rule(block: MultiIndexSlicing, ins: tuple[Shape, ...], init: Initializer,
                                    generator: torch.Generator | None) -> nn.Module:
    x = ins[0]
    k = feature_index(x, 0, "select_dim", block.select_dim)
    return _MultiIndexSlicing(_from_end(x, k), [i % x[k] for i in as_ints(block.select_idxs)])



class _RepeatToMatch(nn.Module):
    def __init__(self, dim: int, source_dim: int) -> None:
        super().__init__()
        self.dim, self.source_dim = dim, source_dim

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        repeats = [1] * x.dim()
        repeats[self.dim] = target.shape[self.source_dim]
        return x.repeat(*repeats)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, source_dim={self.source_dim}"


@torch_builders.register(RepeatToMatch)
def _repeat_to_match_build_rule(block: RepeatToMatch, ins: tuple[Shape, ...], init: Initializer,
                                generator: torch.Generator | None) -> nn.Module:
    a, b = ins
    return _RepeatToMatch(_from_end(a, feature_index(a, 0, "repeat_at_idx", block.repeat_at_idx)),
                          _from_end(b, feature_index(b, 1, "repeat_at_idx", block.repeat_at_idx)))



class _GlobalAveragePooling(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.mean(x, dim=(-2, -1))


@torch_builders.register(GlobalAveragePooling)
def _global_average_pooling_build_rule(block: GlobalAveragePooling, ins: tuple[Shape, ...], init: Initializer,
                                       generator: torch.Generator | None) -> nn.Module:
    return _GlobalAveragePooling()



class _MaskedGlobalPooling(nn.Module):
    """Pools over `dims` (negative); a mask (`trailing` dims fewer than the values) broadcasts over the rest."""

    def __init__(self, pooling_func: str, dims: tuple[int, ...], trailing: int) -> None:
        super().__init__()
        self.pooling_func, self.dims, self.trailing = pooling_func, dims, trailing

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            if self.pooling_func == "max":
                return x.amax(self.dims)
            return x.sum(self.dims) if self.pooling_func == "sum" else x.mean(self.dims)
        keep = (mask != 0).reshape(*mask.shape, *(1,) * self.trailing).expand_as(x)
        if self.pooling_func == "max":
            pooled = x.masked_fill(~keep, _lowest(x)).amax(self.dims)
            return torch.where(keep.any(self.dims), pooled, torch.zeros((), dtype=x.dtype, device=x.device))
        total = x.masked_fill(~keep, 0).sum(self.dims)
        if self.pooling_func == "sum":
            return total
        return total / keep.sum(self.dims).clamp(min=1)

    def extra_repr(self) -> str:
        return f"{self.pooling_func}, dims={self.dims}"


@torch_builders.register(MaskedGlobalPooling)
def _masked_global_pooling_build_rule(block: MaskedGlobalPooling, ins: tuple[Shape, ...], init: Initializer,
                                      generator: torch.Generator | None) -> nn.Module:
    x = ins[0]
    dims = tuple(_from_end(x, k) for k in pooled_dims(block, x))
    trailing = len(x) - len(ins[1]) if len(ins) == 2 else 0
    return _MaskedGlobalPooling(block.pooling_func, dims, trailing)


class _Correlation(nn.Module):
    """Reshapes each input's feature dims to their aligned shape (size-1 dims inserted), multiplies, reduces."""

    def __init__(self, shapes: tuple[Shape, Shape], aligned: tuple[Shape, Shape], reduce: bool) -> None:
        super().__init__()
        self.ranks = (len(shapes[0]), len(shapes[1]))
        self.aligned = aligned
        self.reduce = reduce

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a = a.reshape(*a.shape[:a.dim() - self.ranks[0]], *self.aligned[0])
        b = b.reshape(*b.shape[:b.dim() - self.ranks[1]], *self.aligned[1])
        product = a * b
        return product.sum(-1) if self.reduce else product

    def extra_repr(self) -> str:
        return f"aligned={self.aligned}, reduce={self.reduce}"


@torch_builders.register(Correlation)
def _correlation_build_rule(block: Correlation, ins: tuple[Shape, ...], init: Initializer,
                            generator: torch.Generator | None) -> nn.Module:
    a, b = ins
    return _Correlation((a, b), correlation_alignment(a, b), block.reduce)


class _ActionMasking(nn.Module):
    def __init__(self, num_actors: int, actions: int) -> None:
        super().__init__()
        self.num_actors, self.actions = num_actors, actions

    def forward(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        masked_out = mask == 0
        if self.num_actors == 1:
            return logits.masked_fill(masked_out, _lowest(logits))
        n = self.actions
        return tuple(logits[..., i * n:(i + 1) * n].masked_fill(masked_out[..., i, :], _lowest(logits))
                     for i in range(self.num_actors))

    def extra_repr(self) -> str:
        return f"num_actors={self.num_actors}, actions={self.actions}"


@torch_builders.register(ActionMasking)
def _action_masking_build_rule(block: ActionMasking, ins: tuple[Shape, ...], init: Initializer,
                               generator: torch.Generator | None) -> nn.Module:
    logits, mask = ins
    actions = logits[-1] if block.num_actors == 1 else actor_actions(block, mask)
    return _ActionMasking(block.num_actors, actions)



# --- Functional ---------------------------------------------------------------------------------------------

def _identity(*xs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
    return xs[0] if len(xs) == 1 else xs


def _sum_last(x: torch.Tensor) -> torch.Tensor:
    return x.sum(-1)


def _mean_last(x: torch.Tensor) -> torch.Tensor:
    return x.mean(-1)


def _max_last(x: torch.Tensor) -> torch.Tensor:
    return x.amax(-1)


def _softmax_last(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x, -1)


def _log_softmax_last(x: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(x, -1)


def _support_to_scalar(logits: torch.Tensor, *, support_range: tuple[int, int]) -> torch.Tensor:
    low, high = support_range
    support = torch.arange(low, high + 1, dtype=logits.dtype, device=logits.device)
    return (torch.softmax(logits, -1) * support).sum(-1)


#: tensor functions of the built-ins that `perceptspec._spec._shape_ops.BUILTIN_FUNCTIONS` names
BUILTIN_TENSOR_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "identity": _identity, "sum_last": _sum_last, "mean_last": _mean_last, "max_last": _max_last,
    "softmax_last": _softmax_last, "log_softmax_last": _log_softmax_last, "add": torch.add, "mul": torch.mul,
    "support_to_scalar": _support_to_scalar,
}


class _Functional(nn.Module):
    """Calls a registered tensor function. A user's function is checked against its own shape function: each
    output must have the input's leading dims, then the shape the fold promised."""

    def __init__(self, block: Functional, fn: Callable[..., Any], ins: tuple[Shape, ...], check: bool) -> None:
        super().__init__()
        self.name, self.fn, self.n_outputs = block.func, fn, len(block.out_keys)
        self.params = thawed_params(block)
        self.out_keys, self.check = tuple(block.out_keys), check
        self.out_shapes = shape_rules.lookup(Functional)(block, ins)
        self.in_rank = len(ins[0])
        self.kind = type(block).__name__
        self.block_path: str | None = None  # set by build_blocks: errors name the block

    def forward(self, *xs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        out = self.fn(*xs, **self.params)
        outs = (out,) if isinstance(out, torch.Tensor) else tuple(out) if isinstance(out, Sequence) else (out,)
        if len(outs) != self.n_outputs or not all(isinstance(o, torch.Tensor) for o in outs):
            raise ShapeError(f"function {self.name!r} returned {type(out).__name__} (of {len(outs)}), expected "
                             f"{self.n_outputs} tensor(s), one per out key", block=self.block_path,
                             block_type=self.kind, key=self.out_keys[0])
        if self.check:
            lead = tuple(xs[0].shape[:xs[0].dim() - self.in_rank])
            for key, o, shape in zip(self.out_keys, outs, self.out_shapes):
                if tuple(o.shape) != (*lead, *shape):
                    raise ShapeError(f"function {self.name!r} returned shape {tuple(o.shape)}, expected "
                                     f"{(*lead, *shape)} (the batch dims {lead}, then {shape} from its shape "
                                     f"function)", block=self.block_path, block_type=self.kind, key=key)
        return outs[0] if self.n_outputs == 1 else outs

    def extra_repr(self) -> str:
        return repr(self.name)


@torch_builders.register(Functional)
def _functional_build_rule(block: Functional, ins: tuple[Shape, ...], init: Initializer,
                           generator: torch.Generator | None) -> nn.Module:
    registered = registered_function(block.func)
    fn = registered.tensor_fn or BUILTIN_TENSOR_FUNCTIONS.get(block.func)
    if fn is None:
        raise SpecError(block._where(), [f"field 'func': function {block.func!r} has no tensor function, so it "
                                         f"cannot be materialized: register one with ps.register_function("
                                         f"{block.func!r}, shape_fn, tensor_fn)"])
    return _Functional(block, fn, ins, check=registered.tensor_fn is not None)
