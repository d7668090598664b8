"""Pure rules of the parameter-free blocks: Flatten, Concat, Slice, MultiIndexSlicing, RepeatToMatch,
GlobalAveragePooling, MaskedGlobalPooling, Correlation, ActionMasking and Functional.

Dims follow Maze (see `perceptspec._spec._shape_ops`): `feature_index` turns one into an index of the feature shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from perceptspec._core import Shape
from perceptspec._fold._rules import Mismatch, label_rules, param_rules, require_rank, shape_rules
from perceptspec._spec import (ActionMasking, Concat, Correlation, Flatten, Functional, GlobalAveragePooling,
                               MaskedGlobalPooling, MultiIndexSlicing, RepeatToMatch, Slice)
from perceptspec._spec._shape_ops import as_ints, registered_function, thawed_params


def feature_index(shape: Shape, index: int, field: str, dim: int) -> int:
    """The index into the feature shape `shape` (of input `index`) that Maze's `dim` names."""
    k = len(shape) + dim if dim < 0 else dim - 1
    if not 0 <= k < len(shape):
        need = -dim if dim < 0 else dim
        raise Mismatch(index, f"a shape with at least {need} dim(s) for {field}={dim}", shape)
    return k


def _pattern(shape: Shape, k: int, size: str = "*") -> str:
    """`shape` written with dim `k` replaced: (4, *, 5)."""
    return "(" + ", ".join(size if j == k else str(s) for j, s in enumerate(shape)) + ")"


def _check_index(shape: Shape, k: int, field: str, dim: int, i: int, idx_field: str) -> None:
    if not -shape[k] <= i < shape[k]:
        raise Mismatch(0, f"at least {i + 1 if i >= 0 else -i} entries in dim {field}={dim} for {idx_field}={i}",
                       shape)


@param_rules.register(Flatten, Concat, Slice, MultiIndexSlicing, RepeatToMatch, GlobalAveragePooling,
                      MaskedGlobalPooling, Correlation, ActionMasking, Functional)
def _shape_op_param_rule(block: object, ins: tuple[Shape, ...]) -> int:
    return 0


@shape_rules.register(Flatten)
def _flatten_shape_rule(block: Flatten, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    (x,) = ins
    n = block.num_flatten_dims
    if len(x) < n:
        raise Mismatch(0, f"a shape with at least {n} dim(s) to flatten (num_flatten_dims={n})", x)
    return (x[:len(x) - n] + (math.prod(x[len(x) - n:]),),)


@label_rules.register(Flatten)
def _flatten_label_rule(block: Flatten, ins: tuple[Shape, ...]) -> str:
    flat = ins[0][len(ins[0]) - block.num_flatten_dims:]
    return f"Flatten {'×'.join(map(str, flat))}→{math.prod(flat)}"


@shape_rules.register(Concat)
def _concat_shape_rule(block: Concat, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    first = ins[0]
    k = feature_index(first, 0, "concat_dim", block.concat_dim)
    for i, shape in enumerate(ins[1:], 1):
        if len(shape) != len(first) or shape[:k] != first[:k] or shape[k + 1:] != first[k + 1:]:
            raise Mismatch(i, f"a shape {_pattern(first, k)} (the first input's {first} in every dim but "
                              f"concat_dim={block.concat_dim})", shape)
    return (first[:k] + (sum(s[k] for s in ins),) + first[k + 1:],)


@label_rules.register(Concat)
def _concat_label_rule(block: Concat, ins: tuple[Shape, ...]) -> str:
    k = len(ins[0]) + block.concat_dim if block.concat_dim < 0 else block.concat_dim - 1
    sizes = [s[k] for s in ins]
    return f"Concat dim {block.concat_dim} {'+'.join(map(str, sizes))}→{sum(sizes)}"


@shape_rules.register(Slice)
def _slice_shape_rule(block: Slice, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    (x,) = ins
    k = feature_index(x, 0, "slice_dim", block.slice_dim)
    _check_index(x, k, "slice_dim", block.slice_dim, block.slice_idx, "slice_idx")
    return (x[:k] + x[k + 1:],)


@label_rules.register(Slice)
def _slice_label_rule(block: Slice, ins: tuple[Shape, ...]) -> str:
    return f"Slice dim {block.slice_dim} [{block.slice_idx}]"


@shape_rules.register(MultiIndexSlicing)
def _multi_index_slicing_shape_rule(block: MultiIndexSlicing, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    (x,) = ins
    k = feature_index(x, 0, "select_dim", block.select_dim)
    for i in as_ints(block.select_idxs):
        _check_index(x, k, "select_dim", block.select_dim, i, "select_idxs")
    return (x[:k] + (len(as_ints(block.select_idxs)),) + x[k + 1:],)


@label_rules.register(MultiIndexSlicing)
def _multi_index_slicing_label_rule(block: MultiIndexSlicing, ins: tuple[Shape, ...]) -> str:
    return f"MultiIndexSlicing dim {block.select_dim} {list(as_ints(block.select_idxs))}"


@shape_rules.register(RepeatToMatch)
def _repeat_to_match_shape_rule(block: RepeatToMatch, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    a, b = ins
    ka = feature_index(a, 0, "repeat_at_idx", block.repeat_at_idx)
    kb = feature_index(b, 1, "repeat_at_idx", block.repeat_at_idx)
    if a[ka] != 1:
        raise Mismatch(0, f"a shape {_pattern(a, ka, '1')} (size 1 at repeat_at_idx={block.repeat_at_idx}, to "
                          f"repeat)", a)
    return (a[:ka] + (b[kb],) + a[ka + 1:],)


@label_rules.register(RepeatToMatch)
def _repeat_to_match_label_rule(block: RepeatToMatch, ins: tuple[Shape, ...]) -> str:
    b = ins[1]
    kb = len(b) + block.repeat_at_idx if block.repeat_at_idx < 0 else block.repeat_at_idx - 1
    return f"RepeatToMatch dim {block.repeat_at_idx} 1→{b[kb]}"


@shape_rules.register(GlobalAveragePooling)
def _global_average_pooling_shape_rule(block: GlobalAveragePooling, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    (x,) = ins
    require_rank(x, 0, 3, "(..., channels, height, width)")
    return (x[:-2],)


@label_rules.register(GlobalAveragePooling)
def _global_average_pooling_label_rule(block: GlobalAveragePooling, ins: tuple[Shape, ...]) -> str:
    return f"GlobalAveragePooling {ins[0][-2]}×{ins[0][-1]}"


def pooled_dims(block: MaskedGlobalPooling, x: Shape) -> tuple[int, ...]:
    """The feature indices `block` pools over for values of shape `x` (distinct, else a Mismatch)."""
    given = as_ints(block.pooling_dim)
    dims = tuple(feature_index(x, 0, "pooling_dim", d) for d in given)
    if len(set(dims)) != len(dims):
        raise Mismatch(0, f"pooling_dim={list(given)} to name distinct dims", x)
    return dims


@shape_rules.register(MaskedGlobalPooling)
def _masked_global_pooling_shape_rule(block: MaskedGlobalPooling, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    x = ins[0]
    require_rank(x, 0, 2, "(..., entries, features)")
    if len(ins) == 2:
        mask = ins[1]
        if not mask or len(mask) > len(x) or x[:len(mask)] != mask:
            raise Mismatch(1, f"a mask shape that begins the values' shape {x}, e.g. {x[:-1]}", mask)
    dims = pooled_dims(block, x)
    return (tuple(s for j, s in enumerate(x) if j not in dims),)


@label_rules.register(MaskedGlobalPooling)
def _masked_global_pooling_label_rule(block: MaskedGlobalPooling, ins: tuple[Shape, ...]) -> str:
    given = as_ints(block.pooling_dim)
    dims = given[0] if len(given) == 1 else list(given)
    masked = " masked" if len(ins) == 2 else ""
    return f"MaskedGlobalPooling {block.pooling_func} dim {dims}{masked}"


def correlation_alignment(a: Shape, b: Shape) -> tuple[Shape, Shape]:
    """The shapes Maze's CorrelationBlock broadcasts `a` and `b` to: walking the dims from the first, where sizes
    differ and neither is 1, a 1 is inserted into the input of lower rank (`b` on a tie)."""
    require_rank(a, 0, 1, "(..., features)")
    require_rank(b, 1, 1, "(..., features)")
    if a[-1] != b[-1]:
        raise Mismatch(1, f"a last dim of {a[-1]} like the first input's {a}", b)
    original_a, original_b = a, b
    for d in range(max(len(a), len(b))):
        if d >= len(a) or d >= len(b):
            break
        if a[d] != b[d] and 1 not in (a[d], b[d]):
            if len(a) < len(b):
                a = a[:d] + (1,) + a[d:]
            else:
                b = b[:d] + (1,) + b[d:]
    if len(a) != len(b) or any(x != y and 1 not in (x, y) for x, y in zip(a, b)):
        raise Mismatch(1, f"a shape that aligns with the first input's {original_a} (equal sizes or 1 in each dim "
                          f"once a 1 is inserted into the lower-rank input where sizes differ)", original_b)
    return a, b


@shape_rules.register(Correlation)
def _correlation_shape_rule(block: Correlation, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    a, b = correlation_alignment(*ins)
    out = tuple(max(x, y) for x, y in zip(a, b))
    return (out[:-1] if block.reduce else out,)


@label_rules.register(Correlation)
def _correlation_label_rule(block: Correlation, ins: tuple[Shape, ...]) -> str:
    return "Correlation sum" if block.reduce else "Correlation"


def actor_actions(block: ActionMasking, mask: Shape) -> int:
    """Actions per actor: `num_of_actor_actions`, or the mask's last dim when it is None."""
    return block.num_of_actor_actions if block.num_of_actor_actions is not None else mask[-1]


@shape_rules.register(ActionMasking)
def _action_masking_shape_rule(block: ActionMasking, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    logits, mask = ins
    require_rank(logits, 0, 1, "(..., actions)")
    if block.num_actors == 1:
        n = block.num_of_actor_actions
        if n is not None and logits[-1] != n:
            raise Mismatch(0, f"a last dim of num_of_actor_actions={n}", logits)
        if mask != logits:
            raise Mismatch(1, f"the logits' shape {logits}", mask)
        return (logits,)
    actors = block.num_actors
    require_rank(mask, 1, 2, "(..., num_actors, actions)")
    n = actor_actions(block, mask)
    if mask[-2:] != (actors, n):
        raise Mismatch(1, f"a shape (..., {actors}, {n}) (num_actors, num_of_actor_actions)", mask)
    if logits[-1] != actors * n:
        raise Mismatch(0, f"a last dim of num_actors * num_of_actor_actions = {actors * n}", logits)
    if logits[:-1] != mask[:-2]:
        raise Mismatch(1, f"a shape {logits[:-1] + (actors, n)} (the logits' leading dims, then num_actors and "
                          f"num_of_actor_actions)", mask)
    return (logits[:-1] + (n,),) * actors


@label_rules.register(ActionMasking)
def _action_masking_label_rule(block: ActionMasking, ins: tuple[Shape, ...]) -> str:
    if block.num_actors == 1:
        return "ActionMasking"
    return f"ActionMasking {block.num_actors}×{actor_actions(block, ins[1])}"


def _is_shape(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str) \
        and all(isinstance(d, int) and not isinstance(d, bool) for d in value)


@shape_rules.register(Functional)
def _functional_shape_rule(block: Functional, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    fn = registered_function(block.func)
    index, got = (0, ins[0]) if len(ins) == 1 else (None, list(ins))
    try:
        result = fn.shape_fn(*ins, **thawed_params(block))
    except ValueError as e:
        raise Mismatch(index, f"{e or 'shapes it accepts'} (function {block.func!r})", got) from None
    except Exception as e:  # a shape function that fails otherwise still must not escape as a raw error
        raise Mismatch(index, f"shapes function {block.func!r} can take (it raised {type(e).__name__}: {e})",
                       got) from None
    shapes = [result] if _is_shape(result) else result
    if not isinstance(shapes, Sequence) or len(shapes) != len(block.out_keys) \
            or not all(_is_shape(s) and all(d > 0 for d in s) for s in shapes):
        raise Mismatch(None, f"function {block.func!r} to give {len(block.out_keys)} shape(s) of positive ints, "
                             f"one per out key", result)
    return tuple(tuple(s) for s in shapes)


@label_rules.register(Functional)
def _functional_label_rule(block: Functional, ins: tuple[Shape, ...]) -> str:
    params = ", ".join(f"{k}={v!r}" for k, v in thawed_params(block).items())
    return f"Functional {block.func}({params})" if params else f"Functional {block.func}"
