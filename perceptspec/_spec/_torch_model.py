"""`TorchModel`: a user's own `nn.Module` embedded in a spec, named by import path so the spec stays a value."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Callable, ClassVar

from pyrsistent import pmap

from perceptspec._core import Shape
from perceptspec._errors import NotAllowedError, SpecError
from perceptspec._spec._block import Block
from perceptspec._spec._descriptor import descriptor, ordered_items
from perceptspec._spec._plain import frozen_plain, plain_problem, thaw
from perceptspec._trust import resolve_allowed

__all__ = ["TorchModel"]

_NAME = r"[A-Za-z_]\w*"
#: 'package.module:Factory' (attributes may nest: 'module:Class.create') or 'package.module.Factory'
FACTORY_PATH = re.compile(rf"{_NAME}(?:\.{_NAME})*:{_NAME}(?:\.{_NAME})*|{_NAME}(?:\.{_NAME})+")
#: the keyword argument the block itself passes to factories that take it
IN_SHAPES_ARGUMENT = "in_shapes"


def _one_shape(value: object) -> object:
    """A flat shape such as (4,) is the one shape of a one-output block: ((4,),)."""
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, int) and not isinstance(v, bool)
                                                          for v in value):
        return (tuple(value),)
    return value


def _int_to_ints(value: object) -> object:
    """Maze's `Union[int, List[int]]`: one int is the rank of the one key."""
    return (value,) if isinstance(value, int) and not isinstance(value, bool) else value


def as_dims(value: int | Sequence[int] | None) -> tuple[int, ...] | None:
    """A num_dims field as it is after construction: a tuple (or None), typed for mypy."""
    return (value,) if isinstance(value, int) else None if value is None else tuple(value)


@descriptor
class TorchModel(Block):
    """A user `nn.Module` as a block, like Maze's TorchModelBlock, but named by `module_factory` instead of holding
    the module, so the spec stays hashable, comparable and serializable (and torch-free until materialized).

    module_factory: an import path, 'package.module:Factory' or 'package.module.Factory', of a class or function
        returning the module; resolved only when materialized (or to infer shapes when `out_shapes` is omitted).
        It is called as `factory(in_shapes={in_key: shape, ...}, **kwargs)` if it has an `in_shapes` parameter,
        else as `factory(**kwargs)`; the shapes are what the module sees per sample (see `in_num_dims`).
    kwargs: the factory's keyword arguments: plain values (numbers, strings, None, lists and dicts of them), kept
        as tuples and pmaps; the factory receives tuples and dicts.
    out_shapes: one shape per out key, as the module returns it per sample. Declared, the shape fold is pure;
        omitted, it is inferred once by running the module on the meta device (no real compute; needs torch).
    dict_inputs: False calls `forward(*tensors)` in `in_keys` order; True calls `forward({in_key: tensor})`, the
        convention of Maze's TorchModelBlock. `forward` may return a tensor, a tuple (in `out_keys` order) or a
        dict holding every out key.
    in_num_dims / out_num_dims: Maze's required rank of each input / output (an int for one key), batch dim
        included. The module then
        sees each input's last `in_num_dims - 1` dims; the leading feature dims before them (equal over inputs)
        are folded into the batch and put back in front of every output. None: the module sees whole shapes.

    The module keeps its own initialisation unless this block's own `init` is set (a Graph's `init` does not reach
    inside); `init` then re-initialises every Linear and Conv layer in it. Counting parameters needs torch.

    Examples:
        >>> block = ps.TorchModel(in_keys="x", out_keys="y", module_factory="torch.nn.Identity",
        ...                       out_shapes=[[4]])
        >>> ps.infer_shapes(block, {"x": (4,)})["y"]  # declared out_shapes: no torch import
        (4,)
    """

    n_inputs = None
    n_outputs = None
    _converters: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"kwargs": frozen_plain, "out_shapes": _one_shape,
                                                                 "in_num_dims": _int_to_ints,
                                                                 "out_num_dims": _int_to_ints}

    module_factory: str
    """Import path of the class or function that returns the module ('pkg.mod:Factory')."""
    kwargs: Mapping[str, object] = pmap()
    """The factory's keyword arguments (plain values)."""
    out_shapes: Sequence[Sequence[int]] | None = None
    """One shape per out key, per sample; None: inferred on the meta device (needs torch)."""
    dict_inputs: bool = False
    """Call `forward({in_key: tensor})` (Maze's convention) instead of `forward(*tensors)`."""
    in_num_dims: int | Sequence[int] | None = None
    """Maze's rank of each input, batch dim included; None: the module sees whole shapes."""
    out_num_dims: int | Sequence[int] | None = None
    """Maze's rank of each output, batch dim included."""

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        in_num_dims, out_num_dims = as_dims(self.in_num_dims), as_dims(self.out_num_dims)
        if not FACTORY_PATH.fullmatch(self.module_factory):
            yield (f"field 'module_factory': expected an import path 'package.module:Factory' or "
                   f"'package.module.Factory', got {self.module_factory!r}")
        if IN_SHAPES_ARGUMENT in self.kwargs:
            yield (f"field 'kwargs': '{IN_SHAPES_ARGUMENT}' is passed by the block (the shapes come from the fold); "
                   f"remove it from kwargs")
        for name, value in self.kwargs.items():
            if problem := plain_problem(value, f"kwargs[{name!r}]"):
                yield (f"field 'kwargs': expected plain values (None, bool, int, float, str, lists and dicts of "
                       f"them) so the spec stays hashable and serializable; {problem}")
        yield from self._count_problems("out_shapes", self.out_shapes, self.out_keys)
        yield from self._count_problems("in_num_dims", in_num_dims, self.in_keys)
        yield from self._count_problems("out_num_dims", out_num_dims, self.out_keys)
        if self.out_shapes is not None and any(d <= 0 for s in self.out_shapes for d in s):
            yield f"field 'out_shapes': expected shapes of positive ints, got {_listed(self.out_shapes)}"
        for field, dims in (("in_num_dims", in_num_dims), ("out_num_dims", out_num_dims)):
            if dims is not None and any(d < 1 for d in dims):
                yield f"field '{field}': expected ranks of at least 1 (the batch dim counts), got {list(dims)}"
        if self.out_shapes is not None and out_num_dims is not None \
                and len(self.out_shapes) == len(out_num_dims) == len(self.out_keys):
            for key, shape, rank in zip(self.out_keys, self.out_shapes, out_num_dims):
                if len(shape) != rank - 1:
                    yield (f"field 'out_shapes': out key '{key}' has out_num_dims {rank} (batch included), so its "
                           f"shape needs {rank - 1} dim(s), got {shape}")

    @staticmethod
    def _count_problems(field: str, values: Sequence[Any] | None, keys: Sequence[str]) -> Iterator[str]:
        if values is not None and len(values) != len(keys):
            yield f"field '{field}': expected one entry per key of {list(keys)}, got {_listed(values)}"


def _listed(values: Sequence[Any]) -> list[Any]:
    return [list(v) if isinstance(v, tuple) else v for v in values]


# --- the factory: found by import path, called with the kwargs (torch-free: the factory imports what it needs) --

def resolve_factory(block: TorchModel) -> Callable[..., Any]:
    """The callable `block.module_factory` names, imported only from allowed modules (`ps.allow`); a `SpecError`
    naming the path when it cannot be found, a `NotAllowedError` (before any import) when it is not allowed."""
    path = block.module_factory
    if ":" in path:
        module_part, attr_part = path.split(":")
        candidates = [(module_part, attr_part.split("."))]
    else:
        parts = path.split(".")
        candidates = [(".".join(parts[:i]), parts[i:]) for i in range(len(parts) - 1, 0, -1)]
    for module_name, attrs in candidates:
        try:
            obj: Any = resolve_allowed(module_name, attrs, path, block._where(), "field 'module_factory'")
        except ModuleNotFoundError as e:
            if e.name is not None and (module_name + ".").startswith(e.name + "."):
                continue  # no such module: the path may name an attribute at a shorter module path
            raise factory_error(block, f"importing '{module_name}' failed: {e}") from e
        except AttributeError as e:
            raise factory_error(block, str(e)) from None
        except NotAllowedError:
            raise
        except Exception as e:
            raise factory_error(block, f"importing '{module_name}' failed: {type(e).__name__}: {e}") from e
        if not callable(obj):
            raise factory_error(block, f"it names a {type(obj).__name__}, not a class or function")
        factory: Callable[..., Any] = obj
        return factory
    tried = ", ".join(repr(name) for name, _ in candidates)
    raise factory_error(block, f"no module of it can be imported (tried {tried})")


def factory_error(block: TorchModel, problem: str) -> SpecError:
    return SpecError(block._where(), [f"field 'module_factory' ({block.module_factory!r}): {problem}"])


def takes_in_shapes(factory: Callable[..., Any]) -> bool:
    """Whether the factory has a parameter named `in_shapes` (a bare `**kwargs` does not count)."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # some builtins have no signature
        return False
    parameter = parameters.get(IN_SHAPES_ARGUMENT)
    return parameter is not None and parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                        inspect.Parameter.KEYWORD_ONLY)


def call_factory(block: TorchModel, shapes: Sequence[Shape]) -> object:
    """`factory(in_shapes=..., **kwargs)` (or without `in_shapes`; `shapes` per in key, as the module sees them);
    a `SpecError` when the call fails. Whether it returned a module is the torch layer's to check
    (`factory_error` words it)."""
    factory = resolve_factory(block)
    kwargs = {k: thaw(v) for k, v in ordered_items(block.kwargs)}
    if takes_in_shapes(factory):
        kwargs[IN_SHAPES_ARGUMENT] = dict(zip(block.in_keys, shapes))
    try:
        module: object = factory(**kwargs)
    except Exception as e:
        raise factory_error(block, f"calling it with {sorted(kwargs)} failed: {type(e).__name__}: {e}") from e
    return module
