"""The interpreter: a spec becomes an `nn.Module` with a generated, flat, checked `forward`.

Every materialized spec is a `SpecModule` (one class: `torch.func.stack_module_state` and friends need that); what
differs between specs is the block modules under `blocks` and the generated `forward`, bound to the instance (so a
call costs no frame more than a hand-written module's), which calls the block modules in the program's order.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from perceptspec._torch import blocks as _blocks  # noqa: F401  (registers every kind's build rule)
from perceptspec._core import Shape
from perceptspec._errors import SpecError
from perceptspec._fold._program import index_limits, input_roles
from perceptspec._fold._shapes import Trace, trace
from perceptspec._recursion import recursion_room
from perceptspec._spec import Block
from perceptspec._spec._graph import nesting
from perceptspec._torch._call import call
from perceptspec._torch._codegen import compile_forward, forward_source
from perceptspec._torch._finite import finite_forward
from perceptspec._torch._memory import check_fits_in_memory
from perceptspec._torch._rng import GLOBAL_RNG_LOCK
from perceptspec._torch._signature import check_inputs, named_inputs
from perceptspec._torch._tables import torch_builders
from perceptspec._torch._under_compile import run_as_frame_boundary
from perceptspec._torch._walk import every_key

if TYPE_CHECKING:
    from perceptspec._torch._transfer import TransferReport

CHECK_MODES = ("always", "first", "off")


class BlockModules(nn.Module):
    """Block modules by block name, nested like the spec's graphs. Not an `nn.ModuleDict`: its `__setitem__`
    refuses names that are attributes ('keys', 'forward', 'to', 'training'), and those are fine block names."""

    def __init__(self, modules: Mapping[str, nn.Module] | None = None) -> None:
        super().__init__()
        for name, module in (modules or {}).items():
            self[name] = module

    def __setattr__(self, name: str, value: Any) -> None:
        # nn.Module refuses a plain value under a child's name, and `train()` sets `training` on every module
        if isinstance(value, (nn.Module, torch.Tensor)):
            super().__setattr__(name, value)
        elif name in self._modules and name not in self.__dict__:  # (`training` is a block name and an attribute)
            raise TypeError(f"block '{name}' can be replaced by another nn.Module (the forward calls whatever module "
                            f"is there), not by a {type(value).__qualname__}")
        else:
            object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if name in self._modules and name not in self.__dict__:
            raise TypeError(f"block '{name}' cannot be removed: the forward calls it (replace it by another "
                            f"nn.Module instead)")
        super().__delattr__(name)

    def __getitem__(self, name: str) -> nn.Module:
        module = self._modules[name]
        assert module is not None  # only modules are ever set
        return module

    def __setitem__(self, name: str, module: nn.Module) -> None:
        if not isinstance(module, nn.Module):
            raise TypeError(f"block '{name}' can be replaced by another nn.Module (the forward calls whatever module "
                            f"is there), not by a {type(module).__qualname__}")
        self._modules[name] = module

    def __contains__(self, name: object) -> bool:
        return name in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)


class SpecModule(nn.Module):
    """A materialized spec. `forward(dict[str, Tensor]) -> dict[str, Tensor]` returns exactly the spec's out keys.

    Parameters live in `blocks`, one submodule per block, nested like the spec's graphs, so `state_dict` keys read
    `blocks.<block>.<layer>.weight`. The forward itself is generated once per materialization (see `code`); it
    calls every block module as torch would (hooks, parametrizations and replaced modules are honoured).
    Attributes: `spec`, `in_shapes`, `seed`, `code` (the generated forward's source), `check`, `check_finite`.

    Examples:
        >>> import torch
        >>> module = ps.materialize(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[8]), {"obs": (4,)}, seed=0)
        >>> isinstance(module, ps.SpecModule), sorted(module.state_dict())
        (True, ['blocks.h.0.bias', 'blocks.h.0.weight'])
    """

    code: str
    #: the seed the weights were drawn with (`materialize(..., seed=)`); None: torch's global RNG, or assembled
    seed: int | None = None
    #: what `ps.transfer` reused, reinitialised and dropped, on a module it built (None otherwise)
    transfer_report: TransferReport | None = None

    if TYPE_CHECKING:
        def __call__(self, inputs: Mapping[str, torch.Tensor] | None = None, /,
                     **named: torch.Tensor) -> dict[str, torch.Tensor]: ...

    def __init__(self, spec: Block, t: Trace, blocks: BlockModules, check: str, allow_extra_keys: bool,
                 check_finite: bool) -> None:
        super().__init__()
        # read-only (properties below): pickling rebuilds the module from them, so they stay what it was built for
        self._spec = spec
        self._in_shapes: Mapping[str, Shape] = MappingProxyType(dict(t.in_shapes))
        self._out_shapes: Mapping[str, Shape] = MappingProxyType({k: t.shapes[k] for k in t.program.outputs})
        self.allow_extra_keys = allow_extra_keys
        self.blocks = blocks
        roles = input_roles(t.program)
        self.signature: tuple[tuple[str, Shape, str], ...] = tuple((k, s, roles[k]) for k, s in self.in_shapes.items())
        #: the bounds of each index input (OneHot, Embedding), checked with the signature
        self.index_limits: tuple[tuple[str, tuple[int | tuple[int, ...], ...]], ...] = tuple(
            index_limits(t.program).items())
        # Where the first parameter lives: inputs must match its dtype and device. Looked up at each check, so
        # .to(), load_state_dict(assign=True) and torch.func.functional_call are all seen.
        with torch_room(spec):
            self._probe: tuple[nn.Module, str] | None = next(  # a None entry (nn.LayerNorm without affine) is none
                ((m, name) for m in self.modules() for name, p in m._parameters.items() if p is not None), None)
        self._check, self._check_finite = check, check_finite
        self._generate(t)

    def _generate(self, t: Trace) -> None:
        """Generate the forward for the current check settings and bind it to this module: nn.Module.__call__ finds
        it before the class's `forward` (an unchecked call costs no frame more than a hand-written module's)."""
        self.code = forward_source(t, self._check)
        forward = compile_forward(self.code, {"_call": call, "_check": check_inputs, "_named": named_inputs})
        self.forward = types.MethodType(  # type: ignore[method-assign]
            finite_forward(forward) if self._check_finite else forward, self)
        self._check_pending = self._check != "off"

    @property
    def check(self) -> str:
        """When inputs are checked: 'always', 'first' (the first call only) or 'off'. Assigning it takes effect at
        the next call (the forward is generated again; 'first' then checks the next call)."""
        return self._check

    @check.setter
    def check(self, mode: str) -> None:
        self._check = checked_mode(mode, "SpecModule")
        self._generate(trace(self.spec, self.in_shapes))

    @property
    def check_finite(self) -> bool:
        """Whether inputs and outputs are checked for NaN and inf. Assigning it takes effect at the next call."""
        return self._check_finite

    @check_finite.setter
    def check_finite(self, on: bool) -> None:
        self._check_finite = checked_finite(on, "SpecModule")
        self._generate(trace(self.spec, self.in_shapes))

    def forward(self, inputs: Mapping[str, torch.Tensor] | None = None, /,
                **named: torch.Tensor) -> dict[str, torch.Tensor]:
        """The spec's outputs from its inputs: one dict (`module(obs)`), or keyword arguments (`module(**obs)`, which
        is how `torch.onnx.export` passes a dict given as the last of its `args`). Each instance runs its generated
        forward (`code`), bound in `__init__`; this method only documents it."""
        forward: Callable[..., dict[str, torch.Tensor]] = self.__dict__["forward"]
        return forward(inputs, **named)

    @property
    def spec(self) -> Block:
        """The spec this module was materialized from."""
        return self._spec

    @property
    def in_shapes(self) -> Mapping[str, Shape]:
        """The input shapes (without batch dims) it was materialized for."""
        return self._in_shapes

    @property
    def out_shapes(self) -> Mapping[str, Shape]:
        """The shape of each out key, as the shape fold inferred it."""
        return self._out_shapes

    @run_as_frame_boundary
    def probe_parameter(self) -> torch.Tensor | None:
        """The first parameter as it is now: inputs must share its dtype and device (None: no parameters). Read as
        the module reads it (a parametrization's value, a tensor `to_module` or `functional_call` put there)."""
        if self._probe is None:
            return None
        owner, name = self._probe
        value = owner._parameters.get(name)
        if value is not None:
            return value
        # a parametrization torch registered as safe keeps the dtype of the tensor it holds (torch checks that when
        # registering): read that tensor rather than run the parametrization at every check
        parametrizations = owner._modules.get("parametrizations")
        held = getattr(parametrizations, name, None)
        original = None if held is None or getattr(held, "unsafe", True) else held._parameters.get("original")
        return original if original is not None else getattr(owner, name, None)

    def block_module(self, path: str) -> nn.Module:
        """The module of the block at `path` ('latent.dense')."""
        module: nn.Module = self.blocks
        for part in path.split("."):
            module = module._modules[part]  # type: ignore[assignment]  # every level exists by construction
        return module

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        """Pickle as (spec, in_shapes, settings, weights): the forward is generated again, not looked up by name.
        Every parameter and buffer comes back with its dtype, device and `requires_grad` (issue #14: a float64
        module came back float32), and the module in its training mode."""
        with torch_room(self.spec):
            grads = {name: p.requires_grad for name, p in self.named_parameters()}
            placements = {name: (t.device, t.dtype) for name, t in (*self.named_parameters(), *self.named_buffers())}
            state = self.state_dict()
        return _unpickle, (self.spec, dict(self.in_shapes), self.check, self.allow_extra_keys, state,
                           self.training, grads, self.check_finite, placements, self.seed)

    def __deepcopy__(self, memo: dict[int, Any]) -> SpecModule:
        # what copy.deepcopy does for plain objects; defined because __reduce_ex__ above is for pickling only
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        for name, value in self.__dict__.items():
            # read-only shape mappings hold only tuples: shared (a mappingproxy cannot be deep-copied)
            clone.__dict__[name] = value if isinstance(value, MappingProxyType) else copy.deepcopy(value, memo)
        return clone

    def __repr__(self) -> str:
        with torch_room(self.spec):  # torch's repr recurses three frames per level of block modules
            return super().__repr__()

    def extra_repr(self) -> str:
        finite = ", check_finite=True" if self.check_finite else ""
        return f"in_shapes={dict(self.in_shapes)}, out_shapes={dict(self.out_shapes)}, check={self.check!r}{finite}"


def materialize(spec: Block, in_shapes: Mapping[str, Sequence[int]], *, seed: int | None = None,
                check: str = "always", allow_extra_keys: bool = False, check_finite: bool = False) -> SpecModule:
    """Build the torch module of `spec` for inputs of `in_shapes` (without batch dims).

    seed: None draws from torch's global RNG; an int gives bit-identical weights for the same spec in any process
    (each block draws from its own generator, seeded from `seed` and the block's path).
    check: 'always' (the default) checks every call's inputs; 'first' only the first call's (later wrong inputs
        then give torch's own errors, or broadcast silently: a mask of batch 1 against a batch of 8); 'off' none.
        The checks run under `torch.compile` too. `module.check = ...` changes it on a live module.
    allow_extra_keys: accept (and ignore) input keys the spec does not read, e.g. a full observation dict.
    check_finite: raise `NonFiniteError` on NaN or inf in an input, or in an output (naming the first block that
        made it from finite inputs); off by default: it costs an `isfinite` per input and output on every call.
    """
    checked_mode(check, "materialize")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise SpecError("materialize", [f"seed: expected an int or None, got {seed!r}"])
    checked_finite(check_finite, "materialize")
    t = trace(spec, in_shapes)
    check_fits_in_memory(t)
    module = assemble(t, build_blocks(t, seed), check, allow_extra_keys=allow_extra_keys, check_finite=check_finite)
    module.seed = seed
    return module


def build_blocks(t: Trace, seed: int | None) -> BlockModules:
    """One module per leaf block, nested like the spec's graphs. Unseeded, the blocks draw from torch's global RNG,
    under the lock a seeded build in another thread holds while it forks that RNG (`_rng.py`)."""
    with contextlib.nullcontext() if seed is not None else GLOBAL_RNG_LOCK:
        return _build_blocks(t, seed)


def _build_blocks(t: Trace, seed: int | None) -> BlockModules:
    blocks = BlockModules()
    for eqn in t.program.eqns:
        generator = None if seed is None else block_generator(seed, eqn.path)
        module = torch_builders.lookup(type(eqn.block))(eqn.block, t.ins(eqn), eqn.init, generator)
        if hasattr(module, "block_path"):  # a module that raises errors at run time names its block in them
            setattr(module, "block_path", eqn.path)
        *graphs, name = eqn.path.split(".")
        parent = blocks
        for graph in graphs:
            if graph not in parent:
                parent[graph] = BlockModules()
            parent = parent[graph]  # type: ignore[assignment]  # nested graphs are BlockModules
        parent[name] = module
    return blocks


def assemble(t: Trace, blocks: BlockModules, check: str, *, allow_extra_keys: bool = False,
             check_finite: bool = False) -> SpecModule:
    """The module running program `t` over existing block modules (shared, not copied: the composer's
    actor-critic reuses the policy's and the critic's)."""
    return SpecModule(t.program.spec, t, blocks, check, allow_extra_keys, check_finite)


def checked_mode(check: object, where: str) -> str:
    """`check` if it is a check mode; else a `SpecError` from `where` (materialize, or SpecModule when assigned)."""
    if not isinstance(check, str) or check not in CHECK_MODES:
        raise SpecError(where, [f"check: expected one of {list(CHECK_MODES)}, got {check!r}"])
    return check


def checked_finite(check_finite: object, where: str) -> bool:
    if not isinstance(check_finite, bool):
        raise SpecError(where, [f"check_finite: expected a bool, got {check_finite!r}"])
    return check_finite


def _unpickle(spec: Block, in_shapes: Mapping[str, Shape], check: str, allow_extra_keys: bool,
              state: dict[str, torch.Tensor], training: bool, grads: Mapping[str, bool],
              check_finite: bool = False,
              placements: Mapping[str, tuple[torch.device, torch.dtype]] | None = None,
              seed: int | None = None) -> SpecModule:
    module = materialize(spec, in_shapes, check=check, allow_extra_keys=allow_extra_keys, check_finite=check_finite)
    module.seed = seed
    with torch_room(spec):
        place(module, placements or {})
        module.load_state_dict(state)
        module.train(training)
        for name, p in module.named_parameters():
            p.requires_grad_(grads[name])
    return module


def torch_room(spec: Block) -> contextlib.AbstractContextManager[None]:
    """Recursion room for torch's own `nn.Module` methods (`modules()`, `state_dict()`, ...) over the block modules
    of `spec`: they nest like its graphs, and torch recurses once or twice per level (see `_recursion`)."""
    return recursion_room(4 * (nesting(spec) + 2))


def place(module: nn.Module, placements: Mapping[str, tuple[torch.device, torch.dtype]]) -> None:
    """Give each named parameter and buffer its (device, dtype), as `nn.Module.to` does: a parameter stays the same
    object (tied weights stay tied) unless its new tensor type cannot be swapped in (another device kind)."""
    with torch.no_grad():
        for name, p in list(module.named_parameters()):
            if name in placements:
                moved = p.data.to(*placements[name])
                if torch._has_compatible_shallow_copy_type(p.data, moved):
                    p.data = moved
                else:
                    owner_path, _, leaf = name.rpartition(".")
                    module.get_submodule(owner_path)._parameters[leaf] = nn.Parameter(moved, p.requires_grad)
        for name, b in list(module.named_buffers()):
            if name in placements:
                owner_path, _, leaf = name.rpartition(".")
                module.get_submodule(owner_path)._buffers[leaf] = b.to(*placements[name])


def block_generator(seed: int, path: str) -> torch.Generator:
    """A generator for one block, seeded from (seed, path): weights do not depend on block order or process."""
    digest = hashlib.sha256(f"{seed}/{path}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def run_reference(module: SpecModule, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference interpreter: the program walked step by step (`walk`); the generated forward must agree."""
    env = every_key(module, inputs)
    return {k: env[k] for k in trace(module.spec, module.in_shapes).program.outputs}
