"""Parameter-free blocks that reshape, select, combine, pool and mask tensors (Maze's "general" blocks).

Dims count as in Maze, whose tensors carry one batch dim in front of the feature shape: a negative dim counts from
the end of the feature shape (-1 is the last dim), a positive one counts that batch dim, so 1 is the first feature
dim. Dim 0 (the batch) is rejected: these blocks work per sample, and at run time any number of leading batch dims
is accepted. So a Maze model ports with its dims unchanged.

`Functional` names its function: `register_function` keeps a pure shape function (and optionally the tensor
function) under a name, so specs hold a string, stay hashable and serialize, and the shape fold never runs torch.
"""

from __future__ import annotations

import dataclasses
import inspect
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from pyrsistent import pmap

from perceptspec._errors import SpecError
from perceptspec._spec._block import Block
from perceptspec._spec._descriptor import descriptor, ordered_items
from perceptspec._spec._plain import frozen_plain, plain_problem, thaw

__all__ = ["ActionMasking", "Concat", "Correlation", "Flatten", "Functional", "GlobalAveragePooling",
           "MaskedGlobalPooling", "MultiIndexSlicing", "POOLING_FUNCTIONS", "RepeatToMatch", "Slice",
           "register_function"]

POOLING_FUNCTIONS = ("mean", "sum", "max")
"""The `pooling_func` names `MaskedGlobalPooling` takes."""


def dim_problem(field: str, dim: int) -> str | None:
    """Why `dim` cannot name a feature dim (only 0, Maze's batch dim, is refused before shapes are known)."""
    if dim == 0:
        return (f"field '{field}': dim 0 is the batch dim (dims count as in Maze: -1 is the last feature dim, 1 the "
                f"first), got 0")
    return None


def _int_or_ints(value: object) -> object:
    """Maze takes one int or a list of ints: one int becomes a 1-tuple (a list is already a tuple here)."""
    if isinstance(value, bool):
        raise TypeError("expected an int or a sequence of ints, not a bool")
    if not isinstance(value, tuple) and hasattr(value, "__index__"):
        return (operator.index(value),)
    return value


def as_ints(value: int | Sequence[int]) -> tuple[int, ...]:
    """A field given as `int | Sequence[int]` as the tuple it is after construction (typed for mypy)."""
    return (value,) if isinstance(value, int) else tuple(value)


@descriptor
class Flatten(Block):
    """Flattens the last `num_flatten_dims` feature dims into one, as Maze's FlattenBlock.

    (..., d1, ..., dn) -> (..., d1 * ... * dn) with n = num_flatten_dims.

    Examples:
        >>> block = ps.Flatten(in_keys="screen", out_keys="flat", num_flatten_dims=3)
        >>> ps.infer_shapes(block, {"screen": (3, 8, 8)})["flat"]
        (192,)
    """

    num_flatten_dims: int
    """How many trailing dims are flattened into one."""

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        if self.num_flatten_dims <= 0:
            yield f"field 'num_flatten_dims': expected a positive int, got {self.num_flatten_dims}"


@descriptor
class Concat(Block):
    """Concatenates its inputs along `concat_dim`, as Maze's ConcatenationBlock (one input passes through: a
    template composer concatenates whatever modalities there are, possibly one).

    All inputs have the same rank and equal sizes in every other dim. Negative dims count from the end.

    Examples:
        >>> block = ps.Concat(in_keys=["a", "b"], out_keys="ab")
        >>> ps.infer_shapes(block, {"a": (4,), "b": (6,)})["ab"]
        (10,)
    """

    n_inputs: ClassVar[int | None] = None

    concat_dim: int = -1
    """The dim to concatenate along (Maze's dims: -1 the last feature dim, 1 the first)."""

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        if problem := dim_problem("concat_dim", self.concat_dim):
            yield problem


@descriptor
class Slice(Block):
    """Selects index `slice_idx` of dim `slice_dim` and removes that dim, as Maze's SliceBlock.

    E.g. the last step of a sequence: (..., T, F) -> (..., F) with slice_dim=-2, slice_idx=-1.

    Examples:
        >>> block = ps.Slice(in_keys="seq", out_keys="last", slice_dim=-2, slice_idx=-1)
        >>> ps.infer_shapes(block, {"seq": (5, 16)})["last"]
        (16,)
    """

    slice_dim: int
    """The dim to select from (Maze's dims: -1 the last feature dim, 1 the first)."""
    slice_idx: int
    """The index to keep; negative counts from the end."""

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        if problem := dim_problem("slice_dim", self.slice_dim):
            yield problem


@descriptor
class MultiIndexSlicing(Block):
    """Selects the indices `select_idxs` (one int or several, repeats allowed) of dim `select_dim`, keeping the
    dim, as Maze's MultiIndexSlicingBlock: like `x[..., [a, b]]`. Negative indices count from the end.

    Examples:
        >>> block = ps.MultiIndexSlicing(in_keys="x", out_keys="y", select_dim=-1, select_idxs=[0, 2])
        >>> ps.infer_shapes(block, {"x": (4,)})["y"]
        (2,)
    """

    _converters: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"select_idxs": _int_or_ints}

    select_dim: int
    """The dim to select from (Maze's dims)."""
    select_idxs: int | Sequence[int]
    """The indices to keep, in order (one int or several; repeats allowed)."""

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        if problem := dim_problem("select_dim", self.select_dim):
            yield problem
        if not as_ints(self.select_idxs):
            yield "field 'select_idxs': expected one or more indices, got []"


@descriptor
class RepeatToMatch(Block):
    """Repeats the first input along dim `repeat_at_idx` (where its size is 1) to the second input's size there,
    as Maze's RepeatToMatchBlock. The output has the first input's shape otherwise; the second only lends a size.

    Examples:
        >>> block = ps.RepeatToMatch(in_keys=["x", "like"], out_keys="y", repeat_at_idx=-2)
        >>> ps.infer_shapes(block, {"x": (1, 8), "like": (5, 3)})["y"]
        (5, 8)
    """

    n_inputs: ClassVar[int | None] = 2

    repeat_at_idx: int
    """The dim (size 1 in the first input) repeated to the second input's size."""

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        if problem := dim_problem("repeat_at_idx", self.repeat_at_idx):
            yield problem


@descriptor
class GlobalAveragePooling(Block):
    """The mean over the last two dims, as Maze's GlobalAveragePoolingBlock: (..., C, H, W) -> (..., C).

    Examples:
        >>> block = ps.GlobalAveragePooling(in_keys="maps", out_keys="pooled")
        >>> ps.infer_shapes(block, {"maps": (16, 8, 8)})["pooled"]
        (16,)
    """


@descriptor
class MaskedGlobalPooling(Block):
    """Pools (`pooling_func` 'mean', 'sum' or 'max') over `pooling_dim` (one dim or several), as Maze's
    MaskedGlobalPoolingBlock; the pooled dims are removed.

    An optional second input is a mask (bool, or 0/1 floats) whose shape is a prefix of the first input's, e.g.
    values (..., N, F) and mask (..., N): masked-out entries are ignored (mean divides by the number of kept
    entries). Where every pooled entry is masked out the result is 0 (Maze's gives NaN for 'mean', 0/0, and
    float32's lowest value for 'max'; every other row is the same).

    Examples:
        >>> block = ps.MaskedGlobalPooling(in_keys=["items", "mask"], out_keys="pooled",
        ...                                pooling_func="mean", pooling_dim=-2)
        >>> ps.infer_shapes(block, {"items": (10, 4), "mask": (10,)})["pooled"]
        (4,)
    """

    n_inputs: ClassVar[int | None] = None
    _converters: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"pooling_dim": _int_or_ints}
    _choices: ClassVar[Mapping[str, Sequence[str]]] = {"pooling_func": POOLING_FUNCTIONS}

    pooling_func: str
    """How the kept entries are pooled."""
    pooling_dim: int | Sequence[int]
    """The dim or dims pooled over and removed (Maze's dims)."""

    def input_roles(self) -> tuple[str, ...]:
        return ("features", "mask")[:len(self.in_keys)]

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        if len(self.in_keys) not in (1, 2):
            yield f"field 'in_keys': MaskedGlobalPooling takes a value key and an optional mask key, got " \
                  f"{list(self.in_keys)}"
        if self.pooling_func not in POOLING_FUNCTIONS:
            yield f"field 'pooling_func': expected one of {', '.join(POOLING_FUNCTIONS)}, got {self.pooling_func!r}"
        dims = as_ints(self.pooling_dim)
        if not dims:
            yield "field 'pooling_dim': expected one or more dims, got []"
        elif len(set(dims)) != len(dims):
            yield f"field 'pooling_dim': dims repeat in {list(dims)}"
        if problem := dim_problem("pooling_dim", 0 if 0 in dims else -1):
            yield problem


@descriptor
class Correlation(Block):
    """The elementwise product of two inputs, summed over the last dim if `reduce`, as Maze's CorrelationBlock.

    Both inputs have the same last dim. Walking the dims from the first, where the sizes differ and neither is 1,
    a size-1 dim is inserted into the input of lower rank (the second on a tie) to broadcast: keys (N, F) and
    queries (M, F) give (N, M, F), or (N, M) reduced.

    Examples:
        >>> block = ps.Correlation(in_keys=["a", "b"], out_keys="c", reduce=True)
        >>> ps.infer_shapes(block, {"a": (5, 8), "b": (5, 8)})["c"]
        (5,)
    """

    n_inputs: ClassVar[int | None] = 2

    reduce: bool
    """Sum the product over the last dim (removing it)."""


@descriptor
class ActionMasking(Block):
    """Inputs [logits, mask]: logits where the mask is False (or 0) become the dtype's lowest value, as Maze's
    ActionMaskingBlock.

    One actor: logits (..., A) and mask (..., A) of the same shape -> one output. `num_actors` > 1: logits
    (..., num_actors * n) and mask (..., num_actors, n) with n = `num_of_actor_actions` (None: the mask's last dim)
    -> one output (..., n) per actor, so one out key per actor.

    Examples:
        >>> block = ps.ActionMasking(in_keys=["logits", "mask"], out_keys="masked")
        >>> ps.infer_shapes(block, {"logits": (4,), "mask": (4,)})["masked"]
        (4,)
    """

    n_inputs: ClassVar[int | None] = 2
    n_outputs: ClassVar[int | None] = None

    num_actors: int = 1
    """How many actors' logits the block masks (Maze's `num_actors`)."""
    num_of_actor_actions: int | None = None
    """Actions per actor; None: the logits' last dim."""

    def input_roles(self) -> tuple[str, ...]:
        return ("features", "mask")

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        if self.num_actors <= 0:
            yield f"field 'num_actors': expected a positive int, got {self.num_actors}"
        elif len(self.out_keys) != self.num_actors:
            yield f"field 'out_keys': expected one key per actor (num_actors={self.num_actors}), got " \
                  f"{list(self.out_keys)}"
        if self.num_of_actor_actions is not None and self.num_of_actor_actions <= 0:
            yield f"field 'num_of_actor_actions': expected a positive int or None, got {self.num_of_actor_actions}"


# --- Functional and its registry -----------------------------------------------------------------------------

ShapeFunction = Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class RegisteredFunction:
    """What a `Functional` block's name stands for.

    shape_fn: input feature shapes (one positional tuple per input, no batch dims) -> the output shape, or a
        sequence of shapes when there are several out keys; raises ValueError for inputs it cannot take.
    tensor_fn: the tensors (with any leading batch dims) -> a tensor, or a sequence of tensors; None for the
        built-ins, whose tensor functions live with torch.
    """

    name: str
    shape_fn: ShapeFunction
    tensor_fn: Callable[..., Any] | None


_functions: dict[str, RegisteredFunction] = {}


def _is_callable(value: object) -> bool:
    # a plain bool, not callable()'s type narrowing, which trips mypy's incremental cache across star imports
    return callable(value)


def register_function(name: str, shape_fn: ShapeFunction, tensor_fn: Callable[..., Any] | None = None) -> None:
    """Make `name` usable as `Functional(func=name)`.

    Names are global and permanent (shape folds are memoised): registering the same name again is allowed
    only with the same functions.

    Arguments:
        name: the name specs hold.
        shape_fn: pure, `(*in_shapes) -> out_shape` (a tuple of ints without batch dims; a sequence of them
            for several outputs); raise ValueError for shapes it cannot take. Shape folds call only this: no
            torch needed.
        tensor_fn: `(*tensors) -> tensor(s)`, working on the trailing dims (inputs may have any leading batch
            dims); needed to materialize. Import-time registration keeps a spec loadable wherever its module
            is imported.

    Examples:
        >>> ps.register_function("double_last", lambda shape: (*shape[:-1], 2 * shape[-1]),
        ...                      lambda x: x.repeat_interleave(2, dim=-1))
        >>> ps.infer_shapes(ps.Functional(in_keys="x", out_keys="y", func="double_last"), {"x": (3,)})["y"]
        (6,)
    """
    problems = []
    if not isinstance(name, str) or not name or name != name.strip():
        problems.append(f"name: expected a non-empty string without surrounding spaces, got {name!r}")
    given: dict[str, object] = {"shape_fn": shape_fn, "tensor_fn": tensor_fn}  # checked: callers may be untyped
    for arg, expected in (("shape_fn", "(input shapes -> output shapes)"), ("tensor_fn", "(tensors -> tensors)")):
        value = given[arg]
        if not _is_callable(value) and not (arg == "tensor_fn" and value is None):
            problems.append(f"{arg}: expected a callable {expected}, got {value!r}")
    if not problems:
        existing = _functions.get(name)
        if existing is not None and (existing.shape_fn is not shape_fn or existing.tensor_fn is not tensor_fn):
            builtin = " (a built-in)" if name in BUILTIN_FUNCTIONS else ""
            problems.append(f"name: function {name!r}{builtin} is already registered with other functions; names "
                            f"are permanent, so pick a new one (e.g. '{name}_v2')")
    if problems:
        raise SpecError("register_function", problems)
    _functions[name] = RegisteredFunction(name, shape_fn, tensor_fn)


def registered_function(name: str) -> RegisteredFunction:
    """The function registered under `name`; a `SpecError` listing the known names if there is none."""
    try:
        return _functions[name]
    except KeyError:
        raise SpecError("Functional", [_unknown_function(name)]) from None


def thawed_params(block: Functional) -> dict[str, object]:
    """A Functional's params as its functions receive them (tuples and dicts, keys in sorted order)."""
    return {k: thaw(v) for k, v in ordered_items(block.params)}


def _unknown_function(name: str) -> str:
    return (f"field 'func': no function is registered as {name!r} (register it with ps.register_function before "
            f"building or loading the spec; known: {', '.join(sorted(_functions))})")


@descriptor
class Functional(Block):
    """Applies the registered function named `func` (see `register_function`), as Maze's FunctionalBlock does
    with a callable: each input is a positional argument, each output goes to one out key.

    `params` are keyword arguments of both the shape and the tensor function (plain values: numbers, strings, lists
    and dicts of them), so one registered function serves many settings where Maze's FunctionalBlock needs a closure.

    Built-ins: 'identity' (any inputs, unchanged), 'sum_last' / 'mean_last' / 'max_last' ((..., F) -> (...)),
    'softmax_last' / 'log_softmax_last' (over the last dim), 'add' / 'mul' (two inputs of equal rank, broadcast
    where a size is 1), 'support_to_scalar' (params `support_range: [low, high]`: (..., high - low + 1) logits ->
    (...), the softmax-weighted sum of the integers low..high, as Maze's categorical value heads compute).

    Examples:
        >>> block = ps.Functional(in_keys="x", out_keys="p", func="softmax_last")
        >>> ps.infer_shapes(block, {"x": (4,)})["p"]
        (4,)
    """

    n_inputs: ClassVar[int | None] = None
    n_outputs: ClassVar[int | None] = None
    _converters: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"params": frozen_plain}

    func: str
    """Name of a function registered with `register_function` (e.g. 'identity', 'softmax_last')."""
    params: Mapping[str, object] = pmap()
    """Keyword arguments of the function (plain values), e.g. {'support_range': [-10, 10]}."""

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        if self.func not in _functions:
            yield _unknown_function(self.func)
            return
        for name, value in self.params.items():
            if problem := plain_problem(value, f"params[{name!r}]"):
                yield f"field 'params': expected plain values (numbers, strings, lists and dicts of them); {problem}"
        if self.params and (problem := _keyword_problem(_functions[self.func].shape_fn, self.params)):
            yield f"field 'params': function {self.func!r} {problem}"


def _keyword_problem(fn: Callable[..., Any], params: Mapping[str, object]) -> str | None:
    """Why `fn` cannot take `params` as keyword arguments, or None."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return None  # no signature to check against: the fold reports what the call does
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    # the inputs come positionally: keyword arguments are the keyword-only ones and those with defaults
    named = [n for n, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
             or p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and p.default is not inspect.Parameter.empty]
    unknown = sorted(k for k in params if k not in named)
    return f"takes no keyword argument(s) {unknown} (its keyword arguments: {named})" if unknown else None


def _same_shapes(*shapes: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    return shapes


def _drop_last(shape: tuple[int, ...]) -> tuple[int, ...]:
    if not shape:
        raise ValueError("a shape (..., features) with at least 1 dim")
    return shape[:-1]


def _softmax_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return _drop_last(shape) + shape[-1:]


def _broadcast_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    if len(a) != len(b) or any(x != y and 1 not in (x, y) for x, y in zip(a, b)):
        raise ValueError(f"two shapes of equal rank whose sizes are equal or 1 in each dim, like {a}")
    return tuple(max(x, y) for x, y in zip(a, b))


def _support_to_scalar_shape(shape: tuple[int, ...], *, support_range: Sequence[int]) -> tuple[int, ...]:
    if len(support_range) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in support_range) \
            or support_range[0] >= support_range[1]:
        raise ValueError(f"support_range as [low, high], two ints with low < high (got {list(support_range)})")
    size = support_range[1] - support_range[0] + 1
    if not shape or shape[-1] != size:
        raise ValueError(f"a shape (..., {size}): one logit per integer of support_range {list(support_range)}")
    return shape[:-1]


BUILTIN_FUNCTIONS: dict[str, ShapeFunction] = {
    "identity": _same_shapes, "sum_last": _drop_last, "mean_last": _drop_last, "max_last": _drop_last,
    "softmax_last": _softmax_shape, "log_softmax_last": _softmax_shape, "add": _broadcast_shape,
    "mul": _broadcast_shape, "support_to_scalar": _support_to_scalar_shape,
}
for _name, _shape_fn in BUILTIN_FUNCTIONS.items():
    register_function(_name, _shape_fn)
