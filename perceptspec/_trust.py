"""The allow-list: which modules a spec, a config or the command line may import from and call.

A spec or config is data, possibly from someone else. Only two things in it name code: a `TorchModel`'s
`module_factory` and a composer `_target_`. Both go through `resolve_allowed`, which refuses a path outside the
allow-list *before importing anything*, and after importing refuses an object that was not defined in an allowed
module (an allowed module that happens to `import os` does not make `os.system` reachable). `Functional` blocks name
functions registered by the calling code (`register_function`), so they need no import at all.

The allow-list is perceptspec's own examples and integrations, torch's layer classes (`torch.nn.Linear`, ...; nothing
else of torch), plus what the calling code adds: `allow(...)` for
the process (or a `with` block), `compose(..., allow=[...])` and the CLI's `--allow MODULE` for one call.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from types import ModuleType, TracebackType
from typing import Any

from perceptspec._errors import NotAllowedError, SpecError

__all__ = ["allow", "allowed_modules"]

#: modules trusted without asking: the seed examples and the adapters' own network targets
BUILTIN_ALLOWED = ("perceptspec.examples", "perceptspec.integrations", "perceptspec.templates")
#: where torch defines its layer classes (`torch.nn.Linear` is `torch.nn.modules.linear.Linear`): those classes,
#: and nothing else from torch, are allowed too
LAYER_MODULES = "torch.nn.modules"

_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_lock = threading.Lock()
_allowed: dict[str, int] = {}  # module -> how many live allowances name it (an allowance undone drops its count)
_scoped: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("perceptspec_allowed", default=())


class Allowance:
    """What `allow` returns: the modules stay allowed for the process, or, used as a context manager, until the
    `with` block ends."""

    def __init__(self, modules: tuple[str, ...]) -> None:
        self.modules = modules
        self._active = True

    def revoke(self) -> None:
        """Take back this allowance (modules allowed by another `allow` call stay allowed)."""
        with _lock:
            if not self._active:
                return
            self._active = False
            for module in self.modules:
                _allowed[module] -= 1
                if not _allowed[module]:
                    del _allowed[module]

    def __enter__(self) -> Allowance:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.revoke()

    def __repr__(self) -> str:
        return f"Allowance({list(self.modules)}{'' if self._active else ', revoked'})"


def allow(*modules: str) -> Allowance:
    """Let specs and configs import and call code defined in `modules` (and their submodules).

    Allowed for the whole process; used as a context manager (`with ps.allow("mypkg.nets"): ...`) only inside
    the block. Allow modules you would import yourself: importing one runs its code (and its packages'
    `__init__`). See docs/security.md.

    Arguments:
        modules: dotted module names, e.g. 'mypkg.nets' for a TorchModel naming 'mypkg.nets.vision:Encoder'.

    Examples:
        >>> with ps.allow("mypkg.nets"):
        ...     "mypkg.nets" in ps.allowed_modules()
        True
    """
    names = tuple(_checked_names(modules, "allow"))
    with _lock:
        for name in names:
            _allowed[name] = _allowed.get(name, 0) + 1
    return Allowance(names)


@contextlib.contextmanager
def allowing(modules: Iterable[str], where: str) -> Iterator[None]:
    """Allow `modules` in this thread (and context) for the duration of one call: `compose(..., allow=...)`."""
    names = tuple(_checked_names(modules, where))
    token = _scoped.set(_scoped.get() + names)
    try:
        yield
    finally:
        _scoped.reset(token)


def allowed_modules() -> tuple[str, ...]:
    """Every module allowed here and now: the built-ins, `allow(...)`'s and the current call's, sorted.

    Examples:
        >>> "perceptspec.examples" in ps.allowed_modules()
        True
    """
    with _lock:
        added = tuple(_allowed)
    return tuple(sorted({*BUILTIN_ALLOWED, *added, *_scoped.get()}))


def _checked_names(modules: Iterable[str], where: str) -> Iterator[str]:
    if isinstance(modules, str):
        modules = (modules,)
    for name in modules:
        if not isinstance(name, str) or not _MODULE_NAME.fullmatch(name):
            raise SpecError(where, [f"expected module names such as 'mypkg.nets', got {name!r}"])
        yield name


def is_allowed(module_name: str) -> bool:
    """Whether `module_name` is an allowed module or inside one."""
    return _within(module_name, allowed_modules())


def _within(module_name: str, modules: Iterable[str]) -> bool:
    return any(module_name == name or module_name.startswith(name + ".") for name in modules)


def _is_ancestor(module_name: str) -> bool:
    """Whether importing an allowed module imports `module_name` anyway (a package above it: 'mypkg' of
    'mypkg.nets'), so importing it to reach an attribute runs no code the allow-list has not let in."""
    return any(name.startswith(module_name + ".") for name in (*allowed_modules(), LAYER_MODULES))


def _importable(module_name: str) -> bool:
    return is_allowed(module_name) or _within(module_name, (LAYER_MODULES,)) or _is_ancestor(module_name)


def resolve_allowed(module_name: str, attrs: Sequence[str], path: str, where: str, field: str) -> Any:
    """The object at `module_name` + `attrs`, imported only if the allow-list permits.

    Raises `NotAllowedError` (before importing) for a module outside the allow-list, or for an object defined
    outside it; `ImportError` and `AttributeError` pass through for the caller to word.
    """
    if not _importable(module_name):
        raise _not_allowed(path, where, field, f"module '{module_name}' is not allowed", module_name)
    obj: Any = importlib.import_module(module_name)
    for i, attr in enumerate(attrs):
        owner = ".".join([module_name, *attrs[:i]])
        # a package imported only as an allowed module's parent: its own names, no lazy `__getattr__` imports
        reachable = hasattr(obj, attr) if not isinstance(obj, ModuleType) or is_allowed(obj.__name__) \
            else attr in vars(obj)
        if not reachable:
            raise AttributeError(f"'{owner}' has no attribute '{attr}'")
        obj = getattr(obj, attr)
        if isinstance(obj, ModuleType) and not _importable(obj.__name__):
            raise _not_allowed(path, where, field, f"it reaches module '{obj.__name__}', which is not allowed",
                               obj.__name__)
    defined_in = obj.__name__ if isinstance(obj, ModuleType) else getattr(obj, "__module__", None)
    if not callable(obj) or isinstance(defined_in, str) and is_allowed(defined_in):
        return obj  # (the caller refuses what it cannot call)
    if isinstance(defined_in, str) and _within(defined_in, (LAYER_MODULES,)) and _is_layer_class(obj):
        return obj
    source = f"defined in '{defined_in}'" if isinstance(defined_in, str) else "not defined in any module"
    raise _not_allowed(path, where, field, f"it names {_kind(obj)} {source}, which is not allowed (only what "
                       f"allowed modules define can be called, and torch's layer classes)", defined_in)


def _is_layer_class(obj: object) -> bool:
    """A torch layer class (`torch.nn.Linear`, ...): constructing one from plain values only builds a layer."""
    from torch import nn  # imported only when the path already led into torch.nn

    return isinstance(obj, type) and issubclass(obj, nn.Module)


def _kind(obj: object) -> str:
    return "a class" if isinstance(obj, type) else "a function" if callable(obj) else f"a {type(obj).__name__}"


def _not_allowed(path: str, where: str, field: str, problem: str, module: object) -> NotAllowedError:
    suggestion = module if isinstance(module, str) else "MODULE"
    subject = f"{field} ({path!r}): " if field else ""
    return NotAllowedError(where, [f"{subject}{problem}. Specs and configs may only import code from "
                                   f"allowed modules ({', '.join(allowed_modules())}); if you trust it, allow it "
                                   f"with ps.allow({suggestion!r}), compose(..., allow=[{suggestion!r}]) or the "
                                   f"CLI's --allow {suggestion}"], path=path)
